/* Atomic output: a temp file beside the target, fsync, rename; or stdout. */
#ifndef MOE_OUTPUT_H
#define MOE_OUTPUT_H

#include <stddef.h>
#include <stdint.h>

/*
 * Writers write through a moe_output. For a path, bytes go to a hidden temp
 * file in the target's directory; moe_output_commit() fsyncs and renames it
 * into place, so a failed run never leaves a half-written file under the
 * target name. "-" writes to standard output (no commit step needed, but
 * calling it flushes), and so does an existing device or FIFO such as
 * /dev/null. moe_output_free() without a commit removes the temp.
 */
struct moe_output;

enum {
	MOE_OUT_FORCE = 1   /* replace an existing target */
};

int moe_output_open(struct moe_output **out, const char *path, unsigned flags);
/* Writes to an existing descriptor (not owned), for tests and pipes. */
int moe_output_open_fd(struct moe_output **out, int fd, const char *name);
int moe_output_write(struct moe_output *o, const void *buf, size_t n);
/* Writes n zero bytes (alignment padding). */
int moe_output_zeros(struct moe_output *o, uint64_t n);
/* Bytes written so far. */
uint64_t moe_output_tell(const struct moe_output *o);
/* Nonzero when writing to a pipe or terminal rather than a file. */
int moe_output_is_stream(const struct moe_output *o);
/* Repositions a file output (not stdout) to rewrite a header: 0 or MOE_ESEEK. */
int moe_output_pwrite(struct moe_output *o, const void *buf, size_t n, uint64_t off);
int moe_output_commit(struct moe_output *o);
void moe_output_free(struct moe_output *o);
const char *moe_output_name(const struct moe_output *o);
const char *moe_output_errstr(const struct moe_output *o);

#endif
