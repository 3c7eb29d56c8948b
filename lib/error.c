/* Error codes to text and the error record kept on every handle. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *moe_strerror(int code)
{
	switch (code) {
	case MOE_OK: return "success";
	case MOE_ENOMEM: return "out of memory";
	case MOE_EIO: return "input/output error";
	case MOE_EFORMAT: return "malformed input";
	case MOE_ETRUNC: return "truncated input";
	case MOE_EUNSUP: return "unsupported";
	case MOE_EINVAL: return "invalid argument";
	case MOE_ERANGE: return "value out of range";
	case MOE_ESEEK: return "input is not seekable";
	case MOE_ENOENT: return "not found";
	case MOE_EEXIST: return "already exists";
	case MOE_EPIPE: return "broken pipe";
	case MOE_ESECURITY: return "refused for safety";
	}
	return "unknown error";
}

int moe_error_set(struct moe_error *e, int code, const char *fmt, ...)
{
	va_list ap;

	if (e == NULL)
		return code;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
	return code;
}

int moe_error_copy(struct moe_error *e, const struct moe_error *from)
{
	if (e != from) {
		e->code = from->code;
		memcpy(e->msg, from->msg, sizeof e->msg);
	}
	return e->code;
}

void moe_error_clear(struct moe_error *e)
{
	e->code = 0;
	e->msg[0] = '\0';
}

const char *moe_error_str(const struct moe_error *e)
{
	return e->msg[0] ? e->msg : moe_strerror(e->code);
}
