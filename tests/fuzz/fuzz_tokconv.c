/* libFuzzer harness: tokenizer.json and carried GGUF metadata (typed JSON) from arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "meta.h"
#include "tokconv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *j = json_loadb((const char *)data, size, 0, NULL), *tok = NULL, *cfg = NULL;
	struct moe_meta *m;
	struct moe_error err = { 0, "" };
	char note[256];

	if (j == NULL || moe_meta_new(&m) != 0) {
		json_decref(j);
		return 0;
	}
	if (moe_tokconv_to_gguf(j, NULL, m, note, sizeof note, &err) == 0 &&
	    moe_tokconv_from_gguf(m, &tok, &cfg, &err) == 0) {
		json_decref(tok);
		json_decref(cfg);
	}
	moe_meta_free(m);
	if (moe_meta_new(&m) == 0) {
		moe_meta_from_typed_json(m, j);
		moe_meta_free(m);
	}
	json_decref(j);
	return 0;
}
