/* Checkpoints inside tar / tar.gz / tar.zst / tar.xz / tar.bz2 / zip archives, read in one pass with libarchive. */
#include "ckpt_impl.h"
#include "torch_impl.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * One pass over the archive: members that sniff as GGUF, safetensors or a
 * PyTorch zip are handed to their backend through a moe_input reading that
 * member; config.json, generation_config.json, tokenizer_config.json and
 * tokenizer.json (by basename, first one wins) fill the side JSON; *.index.json members
 * are checked against what was loaded once the pass is over. Nested
 * archives, directories and other files are skipped.
 *
 * Tensor data is read later, after the pass has moved on. Every loaded
 * member has a cursor (member number, bytes consumed) and all cursors
 * share one libarchive reader over a "source" that can be read again from
 * the start: a second handle on the same regular file or memory, or, when
 * the archive came through a pipe, a spool file - the pass copies every
 * byte it reads into an unlinked temp file in $TMPDIR, so memory stays
 * flat and the data is still there later (if the spool cannot be written,
 * e.g. a full disk, listing still works and data reads fail with the
 * reason). Reading members (and offsets
 * within them) in storage order is one forward pass; going back reopens
 * the source and decompresses up to the member again.
 *
 * safetensors and GGUF members get per-file ops reading at any offset
 * through their cursor. A PyTorch member keeps its own zip reader over a
 * forward-only input fed by its cursor; to go back it asks for a fresh
 * input on the member (member_reopen), so any order works, at the price of
 * reading the archive again up to the member.
 *
 * The archive itself is registered as a file without tensors ("x.tar")
 * whose release frees the shared state once no member file uses it.
 */

#define RBUF (1u << 16)
#define MAX_JSON (64u << 20)
#define MAX_MEMBERS (1u << 20)

struct arc;

struct cursor {
	struct arc *arc;
	uint64_t ord;        /* member number in archive order (1-based) */
	uint64_t pos;        /* bytes of the member consumed through it */
	char *path;          /* member path */
};

struct arc {
	unsigned refs;
	char *name;               /* archive name for file names */
	struct moe_input *in;     /* during the pass: the caller's input */
	struct moe_input *src;    /* afterwards: reopened file/memory or spool */
	uint64_t start;           /* offset of the archive in src */
	int spool;                /* fd of the spool file, -1 none */
	int spool_errno;          /* spooling failed: listing goes on, data is lost */
	int in_pass;
	struct archive *a;
	uint64_t cur_ord;         /* member the reader is in (0 = none yet) */
	uint64_t cur_pos;
	int eof;
	struct cursor **cur;      /* loaded members */
	size_t ncur, capcur;
	struct moe_error err;     /* detail of a failed cursor read */
	unsigned char rbuf[RBUF];     /* libarchive reads from here */
	unsigned char scratch[RBUF];  /* skipped bytes land here */
};

static void arc_unref(struct arc *s)
{
	if (s == NULL || --s->refs > 0)
		return;
	if (s->a)
		archive_read_free(s->a);
	moe_input_free(s->src);
	if (s->spool >= 0)
		close(s->spool);
	for (size_t i = 0; i < s->ncur; i++) {
		free(s->cur[i]->path);
		free(s->cur[i]);
	}
	free(s->cur);
	free(s->name);
	free(s);
}

/* One-line libarchive message. */
static int la_fail(struct moe_error *e, struct archive *a, int code)
{
	const char *m = archive_error_string(a);
	char msg[400];

	snprintf(msg, sizeof msg, "%s", m ? m : "archive read error");
	for (char *p = msg; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	return moe_error_set(e, code, "%s", msg);
}

static la_ssize_t src_read(struct archive *a, void *ctx, const void **buf)
{
	struct arc *s = ctx;
	struct moe_input *in = s->in_pass ? s->in : s->src;
	ssize_t r = moe_input_read_some(in, s->rbuf, sizeof s->rbuf);

	if (r < 0) {
		archive_set_error(a, EIO, "%s", moe_input_errstr(in));
		return -1;
	}
	if (s->in_pass && s->spool >= 0) {
		for (ssize_t w = 0, k; w < r; w += k) {
			k = write(s->spool, s->rbuf + w, (size_t)(r - w));
			if (k < 0 && errno == EINTR) {
				k = 0;
				continue;
			}
			if (k <= 0) {  /* e.g. a full disk: keep listing, drop the data */
				s->spool_errno = k < 0 ? errno : ENOSPC;
				close(s->spool);
				s->spool = -1;
				break;
			}
		}
	}
	*buf = s->rbuf;
	return r;
}

/* Seekable sources skip without reading (not while spooling: every byte
 * must reach the spool). */
static la_int64_t src_skip(struct archive *a, void *ctx, la_int64_t n)
{
	struct arc *s = ctx;
	struct moe_input *in = s->in_pass ? s->in : s->src;
	int64_t size = moe_input_size(in);
	uint64_t pos = moe_input_tell(in);

	(void)a;
	if (n <= 0 || !moe_input_seekable(in) || (s->in_pass && s->spool >= 0))
		return 0;
	if (size >= 0 && (uint64_t)n > (uint64_t)size - pos)
		n = (la_int64_t)((uint64_t)size - pos);
	return moe_input_skip(in, (uint64_t)n) == 0 ? n : 0;
}

static int open_reader(struct arc *s)
{
	if (s->a)
		archive_read_free(s->a);
	s->cur_ord = 0;
	s->cur_pos = 0;
	s->eof = 0;
	if ((s->a = archive_read_new()) == NULL)
		return moe_error_set(&s->err, MOE_ENOMEM, "out of memory");
	archive_read_support_filter_all(s->a);
	archive_read_support_format_tar(s->a);
	archive_read_support_format_gnutar(s->a);
	archive_read_support_format_zip(s->a);
	archive_read_set_callback_data(s->a, s);
	archive_read_set_read_callback(s->a, src_read);
	archive_read_set_skip_callback(s->a, src_skip);
	if (archive_read_open1(s->a) != ARCHIVE_OK)
		return la_fail(&s->err, s->a, MOE_EFORMAT);
	return 0;
}

static int next_header(struct arc *s, struct archive_entry **e)
{
	int r;

	if (s->eof)
		return 1;
	r = archive_read_next_header(s->a, e);
	if (r == ARCHIVE_EOF) {
		s->eof = 1;
		return 1;
	}
	if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
		return la_fail(&s->err, s->a, MOE_EFORMAT);
	s->cur_ord++;
	s->cur_pos = 0;
	return 0;
}

/* Puts the shared reader at byte pos of the cursor's member. */
static int position(struct cursor *c, uint64_t pos)
{
	struct arc *s = c->arc;
	struct archive_entry *e;
	int rc;

	if (s->cur_ord > c->ord || (s->cur_ord == c->ord && s->cur_pos > pos)) {
		if (s->in_pass)
			return moe_error_set(&s->err, MOE_ESEEK,
				"member '%s' was already read past", c->path);
		if (s->src == NULL)
			return moe_error_set(&s->err, MOE_EIO,
				"data of a piped archive was not kept: spooling to $TMPDIR failed (%s)",
				strerror(s->spool_errno));
		if ((rc = moe_input_seek(s->src, s->start)) != 0)
			return moe_error_set(&s->err, rc, "%s", moe_input_errstr(s->src));
		if ((rc = open_reader(s)) != 0)
			return rc;
	}
	while (s->cur_ord < c->ord) {
		if ((rc = next_header(s, &e)) < 0)
			return rc;
		if (rc == 1)
			return moe_error_set(&s->err, MOE_ETRUNC,
				"member '%s' is gone when reading the archive again", c->path);
		if (s->cur_ord == c->ord && strcmp(archive_entry_pathname(e) ?
		    archive_entry_pathname(e) : "", c->path) != 0)
			return moe_error_set(&s->err, MOE_EFORMAT,
				"archive changed: member %llu is not '%s'",
				(unsigned long long)c->ord, c->path);
	}
	while (s->cur_pos < pos) {
		uint64_t k = pos - s->cur_pos;
		la_ssize_t r = archive_read_data(s->a, s->scratch, k < RBUF ? (size_t)k : RBUF);
		if (r < 0)
			return la_fail(&s->err, s->a, MOE_EFORMAT);
		if (r == 0)
			return moe_error_set(&s->err, MOE_ETRUNC, "member '%s' ends early", c->path);
		s->cur_pos += (uint64_t)r;
	}
	return 0;
}

/* Reads up to n bytes of the member at the cursor (0 at its end). */
static ssize_t cursor_read_at(struct cursor *c, uint64_t pos, void *buf, size_t n)
{
	struct arc *s = c->arc;
	la_ssize_t r;
	int rc;

	if ((rc = position(c, pos)) != 0)
		return rc;
	r = archive_read_data(s->a, buf, n);
	if (r < 0)
		return la_fail(&s->err, s->a, MOE_EFORMAT);
	s->cur_pos += (uint64_t)r;
	return r;
}

/* moe_read_fn of a member input: a forward stream that can resume after
 * the shared reader has been elsewhere. */
static ssize_t cursor_read(void *ctx, void *buf, size_t n)
{
	struct cursor *c = ctx;
	ssize_t r = cursor_read_at(c, c->pos, buf, n);

	if (r < 0)
		return -1;
	c->pos += (uint64_t)r;
	return r;
}

static int member_read(struct moe_ckpt *ck, struct moe_ckpt_file *f,
	const struct moe_tensor *t, uint64_t off, void *buf, size_t n)
{
	struct cursor *c = f->priv;
	unsigned char *p = buf;
	uint64_t pos = t->offset + off;

	while (n > 0) {
		ssize_t r = cursor_read_at(c, pos, p, n);
		if (r < 0)
			return moe_error_set(&ck->err, (int)r, "tensor '%s': %s", t->name,
				moe_error_str(&c->arc->err));
		if (r == 0)
			return moe_error_set(&ck->err, MOE_ETRUNC, "truncated tensor '%s'", t->name);
		ck->bytes_extra += (uint64_t)r;
		p += r;
		n -= (size_t)r;
		pos += (uint64_t)r;
	}
	return 0;
}

static void member_release(struct moe_ckpt_file *f)
{
	struct cursor *c = f->priv;

	if (c)
		arc_unref(c->arc);
	f->priv = NULL;
}

static int no_read(struct moe_ckpt *ck, struct moe_ckpt_file *f,
	const struct moe_tensor *t, uint64_t off, void *buf, size_t n)
{
	(void)f; (void)off; (void)buf; (void)n;
	return moe_error_set(&ck->err, MOE_EINVAL, "tensor '%s' is not in the archive file", t->name);
}

static void archive_release(struct moe_ckpt_file *f)
{
	arc_unref(f->priv);
	f->priv = NULL;
}

static const struct moe_ckpt_fops member_fops = { member_read, member_release };
static const struct moe_ckpt_fops archive_fops = { no_read, archive_release };

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');
	return s ? s + 1 : p;
}

static int ends_with(const char *s, const char *suf)
{
	size_t n = strlen(s), m = strlen(suf);
	return n >= m && strcmp(s + n - m, suf) == 0;
}

/* The current member as JSON (bounded). */
static int read_json(struct moe_ckpt *ck, struct arc *s, struct archive_entry *e,
	json_t **out)
{
	size_t cap = 65536, n = 0;
	char *b;
	la_ssize_t r;
	json_error_t je;

	if (archive_entry_size_is_set(e) && archive_entry_size(e) > (la_int64_t)MAX_JSON)
		return moe_error_set(&ck->err, MOE_ERANGE, "'%s' is larger than %u MiB",
			archive_entry_pathname(e), MAX_JSON >> 20);
	if ((b = malloc(cap)) == NULL)
		return moe_error_set(&ck->err, MOE_ENOMEM, "out of memory");
	while ((r = archive_read_data(s->a, b + n, cap - n)) > 0) {
		n += (size_t)r;
		if (n == cap) {
			char *nb;
			if (cap >= MAX_JSON || (nb = realloc(b, cap * 2)) == NULL) {
				free(b);
				return moe_error_set(&ck->err, cap >= MAX_JSON ? MOE_ERANGE : MOE_ENOMEM,
					"'%s' is too large", archive_entry_pathname(e));
			}
			b = nb;
			cap *= 2;
		}
	}
	if (r < 0) {
		free(b);
		return la_fail(&ck->err, s->a, MOE_EFORMAT);
	}
	s->cur_pos += n;
	*out = json_loadb(b, n, JSON_REJECT_DUPLICATES, &je);
	free(b);
	if (*out == NULL || !json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		return moe_error_set(&ck->err, MOE_EFORMAT, "'%s': invalid JSON at line %d: %s",
			archive_entry_pathname(e), je.line, je.text);
	}
	return 0;
}

/* torch.save zips start with <dir>/data.pkl; other zips are not loaded. */
static int is_checkpoint(const unsigned char *p, size_t n)
{
	switch (moe_sniff_bytes(p, n)) {
	case MOE_SNIFF_GGUF:
	case MOE_SNIFF_SAFETENSORS:
		return 1;
	case MOE_SNIFF_ZIP: {
		size_t len = n >= 30 ? ((size_t)p[26] | (size_t)p[27] << 8) : 0;
		return len >= 8 && 30 + len <= n && memcmp(p + 30 + len - 8, "data.pkl", 8) == 0;
	}
	default:
		return 0;
	}
}

static int add_cursor(struct moe_ckpt *ck, struct arc *s, const char *path, struct cursor **out)
{
	struct cursor *c = NULL;

	if (s->ncur >= MAX_MEMBERS)
		return moe_error_set(&ck->err, MOE_ERANGE, "more than %u checkpoint members", MAX_MEMBERS);
	if (s->ncur == s->capcur) {
		size_t nc = s->capcur ? 2 * s->capcur : 16;
		struct cursor **v = realloc(s->cur, nc * sizeof *v);
		if (v == NULL)
			return moe_error_set(&ck->err, MOE_ENOMEM, "out of memory");
		s->cur = v;
		s->capcur = nc;
	}
	if ((c = calloc(1, sizeof *c)) == NULL || (c->path = strdup(path)) == NULL) {
		free(c);
		return moe_error_set(&ck->err, MOE_ENOMEM, "out of memory");
	}
	c->arc = s;
	c->ord = s->cur_ord;
	s->cur[s->ncur++] = c;
	*out = c;
	return 0;
}

/* moe_torch_reopen_fn: the member again from its first byte. */
static int member_reopen(void *ctx, struct moe_input **out)
{
	struct cursor *c = ctx;
	char *name;
	int rc;

	if (c->arc->src == NULL)
		return MOE_ESEEK;
	if (asprintf(&name, "%s:%s", c->arc->name, c->path) < 0)
		return MOE_ENOMEM;
	c->pos = 0;
	rc = moe_input_open_fn(out, name, cursor_read, c, -1);
	free(name);
	return rc;
}

/* A checkpoint member: sniff it, load it, give its files their data path. */
static int load_member(struct moe_ckpt *ck, struct arc *s, struct archive_entry *e)
{
	const char *path = archive_entry_pathname(e);
	struct moe_input *min;
	struct cursor *c = NULL;
	const void *p;
	size_t got, before = ck->nfiles;
	char *name;
	int rc;

	if ((rc = add_cursor(ck, s, path, &c)) != 0)
		return rc;
	if (asprintf(&name, "%s:%s", s->name, path) < 0)
		return moe_error_set(&ck->err, MOE_ENOMEM, "out of memory");
	rc = moe_input_open_fn(&min, name, cursor_read, c,
		archive_entry_size_is_set(e) ? archive_entry_size(e) : -1);
	if (rc != 0) {
		free(name);
		return moe_error_set(&ck->err, rc, "out of memory");
	}
	if ((rc = moe_input_peek(min, 512, &p, &got)) != 0 || !is_checkpoint(p, got)) {
		if (rc != 0)
			moe_error_set(&ck->err, rc, "'%s': %s", path, moe_error_str(&s->err));
		moe_input_free(min);
		free(name);
		s->ncur--;      /* not a checkpoint: forget the cursor */
		free(c->path);
		free(c);
		return rc;
	}
	rc = moe_ckpt_load_input(ck, min, name);
	free(name);
	if (rc != 0) {
		char msg[sizeof ck->err.msg];
		snprintf(msg, sizeof msg, "'%s': %.440s", path,
			ck->err.msg[0] ? ck->err.msg : moe_error_str(&s->err));
		return moe_error_set(&ck->err, rc, "%s", msg);
	}
	for (size_t i = before; i < ck->nfiles; i++) {
		struct moe_ckpt_file *f = &ck->files[i];
		if (f->ops != NULL) {  /* PyTorch: its zip reader streams through f->in */
			moe_torch_set_reopen(ck, (int)i, member_reopen, c);
			continue;
		}
		ck->bytes_extra += moe_input_bytes_read(f->in);
		moe_input_free(f->in);
		f->in = NULL;
		f->ops = &member_fops;
		f->priv = c;
		s->refs++;
	}
	return 0;
}

static int side_json(struct moe_ckpt *ck, struct arc *s, struct archive_entry *e,
	json_t **slot)
{
	json_t *j;
	int rc;

	if (*slot != NULL)
		return 0;
	if ((rc = read_json(ck, s, e, &j)) != 0)
		return rc;
	*slot = j;
	return 0;
}

/* Every shard an index names was loaded, every tensor it lists exists. */
static int check_index(struct moe_ckpt *ck, struct arc *s, json_t *idx, const char *path)
{
	json_t *wm = json_object_get(idx, "weight_map"), *v;
	const char *key, *slash = strrchr(path, '/');
	int dirlen = slash ? (int)(slash - path) + 1 : 0;

	if (!json_is_object(wm))
		return moe_error_set(&ck->err, MOE_EFORMAT, "'%s' has no weight_map", path);
	json_object_foreach(wm, key, v) {
		char *want;
		size_t i;
		if (!json_is_string(v))
			return moe_error_set(&ck->err, MOE_EFORMAT,
				"'%s': weight_map entry '%s' is not a file name", path, key);
		if (asprintf(&want, "%.*s%s", dirlen, path, json_string_value(v)) < 0)
			return moe_error_set(&ck->err, MOE_ENOMEM, "out of memory");
		for (i = 0; i < s->ncur; i++)
			if (strcmp(s->cur[i]->path, want) == 0)
				break;
		if (i == s->ncur) {
			moe_error_set(&ck->err, MOE_ENOENT,
				"'%s' names shard '%s' which is not in the archive", path, want);
			free(want);
			return MOE_ENOENT;
		}
		free(want);
		if (moe_ckpt_find(ck, key) == NULL)
			return moe_error_set(&ck->err, MOE_ENOENT,
				"'%s' lists tensor '%s' which is not in its shard", path, key);
	}
	return 0;
}

struct pending_index {
	json_t *j;
	char *path;
};

static int pass(struct moe_ckpt *ck, struct arc *s, struct pending_index **pi, size_t *npi)
{
	struct archive_entry *e;
	int rc;

	while ((rc = next_header(s, &e)) == 0) {
		const char *path = archive_entry_pathname(e), *b;
		if (path == NULL || archive_entry_filetype(e) != AE_IFREG)
			continue;
		b = base_name(path);
		if (strcmp(b, "data.pkl") == 0 && strchr(path, '/') == b - 1 &&
		    (archive_format(s->a) & ARCHIVE_FORMAT_BASE_MASK) == ARCHIVE_FORMAT_ZIP)
			return moe_error_set(&ck->err, MOE_EUNSUP,
				"PyTorch zip whose first member is not '%s' (re-zipped?) "
				"is not supported", path);
		if (strcmp(b, "config.json") == 0)
			rc = side_json(ck, s, e, &ck->config);
		else if (strcmp(b, "generation_config.json") == 0)
			rc = side_json(ck, s, e, &ck->generation_config);
		else if (strcmp(b, "tokenizer_config.json") == 0)
			rc = side_json(ck, s, e, &ck->tokenizer_config);
		else if (strcmp(b, "tokenizer.json") == 0)
			rc = side_json(ck, s, e, &ck->tokenizer);
		else if (ends_with(b, ".index.json")) {
			struct pending_index *np = realloc(*pi, (*npi + 1) * sizeof *np);
			if (np == NULL)
				return moe_error_set(&ck->err, MOE_ENOMEM, "out of memory");
			*pi = np;
			np[*npi].path = NULL;
			if ((rc = read_json(ck, s, e, &np[*npi].j)) != 0)
				return rc;
			if ((np[*npi].path = strdup(path)) == NULL) {
				json_decref(np[*npi].j);
				return moe_error_set(&ck->err, MOE_ENOMEM, "out of memory");
			}
			(*npi)++;
		} else if (archive_entry_size(e) > 0 || !archive_entry_size_is_set(e))
			rc = load_member(ck, s, e);
		if (rc != 0)
			return rc;
	}
	if (rc < 0)
		return moe_error_copy(&ck->err, &s->err);
	return 0;
}

/* After the pass: where member data will be read from. */
static int attach_source(struct moe_ckpt *ck, struct arc *s)
{
	char path[64];
	int rc;

	if (s->spool < 0)
		return 0;
	/* drain the pipe so the spool holds the whole archive */
	while ((rc = (int)moe_input_read_some(s->in, s->scratch, sizeof s->scratch)) > 0)
		if (write(s->spool, s->scratch, (size_t)rc) != rc) {
			s->spool_errno = errno;
			close(s->spool);
			s->spool = -1;
			return 0;
		}
	if (rc < 0)
		return moe_error_set(&ck->err, rc, "%s", moe_input_errstr(s->in));
	snprintf(path, sizeof path, "/proc/self/fd/%d", s->spool);
	if (moe_input_open(&s->src, path, NULL, 0) != 0)
		s->spool_errno = ENOENT;  /* no /proc: the data cannot be reached again */
	close(s->spool);
	s->spool = -1;
	s->start = 0;
	return 0;
}

static int make_spool(struct moe_ckpt *ck, struct arc *s)
{
	const char *dir = getenv("TMPDIR");
	char *path;

	if (dir == NULL || dir[0] == '\0')
		dir = "/tmp";
	if (asprintf(&path, "%s/moe-archive.XXXXXX", dir) < 0)
		return moe_error_set(&ck->err, MOE_ENOMEM, "out of memory");
	s->spool = mkostemp(path, O_CLOEXEC);
	if (s->spool < 0) {
		int rc = moe_error_set(&ck->err, MOE_EIO, "cannot create a spool file in '%s': %s",
			dir, strerror(errno));
		free(path);
		return rc;
	}
	unlink(path);
	free(path);
	return 0;
}

int moe_archive_load(struct moe_ckpt *ck, struct moe_input *in)
{
	struct arc *s = calloc(1, sizeof *s);
	struct pending_index *pi = NULL;
	size_t npi = 0, nt = ck->ntensors;
	uint64_t read0 = moe_input_bytes_read(in);
	int fi, rc;

	if (s == NULL || (s->name = strdup(moe_input_name(in))) == NULL) {
		free(s);
		return moe_error_set(&ck->err, MOE_ENOMEM, "out of memory");
	}
	s->refs = 1;
	s->spool = -1;
	if ((fi = moe_ckpt_add_file(ck, s->name, NULL)) < 0) {
		arc_unref(s);
		return fi;
	}
	ck->files[fi].ops = &archive_fops;
	ck->files[fi].priv = s;
	ck->source |= MOE_SRC_ARCHIVE;
	s->in = in;
	s->in_pass = 1;
	s->start = moe_input_tell(in);
	if (moe_input_seekable(in))
		rc = moe_input_reopen(in, &s->src) == 0 ? 0
			: moe_error_set(&ck->err, MOE_EIO, "cannot reopen the archive");
	else
		rc = make_spool(ck, s);
	if (rc == 0 && (rc = open_reader(s)) != 0)
		moe_error_copy(&ck->err, &s->err);
	if (rc == 0)
		rc = pass(ck, s, &pi, &npi);
	if (rc == 0)
		rc = attach_source(ck, s);
	ck->bytes_extra += moe_input_bytes_read(in) - read0;
	if (s->a) {
		archive_read_free(s->a);
		s->a = NULL;
	}
	s->in_pass = 0;
	s->in = NULL;
	s->cur_ord = UINT64_MAX;   /* the next read reopens */
	for (size_t i = 0; i < npi; i++) {
		if (rc == 0 && (rc = check_index(ck, s, pi[i].j, pi[i].path)) == 0 &&
		    ck->index == NULL) {
			ck->index = json_incref(pi[i].j);
			ck->source |= MOE_SRC_INDEX;
		}
		json_decref(pi[i].j);
		free(pi[i].path);
	}
	free(pi);
	if (rc == 0 && ck->ntensors == nt && ck->config == NULL)
		rc = moe_error_set(&ck->err, MOE_ENOENT, "no checkpoint in archive");
	if (rc == 0 && ck->format == MOE_FMT_UNKNOWN)
		moe_ckpt_set_format(ck, MOE_FMT_CONFIG);
	return rc;
}
