/* One input abstraction for files, stdin, pipes, memory and archive members. */
#ifndef MOE_INPUT_H
#define MOE_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * A moe_input is a byte source with a buffered reader that can peek, so
 * formats are sniffed by content even on pipes. Regular files (also a
 * regular file on stdin) are seekable and can be memory-mapped; pipes,
 * memory callbacks and archive members are read forward only.
 * The handle owns its buffer and mapping; pointers from peek stay valid
 * until the next call on the handle, pointers from map until moe_input_free.
 */
struct moe_input;

/* Source callback for moe_input_open_fn: returns bytes read (0 at end) or -1. */
typedef ssize_t (*moe_read_fn)(void *ctx, void *buf, size_t n);

/* Largest peek the buffer guarantees. */
#define MOE_INPUT_PEEK_MAX 65536

/* Opens path, or standard input for "-". On failure *out is NULL and a
 * message is written to errbuf (may be NULL). */
int moe_input_open(struct moe_input **out, const char *path,
	char *errbuf, size_t errlen);
/* Wraps n bytes of memory (not copied; must outlive the handle). */
int moe_input_open_memory(struct moe_input **out, const void *buf, size_t n,
	const char *name);
/* Forward-only source from a callback; size is -1 when unknown. */
int moe_input_open_fn(struct moe_input **out, const char *name,
	moe_read_fn fn, void *ctx, int64_t size);
/* A second handle on the same regular file or memory, with its own
 * position (0); MOE_ESEEK for pipes and callbacks. Lets a loader come back
 * to data after the caller has freed the first handle. */
int moe_input_reopen(const struct moe_input *in, struct moe_input **out);
void moe_input_free(struct moe_input *in);

const char *moe_input_name(const struct moe_input *in);
const char *moe_input_errstr(const struct moe_input *in);
int moe_input_errcode(const struct moe_input *in);
/* Total size in bytes, or -1 when unknown (pipes). */
int64_t moe_input_size(const struct moe_input *in);
/* Offset of the next byte read. */
uint64_t moe_input_tell(const struct moe_input *in);
/* Nonzero for regular files and memory. */
int moe_input_seekable(const struct moe_input *in);
/* Bytes fetched from the underlying source so far (not counting mmap). */
uint64_t moe_input_bytes_read(const struct moe_input *in);

/* Makes up to n (<= MOE_INPUT_PEEK_MAX) bytes available at *p without
 * consuming them; *got < n only at end of input. */
int moe_input_peek(struct moe_input *in, size_t n, const void **p, size_t *got);
/* Reads exactly n bytes: 0, MOE_ETRUNC at early end, or MOE_EIO. */
int moe_input_read(struct moe_input *in, void *buf, size_t n);
/* Reads up to n bytes; returns the count (0 at end) or a negative code. */
ssize_t moe_input_read_some(struct moe_input *in, void *buf, size_t n);
/* Discards n bytes: 0 or MOE_ETRUNC. */
int moe_input_skip(struct moe_input *in, uint64_t n);
/* Moves to off; backwards on a forward-only input is MOE_ESEEK. */
int moe_input_seek(struct moe_input *in, uint64_t off);
/* Maps the whole input read-only: 0, or MOE_ESEEK if not a regular file
 * or memory. */
int moe_input_map(struct moe_input *in, const void **base, uint64_t *size);

/*
 * Turns a forward-only input into a seekable one by copying what is left of
 * it into an unlinked temporary file in $TMPDIR (or /tmp), at the same
 * offsets; a no-op on seekable inputs. For consumers that need random
 * access (expert stacking from a pipe): memory stays flat, disk holds the
 * stream.
 */
int moe_input_spool(struct moe_input *in);

#endif
