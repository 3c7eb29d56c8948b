/* Exhaustive tests of the F16/BF16/F8 conversions over every 8- and 16-bit pattern. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fpconv.h"

static uint32_t bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* The compiler's _Float16 conversions (libgcc/F16C) are an independent
 * IEEE round-to-nearest-even reference. */
static uint16_t ref_f32_to_f16(float f)
{
	_Float16 h = (_Float16)f;
	uint16_t u;
	memcpy(&u, &h, 2);
	return u;
}

static float ref_f16_to_f32(uint16_t u)
{
	_Float16 h;
	memcpy(&h, &u, 2);
	return (float)h;
}

START_TEST(f16_all_patterns_decode_and_roundtrip)
{
	for (uint32_t h = 0; h < 65536; h++) {
		float f = moe_f16_to_f32((uint16_t)h), r = ref_f16_to_f32((uint16_t)h);
		if (isnan(r)) {
			ck_assert(isnan(f));
			ck_assert(isnan(moe_f16_to_f32(moe_f32_to_f16(f))));
			continue;
		}
		ck_assert_msg(bits(f) == bits(r), "decode 0x%04x", h);
		ck_assert_msg(moe_f32_to_f16(f) == h, "roundtrip 0x%04x", h);
	}
}
END_TEST

START_TEST(f16_encode_matches_reference)
{
	/* every f32 exponent, many mantissas, plus exact f16 midpoints */
	for (uint64_t u = 0; u < 0x100000000ull; u += 65521) {
		float f = from_bits((uint32_t)u);
		if (isnan(f))
			continue;
		ck_assert_msg(moe_f32_to_f16(f) == ref_f32_to_f16(f), "0x%08x", (unsigned)u);
	}
	for (uint32_t h = 0; h < 0x7c00; h++) {
		/* midpoint between h and h+1, and one ulp either side */
		float a = ref_f16_to_f32((uint16_t)h), b = ref_f16_to_f32((uint16_t)(h + 1));
		float mid = (float)(((double)a + (double)b) / 2);
		float v[3] = { mid, nextafterf(mid, 0), nextafterf(mid, INFINITY) };
		for (int k = 0; k < 3; k++) {
			ck_assert_msg(moe_f32_to_f16(v[k]) == ref_f32_to_f16(v[k]), "mid 0x%04x", h);
			ck_assert(moe_f32_to_f16(-v[k]) == ref_f32_to_f16(-v[k]));
		}
	}
	ck_assert_uint_eq(moe_f32_to_f16(65520.0f), 0x7c00);  /* rounds to inf */
	ck_assert_uint_eq(moe_f32_to_f16(65519.0f), 0x7bff);
	ck_assert_uint_eq(moe_f32_to_f16(-0.0f), 0x8000);
	ck_assert_uint_eq(moe_f32_to_f16(INFINITY), 0x7c00);
	ck_assert_uint_eq(moe_f32_to_f16(1e-8f), 0x0000);     /* below half the min subnormal */
	ck_assert_uint_eq(moe_f32_to_f16(6e-8f), 0x0001);     /* min subnormal 5.96e-8 */
}
END_TEST

START_TEST(bf16_all_patterns_and_rounding)
{
	for (uint32_t h = 0; h < 65536; h++) {
		float f = moe_bf16_to_f32((uint16_t)h);
		ck_assert_uint_eq(bits(f), h << 16);
		if (isnan(f))
			ck_assert(isnan(moe_bf16_to_f32(moe_f32_to_bf16(f))));
		else
			ck_assert_uint_eq(moe_f32_to_bf16(f), h);
	}
	/* ties to even: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 */
	ck_assert_uint_eq(moe_f32_to_bf16(from_bits(0x3f808000)), 0x3f80);
	ck_assert_uint_eq(moe_f32_to_bf16(from_bits(0x3f818000)), 0x3f82);
	ck_assert_uint_eq(moe_f32_to_bf16(from_bits(0x3f808001)), 0x3f81);
	ck_assert_uint_eq(moe_f32_to_bf16(from_bits(0x7f7fffff)), 0x7f80); /* to inf */
	ck_assert_uint_eq(moe_f32_to_bf16(from_bits(0x7f800001)) & 0x7fc0, 0x7fc0);
}
END_TEST

START_TEST(e4m3_all_patterns)
{
	ck_assert(moe_f8e4m3_to_f32(0x7e) == 448.0f);
	ck_assert(moe_f8e4m3_to_f32(0x01) == ldexpf(1, -9));
	ck_assert(moe_f8e4m3_to_f32(0x08) == ldexpf(1, -6));
	ck_assert(moe_f8e4m3_to_f32(0x38) == 1.0f);
	ck_assert(isnan(moe_f8e4m3_to_f32(0x7f)) && isnan(moe_f8e4m3_to_f32(0xff)));
	ck_assert(moe_f8e4m3_to_f32(0x78) == 256.0f);  /* S.1111.000 is finite */
	for (int b = 0; b < 256; b++) {
		float f = moe_f8e4m3_to_f32((uint8_t)b);
		if (isnan(f))
			continue;
		ck_assert_msg(moe_f32_to_f8e4m3(f, 0) == b, "roundtrip 0x%02x", b);
		/* the midpoint to the next magnitude rounds to the even code */
		if ((b & 0x7f) < 0x7e) {
			float next = moe_f8e4m3_to_f32((uint8_t)(b + 1));
			float mid = (f + next) / 2;
			int even = (b & 1) ? b + 1 : b;
			ck_assert_msg(moe_f32_to_f8e4m3(mid, 0) == even, "mid 0x%02x", b);
			ck_assert(moe_f32_to_f8e4m3(nextafterf(mid, f), 0) == b);
			ck_assert(moe_f32_to_f8e4m3(nextafterf(mid, next), 0) == b + 1);
		}
	}
	ck_assert_uint_eq(moe_f32_to_f8e4m3(464.0f, 0), 0x7e);  /* tie -> even 448 */
	ck_assert_uint_eq(moe_f32_to_f8e4m3(465.0f, 0), 0x7f);  /* overflow: NaN */
	ck_assert_uint_eq(moe_f32_to_f8e4m3(465.0f, 1), 0x7e);  /* saturate */
	ck_assert_uint_eq(moe_f32_to_f8e4m3(-1e30f, 1), 0xfe);
	ck_assert_uint_eq(moe_f32_to_f8e4m3(INFINITY, 1), 0x7e);
	ck_assert_uint_eq(moe_f32_to_f8e4m3(NAN, 1) & 0x7f, 0x7f);
	ck_assert_uint_eq(moe_f32_to_f8e4m3(ldexpf(1, -10), 0), 0x00); /* tie to 0 */
	ck_assert_uint_eq(moe_f32_to_f8e4m3(ldexpf(3, -10), 0), 0x02); /* 1.5 ulp: tie -> 2 */
	ck_assert_uint_eq(moe_f32_to_f8e4m3(ldexpf(3, -11), 0), 0x01); /* 0.75 ulp */
}
END_TEST

START_TEST(e5m2_all_patterns)
{
	ck_assert(moe_f8e5m2_to_f32(0x7b) == 57344.0f);
	ck_assert(isinf(moe_f8e5m2_to_f32(0x7c)) && moe_f8e5m2_to_f32(0xfc) < 0);
	ck_assert(isnan(moe_f8e5m2_to_f32(0x7d)));
	ck_assert(moe_f8e5m2_to_f32(0x01) == ldexpf(1, -16));
	for (int b = 0; b < 256; b++) {
		float f = moe_f8e5m2_to_f32((uint8_t)b);
		if (isnan(f))
			continue;
		ck_assert_msg(moe_f32_to_f8e5m2(f, 0) == b, "roundtrip 0x%02x", b);
		/* e5m2 is the top byte of f16: compare with rounding via f16 */
		if ((b & 0x7f) < 0x7b) {
			float next = moe_f8e5m2_to_f32((uint8_t)(b + 1));
			float mid = (f + next) / 2;
			ck_assert(moe_f32_to_f8e5m2(mid, 0) == ((b & 1) ? b + 1 : b));
		}
	}
	ck_assert_uint_eq(moe_f32_to_f8e5m2(1e6f, 0), 0x7c);
	ck_assert_uint_eq(moe_f32_to_f8e5m2(1e6f, 1), 0x7b);
}
END_TEST

START_TEST(e8m0_scales)
{
	ck_assert(moe_e8m0_to_f32(127) == 1.0f);
	ck_assert(moe_e8m0_to_f32(128) == 2.0f);
	ck_assert(moe_e8m0_to_f32(0) == ldexpf(1, -127));
	ck_assert(moe_e8m0_to_f32(254) == ldexpf(1, 127));
	ck_assert(isnan(moe_e8m0_to_f32(255)));
}
END_TEST

START_TEST(cast_between_types)
{
	float src[4] = { 1.0f, -2.5f, 65504.0f, 1e-3f }, back[4];
	uint16_t h[4];
	double d[4] = { 1.0, 1.0 + 1e-12, 0.1, -3e38 };
	uint16_t bf[4];

	ck_assert_int_eq(moe_cast(MOE_DT_F16, h, MOE_DT_F32, src, 4), 0);
	ck_assert_int_eq(moe_cast(MOE_DT_F32, back, MOE_DT_F16, h, 4), 0);
	ck_assert(back[0] == 1.0f && back[1] == -2.5f && back[2] == 65504.0f);
	ck_assert(fabsf(back[3] - 1e-3f) < 1e-6f);
	ck_assert_int_eq(moe_cast(MOE_DT_BF16, bf, MOE_DT_F64, d, 4), 0);
	ck_assert_uint_eq(bf[0], 0x3f80);
	ck_assert_uint_eq(bf[1], 0x3f80);
	ck_assert_uint_eq(bf[2], moe_f32_to_bf16(0.1f));
	ck_assert_int_eq(moe_cast(MOE_DT_I32, h, MOE_DT_F32, src, 1), MOE_EUNSUP);
}
END_TEST

START_TEST(cast_f64_avoids_double_rounding)
{
	/* 1 + 2^-11 + 2^-40 lies just above the f16 midpoint between 1 and
	 * 1 + 2^-10; f64 -> f32 alone would round it onto the midpoint and the
	 * tie would go down to 1.0. */
	double d = 1.0 + ldexp(1, -11) + ldexp(1, -40);
	uint16_t h;

	ck_assert_int_eq(moe_cast(MOE_DT_F16, &h, MOE_DT_F64, &d, 1), 0);
	ck_assert_uint_eq(h, 0x3c01);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("fpconv");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, f16_all_patterns_decode_and_roundtrip);
	tcase_add_test(tc, f16_encode_matches_reference);
	tcase_add_test(tc, bf16_all_patterns_and_rounding);
	tcase_add_test(tc, e4m3_all_patterns);
	tcase_add_test(tc, e5m2_all_patterns);
	tcase_add_test(tc, e8m0_scales);
	tcase_add_test(tc, cast_between_types);
	tcase_add_test(tc, cast_f64_avoids_double_rounding);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
