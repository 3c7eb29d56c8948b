/* Tests of the dtype table: names, ggml ids, block sizes and byte counts. */
#include "dtype.h"
#include "error.h"
#include "testutil.h"

START_TEST(names_roundtrip)
{
	for (int t = 1; t < MOE_DT_COUNT; t++) {
		const char *n = moe_dtype_name((enum moe_dtype)t);
		ck_assert_int_eq(moe_dtype_from_name(n), t);
	}
	ck_assert_int_eq(moe_dtype_from_name("q4_k"), MOE_DT_Q4_K);
	ck_assert_int_eq(moe_dtype_from_name("bf16"), MOE_DT_BF16);
	ck_assert_int_eq(moe_dtype_from_name("F4"), MOE_DT_INVALID);
}
END_TEST

START_TEST(ggml_ids_and_blocks)
{
	/* ids and block layouts from ggml.h / ggml-common.h */
	static const struct { int id; enum moe_dtype t; uint32_t bs, bb; } k[] = {
		{ 0, MOE_DT_F32, 1, 4 }, { 1, MOE_DT_F16, 1, 2 }, { 2, MOE_DT_Q4_0, 32, 18 },
		{ 3, MOE_DT_Q4_1, 32, 20 }, { 6, MOE_DT_Q5_0, 32, 22 }, { 7, MOE_DT_Q5_1, 32, 24 },
		{ 8, MOE_DT_Q8_0, 32, 34 }, { 10, MOE_DT_Q2_K, 256, 84 }, { 11, MOE_DT_Q3_K, 256, 110 },
		{ 12, MOE_DT_Q4_K, 256, 144 }, { 13, MOE_DT_Q5_K, 256, 176 }, { 14, MOE_DT_Q6_K, 256, 210 },
		{ 20, MOE_DT_IQ4_NL, 32, 18 }, { 23, MOE_DT_IQ4_XS, 256, 136 }, { 30, MOE_DT_BF16, 1, 2 },
		{ 34, MOE_DT_TQ1_0, 256, 54 }, { 35, MOE_DT_TQ2_0, 256, 66 }, { 39, MOE_DT_MXFP4, 32, 17 },
	};
	for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
		ck_assert_int_eq(moe_dtype_from_ggml((uint32_t)k[i].id), k[i].t);
		ck_assert_int_eq(moe_dtype_to_ggml(k[i].t), k[i].id);
		ck_assert_uint_eq(moe_dtype_block_size(k[i].t), k[i].bs);
		ck_assert_uint_eq(moe_dtype_block_bytes(k[i].t), k[i].bb);
	}
	ck_assert_int_eq(moe_dtype_from_ggml(4), MOE_DT_INVALID);   /* removed Q4_2 */
	ck_assert_int_eq(moe_dtype_from_ggml(31), MOE_DT_INVALID);  /* removed Q4_0_4_4 */
	ck_assert_int_eq(moe_dtype_from_ggml(1000), MOE_DT_INVALID);
	ck_assert_int_eq(moe_dtype_to_ggml(MOE_DT_F8_E4M3), -1);
	ck_assert(moe_dtype_is_quantized(MOE_DT_Q4_K) && !moe_dtype_is_quantized(MOE_DT_BF16));
	ck_assert(moe_dtype_is_float(MOE_DT_F8_E5M2) && !moe_dtype_is_float(MOE_DT_I8));
}
END_TEST

START_TEST(nbytes_checks_blocks_and_overflow)
{
	uint64_t n, shape[3] = { 8, 14336, 4096 };

	ck_assert_int_eq(moe_dtype_nbytes(MOE_DT_Q4_K, 4096, &n), 0);
	ck_assert_uint_eq(n, 16 * 144);
	ck_assert_int_eq(moe_dtype_nbytes(MOE_DT_Q4_K, 4095, &n), MOE_ERANGE);
	ck_assert_int_eq(moe_dtype_nbytes(MOE_DT_F64, UINT64_MAX / 4, &n), MOE_ERANGE);
	ck_assert_int_eq(moe_shape_numel(3, shape, &n), 0);
	ck_assert_uint_eq(n, 8ull * 14336 * 4096);
	shape[0] = UINT64_MAX / 2;
	ck_assert_int_eq(moe_shape_numel(3, shape, &n), MOE_ERANGE);
	ck_assert_int_eq(moe_shape_numel(0, shape, &n), 0);
	ck_assert_uint_eq(n, 1);  /* a scalar */
}
END_TEST

int main(void)
{
	Suite *s = suite_create("dtype");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, names_roundtrip);
	tcase_add_test(tc, ggml_ids_and_blocks);
	tcase_add_test(tc, nbytes_checks_blocks_and_overflow);
	suite_add_tcase(s, tc);
	return moe_test_run(s);
}
