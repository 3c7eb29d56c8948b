/* Checkpoint handle: format sniffing, directory and side-file loading, tensor table, data reads. */
#include "ckpt_impl.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_NAME 4096            /* longest tensor name accepted */
#define MAX_SIDE_JSON (64u << 20) /* config/index JSON size bound */

/* Open-addressing hash of tensor names -> index + 1 (0 = empty slot). */
struct name_index {
	uint32_t *slot;
	size_t cap;
};

static struct name_index *nidx(struct moe_ckpt *ck);

struct ckpt_private {
	struct name_index names;
};

/* The handle is allocated with a trailing private block so that the
 * backend-visible struct stays free of bookkeeping. */
struct ckpt_alloc {
	struct moe_ckpt ck;
	struct ckpt_private p;
};

static struct name_index *nidx(struct moe_ckpt *ck)
{
	return &((struct ckpt_alloc *)ck)->p.names;
}

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;  /* FNV-1a */

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

static int names_grow(struct moe_ckpt *ck)
{
	struct name_index *ni = nidx(ck);
	size_t cap = ni->cap ? ni->cap * 2 : 1024;
	uint32_t *slot = calloc(cap, sizeof *slot);

	if (slot == NULL)
		return MOE_ENOMEM;
	for (size_t i = 0; i < ck->ntensors; i++) {
		size_t h = hash_str(ck->tensors[i].name) & (cap - 1);
		while (slot[h])
			h = (h + 1) & (cap - 1);
		slot[h] = (uint32_t)i + 1;
	}
	free(ni->slot);
	ni->slot = slot;
	ni->cap = cap;
	return 0;
}

static const struct moe_tensor *names_find(const struct moe_ckpt *ck,
	const char *name, size_t *slot_out)
{
	const struct name_index *ni = &((const struct ckpt_alloc *)ck)->p.names;
	size_t h;

	if (ni->cap == 0)
		return NULL;
	h = hash_str(name) & (ni->cap - 1);
	while (ni->slot[h]) {
		const struct moe_tensor *t = &ck->tensors[ni->slot[h] - 1];
		if (strcmp(t->name, name) == 0)
			return t;
		h = (h + 1) & (ni->cap - 1);
	}
	if (slot_out)
		*slot_out = h;
	return NULL;
}

int moe_ckpt_new(struct moe_ckpt **out)
{
	struct ckpt_alloc *a = calloc(1, sizeof *a);

	*out = NULL;
	if (a == NULL)
		return MOE_ENOMEM;
	if (moe_meta_new(&a->ck.meta) != 0) {
		free(a);
		return MOE_ENOMEM;
	}
	*out = &a->ck;
	return 0;
}

void moe_ckpt_free(struct moe_ckpt *ck)
{
	if (ck == NULL)
		return;
	for (size_t i = 0; i < ck->nfiles; i++) {
		struct moe_ckpt_file *f = &ck->files[i];
		if (f->ops && f->ops->release)
			f->ops->release(f);
		moe_input_free(f->in);
		free(f->name);
	}
	for (size_t i = 0; i < ck->ntensors; i++) {
		free(ck->tensors[i].name);
		free(ck->tensors[i].strides);
	}
	free(ck->files);
	free(ck->tensors);
	free(nidx(ck)->slot);
	moe_meta_free(ck->meta);
	json_decref(ck->config);
	json_decref(ck->generation_config);
	json_decref(ck->tokenizer_config);
	json_decref(ck->index);
	json_decref(ck->tokenizer);
	free(ck);
}

const char *moe_ckpt_errstr(const struct moe_ckpt *ck) { return moe_error_str(&ck->err); }
enum moe_format moe_ckpt_format(const struct moe_ckpt *ck) { return ck->format; }
unsigned moe_ckpt_source(const struct moe_ckpt *ck) { return ck->source; }
size_t moe_ckpt_ntensors(const struct moe_ckpt *ck) { return ck->ntensors; }
size_t moe_ckpt_nfiles(const struct moe_ckpt *ck) { return ck->nfiles; }
const struct moe_meta *moe_ckpt_meta(const struct moe_ckpt *ck) { return ck->meta; }

const char *moe_format_name(enum moe_format f)
{
	switch (f) {
	case MOE_FMT_GGUF: return "gguf";
	case MOE_FMT_SAFETENSORS: return "safetensors";
	case MOE_FMT_TORCH: return "pytorch";
	case MOE_FMT_CONFIG: return "config";
	case MOE_FMT_MIXED: return "mixed";
	default: return "unknown";
	}
}

const struct moe_tensor *moe_ckpt_tensor(const struct moe_ckpt *ck, size_t i)
{
	return i < ck->ntensors ? &ck->tensors[i] : NULL;
}

const struct moe_tensor *moe_ckpt_find(const struct moe_ckpt *ck, const char *name)
{
	return names_find(ck, name, NULL);
}

const char *moe_ckpt_file_name(const struct moe_ckpt *ck, size_t i)
{
	return i < ck->nfiles ? ck->files[i].name : NULL;
}

json_t *moe_ckpt_json(const struct moe_ckpt *ck, const char *which)
{
	if (strcmp(which, "config") == 0) return ck->config;
	if (strcmp(which, "generation_config") == 0) return ck->generation_config;
	if (strcmp(which, "tokenizer_config") == 0) return ck->tokenizer_config;
	if (strcmp(which, "index") == 0) return ck->index;
	if (strcmp(which, "tokenizer") == 0) return ck->tokenizer;
	return NULL;
}

uint64_t moe_tensor_numel(const struct moe_tensor *t)
{
	uint64_t n = 0;

	moe_shape_numel(t->ndim, t->shape, &n);
	return n;
}

void moe_ckpt_set_format(struct moe_ckpt *ck, enum moe_format f)
{
	if (ck->format == MOE_FMT_UNKNOWN || ck->format == MOE_FMT_CONFIG)
		ck->format = f;
	else if (f != ck->format && f != MOE_FMT_CONFIG)
		ck->format = MOE_FMT_MIXED;
}

int moe_ckpt_add_file(struct moe_ckpt *ck, const char *name, struct moe_input *in)
{
	struct moe_ckpt_file *f;

	if (ck->nfiles == ck->capfiles) {
		size_t cap = ck->capfiles ? 2 * ck->capfiles : 8;
		f = realloc(ck->files, cap * sizeof *f);
		if (f == NULL)
			return moe_error_set(&ck->err, MOE_ENOMEM, "out of memory");
		ck->files = f;
		ck->capfiles = cap;
	}
	f = &ck->files[ck->nfiles];
	memset(f, 0, sizeof *f);
	if ((f->name = strdup(name)) == NULL)
		return moe_error_set(&ck->err, MOE_ENOMEM, "out of memory");
	f->in = in;
	return (int)ck->nfiles++;
}

static int check_tensor(struct moe_ckpt *ck, const struct moe_tensor *t)
{
	uint64_t numel, need;
	uint32_t bs = moe_dtype_block_size(t->dtype);

	if (t->name == NULL || t->name[0] == '\0' || strlen(t->name) > MAX_NAME)
		return moe_error_set(&ck->err, MOE_EFORMAT, "tensor with an empty or overlong name");
	if (t->ndim < 0 || t->ndim > MOE_MAX_DIMS)
		return moe_error_set(&ck->err, MOE_EFORMAT,
			"tensor '%s' has %d dimensions (at most %d)", t->name,
			t->ndim, MOE_MAX_DIMS);
	if (bs == 0)
		return moe_error_set(&ck->err, MOE_EFORMAT,
			"tensor '%s' has an invalid dtype", t->name);
	if (moe_shape_numel(t->ndim, t->shape, &numel) != 0)
		return moe_error_set(&ck->err, MOE_ERANGE,
			"tensor '%s' has too many elements", t->name);
	if (bs > 1 && (t->ndim == 0 || t->shape[t->ndim - 1] % bs != 0))
		return moe_error_set(&ck->err, MOE_EFORMAT,
			"tensor '%s': row length is not a multiple of %s's block of %u",
			t->name, moe_dtype_name(t->dtype), bs);
	if (moe_dtype_nbytes(t->dtype, numel, &need) != 0)
		return moe_error_set(&ck->err, MOE_ERANGE,
			"tensor '%s' is too large", t->name);
	if (t->strides == NULL && need != t->nbytes)
		return moe_error_set(&ck->err, MOE_EFORMAT,
			"tensor '%s': %llu bytes stored but shape and dtype %s need %llu",
			t->name, (unsigned long long)t->nbytes,
			moe_dtype_name(t->dtype), (unsigned long long)need);
	if (t->file >= ck->nfiles)
		return moe_error_set(&ck->err, MOE_EINVAL,
			"tensor '%s' names file %u of %zu", t->name, t->file, ck->nfiles);
	return 0;
}

int moe_ckpt_add_tensor(struct moe_ckpt *ck, const struct moe_tensor *t)
{
	struct name_index *ni = nidx(ck);
	struct moe_tensor *nt;
	size_t slot;
	int rc;

	if ((rc = check_tensor(ck, t)) != 0)
		return rc;
	if ((ck->ntensors + 1) * 2 > ni->cap && (rc = names_grow(ck)) != 0)
		return moe_error_set(&ck->err, rc, "out of memory");
	if (names_find(ck, t->name, &slot))
		return moe_error_set(&ck->err, MOE_EFORMAT,
			"duplicate tensor '%s'", t->name);
	if (ck->ntensors >= UINT32_MAX - 1)
		return moe_error_set(&ck->err, MOE_ERANGE, "too many tensors");
	if (ck->ntensors == ck->captensors) {
		size_t cap = ck->captensors ? 2 * ck->captensors : 64;
		nt = realloc(ck->tensors, cap * sizeof *nt);
		if (nt == NULL)
			return moe_error_set(&ck->err, MOE_ENOMEM, "out of memory");
		ck->tensors = nt;
		ck->captensors = cap;
	}
	nt = &ck->tensors[ck->ntensors];
	*nt = *t;
	if ((nt->name = strdup(t->name)) == NULL)
		return moe_error_set(&ck->err, MOE_ENOMEM, "out of memory");
	ni->slot[slot] = (uint32_t)ck->ntensors + 1;
	ck->ntensors++;
	return 0;
}

enum moe_sniff moe_sniff_bytes(const unsigned char *p, size_t n)
{
	size_t i = 0;

	if (n == 0)
		return MOE_SNIFF_EMPTY;
	if (n >= 4 && memcmp(p, "GGUF", 4) == 0)
		return MOE_SNIFF_GGUF;
	if (n >= 4 && memcmp(p, "PK\3\4", 4) == 0)
		return MOE_SNIFF_ZIP;
	if (n >= 262 && memcmp(p + 257, "ustar", 5) == 0)
		return MOE_SNIFF_TAR;
	if ((n >= 2 && p[0] == 0x1f && p[1] == 0x8b) ||
	    (n >= 4 && memcmp(p, "\x28\xb5\x2f\xfd", 4) == 0) ||
	    (n >= 6 && memcmp(p, "\xfd" "7zXZ\0", 6) == 0) ||
	    (n >= 3 && memcmp(p, "BZh", 3) == 0))
		return MOE_SNIFF_COMPRESSED;
	/* safetensors: u64 LE header length, then a JSON object */
	if (n >= 9 && p[8] == '{') {
		uint64_t hl = 0;
		for (int k = 7; k >= 0; k--)
			hl = hl << 8 | p[k];
		if (hl >= 2)
			return MOE_SNIFF_SAFETENSORS;
	}
	/* legacy torch.save: a pickle (protocol 2) of the magic number */
	if (n >= 2 && p[0] == 0x80 && p[1] >= 2 && p[1] <= 5)
		return MOE_SNIFF_LEGACY_TORCH;
	while (i < n && (p[i] == ' ' || p[i] == '\n' || p[i] == '\r' || p[i] == '\t'))
		i++;
	if (i < n && p[i] == '{')
		return MOE_SNIFF_JSON;
	return MOE_SNIFF_UNKNOWN;
}

/* Reads a whole (small) JSON document from in. */
static int load_json(struct moe_ckpt *ck, struct moe_input *in, json_t **out)
{
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap);
	json_error_t je;
	ssize_t r;

	if (buf == NULL)
		return moe_error_set(&ck->err, MOE_ENOMEM, "out of memory");
	while ((r = moe_input_read_some(in, buf + len, cap - len)) > 0) {
		len += (size_t)r;
		if (len == cap) {
			char *nb;
			if (cap >= MAX_SIDE_JSON) {
				free(buf);
				return moe_error_set(&ck->err, MOE_ERANGE,
					"JSON file larger than %u MiB", MAX_SIDE_JSON >> 20);
			}
			if ((nb = realloc(buf, cap * 2)) == NULL) {
				free(buf);
				return moe_error_set(&ck->err, MOE_ENOMEM, "out of memory");
			}
			buf = nb;
			cap *= 2;
		}
	}
	if (r < 0) {
		free(buf);
		return moe_error_set(&ck->err, (int)r, "%s", moe_input_errstr(in));
	}
	ck->bytes_extra += len;
	*out = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	free(buf);
	if (*out == NULL)
		return moe_error_set(&ck->err, MOE_EFORMAT,
			"invalid JSON at line %d: %s", je.line, je.text);
	if (!json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		return moe_error_set(&ck->err, MOE_EFORMAT, "JSON is not an object");
	}
	return 0;
}

static char *dir_of(const char *path)
{
	const char *s = strrchr(path, '/');

	if (s == NULL)
		return strdup(".");
	if (s == path)
		return strdup("/");
	return strndup(path, (size_t)(s - path));
}

/* A JSON document on its own: an index (weight_map) or a config. */
static int load_json_input(struct moe_ckpt *ck, struct moe_input *in, const char *name)
{
	json_t *j = NULL;
	char *dir;
	int rc = load_json(ck, in, &j);

	if (rc != 0)
		return rc;
	if (json_is_object(json_object_get(j, "weight_map"))) {
		if ((dir = dir_of(name)) == NULL) {
			json_decref(j);
			return moe_error_set(&ck->err, MOE_ENOMEM, "out of memory");
		}
		json_decref(ck->index);
		ck->index = j;
		ck->source |= MOE_SRC_INDEX;
		rc = moe_index_load(ck, j, dir);
		free(dir);
		return rc;
	}
	json_decref(ck->config);
	ck->config = j;
	moe_ckpt_set_format(ck, MOE_FMT_CONFIG);
	return 0;
}

/* Name of the first local header (at 30, length at 26) ends in "data.pkl". */
static int zip_first_is_pickle(const unsigned char *p, size_t n)
{
	size_t len = n >= 30 ? ((size_t)p[26] | (size_t)p[27] << 8) : 0;

	return len >= 8 && 30 + len <= n && memcmp(p + 30 + len - 8, "data.pkl", 8) == 0;
}

int moe_ckpt_load_input(struct moe_ckpt *ck, struct moe_input *in, const char *name)
{
	const void *p;
	size_t got;
	enum moe_sniff kind;
	int rc, fi;

	if ((rc = moe_input_peek(in, 512, &p, &got)) != 0) {
		moe_error_set(&ck->err, rc, "%s", moe_input_errstr(in));
		moe_input_free(in);
		return rc;
	}
	switch ((kind = moe_sniff_bytes(p, got))) {
	case MOE_SNIFF_ZIP:
		/* torch.save writes <dir>/data.pkl first; other zips are archives */
		if (zip_first_is_pickle(p, got))
			break;
		rc = moe_archive_load(ck, in);
		moe_input_free(in);
		return rc;
	case MOE_SNIFF_GGUF:
	case MOE_SNIFF_SAFETENSORS:
		break;
	case MOE_SNIFF_TAR:
	case MOE_SNIFF_COMPRESSED:
		rc = moe_archive_load(ck, in);
		moe_input_free(in);
		return rc;
	case MOE_SNIFF_JSON:
		rc = load_json_input(ck, in, name);
		moe_input_free(in);
		return rc;
	case MOE_SNIFF_EMPTY:
		moe_input_free(in);
		return moe_error_set(&ck->err, MOE_EFORMAT, "empty input");
	case MOE_SNIFF_LEGACY_TORCH:
		moe_input_free(in);
		return moe_error_set(&ck->err, MOE_EUNSUP,
			"unsupported legacy format (PyTorch before 1.6, not a zip file); "
			"re-save it with torch.save(..., _use_new_zipfile_serialization=True)");
	default:
		moe_input_free(in);
		return moe_error_set(&ck->err, MOE_EFORMAT,
			"not a checkpoint (unknown format)");
	}
	/* dispatch on the sniffed kind: a safetensors header length may
	 * well start with the byte 'G' or 'P' */
	if ((fi = moe_ckpt_add_file(ck, name, in)) < 0) {
		moe_input_free(in);
		return fi;
	}
	if (!moe_input_seekable(in))
		ck->source |= MOE_SRC_STREAM;
	if (kind == MOE_SNIFF_GGUF)
		return moe_gguf_load(ck, fi);
	if (kind == MOE_SNIFF_ZIP)
		return moe_torch_load(ck, fi);
	return moe_safetensors_load(ck, fi);
}

static int open_path_input(struct moe_ckpt *ck, const char *path, struct moe_input **in)
{
	char eb[256];
	int rc = moe_input_open(in, path, eb, sizeof eb);

	if (rc != 0)
		return moe_error_set(&ck->err, rc, "%s", eb);
	return 0;
}

/* config.json and friends beside a checkpoint; absent files are fine,
 * a present but broken one is an error naming it. */
static int load_side_json(struct moe_ckpt *ck, const char *dir)
{
	static const char *names[] = { "config.json", "generation_config.json",
		"tokenizer_config.json", "tokenizer.json" };
	json_t **slots[] = { &ck->config, &ck->generation_config, &ck->tokenizer_config,
		&ck->tokenizer };

	for (int i = 0; i < 4; i++) {
		struct moe_input *in;
		char *path;
		int rc;

		if (*slots[i] != NULL)
			continue;
		if (asprintf(&path, "%s/%s", dir, names[i]) < 0)
			return moe_error_set(&ck->err, MOE_ENOMEM, "out of memory");
		if (access(path, R_OK) != 0) {
			free(path);
			continue;
		}
		rc = open_path_input(ck, path, &in);
		if (rc == 0) {
			rc = load_json(ck, in, slots[i]);
			moe_input_free(in);
		}
		if (rc != 0) {
			char msg[sizeof ck->err.msg];
			snprintf(msg, sizeof msg, "%s: %.400s", names[i], ck->err.msg);
			moe_error_set(&ck->err, rc, "%s", msg);
		}
		free(path);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Regular files of dir, sorted by name. */
static int list_dir(struct moe_ckpt *ck, const char *dir, char ***out, size_t *n)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **v = NULL;
	size_t cnt = 0, cap = 0;

	if (d == NULL)
		return moe_error_set(&ck->err, MOE_EIO, "%s", strerror(errno));
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (cnt == cap) {
			char **nv = realloc(v, (cap = cap ? 2 * cap : 64) * sizeof *v);
			if (nv == NULL)
				goto oom;
			v = nv;
		}
		if ((v[cnt] = strdup(de->d_name)) == NULL)
			goto oom;
		cnt++;
	}
	closedir(d);
	if (cnt)
		qsort(v, cnt, sizeof *v, cmp_str);
	*out = v;
	*n = cnt;
	return 0;
oom:
	closedir(d);
	while (cnt)
		free(v[--cnt]);
	free(v);
	return moe_error_set(&ck->err, MOE_ENOMEM, "out of memory");
}

static int is_index_name(const char *s)
{
	size_t n = strlen(s);
	return n > 11 && strcmp(s + n - 11, ".index.json") == 0;
}

/* Kind of checkpoint a directory entry holds: 0 none, else a preference
 * rank (lower wins). */
static int dir_entry_kind(struct moe_ckpt *ck, const char *path)
{
	struct moe_input *in;
	struct stat st;
	const void *p;
	size_t got;
	enum moe_sniff s = MOE_SNIFF_UNKNOWN;
	int kind = 0;

	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || open_path_input(ck, path, &in) != 0)
		return 0;
	if (moe_input_peek(in, 512, &p, &got) == 0)
		s = moe_sniff_bytes(p, got);
	if (s == MOE_SNIFF_SAFETENSORS)
		kind = 1;
	/* a PyTorch zip is a checkpoint, any other zip beside one is not */
	else if (s == MOE_SNIFF_ZIP && zip_first_is_pickle(p, got))
		kind = 2;
	else if (s == MOE_SNIFF_GGUF)
		kind = 3;
	moe_input_free(in);
	return kind;
}

/*
 * Without an index, every checkpoint file of the preferred kind:
 * repositories often ship the same weights as safetensors and as PyTorch
 * .bin (and sometimes a GGUF); safetensors win, then PyTorch, then GGUF.
 */
static int load_dir_files(struct moe_ckpt *ck, const char *dir, char **names, size_t n)
{
	int *kind = calloc(n ? n : 1, sizeof *kind), best = 0, rc = 0;

	if (kind == NULL)
		return moe_error_set(&ck->err, MOE_ENOMEM, "out of memory");
	for (size_t i = 0; rc == 0 && i < n; i++) {
		char *path;
		if (asprintf(&path, "%s/%s", dir, names[i]) < 0) {
			rc = moe_error_set(&ck->err, MOE_ENOMEM, "out of memory");
			break;
		}
		kind[i] = dir_entry_kind(ck, path);
		if (kind[i] && (best == 0 || kind[i] < best))
			best = kind[i];
		free(path);
	}
	for (size_t i = 0; rc == 0 && best && i < n; i++) {
		struct moe_input *in;
		char *path;
		if (kind[i] != best)
			continue;
		if (asprintf(&path, "%s/%s", dir, names[i]) < 0) {
			rc = moe_error_set(&ck->err, MOE_ENOMEM, "out of memory");
			break;
		}
		if ((rc = open_path_input(ck, path, &in)) == 0)
			rc = moe_ckpt_load_input(ck, in, path);
		free(path);
	}
	free(kind);
	return rc;
}

/* Loads every checkpoint file of a directory (the index if there is one). */
static int open_dir(struct moe_ckpt *ck, const char *dir)
{
	char **names = NULL;
	size_t n = 0;
	int rc = list_dir(ck, dir, &names, &n), found = 0;

	ck->source |= MOE_SRC_DIR;
	for (size_t i = 0; rc == 0 && i < n && !found; i++) {
		if (is_index_name(names[i])) {
			struct moe_input *in;
			char *path;
			if (asprintf(&path, "%s/%s", dir, names[i]) < 0) {
				rc = moe_error_set(&ck->err, MOE_ENOMEM, "out of memory");
				break;
			}
			if ((rc = open_path_input(ck, path, &in)) == 0)
				rc = moe_ckpt_load_input(ck, in, path);
			free(path);
			found = 1;
		}
	}
	if (rc == 0 && !found)
		rc = load_dir_files(ck, dir, names, n);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (rc == 0)
		rc = load_side_json(ck, dir);
	if (rc == 0 && ck->ntensors == 0 && ck->config == NULL)
		rc = moe_error_set(&ck->err, MOE_ENOENT,
			"no checkpoint files and no config.json in directory");
	if (rc == 0 && ck->format == MOE_FMT_UNKNOWN)
		ck->format = MOE_FMT_CONFIG;
	return rc;
}

int moe_ckpt_open(struct moe_ckpt *ck, const char *path)
{
	struct moe_input *in;
	struct stat st;
	char *dir;
	int rc;

	if (strcmp(path, "-") != 0 && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return open_dir(ck, path);
	if ((rc = open_path_input(ck, path, &in)) != 0)
		return rc;
	if ((rc = moe_ckpt_load_input(ck, in, path)) != 0)
		return rc;
	if (strcmp(path, "-") == 0 || (ck->source & MOE_SRC_ARCHIVE))
		return 0;
	if ((dir = dir_of(path)) == NULL)
		return moe_error_set(&ck->err, MOE_ENOMEM, "out of memory");
	rc = load_side_json(ck, dir);
	free(dir);
	return rc;
}

int moe_ckpt_open_seekable(struct moe_ckpt *ck, const char *path)
{
	struct moe_input *in;
	int rc;

	if (strcmp(path, "-") != 0)
		return moe_ckpt_open(ck, path);
	if ((rc = open_path_input(ck, path, &in)) != 0)
		return rc;
	if ((rc = moe_input_spool(in)) != 0) {
		moe_error_set(&ck->err, rc, "%s", moe_input_errstr(in));
		moe_input_free(in);
		return rc;
	}
	return moe_ckpt_load_input(ck, in, "<stdin>");
}

int moe_ckpt_open_input(struct moe_ckpt *ck, struct moe_input *in, const char *name)
{
	return moe_ckpt_load_input(ck, in, name);
}

int moe_ckpt_open_memory(struct moe_ckpt *ck, const void *buf, size_t n,
	const char *name)
{
	struct moe_input *in;
	int rc = moe_input_open_memory(&in, buf, n, name);

	if (rc != 0)
		return moe_error_set(&ck->err, rc, "out of memory");
	return moe_ckpt_load_input(ck, in, name);
}

int moe_ckpt_read(struct moe_ckpt *ck, const struct moe_tensor *t,
	uint64_t off, void *buf, size_t n)
{
	struct moe_ckpt_file *f;
	int rc;

	if (off > t->nbytes || n > t->nbytes - off)
		return moe_error_set(&ck->err, MOE_EINVAL,
			"read past the end of tensor '%s'", t->name);
	f = &ck->files[t->file];
	if (f->ops)
		return f->ops->read(ck, f, t, off, buf, n);
	if ((rc = moe_input_seek(f->in, t->offset + off)) != 0 ||
	    (rc = moe_input_read(f->in, buf, n)) != 0) {
		if (rc == MOE_ETRUNC)
			return moe_error_set(&ck->err, rc, "truncated tensor '%s'", t->name);
		return moe_error_set(&ck->err, rc, "tensor '%s': %s", t->name,
			moe_input_errstr(f->in));
	}
	return 0;
}

int moe_ckpt_map(struct moe_ckpt *ck, const struct moe_tensor *t, const void **p)
{
	struct moe_ckpt_file *f = &ck->files[t->file];
	const void *base;
	uint64_t size;
	int rc;

	if (f->ops || f->in == NULL || t->strides)
		return moe_error_set(&ck->err, MOE_ESEEK,
			"tensor '%s' is not a mappable span", t->name);
	if ((rc = moe_input_map(f->in, &base, &size)) != 0)
		return moe_error_set(&ck->err, rc, "%s", moe_input_errstr(f->in));
	if (t->offset > size || t->nbytes > size - t->offset)
		return moe_error_set(&ck->err, MOE_ETRUNC, "truncated tensor '%s'", t->name);
	*p = (const unsigned char *)base + t->offset;
	return 0;
}

static int cmp_storage(const void *a, const void *b, void *ctx)
{
	const struct moe_ckpt *ck = ctx;
	const struct moe_tensor *x = &ck->tensors[*(const size_t *)a];
	const struct moe_tensor *y = &ck->tensors[*(const size_t *)b];

	if (x->file != y->file)
		return x->file < y->file ? -1 : 1;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

void moe_ckpt_storage_order(const struct moe_ckpt *ck, size_t *idx)
{
	for (size_t i = 0; i < ck->ntensors; i++)
		idx[i] = i;
	qsort_r(idx, ck->ntensors, sizeof *idx, cmp_storage, (void *)ck);
}

uint64_t moe_ckpt_bytes_read(const struct moe_ckpt *ck)
{
	uint64_t n = ck->bytes_extra;

	for (size_t i = 0; i < ck->nfiles; i++)
		if (ck->files[i].in)
			n += moe_input_bytes_read(ck->files[i].in);
	return n;
}
