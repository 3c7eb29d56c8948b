/* Buffered, peekable reader over files (pread/mmap), pipes, memory and callbacks. */
#include "input.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

enum kind { K_FILE, K_STREAM, K_MEM, K_FN };

struct moe_input {
	char *name;
	struct moe_error err;
	enum kind kind;
	int fd;
	int own_fd;
	int64_t size;            /* -1 unknown */
	uint64_t pos;            /* offset of buf[start] */
	unsigned char *buf;      /* K_FILE, K_STREAM, K_FN */
	size_t start, len;
	const unsigned char *mem;/* K_MEM */
	void *map;
	size_t maplen;
	moe_read_fn fn;
	void *ctx;
	uint64_t nread;
	int eof;
};

#define BUFCAP (4 * MOE_INPUT_PEEK_MAX)
#define FILE_READ_MIN 4096

static int input_alloc(struct moe_input **out, const char *name, enum kind k)
{
	struct moe_input *in = calloc(1, sizeof *in);

	if (in == NULL || (in->name = strdup(name)) == NULL) {
		free(in);
		return MOE_ENOMEM;
	}
	in->kind = k;
	in->fd = -1;
	in->size = -1;
	if (k != K_MEM && (in->buf = malloc(BUFCAP)) == NULL) {
		free(in->name);
		free(in);
		return MOE_ENOMEM;
	}
	*out = in;
	return 0;
}

int moe_input_open(struct moe_input **out, const char *path,
	char *errbuf, size_t errlen)
{
	int stdin_ = strcmp(path, "-") == 0;
	int fd = stdin_ ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	int rc;

	*out = NULL;
	if (fd < 0 || fstat(fd, &st) != 0) {
		if (errbuf)
			snprintf(errbuf, errlen, "%s", strerror(errno));
		if (fd >= 0 && !stdin_)
			close(fd);
		return errno == ENOENT ? MOE_ENOENT : MOE_EIO;
	}
	if (S_ISDIR(st.st_mode)) {
		if (errbuf)
			snprintf(errbuf, errlen, "is a directory");
		if (!stdin_)
			close(fd);
		return MOE_EINVAL;
	}
	rc = input_alloc(out, stdin_ ? "<stdin>" : path,
		S_ISREG(st.st_mode) ? K_FILE : K_STREAM);
	if (rc != 0) {
		if (!stdin_)
			close(fd);
		if (errbuf)
			snprintf(errbuf, errlen, "out of memory");
		return rc;
	}
	(*out)->fd = fd;
	(*out)->own_fd = !stdin_;
	if (S_ISREG(st.st_mode)) {
		(*out)->size = st.st_size;
		/* stdin redirected from a file may start mid-file */
		if (stdin_) {
			off_t cur = lseek(fd, 0, SEEK_CUR);
			(*out)->pos = cur > 0 ? (uint64_t)cur : 0;
		}
	}
	return 0;
}

int moe_input_open_memory(struct moe_input **out, const void *buf, size_t n,
	const char *name)
{
	int rc = input_alloc(out, name, K_MEM);

	if (rc == 0) {
		(*out)->mem = buf;
		(*out)->size = (int64_t)n;
	}
	return rc;
}

int moe_input_open_fn(struct moe_input **out, const char *name,
	moe_read_fn fn, void *ctx, int64_t size)
{
	int rc = input_alloc(out, name, K_FN);

	if (rc == 0) {
		(*out)->fn = fn;
		(*out)->ctx = ctx;
		(*out)->size = size;
	}
	return rc;
}

int moe_input_reopen(const struct moe_input *in, struct moe_input **out)
{
	int fd, rc;

	*out = NULL;
	if (in->kind == K_MEM)
		return moe_input_open_memory(out, in->mem, (size_t)in->size, in->name);
	if (in->kind != K_FILE)
		return MOE_ESEEK;
	if ((fd = fcntl(in->fd, F_DUPFD_CLOEXEC, 0)) < 0)
		return MOE_EIO;
	if ((rc = input_alloc(out, in->name, K_FILE)) != 0) {
		close(fd);
		return rc;
	}
	(*out)->fd = fd;
	(*out)->own_fd = 1;
	(*out)->size = in->size;
	return 0;
}

void moe_input_free(struct moe_input *in)
{
	if (in == NULL)
		return;
	if (in->map)
		munmap(in->map, in->maplen);
	if (in->own_fd)
		close(in->fd);
	free(in->buf);
	free(in->name);
	free(in);
}

const char *moe_input_name(const struct moe_input *in) { return in->name; }
const char *moe_input_errstr(const struct moe_input *in) { return moe_error_str(&in->err); }
int moe_input_errcode(const struct moe_input *in) { return in->err.code; }
int64_t moe_input_size(const struct moe_input *in) { return in->size; }
uint64_t moe_input_tell(const struct moe_input *in) { return in->pos; }
uint64_t moe_input_bytes_read(const struct moe_input *in) { return in->nread; }

int moe_input_seekable(const struct moe_input *in)
{
	return in->kind == K_FILE || in->kind == K_MEM;
}

/* Reads more bytes from the source into buf after the buffered ones. */
static ssize_t fetch(struct moe_input *in, size_t want)
{
	unsigned char *dst;
	size_t room;
	ssize_t r;

	if (in->start > 0 && in->start + in->len + want > BUFCAP) {
		memmove(in->buf, in->buf + in->start, in->len);
		in->start = 0;
	}
	dst = in->buf + in->start + in->len;
	/* A file is read as far as asked, not a whole buffer ahead (a fresh
	 * small read takes a page): listing a checkpoint then reads its
	 * headers and not the data after them. Streams take what they get. */
	room = BUFCAP - in->start - in->len;
	if (in->kind != K_FILE || want > room)
		want = room;
	else if (in->len == 0 && want < FILE_READ_MIN)
		want = FILE_READ_MIN < room ? FILE_READ_MIN : room;
	do {
		if (in->kind == K_FILE)
			r = pread(in->fd, dst, want, (off_t)(in->pos + in->len));
		else if (in->kind == K_STREAM)
			r = read(in->fd, dst, want);
		else
			r = in->fn(in->ctx, dst, want);
	} while (r < 0 && in->kind != K_FN && errno == EINTR);
	if (r < 0)
		return moe_error_set(&in->err, MOE_EIO, "read error: %s",
			in->kind == K_FN ? "source failed" : strerror(errno));
	if (r == 0)
		in->eof = 1;
	in->len += (size_t)r;
	in->nread += (uint64_t)r;
	return r;
}

int moe_input_peek(struct moe_input *in, size_t n, const void **p, size_t *got)
{
	if (n > MOE_INPUT_PEEK_MAX)
		return moe_error_set(&in->err, MOE_EINVAL, "peek of %zu bytes", n);
	if (in->kind == K_MEM) {
		uint64_t left = (uint64_t)in->size - in->pos;
		*p = in->mem + in->pos;
		*got = n < left ? n : (size_t)left;
		return 0;
	}
	while (in->len < n && !in->eof) {
		ssize_t r = fetch(in, n - in->len);
		if (r < 0)
			return (int)r;
	}
	*p = in->buf + in->start;
	*got = in->len < n ? in->len : n;
	return 0;
}

ssize_t moe_input_read_some(struct moe_input *in, void *buf, size_t n)
{
	size_t k;

	if (in->kind == K_MEM) {
		uint64_t left = (uint64_t)in->size - in->pos;
		k = n < left ? n : (size_t)left;
		memcpy(buf, in->mem + in->pos, k);
		in->pos += k;
		return (ssize_t)k;
	}
	if (in->len == 0) {
		/* large reads bypass the buffer */
		if (n >= BUFCAP / 2 && in->kind == K_FILE) {
			ssize_t r;
			do
				r = pread(in->fd, buf, n, (off_t)in->pos);
			while (r < 0 && errno == EINTR);
			if (r < 0)
				return moe_error_set(&in->err, MOE_EIO,
					"read error: %s", strerror(errno));
			in->pos += (uint64_t)r;
			in->nread += (uint64_t)r;
			return r;
		}
		if (in->eof)
			return 0;
		ssize_t r = fetch(in, n);
		if (r <= 0)
			return r;
	}
	k = n < in->len ? n : in->len;
	memcpy(buf, in->buf + in->start, k);
	in->start += k;
	in->len -= k;
	in->pos += k;
	if (in->len == 0)
		in->start = 0;
	return (ssize_t)k;
}

int moe_input_read(struct moe_input *in, void *buf, size_t n)
{
	unsigned char *p = buf;

	while (n > 0) {
		ssize_t r = moe_input_read_some(in, p, n);
		if (r < 0)
			return (int)r;
		if (r == 0)
			return moe_error_set(&in->err, MOE_ETRUNC,
				"unexpected end of input at offset %llu",
				(unsigned long long)in->pos);
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

int moe_input_seek(struct moe_input *in, uint64_t off)
{
	if (moe_input_seekable(in)) {
		if (off > (uint64_t)in->size)
			return moe_error_set(&in->err, MOE_ETRUNC,
				"offset %llu is past the end (%lld bytes)",
				(unsigned long long)off, (long long)in->size);
		if (in->kind == K_FILE && off >= in->pos && off - in->pos <= in->len) {
			size_t d = (size_t)(off - in->pos);
			in->start += d;
			in->len -= d;
		} else {
			in->start = in->len = 0;
			in->eof = 0;
		}
		in->pos = off;
		return 0;
	}
	if (off < in->pos)
		return moe_error_set(&in->err, MOE_ESEEK,
			"cannot go back to offset %llu on a forward-only input",
			(unsigned long long)off);
	return moe_input_skip(in, off - in->pos);
}

int moe_input_skip(struct moe_input *in, uint64_t n)
{
	if (moe_input_seekable(in)) {
		if (n > (uint64_t)in->size - in->pos)
			return moe_error_set(&in->err, MOE_ETRUNC,
				"unexpected end of input at offset %llu",
				(unsigned long long)in->size);
		return moe_input_seek(in, in->pos + n);
	}
	while (n > 0) {
		if (in->len == 0) {
			ssize_t r = in->eof ? 0 : fetch(in, BUFCAP);
			if (r < 0)
				return (int)r;
			if (in->len == 0)
				return moe_error_set(&in->err, MOE_ETRUNC,
					"unexpected end of input at offset %llu",
					(unsigned long long)in->pos);
		}
		size_t k = n < in->len ? (size_t)n : in->len;
		in->start += k;
		in->len -= k;
		in->pos += k;
		n -= k;
		if (in->len == 0)
			in->start = 0;
	}
	return 0;
}

int moe_input_map(struct moe_input *in, const void **base, uint64_t *size)
{
	if (in->kind == K_MEM) {
		*base = in->mem;
		*size = (uint64_t)in->size;
		return 0;
	}
	if (in->kind != K_FILE)
		return moe_error_set(&in->err, MOE_ESEEK,
			"input is not a regular file and cannot be mapped");
	if (in->map == NULL && in->size > 0) {
		void *m = mmap(NULL, (size_t)in->size, PROT_READ, MAP_SHARED, in->fd, 0);
		if (m == MAP_FAILED)
			return moe_error_set(&in->err, MOE_EIO, "mmap: %s",
				strerror(errno));
		in->map = m;
		in->maplen = (size_t)in->size;
	}
	*base = in->map;
	*size = (uint64_t)in->size;
	return 0;
}

int moe_input_spool(struct moe_input *in)
{
	const char *dir = getenv("TMPDIR");
	char *path;
	int fd;
	uint64_t off = in->pos;

	if (moe_input_seekable(in))
		return 0;
	if (asprintf(&path, "%s/moe-spool.XXXXXX", dir && *dir ? dir : "/tmp") < 0)
		return moe_error_set(&in->err, MOE_ENOMEM, "out of memory");
	fd = mkostemp(path, O_CLOEXEC);
	if (fd >= 0)
		unlink(path);
	free(path);
	if (fd < 0)
		return moe_error_set(&in->err, MOE_EIO, "cannot create a temporary file: %s",
			strerror(errno));
	for (;;) {
		ssize_t r = in->len ? (ssize_t)in->len : fetch(in, BUFCAP);
		if (r < 0 || (r == 0 && in->len == 0))
			break;
		if (pwrite(fd, in->buf + in->start, in->len, (off_t)off) != (ssize_t)in->len) {
			int e = errno;
			close(fd);
			return moe_error_set(&in->err, MOE_EIO, "spooling input: %s", strerror(e));
		}
		off += in->len;
		in->start = in->len = 0;
	}
	if (in->err.code) {
		close(fd);
		return in->err.code;
	}
	if (in->own_fd)
		close(in->fd);
	in->fd = fd;
	in->own_fd = 1;
	in->kind = K_FILE;
	in->size = (int64_t)off;
	in->eof = 0;
	return 0;
}
