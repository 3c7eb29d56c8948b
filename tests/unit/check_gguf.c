/* Tests of the GGUF reader and writer: round trips, malformed headers, every truncation, reference files. */
#include <dirent.h>
#include <glob.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/stat.h>

#include "ckpt_impl.h"
#include "gguf.h"
#include "testutil.h"

/* ---- byte builder for hand-made (mostly malformed) files ---- */

struct bb {
	unsigned char *p;
	size_t n, cap;
};

static void bb_raw(struct bb *b, const void *p, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		ck_assert_ptr_nonnull(b->p);
	}
	if (n)
		memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void bb_le(struct bb *b, uint64_t v, int n)
{
	unsigned char x[8];

	for (int i = 0; i < n; i++, v >>= 8)
		x[i] = (unsigned char)v;
	bb_raw(b, x, (size_t)n);
}

static void bb_str(struct bb *b, const char *s)
{
	bb_le(b, strlen(s), 8);
	bb_raw(b, s, strlen(s));
}

static void bb_hdr(struct bb *b, uint32_t version, uint64_t nt, uint64_t nkv)
{
	bb_raw(b, "GGUF", 4);
	bb_le(b, version, 4);
	bb_le(b, nt, 8);
	bb_le(b, nkv, 8);
}

/* A tensor info; ne is innermost first as stored. */
static void bb_tinfo(struct bb *b, const char *name, uint32_t nd,
	const uint64_t *ne, uint32_t type, uint64_t off)
{
	bb_str(b, name);
	bb_le(b, nd, 4);
	for (uint32_t i = 0; i < nd; i++)
		bb_le(b, ne[i], 8);
	bb_le(b, type, 4);
	bb_le(b, off, 8);
}

static void bb_pad(struct bb *b, size_t align, size_t extra)
{
	while (b->n % align)
		bb_le(b, 0, 1);
	while (extra--)
		bb_le(b, 0x5a, 1);
}

/* ---- opening ---- */

static int open_mem(const void *p, size_t n, struct moe_ckpt **ck)
{
	ck_assert_int_eq(moe_ckpt_new(ck), 0);
	return moe_ckpt_open_memory(*ck, p, n, "t.gguf");
}

/* A pipe-like source that hands out a few bytes at a time, size unknown. */
struct drip {
	const unsigned char *p;
	size_t n, pos;
};

static ssize_t drip_read(void *ctx, void *buf, size_t n)
{
	struct drip *d = ctx;
	size_t k = d->n - d->pos < 7 ? d->n - d->pos : 7;

	(void)n;
	memcpy(buf, d->p + d->pos, k);
	d->pos += k;
	return (ssize_t)k;
}

static int open_stream(const void *p, size_t n, struct moe_ckpt **ck, struct drip *d)
{
	struct moe_input *in;

	d->p = p;
	d->n = n;
	d->pos = 0;
	ck_assert_int_eq(moe_ckpt_new(ck), 0);
	ck_assert_int_eq(moe_input_open_fn(&in, "pipe", drip_read, d, -1), 0);
	return moe_ckpt_load_input(*ck, in, "pipe");
}

/* Expects bytes to be refused with code and a message containing want. */
static void expect_fail(const struct bb *b, int code, const char *want)
{
	struct moe_ckpt *ck;
	int rc = open_mem(b->p, b->n, &ck);

	ck_assert_msg(rc == code, "rc %d, want %d (%s)", rc, code, moe_ckpt_errstr(ck));
	ck_assert_msg(strstr(moe_ckpt_errstr(ck), want) != NULL,
		"message '%s' lacks '%s'", moe_ckpt_errstr(ck), want);
	moe_ckpt_free(ck);
}

/* ---- writing to memory ---- */

struct tspec {
	const char *name;
	enum moe_dtype dt;
	int ndim;
	uint64_t shape[4];
};

static unsigned char pattern(size_t i)
{
	return (unsigned char)(i * 131 + 7);
}

static unsigned char *slurp_fd(int fd, size_t *n)
{
	struct stat st;
	unsigned char *p;

	ck_assert_int_eq(fstat(fd, &st), 0);
	p = malloc((size_t)st.st_size + 1);
	ck_assert_ptr_nonnull(p);
	ck_assert(pread(fd, p, (size_t)st.st_size, 0) == st.st_size);
	*n = (size_t)st.st_size;
	return p;
}

/* Writes meta + tensors (data from pattern(), fed in odd-sized pieces). */
static unsigned char *write_gguf(const struct moe_meta *m, const struct tspec *t,
	size_t nt, size_t *n)
{
	FILE *f = tmpfile();
	struct moe_output *o;
	struct moe_gguf_writer *w;
	uint64_t total = 0;
	unsigned char *p;

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(moe_output_open_fd(&o, fileno(f), "mem"), 0);
	ck_assert_int_eq(moe_gguf_writer_new(&w, o), 0);
	if (m)
		ck_assert_int_eq(moe_gguf_writer_set_meta(w, m), 0);
	for (size_t i = 0; i < nt; i++) {
		uint64_t numel, nb;
		ck_assert_int_eq(moe_gguf_writer_add_tensor(w, t[i].name, t[i].dt,
			t[i].ndim, t[i].shape), 0);
		moe_shape_numel(t[i].ndim, t[i].shape, &numel);
		moe_dtype_nbytes(t[i].dt, numel, &nb);
		total += nb;
	}
	ck_assert_int_eq(moe_gguf_writer_begin_data(w), 0);
	for (uint64_t done = 0; done < total; ) {
		unsigned char piece[13];
		size_t k = total - done < sizeof piece ? (size_t)(total - done) : sizeof piece;
		for (size_t i = 0; i < k; i++)
			piece[i] = pattern((size_t)(done + i));
		ck_assert_int_eq(moe_gguf_writer_write(w, piece, k), 0);
		done += k;
	}
	ck_assert_msg(moe_gguf_writer_finish(w) == 0, "%s", moe_gguf_writer_errstr(w));
	ck_assert_int_eq(moe_output_commit(o), 0);
	moe_gguf_writer_free(w);
	moe_output_free(o);
	p = slurp_fd(fileno(f), n);
	fclose(f);
	return p;
}

/* Writes everything ck holds back out (same KV and tensor order). */
static unsigned char *rewrite(struct moe_ckpt *ck, size_t *n)
{
	FILE *f = tmpfile();
	struct moe_output *o;
	struct moe_gguf_writer *w;
	unsigned char *p;

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(moe_output_open_fd(&o, fileno(f), "mem"), 0);
	ck_assert_int_eq(moe_gguf_writer_new(&w, o), 0);
	ck_assert_int_eq(moe_gguf_writer_set_meta(w, moe_ckpt_meta(ck)), 0);
	for (size_t i = 0; i < moe_ckpt_ntensors(ck); i++) {
		const struct moe_tensor *t = moe_ckpt_tensor(ck, i);
		ck_assert_msg(moe_gguf_writer_add_tensor(w, t->name, t->dtype, t->ndim,
			t->shape) == 0, "%s", moe_gguf_writer_errstr(w));
	}
	ck_assert_int_eq(moe_gguf_writer_begin_data(w), 0);
	for (size_t i = 0; i < moe_ckpt_ntensors(ck); i++) {
		const struct moe_tensor *t = moe_ckpt_tensor(ck, i);
		unsigned char *d = malloc(t->nbytes + 1);
		ck_assert_int_eq(moe_ckpt_read(ck, t, 0, d, t->nbytes), 0);
		ck_assert_int_eq(moe_gguf_writer_write(w, d, t->nbytes), 0);
		free(d);
	}
	ck_assert_int_eq(moe_gguf_writer_finish(w), 0);
	ck_assert_int_eq(moe_output_commit(o), 0);
	moe_gguf_writer_free(w);
	moe_output_free(o);
	p = slurp_fd(fileno(f), n);
	fclose(f);
	return p;
}

/* ---- metadata with every value type ---- */

static struct moe_value scalar(enum moe_vtype t, uint64_t u, int64_t i, double f)
{
	struct moe_value v = { .type = t };

	if (t == MOE_V_F32 || t == MOE_V_F64)
		v.v.f = f;
	else if (t == MOE_V_I8 || t == MOE_V_I16 || t == MOE_V_I32 || t == MOE_V_I64)
		v.v.i = i;
	else
		v.v.u = u;
	return v;
}

static struct moe_value packed(enum moe_vtype t, uint64_t n, const void *d)
{
	struct moe_value v = { .type = MOE_V_ARR };
	size_t es = moe_vtype_size(t);

	v.v.arr.type = t;
	v.v.arr.n = n;
	if (n) {
		v.v.arr.data = malloc(n * es);
		memcpy(v.v.arr.data, d, n * es);
	}
	return v;
}

static struct moe_value strings(uint64_t n, const char *const *s)
{
	struct moe_value v = { .type = MOE_V_ARR };
	struct moe_str *a = n ? calloc(n, sizeof *a) : NULL;

	v.v.arr.type = MOE_V_STR;
	v.v.arr.n = n;
	for (uint64_t i = 0; i < n; i++) {
		a[i].len = strlen(s[i]);
		a[i].s = strdup(s[i]);
	}
	v.v.arr.data = a;
	return v;
}

/* Array of n arrays, taking over the elements. */
static struct moe_value nest(uint64_t n, struct moe_value *e)
{
	struct moe_value v = { .type = MOE_V_ARR };

	v.v.arr.type = MOE_V_ARR;
	v.v.arr.n = n;
	if (n) {
		v.v.arr.data = malloc(n * sizeof *e);
		memcpy(v.v.arr.data, e, n * sizeof *e);
	}
	return v;
}

static struct moe_value deep(int levels)
{
	uint32_t leaf[] = { 1, 2 };
	struct moe_value v = packed(MOE_V_U32, 2, leaf);

	while (--levels > 0)
		v = nest(1, &v);
	return v;
}

static void put(struct moe_meta *m, const char *key, struct moe_value v)
{
	ck_assert_int_eq(moe_meta_set(m, key, &v), 0);
}

static struct moe_meta *all_types_meta(void)
{
	struct moe_meta *m;
	static const uint8_t u8s[] = { 0, 255 };
	static const int8_t i8s[] = { -128, 127 };
	static const uint16_t u16s[] = { 65535, 1 };
	static const int16_t i16s[] = { -32768, 5 };
	static const uint32_t u32s[] = { 4000000000u, 7 };
	static const int32_t i32s[] = { -2000000000, 9 };
	static const float f32s[] = { 1.5f, -0.0f, 3.4e38f };
	static const uint8_t bools[] = { 1, 0, 1 };
	static const uint64_t u64s[] = { UINT64_MAX, 0 };
	static const int64_t i64s[] = { INT64_MIN, -1 };
	static const double f64s[] = { 1e300, -2.25 };
	static const char *const toks[] = { "<unk>", "", "\xe2\x96\x81the", "a b" };
	struct moe_value e[3], v;

	ck_assert_int_eq(moe_meta_new(&m), 0);
	put(m, "general.architecture", (struct moe_value){ .type = MOE_V_STR,
		.v.str = { strdup("llama"), 5 } });
	put(m, "s.u8", scalar(MOE_V_U8, 200, 0, 0));
	put(m, "s.i8", scalar(MOE_V_I8, 0, -5, 0));
	put(m, "s.u16", scalar(MOE_V_U16, 65000, 0, 0));
	put(m, "s.i16", scalar(MOE_V_I16, 0, -30000, 0));
	put(m, "s.u32", scalar(MOE_V_U32, 4294967295u, 0, 0));
	put(m, "s.i32", scalar(MOE_V_I32, 0, INT32_MIN, 0));
	put(m, "s.f32", scalar(MOE_V_F32, 0, 0, 0.1f));
	put(m, "s.bool", scalar(MOE_V_BOOL, 1, 0, 0));
	put(m, "s.u64", scalar(MOE_V_U64, 0x8000000000000001ull, 0, 0));
	put(m, "s.i64", scalar(MOE_V_I64, 0, -1234567890123ll, 0));
	put(m, "s.f64", scalar(MOE_V_F64, 0, 0, 0.1));
	put(m, "s.str.empty", (struct moe_value){ .type = MOE_V_STR, .v.str = { strdup(""), 0 } });
	v = (struct moe_value){ .type = MOE_V_STR };
	v.v.str.s = malloc(4);
	memcpy(v.v.str.s, "a\0b", 4);
	v.v.str.len = 3;
	put(m, "s.str.nul", v);
	put(m, "a.u8", packed(MOE_V_U8, 2, u8s));
	put(m, "a.i8", packed(MOE_V_I8, 2, i8s));
	put(m, "a.u16", packed(MOE_V_U16, 2, u16s));
	put(m, "a.i16", packed(MOE_V_I16, 2, i16s));
	put(m, "a.u32", packed(MOE_V_U32, 2, u32s));
	put(m, "a.i32", packed(MOE_V_I32, 2, i32s));
	put(m, "a.f32", packed(MOE_V_F32, 3, f32s));
	put(m, "a.bool", packed(MOE_V_BOOL, 3, bools));
	put(m, "a.u64", packed(MOE_V_U64, 2, u64s));
	put(m, "a.i64", packed(MOE_V_I64, 2, i64s));
	put(m, "a.f64", packed(MOE_V_F64, 2, f64s));
	put(m, "a.str", strings(4, toks));
	put(m, "a.empty.u32", packed(MOE_V_U32, 0, NULL));
	put(m, "a.empty.str", strings(0, NULL));
	put(m, "a.empty.arr", nest(0, NULL));
	e[0] = packed(MOE_V_I32, 2, i32s);
	e[1] = packed(MOE_V_F64, 0, NULL);
	e[2] = strings(2, toks + 1);
	put(m, "a.nested", nest(3, e));
	put(m, "a.deep8", deep(MOE_GGUF_MAX_DEPTH));
	return m;
}

static int value_eq(const struct moe_value *a, const struct moe_value *b)
{
	if (a->type != b->type)
		return 0;
	switch (a->type) {
	case MOE_V_STR:
		return a->v.str.len == b->v.str.len &&
		       memcmp(a->v.str.s, b->v.str.s, a->v.str.len) == 0;
	case MOE_V_F32: case MOE_V_F64:
		return memcmp(&a->v.f, &b->v.f, sizeof a->v.f) == 0;
	case MOE_V_I8: case MOE_V_I16: case MOE_V_I32: case MOE_V_I64:
		return a->v.i == b->v.i;
	case MOE_V_ARR:
		break;
	default:
		return a->v.u == b->v.u;
	}
	if (a->v.arr.type != b->v.arr.type || a->v.arr.n != b->v.arr.n)
		return 0;
	for (uint64_t i = 0; i < a->v.arr.n; i++) {
		if (a->v.arr.type == MOE_V_STR) {
			const struct moe_str *x = (const struct moe_str *)a->v.arr.data + i;
			const struct moe_str *y = (const struct moe_str *)b->v.arr.data + i;
			if (x->len != y->len || memcmp(x->s, y->s, x->len) != 0)
				return 0;
		} else if (a->v.arr.type == MOE_V_ARR) {
			if (!value_eq((const struct moe_value *)a->v.arr.data + i,
			    (const struct moe_value *)b->v.arr.data + i))
				return 0;
		}
	}
	if (a->v.arr.type != MOE_V_STR && a->v.arr.type != MOE_V_ARR && a->v.arr.n)
		return memcmp(a->v.arr.data, b->v.arr.data,
			a->v.arr.n * moe_vtype_size(a->v.arr.type)) == 0;
	return 1;
}

static const struct tspec rt_tensors[] = {
	{ "token_embd.weight", MOE_DT_F32, 2, { 2, 3 } },
	{ "blk.0.ffn_up_exps.weight", MOE_DT_Q4_0, 3, { 2, 3, 64 } },
	{ "output_norm.weight", MOE_DT_F16, 1, { 5 } },
	{ "scalar", MOE_DT_F32, 0, { 0 } },
	{ "empty", MOE_DT_BF16, 2, { 0, 7 } },
	{ "last", MOE_DT_I8, 1, { 64 } },
};
#define N_RT (sizeof rt_tensors / sizeof rt_tensors[0])

/* ck holds exactly m and rt_tensors with pattern() data. */
static void check_roundtrip(struct moe_ckpt *ck, const struct moe_meta *m, uint64_t align)
{
	const struct moe_meta *got = moe_ckpt_meta(ck);
	size_t k = 0;

	ck_assert_int_eq(moe_ckpt_format(ck), MOE_FMT_GGUF);
	ck_assert_uint_eq(moe_meta_count(got), moe_meta_count(m));
	for (size_t i = 0; i < moe_meta_count(m); i++) {
		ck_assert_str_eq(moe_meta_key(got, i), moe_meta_key(m, i));
		ck_assert_msg(value_eq(moe_meta_at(got, i), moe_meta_at(m, i)),
			"value of '%s' differs", moe_meta_key(m, i));
	}
	ck_assert_uint_eq(moe_ckpt_ntensors(ck), N_RT);
	for (size_t i = 0; i < N_RT; i++) {
		const struct moe_tensor *t = moe_ckpt_tensor(ck, i);
		unsigned char buf[512];
		ck_assert_str_eq(t->name, rt_tensors[i].name);
		ck_assert_int_eq(t->dtype, rt_tensors[i].dt);
		ck_assert_int_eq(t->ndim, rt_tensors[i].ndim);
		for (int d = 0; d < t->ndim; d++)
			ck_assert_uint_eq(t->shape[d], rt_tensors[i].shape[d]);
		ck_assert_uint_eq(t->offset % align, 0);
		ck_assert_uint_le(t->nbytes, sizeof buf);
		ck_assert_int_eq(moe_ckpt_read(ck, t, 0, buf, t->nbytes), 0);
		for (size_t j = 0; j < t->nbytes; j++, k++)
			ck_assert_uint_eq(buf[j], pattern(k));
	}
}

START_TEST(roundtrip_every_value_type)
{
	struct moe_meta *m = all_types_meta();
	struct moe_ckpt *ck;
	struct drip d;
	size_t n, n2;
	unsigned char *p = write_gguf(m, rt_tensors, N_RT, &n), *p2;

	ck_assert_uint_eq(n % 32, 0);
	ck_assert_int_eq(open_mem(p, n, &ck), 0);
	check_roundtrip(ck, m, 32);
	/* the Q4_0 tensor: ggml ne {64, 3, 2} becomes shape {2, 3, 64} */
	ck_assert_uint_eq(moe_ckpt_find(ck, "blk.0.ffn_up_exps.weight")->nbytes, 2 * 3 * 2 * 18);
	p2 = rewrite(ck, &n2);
	ck_assert_uint_eq(n2, n);
	ck_assert(memcmp(p, p2, n) == 0);
	free(p2);
	moe_ckpt_free(ck);

	/* the same bytes through a forward-only source of unknown size */
	ck_assert_int_eq(open_stream(p, n, &ck, &d), 0);
	ck_assert(moe_ckpt_source(ck) & MOE_SRC_STREAM);
	check_roundtrip(ck, m, 32);
	moe_ckpt_free(ck);
	free(p);
	moe_meta_free(m);
}
END_TEST

START_TEST(alignment_key_is_honoured)
{
	struct moe_meta *m;
	struct moe_ckpt *ck;
	size_t n, n2;
	unsigned char *p, *p2;

	ck_assert_int_eq(moe_meta_new(&m), 0);
	ck_assert_int_eq(moe_meta_set_str(m, "general.name", "x"), 0);
	ck_assert_int_eq(moe_meta_set_u32(m, MOE_GGUF_ALIGNMENT_KEY, 256), 0);
	p = write_gguf(m, rt_tensors, N_RT, &n);
	ck_assert_uint_eq(n % 256, 0);
	ck_assert_int_eq(open_mem(p, n, &ck), 0);
	check_roundtrip(ck, m, 256);
	p2 = rewrite(ck, &n2);
	ck_assert(n2 == n && memcmp(p, p2, n) == 0);
	free(p2);
	moe_ckpt_free(ck);
	free(p);
	moe_meta_free(m);
}
END_TEST

START_TEST(file_without_tensors)
{
	struct moe_meta *m;
	struct moe_ckpt *ck;
	size_t n;
	unsigned char *p;

	ck_assert_int_eq(moe_meta_new(&m), 0);
	ck_assert_int_eq(moe_meta_set_str(m, "tokenizer.ggml.model", "gpt2"), 0);
	p = write_gguf(m, NULL, 0, &n);
	/* 24 header + 8 + 20 key + 4 type + 8 + 4 value, no padding */
	ck_assert_uint_eq(n, 24 + 8 + 20 + 4 + 8 + 4);
	ck_assert_int_eq(open_mem(p, n, &ck), 0);
	ck_assert_uint_eq(moe_ckpt_ntensors(ck), 0);
	moe_ckpt_free(ck);
	free(p);
	moe_meta_free(m);
}
END_TEST

static struct moe_gguf_writer *writer_to_null(struct moe_output **o, FILE **f)
{
	struct moe_gguf_writer *w;

	*f = tmpfile();
	ck_assert_int_eq(moe_output_open_fd(o, fileno(*f), "mem"), 0);
	ck_assert_int_eq(moe_gguf_writer_new(&w, *o), 0);
	return w;
}

START_TEST(writer_refuses_bad_requests)
{
	struct moe_output *o;
	struct moe_gguf_writer *w;
	struct moe_meta *m;
	FILE *f;
	char longname[80];
	uint64_t s2[] = { 2, 32 }, s33[] = { 2, 33 }, s5[] = { 1, 1, 1, 1, 1 };
	unsigned char zero[200] = { 0 };

	w = writer_to_null(&o, &f);
	memset(longname, 'x', 64);
	longname[64] = '\0';
	ck_assert_int_eq(moe_gguf_writer_add_tensor(w, longname, MOE_DT_F32, 1, s2), MOE_EINVAL);
	ck_assert_int_eq(moe_gguf_writer_add_tensor(w, "", MOE_DT_F32, 1, s2), MOE_EINVAL);
	ck_assert_int_eq(moe_gguf_writer_add_tensor(w, "u16", MOE_DT_U16, 1, s2), MOE_EUNSUP);
	ck_assert_int_eq(moe_gguf_writer_add_tensor(w, "five", MOE_DT_F32, 5, s5), MOE_EINVAL);
	ck_assert_int_eq(moe_gguf_writer_add_tensor(w, "q", MOE_DT_Q4_0, 2, s33), MOE_EINVAL);
	ck_assert_ptr_nonnull(strstr(moe_gguf_writer_errstr(w), "block of 32"));
	ck_assert_int_eq(moe_gguf_writer_add_tensor(w, "q", MOE_DT_Q4_0, 2, s2), 0);
	ck_assert_int_eq(moe_gguf_writer_add_tensor(w, "q", MOE_DT_F32, 2, s2), MOE_EINVAL);
	ck_assert_str_eq(moe_gguf_writer_errstr(w), "duplicate tensor 'q'");
	ck_assert_int_eq(moe_gguf_writer_write(w, zero, 1), MOE_EINVAL);  /* before begin */
	ck_assert_int_eq(moe_gguf_writer_begin_data(w), 0);
	ck_assert_int_eq(moe_gguf_writer_begin_data(w), MOE_EINVAL);
	ck_assert_int_eq(moe_gguf_writer_write(w, zero, 10), 0);
	ck_assert_int_eq(moe_gguf_writer_finish(w), MOE_EINVAL);
	ck_assert_str_eq(moe_gguf_writer_errstr(w), "tensor 'q' got 10 of its 36 bytes");
	ck_assert_int_eq(moe_gguf_writer_write(w, zero, 27), MOE_EINVAL);
	ck_assert_ptr_nonnull(strstr(moe_gguf_writer_errstr(w), "beyond the last tensor"));
	moe_gguf_writer_free(w);
	moe_output_free(o);
	fclose(f);

	/* metadata the reader would refuse is refused before anything is written */
	w = writer_to_null(&o, &f);
	ck_assert_int_eq(moe_meta_new(&m), 0);
	ck_assert_int_eq(moe_meta_set_u32(m, MOE_GGUF_ALIGNMENT_KEY, 48), 0);
	ck_assert_int_eq(moe_gguf_writer_set_meta(w, m), MOE_EINVAL);
	ck_assert_int_eq(moe_meta_set_str(m, MOE_GGUF_ALIGNMENT_KEY, "32"), 0);
	ck_assert_int_eq(moe_gguf_writer_set_meta(w, m), MOE_EINVAL);
	ck_assert_int_eq(moe_meta_remove(m, MOE_GGUF_ALIGNMENT_KEY), 0);
	put(m, "too.deep", deep(MOE_GGUF_MAX_DEPTH + 1));
	ck_assert_int_eq(moe_gguf_writer_set_meta(w, m), MOE_EINVAL);
	ck_assert_ptr_nonnull(strstr(moe_gguf_writer_errstr(w), "too.deep"));
	ck_assert_uint_eq(moe_output_tell(o), 0);
	moe_meta_free(m);
	moe_gguf_writer_free(w);
	moe_output_free(o);
	fclose(f);
}
END_TEST

START_TEST(writer_output_failure_is_reported)
{
	struct moe_output *o;
	struct moe_gguf_writer *w;
	uint64_t shape[] = { 1u << 20 };
	static unsigned char chunk[1 << 16];
	int fd[2], rc = 0;

	ck_assert_int_eq(pipe(fd), 0);
	close(fd[0]);
	signal(SIGPIPE, SIG_IGN);
	ck_assert_int_eq(moe_output_open_fd(&o, fd[1], "pipe"), 0);
	ck_assert_int_eq(moe_gguf_writer_new(&w, o), 0);
	ck_assert_int_eq(moe_gguf_writer_add_tensor(w, "big", MOE_DT_F32, 1, shape), 0);
	ck_assert_int_eq(moe_gguf_writer_begin_data(w), 0);
	for (int i = 0; i < 64 && rc == 0; i++)
		rc = moe_gguf_writer_write(w, chunk, sizeof chunk);
	ck_assert_int_eq(rc, MOE_EPIPE);
	/* the writer stays failed */
	ck_assert_int_eq(moe_gguf_writer_write(w, chunk, 1), MOE_EPIPE);
	ck_assert_int_eq(moe_gguf_writer_finish(w), MOE_EPIPE);
	ck_assert_str_eq(moe_gguf_writer_errstr(w), "broken pipe");
	moe_gguf_writer_free(w);
	moe_output_free(o);
	close(fd[1]);
}
END_TEST

/* ---- malformed input ---- */

START_TEST(magic_endianness_and_versions)
{
	struct bb b = { 0 };
	struct moe_ckpt *ck;
	struct moe_input *in;
	int fi;

	/* the backend's own magic check (sniffing normally guards it) */
	bb_raw(&b, "GGUX\3\0\0\0", 8);
	ck_assert_int_eq(moe_ckpt_new(&ck), 0);
	ck_assert_int_eq(moe_input_open_memory(&in, b.p, b.n, "x"), 0);
	fi = moe_ckpt_add_file(ck, "x", in);
	ck_assert_int_eq(moe_gguf_load(ck, fi), MOE_EFORMAT);
	ck_assert_str_eq(moe_ckpt_errstr(ck), "not a GGUF file (bad magic)");
	moe_ckpt_free(ck);
	expect_fail(&b, MOE_EFORMAT, "not a checkpoint");

	b.n = 0;
	bb_raw(&b, "GGUF\0\0\0\3", 8);
	bb_le(&b, 0, 8);
	bb_le(&b, 0, 8);
	expect_fail(&b, MOE_EUNSUP, "big-endian GGUF is not supported");
	b.n = 0;
	bb_hdr(&b, 1, 0, 0);
	expect_fail(&b, MOE_EUNSUP, "GGUF version 1 is not supported (this reads 2 and 3)");
	b.n = 0;
	bb_hdr(&b, 4, 0, 0);
	expect_fail(&b, MOE_EUNSUP, "GGUF version 4 is not supported (this reads 2 and 3)");
	b.n = 0;
	bb_hdr(&b, 0, 0, 0);
	expect_fail(&b, MOE_EUNSUP, "GGUF version 0 is not supported");
	for (uint32_t v = 2; v <= 3; v++) {
		b.n = 0;
		bb_hdr(&b, v, 0, 1);
		bb_str(&b, "k");
		bb_le(&b, MOE_V_U8, 4);
		bb_le(&b, 1, 1);
		ck_assert_int_eq(open_mem(b.p, b.n, &ck), 0);
		ck_assert_uint_eq(moe_meta_count(moe_ckpt_meta(ck)), 1);
		moe_ckpt_free(ck);
	}
	free(b.p);
}
END_TEST

/* A small valid file whose last tensor ends exactly at the end. */
static unsigned char *small_file(size_t *n, size_t *header_end)
{
	struct moe_meta *m;
	static const struct tspec t[] = {
		{ "blk.3.ffn_up_exps.weight", MOE_DT_Q4_0, 2, { 2, 32 } },
		{ "output.weight", MOE_DT_F32, 1, { 8 } },
	};
	static const char *const toks[] = { "a", "bc" };
	struct moe_value e[2];
	unsigned char *p;
	struct moe_ckpt *ck;

	ck_assert_int_eq(moe_meta_new(&m), 0);
	ck_assert_int_eq(moe_meta_set_u32(m, "x.count", 3), 0);
	put(m, "tokenizer.ggml.tokens", strings(2, toks));
	e[0] = strings(1, toks);
	e[1] = packed(MOE_V_U8, 0, NULL);
	put(m, "x.nested", nest(2, e));
	/* last, so that a cut inside it leaves more bytes than the header's
	 * counts need at least, and the message can name the key */
	ck_assert_int_eq(moe_meta_set_str(m, "general.name", "tiny"), 0);
	p = write_gguf(m, t, 2, n);
	moe_meta_free(m);
	ck_assert_int_eq(open_mem(p, *n, &ck), 0);
	*header_end = moe_ckpt_tensor(ck, 0)->offset;
	ck_assert_uint_eq(moe_ckpt_tensor(ck, 1)->offset + 32, *n);
	moe_ckpt_free(ck);
	return p;
}

START_TEST(every_prefix_fails_cleanly)
{
	size_t n, hend;
	unsigned char *p = small_file(&n, &hend);

	for (size_t len = 0; len < n; len++) {
		struct moe_ckpt *ck;
		struct drip d;
		unsigned char *cut = malloc(len + 1);  /* exact size for ASan */
		int rc;

		memcpy(cut, p, len);
		rc = open_mem(cut, len, &ck);
		ck_assert_msg(rc == MOE_ETRUNC || rc == MOE_EFORMAT,
			"prefix %zu: rc %d (%s)", len, rc, moe_ckpt_errstr(ck));
		ck_assert(moe_ckpt_errstr(ck)[0] != '\0');
		moe_ckpt_free(ck);
		/* a stream cannot know its size: only the header (up to the
		 * padding, which is never read) must be whole */
		rc = open_stream(cut, len, &ck, &d);
		if (len + 32 <= hend)
			ck_assert_msg(rc == MOE_ETRUNC || rc == MOE_EFORMAT,
				"stream prefix %zu: rc %d (%s)", len, rc, moe_ckpt_errstr(ck));
		else
			ck_assert_msg(rc == 0 || rc == MOE_ETRUNC, "stream prefix %zu: rc %d", len, rc);
		moe_ckpt_free(ck);
		free(cut);
	}
	free(p);
}
END_TEST

START_TEST(truncation_messages_name_the_part)
{
	size_t n, hend;
	unsigned char *p = small_file(&n, &hend);
	struct bb b = { 0 };
	/* offset of the last tensor info's name bytes */
	const char *name = "output.weight";
	unsigned char *at = memmem(p, hend, name, strlen(name));

	ck_assert_ptr_nonnull(at);
	bb_raw(&b, p, (size_t)(at - p) + strlen(name) + 2);
	expect_fail(&b, MOE_ETRUNC, "truncated tensor info for 'output.weight'");
	at = memmem(p, hend, "general.name", 12);
	b.n = 0;
	bb_raw(&b, p, (size_t)(at - p) + 12 + 4 + 3);
	expect_fail(&b, MOE_ETRUNC, "truncated metadata key 'general.name'");
	b.n = 0;
	bb_raw(&b, p, n - 1);
	expect_fail(&b, MOE_ETRUNC, "truncated tensor 'output.weight'");
	free(b.p);
	free(p);
}
END_TEST

START_TEST(huge_counts_and_lengths)
{
	struct bb b = { 0 };
	struct moe_ckpt *ck;
	struct drip d;
	uint64_t ne8[] = { 8 };

	bb_hdr(&b, 3, 1000000000000000000ull, 0);
	expect_fail(&b, MOE_ERANGE, "header says 1000000000000000000 tensors");
	b.n = 0;
	bb_hdr(&b, 3, 0, 1ull << 40);
	expect_fail(&b, MOE_ERANGE, "header says 1099511627776 metadata keys");
	b.n = 0;
	bb_hdr(&b, 3, 1000, 0);
	bb_tinfo(&b, "a", 1, ne8, 0, 0);
	expect_fail(&b, MOE_ETRUNC, "header says 1000 tensors");
	/* on a stream the count is believed until the bytes run out */
	ck_assert_int_eq(open_stream(b.p, b.n, &ck, &d), MOE_ETRUNC);
	ck_assert_str_eq(moe_ckpt_errstr(ck), "truncated tensor info #2");
	moe_ckpt_free(ck);

	b.n = 0;
	bb_hdr(&b, 3, 0, 1);
	bb_le(&b, 1ull << 62, 8);
	bb_pad(&b, 1, 20);
	expect_fail(&b, MOE_ERANGE, "metadata key #1: string of 4611686018427387904 bytes");
	b.n = 0;
	bb_hdr(&b, 3, 0, 1);
	bb_str(&b, "k");
	bb_le(&b, MOE_V_STR, 4);
	bb_le(&b, 100u << 20, 8);
	bb_pad(&b, 1, 20);
	expect_fail(&b, MOE_ETRUNC, "truncated metadata key 'k'");
	ck_assert_int_eq(open_stream(b.p, b.n, &ck, &d), MOE_ETRUNC);
	moe_ckpt_free(ck);
	b.n = 0;
	bb_hdr(&b, 3, 0, 1);
	bb_str(&b, "k");
	bb_le(&b, MOE_V_ARR, 4);
	bb_le(&b, MOE_V_U64, 4);
	bb_le(&b, 1ull << 40, 8);
	expect_fail(&b, MOE_ERANGE, "array of 1099511627776 items");
	b.n = 0;
	bb_hdr(&b, 3, 0, 1);
	bb_str(&b, "k");
	bb_le(&b, MOE_V_ARR, 4);
	bb_le(&b, MOE_V_STR, 4);
	bb_le(&b, 1ull << 31, 8);
	for (int i = 0; i < 8; i++)
		bb_le(&b, 0, 8);  /* empty strings, then the end */
	expect_fail(&b, MOE_ETRUNC, "truncated metadata key 'k'");
	ck_assert_int_eq(open_stream(b.p, b.n, &ck, &d), MOE_ETRUNC);
	moe_ckpt_free(ck);
	free(b.p);
}
END_TEST

/* One-tensor files with the given info, data section of `data` bytes. */
static void one_tensor(struct bb *b, const char *name, uint32_t nd,
	const uint64_t *ne, uint32_t type, uint64_t off, size_t data)
{
	b->n = 0;
	bb_hdr(b, 3, 1, 0);
	bb_tinfo(b, name, nd, ne, type, off);
	bb_pad(b, 32, data);
}

START_TEST(bad_tensor_infos)
{
	struct bb b = { 0 };
	uint64_t ne[9] = { 4, 1, 1, 1, 1, 1, 1, 1, 1 }, ne33[] = { 33, 2 },
		ne64[] = { 64 }, ne8[] = { 8 };
	struct moe_ckpt *ck;

	one_tensor(&b, "w", 4, ne, 0, 0, 32);
	ck_assert_int_eq(open_mem(b.p, b.n, &ck), 0);
	ck_assert_int_eq(moe_ckpt_tensor(ck, 0)->ndim, 4);
	ck_assert_uint_eq(moe_ckpt_tensor(ck, 0)->shape[3], 4);
	moe_ckpt_free(ck);
	one_tensor(&b, "w", 9, ne, 0, 0, 32);
	expect_fail(&b, MOE_EFORMAT, "tensor 'w' has 9 dimensions");
	one_tensor(&b, "w", 1, ne, 41, 0, 32);
	expect_fail(&b, MOE_EFORMAT, "tensor 'w' has unknown ggml type 41");
	one_tensor(&b, "w", 1, ne, 4, 0, 32);  /* Q4_2, removed from ggml */
	expect_fail(&b, MOE_EFORMAT, "unknown ggml type 4");
	one_tensor(&b, "q", 2, ne33, 2, 0, 128);
	expect_fail(&b, MOE_EFORMAT,
		"tensor 'q': row length 33 is not a multiple of Q4_0's block of 32");
	one_tensor(&b, "w", 1, ne, 0, 4, 64);
	expect_fail(&b, MOE_EFORMAT, "tensor 'w' has offset 4, not a multiple of the alignment 32");
	one_tensor(&b, "w", 1, ne, 0, 1ull << 40, 32);
	expect_fail(&b, MOE_ETRUNC, "truncated tensor 'w'");
	one_tensor(&b, "w", 1, ne, 0, 0xffffffffffffffe0ull, 32);
	expect_fail(&b, MOE_ERANGE, "tensor 'w' has offset");
	one_tensor(&b, "w", 1, ne, 0, 32, 32);
	expect_fail(&b, MOE_ETRUNC, "truncated tensor 'w'");
	ne[0] = 1ull << 63;
	one_tensor(&b, "w", 1, ne, 0, 0, 32);
	expect_fail(&b, MOE_ERANGE, "tensor 'w' has dimension 9223372036854775808");
	ne[0] = 1ull << 62;
	ne[1] = 4;
	one_tensor(&b, "w", 2, ne, 0, 0, 32);
	expect_fail(&b, MOE_ERANGE, "tensor 'w' is too large");
	one_tensor(&b, "", 1, ne8, 0, 0, 32);
	expect_fail(&b, MOE_EFORMAT, "empty name");

	/* two tensors: overlapping spans, duplicate names */
	b.n = 0;
	bb_hdr(&b, 3, 2, 0);
	bb_tinfo(&b, "a", 1, ne64, 0, 0);
	bb_tinfo(&b, "b", 1, ne8, 0, 224);
	bb_pad(&b, 32, 256);
	expect_fail(&b, MOE_EFORMAT, "tensors 'a' and 'b' overlap");
	b.n = 0;
	bb_hdr(&b, 3, 2, 0);
	bb_tinfo(&b, "a", 1, ne8, 0, 32);
	bb_tinfo(&b, "a", 1, ne8, 0, 0);
	bb_pad(&b, 32, 64);
	expect_fail(&b, MOE_EFORMAT, "duplicate tensor 'a'");
	/* out of order but disjoint is fine; data order follows offsets */
	b.n = 0;
	bb_hdr(&b, 3, 2, 0);
	bb_tinfo(&b, "a", 1, ne8, 0, 32);
	bb_tinfo(&b, "b", 1, ne8, 0, 0);
	bb_pad(&b, 32, 64);
	ck_assert_int_eq(open_mem(b.p, b.n, &ck), 0);
	ck_assert_uint_eq(moe_ckpt_tensor(ck, 0)->offset, moe_ckpt_tensor(ck, 1)->offset + 32);
	moe_ckpt_free(ck);
	free(b.p);
}
END_TEST

static void one_kv(struct bb *b, const char *key, uint32_t type)
{
	b->n = 0;
	bb_hdr(b, 3, 0, 1);
	bb_str(b, key);
	bb_le(b, type, 4);
}

START_TEST(bad_metadata)
{
	struct bb b = { 0 };
	struct moe_ckpt *ck;

	one_kv(&b, "k", 13);
	bb_le(&b, 0, 8);
	expect_fail(&b, MOE_EFORMAT, "metadata key 'k' has unknown value type 13");
	one_kv(&b, "k", MOE_V_ARR);
	bb_le(&b, 77, 4);
	bb_le(&b, 0, 8);
	expect_fail(&b, MOE_EFORMAT, "metadata key 'k': array of unknown value type 77");
	/* nesting: 8 levels of arrays are read, 9 are not */
	for (int levels = 8; levels <= 9; levels++) {
		one_kv(&b, "k", MOE_V_ARR);
		for (int i = 1; i < levels; i++) {
			bb_le(&b, MOE_V_ARR, 4);
			bb_le(&b, 1, 8);
		}
		bb_le(&b, MOE_V_U8, 4);
		bb_le(&b, 1, 8);
		bb_le(&b, 42, 1);
		if (levels == 8) {
			ck_assert_int_eq(open_mem(b.p, b.n, &ck), 0);
			moe_ckpt_free(ck);
		} else {
			expect_fail(&b, MOE_EFORMAT, "arrays nested more than 8 deep");
		}
	}
	one_kv(&b, MOE_GGUF_ALIGNMENT_KEY, MOE_V_U32);
	bb_le(&b, 48, 4);
	expect_fail(&b, MOE_EFORMAT, "general.alignment is 48, not a power of two");
	one_kv(&b, MOE_GGUF_ALIGNMENT_KEY, MOE_V_U32);
	bb_le(&b, 0, 4);
	expect_fail(&b, MOE_EFORMAT, "general.alignment is 0");
	one_kv(&b, MOE_GGUF_ALIGNMENT_KEY, MOE_V_STR);
	bb_str(&b, "32");
	expect_fail(&b, MOE_EFORMAT, "general.alignment is a string");
	one_kv(&b, "", MOE_V_U8);
	bb_le(&b, 0, 2);
	expect_fail(&b, MOE_EFORMAT, "metadata key #1 is empty");
	b.n = 0;
	bb_hdr(&b, 3, 0, 2);
	for (int i = 0; i < 2; i++) {
		bb_str(&b, "general.name");
		bb_le(&b, MOE_V_STR, 4);
		bb_str(&b, "x");
	}
	expect_fail(&b, MOE_EFORMAT, "duplicate metadata key 'general.name'");
	/* control bytes in names are not copied into messages */
	one_kv(&b, "a\033[2Jb", 13);
	bb_le(&b, 0, 8);
	expect_fail(&b, MOE_EFORMAT, "metadata key 'a?[2Jb' has unknown value type 13");
	free(b.p);
}
END_TEST

/* ---- reference files ---- */

static unsigned char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	unsigned char *p;

	ck_assert_msg(f != NULL, "cannot open %s", path);
	p = slurp_fd(fileno(f), n);
	fclose(f);
	return p;
}

static struct moe_ckpt *open_ref(const char *path)
{
	struct moe_ckpt *ck;
	int rc;

	ck_assert_int_eq(moe_ckpt_new(&ck), 0);
	rc = moe_ckpt_open(ck, path);
	ck_assert_msg(rc == 0, "%s: %s", path, moe_ckpt_errstr(ck));
	ck_assert_int_eq(moe_ckpt_format(ck), MOE_FMT_GGUF);
	return ck;
}

static uint64_t total_numel(const struct moe_ckpt *ck)
{
	uint64_t s = 0;

	for (size_t i = 0; i < moe_ckpt_ntensors(ck); i++)
		s += moe_tensor_numel(moe_ckpt_tensor(ck, i));
	return s;
}

/* Cells of one markdown table row, trimmed, in place. */
static int cells(char *line, char **c, int max)
{
	int n = 0;
	char *s = line, *bar;

	if (*s != '|')
		return 0;
	s++;
	while (n < max && (bar = strchr(s, '|')) != NULL) {
		char *e = bar;
		*bar = '\0';
		while (*s == ' ')
			s++;
		while (e > s && e[-1] == ' ')
			*--e = '\0';
		c[n++] = s;
		s = bar + 1;
	}
	return n;
}

/* Calls fn for each body row of the README table whose header row starts
 * with `head`; col is the index of the header cell starting with `colname`. */
static int readme_table(const char *readme, const char *head, const char *colname,
	void (*fn)(char **c, int n, int col, void *ctx), void *ctx)
{
	char *copy = strdup(readme), *save = NULL, *line;
	int in = 0, col = -1, rows = 0;

	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *c[32];
		int n;
		if (!in) {
			if (strncmp(line, head, strlen(head)) != 0)
				continue;
			n = cells(line, c, 32);
			for (int i = 0; i < n; i++)
				if (strncmp(c[i], colname, strlen(colname)) == 0)
					col = i;
			ck_assert_msg(col >= 0, "README table '%s' has no column '%s'", head, colname);
			in = 1;
			continue;
		}
		if (line[0] != '|')
			break;
		if (strncmp(line, "|---", 4) == 0)
			continue;
		n = cells(line, c, 32);
		ck_assert_int_gt(n, col);
		fn(c, n, col, ctx);
		rows++;
	}
	free(copy);
	ck_assert_msg(rows > 0, "README table '%s' not found", head);
	return rows;
}

/* "460,096 / 165,184" -> 460096 */
static uint64_t grouped_number(const char *s)
{
	uint64_t v = 0;

	for (; *s && *s != '/'; s++)
		if (*s >= '0' && *s <= '9')
			v = v * 10 + (uint64_t)(*s - '0');
	return v;
}

static const char *shared_dir;
static char *readme;
static json_t *models_json;

static void load_readme(void)
{
	char path[4096];
	json_error_t je;
	size_t n;

	snprintf(path, sizeof path, "%s/ref/README.md", shared_dir);
	readme = (char *)slurp(path, &n);
	readme[n] = '\0';
	snprintf(path, sizeof path, "%s/ref/models/models.json", shared_dir);
	models_json = json_load_file(path, 0, &je);
	ck_assert_msg(models_json != NULL, "%s: %s", path, je.text);
}

static json_t *model_entry(const char *file)
{
	json_t *a = json_object_get(models_json, "models"), *m;
	size_t i;

	json_array_foreach(a, i, m)
		if (strcmp(json_string_value(json_object_get(m, "file")), file) == 0)
			return m;
	return NULL;
}

/* The tensors of ck are exactly models.json's list (names and ggml shapes). */
static void check_tensor_list(const struct moe_ckpt *ck, json_t *m, const char *file)
{
	json_t *ts = json_object_get(m, "tensors"), *t;
	size_t i;

	ck_assert_msg(json_array_size(ts) == moe_ckpt_ntensors(ck), "%s: %zu tensors, models.json lists %zu",
		file, moe_ckpt_ntensors(ck), json_array_size(ts));
	json_array_foreach(ts, i, t) {
		const struct moe_tensor *x = moe_ckpt_find(ck, json_string_value(json_object_get(t, "name")));
		json_t *ne = json_object_get(t, "ne");
		ck_assert_msg(x != NULL, "%s: no tensor %s", file,
			json_string_value(json_object_get(t, "name")));
		ck_assert_int_eq(x->ndim, (int)json_array_size(ne));
		for (int d = 0; d < x->ndim; d++)
			ck_assert_uint_eq(x->shape[x->ndim - 1 - d],
				(uint64_t)json_integer_value(json_array_get(ne, (size_t)d)));
	}
}

static void model_row(char **c, int n, int col, void *ctx)
{
	char path[4096];
	struct moe_ckpt *ck;
	json_t *m = model_entry(c[0]);

	(void)n;
	(*(int *)ctx)++;
	snprintf(path, sizeof path, "%s/ref/models/%s", shared_dir, c[0]);
	ck = open_ref(path);
	ck_assert_msg(total_numel(ck) == grouped_number(c[col]),
		"%s: %llu parameters, README says %s", c[0],
		(unsigned long long)total_numel(ck), c[col]);
	ck_assert_msg(m != NULL, "%s not in models.json", c[0]);
	check_tensor_list(ck, m, c[0]);
	for (size_t i = 0; i < moe_ckpt_ntensors(ck); i++)
		ck_assert_int_eq(moe_ckpt_tensor(ck, i)->dtype, MOE_DT_F32);
	moe_ckpt_free(ck);
}

START_TEST(ref_models_match_readme)
{
	glob_t g;
	char pat[4096];
	int rows = 0;

	if ((shared_dir = moe_test_shared()) == NULL)
		return;
	load_readme();
	readme_table(readme, "| file | arch |", "params", model_row, &rows);
	/* quantized and dequantized copies: same tensors as their F32 source */
	snprintf(pat, sizeof pat, "%s/ref/models/*-q[0-9]_[0-9]*.gguf", shared_dir);
	ck_assert_int_eq(glob(pat, 0, NULL, &g), 0);
	for (size_t i = 0; i < g.gl_pathc; i++) {
		const char *base = strrchr(g.gl_pathv[i], '/') + 1, *q = strstr(base, "-q");
		char src[256], qt[8];
		struct moe_ckpt *ck = open_ref(g.gl_pathv[i]);
		int dequant = strstr(base, "dequant") != NULL;
		enum moe_dtype want;

		snprintf(src, sizeof src, "%.*s-f32.gguf", (int)(q - base), base);
		snprintf(qt, sizeof qt, "%.4s", q + 1);
		want = dequant ? MOE_DT_F32 : moe_dtype_from_name(qt);
		ck_assert_int_ne(want, MOE_DT_INVALID);
		ck_assert_ptr_nonnull(model_entry(src));
		check_tensor_list(ck, model_entry(src), base);
		for (size_t k = 0; k < moe_ckpt_ntensors(ck); k++) {
			const struct moe_tensor *t = moe_ckpt_tensor(ck, k);
			int kept = t->ndim == 1 || strstr(t->name, "_norm") ||
				strstr(t->name, "ffn_gate_inp");
			ck_assert_msg(t->dtype == (kept ? MOE_DT_F32 : want), "%s: %s is %s",
				base, t->name, moe_dtype_name(t->dtype));
		}
		moe_ckpt_free(ck);
	}
	ck_assert_uint_ge(g.gl_pathc, 1);
	globfree(&g);
	free(readme);
	json_decref(models_json);
}
END_TEST

struct quant_ctx {
	const struct moe_ckpt *ck;
	enum moe_dtype want;
	const char *file;
};

static void quant_row(char **c, int n, int col, void *ctx)
{
	struct quant_ctx *q = ctx;
	const struct moe_tensor *t = moe_ckpt_find(q->ck, c[0]);
	uint64_t rows, per;
	char *e;

	(void)n;
	rows = strtoull(c[col], &e, 10);
	while (*e && (*e < '0' || *e > '9'))
		e++;
	per = strtoull(e, NULL, 10);
	ck_assert_msg(t != NULL, "%s: no tensor '%s'", q->file, c[0]);
	ck_assert_msg(t->dtype == q->want, "%s: '%s' is %s", q->file, c[0],
		moe_dtype_name(t->dtype));
	ck_assert_int_eq(t->ndim, 2);
	ck_assert_uint_eq(t->shape[0], rows);
	ck_assert_uint_eq(t->shape[1], per);
}

START_TEST(ref_quant_match_readme)
{
	glob_t g;
	char pat[4096];

	if ((shared_dir = moe_test_shared()) == NULL)
		return;
	load_readme();
	snprintf(pat, sizeof pat, "%s/ref/quant/*.gguf", shared_dir);
	ck_assert_int_eq(glob(pat, 0, NULL, &g), 0);
	ck_assert_uint_ge(g.gl_pathc, 2);
	for (size_t i = 0; i < g.gl_pathc; i++) {
		const char *base = strrchr(g.gl_pathv[i], '/') + 1;
		char tn[32] = "F32";
		struct quant_ctx q = { open_ref(g.gl_pathv[i]), MOE_DT_F32, base };
		int rows;

		if (strncmp(base, "quant-", 6) == 0 && strcmp(base, "quant-input.gguf") != 0) {
			snprintf(tn, sizeof tn, "%.*s", (int)(strlen(base) - 11), base + 6);
			q.want = moe_dtype_from_name(tn);
			ck_assert_msg(q.want != MOE_DT_INVALID, "unknown type in %s", base);
		}
		rows = readme_table(readme, "| tensor | rows", "rows", quant_row, &q);
		ck_assert_uint_eq(moe_ckpt_ntensors(q.ck), (size_t)rows);
		moe_ckpt_free((struct moe_ckpt *)q.ck);
	}
	globfree(&g);
	free(readme);
	json_decref(models_json);
}
END_TEST

static void tokenizer_row(char **c, int n, int col, void *ctx)
{
	char path[4096];
	struct moe_ckpt *ck;
	const struct moe_value *v;

	(void)n;
	(*(int *)ctx)++;
	snprintf(path, sizeof path, "%s/ref/tokenizer/%s", shared_dir, c[0]);
	ck = open_ref(path);
	ck_assert_uint_eq(moe_ckpt_ntensors(ck), 0);
	v = moe_meta_find(moe_ckpt_meta(ck), "tokenizer.ggml.tokens");
	ck_assert_ptr_nonnull(v);
	ck_assert_int_eq(v->type, MOE_V_ARR);
	ck_assert_int_eq(v->v.arr.type, MOE_V_STR);
	ck_assert_msg(v->v.arr.n == strtoull(c[col], NULL, 10), "%s: %llu tokens, README says %s",
		c[0], (unsigned long long)v->v.arr.n, c[col]);
	moe_ckpt_free(ck);
}

START_TEST(ref_tokenizers_match_readme)
{
	int rows = 0;

	if ((shared_dir = moe_test_shared()) == NULL)
		return;
	load_readme();
	readme_table(readme, "| file | tokenizer.ggml.model", "tokens", tokenizer_row, &rows);
	ck_assert_int_gt(rows, 0);
	free(readme);
	json_decref(models_json);
}
END_TEST

/* Every reference GGUF opens, also as a stream, and writes back byte-identical. */
START_TEST(ref_files_rewrite_identically)
{
	static const char *dirs[] = { "models", "quant", "tokenizer" };
	size_t count = 0;

	if ((shared_dir = moe_test_shared()) == NULL)
		return;
	for (int k = 0; k < 3; k++) {
		glob_t g;
		char pat[4096];
		snprintf(pat, sizeof pat, "%s/ref/%s/*.gguf", shared_dir, dirs[k]);
		ck_assert_int_eq(glob(pat, 0, NULL, &g), 0);
		for (size_t i = 0; i < g.gl_pathc; i++, count++) {
			size_t n, n2;
			unsigned char *orig = slurp(g.gl_pathv[i], &n), *again;
			struct moe_ckpt *ck = open_ref(g.gl_pathv[i]), *cs;
			struct drip d;

			again = rewrite(ck, &n2);
			ck_assert_msg(n == n2 && memcmp(orig, again, n) == 0,
				"%s: rewrite differs (%zu vs %zu bytes)", g.gl_pathv[i], n, n2);
			ck_assert_int_eq(open_stream(orig, n, &cs, &d), 0);
			ck_assert_uint_eq(moe_ckpt_ntensors(cs), moe_ckpt_ntensors(ck));
			ck_assert_uint_eq(moe_meta_count(moe_ckpt_meta(cs)),
				moe_meta_count(moe_ckpt_meta(ck)));
			moe_ckpt_free(cs);
			moe_ckpt_free(ck);
			free(orig);
			free(again);
		}
		globfree(&g);
	}
	ck_assert_uint_ge(count, 3);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("gguf");
	TCase *tc = tcase_create("format");
	TCase *ref = tcase_create("reference");

	tcase_add_test(tc, roundtrip_every_value_type);
	tcase_add_test(tc, alignment_key_is_honoured);
	tcase_add_test(tc, file_without_tensors);
	tcase_add_test(tc, writer_refuses_bad_requests);
	tcase_add_test(tc, writer_output_failure_is_reported);
	tcase_add_test(tc, magic_endianness_and_versions);
	tcase_add_test(tc, every_prefix_fails_cleanly);
	tcase_add_test(tc, truncation_messages_name_the_part);
	tcase_add_test(tc, huge_counts_and_lengths);
	tcase_add_test(tc, bad_tensor_infos);
	tcase_add_test(tc, bad_metadata);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	tcase_add_test(ref, ref_models_match_readme);
	tcase_add_test(ref, ref_quant_match_readme);
	tcase_add_test(ref, ref_tokenizers_match_readme);
	tcase_add_test(ref, ref_files_rewrite_identically);
	tcase_set_timeout(ref, 600);
	suite_add_tcase(s, ref);
	return moe_test_run(s);
}
