/* Tests of the checkpoint core: sniffing, tensor table checks, reads, directories, config. */
#include <sys/stat.h>

#include "ckpt_impl.h"
#include "testutil.h"

static struct moe_tensor tensor(const char *name, enum moe_dtype t, uint64_t rows,
	uint64_t cols, uint64_t off)
{
	struct moe_tensor x = { .name = (char *)name, .dtype = t, .ndim = 2,
		.shape = { rows, cols }, .offset = off };
	moe_dtype_nbytes(t, rows * cols, &x.nbytes);
	return x;
}

START_TEST(sniffing)
{
	unsigned char tar[512] = { 0 };

	memcpy(tar + 257, "ustar", 5);
	ck_assert_int_eq(moe_sniff_bytes((const unsigned char *)"GGUF\3\0\0\0", 8), MOE_SNIFF_GGUF);
	ck_assert_int_eq(moe_sniff_bytes((const unsigned char *)"\x10\0\0\0\0\0\0\0{\"a\"", 12),
		MOE_SNIFF_SAFETENSORS);
	ck_assert_int_eq(moe_sniff_bytes((const unsigned char *)"PK\3\4", 4), MOE_SNIFF_ZIP);
	ck_assert_int_eq(moe_sniff_bytes(tar, sizeof tar), MOE_SNIFF_TAR);
	ck_assert_int_eq(moe_sniff_bytes((const unsigned char *)"\x1f\x8b\x08", 3), MOE_SNIFF_COMPRESSED);
	ck_assert_int_eq(moe_sniff_bytes((const unsigned char *)"\x28\xb5\x2f\xfd", 4), MOE_SNIFF_COMPRESSED);
	ck_assert_int_eq(moe_sniff_bytes((const unsigned char *)"\x80\x02\x8a\x0a", 4), MOE_SNIFF_LEGACY_TORCH);
	ck_assert_int_eq(moe_sniff_bytes((const unsigned char *)"  \n{\"model_type\"", 16), MOE_SNIFF_JSON);
	ck_assert_int_eq(moe_sniff_bytes((const unsigned char *)"", 0), MOE_SNIFF_EMPTY);
	ck_assert_int_eq(moe_sniff_bytes((const unsigned char *)"hello world", 11), MOE_SNIFF_UNKNOWN);
}
END_TEST

START_TEST(tensor_table_checks_and_reads)
{
	static unsigned char blob[4096];
	struct moe_ckpt *ck;
	struct moe_input *in;
	struct moe_tensor t;
	const void *p;
	unsigned char buf[64];
	size_t order[3];

	for (size_t i = 0; i < sizeof blob; i++)
		blob[i] = (unsigned char)i;
	ck_assert_int_eq(moe_ckpt_new(&ck), 0);
	ck_assert_int_eq(moe_input_open_memory(&in, blob, sizeof blob, "blob"), 0);
	ck_assert_int_eq(moe_ckpt_add_file(ck, "blob", in), 0);
	t = tensor("b", MOE_DT_F32, 2, 4, 1024);
	ck_assert_int_eq(moe_ckpt_add_tensor(ck, &t), 0);
	t = tensor("a", MOE_DT_Q8_0, 2, 32, 0);
	ck_assert_int_eq(moe_ckpt_add_tensor(ck, &t), 0);
	t = tensor("c", MOE_DT_BF16, 1, 8, 512);
	ck_assert_int_eq(moe_ckpt_add_tensor(ck, &t), 0);

	/* rejected: duplicate, bytes mismatch, partial block, bad file */
	t = tensor("a", MOE_DT_F32, 1, 1, 0);
	ck_assert_int_eq(moe_ckpt_add_tensor(ck, &t), MOE_EFORMAT);
	ck_assert_str_eq(moe_ckpt_errstr(ck), "duplicate tensor 'a'");
	t = tensor("d", MOE_DT_F32, 2, 2, 0);
	t.nbytes = 15;
	ck_assert_int_eq(moe_ckpt_add_tensor(ck, &t), MOE_EFORMAT);
	ck_assert_ptr_nonnull(strstr(moe_ckpt_errstr(ck), "15 bytes stored"));
	t = tensor("e", MOE_DT_Q4_0, 1, 32, 0);
	t.shape[1] = 33;
	ck_assert_int_eq(moe_ckpt_add_tensor(ck, &t), MOE_EFORMAT);
	ck_assert_ptr_nonnull(strstr(moe_ckpt_errstr(ck), "block of 32"));
	t = tensor("f", MOE_DT_F32, 1, 1, 0);
	t.file = 7;
	ck_assert_int_eq(moe_ckpt_add_tensor(ck, &t), MOE_EINVAL);
	t = tensor("g", MOE_DT_F32, 1, 1, 0);
	t.ndim = 9;
	ck_assert_int_eq(moe_ckpt_add_tensor(ck, &t), MOE_EFORMAT);
	ck_assert_uint_eq(moe_ckpt_ntensors(ck), 3);

	ck_assert_ptr_eq(moe_ckpt_find(ck, "c"), moe_ckpt_tensor(ck, 2));
	ck_assert_ptr_null(moe_ckpt_find(ck, "zz"));
	ck_assert_uint_eq(moe_tensor_numel(moe_ckpt_find(ck, "a")), 64);
	ck_assert_int_eq(moe_ckpt_read(ck, moe_ckpt_find(ck, "b"), 4, buf, 8), 0);
	ck_assert_uint_eq(buf[0], 1028 & 0xff);
	ck_assert_int_eq(moe_ckpt_read(ck, moe_ckpt_find(ck, "b"), 30, buf, 8), MOE_EINVAL);
	ck_assert_int_eq(moe_ckpt_map(ck, moe_ckpt_find(ck, "c"), &p), 0);
	ck_assert_ptr_eq(p, blob + 512);
	moe_ckpt_storage_order(ck, order);
	ck_assert_uint_eq(order[0], 1);
	ck_assert_uint_eq(order[1], 2);
	ck_assert_uint_eq(order[2], 0);
	moe_ckpt_free(ck);
}
END_TEST

START_TEST(many_names_hash)
{
	static unsigned char blob[16];
	struct moe_ckpt *ck;
	struct moe_input *in;
	char name[64];

	ck_assert_int_eq(moe_ckpt_new(&ck), 0);
	ck_assert_int_eq(moe_input_open_memory(&in, blob, sizeof blob, "blob"), 0);
	ck_assert_int_eq(moe_ckpt_add_file(ck, "blob", in), 0);
	for (int i = 0; i < 20000; i++) {
		struct moe_tensor t = tensor(name, MOE_DT_F32, 1, 1, 0);
		snprintf(name, sizeof name, "model.layers.%d.mlp.experts.%d.w1", i / 64, i % 64);
		ck_assert_int_eq(moe_ckpt_add_tensor(ck, &t), 0);
	}
	for (int i = 0; i < 20000; i += 997) {
		snprintf(name, sizeof name, "model.layers.%d.mlp.experts.%d.w1", i / 64, i % 64);
		ck_assert_ptr_eq(moe_ckpt_find(ck, name), moe_ckpt_tensor(ck, (size_t)i));
	}
	moe_ckpt_free(ck);
}
END_TEST

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

START_TEST(config_file_and_directory)
{
	char dir[] = "/tmp/moe-ck.XXXXXX", path[512];
	struct moe_ckpt *ck;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	/* an empty directory is an error */
	ck_assert_int_eq(moe_ckpt_new(&ck), 0);
	ck_assert_int_eq(moe_ckpt_open(ck, dir), MOE_ENOENT);
	ck_assert_ptr_nonnull(strstr(moe_ckpt_errstr(ck), "no checkpoint"));
	moe_ckpt_free(ck);

	snprintf(path, sizeof path, "%s/config.json", dir);
	write_file(path, "{\"model_type\": \"mixtral\", \"num_local_experts\": 8}");
	snprintf(path, sizeof path, "%s/generation_config.json", dir);
	write_file(path, "{\"do_sample\": true}");
	snprintf(path, sizeof path, "%s/README.md", dir);
	write_file(path, "# not a checkpoint\n");

	ck_assert_int_eq(moe_ckpt_new(&ck), 0);
	ck_assert_int_eq(moe_ckpt_open(ck, dir), 0);
	ck_assert_int_eq(moe_ckpt_format(ck), MOE_FMT_CONFIG);
	ck_assert(moe_ckpt_source(ck) & MOE_SRC_DIR);
	ck_assert_int_eq(json_integer_value(json_object_get(moe_ckpt_json(ck, "config"),
		"num_local_experts")), 8);
	ck_assert_ptr_nonnull(moe_ckpt_json(ck, "generation_config"));
	ck_assert_ptr_null(moe_ckpt_json(ck, "tokenizer_config"));
	moe_ckpt_free(ck);

	/* a bare config.json */
	snprintf(path, sizeof path, "%s/config.json", dir);
	ck_assert_int_eq(moe_ckpt_new(&ck), 0);
	ck_assert_int_eq(moe_ckpt_open(ck, path), 0);
	ck_assert_int_eq(moe_ckpt_format(ck), MOE_FMT_CONFIG);
	ck_assert_uint_eq(moe_ckpt_ntensors(ck), 0);
	ck_assert_uint_gt(moe_ckpt_bytes_read(ck), 0);
	moe_ckpt_free(ck);

	/* broken side file: named in the error */
	snprintf(path, sizeof path, "%s/generation_config.json", dir);
	write_file(path, "{\"do_sample\": tru");
	ck_assert_int_eq(moe_ckpt_new(&ck), 0);
	ck_assert_int_eq(moe_ckpt_open(ck, dir), MOE_EFORMAT);
	ck_assert_ptr_nonnull(strstr(moe_ckpt_errstr(ck), "generation_config.json: invalid JSON"));
	moe_ckpt_free(ck);
	ck_assert_int_eq(system("rm -rf /tmp/moe-ck.*"), 0);
}
END_TEST

/* A repository with the same weights in several formats: safetensors win. */
START_TEST(directory_prefers_safetensors)
{
	static const char hdr[] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
	char dir[] = "/tmp/moe-ck.XXXXXX", path[512];
	unsigned char st[8 + 64] = { 0 }, gguf[24] = { 'G', 'G', 'U', 'F', 3 };
	size_t hl = (sizeof hdr - 1 + 7) / 8 * 8;
	struct moe_ckpt *ck;
	FILE *f;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	memset(st + 8, ' ', hl);
	memcpy(st + 8, hdr, sizeof hdr - 1);
	st[0] = (unsigned char)hl;
	snprintf(path, sizeof path, "%s/model.safetensors", dir);
	ck_assert_ptr_nonnull(f = fopen(path, "wb"));
	fwrite(st, 1, 8 + hl + 4, f);
	fclose(f);
	snprintf(path, sizeof path, "%s/model.gguf", dir);
	ck_assert_ptr_nonnull(f = fopen(path, "wb"));
	fwrite(gguf, 1, sizeof gguf, f);
	fclose(f);
	ck_assert_int_eq(moe_ckpt_new(&ck), 0);
	ck_assert_msg(moe_ckpt_open(ck, dir) == 0, "%s", moe_ckpt_errstr(ck));
	ck_assert_int_eq(moe_ckpt_format(ck), MOE_FMT_SAFETENSORS);
	ck_assert_uint_eq(moe_ckpt_nfiles(ck), 1);
	ck_assert_uint_eq(moe_ckpt_ntensors(ck), 1);
	moe_ckpt_free(ck);
	ck_assert_int_eq(system("rm -rf /tmp/moe-ck.*"), 0);
}
END_TEST

START_TEST(bad_inputs)
{
	struct moe_ckpt *ck;

	ck_assert_int_eq(moe_ckpt_new(&ck), 0);
	ck_assert_int_eq(moe_ckpt_open_memory(ck, "", 0, "e"), MOE_EFORMAT);
	ck_assert_str_eq(moe_ckpt_errstr(ck), "empty input");
	moe_ckpt_free(ck);
	ck_assert_int_eq(moe_ckpt_new(&ck), 0);
	ck_assert_int_eq(moe_ckpt_open_memory(ck, "\x80\x02\x8a\x0alegacy", 10, "l"), MOE_EUNSUP);
	ck_assert_ptr_nonnull(strstr(moe_ckpt_errstr(ck), "unsupported legacy format"));
	moe_ckpt_free(ck);
	ck_assert_int_eq(moe_ckpt_new(&ck), 0);
	ck_assert_int_eq(moe_ckpt_open_memory(ck, "hello", 5, "h"), MOE_EFORMAT);
	ck_assert_str_eq(moe_ckpt_errstr(ck), "not a checkpoint (unknown format)");
	moe_ckpt_free(ck);
	ck_assert_int_eq(moe_ckpt_new(&ck), 0);
	ck_assert_int_eq(moe_ckpt_open_memory(ck, "[1,2]", 5, "j"), MOE_EFORMAT);
	moe_ckpt_free(ck);
	ck_assert_int_eq(moe_ckpt_new(&ck), 0);
	ck_assert_int_eq(moe_ckpt_open_memory(ck, "{\"a\":1,\"a\":2}", 13, "j"), MOE_EFORMAT);
	ck_assert_ptr_nonnull(strstr(moe_ckpt_errstr(ck), "invalid JSON"));
	moe_ckpt_free(ck);
	ck_assert_int_eq(moe_ckpt_new(&ck), 0);
	ck_assert_int_eq(moe_ckpt_open(ck, "/nonexistent/model.gguf"), MOE_ENOENT);
	ck_assert_str_eq(moe_ckpt_errstr(ck), "No such file or directory");
	moe_ckpt_free(ck);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ckpt");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, sniffing);
	tcase_add_test(tc, tensor_table_checks_and_reads);
	tcase_add_test(tc, many_names_hash);
	tcase_add_test(tc, config_file_and_directory);
	tcase_add_test(tc, directory_prefers_safetensors);
	tcase_add_test(tc, bad_inputs);
	suite_add_tcase(s, tc);
	return moe_test_run(s);
}
