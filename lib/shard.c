/* Sharded safetensors writer: greedy shard plan, one atomic output per shard, index written last. */
#include "shard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "ckpt.h"
#include "error.h"
#include "output.h"
#include "safetensors.h"

#define INDEX_NAME "model.safetensors.index.json"

struct stensor {
	char *name;
	enum moe_dtype dtype;
	int ndim;
	uint64_t shape[MOE_MAX_DIMS];
	uint64_t nbytes;
};

struct moe_shard_writer {
	struct moe_error err;
	char *dir;
	uint64_t max;
	unsigned flags;
	json_t *meta;             /* __metadata__ strings, in set order */
	/* Writer without output that every tensor is declared to, so names,
	 * dtypes and sizes are refused before any shard is written. */
	struct moe_st_writer *probe;
	struct stensor *t;
	size_t n, cap;
	size_t *first;            /* (nshards + 1) first tensor of each shard */
	size_t nshards;
	int started;
	size_t cur;               /* shard being written */
	uint64_t left;            /* data bytes it still needs */
	struct moe_output *out;
	struct moe_st_writer *sw;
};

int moe_shard_writer_new(struct moe_shard_writer **w, const char *dir,
	uint64_t max_bytes, unsigned flags)
{
	struct moe_shard_writer *s = calloc(1, sizeof *s);

	*w = NULL;
	if (s == NULL || (s->dir = strdup(dir)) == NULL ||
	    (s->meta = json_object()) == NULL ||
	    moe_st_writer_new(&s->probe, NULL) != 0) {
		moe_shard_writer_free(s);
		return MOE_ENOMEM;
	}
	s->max = max_bytes;
	s->flags = flags;
	*w = s;
	return 0;
}

void moe_shard_writer_free(struct moe_shard_writer *w)
{
	if (w == NULL)
		return;
	moe_st_writer_free(w->sw);
	moe_st_writer_free(w->probe);
	moe_output_free(w->out);
	for (size_t i = 0; i < w->n; i++)
		free(w->t[i].name);
	free(w->t);
	free(w->first);
	json_decref(w->meta);
	free(w->dir);
	free(w);
}

const char *moe_shard_writer_errstr(const struct moe_shard_writer *w)
{
	return moe_error_str(&w->err);
}

size_t moe_shard_writer_nshards(const struct moe_shard_writer *w)
{
	return w->nshards;
}

int moe_shard_writer_set_meta(struct moe_shard_writer *w, const char *key,
	const char *value)
{
	if (w->err.code)
		return w->err.code;
	if (w->started)
		return moe_error_set(&w->err, MOE_EINVAL, "metadata after data started");
	if (json_object_set_new(w->meta, key, json_string(value)) != 0)
		return moe_error_set(&w->err, MOE_EINVAL,
			"metadata '%s' is not valid UTF-8", key);
	return 0;
}

int moe_shard_writer_add_tensor(struct moe_shard_writer *w, const char *name,
	enum moe_dtype dtype, int ndim, const uint64_t *shape)
{
	struct stensor *t;
	uint64_t numel;
	int rc;

	if (w->err.code)
		return w->err.code;
	if (w->started)
		return moe_error_set(&w->err, MOE_EINVAL,
			"tensor '%s' added after data started", name);
	if ((rc = moe_st_writer_add_tensor(w->probe, name, dtype, ndim, shape)) != 0)
		return moe_error_set(&w->err, rc, "%s", moe_st_writer_errstr(w->probe));
	if (w->n == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 64;
		if ((t = realloc(w->t, cap * sizeof *t)) == NULL)
			return moe_error_set(&w->err, MOE_ENOMEM, "out of memory");
		w->t = t;
		w->cap = cap;
	}
	t = &w->t[w->n];
	memset(t, 0, sizeof *t);
	t->dtype = dtype;
	t->ndim = ndim;
	memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
	if (moe_shape_numel(ndim, shape, &numel) != 0 ||
	    moe_dtype_nbytes(dtype, numel, &t->nbytes) != 0)
		return moe_error_set(&w->err, MOE_ERANGE, "tensor '%s' is too large", name);
	if ((t->name = strdup(name)) == NULL)
		return moe_error_set(&w->err, MOE_ENOMEM, "out of memory");
	w->n++;
	return 0;
}

/* Greedy in order: a new shard when the next tensor would overflow it. */
static int plan(struct moe_shard_writer *w)
{
	uint64_t used = 0;
	size_t k = 0;

	if ((w->first = malloc((w->n + 1) * sizeof *w->first)) == NULL)
		return moe_error_set(&w->err, MOE_ENOMEM, "out of memory");
	w->first[0] = 0;
	for (size_t i = 0; i < w->n; i++) {
		if (i > w->first[k] && (used > w->max || w->t[i].nbytes > w->max - used)) {
			w->first[++k] = i;
			used = 0;
		}
		used += w->t[i].nbytes;
	}
	w->nshards = k + 1;
	w->first[w->nshards] = w->n;
	return 0;
}

static char *shard_path(const struct moe_shard_writer *w, size_t k)
{
	char *p;

	if (asprintf(&p, "%s/model-%05zu-of-%05zu.safetensors", w->dir, k + 1,
	    w->nshards) < 0)
		return NULL;
	return p;
}

/* Without the force flag no output may exist; with it, the old index goes
 * first so that an interrupted run cannot leave it pointing at new shards.
 * Takes over path. */
static int check_target(struct moe_shard_writer *w, char *path, int is_index)
{
	int rc = 0;

	if (path == NULL)
		return moe_error_set(&w->err, MOE_ENOMEM, "out of memory");
	if (access(path, F_OK) == 0) {
		if (!(w->flags & MOE_SHARD_FORCE))
			rc = moe_error_set(&w->err, MOE_EEXIST,
				"'%.300s' exists (use --force to replace it)", path);
		else if (is_index && unlink(path) != 0)
			rc = moe_error_set(&w->err, MOE_EIO, "cannot remove '%.300s': %s",
				path, strerror(errno));
	}
	free(path);
	return rc;
}

static int check_targets(struct moe_shard_writer *w)
{
	char *index;
	int rc;

	for (size_t k = 0; k < w->nshards; k++)
		if ((rc = check_target(w, shard_path(w, k), 0)) != 0)
			return rc;
	if (asprintf(&index, "%s/%s", w->dir, INDEX_NAME) < 0)
		index = NULL;
	return check_target(w, index, 1);
}

static int out_err(struct moe_shard_writer *w, int rc, const char *what)
{
	const char *n = strrchr(moe_output_name(w->out), '/');

	return moe_error_set(&w->err, rc, "%.200s: %.280s",
		n ? n + 1 : moe_output_name(w->out), what);
}

static int open_shard(struct moe_shard_writer *w)
{
	char *path = shard_path(w, w->cur);
	const char *k;
	json_t *v;
	int rc;

	if (path == NULL)
		return moe_error_set(&w->err, MOE_ENOMEM, "out of memory");
	rc = moe_output_open(&w->out, path, w->flags & MOE_SHARD_FORCE ? MOE_OUT_FORCE : 0);
	free(path);
	if (w->out == NULL)
		return moe_error_set(&w->err, MOE_ENOMEM, "out of memory");
	if (rc != 0)
		return out_err(w, rc, moe_output_errstr(w->out));
	if (moe_st_writer_new(&w->sw, w->out) != 0)
		return moe_error_set(&w->err, MOE_ENOMEM, "out of memory");
	json_object_foreach(w->meta, k, v)
		if ((rc = moe_st_writer_set_meta(w->sw, k, json_string_value(v))) != 0)
			return out_err(w, rc, moe_st_writer_errstr(w->sw));
	w->left = 0;
	for (size_t i = w->first[w->cur]; i < w->first[w->cur + 1]; i++) {
		const struct stensor *t = &w->t[i];
		if ((rc = moe_st_writer_add_tensor(w->sw, t->name, t->dtype, t->ndim,
		    t->shape)) != 0)
			return out_err(w, rc, moe_st_writer_errstr(w->sw));
		w->left += t->nbytes;
	}
	if ((rc = moe_st_writer_begin_data(w->sw)) != 0)
		return out_err(w, rc, moe_st_writer_errstr(w->sw));
	return 0;
}

static int close_shard(struct moe_shard_writer *w)
{
	int rc;

	if ((rc = moe_st_writer_finish(w->sw)) != 0)
		return out_err(w, rc, moe_st_writer_errstr(w->sw));
	if ((rc = moe_output_commit(w->out)) != 0)
		return out_err(w, rc, moe_output_errstr(w->out));
	moe_st_writer_free(w->sw);
	moe_output_free(w->out);
	w->sw = NULL;
	w->out = NULL;
	return 0;
}

/* Commits every complete shard (empty ones too) and opens the next. */
static int advance(struct moe_shard_writer *w)
{
	int rc;

	while (w->sw != NULL && w->left == 0) {
		if ((rc = close_shard(w)) != 0)
			return rc;
		if (++w->cur < w->nshards && (rc = open_shard(w)) != 0)
			return rc;
	}
	return 0;
}

static int make_dir(struct moe_shard_writer *w)
{
	struct stat st;

	if (mkdir(w->dir, 0777) == 0)
		return 0;
	if (errno == EEXIST && stat(w->dir, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	return moe_error_set(&w->err, MOE_EIO, "cannot create directory '%.300s': %s",
		w->dir, strerror(errno == EEXIST ? ENOTDIR : errno));
}

int moe_shard_writer_begin_data(struct moe_shard_writer *w)
{
	int rc;

	if (w->err.code)
		return w->err.code;
	if (w->started)
		return moe_error_set(&w->err, MOE_EINVAL, "data started twice");
	w->started = 1;
	moe_st_writer_free(w->probe);
	w->probe = NULL;
	if (w->n == 0)
		return moe_error_set(&w->err, MOE_EINVAL, "no tensors to write");
	if ((rc = plan(w)) != 0 || (rc = make_dir(w)) != 0 ||
	    (rc = check_targets(w)) != 0 || (rc = open_shard(w)) != 0)
		return rc;
	return advance(w);
}

int moe_shard_writer_write(struct moe_shard_writer *w, const void *buf, size_t n)
{
	const unsigned char *p = buf;
	int rc;

	if (w->err.code)
		return w->err.code;
	if (!w->started)
		return moe_error_set(&w->err, MOE_EINVAL, "data before begin_data");
	while (n > 0) {
		size_t k;

		if (w->sw == NULL)
			return moe_error_set(&w->err, MOE_EINVAL,
				"%zu bytes of data beyond the last tensor", n);
		k = w->left < n ? (size_t)w->left : n;
		if ((rc = moe_st_writer_write(w->sw, p, k)) != 0)
			return out_err(w, rc, moe_st_writer_errstr(w->sw));
		w->left -= k;
		p += k;
		n -= k;
		if ((rc = advance(w)) != 0)
			return rc;
	}
	return 0;
}

static int write_index(struct moe_shard_writer *w)
{
	json_t *root = json_object(), *md = json_object(), *wm = json_object();
	uint64_t total = 0;
	char *path = NULL, *s = NULL;
	int bad = root == NULL, rc;

	for (size_t k = 0; k < w->nshards; k++) {
		char *sp = shard_path(w, k);
		const char *base = sp ? strrchr(sp, '/') + 1 : NULL;
		for (size_t i = w->first[k]; i < w->first[k + 1]; i++) {
			bad |= json_object_set_new(wm, w->t[i].name, json_string(base));
			total += w->t[i].nbytes;
		}
		free(sp);
	}
	bad |= json_object_set_new(md, "total_size", json_integer((json_int_t)total));
	bad |= json_object_set_new(root, "metadata", md);
	bad |= json_object_set_new(root, "weight_map", wm);
	if (!bad)
		s = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(root);
	if (s == NULL || asprintf(&path, "%s/%s", w->dir, INDEX_NAME) < 0) {
		free(s);
		return moe_error_set(&w->err, MOE_ENOMEM,
			"cannot build the index (out of memory or a name that is not UTF-8)");
	}
	rc = moe_output_open(&w->out, path, MOE_OUT_FORCE);
	free(path);
	if (w->out == NULL) {
		free(s);
		return moe_error_set(&w->err, MOE_ENOMEM, "out of memory");
	}
	if (rc == 0 && (rc = moe_output_write(w->out, s, strlen(s))) == 0 &&
	    (rc = moe_output_write(w->out, "\n", 1)) == 0)
		rc = moe_output_commit(w->out);
	free(s);
	if (rc != 0)
		return out_err(w, rc, moe_output_errstr(w->out));
	moe_output_free(w->out);
	w->out = NULL;
	return 0;
}

int moe_shard_writer_finish(struct moe_shard_writer *w)
{
	int rc;

	if (w->err.code)
		return w->err.code;
	if (!w->started)
		return moe_error_set(&w->err, MOE_EINVAL, "data never started");
	if (w->sw != NULL) {
		rc = moe_st_writer_finish(w->sw);
		return out_err(w, rc ? rc : MOE_EINVAL, moe_st_writer_errstr(w->sw));
	}
	return write_index(w);
}
