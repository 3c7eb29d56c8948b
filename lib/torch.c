/* PyTorch zip checkpoints (torch.save): data.pkl through the restricted unpickler, storages streamed with libarchive. */
#include "ckpt_impl.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pickle.h"
#include "torch_impl.h"

/*
 * Layout written by torch.save (PyTorchStreamWriter, a zip of stored,
 * uncompressed entries whose data is padded to 64-byte boundaries through
 * a "FB" extra field):
 *
 *   <prefix>/data.pkl            pickle (protocol 2 by default) of the object;
 *                                tensors are _rebuild_tensor_v2(storage,
 *                                storage_offset, size, stride, requires_grad,
 *                                backward_hooks[, metadata]) and each storage
 *                                a persistent id ('storage', torch.XStorage,
 *                                key, location, numel)
 *   <prefix>/.format_version     "1": storages are in numeric key order
 *                                (absent: lexicographic key order)
 *   <prefix>/.storage_alignment  "64"
 *   <prefix>/byteorder           "little" or "big" (absent before torch 2.1)
 *   <prefix>/data/<key>          raw storage bytes, numel * element size
 *   <prefix>/version, <prefix>/.data/version, .data/serialization_id
 *
 * <prefix> is "archive" in current torch and the file's stem in old ones.
 * data.pkl comes first, so a pipe can be listed after reading one member.
 *
 * Data reads follow the zip forward. On a regular file a read behind the
 * reader reopens the archive (inside a tar, through the archive loader's
 * reopen function, torch_impl.h); on a stream it is MOE_ESEEK, and tensors
 * must be read in moe_ckpt_storage_order(): a tensor's offset is where its
 * storage's bytes start in the zip plus the view's byte offset - exact for
 * the stored members of a file (found by a scan of every header), and for
 * a stream an estimate in torch's write order, which is all sorting needs.
 * Strided views, and on streams storages shared by several tensors, are
 * read through a one-storage cache so every view can be served.
 */

#define MAX_PICKLE (256u << 20)  /* data.pkl size bound */
#define MAX_SMALL 64             /* byteorder, version and friends */
#define RBUF (1u << 16)

struct storage {
	char *member;        /* "<prefix>/data/<key>" */
	enum moe_dtype dtype;
	uint64_t nbytes;     /* numel x element size, from the pickle */
	uint64_t order;      /* position in the zip (see above) */
	int64_t size;        /* member size from its header, -1 unknown */
	unsigned nrefs;      /* tensors viewing it */
	int seen;            /* header met during the scan */
	int passed;          /* the reader has gone past it */
};

struct view {
	size_t storage;
	uint64_t elem_off;   /* storage_offset in elements */
};

struct torch_zip {
	struct moe_input *in;   /* the ckpt file's, or own_in after a reopen */
	struct moe_input *own_in;
	moe_torch_reopen_fn reopen;  /* way back for a forward-only input */
	void *reopen_ctx;
	uint64_t start;         /* input offset of the zip */
	int seekable;
	struct archive *a;
	int eof;                /* no more headers */
	long cur;               /* storage the reader is inside, -1 none */
	uint64_t curpos;        /* bytes of it consumed */
	char *prefix;           /* "archive/" */
	struct storage *st;     /* sorted by member name */
	size_t nst;
	struct view *views;     /* tensor first + i */
	size_t first, nviews;
	long cached;            /* storage held in cache, -1 none */
	unsigned char *cache;   /* (st[cached].nbytes) */
	unsigned char rbuf[RBUF];     /* libarchive reads from here */
	unsigned char scratch[RBUF];  /* skipped bytes land here */
};

static int la_fail(struct moe_ckpt *ck, struct archive *a, int code)
{
	const char *s = archive_error_string(a);
	char msg[400];
	size_t i;

	snprintf(msg, sizeof msg, "%s", s ? s : "zip read error");
	for (i = 0; msg[i]; i++)
		if (msg[i] == '\n' || msg[i] == '\r')
			msg[i] = ' ';
	return moe_error_set(&ck->err, code, "%s", msg);
}

static la_ssize_t z_read(struct archive *a, void *ctx, const void **buf)
{
	struct torch_zip *z = ctx;
	ssize_t r = moe_input_read_some(z->in, z->rbuf, sizeof z->rbuf);

	if (r < 0) {
		archive_set_error(a, EIO, "%s", moe_input_errstr(z->in));
		return -1;
	}
	*buf = z->rbuf;
	return r;
}

/* Skips cheaply on files; on streams libarchive reads instead. */
static la_int64_t z_skip(struct archive *a, void *ctx, la_int64_t n)
{
	struct torch_zip *z = ctx;
	int64_t size = moe_input_size(z->in);
	uint64_t pos = moe_input_tell(z->in);

	(void)a;
	if (!z->seekable || n <= 0)
		return 0;
	if (size >= 0 && (uint64_t)n > (uint64_t)size - pos)
		n = (la_int64_t)((uint64_t)size - pos);
	if (moe_input_skip(z->in, (uint64_t)n) != 0)
		return 0;
	return n;
}

static int open_reader(struct moe_ckpt *ck, struct torch_zip *z)
{
	int rc;

	if (z->a) {
		archive_read_free(z->a);
		z->a = NULL;
		if (!z->seekable) {  /* only reached with a reopen function */
			struct moe_input *in;
			if ((rc = z->reopen(z->reopen_ctx, &in)) != 0)
				return moe_error_set(&ck->err, rc, "cannot read the zip again");
			moe_input_free(z->own_in);
			z->in = z->own_in = in;
		}
	}
	if (z->seekable && (rc = moe_input_seek(z->in, z->start)) != 0)
		return moe_error_set(&ck->err, rc, "%s", moe_input_errstr(z->in));
	if ((z->a = archive_read_new()) == NULL)
		return moe_error_set(&ck->err, MOE_ENOMEM, "out of memory");
	archive_read_support_format_zip(z->a);
	archive_read_set_callback_data(z->a, z);
	archive_read_set_read_callback(z->a, z_read);
	archive_read_set_skip_callback(z->a, z_skip);
	if (archive_read_open1(z->a) != ARCHIVE_OK)
		return la_fail(ck, z->a, MOE_EFORMAT);
	z->eof = 0;
	z->cur = -1;
	z->curpos = 0;
	for (size_t i = 0; i < z->nst; i++)
		z->st[i].passed = 0;
	return 0;
}

/* Reads the current member whole (at most max bytes) into a new buffer. */
static int read_member(struct moe_ckpt *ck, struct torch_zip *z,
	struct archive_entry *e, size_t max, unsigned char **out, size_t *len)
{
	size_t cap = 4096, n = 0;
	unsigned char *b;
	la_ssize_t r;

	if (archive_entry_size_is_set(e) && archive_entry_size(e) >= 0) {
		if ((uint64_t)archive_entry_size(e) > max)
			return moe_error_set(&ck->err, MOE_ERANGE,
				"zip member '%s' is larger than %zu bytes",
				archive_entry_pathname(e), max);
		cap = (size_t)archive_entry_size(e) + 1;
	}
	if ((b = malloc(cap)) == NULL)
		return moe_error_set(&ck->err, MOE_ENOMEM, "out of memory");
	for (;;) {
		if (n == cap) {
			unsigned char *nb;
			if (cap > max) {
				free(b);
				return moe_error_set(&ck->err, MOE_ERANGE,
					"zip member '%s' is larger than %zu bytes",
					archive_entry_pathname(e), max);
			}
			if ((nb = realloc(b, cap * 2)) == NULL) {
				free(b);
				return moe_error_set(&ck->err, MOE_ENOMEM, "out of memory");
			}
			b = nb;
			cap *= 2;
		}
		r = archive_read_data(z->a, b + n, cap - n);
		if (r < 0) {
			free(b);
			return la_fail(ck, z->a, MOE_EFORMAT);
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (n > max) {
		free(b);
		return moe_error_set(&ck->err, MOE_ERANGE,
			"zip member '%s' is larger than %zu bytes", archive_entry_pathname(e), max);
	}
	*out = b;
	*len = n;
	return 0;
}

static int cmp_member(const void *a, const void *b)
{
	return strcmp(((const struct storage *)a)->member, ((const struct storage *)b)->member);
}

static long find_storage(const struct torch_zip *z, const char *name)
{
	struct storage key, *s;

	if (z->nst == 0 || name == NULL)
		return -1;
	key.member = (char *)name;
	s = bsearch(&key, z->st, z->nst, sizeof *z->st, cmp_member);
	return s ? (long)(s - z->st) : -1;
}

/* Name of a member relative to the prefix, or NULL if outside it. */
static const char *rel(const struct torch_zip *z, const char *name)
{
	size_t n = strlen(z->prefix);

	return name && strncmp(name, z->prefix, n) == 0 ? name + n : NULL;
}

/* byteorder, version: small text members checked on sight. */
static int small_member(struct moe_ckpt *ck, struct torch_zip *z,
	struct archive_entry *e, const char *r, int *format_version)
{
	unsigned char *b;
	size_t n;
	int rc, isver = strcmp(r, "version") == 0 || strcmp(r, ".data/version") == 0;

	if (strcmp(r, "byteorder") != 0 && !isver && strcmp(r, ".format_version") != 0)
		return 0;
	if ((rc = read_member(ck, z, e, MAX_SMALL, &b, &n)) != 0)
		return rc;
	while (n && (b[n - 1] == '\n' || b[n - 1] == '\r'))
		n--;
	b[n] = '\0';
	rc = 0;
	if (strcmp(r, "byteorder") == 0) {
		if (strcmp((char *)b, "big") == 0)
			rc = moe_error_set(&ck->err, MOE_EUNSUP,
				"big-endian PyTorch checkpoint (byteorder 'big') is not supported");
		else if (strcmp((char *)b, "little") != 0)
			rc = moe_error_set(&ck->err, MOE_EFORMAT, "invalid byteorder record");
	} else if (n == 0 || n > 4 || strspn((char *)b, "0123456789") != n) {
		rc = moe_error_set(&ck->err, MOE_EFORMAT, "invalid %s record in zip", r);
	} else if (!isver && format_version) {
		*format_version = atoi((char *)b);
	}
	free(b);
	return rc;
}

/* Keys are decimal in torch; numeric order is (length, text). */
static int cmp_numeric(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	return la != lb ? (la < lb ? -1 : 1) : strcmp(a, b);
}

static int cmp_order_numeric(const void *a, const void *b, void *ctx)
{
	const struct torch_zip *z = ctx;

	return cmp_numeric(z->st[*(const size_t *)a].member, z->st[*(const size_t *)b].member);
}

static int cmp_order_lex(const void *a, const void *b, void *ctx)
{
	const struct torch_zip *z = ctx;

	return strcmp(z->st[*(const size_t *)a].member, z->st[*(const size_t *)b].member);
}

/* Streams: storage positions follow torch's write order after data.pkl. */
static int stream_order(struct moe_ckpt *ck, struct torch_zip *z, int numeric, uint64_t base)
{
	size_t *idx = malloc((z->nst ? z->nst : 1) * sizeof *idx);

	if (idx == NULL)
		return moe_error_set(&ck->err, MOE_ENOMEM, "out of memory");
	for (size_t i = 0; i < z->nst; i++)
		idx[i] = i;
	qsort_r(idx, z->nst, sizeof *idx, numeric ? cmp_order_numeric : cmp_order_lex, z);
	for (size_t i = 0; i < z->nst; i++) {
		z->st[idx[i]].order = base;
		base += z->st[idx[i]].nbytes + 64;
	}
	free(idx);
	return 0;
}

/* Storages and views from the parsed pickle. */
static int build_storages(struct moe_ckpt *ck, struct torch_zip *z, struct moe_pickle *pk,
	size_t **remap)
{
	size_t n = moe_pickle_nstorages(pk);

	if ((z->st = calloc(n ? n : 1, sizeof *z->st)) == NULL ||
	    (*remap = calloc(n ? n : 1, sizeof **remap)) == NULL)
		return moe_error_set(&ck->err, MOE_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		const struct moe_pickle_storage *ps = moe_pickle_storage(pk, i);
		struct storage *s = &z->st[i];
		if (asprintf(&s->member, "%sdata/%s", z->prefix, ps->key) < 0) {
			s->member = NULL;
			z->nst = i;
			return moe_error_set(&ck->err, MOE_ENOMEM, "out of memory");
		}
		s->dtype = ps->dtype;
		s->size = -1;
		s->nrefs = 0;
		if (moe_dtype_nbytes(ps->dtype, ps->numel, &s->nbytes) != 0)
			return moe_error_set(&ck->err, MOE_ERANGE,
				"storage '%s' is too large", ps->key);
		s->order = i;  /* original index until sorted */
		z->nst = i + 1;
	}
	qsort(z->st, z->nst, sizeof *z->st, cmp_member);
	for (size_t i = 0; i < z->nst; i++) {
		(*remap)[z->st[i].order] = i;
		z->st[i].order = 0;
	}
	return 0;
}

static int is_contiguous(const struct moe_pickle_tensor *pt)
{
	int64_t expect = 1;

	for (int d = pt->ndim - 1; d >= 0; d--) {
		if (pt->shape[d] == 0)
			return 1;
		if (pt->shape[d] != 1 && pt->stride[d] != expect)
			return 0;
		expect *= (int64_t)pt->shape[d];
	}
	return 1;
}

static int add_tensors(struct moe_ckpt *ck, int file, struct torch_zip *z,
	struct moe_pickle *pk, const size_t *remap)
{
	size_t n = moe_pickle_ntensors(pk);

	if ((z->views = calloc(n ? n : 1, sizeof *z->views)) == NULL)
		return moe_error_set(&ck->err, MOE_ENOMEM, "out of memory");
	z->first = ck->ntensors;
	for (size_t i = 0; i < n; i++) {
		const struct moe_pickle_tensor *pt = moe_pickle_tensor(pk, i);
		struct storage *s = &z->st[remap[pt->storage]];
		uint32_t es = moe_dtype_block_bytes(s->dtype);
		struct moe_tensor t;
		int rc;

		memset(&t, 0, sizeof t);
		t.name = pt->name;
		t.dtype = s->dtype;
		t.ndim = pt->ndim;
		memcpy(t.shape, pt->shape, sizeof t.shape);
		if (moe_dtype_nbytes(t.dtype, moe_tensor_numel(&t), &t.nbytes) != 0)
			return moe_error_set(&ck->err, MOE_ERANGE, "tensor '%s' is too large", t.name);
		t.file = (uint32_t)file;
		t.offset = s->order + pt->storage_offset * es;
		if (!is_contiguous(pt)) {
			if ((t.strides = malloc(sizeof(int64_t) * (size_t)(pt->ndim ? pt->ndim : 1))) == NULL)
				return moe_error_set(&ck->err, MOE_ENOMEM, "out of memory");
			memcpy(t.strides, pt->stride, sizeof(int64_t) * (size_t)pt->ndim);
		}
		if ((rc = moe_ckpt_add_tensor(ck, &t)) != 0) {
			free(t.strides);
			return rc;
		}
		z->views[i].storage = remap[pt->storage];
		z->views[i].elem_off = pt->storage_offset;
		z->nviews = i + 1;
		s->nrefs++;
	}
	return 0;
}

/* Parses data.pkl (the current member) and registers the tensors. */
static int load_pickle(struct moe_ckpt *ck, int file, struct torch_zip *z,
	struct archive_entry *e)
{
	struct moe_pickle *pk = NULL;
	unsigned char *buf = NULL;
	size_t len, *remap = NULL;
	int rc;

	if ((rc = read_member(ck, z, e, MAX_PICKLE, &buf, &len)) != 0)
		return rc;
	if ((rc = moe_pickle_new(&pk)) != 0) {
		rc = moe_error_set(&ck->err, rc, "out of memory");
		goto out;
	}
	if ((rc = moe_pickle_load(pk, buf, len)) != 0) {
		moe_error_set(&ck->err, rc, "%s", moe_pickle_errstr(pk));
		goto out;
	}
	if ((rc = build_storages(ck, z, pk, &remap)) != 0)
		goto out;
	if (!z->seekable && (rc = stream_order(ck, z, 0, moe_input_tell(z->in))) != 0)
		goto out;
	rc = add_tensors(ck, file, z, pk, remap);
out:
	free(remap);
	free(buf);
	moe_pickle_free(pk);
	return rc;
}

/* Checks the storages found by a full scan and places the tensors. */
static int finish_scan(struct moe_ckpt *ck, struct torch_zip *z)
{
	for (size_t i = 0; i < z->nst; i++) {
		const struct storage *s = &z->st[i];
		if (!s->seen)
			return moe_error_set(&ck->err, MOE_EFORMAT,
				"storage member '%s' is missing", s->member);
		if (s->size >= 0 && (uint64_t)s->size < s->nbytes)
			return moe_error_set(&ck->err, MOE_ETRUNC,
				"storage member '%s' holds %lld bytes, %llu needed", s->member,
				(long long)s->size, (unsigned long long)s->nbytes);
	}
	/* stored members: report where the bytes really are */
	for (size_t i = 0; i < z->nst; i++) {
		unsigned char h[30];
		struct storage *s = &z->st[i];
		if (moe_input_seek(z->in, z->start + s->order) == 0 &&
		    moe_input_read(z->in, h, sizeof h) == 0 &&
		    memcmp(h, "PK\3\4", 4) == 0 && h[8] == 0 && h[9] == 0)
			s->order += 30 + (h[26] | (uint64_t)h[27] << 8) + (h[28] | (uint64_t)h[29] << 8);
	}
	for (size_t i = 0; i < z->nviews; i++) {
		struct moe_tensor *t = &ck->tensors[z->first + i];
		const struct storage *s = &z->st[z->views[i].storage];
		t->offset = s->order + z->views[i].elem_off * moe_dtype_block_bytes(s->dtype);
	}
	return 0;
}

static void torch_release(struct moe_ckpt_file *f)
{
	struct torch_zip *z = f->priv;

	if (z == NULL)
		return;
	if (z->a)
		archive_read_free(z->a);
	moe_input_free(z->own_in);
	for (size_t i = 0; i < z->nst; i++)
		free(z->st[i].member);
	free(z->st);
	free(z->views);
	free(z->cache);
	free(z->prefix);
	free(z);
	f->priv = NULL;
}

/* Moves to the next header; sets z->cur when it is a storage. */
static int next_member(struct moe_ckpt *ck, struct torch_zip *z, struct archive_entry **e)
{
	int r;

	if (z->cur >= 0)
		z->st[z->cur].passed = 1;
	z->cur = -1;
	if (z->eof)
		return 1;
	r = archive_read_next_header(z->a, e);
	if (r == ARCHIVE_EOF) {
		z->eof = 1;
		return 1;
	}
	if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
		return la_fail(ck, z->a, MOE_EFORMAT);
	z->cur = find_storage(z, archive_entry_pathname(*e));
	z->curpos = 0;
	return 0;
}

/* Skips k bytes of the current member by reading them. */
static int skip_in_member(struct moe_ckpt *ck, struct torch_zip *z, uint64_t k)
{
	while (k > 0) {
		la_ssize_t r = archive_read_data(z->a, z->scratch, k < RBUF ? (size_t)k : RBUF);
		if (r < 0)
			return la_fail(ck, z->a, MOE_EFORMAT);
		if (r == 0)
			return moe_error_set(&ck->err, MOE_ETRUNC, "truncated storage '%s'",
				z->st[z->cur].member);
		k -= (uint64_t)r;
		z->curpos += (uint64_t)r;
	}
	return 0;
}

/* Positions the reader at byte pos of storage s. */
static int goto_storage(struct moe_ckpt *ck, struct torch_zip *z, size_t s,
	uint64_t pos, const char *tname)
{
	struct archive_entry *e;
	int rc;

	if (z->st[s].passed || ((size_t)z->cur == s && z->curpos > pos)) {
		if (!z->seekable && z->reopen == NULL)
			return moe_error_set(&ck->err, MOE_ESEEK,
				"tensor '%s': its storage was already read past on a "
				"forward-only input (read tensors in storage order)", tname);
		if ((rc = open_reader(ck, z)) != 0)
			return rc;
	}
	while (z->cur < 0 || (size_t)z->cur != s) {
		const char *r;
		if ((rc = next_member(ck, z, &e)) < 0)
			return rc;
		if (rc == 1)
			return moe_error_set(&ck->err, MOE_EFORMAT,
				"storage member '%s' is missing", z->st[s].member);
		if (z->cur < 0 && (r = rel(z, archive_entry_pathname(e))) != NULL &&
		    (rc = small_member(ck, z, e, r, NULL)) != 0)
			return rc;
	}
	return skip_in_member(ck, z, pos - z->curpos);
}

static int read_span(struct moe_ckpt *ck, struct torch_zip *z, size_t s, uint64_t pos,
	void *buf, size_t n, const char *tname)
{
	unsigned char *p = buf;
	int rc;

	if ((rc = goto_storage(ck, z, s, pos, tname)) != 0)
		return rc;
	while (n > 0) {
		la_ssize_t r = archive_read_data(z->a, p, n);
		if (r < 0)
			return la_fail(ck, z->a, MOE_EFORMAT);
		if (r == 0)
			return moe_error_set(&ck->err, MOE_ETRUNC, "truncated tensor '%s'", tname);
		p += r;
		n -= (size_t)r;
		z->curpos += (uint64_t)r;
	}
	return 0;
}

/* Whole storage s in the one-slot cache. */
static int cache_storage(struct moe_ckpt *ck, struct torch_zip *z, size_t s, const char *tname)
{
	unsigned char *b;
	int rc;

	if (z->cached == (long)s)
		return 0;
	free(z->cache);
	z->cache = NULL;
	z->cached = -1;
	if (z->st[s].nbytes > SIZE_MAX ||
	    (b = malloc(z->st[s].nbytes ? (size_t)z->st[s].nbytes : 1)) == NULL)
		return moe_error_set(&ck->err, MOE_ENOMEM,
			"out of memory caching storage '%s'", z->st[s].member);
	if ((rc = read_span(ck, z, s, 0, b, (size_t)z->st[s].nbytes, tname)) != 0) {
		free(b);
		return rc;
	}
	z->cache = b;
	z->cached = (long)s;
	return 0;
}

/* Copies bytes [off, off+n) of the row-major image of a strided view. */
static void gather(const struct moe_tensor *t, const unsigned char *base, uint32_t es,
	uint64_t off, unsigned char *out, size_t n)
{
	while (n > 0) {
		uint64_t e = off / es, rest = e, src = 0;
		size_t within = (size_t)(off % es), k = es - within;
		for (int d = t->ndim - 1; d >= 0; d--) {
			src += (rest % t->shape[d]) * (uint64_t)t->strides[d];
			rest /= t->shape[d];
		}
		if (k > n)
			k = n;
		memcpy(out, base + src * es + within, k);
		out += k;
		off += k;
		n -= k;
	}
}

static int torch_read(struct moe_ckpt *ck, struct moe_ckpt_file *f,
	const struct moe_tensor *t, uint64_t off, void *buf, size_t n)
{
	struct torch_zip *z = f->priv;
	size_t i = (size_t)(t - ck->tensors);
	const struct view *v;
	uint32_t es;
	int rc;

	if (t < ck->tensors || i < z->first || i - z->first >= z->nviews)
		return moe_error_set(&ck->err, MOE_EINVAL, "tensor '%s' is not in this file", t->name);
	v = &z->views[i - z->first];
	es = moe_dtype_block_bytes(z->st[v->storage].dtype);
	if (t->strides == NULL && (z->seekable || z->st[v->storage].nrefs < 2))
		return read_span(ck, z, v->storage, v->elem_off * es + off, buf, n, t->name);
	if ((rc = cache_storage(ck, z, v->storage, t->name)) != 0)
		return rc;
	if (t->strides == NULL)
		memcpy(buf, z->cache + v->elem_off * es + off, n);
	else
		gather(t, z->cache + v->elem_off * es, es, off, buf, n);
	return 0;
}

static const struct moe_ckpt_fops torch_fops = { torch_read, torch_release };

/* Finds <prefix>/data.pkl and loads it; on files, scans every header. */
static int scan(struct moe_ckpt *ck, int file, struct torch_zip *z)
{
	struct archive_entry *e;
	int rc, have_pkl = 0, fmt = 0;

	while ((rc = next_member(ck, z, &e)) == 0) {
		const char *name = archive_entry_pathname(e), *r;
		if (name == NULL)
			continue;
		if (!have_pkl) {
			const char *sl = strchr(name, '/');
			if (sl == NULL || strcmp(sl + 1, "data.pkl") != 0)
				continue;
			if ((z->prefix = strndup(name, (size_t)(sl - name) + 1)) == NULL)
				return moe_error_set(&ck->err, MOE_ENOMEM, "out of memory");
			if ((rc = load_pickle(ck, file, z, e)) != 0)
				return rc;
			have_pkl = 1;
			continue;
		}
		if (z->cur >= 0) {
			struct storage *s = &z->st[z->cur];
			if (!z->seekable)
				break;  /* stay inside it: the first data read starts here */
			s->seen = 1;
			s->order = (uint64_t)archive_read_header_position(z->a);
			s->size = archive_entry_size_is_set(e) ? archive_entry_size(e) : -1;
			continue;
		}
		if ((r = rel(z, name)) != NULL && (rc = small_member(ck, z, e, r, &fmt)) != 0)
			return rc;
	}
	if (rc < 0)
		return rc;
	if (!have_pkl)
		return moe_error_set(&ck->err, MOE_EFORMAT,
			"zip has no '<dir>/data.pkl' member (not a PyTorch checkpoint)");
	if (z->seekable)
		return finish_scan(ck, z);
	if (fmt >= 1) {
		/* .format_version 1: storages in numeric key order */
		rc = stream_order(ck, z, 1, moe_input_tell(z->in));
		for (size_t i = 0; rc == 0 && i < z->nviews; i++) {
			const struct storage *s = &z->st[z->views[i].storage];
			ck->tensors[z->first + i].offset = s->order +
				z->views[i].elem_off * moe_dtype_block_bytes(s->dtype);
		}
		return rc;
	}
	return 0;
}

int moe_torch_set_reopen(struct moe_ckpt *ck, int file, moe_torch_reopen_fn fn, void *ctx)
{
	struct torch_zip *z;

	if (file < 0 || (size_t)file >= ck->nfiles || ck->files[file].ops != &torch_fops)
		return MOE_EINVAL;
	z = ck->files[file].priv;
	z->reopen = fn;
	z->reopen_ctx = ctx;
	return 0;
}

int moe_torch_load(struct moe_ckpt *ck, int file)
{
	struct moe_ckpt_file *f = &ck->files[file];
	struct torch_zip *z = calloc(1, sizeof *z);
	int rc;

	if (z == NULL)
		return moe_error_set(&ck->err, MOE_ENOMEM, "out of memory");
	z->in = f->in;
	z->start = moe_input_tell(f->in);
	z->seekable = moe_input_seekable(f->in);
	z->cur = -1;
	z->cached = -1;
	f->priv = z;
	f->ops = &torch_fops;
	if ((rc = open_reader(ck, z)) != 0 || (rc = scan(ck, file, z)) != 0)
		return rc;
	moe_ckpt_set_format(ck, MOE_FMT_TORCH);
	return 0;
}
