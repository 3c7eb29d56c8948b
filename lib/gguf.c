/* GGUF v2/v3: the checkpoint backend that reads headers, and the streaming writer. */

/*
 * Byte layout (everything little-endian; v2 and v3 are identical, v3 only
 * allowed big-endian files, which we refuse; v1 had 32-bit counts):
 *
 *   "GGUF"                      4-byte magic
 *   u32 version                 2 or 3
 *   u64 n_tensors
 *   u64 n_kv
 *   n_kv x KV pair:
 *     string key                u64 length + bytes, no NUL terminator
 *     u32 value type            0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32,
 *                               7 bool (1 byte), 8 string, 9 array, 10 u64,
 *                               11 i64, 12 f64
 *     value                     scalars packed; string as above; array =
 *                               u32 element type, u64 count, elements (arrays
 *                               of arrays repeat this per element)
 *   n_tensors x tensor info:
 *     string name
 *     u32 n_dims                at most 4
 *     u64 ne[n_dims]            innermost (fastest-varying) dimension first
 *     u32 ggml type
 *     u64 offset                relative to the data section, aligned
 *   zero padding up to a multiple of general.alignment (u32, default 32)
 *   data section                each tensor padded to the alignment
 *
 * The reader consumes the header strictly forward (pipes work) and never
 * touches the data section. Offsets and alignment are relative to the
 * first byte of the file.
 */
#include "gguf.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_impl.h"

/* Caps for counts when the input size is unknown (and on top of the
 * size check when it is known). Real files stay far below them. */
#define MAX_TENSORS (1u << 24)
/* Real files have a few dozen keys; moe_meta finds keys by a linear scan,
 * so loading n keys costs n^2 / 2 comparisons: 8192 keys stay well under a
 * second, 65536 would take many. */
#define MAX_KV (1u << 13)
#define MAX_KEY_BYTES (1u << 16)
#define MAX_NAME_BYTES 4096
#define MAX_STR_BYTES (1u << 28)
#define MAX_ARR_ITEMS (1ull << 32)
#define MAX_ALIGNMENT (1u << 30)
/* Streams grow buffers in steps of this so a lying length costs at most
 * twice the bytes actually sent. */
#define CHUNK (1u << 16)
#define ITEMS_STEP 1024

/* Smallest encodings, for bounding counts by the bytes left. */
#define MIN_KV_BYTES 14      /* 8 key length + 1 key byte + 4 type + 1 value */
#define MIN_TINFO_BYTES 25   /* 8 + 1 name byte + 4 n_dims + 4 type + 8 offset */

static int host_is_le(void)
{
	const uint16_t one = 1;
	return *(const unsigned char *)&one == 1;
}

static uint64_t le_bytes(const unsigned char *p, int n)
{
	uint64_t v = 0;

	while (n-- > 0)
		v = v << 8 | p[n];
	return v;
}

/* Reverses each esz-byte element of p in place (little-endian data on a
 * big-endian host). */
static void swap_elems(unsigned char *p, uint64_t n, size_t esz)
{
	for (uint64_t i = 0; esz > 1 && i < n; i++, p += esz)
		for (size_t a = 0, b = esz - 1; a < b; a++, b--) {
			unsigned char t = p[a];
			p[a] = p[b];
			p[b] = t;
		}
}

/* A name from the file made safe for a one-line message. */
static void shown(char *dst, size_t cap, const char *s, size_t len)
{
	size_t o = 0, i;

	for (i = 0; i < len && o + 4 < cap && i < 120; i++)
		dst[o++] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	if (i < len)
		for (int k = 0; k < 3 && o + 1 < cap; k++)
			dst[o++] = '.';
	dst[o] = '\0';
}

/* ---- reader ---- */

struct tinfo {
	char *name;
	enum moe_dtype dtype;
	int ndim;
	uint64_t ne[MOE_GGUF_MAX_DIMS];  /* innermost first, as stored */
	uint64_t off;                    /* relative to the data section */
	uint64_t nbytes;
};

struct rd {
	struct moe_ckpt *ck;
	struct moe_input *in;
	int64_t size;          /* -1 when unknown */
	uint64_t base;         /* input offset of the "GGUF" magic */
	uint64_t alignment;
	char what[200];        /* the part being read, for messages */
	struct tinfo *t;
	size_t nt, capt;
};

static uint64_t left(const struct rd *r)
{
	uint64_t pos = moe_input_tell(r->in);

	if (r->size < 0)
		return UINT64_MAX;
	return pos < (uint64_t)r->size ? (uint64_t)r->size - pos : 0;
}

static int fail(struct rd *r, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct rd *r, int code, const char *fmt, ...)
{
	char msg[sizeof r->ck->err.msg];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return moe_error_set(&r->ck->err, code, "%s", msg);
}

static int read_failed(struct rd *r, int rc)
{
	if (rc == MOE_ETRUNC)
		return fail(r, rc, "truncated %s", r->what);
	if (rc == MOE_ENOMEM)
		return fail(r, rc, "out of memory reading %s", r->what);
	return fail(r, rc, "%s: %s", r->what, moe_input_errstr(r->in));
}

static int get(struct rd *r, void *buf, size_t n)
{
	int rc = moe_input_read(r->in, buf, n);
	return rc ? read_failed(r, rc) : 0;
}

static int get_u32(struct rd *r, uint32_t *v)
{
	unsigned char b[4];
	int rc = get(r, b, 4);

	if (rc == 0)
		*v = (uint32_t)le_bytes(b, 4);
	return rc;
}

static int get_u64(struct rd *r, uint64_t *v)
{
	unsigned char b[8];
	int rc = get(r, b, 8);

	if (rc == 0)
		*v = le_bytes(b, 8);
	return rc;
}

/* Reads n bytes into a new buffer with `extra` spare bytes at the end.
 * When the size is known, n has been checked against it; on a stream the
 * buffer grows as bytes arrive. */
static int get_blob(struct rd *r, uint64_t n, size_t extra, unsigned char **out)
{
	uint64_t cap = r->size >= 0 || n <= CHUNK ? n : CHUNK, got = 0;
	unsigned char *buf = malloc((size_t)cap + extra), *nb;
	int rc;

	*out = NULL;
	if (buf == NULL)
		return read_failed(r, MOE_ENOMEM);
	while (got < n) {
		if (got == cap) {
			cap = cap > n / 2 ? n : cap * 2;
			if ((nb = realloc(buf, (size_t)cap + extra)) == NULL) {
				free(buf);
				return read_failed(r, MOE_ENOMEM);
			}
			buf = nb;
		}
		if ((rc = get(r, buf + got, (size_t)(cap - got))) != 0) {
			free(buf);
			return rc;
		}
		got = cap;
	}
	*out = buf;
	return 0;
}

/* A GGUF string of at most cap bytes, NUL-terminated in memory. */
static int get_str(struct rd *r, struct moe_str *s, uint64_t cap)
{
	uint64_t len;
	unsigned char *p;
	int rc;

	s->s = NULL;
	s->len = 0;
	if ((rc = get_u64(r, &len)) != 0)
		return rc;
	if (len > cap)
		return fail(r, MOE_ERANGE, "%s: string of %llu bytes (at most %llu)",
			r->what, (unsigned long long)len, (unsigned long long)cap);
	if (len > left(r))
		return read_failed(r, MOE_ETRUNC);
	if ((rc = get_blob(r, len, 1, &p)) != 0)
		return rc;
	p[len] = '\0';
	s->s = (char *)p;
	s->len = len;
	return 0;
}

static int get_value(struct rd *r, enum moe_vtype t, struct moe_value *v, int depth);

static size_t elem_mem(enum moe_vtype t)
{
	return t == MOE_V_STR ? sizeof(struct moe_str) :
	       t == MOE_V_ARR ? sizeof(struct moe_value) : moe_vtype_size(t);
}

/* Strings and nested arrays, one element at a time; v->v.arr.n counts the
 * elements filled so far so that a failure frees exactly those. */
static int get_items(struct rd *r, struct moe_value *v, uint64_t n, int depth)
{
	enum moe_vtype et = v->v.arr.type;
	size_t esz = elem_mem(et);
	uint64_t cap = r->size >= 0 || n <= ITEMS_STEP ? n : ITEMS_STEP;
	int rc;

	if (n == 0)
		return 0;
	if ((v->v.arr.data = calloc((size_t)cap, esz)) == NULL)
		return read_failed(r, MOE_ENOMEM);
	for (uint64_t i = 0; i < n; i++) {
		if (i == cap) {
			uint64_t nc = cap > n / 2 ? n : cap * 2;
			void *nd = realloc(v->v.arr.data, (size_t)nc * esz);
			if (nd == NULL)
				return read_failed(r, MOE_ENOMEM);
			memset((char *)nd + cap * esz, 0, (size_t)(nc - cap) * esz);
			v->v.arr.data = nd;
			cap = nc;
		}
		if (et == MOE_V_STR)
			rc = get_str(r, (struct moe_str *)v->v.arr.data + i, MAX_STR_BYTES);
		else
			rc = get_value(r, MOE_V_ARR, (struct moe_value *)v->v.arr.data + i,
				depth + 1);
		if (rc != 0) {
			/* a failed nested element may own partial contents */
			v->v.arr.n = i + (et == MOE_V_ARR);
			return rc;
		}
		v->v.arr.n = i + 1;
	}
	return 0;
}

static int get_array(struct rd *r, struct moe_value *v, int depth)
{
	uint32_t et;
	uint64_t n, min;
	int rc;

	v->type = MOE_V_ARR;
	if ((rc = get_u32(r, &et)) != 0 || (rc = get_u64(r, &n)) != 0)
		return rc;
	if (et >= MOE_V_COUNT)
		return fail(r, MOE_EFORMAT, "%s: array of unknown value type %u",
			r->what, et);
	if (et == MOE_V_ARR && depth + 1 >= MOE_GGUF_MAX_DEPTH)
		return fail(r, MOE_EFORMAT, "%s: arrays nested more than %d deep",
			r->what, MOE_GGUF_MAX_DEPTH);
	if (n > MAX_ARR_ITEMS)
		return fail(r, MOE_ERANGE, "%s: array of %llu items (at most %llu)",
			r->what, (unsigned long long)n, (unsigned long long)MAX_ARR_ITEMS);
	min = et == MOE_V_STR ? 8 : et == MOE_V_ARR ? 12 : moe_vtype_size(et);
	if (n > left(r) / min)
		return fail(r, MOE_ETRUNC, "truncated %s (array of %llu items)",
			r->what, (unsigned long long)n);
	v->v.arr.type = (enum moe_vtype)et;
	if (et == MOE_V_STR || et == MOE_V_ARR)
		return get_items(r, v, n, depth);
	if (n > 0) {
		unsigned char *p;
		if ((rc = get_blob(r, n * min, 0, &p)) != 0)
			return rc;
		if (!host_is_le())
			swap_elems(p, n, (size_t)min);
		if (et == MOE_V_BOOL)
			for (uint64_t i = 0; i < n; i++)
				p[i] = p[i] != 0;
		v->v.arr.data = p;
		v->v.arr.n = n;
	}
	return 0;
}

static int get_value(struct rd *r, enum moe_vtype t, struct moe_value *v, int depth)
{
	unsigned char b[8];
	uint64_t x;
	size_t sz = moe_vtype_size(t);
	int rc;

	memset(v, 0, sizeof *v);
	if (t == MOE_V_ARR)
		return get_array(r, v, depth);
	v->type = t;
	if (t == MOE_V_STR)
		return get_str(r, &v->v.str, MAX_STR_BYTES);
	if ((rc = get(r, b, sz)) != 0)
		return rc;
	x = le_bytes(b, (int)sz);
	switch (t) {
	case MOE_V_I8: v->v.i = (int8_t)x; break;
	case MOE_V_I16: v->v.i = (int16_t)x; break;
	case MOE_V_I32: v->v.i = (int32_t)x; break;
	case MOE_V_I64: v->v.i = (int64_t)x; break;
	case MOE_V_BOOL: v->v.u = x != 0; break;
	case MOE_V_F32: {
		uint32_t u = (uint32_t)x;
		float f;
		memcpy(&f, &u, 4);
		v->v.f = f;
		break;
	}
	case MOE_V_F64: memcpy(&v->v.f, &x, 8); break;
	default: v->v.u = x; break;
	}
	return 0;
}

static int check_alignment(struct rd *r, const struct moe_value *v)
{
	if (v->type != MOE_V_U32 && v->type != MOE_V_U64 &&
	    v->type != MOE_V_U16 && v->type != MOE_V_U8)
		return fail(r, MOE_EFORMAT, "%s is a %s, not an unsigned integer",
			MOE_GGUF_ALIGNMENT_KEY, moe_vtype_name(v->type));
	if (v->v.u == 0 || (v->v.u & (v->v.u - 1)) != 0 || v->v.u > MAX_ALIGNMENT)
		return fail(r, MOE_EFORMAT, "%s is %llu, not a power of two up to %u",
			MOE_GGUF_ALIGNMENT_KEY, (unsigned long long)v->v.u, MAX_ALIGNMENT);
	r->alignment = v->v.u;
	return 0;
}

/* Metadata keys are C strings in moe_meta: empty or NUL-containing keys
 * could not be written back unchanged, so they are refused. */
static int read_kv(struct rd *r, uint64_t i, size_t first)
{
	struct moe_meta *m = r->ck->meta;
	struct moe_str key;
	struct moe_value v;
	char nm[140];
	uint32_t type;
	int rc;

	snprintf(r->what, sizeof r->what, "metadata key #%llu", (unsigned long long)i + 1);
	if ((rc = get_str(r, &key, MAX_KEY_BYTES)) != 0)
		return rc;
	shown(nm, sizeof nm, key.s, key.len);
	if (key.len == 0 || memchr(key.s, '\0', key.len) != NULL) {
		free(key.s);
		return fail(r, MOE_EFORMAT, "metadata key #%llu is empty or contains a NUL byte",
			(unsigned long long)i + 1);
	}
	snprintf(r->what, sizeof r->what, "metadata key '%s'", nm);
	for (size_t j = first; j < moe_meta_count(m); j++)
		if (strcmp(moe_meta_key(m, j), key.s) == 0) {
			free(key.s);
			return fail(r, MOE_EFORMAT, "duplicate metadata key '%s'", nm);
		}
	if ((rc = get_u32(r, &type)) != 0)
		goto out;
	if (type >= MOE_V_COUNT) {
		rc = fail(r, MOE_EFORMAT, "metadata key '%s' has unknown value type %u",
			nm, type);
		goto out;
	}
	rc = get_value(r, (enum moe_vtype)type, &v, 0);
	if (rc == 0 && strcmp(key.s, MOE_GGUF_ALIGNMENT_KEY) == 0)
		rc = check_alignment(r, &v);
	if (rc == 0 && (rc = moe_meta_set(m, key.s, &v)) != 0)
		rc = read_failed(r, rc);
	if (rc != 0)
		moe_value_release(&v);
out:
	free(key.s);
	return rc;
}

static int read_tinfo(struct rd *r, uint64_t i)
{
	struct tinfo *ti;
	struct moe_str name;
	char nm[140];
	uint32_t nd, type;
	uint64_t numel, ne0;
	uint32_t bs;
	int rc;

	if (r->nt == r->capt) {
		size_t cap = r->capt ? 2 * r->capt : 64;
		if ((ti = realloc(r->t, cap * sizeof *ti)) == NULL)
			return read_failed(r, MOE_ENOMEM);
		r->t = ti;
		r->capt = cap;
	}
	snprintf(r->what, sizeof r->what, "tensor info #%llu", (unsigned long long)i + 1);
	if ((rc = get_str(r, &name, MAX_NAME_BYTES)) != 0)
		return rc;
	ti = &r->t[r->nt++];
	memset(ti, 0, sizeof *ti);
	ti->name = name.s;
	shown(nm, sizeof nm, name.s, name.len);
	if (name.len == 0 || memchr(name.s, '\0', name.len) != NULL)
		return fail(r, MOE_EFORMAT, "tensor #%llu has an empty name or one with a NUL byte",
			(unsigned long long)i + 1);
	snprintf(r->what, sizeof r->what, "tensor info for '%s'", nm);
	if ((rc = get_u32(r, &nd)) != 0)
		return rc;
	if (nd > MOE_GGUF_MAX_DIMS)
		return fail(r, MOE_EFORMAT, "tensor '%s' has %u dimensions (GGUF allows %d)",
			nm, nd, MOE_GGUF_MAX_DIMS);
	ti->ndim = (int)nd;
	for (uint32_t d = 0; d < nd; d++) {
		if ((rc = get_u64(r, &ti->ne[d])) != 0)
			return rc;
		if (ti->ne[d] > INT64_MAX)
			return fail(r, MOE_ERANGE, "tensor '%s' has dimension %llu",
				nm, (unsigned long long)ti->ne[d]);
	}
	if ((rc = get_u32(r, &type)) != 0 || (rc = get_u64(r, &ti->off)) != 0)
		return rc;
	if ((ti->dtype = moe_dtype_from_ggml(type)) == MOE_DT_INVALID)
		return fail(r, MOE_EFORMAT, "tensor '%s' has unknown ggml type %u", nm, type);
	bs = moe_dtype_block_size(ti->dtype);
	ne0 = nd ? ti->ne[0] : 1;
	if (ne0 % bs != 0)
		return fail(r, MOE_EFORMAT,
			"tensor '%s': row length %llu is not a multiple of %s's block of %u",
			nm, (unsigned long long)ne0, moe_dtype_name(ti->dtype), bs);
	if (moe_shape_numel(ti->ndim, ti->ne, &numel) != 0 || numel > INT64_MAX ||
	    moe_dtype_nbytes(ti->dtype, numel, &ti->nbytes) != 0 || ti->nbytes > INT64_MAX)
		return fail(r, MOE_ERANGE, "tensor '%s' is too large", nm);
	return 0;
}

static int cmp_off(const void *a, const void *b)
{
	const struct tinfo *x = *(struct tinfo *const *)a, *y = *(struct tinfo *const *)b;

	return x->off < y->off ? -1 : x->off > y->off;
}

/* Offsets: aligned, inside the file when its size is known, no overlap. */
static int check_spans(struct rd *r, uint64_t data)
{
	struct tinfo **by = malloc((r->nt ? r->nt : 1) * sizeof *by);
	char a[140], b[140];
	size_t n = 0;
	int rc = 0;

	if (by == NULL)
		return read_failed(r, MOE_ENOMEM);
	for (size_t i = 0; i < r->nt && rc == 0; i++) {
		struct tinfo *t = &r->t[i];
		shown(a, sizeof a, t->name, strlen(t->name));
		if (t->off % r->alignment != 0)
			rc = fail(r, MOE_EFORMAT,
				"tensor '%s' has offset %llu, not a multiple of the alignment %llu",
				a, (unsigned long long)t->off, (unsigned long long)r->alignment);
		else if (t->off > UINT64_MAX - data - t->nbytes || data + t->off > INT64_MAX)
			rc = fail(r, MOE_ERANGE, "tensor '%s' has offset %llu", a,
				(unsigned long long)t->off);
		else if (r->size >= 0 && data + t->off + t->nbytes > (uint64_t)r->size)
			rc = fail(r, MOE_ETRUNC,
				"truncated tensor '%s' (its data ends at byte %llu, the file has %lld)",
				a, (unsigned long long)(data + t->off + t->nbytes),
				(long long)r->size);
		else if (t->nbytes > 0)
			by[n++] = t;
	}
	if (rc == 0 && n > 1) {
		qsort(by, n, sizeof *by, cmp_off);
		for (size_t i = 1; i < n && rc == 0; i++)
			if (by[i - 1]->off + by[i - 1]->nbytes > by[i]->off) {
				shown(a, sizeof a, by[i - 1]->name, strlen(by[i - 1]->name));
				shown(b, sizeof b, by[i]->name, strlen(by[i]->name));
				rc = fail(r, MOE_EFORMAT, "tensors '%s' and '%s' overlap", a, b);
			}
	}
	free(by);
	return rc;
}

static int add_tensors(struct rd *r, int file, uint64_t data)
{
	for (size_t i = 0; i < r->nt; i++) {
		const struct tinfo *ti = &r->t[i];
		struct moe_tensor t = {
			.name = ti->name, .dtype = ti->dtype, .ndim = ti->ndim,
			.nbytes = ti->nbytes, .file = (uint32_t)file,
			.offset = data + ti->off,
		};
		int rc;

		for (int d = 0; d < ti->ndim; d++)
			t.shape[d] = ti->ne[ti->ndim - 1 - d];
		if ((rc = moe_ckpt_add_tensor(r->ck, &t)) != 0)
			return rc;
	}
	return 0;
}

static int read_header(struct rd *r, uint64_t *nt, uint64_t *nkv)
{
	unsigned char h[24];
	uint32_t ver;
	int rc;

	snprintf(r->what, sizeof r->what, "GGUF header");
	if ((rc = get(r, h, 4)) != 0)
		return rc;
	if (memcmp(h, MOE_GGUF_MAGIC, 4) != 0)
		return fail(r, MOE_EFORMAT, "not a GGUF file (bad magic)");
	if ((rc = get(r, h + 4, 4)) != 0)
		return rc;
	ver = (uint32_t)le_bytes(h + 4, 4);
	/* ggml's own test: a small version read with swapped bytes */
	if (ver != 0 && (ver & 0xffff) == 0)
		return fail(r, MOE_EUNSUP, "big-endian GGUF is not supported");
	if (ver != 2 && ver != 3)
		return fail(r, MOE_EUNSUP,
			"GGUF version %u is not supported (this reads 2 and 3)", ver);
	if ((rc = get(r, h + 8, 16)) != 0)
		return rc;
	*nt = le_bytes(h + 8, 8);
	*nkv = le_bytes(h + 16, 8);
	if (*nt > MAX_TENSORS)
		return fail(r, MOE_ERANGE, "header says %llu tensors (at most %u)",
			(unsigned long long)*nt, MAX_TENSORS);
	if (*nkv > MAX_KV)
		return fail(r, MOE_ERANGE, "header says %llu metadata keys (at most %u)",
			(unsigned long long)*nkv, MAX_KV);
	if (*nt * MIN_TINFO_BYTES + *nkv * MIN_KV_BYTES > left(r))
		return fail(r, MOE_ETRUNC,
			"header says %llu tensors and %llu metadata keys, more than the "
			"remaining %llu bytes can hold", (unsigned long long)*nt,
			(unsigned long long)*nkv, (unsigned long long)left(r));
	return 0;
}

int moe_gguf_load(struct moe_ckpt *ck, int file)
{
	struct rd r = { .ck = ck, .in = ck->files[file].in,
		.alignment = MOE_GGUF_DEFAULT_ALIGNMENT };
	size_t first = moe_meta_count(ck->meta);
	uint64_t nt = 0, nkv = 0, pos, data;
	int rc;

	r.size = moe_input_size(r.in);
	r.base = moe_input_tell(r.in);
	if ((rc = read_header(&r, &nt, &nkv)) != 0)
		goto out;
	for (uint64_t i = 0; i < nkv; i++)
		if ((rc = read_kv(&r, i, first)) != 0)
			goto out;
	for (uint64_t i = 0; i < nt; i++)
		if ((rc = read_tinfo(&r, i)) != 0)
			goto out;
	pos = moe_input_tell(r.in) - r.base;
	data = r.base + (pos + r.alignment - 1) / r.alignment * r.alignment;
	if ((rc = check_spans(&r, data)) != 0 ||
	    (rc = add_tensors(&r, file, data)) != 0)
		goto out;
	moe_ckpt_set_format(ck, MOE_FMT_GGUF);
out:
	for (size_t i = 0; i < r.nt; i++)
		free(r.t[i].name);
	free(r.t);
	return rc;
}

/* ---- writer ---- */

struct wtensor {
	char *name;
	uint32_t ggml;
	int ndim;
	uint64_t ne[MOE_GGUF_MAX_DIMS];  /* innermost first */
	uint64_t nbytes;
	uint64_t off;                    /* relative to the data section */
};

enum wstate { W_SETUP, W_DATA, W_DONE, W_FAILED };

struct moe_gguf_writer {
	struct moe_error err;
	struct moe_output *out;
	struct moe_meta *meta;
	uint64_t alignment;
	struct wtensor *t;
	size_t nt, capt;
	uint32_t *slot;          /* name hash: tensor index + 1, 0 = empty */
	size_t nslot;
	uint64_t data_size;      /* padded bytes of all tensors so far */
	uint64_t start;          /* output offset of the magic */
	size_t cur;              /* tensor receiving data */
	uint64_t cur_done;       /* bytes of it written */
	enum wstate state;
};

static uint64_t pad_to(uint64_t n, uint64_t a)
{
	return (n + a - 1) / a * a;
}

int moe_gguf_writer_new(struct moe_gguf_writer **w, struct moe_output *out)
{
	*w = calloc(1, sizeof **w);
	if (*w == NULL)
		return MOE_ENOMEM;
	if (moe_meta_new(&(*w)->meta) != 0) {
		free(*w);
		*w = NULL;
		return MOE_ENOMEM;
	}
	(*w)->out = out;
	(*w)->alignment = MOE_GGUF_DEFAULT_ALIGNMENT;
	return 0;
}

void moe_gguf_writer_free(struct moe_gguf_writer *w)
{
	if (w == NULL)
		return;
	for (size_t i = 0; i < w->nt; i++)
		free(w->t[i].name);
	free(w->t);
	free(w->slot);
	moe_meta_free(w->meta);
	free(w);
}

const char *moe_gguf_writer_errstr(const struct moe_gguf_writer *w)
{
	return moe_error_str(&w->err);
}

static int wfail(struct moe_gguf_writer *w, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int wfail(struct moe_gguf_writer *w, int code, const char *fmt, ...)
{
	char msg[sizeof w->err.msg];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return moe_error_set(&w->err, code, "%s", msg);
}

/* Calls in the wrong order are the caller's bug; a failed write ends the file. */
static int need_state(struct moe_gguf_writer *w, enum wstate s, const char *fn)
{
	if (w->state == W_FAILED)
		return w->err.code;
	if (w->state != s)
		return wfail(w, MOE_EINVAL, "%s called at the wrong time", fn);
	return 0;
}

static int put(struct moe_gguf_writer *w, const void *p, size_t n)
{
	int rc = moe_output_write(w->out, p, n);

	if (rc != 0) {
		w->state = W_FAILED;
		return wfail(w, rc, "%s", moe_output_errstr(w->out));
	}
	return 0;
}

static int put_le(struct moe_gguf_writer *w, uint64_t v, int n)
{
	unsigned char b[8];

	for (int i = 0; i < n; i++, v >>= 8)
		b[i] = (unsigned char)v;
	return put(w, b, (size_t)n);
}

static int put_str(struct moe_gguf_writer *w, const char *s, uint64_t len)
{
	int rc = put_le(w, len, 8);
	return rc ? rc : put(w, s, (size_t)len);
}

static int zeros(struct moe_gguf_writer *w, uint64_t n)
{
	int rc = moe_output_zeros(w->out, n);

	if (rc != 0) {
		w->state = W_FAILED;
		return wfail(w, rc, "%s", moe_output_errstr(w->out));
	}
	return 0;
}

static int put_value(struct moe_gguf_writer *w, const struct moe_value *v);

/* Packed numeric elements, made little-endian in small pieces. */
static int put_packed(struct moe_gguf_writer *w, const struct moe_value *v)
{
	size_t esz = moe_vtype_size(v->v.arr.type);
	const unsigned char *p = v->v.arr.data;
	uint64_t total = v->v.arr.n * esz;
	unsigned char buf[4096];
	int rc = 0;

	if (host_is_le())
		return total ? put(w, p, (size_t)total) : 0;
	for (uint64_t done = 0; done < total && rc == 0; ) {
		size_t k = total - done < sizeof buf ? (size_t)(total - done) : sizeof buf;
		memcpy(buf, p + done, k);
		swap_elems(buf, k / esz, esz);
		rc = put(w, buf, k);
		done += k;
	}
	return rc;
}

static int put_array(struct moe_gguf_writer *w, const struct moe_value *v)
{
	enum moe_vtype et = v->v.arr.type;
	int rc;

	if ((rc = put_le(w, et, 4)) != 0 || (rc = put_le(w, v->v.arr.n, 8)) != 0)
		return rc;
	if (et == MOE_V_STR) {
		const struct moe_str *s = v->v.arr.data;
		for (uint64_t i = 0; i < v->v.arr.n && rc == 0; i++)
			rc = put_str(w, s[i].s, s[i].len);
		return rc;
	}
	if (et == MOE_V_ARR) {
		const struct moe_value *a = v->v.arr.data;
		for (uint64_t i = 0; i < v->v.arr.n && rc == 0; i++)
			rc = put_value(w, &a[i]);
		return rc;
	}
	return put_packed(w, v);
}

static int put_value(struct moe_gguf_writer *w, const struct moe_value *v)
{
	union { float f; uint32_t u; } f32;
	union { double f; uint64_t u; } f64;
	size_t sz = moe_vtype_size(v->type);

	switch (v->type) {
	case MOE_V_STR:
		return put_str(w, v->v.str.s, v->v.str.len);
	case MOE_V_ARR:
		return put_array(w, v);
	case MOE_V_F32:
		f32.f = (float)v->v.f;
		return put_le(w, f32.u, 4);
	case MOE_V_F64:
		f64.f = v->v.f;
		return put_le(w, f64.u, 8);
	case MOE_V_I8: case MOE_V_I16: case MOE_V_I32: case MOE_V_I64:
		return put_le(w, (uint64_t)v->v.i, (int)sz);
	case MOE_V_BOOL:
		return put_le(w, v->v.u != 0, 1);
	case MOE_V_U8: case MOE_V_U16: case MOE_V_U32: case MOE_V_U64:
		return put_le(w, v->v.u, (int)sz);
	default:
		return wfail(w, MOE_EINVAL, "invalid value type %d", (int)v->type);
	}
}

/* What the reader would refuse: unknown types, arrays of arrays that hold
 * something else, nesting deeper than MOE_GGUF_MAX_DEPTH. NULL if fine. */
static const char *bad_value(const struct moe_value *v, int depth)
{
	const struct moe_value *a = v->v.arr.data;

	if ((unsigned)v->type >= MOE_V_COUNT)
		return "invalid value type";
	if (v->type != MOE_V_ARR)
		return NULL;
	if ((unsigned)v->v.arr.type >= MOE_V_COUNT)
		return "array of an invalid value type";
	if (v->v.arr.type != MOE_V_ARR)
		return NULL;
	if (depth + 1 >= MOE_GGUF_MAX_DEPTH)
		return "arrays nested too deep";
	for (uint64_t i = 0; i < v->v.arr.n; i++) {
		const char *why = a[i].type != MOE_V_ARR ? "array of arrays holds a non-array"
			: bad_value(&a[i], depth + 1);
		if (why)
			return why;
	}
	return NULL;
}

int moe_gguf_writer_set_meta(struct moe_gguf_writer *w, const struct moe_meta *m)
{
	struct moe_meta *copy;
	const struct moe_value *al = moe_meta_find(m, MOE_GGUF_ALIGNMENT_KEY);
	int rc;

	if ((rc = need_state(w, W_SETUP, "moe_gguf_writer_set_meta")) != 0)
		return rc;
	if (w->nt > 0)
		return wfail(w, MOE_EINVAL, "metadata must be set before tensors are added");
	if (al && (al->type != MOE_V_U32 || al->v.u == 0 || (al->v.u & (al->v.u - 1)) ||
	    al->v.u > MAX_ALIGNMENT))
		return wfail(w, MOE_EINVAL, "%s must be a u32 power of two up to %u",
			MOE_GGUF_ALIGNMENT_KEY, MAX_ALIGNMENT);
	for (size_t i = 0; i < moe_meta_count(m); i++) {
		const char *why = bad_value(moe_meta_at(m, i), 0);
		if (why)
			return wfail(w, MOE_EINVAL, "metadata key '%.100s': %s",
				moe_meta_key(m, i), why);
	}
	if (moe_meta_new(&copy) != 0)
		return wfail(w, MOE_ENOMEM, "out of memory");
	for (size_t i = 0; i < moe_meta_count(m); i++) {
		struct moe_value v;
		if (moe_value_copy(&v, moe_meta_at(m, i)) != 0) {
			moe_meta_free(copy);
			return wfail(w, MOE_ENOMEM, "out of memory");
		}
		if (moe_meta_set(copy, moe_meta_key(m, i), &v) != 0) {
			moe_value_release(&v);
			moe_meta_free(copy);
			return wfail(w, MOE_ENOMEM, "out of memory");
		}
	}
	moe_meta_free(w->meta);
	w->meta = copy;
	w->alignment = al ? al->v.u : MOE_GGUF_DEFAULT_ALIGNMENT;
	return 0;
}

static uint64_t hash_name(const char *s)
{
	uint64_t h = 1469598103934665603ull;  /* FNV-1a */

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

/* Slot for name: the one holding it, or the empty one where it goes. */
static size_t name_slot(const struct moe_gguf_writer *w, const char *name)
{
	size_t h = hash_name(name) & (w->nslot - 1);

	while (w->slot[h] && strcmp(w->t[w->slot[h] - 1].name, name) != 0)
		h = (h + 1) & (w->nslot - 1);
	return h;
}

static int grow_tables(struct moe_gguf_writer *w)
{
	if (w->nt == w->capt) {
		size_t cap = w->capt ? 2 * w->capt : 64;
		struct wtensor *t = realloc(w->t, cap * sizeof *t);
		if (t == NULL)
			return MOE_ENOMEM;
		w->t = t;
		w->capt = cap;
	}
	if ((w->nt + 1) * 2 > w->nslot) {
		size_t ns = w->nslot ? 2 * w->nslot : 128;
		uint32_t *old = w->slot;
		if ((w->slot = calloc(ns, sizeof *w->slot)) == NULL) {
			w->slot = old;
			return MOE_ENOMEM;
		}
		w->nslot = ns;
		for (size_t i = 0; i < w->nt; i++)
			w->slot[name_slot(w, w->t[i].name)] = (uint32_t)i + 1;
		free(old);
	}
	return 0;
}

int moe_gguf_writer_add_tensor(struct moe_gguf_writer *w, const char *name,
	enum moe_dtype t, int ndim, const uint64_t *shape)
{
	struct wtensor *wt;
	int ggml = moe_dtype_to_ggml(t), rc;
	uint64_t numel, nbytes;
	uint32_t bs = moe_dtype_block_size(t);
	size_t len = strlen(name), slot;

	if ((rc = need_state(w, W_SETUP, "moe_gguf_writer_add_tensor")) != 0)
		return rc;
	if (len == 0 || len > MOE_GGUF_MAX_NAME)
		return wfail(w, MOE_EINVAL, "tensor name '%.80s' is empty or longer than %d bytes",
			name, MOE_GGUF_MAX_NAME);
	if (ggml < 0)
		return wfail(w, MOE_EUNSUP, "tensor '%s': GGUF has no type %s",
			name, moe_dtype_name(t));
	if (ndim < 0 || ndim > MOE_GGUF_MAX_DIMS)
		return wfail(w, MOE_EINVAL, "tensor '%s' has %d dimensions (GGUF allows %d)",
			name, ndim, MOE_GGUF_MAX_DIMS);
	if ((ndim ? shape[ndim - 1] : 1) % bs != 0)
		return wfail(w, MOE_EINVAL,
			"tensor '%s': row length is not a multiple of %s's block of %u",
			name, moe_dtype_name(t), bs);
	if (moe_shape_numel(ndim, shape, &numel) != 0 || numel > INT64_MAX ||
	    moe_dtype_nbytes(t, numel, &nbytes) != 0 || nbytes > INT64_MAX - w->alignment ||
	    w->data_size > INT64_MAX - pad_to(nbytes, w->alignment))
		return wfail(w, MOE_ERANGE, "tensor '%s' is too large", name);
	if (w->nt >= MAX_TENSORS)
		return wfail(w, MOE_ERANGE, "more than %u tensors", MAX_TENSORS);
	if (grow_tables(w) != 0)
		return wfail(w, MOE_ENOMEM, "out of memory");
	slot = name_slot(w, name);
	if (w->slot[slot])
		return wfail(w, MOE_EINVAL, "duplicate tensor '%s'", name);
	wt = &w->t[w->nt];
	memset(wt, 0, sizeof *wt);
	if ((wt->name = strdup(name)) == NULL)
		return wfail(w, MOE_ENOMEM, "out of memory");
	wt->ggml = (uint32_t)ggml;
	wt->ndim = ndim;
	for (int d = 0; d < ndim; d++)
		wt->ne[d] = shape[ndim - 1 - d];
	wt->nbytes = nbytes;
	wt->off = w->data_size;
	w->data_size += pad_to(nbytes, w->alignment);
	w->slot[slot] = (uint32_t)w->nt + 1;
	w->nt++;
	return 0;
}

int moe_gguf_writer_begin_data(struct moe_gguf_writer *w)
{
	int rc;

	if ((rc = need_state(w, W_SETUP, "moe_gguf_writer_begin_data")) != 0)
		return rc;
	w->start = moe_output_tell(w->out);
	if ((rc = put(w, MOE_GGUF_MAGIC, 4)) != 0 ||
	    (rc = put_le(w, MOE_GGUF_VERSION, 4)) != 0 ||
	    (rc = put_le(w, w->nt, 8)) != 0 ||
	    (rc = put_le(w, moe_meta_count(w->meta), 8)) != 0)
		return rc;
	for (size_t i = 0; i < moe_meta_count(w->meta); i++) {
		const char *key = moe_meta_key(w->meta, i);
		const struct moe_value *v = moe_meta_at(w->meta, i);
		if ((rc = put_str(w, key, strlen(key))) != 0 ||
		    (rc = put_le(w, v->type, 4)) != 0 ||
		    (rc = put_value(w, v)) != 0)
			return rc;
	}
	for (size_t i = 0; i < w->nt; i++) {
		const struct wtensor *t = &w->t[i];
		if ((rc = put_str(w, t->name, strlen(t->name))) != 0 ||
		    (rc = put_le(w, (uint64_t)t->ndim, 4)) != 0)
			return rc;
		for (int d = 0; d < t->ndim; d++)
			if ((rc = put_le(w, t->ne[d], 8)) != 0)
				return rc;
		if ((rc = put_le(w, t->ggml, 4)) != 0 || (rc = put_le(w, t->off, 8)) != 0)
			return rc;
	}
	/* A file without tensors ends here unpadded, as gguf-py writes
	 * vocabulary-only files (ggml's writer pads; readers accept both). */
	if (w->nt > 0) {
		uint64_t pos = moe_output_tell(w->out) - w->start;
		if ((rc = zeros(w, pad_to(pos, w->alignment) - pos)) != 0)
			return rc;
	}
	w->state = W_DATA;
	return 0;
}

/* Moves past every tensor that has all its bytes, writing its padding. */
static int close_full_tensors(struct moe_gguf_writer *w)
{
	int rc;

	while (w->cur < w->nt && w->cur_done == w->t[w->cur].nbytes) {
		const struct wtensor *t = &w->t[w->cur];
		if ((rc = zeros(w, pad_to(t->nbytes, w->alignment) - t->nbytes)) != 0)
			return rc;
		w->cur++;
		w->cur_done = 0;
	}
	return 0;
}

int moe_gguf_writer_write(struct moe_gguf_writer *w, const void *buf, size_t n)
{
	const unsigned char *p = buf;
	int rc;

	if ((rc = need_state(w, W_DATA, "moe_gguf_writer_write")) != 0)
		return rc;
	while (n > 0) {
		uint64_t room;
		size_t k;
		if ((rc = close_full_tensors(w)) != 0)
			return rc;
		if (w->cur == w->nt)
			return wfail(w, MOE_EINVAL,
				"%zu bytes of tensor data beyond the last tensor", n);
		room = w->t[w->cur].nbytes - w->cur_done;
		k = n < room ? n : (size_t)room;
		if ((rc = put(w, p, k)) != 0)
			return rc;
		w->cur_done += k;
		p += k;
		n -= k;
	}
	return close_full_tensors(w);
}

int moe_gguf_writer_finish(struct moe_gguf_writer *w)
{
	int rc;

	if ((rc = need_state(w, W_DATA, "moe_gguf_writer_finish")) != 0)
		return rc;
	if ((rc = close_full_tensors(w)) != 0)
		return rc;
	if (w->cur < w->nt)
		return wfail(w, MOE_EINVAL, "tensor '%s' got %llu of its %llu bytes",
			w->t[w->cur].name, (unsigned long long)w->cur_done,
			(unsigned long long)w->t[w->cur].nbytes);
	w->state = W_DONE;
	return 0;
}
