/* Bit-exact F32 <-> F16/BF16/F8 conversion with one generic small-float codec. */
#include "fpconv.h"

#include <math.h>
#include <string.h>

#include "error.h"

static uint32_t f32_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

static float bits_f32(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

/* A sign-magnitude binary float with `mbits` stored mantissa bits and
 * exponent bias `bias`; codes are the magnitude part only. */
struct small_fmt {
	int mbits;
	int bias;
	uint32_t max_finite;  /* largest finite magnitude code */
	uint32_t inf;         /* infinity code, 0 if the format has none */
	uint32_t nan;         /* canonical quiet NaN code */
	int ebits;
};

static const struct small_fmt F16 = { 10, 15, 0x7bff, 0x7c00, 0x7e00, 5 };
static const struct small_fmt E4M3 = { 3, 7, 0x7e, 0, 0x7f, 4 };
static const struct small_fmt E5M2 = { 2, 15, 0x7b, 0x7c, 0x7e, 5 };

/* Magnitude code of |f| (finite, not NaN), rounded to nearest even;
 * may exceed max_finite, which the caller treats as overflow. */
static uint32_t encode_mag(uint32_t x, const struct small_fmt *fmt)
{
	int e = (int)(x >> 23) - 127;
	uint32_t s = x & 0x7fffff;
	int emin = 1 - fmt->bias;
	int shift;
	uint32_t r, rem, half;

	if (x == 0)
		return 0;
	if ((x >> 23) == 0)
		e = -126;            /* f32 subnormal: no implicit bit */
	else
		s |= 0x800000;
	shift = 23 - fmt->mbits + (e < emin ? emin - e : 0);
	if (shift > 31)
		return 0;
	r = s >> shift;
	rem = s & ((1u << shift) - 1);
	half = 1u << (shift - 1);
	if (rem > half || (rem == half && (r & 1)))
		r++;
	if (e < emin)
		return r;            /* subnormal (or rounded up to min normal) */
	return ((uint32_t)(e + fmt->bias) << fmt->mbits) + r - (1u << fmt->mbits);
}

static uint32_t encode(float f, const struct small_fmt *fmt, int sat)
{
	uint32_t x = f32_bits(f);
	uint32_t sign = (x >> 31) << (fmt->ebits + fmt->mbits);
	uint32_t mag = x & 0x7fffffff, code;

	if (mag > 0x7f800000)
		return sign | fmt->nan;
	code = mag == 0x7f800000 ? UINT32_MAX : encode_mag(mag, fmt);
	if (code > fmt->max_finite) {
		if (sat)
			code = fmt->max_finite;
		else
			code = fmt->inf ? fmt->inf : fmt->nan;
	}
	return sign | code;
}

static float decode(uint32_t code, const struct small_fmt *fmt)
{
	int nb = fmt->ebits + fmt->mbits;
	uint32_t mag = code & ((1u << nb) - 1);
	uint32_t e = mag >> fmt->mbits, m = mag & ((1u << fmt->mbits) - 1);
	float v;

	if (fmt->inf ? e == (1u << fmt->ebits) - 1 : mag > fmt->max_finite)
		v = (fmt->inf && m == 0) ? INFINITY : NAN;
	else if (e == 0)
		v = ldexpf((float)m, 1 - fmt->bias - fmt->mbits);
	else
		v = ldexpf((float)(m | (1u << fmt->mbits)),
			(int)e - fmt->bias - fmt->mbits);
	return (code >> nb) & 1 ? -v : v;
}

/* Normal halves rebias the exponent directly; the rest decode generically. */
static inline float f16_fast(uint16_t h)
{
	uint32_t e = (h >> 10) & 0x1f;

	if (e == 0 || e == 31)
		return moe_f16_to_f32(h);
	return bits_f32((uint32_t)(h & 0x8000) << 16 | (e + 112) << 23 |
		(uint32_t)(h & 0x3ff) << 13);
}

float moe_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;

	/* keep NaN payloads, as hardware conversion does */
	if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff))
		return bits_f32(sign | 0x7fc00000 | (uint32_t)(h & 0x3ff) << 13);
	return decode(h, &F16);
}

uint16_t moe_f32_to_f16(float f)
{
	uint32_t x = f32_bits(f);

	if ((x & 0x7fffffff) > 0x7f800000)
		return (uint16_t)((x >> 16 & 0x8000) | 0x7e00 | (x >> 13 & 0x3ff));
	return (uint16_t)encode(f, &F16, 0);
}

float moe_bf16_to_f32(uint16_t h)
{
	return bits_f32((uint32_t)h << 16);
}

uint16_t moe_f32_to_bf16(float f)
{
	uint32_t x = f32_bits(f);

	if ((x & 0x7fffffff) > 0x7f800000)
		return (uint16_t)((x >> 16) | 0x40);  /* quiet the NaN */
	return (uint16_t)((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

float moe_f8e4m3_to_f32(uint8_t b)
{
	return decode(b, &E4M3);
}

uint8_t moe_f32_to_f8e4m3(float f, int sat)
{
	return (uint8_t)encode(f, &E4M3, sat);
}

float moe_f8e5m2_to_f32(uint8_t b)
{
	return decode(b, &E5M2);
}

uint8_t moe_f32_to_f8e5m2(float f, int sat)
{
	return (uint8_t)encode(f, &E5M2, sat);
}

float moe_e8m0_to_f32(uint8_t b)
{
	if (b == 0xff)
		return NAN;
	if (b == 0)
		return bits_f32(0x00400000);  /* 2^-127 is an f32 subnormal */
	return bits_f32((uint32_t)b << 23);
}

/* n values of a float type to F32, one tight loop per type. */
static void to_f32(enum moe_dtype t, const unsigned char *in, float *out, size_t n)
{
	uint16_t h;
	double d;
	size_t i;

	switch (t) {
	case MOE_DT_F32:
		memcpy(out, in, n * 4);
		break;
	case MOE_DT_F16:
		for (i = 0; i < n; i++) {
			memcpy(&h, in + 2 * i, 2);
			out[i] = f16_fast(h);
		}
		break;
	case MOE_DT_BF16:
		for (i = 0; i < n; i++) {
			memcpy(&h, in + 2 * i, 2);
			out[i] = moe_bf16_to_f32(h);
		}
		break;
	case MOE_DT_F8_E4M3:
		for (i = 0; i < n; i++)
			out[i] = moe_f8e4m3_to_f32(in[i]);
		break;
	case MOE_DT_F8_E5M2:
		for (i = 0; i < n; i++)
			out[i] = moe_f8e5m2_to_f32(in[i]);
		break;
	default:   /* F64 */
		for (i = 0; i < n; i++) {
			memcpy(&d, in + 8 * i, 8);
			out[i] = (float)d;
		}
	}
}

static void from_f32(enum moe_dtype t, const float *in, unsigned char *out, size_t n)
{
	uint16_t h;
	double d;
	size_t i;

	switch (t) {
	case MOE_DT_F32:
		memcpy(out, in, n * 4);
		break;
	case MOE_DT_F16:
		for (i = 0; i < n; i++) {
			h = moe_f32_to_f16(in[i]);
			memcpy(out + 2 * i, &h, 2);
		}
		break;
	case MOE_DT_BF16:
		for (i = 0; i < n; i++) {
			h = moe_f32_to_bf16(in[i]);
			memcpy(out + 2 * i, &h, 2);
		}
		break;
	case MOE_DT_F8_E4M3:
		for (i = 0; i < n; i++)
			out[i] = moe_f32_to_f8e4m3(in[i], 1);
		break;
	case MOE_DT_F8_E5M2:
		for (i = 0; i < n; i++)
			out[i] = moe_f32_to_f8e5m2(in[i], 1);
		break;
	default:   /* F64 */
		for (i = 0; i < n; i++) {
			d = in[i];
			memcpy(out + 8 * i, &d, 8);
		}
	}
}

/* F64 sources narrow in one step: F64 -> F32 is exact-rounded, and for
 * narrower targets the float is rounded to odd first, so that the second
 * rounding gives what one correct rounding would. */
static float f64_to_f32_sticky(double d)
{
	float f = (float)d;

	if (isnan(d) || isinf(f) || (double)f == d)
		return f;
	if (fabs((double)f) > fabs(d))
		f = nextafterf(f, 0.0f);
	return bits_f32(f32_bits(f) | 1);
}

int moe_cast(enum moe_dtype dst, void *out, enum moe_dtype src,
	const void *in, size_t n)
{
	const unsigned char *p = in;
	unsigned char *q = out;
	size_t ssz = moe_dtype_block_bytes(src), dsz = moe_dtype_block_bytes(dst);
	float tmp[1024];

	if (!moe_dtype_is_float(dst) || !moe_dtype_is_float(src))
		return MOE_EUNSUP;
	if (dst == src) {
		memcpy(out, in, n * ssz);
		return 0;
	}
	for (size_t i = 0; i < n; i += 1024) {
		size_t k = n - i < 1024 ? n - i : 1024;
		if (src == MOE_DT_F64 && dst != MOE_DT_F32) {
			for (size_t j = 0; j < k; j++) {
				double d;
				memcpy(&d, p + 8 * (i + j), 8);
				tmp[j] = f64_to_f32_sticky(d);
			}
		} else {
			to_f32(src, p + i * ssz, tmp, k);
		}
		from_f32(dst, tmp, q + i * dsz, k);
	}
	return 0;
}
