/* Benchmark input: writes a synthetic Zipf-routed trace through the libmoe trace writer. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "output.h"
#include "trace.h"

/* usage: gen_trace TOKENS LAYERS EXPERTS TOPK jsonl|bin > trace */
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

int main(int argc, char **argv)
{
	struct moe_trace_header h = { 0 };
	struct moe_trace_token t = { 0 };
	struct moe_output *o;
	struct moe_trace_writer *w;
	uint64_t n;
	double *cdf;
	uint32_t *layers;
	uint16_t *ex;
	float *wt;

	if (argc != 6) {
		fprintf(stderr, "usage: gen_trace TOKENS LAYERS EXPERTS TOPK jsonl|bin\n");
		return 2;
	}
	n = strtoull(argv[1], NULL, 10);
	h.n_layers = h.n_moe = (uint32_t)atoi(argv[2]);
	h.n_experts = (uint32_t)atoi(argv[3]);
	h.top_k = (uint32_t)atoi(argv[4]);
	h.model = "bench-zipf";
	h.gating = "softmax";
	h.vocab = "";
	layers = malloc(h.n_moe * sizeof *layers);
	cdf = malloc(h.n_experts * sizeof *cdf);
	ex = malloc((size_t)h.n_moe * h.top_k * sizeof *ex);
	wt = malloc((size_t)h.n_moe * h.top_k * sizeof *wt);
	if (!layers || !cdf || !ex || !wt)
		return 1;
	for (uint32_t i = 0; i < h.n_moe; i++)
		layers[i] = i;
	h.moe_layers = layers;
	double z = 0;
	for (uint32_t e = 0; e < h.n_experts; e++)
		cdf[e] = (z += 1.0 / pow(e + 1, 0.8));
	for (uint32_t e = 0; e < h.n_experts; e++)
		cdf[e] /= z;
	if (moe_output_open(&o, "-", 0) != 0 ||
	    moe_trace_writer_new(&w, o, strcmp(argv[5], "bin") == 0 ? MOE_TRACE_BIN : MOE_TRACE_JSONL, &h) != 0)
		return 1;
	t.experts = ex;
	t.weights = wt;
	for (uint64_t i = 0; i < n; i++) {
		t.seq = (uint32_t)(i / 4096);
		t.pos = (uint32_t)(i % 4096);
		t.token = (int32_t)(next() % 32000);
		for (uint32_t l = 0; l < h.n_moe; l++) {
			uint16_t *e = ex + (size_t)l * h.top_k;
			for (uint32_t j = 0; j < h.top_k; j++) {
				int dup;
				do {
					double u = (double)(next() >> 11) / 9007199254740992.0;
					uint32_t lo = 0, hi = h.n_experts - 1;
					while (lo < hi) {
						uint32_t mid = (lo + hi) / 2;
						if (cdf[mid] < u)
							lo = mid + 1;
						else
							hi = mid;
					}
					e[j] = (uint16_t)((lo + l * 7) % h.n_experts);
					dup = 0;
					for (uint32_t q = 0; q < j; q++)
						dup |= e[q] == e[j];
				} while (dup);
				wt[(size_t)l * h.top_k + j] = 1.0f / (float)(j + 2);
			}
		}
		if (moe_trace_write(w, &t) != 0) {
			fprintf(stderr, "gen_trace: %s\n", moe_trace_writer_errstr(w));
			return 1;
		}
	}
	if (moe_output_commit(o) != 0)
		return 1;
	moe_trace_writer_free(w);
	moe_output_free(o);
	return 0;
}
