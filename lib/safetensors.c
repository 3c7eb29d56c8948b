/* safetensors backend: header reader for the checkpoint handle, and the streaming writer. */
/*
 * File layout (https://github.com/huggingface/safetensors):
 *
 *   offset 0      u64 little-endian N: byte length of the header
 *   offset 8      N bytes of UTF-8 JSON, one object, possibly padded with
 *                 trailing spaces (the reference writer pads to 8 bytes):
 *                   "__metadata__": { string: string, ... }   (optional)
 *                   "<tensor>": { "dtype": "BF16", "shape": [d0, d1, ...],
 *                                 "data_offsets": [begin, end] }
 *   offset 8 + N  data buffer; a tensor's bytes are [begin, end) relative
 *                 to its start, row-major, little-endian, no padding.
 *
 * The spans must tile the data buffer exactly: no overlap, no hole, nothing
 * after the last tensor (the reference loader enforces the same).
 * Only the header is read here (sequentially, so pipes work); data is read
 * later through the file's input.
 */
#include "safetensors.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ckpt_impl.h"

/* The reference implementation refuses headers above 100 MB. */
#define MAX_HEADER 100000000ull

static const struct {
	const char *name;
	enum moe_dtype dt;
} st_dtypes[] = {
	{ "F64", MOE_DT_F64 }, { "F32", MOE_DT_F32 }, { "F16", MOE_DT_F16 },
	{ "BF16", MOE_DT_BF16 }, { "F8_E4M3", MOE_DT_F8_E4M3 },
	{ "F8_E5M2", MOE_DT_F8_E5M2 }, { "F8_E8M0", MOE_DT_F8_E8M0 },
	{ "I64", MOE_DT_I64 }, { "I32", MOE_DT_I32 }, { "I16", MOE_DT_I16 },
	{ "I8", MOE_DT_I8 }, { "U64", MOE_DT_U64 }, { "U32", MOE_DT_U32 },
	{ "U16", MOE_DT_U16 }, { "U8", MOE_DT_U8 }, { "BOOL", MOE_DT_BOOL },
};

#define N_DTYPES (sizeof st_dtypes / sizeof st_dtypes[0])

/* Exact (case-sensitive) safetensors spelling. */
static enum moe_dtype dtype_from_st(const char *s)
{
	for (size_t i = 0; i < N_DTYPES; i++)
		if (strcmp(st_dtypes[i].name, s) == 0)
			return st_dtypes[i].dt;
	return MOE_DT_INVALID;
}

static const char *dtype_to_st(enum moe_dtype dt)
{
	for (size_t i = 0; i < N_DTYPES; i++)
		if (st_dtypes[i].dt == dt)
			return st_dtypes[i].name;
	return NULL;
}

/* ---- reader ---- */

/* One tensor's place in the data buffer, for the tiling check. */
struct span {
	uint64_t begin, end;
	const char *name;
};

static int cmp_span(const void *a, const void *b)
{
	const struct span *x = a, *y = b;

	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	return x->end < y->end ? -1 : x->end > y->end;
}

static int get_u64(json_t *v, uint64_t *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -1;
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

static int load_meta(struct moe_ckpt *ck, json_t *m)
{
	const char *k;
	json_t *v;

	if (!json_is_object(m))
		return moe_error_set(&ck->err, MOE_EFORMAT, "__metadata__ is not an object");
	json_object_foreach(m, k, v) {
		if (!json_is_string(v))
			return moe_error_set(&ck->err, MOE_EFORMAT,
				"__metadata__ value of '%s' is not a string", k);
		if (moe_meta_set_str(ck->meta, k, json_string_value(v)) != 0)
			return moe_error_set(&ck->err, MOE_ENOMEM, "out of memory");
	}
	return 0;
}

/* Parses one tensor entry into t (offset still relative) and its span. */
static int parse_entry(struct moe_ckpt *ck, const char *name, json_t *e,
	struct moe_tensor *t, struct span *sp)
{
	json_t *dt = json_object_get(e, "dtype");
	json_t *shape = json_object_get(e, "shape");
	json_t *offs = json_object_get(e, "data_offsets");
	uint64_t numel, need;
	size_t i;
	json_t *d;

	if (!json_is_object(e))
		return moe_error_set(&ck->err, MOE_EFORMAT,
			"header entry '%s' is not an object", name);
	if (!json_is_string(dt))
		return moe_error_set(&ck->err, MOE_EFORMAT,
			"tensor '%s' has no dtype string", name);
	if ((t->dtype = dtype_from_st(json_string_value(dt))) == MOE_DT_INVALID)
		return moe_error_set(&ck->err, MOE_EUNSUP,
			"tensor '%s' has unsupported dtype '%.40s'", name,
			json_string_value(dt));
	if (!json_is_array(shape))
		return moe_error_set(&ck->err, MOE_EFORMAT,
			"tensor '%s' has no shape array", name);
	if (json_array_size(shape) > MOE_MAX_DIMS)
		return moe_error_set(&ck->err, MOE_EUNSUP,
			"tensor '%s' has %zu dimensions (at most %d)", name,
			json_array_size(shape), MOE_MAX_DIMS);
	t->ndim = (int)json_array_size(shape);
	json_array_foreach(shape, i, d)
		if (get_u64(d, &t->shape[i]) != 0)
			return moe_error_set(&ck->err, MOE_EFORMAT,
				"tensor '%s': shape[%zu] is not a non-negative integer",
				name, i);
	if (!json_is_array(offs) || json_array_size(offs) != 2 ||
	    get_u64(json_array_get(offs, 0), &sp->begin) != 0 ||
	    get_u64(json_array_get(offs, 1), &sp->end) != 0)
		return moe_error_set(&ck->err, MOE_EFORMAT,
			"tensor '%s': data_offsets is not [begin, end]", name);
	if (sp->begin > sp->end)
		return moe_error_set(&ck->err, MOE_EFORMAT,
			"tensor '%s': data_offsets [%llu, %llu] end before they begin",
			name, (unsigned long long)sp->begin, (unsigned long long)sp->end);
	if (moe_shape_numel(t->ndim, t->shape, &numel) != 0 ||
	    moe_dtype_nbytes(t->dtype, numel, &need) != 0)
		return moe_error_set(&ck->err, MOE_ERANGE,
			"tensor '%s' is too large", name);
	if (sp->end - sp->begin != need)
		return moe_error_set(&ck->err, MOE_EFORMAT,
			"tensor '%s': data_offsets span %llu bytes but shape and dtype %s need %llu",
			name, (unsigned long long)(sp->end - sp->begin),
			moe_dtype_name(t->dtype), (unsigned long long)need);
	t->nbytes = need;
	sp->name = name;
	return 0;
}

/* Spans sorted by begin must follow each other exactly from 0 to the end
 * of the data buffer (dsize, or unknown on a stream: UINT64_MAX). */
static int check_tiling(struct moe_ckpt *ck, struct span *sp, size_t n, uint64_t dsize)
{
	uint64_t at = 0;

	qsort(sp, n, sizeof *sp, cmp_span);
	for (size_t i = 0; i < n; i++) {
		if (sp[i].begin < at)
			return moe_error_set(&ck->err, MOE_EFORMAT,
				"tensor '%s' overlaps tensor '%s' in the data buffer",
				sp[i].name, sp[i - 1].name);
		if (sp[i].begin > at)
			return moe_error_set(&ck->err, MOE_EFORMAT,
				"gap in the data buffer at offset %llu (before tensor '%s')",
				(unsigned long long)at, sp[i].name);
		at = sp[i].end;
	}
	if (dsize != UINT64_MAX && at != dsize)
		return moe_error_set(&ck->err, MOE_EFORMAT,
			"gap in the data buffer at offset %llu (%llu unused bytes at the end)",
			(unsigned long long)at, (unsigned long long)(dsize - at));
	return 0;
}

/* Validates every entry and the tiling, then adds the tensors in header order. */
static int load_header(struct moe_ckpt *ck, int file, json_t *root,
	uint64_t hlen, int64_t fsize)
{
	uint64_t dsize = fsize < 0 ? UINT64_MAX : (uint64_t)fsize - 8 - hlen;
	size_t n = json_object_size(root), k = 0;
	struct span *sp;
	struct moe_tensor *ts;
	const char *name;
	json_t *e;
	int rc = 0;

	sp = calloc(n ? n : 1, sizeof *sp);
	ts = calloc(n ? n : 1, sizeof *ts);
	if (sp == NULL || ts == NULL) {
		rc = moe_error_set(&ck->err, MOE_ENOMEM, "out of memory");
		goto out;
	}
	json_object_foreach(root, name, e) {
		if (strcmp(name, "__metadata__") == 0) {
			if ((rc = load_meta(ck, e)) != 0)
				goto out;
			continue;
		}
		if ((rc = parse_entry(ck, name, e, &ts[k], &sp[k])) != 0)
			goto out;
		if (sp[k].end > dsize) {
			rc = moe_error_set(&ck->err, MOE_ETRUNC,
				"tensor '%s': data_offsets [%llu, %llu] lie outside the %llu-byte data buffer",
				name, (unsigned long long)sp[k].begin,
				(unsigned long long)sp[k].end, (unsigned long long)dsize);
			goto out;
		}
		ts[k].name = (char *)name;
		ts[k].file = (uint32_t)file;
		ts[k].offset = 8 + hlen + sp[k].begin;
		k++;
	}
	if ((rc = check_tiling(ck, sp, k, dsize)) != 0)
		goto out;
	for (size_t i = 0; i < k; i++)
		if ((rc = moe_ckpt_add_tensor(ck, &ts[i])) != 0)
			goto out;
out:
	free(sp);
	free(ts);
	return rc;
}

int moe_safetensors_load(struct moe_ckpt *ck, int file)
{
	struct moe_input *in = ck->files[file].in;
	int64_t fsize = moe_input_size(in);
	unsigned char lenbuf[8];
	uint64_t hlen = 0;
	const void *p;
	size_t got;
	json_error_t je;
	json_t *root;
	char *hdr;
	int rc;

	moe_ckpt_set_format(ck, MOE_FMT_SAFETENSORS);
	if ((rc = moe_input_read(in, lenbuf, 8)) != 0)
		return moe_error_set(&ck->err, rc, "truncated safetensors header length");
	for (int i = 7; i >= 0; i--)
		hlen = hlen << 8 | lenbuf[i];
	if (hlen > MAX_HEADER)
		return moe_error_set(&ck->err, MOE_ERANGE,
			"header length %llu is over the 100 MB limit",
			(unsigned long long)hlen);
	if (fsize >= 0 && hlen > (uint64_t)fsize - 8)
		return moe_error_set(&ck->err, MOE_ETRUNC,
			"header length %llu is larger than the file (%lld bytes)",
			(unsigned long long)hlen, (long long)fsize);
	if ((hdr = malloc(hlen ? hlen : 1)) == NULL)
		return moe_error_set(&ck->err, MOE_ENOMEM, "out of memory");
	/* Peeking first fetches just the rest of the header into the
	 * buffer, so no data bytes are read along with it. */
	rc = moe_input_peek(in, hlen < MOE_INPUT_PEEK_MAX ? hlen : MOE_INPUT_PEEK_MAX,
		&p, &got);
	if (rc == 0)
		rc = moe_input_read(in, hdr, hlen);
	if (rc != 0) {
		free(hdr);
		if (rc == MOE_ETRUNC)
			return moe_error_set(&ck->err, rc,
				"truncated header (%llu bytes announced)",
				(unsigned long long)hlen);
		return moe_error_set(&ck->err, rc, "%s", moe_input_errstr(in));
	}
	root = json_loadb(hdr, hlen, JSON_REJECT_DUPLICATES, &je);
	free(hdr);
	if (root == NULL)
		return moe_error_set(&ck->err, MOE_EFORMAT,
			"invalid header JSON at byte %d: %s", je.position, je.text);
	if (!json_is_object(root))
		rc = moe_error_set(&ck->err, MOE_EFORMAT, "header is not a JSON object");
	else
		rc = load_header(ck, file, root, hlen, fsize);
	json_decref(root);
	return rc;
}

/* ---- writer ---- */

struct moe_st_writer {
	struct moe_output *out;     /* not owned */
	struct moe_error err;
	json_t *meta;               /* __metadata__ object, NULL if none */
	json_t *hdr;                /* tensor entries in add order */
	uint64_t *nbytes;           /* (n) data bytes of each tensor */
	char **names;               /* (n) for messages */
	size_t n, cap;
	uint64_t total;             /* data bytes declared so far */
	int started;
	size_t cur;                 /* tensor receiving data */
	uint64_t cur_done;          /* bytes of it written */
	uint64_t hbytes;
};

int moe_st_writer_new(struct moe_st_writer **w, struct moe_output *out)
{
	struct moe_st_writer *s = calloc(1, sizeof *s);

	*w = NULL;
	if (s == NULL)
		return MOE_ENOMEM;
	if ((s->hdr = json_object()) == NULL) {
		free(s);
		return MOE_ENOMEM;
	}
	s->out = out;
	*w = s;
	return 0;
}

void moe_st_writer_free(struct moe_st_writer *w)
{
	if (w == NULL)
		return;
	for (size_t i = 0; i < w->n; i++)
		free(w->names[i]);
	free(w->names);
	free(w->nbytes);
	json_decref(w->meta);
	json_decref(w->hdr);
	free(w);
}

const char *moe_st_writer_errstr(const struct moe_st_writer *w)
{
	return moe_error_str(&w->err);
}

uint64_t moe_st_writer_header_bytes(const struct moe_st_writer *w)
{
	return w->hbytes;
}

int moe_st_writer_set_meta(struct moe_st_writer *w, const char *key, const char *value)
{
	json_t *v;

	if (w->err.code)
		return w->err.code;
	if (w->started)
		return moe_error_set(&w->err, MOE_EINVAL, "metadata after the header was written");
	if (w->meta == NULL && (w->meta = json_object()) == NULL)
		return moe_error_set(&w->err, MOE_ENOMEM, "out of memory");
	if ((v = json_string(value)) == NULL)
		return moe_error_set(&w->err, MOE_EINVAL,
			"metadata value of '%s' is not valid UTF-8", key);
	if (json_object_set_new(w->meta, key, v) != 0)
		return moe_error_set(&w->err, MOE_EINVAL,
			"metadata key '%s' is not valid UTF-8", key);
	return 0;
}


/* {"dtype":..,"shape":[..],"data_offsets":[begin,end]}, or NULL. The
 * jansson *_new calls take over their argument even when they fail. */
static json_t *tensor_entry(enum moe_dtype dt, int ndim, const uint64_t *shape,
	uint64_t begin, uint64_t end)
{
	json_t *e = json_object(), *sh = json_array(), *of = json_array();
	int bad = e == NULL;

	for (int i = 0; i < ndim; i++)
		bad |= json_array_append_new(sh, json_integer((json_int_t)shape[i]));
	bad |= json_array_append_new(of, json_integer((json_int_t)begin));
	bad |= json_array_append_new(of, json_integer((json_int_t)end));
	bad |= json_object_set_new(e, "dtype", json_string(dtype_to_st(dt)));
	bad |= json_object_set_new(e, "shape", sh);
	bad |= json_object_set_new(e, "data_offsets", of);
	if (bad) {
		json_decref(e);
		return NULL;
	}
	return e;
}

static int grow(struct moe_st_writer *w)
{
	size_t cap = w->cap ? 2 * w->cap : 64;
	uint64_t *nb = realloc(w->nbytes, cap * sizeof *nb);
	char **nm;

	if (nb == NULL)
		return MOE_ENOMEM;
	w->nbytes = nb;
	if ((nm = realloc(w->names, cap * sizeof *nm)) == NULL)
		return MOE_ENOMEM;
	w->names = nm;
	w->cap = cap;
	return 0;
}

int moe_st_writer_add_tensor(struct moe_st_writer *w, const char *name,
	enum moe_dtype dtype, int ndim, const uint64_t *shape)
{
	uint64_t numel, nbytes;
	json_t *e;

	if (w->err.code)
		return w->err.code;
	if (w->started)
		return moe_error_set(&w->err, MOE_EINVAL,
			"tensor '%s' added after the header was written", name);
	if (name[0] == '\0' || strcmp(name, "__metadata__") == 0)
		return moe_error_set(&w->err, MOE_EINVAL, "invalid tensor name '%s'", name);
	if (dtype_to_st(dtype) == NULL)
		return moe_error_set(&w->err, MOE_EUNSUP,
			"tensor '%s': dtype %s cannot be stored in safetensors",
			name, moe_dtype_name(dtype));
	if (ndim < 0 || ndim > MOE_MAX_DIMS)
		return moe_error_set(&w->err, MOE_EINVAL,
			"tensor '%s' has %d dimensions (at most %d)", name, ndim, MOE_MAX_DIMS);
	if (json_object_get(w->hdr, name) != NULL)
		return moe_error_set(&w->err, MOE_EINVAL, "duplicate tensor '%s'", name);
	if (moe_shape_numel(ndim, shape, &numel) != 0 ||
	    moe_dtype_nbytes(dtype, numel, &nbytes) != 0 ||
	    nbytes > (uint64_t)INT64_MAX - w->total)
		return moe_error_set(&w->err, MOE_ERANGE, "tensor '%s' is too large", name);
	for (int i = 0; i < ndim; i++)
		if (shape[i] > (uint64_t)INT64_MAX)
			return moe_error_set(&w->err, MOE_ERANGE,
				"tensor '%s' has a dimension too large", name);
	if (w->n == w->cap && grow(w) != 0)
		return moe_error_set(&w->err, MOE_ENOMEM, "out of memory");
	if ((w->names[w->n] = strdup(name)) == NULL)
		return moe_error_set(&w->err, MOE_ENOMEM, "out of memory");
	e = tensor_entry(dtype, ndim, shape, w->total, w->total + nbytes);
	if (e == NULL || json_object_set_new(w->hdr, name, e) != 0) {
		free(w->names[w->n]);
		return moe_error_set(&w->err, MOE_EINVAL,
			"tensor name '%s' is not valid UTF-8", name);
	}
	w->nbytes[w->n++] = nbytes;
	w->total += nbytes;
	return 0;
}

/* Compact JSON, __metadata__ first, then tensors in add order. */
static char *header_json(struct moe_st_writer *w)
{
	json_t *root = json_object();
	const char *k;
	json_t *v;
	char *s;
	int bad = root == NULL;

	if (w->meta)
		bad |= json_object_set(root, "__metadata__", w->meta);
	json_object_foreach(w->hdr, k, v)
		bad |= json_object_set(root, k, v);
	s = bad ? NULL : json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(root);
	return s;
}

static int out_err(struct moe_st_writer *w, int rc)
{
	return moe_error_set(&w->err, rc, "%s", moe_output_errstr(w->out));
}

/* Moves past tensors that are complete (and empty ones). */
static void skip_full(struct moe_st_writer *w)
{
	while (w->cur < w->n && w->cur_done == w->nbytes[w->cur]) {
		w->cur++;
		w->cur_done = 0;
	}
}

int moe_st_writer_begin_data(struct moe_st_writer *w)
{
	unsigned char len[8];
	char *s;
	size_t n, pad;
	int rc;

	if (w->err.code)
		return w->err.code;
	if (w->started)
		return moe_error_set(&w->err, MOE_EINVAL, "header written twice");
	w->started = 1;
	if ((s = header_json(w)) == NULL)
		return moe_error_set(&w->err, MOE_ENOMEM, "out of memory");
	n = strlen(s);
	pad = (8 - n % 8) % 8;
	if (n + pad > MAX_HEADER) {
		free(s);
		return moe_error_set(&w->err, MOE_ERANGE,
			"header of %zu bytes is over the 100 MB limit", n + pad);
	}
	for (int i = 0; i < 8; i++)
		len[i] = (unsigned char)((uint64_t)(n + pad) >> (8 * i));
	rc = moe_output_write(w->out, len, 8);
	if (rc == 0)
		rc = moe_output_write(w->out, s, n);
	free(s);
	if (rc == 0)
		rc = moe_output_write(w->out, "        ", pad);
	if (rc != 0)
		return out_err(w, rc);
	w->hbytes = 8 + n + pad;
	skip_full(w);
	return 0;
}

int moe_st_writer_write(struct moe_st_writer *w, const void *buf, size_t n)
{
	const unsigned char *p = buf;
	int rc;

	if (w->err.code)
		return w->err.code;
	if (!w->started)
		return moe_error_set(&w->err, MOE_EINVAL, "data before the header");
	while (n > 0) {
		uint64_t left;
		size_t k;

		if (w->cur == w->n)
			return moe_error_set(&w->err, MOE_EINVAL,
				"%zu bytes of data beyond the last tensor", n);
		left = w->nbytes[w->cur] - w->cur_done;
		k = left < n ? (size_t)left : n;
		if ((rc = moe_output_write(w->out, p, k)) != 0)
			return out_err(w, rc);
		w->cur_done += k;
		p += k;
		n -= k;
		skip_full(w);
	}
	return 0;
}

int moe_st_writer_finish(struct moe_st_writer *w)
{
	if (w->err.code)
		return w->err.code;
	if (!w->started)
		return moe_error_set(&w->err, MOE_EINVAL, "header was never written");
	if (w->cur < w->n)
		return moe_error_set(&w->err, MOE_EINVAL,
			"tensor '%s' is missing %llu bytes", w->names[w->cur],
			(unsigned long long)(w->nbytes[w->cur] - w->cur_done));
	return 0;
}
