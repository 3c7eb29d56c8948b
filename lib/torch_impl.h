/* Internal: how the archive loader gives a PyTorch zip member a way back to its start (not installed). */
#ifndef MOE_TORCH_IMPL_H
#define MOE_TORCH_IMPL_H

#include "ckpt_impl.h"

/*
 * A PyTorch zip read from a forward-only input can only serve tensors in
 * storage order. When the bytes can be had again (a member of an archive
 * in a regular file, in memory or spooled), the archive loader passes a
 * function that returns a fresh input positioned at the zip's start; the
 * torch backend then goes back by reopening, as it does on files. The new
 * input is owned by the backend.
 */
typedef int (*moe_torch_reopen_fn)(void *ctx, struct moe_input **out);

/* For file `file` loaded by moe_torch_load(); 0, or MOE_EINVAL if that
 * file is not a PyTorch zip. */
int moe_torch_set_reopen(struct moe_ckpt *ck, int file, moe_torch_reopen_fn fn, void *ctx);

#endif
