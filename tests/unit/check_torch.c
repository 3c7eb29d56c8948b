/* Tests of the PyTorch zip backend on torch.save-layout files built by torchzip.h: memory, file and pipe. */
#include <stdio.h>
#include <sys/stat.h>

#include "ckpt.h"
#include "ckpt_impl.h"
#include "error.h"
#include "testutil.h"
#include "torchzip.h"

enum mode { M_MEMORY, M_FILE, M_PIPE, M_COUNT };

struct opened {
	struct moe_ckpt *ck;
	struct moe_test_chunks pipe;
	char dir[64], path[96];
};

static int open_mode(struct opened *o, const struct tz_buf *z, enum mode m)
{
	struct moe_input *in;
	FILE *f;

	memset(o, 0, sizeof *o);
	ck_assert_int_eq(moe_ckpt_new(&o->ck), 0);
	switch (m) {
	case M_MEMORY:
		return moe_ckpt_open_memory(o->ck, z->p, z->n, "mem.pt");
	case M_FILE:
		snprintf(o->dir, sizeof o->dir, "/tmp/moe-torch.XXXXXX");
		ck_assert_ptr_nonnull(mkdtemp(o->dir));
		snprintf(o->path, sizeof o->path, "%s/model.pt", o->dir);
		ck_assert_ptr_nonnull(f = fopen(o->path, "wb"));
		ck_assert_uint_eq(fwrite(z->p, 1, z->n, f), z->n);
		fclose(f);
		return moe_ckpt_open(o->ck, o->path);
	default:
		o->pipe = (struct moe_test_chunks){ z->p, z->n, 0, 4093 };
		ck_assert_int_eq(moe_input_open_fn(&in, "pipe.pt", moe_test_chunk_read, &o->pipe, -1), 0);
		return moe_ckpt_load_input(o->ck, in, "pipe.pt");
	}
}

static void close_mode(struct opened *o)
{
	moe_ckpt_free(o->ck);
	if (o->path[0]) {
		unlink(o->path);
		rmdir(o->dir);
	}
}

static float st0[6] = { 0, 1, 2, 3, 4, 5 };
static float st1[4] = { 10, 11, 12, 13 };
static int64_t st2[3] = { -1, 7, 1LL << 40 };

/* w (2,3) contiguous; wt = w.T (strided); b = st1[1:3]; tied shares w's
 * storage; emb is an I64 vector. */
static void basic(struct tz_buf *z, int proto, int descriptor, const char *prefix)
{
	struct tz_tensor t[5] = {
		{ "w", "FloatStorage", "0", 6, 0, 2, { 2, 3 }, { 3, 1 }, 0 },
		{ "wt", "FloatStorage", "0", 6, 0, 2, { 3, 2 }, { 1, 3 }, 0 },
		{ "b", "FloatStorage", "1", 4, 1, 1, { 2 }, { 1 }, 0 },
		{ "tied", "FloatStorage", "0", 6, 0, 2, { 2, 3 }, { 3, 1 }, 1 },
		{ "emb", "LongStorage", "2", 3, 0, 1, { 3 }, { 1 }, 0 },
	};
	struct tz_storage s[3] = {
		{ "0", st0, sizeof st0 }, { "1", st1, sizeof st1 }, { "2", st2, sizeof st2 },
	};
	struct tz_pickler pk;

	pk_begin(&pk, proto);
	pk_state_dict(&pk, t, 5);
	pk_end(&pk);
	memset(z, 0, sizeof *z);
	tz_checkpoint(z, prefix, &pk.b, s, 3, proto >= 4, descriptor);
	free(pk.b.p);
}

static void expect_values(struct moe_ckpt *ck, const char *name, const void *want, size_t n)
{
	const struct moe_tensor *t = moe_ckpt_find(ck, name);
	unsigned char buf[256];

	ck_assert_ptr_nonnull(t);
	ck_assert_uint_eq(t->nbytes, n);
	if (moe_ckpt_read(ck, t, 0, buf, n) != 0)
		ck_abort_msg("reading '%s': %s", name, moe_ckpt_errstr(ck));
	ck_assert(memcmp(buf, want, n) == 0);
}

static const float wt_want[6] = { 0, 3, 1, 4, 2, 5 };

static void check_listing(struct moe_ckpt *ck)
{
	const struct moe_tensor *t;

	ck_assert_int_eq(moe_ckpt_format(ck), MOE_FMT_TORCH);
	ck_assert_uint_eq(moe_ckpt_ntensors(ck), 5);
	t = moe_ckpt_find(ck, "w");
	ck_assert_int_eq(t->dtype, MOE_DT_F32);
	ck_assert_int_eq(t->ndim, 2);
	ck_assert_uint_eq(t->shape[0], 2);
	ck_assert_uint_eq(t->shape[1], 3);
	ck_assert_ptr_null(t->strides);
	t = moe_ckpt_find(ck, "wt");
	ck_assert_ptr_nonnull(t->strides);
	ck_assert_uint_eq(t->shape[0], 3);
	ck_assert_uint_eq(t->nbytes, 24);
	ck_assert_int_eq(moe_ckpt_find(ck, "emb")->dtype, MOE_DT_I64);
}

/* Reads every tensor in storage order: works on every input. */
static void read_in_storage_order(struct moe_ckpt *ck)
{
	size_t idx[8];

	moe_ckpt_storage_order(ck, idx);
	for (size_t i = 0; i < moe_ckpt_ntensors(ck); i++) {
		const char *n = moe_ckpt_tensor(ck, idx[i])->name;
		if (strcmp(n, "w") == 0 || strcmp(n, "tied") == 0)
			expect_values(ck, n, st0, sizeof st0);
		else if (strcmp(n, "wt") == 0)
			expect_values(ck, n, wt_want, sizeof wt_want);
		else if (strcmp(n, "b") == 0)
			expect_values(ck, n, st1 + 1, 8);
		else
			expect_values(ck, n, st2, sizeof st2);
	}
}

START_TEST(round_trip_all_inputs)
{
	int protos[] = { 2, 4 };

	for (int pi = 0; pi < 2; pi++)
	for (int desc = 0; desc < 2; desc++)
	for (int m = 0; m < M_COUNT; m++) {
		struct tz_buf z;
		struct opened o;

		basic(&z, protos[pi], desc, pi ? "archive" : "my_model");
		if (open_mode(&o, &z, (enum mode)m) != 0)
			ck_abort_msg("mode %d proto %d desc %d: %s", m, protos[pi], desc,
				moe_ckpt_errstr(o.ck));
		check_listing(o.ck);
		if (m == M_PIPE)
			ck_assert(moe_ckpt_source(o.ck) & MOE_SRC_STREAM);
		read_in_storage_order(o.ck);
		close_mode(&o);
		free(z.p);
	}
}
END_TEST

/* Files go back by reopening the zip; partial and unaligned reads. */
START_TEST(random_order_on_files)
{
	for (int m = M_MEMORY; m <= M_FILE; m++) {
		struct tz_buf z;
		struct opened o;
		const struct moe_tensor *t;
		unsigned char buf[32];

		basic(&z, 2, 0, "archive");
		ck_assert_int_eq(open_mode(&o, &z, (enum mode)m), 0);
		/* files report where the bytes are: 64-aligned storages, views inside */
		t = moe_ckpt_find(o.ck, "w");
		ck_assert_uint_eq(t->offset % 64, 0);
		ck_assert(memcmp(z.p + t->offset, st0, sizeof st0) == 0);
		t = moe_ckpt_find(o.ck, "b");
		ck_assert(memcmp(z.p + t->offset, st1 + 1, 8) == 0);
		expect_values(o.ck, "emb", st2, sizeof st2);
		expect_values(o.ck, "b", st1 + 1, 8);
		expect_values(o.ck, "wt", wt_want, sizeof wt_want);
		expect_values(o.ck, "w", st0, sizeof st0);
		expect_values(o.ck, "tied", st0, sizeof st0);
		expect_values(o.ck, "b", st1 + 1, 8);
		t = moe_ckpt_find(o.ck, "wt");
		ck_assert_int_eq(moe_ckpt_read(o.ck, t, 5, buf, 10), 0);
		ck_assert(memcmp(buf, (const unsigned char *)wt_want + 5, 10) == 0);
		t = moe_ckpt_find(o.ck, "w");
		ck_assert_int_eq(moe_ckpt_read(o.ck, t, 13, buf, 7), 0);
		ck_assert(memcmp(buf, (const unsigned char *)st0 + 13, 7) == 0);
		ck_assert_int_eq(moe_ckpt_read(o.ck, t, 1, buf, 3), 0);
		ck_assert(memcmp(buf, (const unsigned char *)st0 + 1, 3) == 0);
		ck_assert_int_eq(moe_ckpt_read(o.ck, t, 20, buf, 8), MOE_EINVAL);
		ck_assert_int_eq(moe_ckpt_map(o.ck, t, (const void **)&buf), MOE_ESEEK);
		close_mode(&o);
		free(z.p);
	}
}
END_TEST

START_TEST(pipe_refuses_going_back)
{
	struct tz_buf z;
	struct opened o;
	const struct moe_tensor *t;
	unsigned char buf[32];

	basic(&z, 2, 0, "archive");
	ck_assert_int_eq(open_mode(&o, &z, M_PIPE), 0);
	expect_values(o.ck, "emb", st2, sizeof st2);
	t = moe_ckpt_find(o.ck, "b");
	ck_assert_int_eq(moe_ckpt_read(o.ck, t, 0, buf, 8), MOE_ESEEK);
	ck_assert(strstr(moe_ckpt_errstr(o.ck), "storage order") != NULL);
	close_mode(&o);
	free(z.p);
}
END_TEST

/* A view deep inside a large storage: the reader skips most of it (through
 * its own scratch buffer, never the one libarchive is reading from). */
START_TEST(view_far_into_storage)
{
	static unsigned char big[200000];
	struct tz_tensor t = { "tail", "ByteStorage", "0", sizeof big, 150001, 1, { 256 }, { 1 }, 0 };
	struct tz_storage st = { "0", big, sizeof big };
	struct tz_pickler pk;

	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (unsigned char)(i * 7 + (i >> 9));
	pk_begin(&pk, 2);
	pk_state_dict(&pk, &t, 1);
	pk_end(&pk);
	for (int m = 0; m < M_COUNT; m++) {
		struct tz_buf z = { 0 };
		struct opened o;
		tz_checkpoint(&z, "archive", &pk.b, &st, 1, 0, 0);
		ck_assert_int_eq(open_mode(&o, &z, (enum mode)m), 0);
		expect_values(o.ck, "tail", big + 150001, 256);
		close_mode(&o);
		free(z.p);
	}
	free(pk.b.p);
}
END_TEST

/* Newer torch writes storages in numeric key order and says so in
 * .format_version; older torch in text order. A pipe must know which. */
START_TEST(storage_member_order)
{
	for (int numeric = 0; numeric < 2; numeric++) {
		struct tz_tensor t[12];
		struct tz_storage s[12];
		char keys[12][16], names[12][16];
		uint16_t data[12][3];
		struct tz_pickler pk;
		struct tz_buf z = { 0 };
		struct opened o;
		size_t order[12], idx[12];

		for (int i = 0; i < 12; i++) {
			snprintf(keys[i], sizeof keys[i], "%d", i);
			snprintf(names[i], sizeof names[i], "t%d", i);
			for (int k = 0; k < 3; k++)
				data[i][k] = (uint16_t)(i * 10 + k);
			t[i] = (struct tz_tensor){ names[i], "BFloat16Storage", keys[i], 3, 0, 1,
				{ 3 }, { 1 }, 0 };
			order[i] = (size_t)i;
		}
		if (!numeric) {  /* "0" "1" "10" "11" "2" ... */
			for (int i = 0; i < 12; i++)
				for (int j = i + 1; j < 12; j++)
					if (strcmp(keys[order[j]], keys[order[i]]) < 0) {
						size_t x = order[i]; order[i] = order[j]; order[j] = x;
					}
		}
		for (int i = 0; i < 12; i++)
			s[i] = (struct tz_storage){ keys[order[i]], data[order[i]], 6 };
		pk_begin(&pk, 2);
		pk_state_dict(&pk, t, 12);
		pk_end(&pk);
		tz_checkpoint(&z, "archive", &pk.b, s, 12, numeric, 0);
		ck_assert_int_eq(open_mode(&o, &z, M_PIPE), 0);
		moe_ckpt_storage_order(o.ck, idx);
		for (int i = 0; i < 12; i++) {
			const struct moe_tensor *tt = moe_ckpt_tensor(o.ck, idx[i]);
			ck_assert_str_eq(tt->name, names[order[i]]);
			ck_assert_int_eq(tt->dtype, MOE_DT_BF16);
			expect_values(o.ck, tt->name, data[order[i]], 6);
		}
		close_mode(&o);
		free(z.p);
		free(pk.b.p);
	}
}
END_TEST

START_TEST(every_dtype)
{
	static const struct { const char *st; enum moe_dtype dt; unsigned es; } types[] = {
		{ "FloatStorage", MOE_DT_F32, 4 }, { "HalfStorage", MOE_DT_F16, 2 },
		{ "BFloat16Storage", MOE_DT_BF16, 2 }, { "DoubleStorage", MOE_DT_F64, 8 },
		{ "LongStorage", MOE_DT_I64, 8 }, { "IntStorage", MOE_DT_I32, 4 },
		{ "ShortStorage", MOE_DT_I16, 2 }, { "CharStorage", MOE_DT_I8, 1 },
		{ "ByteStorage", MOE_DT_U8, 1 }, { "BoolStorage", MOE_DT_BOOL, 1 },
		{ "Float8_e4m3fnStorage", MOE_DT_F8_E4M3, 1 },
		{ "Float8_e5m2Storage", MOE_DT_F8_E5M2, 1 },
	};
	struct tz_tensor t[12];
	struct tz_storage s[12];
	char keys[12][4], names[12][32];
	unsigned char data[12][40];
	struct tz_pickler pk;
	struct tz_buf z = { 0 };
	struct opened o;

	for (int i = 0; i < 12; i++) {
		snprintf(keys[i], sizeof keys[i], "%c", 'a' + i);
		snprintf(names[i], sizeof names[i], "layer%d", i);
		for (int k = 0; k < 40; k++)
			data[i][k] = (unsigned char)(i * 16 + k);
		/* (5,) of the 5 elements after skipping none */
		t[i] = (struct tz_tensor){ names[i], types[i].st, keys[i], 5, 0, 1, { 5 }, { 1 }, 0 };
		s[i] = (struct tz_storage){ keys[i], data[i], 5 * types[i].es };
	}
	pk_begin(&pk, 2);
	pk_state_dict(&pk, t, 12);
	pk_end(&pk);
	tz_checkpoint(&z, "archive", &pk.b, s, 12, 0, 0);
	ck_assert_int_eq(open_mode(&o, &z, M_MEMORY), 0);
	for (int i = 0; i < 12; i++) {
		const struct moe_tensor *tt = moe_ckpt_find(o.ck, names[i]);
		ck_assert_int_eq(tt->dtype, types[i].dt);
		expect_values(o.ck, names[i], data[i], 5 * types[i].es);
	}
	close_mode(&o);
	free(z.p);
	free(pk.b.p);
}
END_TEST

static int load_variant(struct tz_buf *z, char *msg, size_t cap, enum mode m)
{
	struct opened o;
	int rc = open_mode(&o, z, m);

	snprintf(msg, cap, "%s", moe_ckpt_errstr(o.ck));
	if (rc == 0) {  /* loads: reading everything must still be clean */
		size_t idx[64], n = moe_ckpt_ntensors(o.ck);
		unsigned char buf[256];
		moe_ckpt_storage_order(o.ck, idx);
		for (size_t i = 0; i < n && rc == 0; i++) {
			const struct moe_tensor *t = moe_ckpt_tensor(o.ck, idx[i]);
			rc = moe_ckpt_read(o.ck, t, 0, buf, t->nbytes);
			snprintf(msg, cap, "%s", moe_ckpt_errstr(o.ck));
		}
	}
	close_mode(&o);
	return rc;
}

START_TEST(bad_files)
{
	struct tz_tensor t = { "w", "FloatStorage", "0", 6, 0, 1, { 6 }, { 1 }, 0 };
	struct tz_storage s = { "0", st0, sizeof st0 }, shorts = { "0", st0, 8 }, other = { "9", st0, 24 };
	struct tz_pickler pk;
	struct tz_buf z = { 0 };
	char msg[600];

	pk_begin(&pk, 2);
	pk_state_dict(&pk, &t, 1);
	pk_end(&pk);
	for (int m = 0; m < M_COUNT; m++) {
		/* storage missing */
		z.n = 0;
		tz_checkpoint(&z, "archive", &pk.b, &other, 1, 0, 0);
		ck_assert_int_eq(load_variant(&z, msg, sizeof msg, (enum mode)m), MOE_EFORMAT);
		ck_assert(strstr(msg, "'archive/data/0' is missing") != NULL);
		/* storage shorter than the pickle says */
		z.n = 0;
		tz_checkpoint(&z, "archive", &pk.b, &shorts, 1, 0, 0);
		ck_assert_int_eq(load_variant(&z, msg, sizeof msg, (enum mode)m), MOE_ETRUNC);
		/* truncated at every 7th prefix: never a crash, an error or a full read */
		z.n = 0;
		tz_checkpoint(&z, "archive", &pk.b, &s, 1, 0, 0);
		for (size_t cut = 0; cut < z.n; cut += 7) {
			struct tz_buf part = { z.p, cut, cut };
			(void)load_variant(&part, msg, sizeof msg, (enum mode)m);
			ck_assert(strchr(msg, '\n') == NULL);
		}
	}
	free(z.p);
	free(pk.b.p);
}
END_TEST

START_TEST(big_endian_and_malicious)
{
	struct tz_member mem[3];
	struct tz_buf z = { 0 };
	struct tz_pickler pk;
	char msg[600];
	struct stat st;
	static const char evil[] = "\x80\x02" "cposix\nsystem\nX\x1a\x00\x00\x00"
		"touch /tmp/moe-torch-pwned\x85R.";

	pk_begin(&pk, 2);
	pk_ordered_dict(&pk);
	pk_end(&pk);
	mem[0] = (struct tz_member){ "archive/data.pkl", pk.b.p, pk.b.n };
	mem[1] = (struct tz_member){ "archive/byteorder", "big", 3 };
	tz_zip(&z, mem, 2, 0);
	for (int m = 0; m < M_COUNT; m++) {
		ck_assert_int_eq(load_variant(&z, msg, sizeof msg, (enum mode)m), MOE_EUNSUP);
		ck_assert(strstr(msg, "big-endian") != NULL);
	}
	free(pk.b.p);

	/* a .pt whose pickle would run "touch marker" */
	unlink("/tmp/moe-torch-pwned");
	memset(&pk, 0, sizeof pk);
	tz_put(&pk.b, evil, sizeof evil - 1);
	mem[0] = (struct tz_member){ "archive/data.pkl", pk.b.p, pk.b.n };
	mem[1] = (struct tz_member){ "archive/byteorder", "little", 6 };
	z.n = 0;
	tz_zip(&z, mem, 2, 0);
	for (int m = 0; m < M_COUNT; m++) {
		ck_assert_int_eq(load_variant(&z, msg, sizeof msg, (enum mode)m), MOE_ESECURITY);
		ck_assert_str_eq(msg, "refusing pickle GLOBAL 'posix system' (only torch state-dict types are allowed)");
	}
	ck_assert_int_ne(stat("/tmp/moe-torch-pwned", &st), 0);
	free(pk.b.p);
	free(z.p);
}
END_TEST

/* A zip whose first member is not data.pkl is an archive, not torch. */
START_TEST(zip_without_pickle)
{
	struct tz_member mem[1] = { { "notes.txt", "hello", 5 } };
	struct tz_buf z = { 0 };
	char msg[600];

	struct tz_member rezipped[2] = { { "archive/version", "3\n", 2 },
		{ "archive/data.pkl", "\x80\x02}.", 4 } };

	tz_zip(&z, mem, 1, 0);
	ck_assert_int_ne(load_variant(&z, msg, sizeof msg, M_MEMORY), 0);
	ck_assert(strstr(msg, "data.pkl") == NULL);
	/* a torch zip in another member order says so instead of "no checkpoint" */
	z.n = 0;
	tz_zip(&z, rezipped, 2, 0);
	for (int m = 0; m < M_COUNT; m++) {
		ck_assert_int_eq(load_variant(&z, msg, sizeof msg, (enum mode)m), MOE_EUNSUP);
		ck_assert(strstr(msg, "first member is not 'archive/data.pkl'") != NULL);
	}
	free(z.p);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("torch");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, round_trip_all_inputs);
	tcase_add_test(tc, random_order_on_files);
	tcase_add_test(tc, pipe_refuses_going_back);
	tcase_add_test(tc, view_far_into_storage);
	tcase_add_test(tc, storage_member_order);
	tcase_add_test(tc, every_dtype);
	tcase_add_test(tc, bad_files);
	tcase_add_test(tc, big_endian_and_malicious);
	tcase_add_test(tc, zip_without_pickle);
	suite_add_tcase(s, tc);
	return moe_test_run(s);
}
