/* Tests of checkpoints inside tar / tar.gz / tar.xz / tar.zst / tar.bz2 / zip archives, built with libarchive's writer. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <stdio.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "ckpt.h"
#include "ckpt_impl.h"
#include "error.h"
#include "testutil.h"
#include "torchzip.h"

/* ---- inputs for the archives ---- */

/* safetensors: u64 header length, JSON header (space padded to 8), data. */
static void safetensors(struct tz_buf *b, const char *name, const float *v, int rows, int cols)
{
	char hdr[256];
	int n = snprintf(hdr, sizeof hdr,
		"{\"%s\":{\"dtype\":\"F32\",\"shape\":[%d,%d],\"data_offsets\":[0,%d]}}",
		name, rows, cols, rows * cols * 4);

	while (n % 8)
		hdr[n++] = ' ';
	memset(b, 0, sizeof *b);
	tz_le(b, (uint64_t)n, 8);
	tz_put(b, hdr, (size_t)n);
	tz_put(b, v, (size_t)(rows * cols) * 4);
}

static void gstr(struct tz_buf *b, const char *s)
{
	tz_le(b, strlen(s), 8);
	tz_put(b, s, strlen(s));
}

/* GGUF v3 with one KV and one F32 tensor of ggml ne {cols, rows}. */
static void gguf(struct tz_buf *b, const char *name, const float *v, int rows, int cols)
{
	memset(b, 0, sizeof *b);
	tz_put(b, "GGUF", 4);
	tz_le(b, 3, 4);
	tz_le(b, 1, 8);
	tz_le(b, 1, 8);
	gstr(b, "general.architecture");
	tz_le(b, 8, 4);
	gstr(b, "llama");
	gstr(b, name);
	tz_le(b, 2, 4);
	tz_le(b, (uint64_t)cols, 8);
	tz_le(b, (uint64_t)rows, 8);
	tz_le(b, 0, 4);
	tz_le(b, 0, 8);
	while (b->n % 32)
		tz_u8(b, 0);
	tz_put(b, v, (size_t)(rows * cols) * 4);
}

static const float va[6] = { 1, 2, 3, 4, 5, 6 };
static const float vb[4] = { -1, -2, -3, -4 };
static const float vg[6] = { 0.5f, 1.5f, 2.5f, 3.5f, 4.5f, 5.5f };
static const float vt[6] = { 7, 8, 9, 10, 11, 12 };

/* torch.save-style zip with a transposed view and a second storage. */
static void torch_pt(struct tz_buf *z)
{
	struct tz_tensor t[3] = {
		{ "t", "FloatStorage", "0", 6, 0, 2, { 2, 3 }, { 3, 1 }, 0 },
		{ "tt", "FloatStorage", "0", 6, 0, 2, { 3, 2 }, { 1, 3 }, 0 },
		{ "u", "FloatStorage", "1", 4, 0, 2, { 2, 2 }, { 2, 1 }, 0 },
	};
	struct tz_storage s[2] = { { "0", vt, sizeof vt }, { "1", vb, sizeof vb } };
	struct tz_pickler pk;

	pk_begin(&pk, 2);
	pk_state_dict(&pk, t, 3);
	pk_end(&pk);
	memset(z, 0, sizeof *z);
	tz_checkpoint(z, "archive", &pk.b, s, 2, 0, 0);
	free(pk.b.p);
}

/* ---- archive writer ---- */

struct member {
	const char *path;
	const void *data;   /* NULL: directory */
	size_t n;
};

static la_ssize_t wcb(struct archive *a, void *ctx, const void *buf, size_t n)
{
	(void)a;
	tz_put(ctx, buf, n);
	return (la_ssize_t)n;
}

/* fmt "tar" or "zip"; filter NULL, "gzip", "xz", "zstd", "bzip2"; opts for zip. */
static int build(struct tz_buf *out, const char *fmt, const char *filter, const char *opts,
	const struct member *m, size_t n)
{
	struct archive *a = archive_write_new();
	int ok = 1;

	memset(out, 0, sizeof *out);
	if (strcmp(fmt, "zip") == 0)
		archive_write_set_format_zip(a);
	else
		archive_write_set_format_pax_restricted(a);
	if (filter && archive_write_add_filter_by_name(a, filter) != ARCHIVE_OK)
		ok = 0;
	if (ok && opts)
		archive_write_set_options(a, opts);
	archive_write_set_bytes_in_last_block(a, 1);
	if (ok && archive_write_open(a, out, NULL, wcb, NULL) != ARCHIVE_OK)
		ok = 0;
	for (size_t i = 0; ok && i < n; i++) {
		struct archive_entry *e = archive_entry_new();
		archive_entry_set_pathname(e, m[i].path);
		archive_entry_set_filetype(e, m[i].data ? AE_IFREG : AE_IFDIR);
		archive_entry_set_perm(e, 0644);
		archive_entry_set_size(e, m[i].data ? (la_int64_t)m[i].n : 0);
		if (archive_write_header(a, e) != ARCHIVE_OK)
			ok = 0;
		if (ok && m[i].data && archive_write_data(a, m[i].data, m[i].n) != (la_ssize_t)m[i].n)
			ok = 0;
		archive_entry_free(e);
	}
	if (archive_write_close(a) != ARCHIVE_OK)
		ok = 0;
	archive_write_free(a);
	return ok;
}

/* ---- opening ---- */

enum mode { M_MEMORY, M_FILE, M_PIPE, M_COUNT };

struct opened {
	struct moe_ckpt *ck;
	struct moe_test_chunks pipe;
	char path[96];
};

static char tmpdir[64];

static int open_mode(struct opened *o, const struct tz_buf *z, enum mode m, const char *name)
{
	struct moe_input *in;
	FILE *f;

	memset(o, 0, sizeof *o);
	ck_assert_int_eq(moe_ckpt_new(&o->ck), 0);
	switch (m) {
	case M_MEMORY:
		return moe_ckpt_open_memory(o->ck, z->p, z->n, name);
	case M_FILE:
		snprintf(o->path, sizeof o->path, "%s/%s", tmpdir, name);
		ck_assert_ptr_nonnull(f = fopen(o->path, "wb"));
		ck_assert_uint_eq(fwrite(z->p, 1, z->n, f), z->n);
		fclose(f);
		return moe_ckpt_open(o->ck, o->path);
	default:
		o->pipe = (struct moe_test_chunks){ z->p, z->n, 0, 10007 };
		ck_assert_int_eq(moe_input_open_fn(&in, name, moe_test_chunk_read, &o->pipe, -1), 0);
		return moe_ckpt_load_input(o->ck, in, name);
	}
}

static void close_mode(struct opened *o)
{
	moe_ckpt_free(o->ck);
	if (o->path[0])
		unlink(o->path);
}

/* Nothing may be left in the spool directory. */
static void spool_dir_empty(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *de;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	ck_assert_int_eq(n, 0);
}

static void expect(struct moe_ckpt *ck, const char *name, const float *want, size_t n)
{
	const struct moe_tensor *t = moe_ckpt_find(ck, name);
	float buf[16];

	if (t == NULL)
		ck_abort_msg("no tensor '%s'", name);
	ck_assert_uint_eq(t->nbytes, n * 4);
	if (moe_ckpt_read(ck, t, 0, buf, n * 4) != 0)
		ck_abort_msg("reading '%s': %s", name, moe_ckpt_errstr(ck));
	ck_assert(memcmp(buf, want, n * 4) == 0);
}

static const char index_json[] =
	"{\"metadata\":{\"total_size\":40},\"weight_map\":{"
	"\"a\":\"model-00001-of-00002.safetensors\",\"b\":\"model-00002-of-00002.safetensors\"}}";
static const char config_json[] = "{\"model_type\":\"mixtral\",\"num_local_experts\":8}";

static const struct { const char *fmt, *filter, *opts, *ext; } kinds[] = {
	{ "tar", NULL, NULL, "tar" },
	{ "tar", "gzip", NULL, "tar.gz" },
	{ "tar", "xz", NULL, "tar.xz" },
	{ "tar", "zstd", NULL, "tar.zst" },
	{ "tar", "bzip2", NULL, "tar.bz2" },
	{ "zip", NULL, NULL, "zip" },
	{ "zip", NULL, "zip:compression=store", "zip" },
};

START_TEST(sharded_safetensors_everywhere)
{
	struct tz_buf s1, s2, g, arc;

	safetensors(&s1, "a", va, 2, 3);
	safetensors(&s2, "b", vb, 2, 2);
	gguf(&g, "g", vg, 2, 3);
	for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
		struct member m[] = {
			{ "model/", NULL, 0 },
			{ "model/README.md", "# hi\n", 5 },
			{ "model/config.json", config_json, sizeof config_json - 1 },
			{ "model/model-00001-of-00002.safetensors", s1.p, s1.n },
			{ "model/model-00002-of-00002.safetensors", s2.p, s2.n },
			{ "model/model.safetensors.index.json", index_json, sizeof index_json - 1 },
			{ "model/extra/tiny.gguf", g.p, g.n },
			{ "model/tokenizer.json", "{\"model\":{\"type\":\"BPE\"}}", 24 },
		};
		char name[64], fname[256];
		if (!build(&arc, kinds[k].fmt, kinds[k].filter, kinds[k].opts, m, 8)) {
			fprintf(stderr, "note: libarchive cannot write %s here; skipped\n", kinds[k].ext);
			free(arc.p);
			continue;
		}
		snprintf(name, sizeof name, "m.%s", kinds[k].ext);
		for (int mode = 0; mode < M_COUNT; mode++) {
			struct opened o;
			json_t *cfg;
			if (open_mode(&o, &arc, (enum mode)mode, name) != 0)
				ck_abort_msg("%s mode %d: %s", name, mode, moe_ckpt_errstr(o.ck));
			ck_assert(moe_ckpt_source(o.ck) & MOE_SRC_ARCHIVE);
			ck_assert(moe_ckpt_source(o.ck) & MOE_SRC_INDEX);
			ck_assert_int_eq(moe_ckpt_format(o.ck), MOE_FMT_MIXED);
			ck_assert_uint_eq(moe_ckpt_ntensors(o.ck), 3);
			ck_assert_ptr_nonnull(cfg = moe_ckpt_json(o.ck, "config"));
			ck_assert_str_eq(json_string_value(json_object_get(cfg, "model_type")), "mixtral");
			ck_assert_ptr_nonnull(moe_ckpt_json(o.ck, "index"));
			ck_assert_ptr_nonnull(moe_ckpt_json(o.ck, "tokenizer"));
			snprintf(fname, sizeof fname, "%s:model/model-00002-of-00002.safetensors",
				mode == M_FILE ? o.path : name);
			ck_assert_str_eq(moe_ckpt_file_name(o.ck, moe_ckpt_find(o.ck, "b")->file), fname);
			ck_assert_uint_eq(moe_ckpt_find(o.ck, "g")->shape[0], 2);
			/* storage order, then backwards, then again */
			expect(o.ck, "a", va, 6);
			expect(o.ck, "b", vb, 4);
			expect(o.ck, "g", vg, 6);
			expect(o.ck, "b", vb, 4);
			expect(o.ck, "a", va, 6);
			expect(o.ck, "g", vg, 6);
			close_mode(&o);
			spool_dir_empty();
		}
		free(arc.p);
	}
	free(s1.p);
	free(s2.p);
	free(g.p);
}
END_TEST

/* A tensor far into a member, read first: the skip goes through a scratch
 * buffer, never the one libarchive is reading from. */
START_TEST(far_tensor_in_member)
{
	static unsigned char big[200000];
	static const char hdr[] = "{\"big\":{\"dtype\":\"U8\",\"shape\":[200000],"
		"\"data_offsets\":[0,200000]},\"small\":{\"dtype\":\"F32\",\"shape\":[2,3],"
		"\"data_offsets\":[200000,200024]}}";
	struct tz_buf st = { 0 }, arc;
	size_t n = sizeof hdr - 1, pad = (8 - n % 8) % 8;

	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (unsigned char)(i * 13 + (i >> 10));
	tz_le(&st, n + pad, 8);
	tz_put(&st, hdr, n);
	tz_put(&st, "        ", pad);
	tz_put(&st, big, sizeof big);
	tz_put(&st, va, sizeof va);
	for (int k = 0; k < 2; k++) {
		struct member m[] = { { "m/model.safetensors", st.p, st.n } };
		ck_assert(build(&arc, "tar", k ? "gzip" : NULL, NULL, m, 1));
		for (int mode = 0; mode < M_COUNT; mode++) {
			struct opened o;
			const struct moe_tensor *t;
			unsigned char b[300];
			ck_assert_int_eq(open_mode(&o, &arc, (enum mode)mode, "far.tar"), 0);
			expect(o.ck, "small", va, 6);
			t = moe_ckpt_find(o.ck, "big");
			ck_assert_int_eq(moe_ckpt_read(o.ck, t, 150001, b, sizeof b), 0);
			ck_assert(memcmp(b, big + 150001, sizeof b) == 0);
			close_mode(&o);
		}
		free(arc.p);
	}
	free(st.p);
}
END_TEST

/* torch.save zips inside a tar: any order, on any input (the member is
 * read again through the archive when going back). */
START_TEST(torch_in_tar)
{
	struct tz_buf pt, arc;
	static const float tt[6] = { 7, 10, 8, 11, 9, 12 };

	torch_pt(&pt);
	for (size_t k = 0; k < 2; k++) {
		struct member m[] = { { "ckpt/pytorch_model.bin", pt.p, pt.n } };
		ck_assert(build(&arc, kinds[k].fmt, kinds[k].filter, NULL, m, 1));
		for (int mode = 0; mode < M_COUNT; mode++) {
			struct opened o;
			size_t idx[3];
			unsigned char buf[24];
			ck_assert_int_eq(open_mode(&o, &arc, (enum mode)mode, "t.tar"), 0);
			ck_assert_int_eq(moe_ckpt_format(o.ck), MOE_FMT_TORCH);
			ck_assert_uint_eq(moe_ckpt_ntensors(o.ck), 3);
			moe_ckpt_storage_order(o.ck, idx);
			for (int i = 0; i < 3; i++) {
				const struct moe_tensor *t = moe_ckpt_tensor(o.ck, idx[i]);
				if (strcmp(t->name, "u") == 0)
					expect(o.ck, "u", vb, 4);
				else
					expect(o.ck, t->name, strcmp(t->name, "t") == 0 ? vt : tt, 6);
			}
			/* backwards: storage 1, then storage 0 again */
			expect(o.ck, "u", vb, 4);
			expect(o.ck, "tt", tt, 6);
			expect(o.ck, "u", vb, 4);
			/* the second read of the same storage comes from the cache */
			expect(o.ck, "t", vt, 6);
			ck_assert_int_eq(moe_ckpt_read(o.ck, moe_ckpt_find(o.ck, "tt"), 0, buf, 24), 0);
			close_mode(&o);
			spool_dir_empty();
		}
		free(arc.p);
	}
	free(pt.p);
}
END_TEST

START_TEST(config_only_and_empty)
{
	struct tz_buf arc;
	struct member m[] = {
		{ "x/", NULL, 0 },
		{ "x/config.json", config_json, sizeof config_json - 1 },
	};
	struct member none[] = { { "x/notes.txt", "hello", 5 } };

	for (int mode = 0; mode < M_COUNT; mode++) {
		struct opened o;
		ck_assert(build(&arc, "tar", "gzip", NULL, m, 2));
		ck_assert_int_eq(open_mode(&o, &arc, (enum mode)mode, "c.tgz"), 0);
		ck_assert_int_eq(moe_ckpt_format(o.ck), MOE_FMT_CONFIG);
		ck_assert_uint_eq(moe_ckpt_ntensors(o.ck), 0);
		ck_assert_ptr_nonnull(moe_ckpt_json(o.ck, "config"));
		close_mode(&o);
		free(arc.p);

		ck_assert(build(&arc, "tar", NULL, NULL, none, 1));
		ck_assert_int_eq(open_mode(&o, &arc, (enum mode)mode, "n.tar"), MOE_ENOENT);
		ck_assert_str_eq(moe_ckpt_errstr(o.ck), "no checkpoint in archive");
		close_mode(&o);
		free(arc.p);

		ck_assert(build(&arc, "zip", NULL, NULL, none, 1));
		ck_assert_int_eq(open_mode(&o, &arc, (enum mode)mode, "n.zip"), MOE_ENOENT);
		close_mode(&o);
		free(arc.p);
		spool_dir_empty();
	}
}
END_TEST

START_TEST(bad_archives)
{
	struct tz_buf s1, arc, pt = { 0 };
	struct tz_pickler pk;
	static const char evil[] = "\x80\x02" "cbuiltins\neval\nX\x02\x00\x00\x00" "1+\x85R.";
	struct member bad_index[] = {
		{ "m/model-00001-of-00002.safetensors", NULL, 0 },
		{ "m/model.safetensors.index.json", index_json, sizeof index_json - 1 },
	};
	struct member bad_json[] = { { "m/config.json", "{oops", 5 } };
	struct tz_member zm[1];
	char msg[600];

	safetensors(&s1, "a", va, 2, 3);
	bad_index[0].data = s1.p;
	bad_index[0].n = s1.n;
	for (int mode = 0; mode < M_COUNT; mode++) {
		struct opened o;

		ck_assert(build(&arc, "tar", NULL, NULL, bad_index, 2));
		ck_assert_int_eq(open_mode(&o, &arc, (enum mode)mode, "i.tar"), MOE_ENOENT);
		ck_assert(strstr(moe_ckpt_errstr(o.ck), "'m/model-00002-of-00002.safetensors'") != NULL);
		close_mode(&o);
		/* every truncation of a tar.gz fails cleanly or lists what is there */
		free(arc.p);
		ck_assert(build(&arc, "tar", "gzip", NULL, bad_index, 1));
		for (size_t cut = 1; cut < arc.n; cut += 13) {
			struct tz_buf part = { arc.p, cut, cut };
			if (open_mode(&o, &part, (enum mode)mode, "cut.tar.gz") != 0) {
				snprintf(msg, sizeof msg, "%s", moe_ckpt_errstr(o.ck));
				ck_assert(strchr(msg, '\n') == NULL);
				ck_assert(msg[0] != '\0');
			}
			close_mode(&o);
		}
		free(arc.p);

		ck_assert(build(&arc, "tar", NULL, NULL, bad_json, 1));
		ck_assert_int_eq(open_mode(&o, &arc, (enum mode)mode, "j.tar"), MOE_EFORMAT);
		ck_assert(strstr(moe_ckpt_errstr(o.ck), "invalid JSON") != NULL);
		close_mode(&o);
		free(arc.p);

		/* a malicious .pt inside a tar is refused */
		memset(&pk, 0, sizeof pk);
		tz_put(&pk.b, evil, sizeof evil - 1);
		zm[0] = (struct tz_member){ "archive/data.pkl", pk.b.p, pk.b.n };
		pt.n = 0;
		tz_zip(&pt, zm, 1, 0);
		{
			struct member mm[] = { { "x/model.pt", pt.p, pt.n } };
			ck_assert(build(&arc, "tar", NULL, NULL, mm, 1));
		}
		ck_assert_int_eq(open_mode(&o, &arc, (enum mode)mode, "e.tar"), MOE_ESECURITY);
		ck_assert(strstr(moe_ckpt_errstr(o.ck), "'builtins eval'") != NULL);
		close_mode(&o);
		free(arc.p);
		free(pk.b.p);
		spool_dir_empty();
	}
	free(pt.p);
	free(s1.p);
}
END_TEST

/* A spool that cannot be written (file size limit here, a full disk in
 * life): the listing still works, data reads say why they cannot. */
START_TEST(spool_failure_keeps_listing)
{
	static unsigned char big[300000];
	struct tz_buf s1, arc;
	struct rlimit old, lim;
	struct opened o;
	unsigned char b[64];

	safetensors(&s1, "a", va, 2, 3);
	{
		struct member m[] = { { "m/pad.bin", big, sizeof big }, { "m/a.safetensors", s1.p, s1.n } };
		ck_assert(build(&arc, "tar", NULL, NULL, m, 2));
	}
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 65536;
	signal(SIGXFSZ, SIG_IGN);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	ck_assert_int_eq(open_mode(&o, &arc, M_PIPE, "p.tar"), 0);
	ck_assert_uint_eq(moe_ckpt_ntensors(o.ck), 1);
	ck_assert_int_eq(moe_ckpt_read(o.ck, moe_ckpt_find(o.ck, "a"), 0, b, 24), MOE_EIO);
	ck_assert(strstr(moe_ckpt_errstr(o.ck), "spooling to $TMPDIR failed") != NULL);
	close_mode(&o);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	spool_dir_empty();
	free(arc.p);
	free(s1.p);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("archive");
	TCase *tc = tcase_create("core");
	int rc;

	snprintf(tmpdir, sizeof tmpdir, "/tmp/moe-arc.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return 1;
	setenv("TMPDIR", tmpdir, 1);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, sharded_safetensors_everywhere);
	tcase_add_test(tc, far_tensor_in_member);
	tcase_add_test(tc, torch_in_tar);
	tcase_add_test(tc, config_only_and_empty);
	tcase_add_test(tc, bad_archives);
	tcase_add_test(tc, spool_failure_keeps_listing);
	suite_add_tcase(s, tc);
	rc = moe_test_run(s);
	rmdir(tmpdir);
	return rc;
}
