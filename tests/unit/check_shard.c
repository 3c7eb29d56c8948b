/* Tests of the sharded writer and of loading sharded checkpoints through index.json. */
#include <stdint.h>
#include <sys/stat.h>

#include "ckpt_impl.h"
#include "safetensors.h"
#include "shard.h"
#include "testutil.h"

struct tt {
	const char *name;
	enum moe_dtype dt;
	int ndim;
	uint64_t shape[2];
};

/* 16, 16, 40, 8 and 0 bytes of data; the big one is the largest. */
static const struct tt tts[] = {
	{ "model.layers.0.mlp.gate.weight", MOE_DT_F32, 2, { 2, 2 } },
	{ "model.layers.0.mlp.experts.0.up_proj.weight", MOE_DT_BF16, 2, { 2, 4 } },
	{ "model.embed_tokens.weight", MOE_DT_F32, 2, { 2, 5 } },
	{ "lm_head.weight", MOE_DT_U8, 1, { 8 } },
	{ "empty", MOE_DT_F16, 1, { 0 } },
};
#define NTT (sizeof tts / sizeof tts[0])
#define TOTAL 80

static char tmpdir[64];

static void setup(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/moe-shard-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void rm_rf(const char *dir)
{
	char cmd[256];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static void teardown(void)
{
	rm_rf(tmpdir);
}

static char *path_in(const char *dir, const char *name)
{
	char *p;

	ck_assert_int_ge(asprintf(&p, "%s/%s", dir, name), 0);
	return p;
}

static int exists(const char *dir, const char *name)
{
	char *p = path_in(dir, name);
	int r = access(p, F_OK) == 0;

	free(p);
	return r;
}

/* Declares tts, writes `ndata` bytes (value = index) in chunks of 3 and
 * finishes; returns the first failing code. */
static int write_sharded(const char *dir, uint64_t max, unsigned flags, size_t ndata,
	size_t *nshards, char *err, size_t errlen)
{
	struct moe_shard_writer *w;
	unsigned char buf[3];
	int rc;

	ck_assert_int_eq(moe_shard_writer_new(&w, dir, max, flags), 0);
	rc = moe_shard_writer_set_meta(w, "format", "pt");
	for (size_t i = 0; rc == 0 && i < NTT; i++)
		rc = moe_shard_writer_add_tensor(w, tts[i].name, tts[i].dt, tts[i].ndim,
			tts[i].shape);
	if (rc == 0)
		rc = moe_shard_writer_begin_data(w);
	for (size_t at = 0; rc == 0 && at < ndata; at += 3) {
		size_t k = ndata - at < 3 ? ndata - at : 3;
		for (size_t j = 0; j < k; j++)
			buf[j] = (unsigned char)(at + j);
		rc = moe_shard_writer_write(w, buf, k);
	}
	if (rc == 0)
		rc = moe_shard_writer_finish(w);
	if (nshards)
		*nshards = moe_shard_writer_nshards(w);
	snprintf(err, errlen, "%s", rc ? moe_shard_writer_errstr(w) : "");
	moe_shard_writer_free(w);
	return rc;
}

/* Loads path and checks every tensor's bytes against the written pattern. */
static struct moe_ckpt *load_and_check(const char *path)
{
	struct moe_ckpt *ck;
	unsigned char buf[64];
	size_t at = 0;

	ck_assert_int_eq(moe_ckpt_new(&ck), 0);
	if (moe_ckpt_open(ck, path) != 0)
		ck_abort_msg("%s: %s", path, moe_ckpt_errstr(ck));
	ck_assert_uint_eq(moe_ckpt_ntensors(ck), NTT);
	for (size_t i = 0; i < NTT; i++) {
		const struct moe_tensor *t = moe_ckpt_find(ck, tts[i].name);
		ck_assert_ptr_nonnull(t);
		ck_assert_int_eq(t->dtype, tts[i].dt);
		ck_assert_int_eq(moe_ckpt_read(ck, t, 0, buf, t->nbytes), 0);
		for (uint64_t j = 0; j < t->nbytes; j++)
			ck_assert_uint_eq(buf[j], (unsigned char)(at + j));
		at += t->nbytes;
	}
	return ck;
}

/* Shard file (base name) of tensor i. */
static const char *shard_of(struct moe_ckpt *ck, size_t i)
{
	const char *f = moe_ckpt_file_name(ck, moe_ckpt_find(ck, tts[i].name)->file);

	return strrchr(f, '/') + 1;
}

START_TEST(shard_plans)
{
	static const struct { uint64_t max; size_t n; int shard[NTT]; } plans[] = {
		{ 1, 5, { 1, 2, 3, 4, 5 } },          /* one tensor per shard */
		{ UINT64_MAX, 1, { 1, 1, 1, 1, 1 } }, /* all in one */
		{ 32, 3, { 1, 1, 2, 3, 3 } },         /* 40 bytes > max: own shard */
		{ 40, 3, { 1, 1, 2, 3, 3 } },
		{ 72, 2, { 1, 1, 1, 2, 2 } },   /* fills to exactly max */
	};
	char err[512], name[64], *idx;
	struct moe_ckpt *ck;
	size_t n;

	for (size_t p = 0; p < sizeof plans / sizeof plans[0]; p++) {
		char sub[128];
		snprintf(sub, sizeof sub, "%s/out%zu", tmpdir, p);
		if (write_sharded(sub, plans[p].max, 0, TOTAL, &n, err, sizeof err) != 0)
			ck_abort_msg("plan %zu: %s", p, err);
		ck_assert_uint_eq(n, plans[p].n);
		ck = load_and_check(sub);
		ck_assert(moe_ckpt_source(ck) & MOE_SRC_INDEX);
		ck_assert_int_eq(moe_ckpt_format(ck), MOE_FMT_SAFETENSORS);
		for (size_t i = 0; i < NTT; i++) {
			snprintf(name, sizeof name, "model-%05d-of-%05zu.safetensors",
				plans[p].shard[i], n);
			ck_assert_str_eq(shard_of(ck, i), name);
		}
		moe_ckpt_free(ck);
		/* the index file on its own loads the same */
		idx = path_in(sub, "model.safetensors.index.json");
		moe_ckpt_free(load_and_check(idx));
		free(idx);
	}
}
END_TEST

START_TEST(index_file_layout)
{
	static const char want[] =
		"{\n"
		"  \"metadata\": {\n"
		"    \"total_size\": 80\n"
		"  },\n"
		"  \"weight_map\": {\n"
		"    \"empty\": \"model-00002-of-00002.safetensors\",\n"
		"    \"lm_head.weight\": \"model-00002-of-00002.safetensors\",\n"
		"    \"model.embed_tokens.weight\": \"model-00001-of-00002.safetensors\",\n"
		"    \"model.layers.0.mlp.experts.0.up_proj.weight\": \"model-00001-of-00002.safetensors\",\n"
		"    \"model.layers.0.mlp.gate.weight\": \"model-00001-of-00002.safetensors\"\n"
		"  }\n"
		"}\n";
	char err[512], *p, got[1024];
	FILE *f;
	size_t n;

	ck_assert_int_eq(write_sharded(tmpdir, 72, 0, TOTAL, NULL, err, sizeof err), 0);
	p = path_in(tmpdir, "model.safetensors.index.json");
	f = fopen(p, "r");
	ck_assert_ptr_nonnull(f);
	n = fread(got, 1, sizeof got - 1, f);
	got[n] = '\0';
	fclose(f);
	free(p);
	ck_assert_str_eq(got, want);
}
END_TEST

START_TEST(overwrite_and_failure)
{
	char err[512];
	size_t n;

	ck_assert_int_eq(write_sharded(tmpdir, 32, 0, TOTAL, &n, err, sizeof err), 0);
	/* refused without force, before anything is written */
	ck_assert_int_eq(write_sharded(tmpdir, 32, 0, TOTAL, &n, err, sizeof err), MOE_EEXIST);
	ck_assert_ptr_nonnull(strstr(err, "model-00001-of-00003.safetensors' exists"));
	ck_assert(exists(tmpdir, "model.safetensors.index.json"));
	/* a forced run that fails removes the old index and writes none */
	ck_assert_int_eq(write_sharded(tmpdir, 32, MOE_SHARD_FORCE, 50, &n, err, sizeof err),
		MOE_EINVAL);
	ck_assert_str_eq(err, "model-00002-of-00003.safetensors: "
		"tensor 'model.embed_tokens.weight' is missing 22 bytes");
	ck_assert(!exists(tmpdir, "model.safetensors.index.json"));
	/* too much data */
	ck_assert_int_eq(write_sharded(tmpdir, 32, MOE_SHARD_FORCE, TOTAL + 1, &n, err, sizeof err),
		MOE_EINVAL);
	ck_assert_str_eq(err, "1 bytes of data beyond the last tensor");
	ck_assert(!exists(tmpdir, "model.safetensors.index.json"));
	/* and a good forced run replaces everything */
	ck_assert_int_eq(write_sharded(tmpdir, 32, MOE_SHARD_FORCE, TOTAL, &n, err, sizeof err), 0);
	moe_ckpt_free(load_and_check(tmpdir));
}
END_TEST

START_TEST(writer_refusals)
{
	struct moe_shard_writer *w;
	uint64_t sh = 4;
	char *file;

	ck_assert_int_eq(moe_shard_writer_new(&w, tmpdir, 100, 0), 0);
	ck_assert_int_eq(moe_shard_writer_add_tensor(w, "a", MOE_DT_F32, 1, &sh), 0);
	ck_assert_int_eq(moe_shard_writer_add_tensor(w, "a", MOE_DT_F32, 1, &sh), MOE_EINVAL);
	ck_assert_str_eq(moe_shard_writer_errstr(w), "duplicate tensor 'a'");
	moe_shard_writer_free(w);

	ck_assert_int_eq(moe_shard_writer_new(&w, tmpdir, 100, 0), 0);
	ck_assert_int_eq(moe_shard_writer_add_tensor(w, "q", MOE_DT_Q8_0, 1, &sh), MOE_EUNSUP);
	moe_shard_writer_free(w);

	ck_assert_int_eq(moe_shard_writer_new(&w, tmpdir, 100, 0), 0);
	ck_assert_int_eq(moe_shard_writer_begin_data(w), MOE_EINVAL);
	ck_assert_str_eq(moe_shard_writer_errstr(w), "no tensors to write");
	moe_shard_writer_free(w);

	/* the output directory's place is taken by a file */
	file = path_in(tmpdir, "f");
	fclose(fopen(file, "w"));
	ck_assert_int_eq(moe_shard_writer_new(&w, file, 100, 0), 0);
	ck_assert_int_eq(moe_shard_writer_add_tensor(w, "a", MOE_DT_F32, 1, &sh), 0);
	ck_assert_int_eq(moe_shard_writer_begin_data(w), MOE_EIO);
	ck_assert_ptr_nonnull(strstr(moe_shard_writer_errstr(w), "cannot create directory"));
	moe_shard_writer_free(w);
	free(file);
}
END_TEST

/* ---- index loading ---- */

static void put_n(const char *dir, const char *name, const char *text, size_t n)
{
	char *p = path_in(dir, name);
	FILE *f = fopen(p, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(text, 1, n, f), n);
	fclose(f);
	free(p);
}

static void put(const char *dir, const char *name, const char *text)
{
	put_n(dir, name, text, strlen(text));
}

static int open_err(const char *path, char *err, size_t errlen)
{
	struct moe_ckpt *ck;
	int rc;

	ck_assert_int_eq(moe_ckpt_new(&ck), 0);
	rc = moe_ckpt_open(ck, path);
	snprintf(err, errlen, "%s", moe_ckpt_errstr(ck));
	moe_ckpt_free(ck);
	return rc;
}

#define IDX(map) "{\"metadata\":{\"total_size\":80},\"weight_map\":{" map "}}"
#define S1 "model-00001-of-00002.safetensors"
#define S2 "model-00002-of-00002.safetensors"
#define GOOD_MAP "\"model.layers.0.mlp.gate.weight\":\"" S1 "\"," \
	"\"model.layers.0.mlp.experts.0.up_proj.weight\":\"" S1 "\"," \
	"\"model.embed_tokens.weight\":\"" S1 "\",\"lm_head.weight\":\"" S2 "\"," \
	"\"empty\":\"" S2 "\""

START_TEST(bad_indexes)
{
	static const struct { const char *index; int code; const char *msg; } cases[] = {
		{ IDX(GOOD_MAP), 0, "" },
		{ "{\"metadata\":{\"total_size\":81},\"weight_map\":{" GOOD_MAP "}}", MOE_EFORMAT,
		  "index: metadata.total_size is 81 but the shards hold 80 bytes" },
		{ "{\"metadata\":{\"total_size\":80.0},\"weight_map\":{" GOOD_MAP "}}", 0, "" },
		{ "{\"weight_map\":{" GOOD_MAP "}}", 0, "" },
		{ "{\"metadata\":{\"total_size\":\"80\"},\"weight_map\":{" GOOD_MAP "}}",
		  MOE_EFORMAT, "total_size is not a non-negative number" },
		{ IDX("\"a\":\"../../etc/passwd\""), MOE_ESECURITY,
		  "index: shard name '../../etc/passwd' of tensor 'a' is not a plain file name "
		  "(refusing path traversal)" },
		{ IDX("\"a\":\"/etc/passwd\""), MOE_ESECURITY, "refusing path traversal" },
		{ IDX("\"a\":\"..\""), MOE_ESECURITY, "refusing path traversal" },
		{ IDX("\"a\":\"\""), MOE_ESECURITY, "refusing path traversal" },
		{ IDX("\"a\":3"), MOE_EFORMAT, "index: shard of tensor 'a' is not a string" },
		{ IDX(GOOD_MAP ",\"extra\":\"model-00009-of-00009.safetensors\""), MOE_ENOENT,
		  "missing shard 'model-00009-of-00009.safetensors'" },
		{ IDX(GOOD_MAP ",\"extra\":\"" S2 "\""), MOE_EFORMAT,
		  "tensor 'extra' listed in the index is missing from shard '" S2 "'" },
		{ IDX("\"model.layers.0.mlp.gate.weight\":\"" S2 "\","
		  "\"model.layers.0.mlp.experts.0.up_proj.weight\":\"" S1 "\","
		  "\"model.embed_tokens.weight\":\"" S1 "\",\"lm_head.weight\":\"" S2 "\","
		  "\"empty\":\"" S2 "\""), MOE_EFORMAT,
		  "tensor 'model.layers.0.mlp.gate.weight' is in shard '" S1
		  "' but the index lists it in '" S2 "'" },
		{ IDX("\"model.layers.0.mlp.gate.weight\":\"" S1 "\","
		  "\"model.embed_tokens.weight\":\"" S1 "\",\"lm_head.weight\":\"" S2 "\","
		  "\"empty\":\"" S2 "\""), MOE_EFORMAT,
		  "tensor 'model.layers.0.mlp.experts.0.up_proj.weight' in shard '" S1
		  "' is not listed in the index" },
		{ IDX("\"a\":\"config.json\""), MOE_EFORMAT,
		  "shard 'config.json' is not a checkpoint file" },
		{ IDX("\"a\":\"model.safetensors.index.json\""), MOE_EFORMAT,
		  "shard 'model.safetensors.index.json' is not a checkpoint file" },
		{ IDX("\"a\":\"broken.safetensors\""), MOE_ETRUNC,
		  "broken.safetensors: header length 1000 is larger than the file" },
		{ "{\"metadata\":[],\"weight_map\":{" GOOD_MAP "}}", MOE_EFORMAT,
		  "index: metadata is not an object" },
	};
	char err[600], *idx;

	ck_assert_int_eq(write_sharded(tmpdir, 72, 0, TOTAL, NULL, err, sizeof err), 0);
	put(tmpdir, "config.json", "{\"model_type\":\"x\"}");
	put_n(tmpdir, "broken.safetensors", "\xe8\x03\0\0\0\0\0\0{}", 10);
	idx = path_in(tmpdir, "model.safetensors.index.json");
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int rc;
		put(tmpdir, "model.safetensors.index.json", cases[i].index);
		rc = open_err(tmpdir, err, sizeof err);
		if (rc != cases[i].code || strstr(err, cases[i].msg) == NULL)
			ck_abort_msg("case %zu: got %d '%s'", i, rc, err);
		/* the index named directly behaves the same */
		ck_assert_int_eq(open_err(idx, err, sizeof err), cases[i].code);
	}
	free(idx);
}
END_TEST

/* Only headers are read when a sharded checkpoint is listed. */
START_TEST(listing_reads_headers_only)
{
	struct moe_shard_writer *w;
	struct moe_ckpt *ck;
	uint64_t sh[2] = { 256, 1024 }, hdr = 0;
	static unsigned char buf[1 << 16];
	char name[2200], *idx;
	struct stat st;

	/* 6 tensors of 512 KiB in 3 shards */
	ck_assert_int_eq(moe_shard_writer_new(&w, tmpdir, 1 << 20, 0), 0);
	for (int i = 0; i < 6; i++) {
		snprintf(name, sizeof name, "model.layers.%d.mlp.experts.%d.down_proj.weight"
			"-with-a-long-name-to-make-the-header-larger-than-a-page-%02000d", i, i, i);
		ck_assert_int_eq(moe_shard_writer_add_tensor(w, name, MOE_DT_BF16, 2, sh), 0);
	}
	ck_assert_int_eq(moe_shard_writer_begin_data(w), 0);
	for (int i = 0; i < 6 * 8; i++)
		ck_assert_int_eq(moe_shard_writer_write(w, buf, sizeof buf), 0);
	ck_assert_int_eq(moe_shard_writer_finish(w), 0);
	ck_assert_uint_eq(moe_shard_writer_nshards(w), 3);
	moe_shard_writer_free(w);

	ck_assert_int_eq(moe_ckpt_new(&ck), 0);
	ck_assert_int_eq(moe_ckpt_open(ck, tmpdir), 0);
	ck_assert_uint_eq(moe_ckpt_ntensors(ck), 6);
	ck_assert_uint_eq(moe_ckpt_nfiles(ck), 3);
	for (size_t i = 0; i < 3; i++) {
		const struct moe_tensor *t = moe_ckpt_tensor(ck, 2 * i);
		ck_assert_uint_eq(t->file, i);
		hdr += t->offset;   /* first tensor of each shard starts after the header */
	}
	/* exactly the headers, plus the index JSON itself */
	idx = path_in(tmpdir, "model.safetensors.index.json");
	ck_assert_int_eq(stat(idx, &st), 0);
	free(idx);
	if (moe_ckpt_bytes_read(ck) != hdr + (uint64_t)st.st_size)
		ck_abort_msg("read %llu bytes for %llu bytes of headers and a %lld-byte index",
			(unsigned long long)moe_ckpt_bytes_read(ck), (unsigned long long)hdr,
			(long long)st.st_size);
	moe_ckpt_free(ck);
}
END_TEST

/* A directory of shards without an index is loaded too. */
START_TEST(directory_without_index)
{
	char err[512], *idx;

	ck_assert_int_eq(write_sharded(tmpdir, 32, 0, TOTAL, NULL, err, sizeof err), 0);
	idx = path_in(tmpdir, "model.safetensors.index.json");
	ck_assert_int_eq(unlink(idx), 0);
	free(idx);
	moe_ckpt_free(load_and_check(tmpdir));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("shard");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, shard_plans);
	tcase_add_test(tc, index_file_layout);
	tcase_add_test(tc, overwrite_and_failure);
	tcase_add_test(tc, writer_refusals);
	tcase_add_test(tc, bad_indexes);
	tcase_add_test(tc, listing_reads_headers_only);
	tcase_add_test(tc, directory_without_index);
	suite_add_tcase(s, tc);
	return moe_test_run(s);
}
