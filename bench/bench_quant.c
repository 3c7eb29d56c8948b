/* Benchmark: MB/s of row quantization (Q8_0, Q4_0, Q4_K), dequantization and dot products, against memcpy of the same bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dtype.h"
#include "quant.h"

/* usage: bench_quant [MiB of F32 input, default 16] */
#define N_PER_ROW 4096

static volatile float sink;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Repeats job until at least 0.3 s have passed; returns seconds per run. */
#define TIME_IT(secs, job) do { \
		int reps_ = 0; \
		double t0_ = now(), t_; \
		do { job; reps_++; t_ = now() - t0_; } while (t_ < 0.3); \
		(secs) = t_ / reps_; \
	} while (0)

int main(int argc, char **argv)
{
	static const enum moe_dtype TYPES[] = { MOE_DT_Q8_0, MOE_DT_Q4_0, MOE_DT_Q4_K };
	long mib = argc > 1 ? strtol(argv[1], NULL, 10) : 16;
	int64_t rows, n;
	float *x, *y;
	uint8_t *q;
	uint64_t seed = 1;
	double t_copy, mb;

	if (mib < 1 || mib > 4096) {
		fprintf(stderr, "usage: bench_quant [MiB 1..4096]\n");
		return 2;
	}
	rows = mib * 1048576 / 4 / N_PER_ROW;
	n = rows * N_PER_ROW;
	x = malloc((size_t)n * 4);
	y = malloc((size_t)n * 4);
	q = malloc((size_t)n * 4);
	if (!x || !y || !q)
		return 1;
	for (int64_t i = 0; i < n; i++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		x[i] = (float)((int64_t)(seed >> 40) - (1 << 23)) / (float)(1 << 23);
	}
	mb = (double)n * 4 / 1e6;
	TIME_IT(t_copy, memcpy(y, x, (size_t)n * 4));
	printf("memcpy of %.1f MB F32: %.0f MB/s (baseline)\n", mb, mb / t_copy);
	for (size_t k = 0; k < sizeof TYPES / sizeof TYPES[0]; k++) {
		enum moe_dtype t = TYPES[k];
		double tq, td;

		TIME_IT(tq, moe_quantize_rows(t, x, q, rows, N_PER_ROW));
		TIME_IT(td, moe_dequantize_row(t, q, y, n));
		printf("%-5s quantize: %8.1f MB/s of F32 input (%.4f x memcpy)  "
			"dequantize: %8.1f MB/s of F32 output (%.4f x memcpy)\n",
			moe_dtype_name(t), mb / tq, t_copy / tq, mb / td, t_copy / td);
	}
	/* matrix-vector product rows x N_PER_ROW: dequantize-free dots */
	for (size_t k = 0; k < sizeof TYPES / sizeof TYPES[0]; k++) {
		enum moe_dtype t = TYPES[k], at = moe_vec_dot_type(t);
		uint64_t wbytes;
		uint8_t act[N_PER_ROW * 2];
		double tv;
		float sum = 0, r;

		moe_quantize_rows(t, x, q, rows, N_PER_ROW);
		moe_quantize_row_act(at, x, act, N_PER_ROW);
		moe_dtype_nbytes(t, (uint64_t)n, &wbytes);
		TIME_IT(tv, for (int64_t i = 0; i < rows; i++) {
			moe_vec_dot(t, N_PER_ROW, q + (size_t)i * (wbytes / rows), act, &r);
			sum += r;
		});
		sink = sum;  /* keeps the dots from being optimized away */
		printf("%-5s x %s dot: %8.1f M weights/s (%.1f MB/s of %s weights)\n",
			moe_dtype_name(t), moe_dtype_name(at), (double)n / tv / 1e6,
			(double)wbytes / tv / 1e6, moe_dtype_name(t));
	}
	free(x);
	free(y);
	free(q);
	return 0;
}
