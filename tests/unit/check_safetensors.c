/* Tests of the safetensors reader (hand-built headers, every bad input) and writer round trips. */
#include <fcntl.h>
#include <stdint.h>

#include "ckpt_impl.h"
#include "safetensors.h"
#include "testutil.h"

/* A file: u64 LE header length, the header (padded with pad spaces), then
 * ndata bytes of data (byte i of the buffer holds i & 0xff). */
static unsigned char *st_file(const char *json, size_t pad, size_t ndata, size_t *n)
{
	size_t hl = strlen(json) + pad;
	unsigned char *b = malloc(8 + hl + ndata + 1);

	ck_assert_ptr_nonnull(b);
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
	memcpy(b + 8, json, strlen(json));
	memset(b + 8 + strlen(json), ' ', pad);
	for (size_t i = 0; i < ndata; i++)
		b[8 + hl + i] = (unsigned char)i;
	*n = 8 + hl + ndata;
	return b;
}

/* Runs the backend on buf directly (whatever its first bytes are). */
static int load_direct(const void *buf, size_t n, struct moe_ckpt **ckp)
{
	struct moe_input *in;
	int fi;

	ck_assert_int_eq(moe_ckpt_new(ckp), 0);
	ck_assert_int_eq(moe_input_open_memory(&in, buf, n, "t.safetensors"), 0);
	fi = moe_ckpt_add_file(*ckp, "t.safetensors", in);
	ck_assert_int_ge(fi, 0);
	return moe_safetensors_load(*ckp, fi);
}

#define T_A "\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}"
#define T_B "\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[16,22]}"
#define T_C "\"c\":{\"dtype\":\"I8\",\"shape\":[0,5],\"data_offsets\":[22,22]}"
#define VALID "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"h\\u00e9\"}," T_A "," T_B "," T_C "}"

START_TEST(valid_file)
{
	size_t n, pads[] = { 0, 5 };
	unsigned char *b, buf[16];
	struct moe_ckpt *ck;
	const struct moe_tensor *t;
	const char *s;

	for (int k = 0; k < 2; k++) {
		size_t hl = strlen(VALID) + pads[k];
		b = st_file(VALID, pads[k], 22, &n);
		ck_assert_int_eq(moe_ckpt_new(&ck), 0);
		ck_assert_int_eq(moe_ckpt_open_memory(ck, b, n, "v.safetensors"), 0);
		ck_assert_int_eq(moe_ckpt_format(ck), MOE_FMT_SAFETENSORS);
		ck_assert_uint_eq(moe_ckpt_ntensors(ck), 3);
		t = moe_ckpt_tensor(ck, 0);
		ck_assert_str_eq(t->name, "a");
		ck_assert_int_eq(t->dtype, MOE_DT_F32);
		ck_assert_int_eq(t->ndim, 2);
		ck_assert_uint_eq(t->shape[0], 2);
		ck_assert_uint_eq(t->nbytes, 16);
		ck_assert_uint_eq(t->offset, 8 + hl);
		t = moe_ckpt_tensor(ck, 1);
		ck_assert_str_eq(t->name, "b");
		ck_assert_int_eq(t->dtype, MOE_DT_BF16);
		ck_assert_uint_eq(t->offset, 8 + hl + 16);
		ck_assert_int_eq(moe_ckpt_read(ck, t, 0, buf, 6), 0);
		for (int i = 0; i < 6; i++)
			ck_assert_uint_eq(buf[i], 16 + i);
		t = moe_ckpt_tensor(ck, 2);
		ck_assert_str_eq(t->name, "c");
		ck_assert_uint_eq(t->nbytes, 0);
		ck_assert_uint_eq(moe_meta_count(moe_ckpt_meta(ck)), 2);
		ck_assert_int_eq(moe_meta_get_str(moe_ckpt_meta(ck), "format", &s), 0);
		ck_assert_str_eq(s, "pt");
		ck_assert_int_eq(moe_meta_get_str(moe_ckpt_meta(ck), "note", &s), 0);
		ck_assert_str_eq(s, "h\xc3\xa9");
		moe_ckpt_free(ck);
		free(b);
	}
}
END_TEST

START_TEST(every_dtype_and_empty)
{
	static const char *names[] = { "F64", "F32", "F16", "BF16", "F8_E4M3",
		"F8_E5M2", "F8_E8M0", "I64", "I32", "I16", "I8", "U64", "U32",
		"U16", "U8", "BOOL" };
	static const int sizes[] = { 8, 4, 2, 2, 1, 1, 1, 8, 4, 2, 1, 8, 4, 2, 1, 1 };
	char json[4096];
	size_t len = 0, at = 0, n;
	struct moe_ckpt *ck;
	unsigned char *b;

	len += (size_t)sprintf(json, "{");
	for (int i = 0; i < 16; i++) {
		len += (size_t)sprintf(json + len, "%s\"t%d\":{\"dtype\":\"%s\",\"shape\":[3],"
			"\"data_offsets\":[%zu,%zu]}", i ? "," : "", i, names[i], at,
			at + 3 * (size_t)sizes[i]);
		at += 3 * (size_t)sizes[i];
	}
	sprintf(json + len, "}");
	b = st_file(json, 0, at, &n);
	ck_assert_int_eq(load_direct(b, n, &ck), 0);
	ck_assert_uint_eq(moe_ckpt_ntensors(ck), 16);
	for (int i = 0; i < 16; i++)
		ck_assert_str_eq(moe_dtype_name(moe_ckpt_tensor(ck, (size_t)i)->dtype), names[i]);
	moe_ckpt_free(ck);
	free(b);

	/* an empty header object is a valid file without tensors */
	b = st_file("{}      ", 0, 0, &n);
	ck_assert_int_eq(load_direct(b, n, &ck), 0);
	ck_assert_uint_eq(moe_ckpt_ntensors(ck), 0);
	moe_ckpt_free(ck);
	free(b);
}
END_TEST

struct bad {
	const char *json;
	size_t ndata;
	int code;
	const char *msg;   /* substring of the error */
};

static const struct bad bad_headers[] = {
	{ "{\"a\":{\"dtype\":\"F4\",\"shape\":[2],\"data_offsets\":[0,1]}}", 1,
	  MOE_EUNSUP, "tensor 'a' has unsupported dtype 'F4'" },
	{ "{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
	  MOE_EUNSUP, "unsupported dtype 'f32'" },
	{ "{\"a\":{\"dtype\":\"Q4_K\",\"shape\":[256],\"data_offsets\":[0,144]}}", 144,
	  MOE_EUNSUP, "unsupported dtype 'Q4_K'" },
	{ "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
	  MOE_EFORMAT, "tensor 'a' has no dtype" },
	{ "{\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,4]}}", 4,
	  MOE_EFORMAT, "tensor 'a' has no shape array" },
	{ "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
	  MOE_EFORMAT, "shape[0] is not a non-negative integer" },
	{ "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4,
	  MOE_EFORMAT, "shape[0] is not a non-negative integer" },
	{ "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
	  MOE_EUNSUP, "tensor 'a' has 9 dimensions" },
	{ "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4,
	  MOE_ERANGE, "tensor 'a' is too large" },
	{ "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4,
	  MOE_EFORMAT, "tensor 'a': data_offsets is not [begin, end]" },
	{ "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4,
	  MOE_EFORMAT, "data_offsets is not [begin, end]" },
	{ "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4,
	  MOE_EFORMAT, "end before they begin" },
	{ "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,15]}}", 15,
	  MOE_EFORMAT, "tensor 'a': data_offsets span 15 bytes but shape and dtype F32 need 16" },
	{ "{\"a\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 16,
	  MOE_EFORMAT, "need 8" },
	{ "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
	  "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12,
	  MOE_EFORMAT, "tensor 'b' overlaps tensor 'a'" },
	{ "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
	  "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}", 8,
	  MOE_EFORMAT, "tensor 'z' overlaps tensor 'a'" },
	{ "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
	  "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}", 20,
	  MOE_EFORMAT, "gap in the data buffer at offset 8 (before tensor 'b')" },
	{ "{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12,
	  MOE_EFORMAT, "gap in the data buffer at offset 0" },
	{ "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12,
	  MOE_EFORMAT, "gap in the data buffer at offset 8 (4 unused bytes at the end)" },
	{ "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8,
	  MOE_ETRUNC, "tensor 'a': data_offsets [0, 16] lie outside the 8-byte data buffer" },
	{ "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[9223372036854775800,9223372036854775804]}}", 4,
	  MOE_ETRUNC, "lie outside" },
	{ "{\"a\":5}", 0, MOE_EFORMAT, "header entry 'a' is not an object" },
	{ "{\"a\":[]}", 0, MOE_EFORMAT, "header entry 'a' is not an object" },
	{ "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
	  "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
	  MOE_EFORMAT, "duplicate object key" },
	{ "{\"__metadata__\":{\"x\":1}}", 0, MOE_EFORMAT,
	  "__metadata__ value of 'x' is not a string" },
	{ "{\"__metadata__\":[\"x\"]}", 0, MOE_EFORMAT, "__metadata__ is not an object" },
	{ "{\"\xff\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
	  MOE_EFORMAT, "invalid header JSON" },
	{ "{\"a\":{\"dtype\":\"F\xc3\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
	  MOE_EFORMAT, "invalid header JSON" },
	{ "{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
	  MOE_EFORMAT, "empty or overlong name" },
	{ "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}} x", 4,
	  MOE_EFORMAT, "invalid header JSON" },
	{ "{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,4]}}", 4,
	  MOE_EFORMAT, "invalid header JSON" },
	{ "[1,2]", 0, MOE_EFORMAT, "header is not a JSON object" },
	{ "", 0, MOE_EFORMAT, "invalid header JSON" },
};

START_TEST(bad_header)
{
	const struct bad *c = &bad_headers[_i];
	struct moe_ckpt *ck;
	size_t n;
	unsigned char *b = st_file(c->json, 0, c->ndata, &n);
	int rc = load_direct(b, n, &ck);

	if (rc != c->code || strstr(moe_ckpt_errstr(ck), c->msg) == NULL)
		ck_abort_msg("case %d: got %d '%s', want %d '%s'", _i, rc,
			moe_ckpt_errstr(ck), c->code, c->msg);
	moe_ckpt_free(ck);
	free(b);
}
END_TEST

/* A header length whose first byte reads 'G' or 'P' is still safetensors. */
START_TEST(length_bytes_like_magic)
{
	static const char json[] = "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}";
	static const size_t lens[] = { 'G', 'P', 'G' + 256, 'P' + 512 };
	struct moe_ckpt *ck;
	unsigned char *b;
	size_t n;

	for (int i = 0; i < 4; i++) {
		b = st_file(json, lens[i] - strlen(json), 1, &n);
		ck_assert_int_eq(moe_ckpt_new(&ck), 0);
		if (moe_ckpt_open_memory(ck, b, n, "m.safetensors") != 0)
			ck_abort_msg("length %zu: %s", lens[i], moe_ckpt_errstr(ck));
		ck_assert_int_eq(moe_ckpt_format(ck), MOE_FMT_SAFETENSORS);
		ck_assert_uint_eq(moe_ckpt_ntensors(ck), 1);
		moe_ckpt_free(ck);
		free(b);
	}
}
END_TEST

START_TEST(bad_lengths)
{
	unsigned char b[64] = "\0\0\0\0\0\0\0\0{}";
	struct moe_ckpt *ck;

	/* header length beyond the file */
	b[0] = 100;
	ck_assert_int_eq(load_direct(b, 10, &ck), MOE_ETRUNC);
	ck_assert_str_eq(moe_ckpt_errstr(ck), "header length 100 is larger than the file (10 bytes)");
	moe_ckpt_free(ck);
	/* huge lengths are refused before any allocation */
	memset(b, 0xff, 8);
	ck_assert_int_eq(load_direct(b, 10, &ck), MOE_ERANGE);
	ck_assert_str_eq(moe_ckpt_errstr(ck),
		"header length 18446744073709551615 is over the 100 MB limit");
	moe_ckpt_free(ck);
	memcpy(b, "\x01\xe1\xf5\x05\0\0\0\0", 8);   /* 100000001 */
	ck_assert_int_eq(load_direct(b, 10, &ck), MOE_ERANGE);
	moe_ckpt_free(ck);
	/* shorter than the length field */
	ck_assert_int_eq(load_direct(b, 5, &ck), MOE_ETRUNC);
	ck_assert_str_eq(moe_ckpt_errstr(ck), "truncated safetensors header length");
	moe_ckpt_free(ck);
}
END_TEST

/* Every proper prefix of a valid file is refused with a message. */
START_TEST(every_prefix)
{
	size_t n;
	unsigned char *b = st_file(VALID, 3, 22, &n);
	size_t hl = strlen(VALID) + 3;

	for (size_t len = 0; len < n; len++) {
		struct moe_ckpt *ck;
		/* copy so ASan sees reads past the prefix */
		unsigned char *p = malloc(len ? len : 1);
		int rc;

		memcpy(p, b, len);
		ck_assert_int_eq(moe_ckpt_new(&ck), 0);
		rc = moe_ckpt_open_memory(ck, p, len, "p.safetensors");
		if (rc == 0 || moe_ckpt_errstr(ck)[0] == '\0')
			ck_abort_msg("prefix of %zu bytes accepted", len);
		if (len == 8 + hl)   /* header complete, data missing */
			ck_assert_ptr_nonnull(strstr(moe_ckpt_errstr(ck),
				"tensor 'a': data_offsets [0, 16] lie outside the 0-byte data buffer"));
		if (len > 8 && len < 8 + hl)
			ck_assert_ptr_nonnull(strstr(moe_ckpt_errstr(ck), "larger than the file"));
		moe_ckpt_free(ck);
		free(p);
	}
	free(b);
}
END_TEST

struct pipe_src {
	const unsigned char *p;
	size_t n, at;
};

static ssize_t pipe_read(void *ctx, void *buf, size_t n)
{
	struct pipe_src *s = ctx;
	size_t k = s->n - s->at < n ? s->n - s->at : n;

	if (k > 3)
		k = 3;   /* dribble, like a slow pipe */
	memcpy(buf, s->p + s->at, k);
	s->at += k;
	return (ssize_t)k;
}

START_TEST(forward_only_input)
{
	size_t n;
	unsigned char *b = st_file(VALID, 0, 22, &n), buf[16];
	struct pipe_src src = { b, n, 0 };
	struct moe_input *in;
	struct moe_ckpt *ck;
	size_t order[3];

	ck_assert_int_eq(moe_ckpt_new(&ck), 0);
	ck_assert_int_eq(moe_input_open_fn(&in, "<pipe>", pipe_read, &src, -1), 0);
	ck_assert_int_eq(moe_ckpt_load_input(ck, in, "<pipe>"), 0);
	ck_assert(moe_ckpt_source(ck) & MOE_SRC_STREAM);
	ck_assert_uint_eq(moe_ckpt_ntensors(ck), 3);
	moe_ckpt_storage_order(ck, order);
	ck_assert_int_eq(moe_ckpt_read(ck, moe_ckpt_tensor(ck, order[0]), 0, buf, 16), 0);
	ck_assert_uint_eq(buf[15], 15);
	ck_assert_int_eq(moe_ckpt_read(ck, moe_ckpt_tensor(ck, order[1]), 0, buf, 6), 0);
	ck_assert_uint_eq(buf[0], 16);
	/* going back is refused, not silently wrong */
	ck_assert_int_eq(moe_ckpt_read(ck, moe_ckpt_tensor(ck, order[0]), 0, buf, 4), MOE_ESEEK);
	moe_ckpt_free(ck);

	/* on a stream a short file shows up when the data is read */
	src.at = 0;
	src.n = n - 10;
	ck_assert_int_eq(moe_ckpt_new(&ck), 0);
	ck_assert_int_eq(moe_input_open_fn(&in, "<pipe>", pipe_read, &src, -1), 0);
	ck_assert_int_eq(moe_ckpt_load_input(ck, in, "<pipe>"), 0);
	ck_assert_int_eq(moe_ckpt_read(ck, moe_ckpt_find(ck, "a"), 0, buf, 16), MOE_ETRUNC);
	ck_assert_str_eq(moe_ckpt_errstr(ck), "truncated tensor 'a'");
	moe_ckpt_free(ck);
	free(b);
}
END_TEST

/* ---- writer ---- */

struct wt {
	const char *name;
	enum moe_dtype dt;
	int ndim;
	uint64_t shape[3];
};

static const struct wt wts[] = {
	{ "model.embed_tokens.weight", MOE_DT_BF16, 2, { 5, 3 } },
	{ "scalar", MOE_DT_F32, 0, { 0 } },
	{ "empty", MOE_DT_F16, 2, { 0, 7 } },
	{ "model.layers.0.mlp.experts.1.up_proj.weight", MOE_DT_F8_E4M3, 3, { 2, 3, 5 } },
	{ "ids", MOE_DT_I64, 1, { 3 } },
	{ "mask", MOE_DT_BOOL, 1, { 9 } },
	{ "caf\xc3\xa9/\"quoted\"", MOE_DT_U16, 1, { 2 } },
};
#define NWT (sizeof wts / sizeof wts[0])

static uint64_t wt_bytes(const struct wt *t)
{
	uint64_t numel, nb;

	moe_shape_numel(t->ndim, t->shape, &numel);
	moe_dtype_nbytes(t->dt, numel, &nb);
	return nb;
}

static unsigned char *read_all(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	unsigned char *b;
	long sz;

	ck_assert_ptr_nonnull(f);
	fseek(f, 0, SEEK_END);
	sz = ftell(f);
	rewind(f);
	b = malloc((size_t)sz + 1);
	ck_assert(fread(b, 1, (size_t)sz, f) == (size_t)sz);
	fclose(f);
	*n = (size_t)sz;
	return b;
}

/* Writes every tensor of ck through the writer to path (data in chunks). */
static void copy_ckpt(struct moe_ckpt *ck, const char *path, size_t chunk)
{
	struct moe_output *o;
	struct moe_st_writer *w;
	const struct moe_meta *m = moe_ckpt_meta(ck);
	unsigned char buf[64];

	ck_assert_int_eq(moe_output_open(&o, path, MOE_OUT_FORCE), 0);
	ck_assert_int_eq(moe_st_writer_new(&w, o), 0);
	for (size_t i = 0; i < moe_meta_count(m); i++)
		ck_assert_int_eq(moe_st_writer_set_meta(w, moe_meta_key(m, i),
			moe_meta_at(m, i)->v.str.s), 0);
	for (size_t i = 0; i < moe_ckpt_ntensors(ck); i++) {
		const struct moe_tensor *t = moe_ckpt_tensor(ck, i);
		ck_assert_int_eq(moe_st_writer_add_tensor(w, t->name, t->dtype, t->ndim, t->shape), 0);
	}
	ck_assert_int_eq(moe_st_writer_begin_data(w), 0);
	for (size_t i = 0; i < moe_ckpt_ntensors(ck); i++) {
		const struct moe_tensor *t = moe_ckpt_tensor(ck, i);
		for (uint64_t off = 0; off < t->nbytes; off += chunk) {
			size_t k = t->nbytes - off < chunk ? (size_t)(t->nbytes - off) : chunk;
			ck_assert_int_eq(moe_ckpt_read(ck, t, off, buf, k), 0);
			ck_assert_int_eq(moe_st_writer_write(w, buf, k), 0);
		}
	}
	ck_assert_int_eq(moe_st_writer_finish(w), 0);
	ck_assert_int_eq(moe_output_commit(o), 0);
	moe_st_writer_free(w);
	moe_output_free(o);
}

START_TEST(round_trip)
{
	char path[] = "/tmp/moe-st-XXXXXX", p1[64], p2[64];
	struct moe_output *o;
	struct moe_st_writer *w;
	struct moe_ckpt *ck;
	uint64_t total = 0, hbytes;
	unsigned char *data, *f1, *f2;
	size_t n1, n2, at = 0;
	const char *s;

	ck_assert_ptr_nonnull(mkdtemp(path));
	snprintf(p1, sizeof p1, "%s/a.safetensors", path);
	snprintf(p2, sizeof p2, "%s/b.safetensors", path);
	for (size_t i = 0; i < NWT; i++)
		total += wt_bytes(&wts[i]);
	data = malloc(total);
	for (uint64_t i = 0; i < total; i++)
		data[i] = (unsigned char)(i * 7 + 3);

	ck_assert_int_eq(moe_output_open(&o, p1, 0), 0);
	ck_assert_int_eq(moe_st_writer_new(&w, o), 0);
	ck_assert_int_eq(moe_st_writer_set_meta(w, "format", "pt"), 0);
	ck_assert_int_eq(moe_st_writer_set_meta(w, "note", "x\ny \"z\""), 0);
	for (size_t i = 0; i < NWT; i++)
		ck_assert_int_eq(moe_st_writer_add_tensor(w, wts[i].name, wts[i].dt,
			wts[i].ndim, wts[i].shape), 0);
	ck_assert_int_eq(moe_st_writer_begin_data(w), 0);
	hbytes = moe_st_writer_header_bytes(w);
	ck_assert_uint_eq(hbytes % 8, 0);
	while (at < total) {   /* odd chunks that straddle tensors */
		size_t k = total - at < 7 ? total - at : 7;
		ck_assert_int_eq(moe_st_writer_write(w, data + at, k), 0);
		at += k;
	}
	ck_assert_int_eq(moe_st_writer_finish(w), 0);
	ck_assert_int_eq(moe_output_commit(o), 0);
	moe_st_writer_free(w);
	moe_output_free(o);

	ck_assert_int_eq(moe_ckpt_new(&ck), 0);
	ck_assert_int_eq(moe_ckpt_open(ck, p1), 0);
	ck_assert_uint_eq(moe_ckpt_ntensors(ck), NWT);
	at = 0;
	for (size_t i = 0; i < NWT; i++) {
		const struct moe_tensor *t = moe_ckpt_tensor(ck, i);
		unsigned char buf[64];
		ck_assert_str_eq(t->name, wts[i].name);
		ck_assert_int_eq(t->dtype, wts[i].dt);
		ck_assert_int_eq(t->ndim, wts[i].ndim);
		for (int d = 0; d < t->ndim; d++)
			ck_assert_uint_eq(t->shape[d], wts[i].shape[d]);
		ck_assert_uint_eq(t->offset, hbytes + at);
		ck_assert_int_eq(moe_ckpt_read(ck, t, 0, buf, t->nbytes), 0);
		ck_assert_mem_eq(buf, data + at, t->nbytes);
		at += t->nbytes;
	}
	ck_assert_int_eq(moe_meta_get_str(moe_ckpt_meta(ck), "note", &s), 0);
	ck_assert_str_eq(s, "x\ny \"z\"");
	ck_assert_str_eq(moe_meta_key(moe_ckpt_meta(ck), 0), "format");

	/* writing what was read gives the same bytes */
	copy_ckpt(ck, p2, 5);
	moe_ckpt_free(ck);
	f1 = read_all(p1, &n1);
	f2 = read_all(p2, &n2);
	ck_assert_uint_eq(n1, n2);
	ck_assert_uint_eq(n1, hbytes + total);
	ck_assert_mem_eq(f1, f2, n1);
	/* header as the reference writer lays it out */
	ck_assert_mem_eq(f1 + 8, "{\"__metadata__\":{\"format\":\"pt\",", 31);
	ck_assert_uint_eq(f1[hbytes - 1] == ' ' || f1[hbytes - 1] == '}', 1);
	free(f1);
	free(f2);
	free(data);
	unlink(p1);
	unlink(p2);
	rmdir(path);
}
END_TEST

/* Exact bytes for a small file, as the reference implementation writes it. */
START_TEST(reference_bytes)
{
	static const char want[] =
		"\x58\0\0\0\0\0\0\0"
		"{\"__metadata__\":{\"format\":\"pt\"},"
		"\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}"
		"   "
		"\0\0\x80\x3f";
	char *path = moe_test_file("", 0);
	struct moe_output *o;
	struct moe_st_writer *w;
	uint64_t one = 1;
	float f = 1.0f;
	unsigned char *got;
	size_t n;

	ck_assert_int_eq(moe_output_open(&o, path, MOE_OUT_FORCE), 0);
	ck_assert_int_eq(moe_st_writer_new(&w, o), 0);
	ck_assert_int_eq(moe_st_writer_set_meta(w, "format", "pt"), 0);
	ck_assert_int_eq(moe_st_writer_add_tensor(w, "w", MOE_DT_F32, 1, &one), 0);
	ck_assert_int_eq(moe_st_writer_begin_data(w), 0);
	ck_assert_int_eq(moe_st_writer_write(w, &f, 4), 0);
	ck_assert_int_eq(moe_st_writer_finish(w), 0);
	ck_assert_int_eq(moe_output_commit(o), 0);
	moe_st_writer_free(w);
	moe_output_free(o);
	got = read_all(path, &n);
	ck_assert_uint_eq(n, sizeof want - 1);
	ck_assert_mem_eq(got, want, n);
	free(got);
	unlink(path);
	free(path);
}
END_TEST

/* Opening a file reads its header and nothing of the data. */
START_TEST(open_reads_header_only)
{
	char dir[] = "/tmp/moe-st-XXXXXX", path[64], pad[6000];
	static unsigned char data[1 << 20];
	struct moe_output *o;
	struct moe_st_writer *w;
	struct moe_ckpt *ck;
	uint64_t n = sizeof data, hbytes;

	/* a directory of its own: a config.json beside the file would count */
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/w.safetensors", dir);
	memset(pad, 'x', sizeof pad - 1);
	pad[sizeof pad - 1] = '\0';
	ck_assert_int_eq(moe_output_open(&o, path, 0), 0);
	ck_assert_int_eq(moe_st_writer_new(&w, o), 0);
	ck_assert_int_eq(moe_st_writer_set_meta(w, "pad", pad), 0);
	ck_assert_int_eq(moe_st_writer_add_tensor(w, "w", MOE_DT_U8, 1, &n), 0);
	ck_assert_int_eq(moe_st_writer_begin_data(w), 0);
	hbytes = moe_st_writer_header_bytes(w);
	ck_assert_int_eq(moe_st_writer_write(w, data, sizeof data), 0);
	ck_assert_int_eq(moe_st_writer_finish(w), 0);
	ck_assert_int_eq(moe_output_commit(o), 0);
	moe_st_writer_free(w);
	moe_output_free(o);

	ck_assert_int_eq(moe_ckpt_new(&ck), 0);
	ck_assert_int_eq(moe_ckpt_open(ck, path), 0);
	ck_assert_uint_gt(hbytes, 6000);
	ck_assert_uint_eq(moe_ckpt_bytes_read(ck), hbytes);
	moe_ckpt_free(ck);
	unlink(path);
	rmdir(dir);
}
END_TEST

START_TEST(writer_misuse)
{
	char *path = moe_test_file("", 0);
	struct moe_output *o;
	struct moe_st_writer *w;
	uint64_t sh[2] = { 2, 2 }, big[2] = { UINT64_C(1) << 62, 4 };
	unsigned char buf[32] = { 0 };

	ck_assert_int_eq(moe_output_open(&o, path, MOE_OUT_FORCE), 0);
	ck_assert_int_eq(moe_st_writer_new(&w, o), 0);
	ck_assert_int_eq(moe_st_writer_add_tensor(w, "q", MOE_DT_Q4_K, 2, sh), MOE_EUNSUP);
	ck_assert_str_eq(moe_st_writer_errstr(w),
		"tensor 'q': dtype Q4_K cannot be stored in safetensors");
	moe_st_writer_free(w);

	ck_assert_int_eq(moe_st_writer_new(&w, o), 0);
	ck_assert_int_eq(moe_st_writer_add_tensor(w, "__metadata__", MOE_DT_F32, 2, sh), MOE_EINVAL);
	moe_st_writer_free(w);
	ck_assert_int_eq(moe_st_writer_new(&w, o), 0);
	ck_assert_int_eq(moe_st_writer_add_tensor(w, "big", MOE_DT_F32, 2, big), MOE_ERANGE);
	moe_st_writer_free(w);
	ck_assert_int_eq(moe_st_writer_new(&w, o), 0);
	ck_assert_int_eq(moe_st_writer_add_tensor(w, "bad\xff", MOE_DT_F32, 2, sh), MOE_EINVAL);
	moe_st_writer_free(w);

	ck_assert_int_eq(moe_st_writer_new(&w, o), 0);
	ck_assert_int_eq(moe_st_writer_write(w, buf, 1), MOE_EINVAL);  /* before header */
	moe_st_writer_free(w);

	ck_assert_int_eq(moe_st_writer_new(&w, o), 0);
	ck_assert_int_eq(moe_st_writer_add_tensor(w, "a", MOE_DT_F32, 2, sh), 0);
	ck_assert_int_eq(moe_st_writer_add_tensor(w, "a", MOE_DT_F32, 2, sh), MOE_EINVAL);
	ck_assert_str_eq(moe_st_writer_errstr(w), "duplicate tensor 'a'");
	moe_st_writer_free(w);

	ck_assert_int_eq(moe_st_writer_new(&w, o), 0);
	ck_assert_int_eq(moe_st_writer_add_tensor(w, "a", MOE_DT_F32, 2, sh), 0);
	ck_assert_int_eq(moe_st_writer_add_tensor(w, "b", MOE_DT_F32, 2, sh), 0);
	ck_assert_int_eq(moe_st_writer_begin_data(w), 0);
	ck_assert_int_eq(moe_st_writer_add_tensor(w, "c", MOE_DT_F32, 2, sh), MOE_EINVAL);
	moe_st_writer_free(w);

	ck_assert_int_eq(moe_st_writer_new(&w, o), 0);
	ck_assert_int_eq(moe_st_writer_add_tensor(w, "a", MOE_DT_F32, 2, sh), 0);
	ck_assert_int_eq(moe_st_writer_add_tensor(w, "b", MOE_DT_F32, 2, sh), 0);
	ck_assert_int_eq(moe_st_writer_begin_data(w), 0);
	ck_assert_int_eq(moe_st_writer_write(w, buf, 20), 0);
	ck_assert_int_eq(moe_st_writer_finish(w), MOE_EINVAL);
	ck_assert_str_eq(moe_st_writer_errstr(w), "tensor 'b' is missing 12 bytes");
	moe_st_writer_free(w);

	ck_assert_int_eq(moe_st_writer_new(&w, o), 0);
	ck_assert_int_eq(moe_st_writer_add_tensor(w, "a", MOE_DT_F32, 2, sh), 0);
	ck_assert_int_eq(moe_st_writer_begin_data(w), 0);
	ck_assert_int_eq(moe_st_writer_write(w, buf, 20), MOE_EINVAL);
	ck_assert_str_eq(moe_st_writer_errstr(w), "4 bytes of data beyond the last tensor");
	moe_st_writer_free(w);
	moe_output_free(o);   /* not committed: nothing replaces the file */
	unlink(path);
	free(path);
}
END_TEST

/* A full disk is reported through the writer. */
START_TEST(write_error)
{
	struct moe_output *o;
	struct moe_st_writer *w;
	uint64_t sh = 1 << 20;
	static unsigned char buf[1 << 16];
	int rc = 0, fd = open("/dev/full", O_WRONLY);

	if (fd < 0)
		return;
	ck_assert_int_eq(moe_output_open_fd(&o, fd, "/dev/full"), 0);
	ck_assert_int_eq(moe_st_writer_new(&w, o), 0);
	ck_assert_int_eq(moe_st_writer_add_tensor(w, "a", MOE_DT_F32, 1, &sh), 0);
	ck_assert_int_eq(moe_st_writer_begin_data(w), 0);
	for (int i = 0; i < 64 && rc == 0; i++)
		rc = moe_st_writer_write(w, buf, sizeof buf);
	ck_assert_int_eq(rc, MOE_EIO);
	ck_assert_ptr_nonnull(strstr(moe_st_writer_errstr(w), "write error"));
	moe_st_writer_free(w);
	moe_output_free(o);
	close(fd);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("safetensors");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, valid_file);
	tcase_add_test(tc, every_dtype_and_empty);
	tcase_add_loop_test(tc, bad_header, 0, (int)(sizeof bad_headers / sizeof bad_headers[0]));
	tcase_add_test(tc, length_bytes_like_magic);
	tcase_add_test(tc, bad_lengths);
	tcase_add_test(tc, every_prefix);
	tcase_add_test(tc, forward_only_input);
	tcase_add_test(tc, round_trip);
	tcase_add_test(tc, reference_bytes);
	tcase_add_test(tc, open_reads_header_only);
	tcase_add_test(tc, writer_misuse);
	tcase_add_test(tc, write_error);
	suite_add_tcase(s, tc);
	return moe_test_run(s);
}
