/* Error codes and the per-handle error record shared by every libmoe module. */
#ifndef MOE_ERROR_H
#define MOE_ERROR_H

/*
 * Library functions return 0 on success or one of these negative codes.
 * The human-readable detail ("truncated tensor 'blk.3.ffn_up_exps.weight'")
 * is kept on the handle that failed and read with that module's errstr call.
 */
enum moe_err {
	MOE_OK = 0,
	MOE_ENOMEM = -1,   /* allocation failed */
	MOE_EIO = -2,      /* read/write/system call failed */
	MOE_EFORMAT = -3,  /* input is malformed */
	MOE_ETRUNC = -4,   /* input ends early */
	MOE_EUNSUP = -5,   /* valid but unsupported (version, type, feature) */
	MOE_EINVAL = -6,   /* bad argument from the caller */
	MOE_ERANGE = -7,   /* a count, size or offset is out of bounds */
	MOE_ESEEK = -8,    /* random access requested on a forward-only input */
	MOE_ENOENT = -9,   /* named item (file, tensor, key) not found */
	MOE_EEXIST = -10,  /* output exists and overwrite was not requested */
	MOE_EPIPE = -11,   /* output closed by the reader */
	MOE_ESECURITY = -12 /* refused for safety (e.g. pickle GLOBAL not allowed) */
};

/* Detail of the last failure on a handle. */
struct moe_error {
	int code;
	char msg[512];
};

/* Short generic text for a code ("truncated input"). */
const char *moe_strerror(int code);

/* Records code and a printf-style detail on e; returns code so callers can
 * write `return moe_error_set(&h->err, MOE_EFORMAT, "...")`. */
int moe_error_set(struct moe_error *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Copies another handle's error into e (for layered handles); returns its code. */
int moe_error_copy(struct moe_error *e, const struct moe_error *from);

/* Empties e. */
void moe_error_clear(struct moe_error *e);

/* e->msg if set, else the generic text of e->code. */
const char *moe_error_str(const struct moe_error *e);

#endif
