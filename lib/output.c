/* Buffered atomic file writer (temp + fsync + rename) and stdout writer. */
#include "output.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

#define OBUF (1 << 20)

struct moe_output {
	char *name;
	char *tmp;          /* temp path, NULL for stdout/fd */
	int fd;
	int own_fd;
	int committed;
	int stream;
	unsigned char *buf;
	size_t len;
	uint64_t pos;
	struct moe_error err;
};

static int out_alloc(struct moe_output **out, const char *name)
{
	struct moe_output *o = calloc(1, sizeof *o);

	if (o == NULL || (o->name = strdup(name)) == NULL ||
	    (o->buf = malloc(OBUF)) == NULL) {
		if (o)
			free(o->name);
		free(o);
		return MOE_ENOMEM;
	}
	o->fd = -1;
	*out = o;
	return 0;
}

int moe_output_open_fd(struct moe_output **out, int fd, const char *name)
{
	struct stat st;
	int rc = out_alloc(out, name);

	if (rc != 0)
		return rc;
	(*out)->fd = fd;
	(*out)->stream = fstat(fd, &st) != 0 || !S_ISREG(st.st_mode);
	return 0;
}

int moe_output_open(struct moe_output **out, const char *path, unsigned flags)
{
	struct moe_output *o;
	struct stat st;
	char *dup, *dir;
	int rc;

	*out = NULL;
	if (strcmp(path, "-") == 0)
		return moe_output_open_fd(out, STDOUT_FILENO, "<stdout>");
	if ((rc = out_alloc(&o, path)) != 0)
		return rc;
	*out = o;
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
		/* a device or FIFO (/dev/null, a named pipe): write it in place */
		if ((o->fd = open(path, O_WRONLY | O_CLOEXEC)) < 0)
			return moe_error_set(&o->err, MOE_EIO, "cannot open: %s", strerror(errno));
		o->own_fd = 1;
		o->stream = 1;
		return 0;
	}
	if (!(flags & MOE_OUT_FORCE) && access(path, F_OK) == 0)
		return moe_error_set(&o->err, MOE_EEXIST,
			"output exists (use --force to replace it)");
	if ((dup = strdup(path)) == NULL)
		return moe_error_set(&o->err, MOE_ENOMEM, "out of memory");
	dir = dirname(dup);
	if (asprintf(&o->tmp, "%s/.%s.XXXXXX", dir, strrchr(path, '/') ?
	    strrchr(path, '/') + 1 : path) < 0) {
		o->tmp = NULL;
		free(dup);
		return moe_error_set(&o->err, MOE_ENOMEM, "out of memory");
	}
	free(dup);
	o->fd = mkostemp(o->tmp, O_CLOEXEC);
	if (o->fd < 0) {
		free(o->tmp);
		o->tmp = NULL;
		return moe_error_set(&o->err, MOE_EIO, "cannot create file: %s",
			strerror(errno));
	}
	fchmod(o->fd, 0644);
	o->own_fd = 1;
	return 0;
}

static int write_all(struct moe_output *o, const unsigned char *p, size_t n)
{
	size_t off = 0;

	while (off < n) {
		ssize_t w = write(o->fd, p + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			int e = errno;
			if (e == EPIPE)
				return moe_error_set(&o->err, MOE_EPIPE, "broken pipe");
			return moe_error_set(&o->err, MOE_EIO, "write error: %s",
				strerror(e));
		}
		off += (size_t)w;
	}
	return 0;
}

static int flush(struct moe_output *o)
{
	int rc = write_all(o, o->buf, o->len);

	o->len = 0;
	return rc;
}

int moe_output_write(struct moe_output *o, const void *buf, size_t n)
{
	const unsigned char *p = buf;
	int rc;

	if (o->err.code)
		return o->err.code;
	/* large pieces skip the buffer: one copy fewer for tensor data */
	if (n >= OBUF) {
		if ((rc = flush(o)) == 0 && (rc = write_all(o, p, n)) == 0)
			o->pos += n;
		return rc;
	}
	while (n > 0) {
		size_t k = OBUF - o->len < n ? OBUF - o->len : n;
		memcpy(o->buf + o->len, p, k);
		o->len += k;
		o->pos += k;
		p += k;
		n -= k;
		if (o->len == OBUF && (rc = flush(o)) != 0)
			return rc;
	}
	return 0;
}

int moe_output_zeros(struct moe_output *o, uint64_t n)
{
	static const unsigned char z[4096];
	int rc;

	while (n > 0) {
		size_t k = n < sizeof z ? (size_t)n : sizeof z;
		if ((rc = moe_output_write(o, z, k)) != 0)
			return rc;
		n -= k;
	}
	return 0;
}

uint64_t moe_output_tell(const struct moe_output *o) { return o->pos; }
int moe_output_is_stream(const struct moe_output *o) { return o->stream; }
const char *moe_output_name(const struct moe_output *o) { return o->name; }
const char *moe_output_errstr(const struct moe_output *o) { return moe_error_str(&o->err); }

int moe_output_pwrite(struct moe_output *o, const void *buf, size_t n, uint64_t off)
{
	int rc;

	if (o->err.code)
		return o->err.code;
	if (o->stream)
		return moe_error_set(&o->err, MOE_ESEEK, "output is not seekable");
	if ((rc = flush(o)) != 0)
		return rc;
	if (pwrite(o->fd, buf, n, (off_t)off) != (ssize_t)n)
		return moe_error_set(&o->err, MOE_EIO, "write error: %s",
			strerror(errno));
	return 0;
}

int moe_output_commit(struct moe_output *o)
{
	int rc;

	if (o->err.code)
		return o->err.code;
	if ((rc = flush(o)) != 0)
		return rc;
	if (o->tmp == NULL)
		return 0;
	if (fsync(o->fd) != 0)
		return moe_error_set(&o->err, MOE_EIO, "fsync: %s", strerror(errno));
	if (close(o->fd) != 0) {
		o->own_fd = 0;
		return moe_error_set(&o->err, MOE_EIO, "close: %s", strerror(errno));
	}
	o->own_fd = 0;
	if (rename(o->tmp, o->name) != 0)
		return moe_error_set(&o->err, MOE_EIO, "rename: %s", strerror(errno));
	o->committed = 1;
	return 0;
}

void moe_output_free(struct moe_output *o)
{
	if (o == NULL)
		return;
	if (o->own_fd)
		close(o->fd);
	if (o->tmp && !o->committed)
		unlink(o->tmp);
	free(o->tmp);
	free(o->buf);
	free(o->name);
	free(o);
}
