/* Tests of 128 x 128 block-scaled FP8 (DeepSeek-V3 layout): scales, saturation, streaming by bands and rows. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fp8block.h"
#include "fpconv.h"
#include "testutil.h"

static uint32_t bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

START_TEST(scale_shape_rounds_up)
{
	int64_t r, c;

	moe_fp8block_scale_shape(300, 128, &r, &c);
	ck_assert(r == 3 && c == 1);
	moe_fp8block_scale_shape(128, 129, &r, &c);
	ck_assert(r == 1 && c == 2);
	moe_fp8block_scale_shape(0, 0, &r, &c);
	ck_assert(r == 0 && c == 0);
}
END_TEST

/* One 2 x 130 band: tile 0 has amax 896 -> scale 2, so 896 -> 448 (0x7e),
 * 3 -> 1.5; tile 1 (2 columns) is all zero -> scale 1, codes 0. */
START_TEST(known_band)
{
	float x[2 * 130] = { 0 }, y[2 * 130], s[2];
	uint8_t q[2 * 130];

	x[5] = 896.0f;
	x[130 + 7] = -3.0f;
	/* 2^-10 / scale 2 = 2^-11: under half E4M3's smallest subnormal 2^-9 */
	x[130 + 100] = 1.0f / 1024;
	ck_assert_int_eq(moe_fp8block_quantize_band(x, 2, 130, q, s), 0);
	ck_assert(s[0] == 2.0f && s[1] == 1.0f);
	ck_assert_uint_eq(q[5], 0x7e);
	ck_assert_uint_eq(q[130 + 7], moe_f32_to_f8e4m3(-1.5f, 1));
	ck_assert_uint_eq(q[128], 0);
	ck_assert_int_eq(moe_fp8block_dequantize_rows(q, 2, 130, s, y), 0);
	ck_assert(y[5] == 896.0f && y[130 + 7] == -3.0f);
	ck_assert(y[130 + 100] == 0.0f);
	for (int i = 0; i < 2 * 130; i++)
		if (i != 5 && i != 137 && i != 230)
			ck_assert(y[i] == 0.0f);
}
END_TEST

/* Infinities saturate and NaN stays NaN without spoiling the tile's scale. */
START_TEST(non_finite_values)
{
	float x[4] = { INFINITY, -2.0f, NAN, 1.0f }, y[4], s[1];
	uint8_t q[4];

	ck_assert_int_eq(moe_fp8block_quantize_band(x, 1, 4, q, s), 0);
	ck_assert(s[0] == 2.0f / 448);
	ck_assert_int_eq(moe_fp8block_dequantize_rows(q, 1, 4, s, y), 0);
	ck_assert(y[0] == 448.0f * s[0] && y[1] == -2.0f);
	ck_assert(isnan(y[2]));
}
END_TEST

START_TEST(bad_bands_are_refused)
{
	float x[1] = { 0 }, s[1];
	uint8_t q[1];

	ck_assert_int_eq(moe_fp8block_quantize_band(x, 129, 1, q, s), MOE_ERANGE);
	ck_assert_int_eq(moe_fp8block_quantize_band(x, -1, 1, q, s), MOE_EINVAL);
	ck_assert_int_eq(moe_fp8block_dequantize_rows(q, 1, -1, s, x), MOE_EINVAL);
}
END_TEST

/*
 * A 300 x 200 matrix quantized band by band (the streaming use), then
 * dequantized row by row with each row's band scales: same result as
 * whole-band dequantization, and every value within E4M3's half-ulp
 * (relative 2^-4, or half the subnormal step 2^-10 x scale).
 */
START_TEST(streaming_bands_and_rows)
{
	enum { R = 300, C = 200 };
	int64_t sr, sc;
	float *x = malloc(R * C * sizeof *x), *y = malloc(C * sizeof *y);
	float *yb = malloc(128 * C * sizeof *yb), *s;
	uint8_t *q = malloc(R * C);
	uint32_t seed = 1;

	moe_fp8block_scale_shape(R, C, &sr, &sc);
	s = malloc((size_t)(sr * sc) * sizeof *s);
	for (int i = 0; i < R * C; i++) {
		seed = seed * 1664525u + 1013904223u;
		x[i] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * (float)(1 + i % 97);
	}
	for (int64_t r0 = 0; r0 < R; r0 += 128) {
		int64_t n = R - r0 < 128 ? R - r0 : 128;

		ck_assert_int_eq(moe_fp8block_quantize_band(x + r0 * C, n, C,
			q + r0 * C, s + (r0 / 128) * sc), 0);
		ck_assert_int_eq(moe_fp8block_dequantize_rows(q + r0 * C, n, C,
			s + (r0 / 128) * sc, yb), 0);
		for (int64_t r = r0; r < r0 + n; r++) {
			ck_assert_int_eq(moe_fp8block_dequantize_rows(q + r * C, 1, C,
				s + (r / 128) * sc, y), 0);
			for (int c = 0; c < C; c++) {
				float v = x[r * C + c], st = s[(r / 128) * sc + c / 128];

				ck_assert(bits(y[c]) == bits(yb[(r - r0) * C + c]));
				ck_assert_msg(fabsf(y[c] - v) <= fmaxf(fabsf(v) * 0x1p-4f,
					st * 0x1p-10f), "%d,%d: %g vs %g", (int)r, c, y[c], v);
			}
		}
	}
	free(x);
	free(y);
	free(yb);
	free(q);
	free(s);
}
END_TEST

static Suite *fp8_suite(void)
{
	Suite *s = suite_create("quant_fp8");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, scale_shape_rounds_up);
	tcase_add_test(tc, known_band);
	tcase_add_test(tc, non_finite_values);
	tcase_add_test(tc, bad_bands_are_refused);
	tcase_add_test(tc, streaming_bands_and_rows);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return moe_test_run(fp8_suite());
}
