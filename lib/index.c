/* Sharded checkpoints: loads the shards an index.json names and checks they agree with it. */
/*
 * model.safetensors.index.json (Hugging Face):
 *   { "metadata": { "total_size": <bytes of all tensor data> },   (optional)
 *     "weight_map": { "<tensor>": "<shard file name>", ... } }
 * Shard names are plain file names in the index's directory. Each shard is
 * opened once and parsed by whatever backend its content calls for, so
 * only headers are read here.
 */
#include <stdlib.h>
#include <string.h>

#include "ckpt_impl.h"

/* A distinct shard and the checkpoint files its loading added. */
struct shard {
	const char *name;    /* owned by the index JSON */
	size_t f0, f1;       /* ck->files[f0 .. f1) */
};

static int cmp_shard(const void *a, const void *b)
{
	return strcmp(((const struct shard *)a)->name, ((const struct shard *)b)->name);
}

static int plain_file_name(const char *s)
{
	return s[0] != '\0' && strchr(s, '/') == NULL && strcmp(s, ".") != 0 &&
		strcmp(s, "..") != 0;
}

/* Distinct shard names of the weight map, sorted. */
static int collect_shards(struct moe_ckpt *ck, json_t *wm, struct shard **out, size_t *n)
{
	size_t cnt = 0, k = 0;
	struct shard *s = calloc(json_object_size(wm) ? json_object_size(wm) : 1, sizeof *s);
	const char *name;
	json_t *v;

	if (s == NULL)
		return moe_error_set(&ck->err, MOE_ENOMEM, "out of memory");
	json_object_foreach(wm, name, v) {
		if (!json_is_string(v)) {
			free(s);
			return moe_error_set(&ck->err, MOE_EFORMAT,
				"index: shard of tensor '%s' is not a string", name);
		}
		if (!plain_file_name(json_string_value(v))) {
			free(s);
			return moe_error_set(&ck->err, MOE_ESECURITY,
				"index: shard name '%.200s' of tensor '%s' is not a plain file name "
				"(refusing path traversal)", json_string_value(v), name);
		}
		s[cnt++].name = json_string_value(v);
	}
	if (cnt)
		qsort(s, cnt, sizeof *s, cmp_shard);
	for (size_t i = 0; i < cnt; i++)
		if (k == 0 || strcmp(s[k - 1].name, s[i].name) != 0)
			s[k++] = s[i];
	*out = s;
	*n = k;
	return 0;
}

/* Prefixes the current error with the shard's name. */
static int shard_err(struct moe_ckpt *ck, const char *shard, int rc)
{
	char msg[sizeof ck->err.msg];

	snprintf(msg, sizeof msg, "%.200s: %s", shard, moe_error_str(&ck->err));
	return moe_error_set(&ck->err, rc, "%s", msg);
}

static int load_shard(struct moe_ckpt *ck, const char *dir, struct shard *s)
{
	struct moe_input *in;
	const void *p;
	size_t got;
	char *path, eb[256];
	enum moe_sniff kind;
	int rc;

	if (asprintf(&path, "%s/%s", dir, s->name) < 0)
		return moe_error_set(&ck->err, MOE_ENOMEM, "out of memory");
	s->f0 = ck->nfiles;
	if ((rc = moe_input_open(&in, path, eb, sizeof eb)) != 0) {
		free(path);
		if (rc == MOE_ENOENT)
			return moe_error_set(&ck->err, rc, "missing shard '%.200s'", s->name);
		return moe_error_set(&ck->err, rc, "shard '%.200s': %s", s->name, eb);
	}
	/* Only tensor files: an index naming an index (or itself) would loop. */
	kind = moe_input_peek(in, 512, &p, &got) == 0 ? moe_sniff_bytes(p, got)
		: MOE_SNIFF_UNKNOWN;
	if (kind != MOE_SNIFF_GGUF && kind != MOE_SNIFF_SAFETENSORS && kind != MOE_SNIFF_ZIP) {
		moe_input_free(in);
		free(path);
		return moe_error_set(&ck->err, MOE_EFORMAT,
			"shard '%.200s' is not a checkpoint file", s->name);
	}
	rc = moe_ckpt_load_input(ck, in, path);
	free(path);
	s->f1 = ck->nfiles;
	return rc != 0 ? shard_err(ck, s->name, rc) : 0;
}

/* Shard holding file index f, or NULL; shards were loaded in order, so
 * their file ranges ascend. */
static const struct shard *shard_of(const struct shard *s, size_t n, size_t f)
{
	size_t lo = 0, hi = n;

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (s[mid].f0 <= f)
			lo = mid;
		else
			hi = mid;
	}
	return n > 0 && f >= s[lo].f0 && f < s[lo].f1 ? &s[lo] : NULL;
}

/* Every listed tensor is in its shard, every shard tensor is listed. */
static int check_map(struct moe_ckpt *ck, json_t *wm, const struct shard *s, size_t n)
{
	const char *name;
	json_t *v;

	json_object_foreach(wm, name, v) {
		const struct moe_tensor *t = moe_ckpt_find(ck, name);
		const struct shard *in;

		if (t == NULL)
			return moe_error_set(&ck->err, MOE_EFORMAT,
				"tensor '%s' listed in the index is missing from shard '%s'",
				name, json_string_value(v));
		in = shard_of(s, n, t->file);
		if (in == NULL || strcmp(in->name, json_string_value(v)) != 0)
			return moe_error_set(&ck->err, MOE_EFORMAT,
				"tensor '%s' is in shard '%s' but the index lists it in '%s'",
				name, in ? in->name : "?", json_string_value(v));
	}
	for (size_t i = 0; i < ck->ntensors; i++)
		if (json_object_get(wm, ck->tensors[i].name) == NULL) {
			const struct shard *in = shard_of(s, n, ck->tensors[i].file);
			return moe_error_set(&ck->err, MOE_EFORMAT,
				"tensor '%s' in shard '%s' is not listed in the index",
				ck->tensors[i].name, in ? in->name : "?");
		}
	return 0;
}

static int check_total(struct moe_ckpt *ck, json_t *index)
{
	json_t *meta = json_object_get(index, "metadata"), *ts;
	uint64_t sum = 0;
	double want;

	if (meta == NULL || json_is_null(meta))
		return 0;
	if (!json_is_object(meta))
		return moe_error_set(&ck->err, MOE_EFORMAT, "index: metadata is not an object");
	if ((ts = json_object_get(meta, "total_size")) == NULL)
		return 0;
	if (!json_is_number(ts) || (want = json_number_value(ts)) < 0)
		return moe_error_set(&ck->err, MOE_EFORMAT,
			"index: metadata.total_size is not a non-negative number");
	for (size_t i = 0; i < ck->ntensors; i++)
		sum += ck->tensors[i].nbytes;
	if (json_is_integer(ts) ? (uint64_t)json_integer_value(ts) != sum : want != (double)sum)
		return moe_error_set(&ck->err, MOE_EFORMAT,
			"index: metadata.total_size is %.0f but the shards hold %llu bytes",
			want, (unsigned long long)sum);
	return 0;
}

int moe_index_load(struct moe_ckpt *ck, json_t *index, const char *dir)
{
	json_t *wm = json_object_get(index, "weight_map");
	struct shard *s = NULL;
	size_t n = 0;
	int rc;

	ck->source |= MOE_SRC_INDEX;
	if (!json_is_object(wm))
		return moe_error_set(&ck->err, MOE_EFORMAT, "index: weight_map is not an object");
	if ((rc = collect_shards(ck, wm, &s, &n)) != 0)
		return rc;
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = load_shard(ck, dir, &s[i]);
	if (rc == 0)
		rc = check_map(ck, wm, s, n);
	if (rc == 0)
		rc = check_total(ck, index);
	free(s);
	return rc;
}
