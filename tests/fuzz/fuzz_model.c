/* libFuzzer harness: load arbitrary bytes as an MoE model (tiny GGUF seeds) and evaluate a few tokens. */
#include <stddef.h>
#include <stdint.h>

#include "ckpt.h"
#include "infer.h"
#include "model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moe_infer_opts o = { .n_threads = 1, .n_ctx = 8, .n_batch = 4, .top_k = 0 };
	struct moe_model *m;
	struct moe_ckpt *ck;
	struct moe_infer *s = NULL;
	float logits[4096];
	int32_t toks[3] = { 1, 0, 2 };

	if (moe_model_new(&m) != 0)
		return 0;
	if (moe_ckpt_new(&ck) != 0 || moe_ckpt_open_memory(ck, data, size, "fuzz") != 0) {
		moe_ckpt_free(ck);
		moe_model_free(m);
		return 0;
	}
	if (moe_model_open_ckpt(m, ck) == 0 && m->hp.n_vocab <= 4096 &&
	    moe_infer_new(&s, m, &o) == 0) {
		for (int i = 0; i < 3; i++)
			toks[i] %= (int32_t)m->hp.n_vocab;
		(void)moe_infer_eval(s, toks, 3, NULL, 0);
		(void)moe_infer_eval(s, toks, 1, logits, 0);
	}
	moe_infer_free(s);
	moe_model_free(m);
	return 0;
}
