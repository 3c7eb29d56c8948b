/* Restricted unpickler: the tensors of a torch.save state dict, without executing anything. */
#ifndef MOE_PICKLE_H
#define MOE_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"

/*
 * moe_pickle_load() runs a small stack machine over pickle protocols 2-5
 * that knows only the opcodes torch.save emits for state dicts. It never
 * imports or calls anything: each GLOBAL is looked up in a fixed allow-list
 * (collections.OrderedDict, torch._utils._rebuild_tensor[_v2],
 * torch._utils._rebuild_parameter[_with_state], torch.*Storage, torch dtypes,
 * torch.Size) whose members have built-in meanings; any other GLOBAL fails
 * with MOE_ESECURITY (an unknown torch.*Storage type with MOE_EUNSUP: not
 * an attack, just not mapped). Memo, stack, string lengths, nesting and the number of
 * values are bounded, so any byte string gives a result or a clean error.
 *
 * The result is the state dict flattened to '.'-joined names: a top-level
 * "state_dict", "model", "model_state_dict" or "module" entry holding
 * tensors is unwrapped first (what users mean by "the weights"); other
 * nested dicts and lists keep their path ("optimizer.state.0.exp_avg").
 * Everything returned stays owned by the handle until moe_pickle_free().
 */

#define MOE_PICKLE_MAX_DIMS 8

/* A storage named by a persistent id ('storage', type, key, location, numel). */
struct moe_pickle_storage {
	char *key;            /* member name under data/ */
	enum moe_dtype dtype;
	uint64_t numel;       /* elements of dtype */
};

struct moe_pickle_tensor {
	char *name;
	size_t storage;       /* index into the storages */
	uint64_t storage_offset;              /* in elements */
	int ndim;
	uint64_t shape[MOE_PICKLE_MAX_DIMS];  /* outermost first */
	int64_t stride[MOE_PICKLE_MAX_DIMS];  /* in elements, outermost first */
};

struct moe_pickle;

int moe_pickle_new(struct moe_pickle **out);
void moe_pickle_free(struct moe_pickle *p);
/* Parses one pickle (buf must hold all of it); 0 or a negative moe_err
 * code with the detail in moe_pickle_errstr(). One call per handle. */
int moe_pickle_load(struct moe_pickle *p, const void *buf, size_t n);
const char *moe_pickle_errstr(const struct moe_pickle *p);

size_t moe_pickle_ntensors(const struct moe_pickle *p);
const struct moe_pickle_tensor *moe_pickle_tensor(const struct moe_pickle *p, size_t i);
size_t moe_pickle_nstorages(const struct moe_pickle *p);
const struct moe_pickle_storage *moe_pickle_storage(const struct moe_pickle *p, size_t i);

#endif
