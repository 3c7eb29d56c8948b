/* Restricted pickle virtual machine for torch.save state dicts (protocols 2-5); never executes code. */
#include "pickle.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* Bounds: a real state dict of a 1000-layer model has ~10^5 values. */
#define MAX_VALUES  (1u << 22)
#define MAX_STACK   (1u << 20)
#define MAX_MARKS   (1u << 12)
#define MAX_MEMO    (1u << 22)
#define MAX_DEPTH   64          /* nesting of dicts/lists when flattening */
#define MAX_VISITS  (1u << 22)  /* values visited when flattening (DAG blowup) */
#define MAX_NAME    4096
#define MAX_GLOBAL  256         /* module or name of a GLOBAL */
#define MAX_STORAGES (1u << 20)
#define MAX_KEY     255

enum vkind {
	V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_BYTES, V_TUPLE, V_LIST, V_DICT,
	V_GLOBAL, V_STORAGE, V_TENSOR
};

/* What an allowed GLOBAL stands for. */
enum gid {
	G_ORDERED_DICT, G_REBUILD_TENSOR, G_REBUILD_TENSOR_V2, G_REBUILD_PARAM,
	G_REBUILD_PARAM_STATE, G_SIZE, G_STORAGE_TYPE, G_DTYPE
};

struct tensor {
	size_t storage;
	uint64_t offset;
	int ndim;
	uint64_t shape[MOE_PICKLE_MAX_DIMS];
	int64_t stride[MOE_PICKLE_MAX_DIMS];
};

struct val {
	enum vkind k;
	union {
		int64_t i;        /* INT, BOOL */
		double f;
		struct { char *s; size_t n; } str;          /* STR, BYTES (NUL-terminated) */
		struct { struct val **it; size_t n, cap; } seq; /* TUPLE, LIST, DICT (k0,v0,k1,v1..) */
		struct { enum gid id; enum moe_dtype dt; } g;
		size_t storage;   /* STORAGE: index into p->st */
		struct tensor *t;
	} u;
};

struct moe_pickle {
	struct moe_error err;
	const unsigned char *p, *end, *base;
	struct val **all;            /* every value, for freeing */
	size_t nall, capall;
	struct val **stack;
	size_t sp, capstack;
	size_t *marks;
	size_t nmarks, capmarks;
	struct val **memo;
	size_t nmemo;                /* allocated slots */
	size_t memo_next;            /* MEMOIZE index */
	struct moe_pickle_storage *st;
	size_t nst, capst;
	struct moe_pickle_tensor *tens;
	size_t ntens, captens;
	size_t visits;
	int loaded;
};

int moe_pickle_new(struct moe_pickle **out)
{
	*out = calloc(1, sizeof **out);
	return *out ? 0 : MOE_ENOMEM;
}

static void free_val(struct val *v)
{
	if (v->k == V_STR || v->k == V_BYTES)
		free(v->u.str.s);
	else if (v->k == V_TUPLE || v->k == V_LIST || v->k == V_DICT)
		free(v->u.seq.it);
	else if (v->k == V_TENSOR)
		free(v->u.t);
	free(v);
}

void moe_pickle_free(struct moe_pickle *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->nall; i++)
		free_val(p->all[i]);
	free(p->all);
	free(p->stack);
	free(p->marks);
	free(p->memo);
	for (size_t i = 0; i < p->nst; i++)
		free(p->st[i].key);
	free(p->st);
	for (size_t i = 0; i < p->ntens; i++)
		free(p->tens[i].name);
	free(p->tens);
	free(p);
}

const char *moe_pickle_errstr(const struct moe_pickle *p) { return moe_error_str(&p->err); }
size_t moe_pickle_ntensors(const struct moe_pickle *p) { return p->ntens; }
size_t moe_pickle_nstorages(const struct moe_pickle *p) { return p->nst; }

const struct moe_pickle_tensor *moe_pickle_tensor(const struct moe_pickle *p, size_t i)
{
	return i < p->ntens ? &p->tens[i] : NULL;
}

const struct moe_pickle_storage *moe_pickle_storage(const struct moe_pickle *p, size_t i)
{
	return i < p->nst ? &p->st[i] : NULL;
}

static int oom(struct moe_pickle *p)
{
	return moe_error_set(&p->err, MOE_ENOMEM, "out of memory");
}

/* Offset of the opcode being run, for messages. */
static size_t at(const struct moe_pickle *p)
{
	return (size_t)(p->p - p->base);
}

/* Grows *arr (elements of size sz) to hold need items. */
static int grow(struct moe_pickle *p, void **arr, size_t *cap, size_t need, size_t sz)
{
	size_t nc;
	void *na;

	if (need <= *cap)
		return 0;
	nc = *cap ? *cap : 16;
	while (nc < need)
		nc *= 2;
	if ((na = realloc(*arr, nc * sz)) == NULL)
		return oom(p);
	*arr = na;
	*cap = nc;
	return 0;
}

static struct val *new_val(struct moe_pickle *p, enum vkind k)
{
	struct val *v;

	if (p->nall >= MAX_VALUES) {
		moe_error_set(&p->err, MOE_ERANGE, "pickle has more than %u values", MAX_VALUES);
		return NULL;
	}
	if (grow(p, (void **)&p->all, &p->capall, p->nall + 1, sizeof *p->all) != 0)
		return NULL;
	if ((v = calloc(1, sizeof *v)) == NULL) {
		oom(p);
		return NULL;
	}
	v->k = k;
	p->all[p->nall++] = v;
	return v;
}

static int push(struct moe_pickle *p, struct val *v)
{
	if (v == NULL)
		return p->err.code ? p->err.code : oom(p);
	if (p->sp >= MAX_STACK)
		return moe_error_set(&p->err, MOE_ERANGE, "pickle stack deeper than %u", MAX_STACK);
	if (grow(p, (void **)&p->stack, &p->capstack, p->sp + 1, sizeof *p->stack) != 0)
		return MOE_ENOMEM;
	p->stack[p->sp++] = v;
	return 0;
}

/* Lowest stack slot the current opcode may touch (above the last MARK). */
static size_t floor_sp(const struct moe_pickle *p)
{
	return p->nmarks ? p->marks[p->nmarks - 1] : 0;
}

static int pop(struct moe_pickle *p, struct val **v)
{
	if (p->sp <= floor_sp(p))
		return moe_error_set(&p->err, MOE_EFORMAT,
			"pickle stack underflow at offset %zu", at(p));
	*v = p->stack[--p->sp];
	return 0;
}

static int top(struct moe_pickle *p, struct val **v)
{
	if (p->sp <= floor_sp(p))
		return moe_error_set(&p->err, MOE_EFORMAT,
			"pickle stack underflow at offset %zu", at(p));
	*v = p->stack[p->sp - 1];
	return 0;
}

/* Pops the topmost MARK; *from is the first stack slot above it. */
static int pop_mark(struct moe_pickle *p, size_t *from)
{
	if (p->nmarks == 0)
		return moe_error_set(&p->err, MOE_EFORMAT,
			"pickle opcode at offset %zu needs a MARK", at(p));
	*from = p->marks[--p->nmarks];
	return 0;
}

static int seq_add(struct moe_pickle *p, struct val *s, struct val *item)
{
	if (grow(p, (void **)&s->u.seq.it, &s->u.seq.cap, s->u.seq.n + 1,
	    sizeof *s->u.seq.it) != 0)
		return MOE_ENOMEM;
	s->u.seq.it[s->u.seq.n++] = item;
	return 0;
}

/* A tuple/list/dict of the stack slots [from, sp), which are popped. */
static int collect(struct moe_pickle *p, enum vkind k, size_t from)
{
	struct val *v = new_val(p, k);

	if (v == NULL)
		return p->err.code;
	if (k == V_DICT && (p->sp - from) % 2)
		return moe_error_set(&p->err, MOE_EFORMAT,
			"pickle DICT with an odd number of items at offset %zu", at(p));
	for (size_t i = from; i < p->sp; i++)
		if (seq_add(p, v, p->stack[i]) != 0)
			return MOE_ENOMEM;
	p->sp = from;
	return push(p, v);
}

/* Appends stack slots [from, sp) to the list or dict just below them. */
static int extend(struct moe_pickle *p, size_t from, enum vkind want)
{
	struct val *c;

	if (from == 0 || from <= floor_sp(p))
		return moe_error_set(&p->err, MOE_EFORMAT,
			"pickle stack underflow at offset %zu", at(p));
	c = p->stack[from - 1];
	if (c->k != want)
		return moe_error_set(&p->err, MOE_EFORMAT,
			"pickle %s into a non-%s at offset %zu",
			want == V_DICT ? "SETITEM" : "APPEND",
			want == V_DICT ? "dict" : "list", at(p));
	if (want == V_DICT && (p->sp - from) % 2)
		return moe_error_set(&p->err, MOE_EFORMAT,
			"pickle SETITEMS with an odd number of items at offset %zu", at(p));
	for (size_t i = from; i < p->sp; i++)
		if (seq_add(p, c, p->stack[i]) != 0)
			return MOE_ENOMEM;
	p->sp = from;
	return 0;
}

static int need(struct moe_pickle *p, size_t n)
{
	if ((size_t)(p->end - p->p) < n)
		return moe_error_set(&p->err, MOE_ETRUNC,
			"truncated pickle at offset %zu", at(p));
	return 0;
}

static uint64_t le(const unsigned char *b, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

/* Reads an n-byte little-endian length field, then checks the payload fits. */
static int len_field(struct moe_pickle *p, int n, size_t *len)
{
	uint64_t v;
	int rc;

	if ((rc = need(p, (size_t)n)) != 0)
		return rc;
	v = le(p->p, n);
	p->p += n;
	if (v > (uint64_t)(p->end - p->p))
		return moe_error_set(&p->err, MOE_ETRUNC,
			"pickle string of %llu bytes runs past the end at offset %zu",
			(unsigned long long)v, at(p));
	*len = (size_t)v;
	return 0;
}

static int push_str(struct moe_pickle *p, enum vkind k, size_t n)
{
	struct val *v = new_val(p, k);

	if (v == NULL)
		return p->err.code;
	if ((v->u.str.s = malloc(n + 1)) == NULL)
		return oom(p);
	memcpy(v->u.str.s, p->p, n);
	v->u.str.s[n] = '\0';
	v->u.str.n = n;
	p->p += n;
	return push(p, v);
}

static int push_int(struct moe_pickle *p, enum vkind k, int64_t i)
{
	struct val *v = new_val(p, k);

	if (v == NULL)
		return p->err.code;
	v->u.i = i;
	return push(p, v);
}

static int memo_put(struct moe_pickle *p, uint64_t idx)
{
	struct val *v;
	int rc;

	if ((rc = top(p, &v)) != 0)
		return rc;
	if (idx >= MAX_MEMO)
		return moe_error_set(&p->err, MOE_ERANGE,
			"pickle memo index %llu out of range", (unsigned long long)idx);
	if (idx >= p->nmemo) {
		size_t nc = p->nmemo ? p->nmemo : 64;
		struct val **nm;
		while (nc <= idx)
			nc *= 2;
		if ((nm = realloc(p->memo, nc * sizeof *nm)) == NULL)
			return oom(p);
		memset(nm + p->nmemo, 0, (nc - p->nmemo) * sizeof *nm);
		p->memo = nm;
		p->nmemo = nc;
	}
	p->memo[idx] = v;
	return 0;
}

static int memo_get(struct moe_pickle *p, uint64_t idx)
{
	if (idx >= p->nmemo || p->memo[idx] == NULL)
		return moe_error_set(&p->err, MOE_EFORMAT,
			"pickle memo %llu read before it was written",
			(unsigned long long)idx);
	return push(p, p->memo[idx]);
}

static const struct {
	const char *name;
	enum moe_dtype dt;
} storage_types[] = {
	{ "FloatStorage", MOE_DT_F32 }, { "HalfStorage", MOE_DT_F16 },
	{ "BFloat16Storage", MOE_DT_BF16 }, { "DoubleStorage", MOE_DT_F64 },
	{ "LongStorage", MOE_DT_I64 }, { "IntStorage", MOE_DT_I32 },
	{ "ShortStorage", MOE_DT_I16 }, { "CharStorage", MOE_DT_I8 },
	{ "ByteStorage", MOE_DT_U8 }, { "BoolStorage", MOE_DT_BOOL },
	{ "Float8_e4m3fnStorage", MOE_DT_F8_E4M3 },
	{ "Float8_e5m2Storage", MOE_DT_F8_E5M2 },
}, dtypes[] = {
	{ "float32", MOE_DT_F32 }, { "float", MOE_DT_F32 }, { "float16", MOE_DT_F16 },
	{ "half", MOE_DT_F16 }, { "bfloat16", MOE_DT_BF16 }, { "float64", MOE_DT_F64 },
	{ "double", MOE_DT_F64 }, { "int64", MOE_DT_I64 }, { "long", MOE_DT_I64 },
	{ "int32", MOE_DT_I32 }, { "int", MOE_DT_I32 }, { "int16", MOE_DT_I16 },
	{ "short", MOE_DT_I16 }, { "int8", MOE_DT_I8 }, { "uint8", MOE_DT_U8 },
	{ "bool", MOE_DT_BOOL }, { "float8_e4m3fn", MOE_DT_F8_E4M3 },
	{ "float8_e5m2", MOE_DT_F8_E5M2 },
};

/* Quoted form of an untrusted name for messages: printable ASCII only. */
static void clean(char *dst, size_t cap, const char *s, size_t n)
{
	size_t j = 0;

	for (size_t i = 0; i < n && j + 5 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		if (isprint(c) && c != '\'') {
			dst[j++] = (char)c;
		} else {
			snprintf(dst + j, cap - j, "\\x%02x", c);
			j += 4;
		}
	}
	dst[j] = '\0';
}

/* The allow-list: anything not named here is refused, never imported. */
static int resolve_global(struct moe_pickle *p, const char *mod, size_t nm,
	const char *name, size_t nn)
{
	struct val *v;
	char cm[160], cn[160];
	int id = -1;
	enum moe_dtype dt = MOE_DT_INVALID;

#define IS(m, n) (nm == strlen(m) && memcmp(mod, m, nm) == 0 && \
	nn == strlen(n) && memcmp(name, n, nn) == 0)
	if (IS("collections", "OrderedDict"))
		id = G_ORDERED_DICT;
	else if (IS("torch._utils", "_rebuild_tensor"))
		id = G_REBUILD_TENSOR;
	else if (IS("torch._utils", "_rebuild_tensor_v2"))
		id = G_REBUILD_TENSOR_V2;
	else if (IS("torch._utils", "_rebuild_parameter"))
		id = G_REBUILD_PARAM;
	else if (IS("torch._utils", "_rebuild_parameter_with_state"))
		id = G_REBUILD_PARAM_STATE;
	else if (IS("torch", "Size"))
		id = G_SIZE;
	for (size_t i = 0; id < 0 && i < sizeof storage_types / sizeof *storage_types; i++)
		if (IS("torch", storage_types[i].name)) {
			id = G_STORAGE_TYPE;
			dt = storage_types[i].dt;
		}
	for (size_t i = 0; id < 0 && i < sizeof dtypes / sizeof *dtypes; i++)
		if (IS("torch", dtypes[i].name)) {
			id = G_DTYPE;
			dt = dtypes[i].dt;
		}
#undef IS
	if (id < 0) {
		clean(cm, sizeof cm, mod, nm);
		clean(cn, sizeof cn, name, nn);
		/* a storage type we cannot map is refused just the same, but
		 * it is not an attack: say what it is */
		if (strcmp(cm, "torch") == 0 && nn > 7 && memcmp(name + nn - 7, "Storage", 7) == 0)
			return moe_error_set(&p->err, MOE_EUNSUP,
				"unsupported PyTorch storage type 'torch.%s'", cn);
		return moe_error_set(&p->err, MOE_ESECURITY,
			"refusing pickle GLOBAL '%s %s' (only torch state-dict types are allowed)",
			cm, cn);
	}
	if ((v = new_val(p, V_GLOBAL)) == NULL)
		return p->err.code;
	v->u.g.id = (enum gid)id;
	v->u.g.dt = dt;
	return push(p, v);
}

/* GLOBAL/INST operand: "module\nname\n". */
static int read_line(struct moe_pickle *p, const char **s, size_t *n)
{
	const unsigned char *nl;
	size_t left = (size_t)(p->end - p->p);

	nl = memchr(p->p, '\n', left < MAX_GLOBAL + 1 ? left : MAX_GLOBAL + 1);
	if (nl == NULL)
		return left <= MAX_GLOBAL ? moe_error_set(&p->err, MOE_ETRUNC,
			"truncated pickle at offset %zu", at(p))
			: moe_error_set(&p->err, MOE_EFORMAT,
			"pickle GLOBAL name longer than %d bytes", MAX_GLOBAL);
	*s = (const char *)p->p;
	*n = (size_t)(nl - p->p);
	p->p = nl + 1;
	return 0;
}

static int op_global(struct moe_pickle *p)
{
	const char *m = NULL, *n = NULL;
	size_t nm = 0, nn = 0;
	int rc;

	if ((rc = read_line(p, &m, &nm)) != 0 || (rc = read_line(p, &n, &nn)) != 0)
		return rc;
	return resolve_global(p, m, nm, n, nn);
}

static int op_stack_global(struct moe_pickle *p)
{
	struct val *m, *n;
	int rc;

	if ((rc = pop(p, &n)) != 0 || (rc = pop(p, &m)) != 0)
		return rc;
	if (m->k != V_STR || n->k != V_STR)
		return moe_error_set(&p->err, MOE_EFORMAT,
			"pickle STACK_GLOBAL needs two strings at offset %zu", at(p));
	if (m->u.str.n > MAX_GLOBAL || n->u.str.n > MAX_GLOBAL)
		return moe_error_set(&p->err, MOE_EFORMAT,
			"pickle GLOBAL name longer than %d bytes", MAX_GLOBAL);
	return resolve_global(p, m->u.str.s, m->u.str.n, n->u.str.s, n->u.str.n);
}

static int get_int(struct val *v, int64_t *out)
{
	if (v->k != V_INT && v->k != V_BOOL)
		return -1;
	*out = v->u.i;
	return 0;
}

/* Storage key: used as a zip member name, so no path tricks. */
static int key_ok(const struct val *k)
{
	if (k->k != V_STR || k->u.str.n == 0 || k->u.str.n > MAX_KEY)
		return 0;
	for (size_t i = 0; i < k->u.str.n; i++) {
		unsigned char c = (unsigned char)k->u.str.s[i];
		if (!isalnum(c) && c != '_' && c != '-')
			return 0;
	}
	return 1;
}

/* BINPERSID: ('storage', storage_type, key, location, numel). */
static int op_persid(struct moe_pickle *p)
{
	struct val *t, *v, **it;
	int64_t numel;
	size_t i;
	int rc;

	if ((rc = pop(p, &t)) != 0)
		return rc;
	if (t->k != V_TUPLE || t->u.seq.n != 5)
		return moe_error_set(&p->err, MOE_EFORMAT,
			"pickle persistent id is not a 5-tuple at offset %zu", at(p));
	it = t->u.seq.it;
	if (it[0]->k != V_STR || strcmp(it[0]->u.str.s, "storage") != 0 ||
	    it[0]->u.str.n != 7)
		return moe_error_set(&p->err, MOE_EUNSUP,
			"pickle persistent id is not a 'storage' record");
	if (it[1]->k != V_GLOBAL || (it[1]->u.g.id != G_STORAGE_TYPE &&
	    it[1]->u.g.id != G_DTYPE))
		return moe_error_set(&p->err, MOE_EFORMAT,
			"pickle storage record without a storage type");
	if (!key_ok(it[2]))
		return moe_error_set(&p->err, MOE_EFORMAT,
			"pickle storage key is not a plain name");
	if (it[3]->k != V_STR)
		return moe_error_set(&p->err, MOE_EFORMAT,
			"pickle storage location is not a string");
	if (get_int(it[4], &numel) != 0 || numel < 0)
		return moe_error_set(&p->err, MOE_EFORMAT,
			"pickle storage size is not a non-negative integer");
	for (i = 0; i < p->nst; i++)
		if (strcmp(p->st[i].key, it[2]->u.str.s) == 0)
			break;
	if (i < p->nst) {
		if (p->st[i].dtype != it[1]->u.g.dt || p->st[i].numel != (uint64_t)numel)
			return moe_error_set(&p->err, MOE_EFORMAT,
				"pickle storage '%s' is described twice differently", p->st[i].key);
	} else {
		if (p->nst >= MAX_STORAGES)
			return moe_error_set(&p->err, MOE_ERANGE, "too many storages");
		if (grow(p, (void **)&p->st, &p->capst, p->nst + 1, sizeof *p->st) != 0)
			return MOE_ENOMEM;
		if ((p->st[i].key = strdup(it[2]->u.str.s)) == NULL)
			return oom(p);
		p->st[i].dtype = it[1]->u.g.dt;
		p->st[i].numel = (uint64_t)numel;
		p->nst++;
	}
	if ((v = new_val(p, V_STORAGE)) == NULL)
		return p->err.code;
	v->u.storage = i;
	return push(p, v);
}

/* A shape or stride tuple of at most MOE_PICKLE_MAX_DIMS integers. */
static int dims(struct moe_pickle *p, struct val *v, int *nd, int64_t *out)
{
	if (v->k != V_TUPLE && v->k != V_LIST)
		return moe_error_set(&p->err, MOE_EFORMAT,
			"pickle tensor size/stride is not a tuple");
	if (v->u.seq.n > MOE_PICKLE_MAX_DIMS)
		return moe_error_set(&p->err, MOE_EUNSUP,
			"pickle tensor has %zu dimensions (at most %d)", v->u.seq.n,
			MOE_PICKLE_MAX_DIMS);
	for (size_t i = 0; i < v->u.seq.n; i++)
		if (get_int(v->u.seq.it[i], &out[i]) != 0 || out[i] < 0)
			return moe_error_set(&p->err, MOE_EFORMAT,
				"pickle tensor size/stride is not a non-negative integer");
	*nd = (int)v->u.seq.n;
	return 0;
}

/* _rebuild_tensor(storage, storage_offset, size, stride, ...): checks the
 * view stays inside its storage. */
static int rebuild_tensor(struct moe_pickle *p, struct val **a, size_t n)
{
	struct tensor *t;
	struct val *v;
	int64_t off, shape[MOE_PICKLE_MAX_DIMS], stride[MOE_PICKLE_MAX_DIMS];
	int nd, ns, rc;
	uint64_t last = 0, numel = 1;

	if (n < 4 || a[0]->k != V_STORAGE || get_int(a[1], &off) != 0 || off < 0)
		return moe_error_set(&p->err, MOE_EFORMAT,
			"pickle _rebuild_tensor with bad arguments at offset %zu", at(p));
	if ((rc = dims(p, a[2], &nd, shape)) != 0 || (rc = dims(p, a[3], &ns, stride)) != 0)
		return rc;
	if (nd != ns)
		return moe_error_set(&p->err, MOE_EFORMAT,
			"pickle tensor size and stride differ in length");
	for (int i = 0; i < nd; i++) {
		uint64_t sh = (uint64_t)shape[i], s = (uint64_t)stride[i];
		if (sh == 0)
			numel = 0;
		else if (sh - 1 > 0 && s > (UINT64_MAX >> 2) / (sh - 1))
			return moe_error_set(&p->err, MOE_ERANGE, "pickle tensor view too large");
		else
			last += (sh - 1) * s;
		if (last > (UINT64_MAX >> 2))
			return moe_error_set(&p->err, MOE_ERANGE, "pickle tensor view too large");
	}
	if (numel && (uint64_t)off + last >= p->st[a[0]->u.storage].numel)
		return moe_error_set(&p->err, MOE_ERANGE,
			"pickle tensor view runs past the end of storage '%s'",
			p->st[a[0]->u.storage].key);
	if ((v = new_val(p, V_TENSOR)) == NULL)
		return p->err.code;
	if ((t = calloc(1, sizeof *t)) == NULL)
		return oom(p);
	v->u.t = t;
	t->storage = a[0]->u.storage;
	t->offset = (uint64_t)off;
	t->ndim = nd;
	for (int i = 0; i < nd; i++) {
		t->shape[i] = (uint64_t)shape[i];
		t->stride[i] = stride[i];
	}
	return push(p, v);
}

/* REDUCE / NEWOBJ: the built-in meaning of an allowed callable. */
static int apply(struct moe_pickle *p, struct val *fn, struct val *args)
{
	struct val **a;
	size_t n;

	if (fn->k != V_GLOBAL || args->k != V_TUPLE)
		return moe_error_set(&p->err, MOE_EFORMAT,
			"pickle REDUCE of a non-callable at offset %zu", at(p));
	a = args->u.seq.it;
	n = args->u.seq.n;
	switch (fn->u.g.id) {
	case G_ORDERED_DICT:
		if (n != 0)
			break;
		return push(p, new_val(p, V_DICT));
	case G_SIZE:
		if (n != 1 || (a[0]->k != V_TUPLE && a[0]->k != V_LIST))
			break;
		return push(p, a[0]);
	case G_REBUILD_TENSOR:
		if (n != 4)
			break;
		return rebuild_tensor(p, a, n);
	case G_REBUILD_TENSOR_V2:
		if (n != 6 && n != 7)
			break;
		return rebuild_tensor(p, a, n);
	case G_REBUILD_PARAM:
	case G_REBUILD_PARAM_STATE:
		if (n != (fn->u.g.id == G_REBUILD_PARAM ? 3u : 4u) || a[0]->k != V_TENSOR)
			break;
		return push(p, a[0]);
	default:
		return moe_error_set(&p->err, MOE_EFORMAT,
			"pickle calls a type that is not callable at offset %zu", at(p));
	}
	return moe_error_set(&p->err, MOE_EFORMAT,
		"pickle call with unexpected arguments at offset %zu", at(p));
}

static int op_reduce(struct moe_pickle *p)
{
	struct val *fn, *args;
	int rc;

	if ((rc = pop(p, &args)) != 0 || (rc = pop(p, &fn)) != 0)
		return rc;
	return apply(p, fn, args);
}

/* BUILD sets object state; for dicts (OrderedDict._metadata) and tensors
 * that state carries nothing we need, so it is dropped. */
static int op_build(struct moe_pickle *p)
{
	struct val *state, *obj;
	int rc;

	if ((rc = pop(p, &state)) != 0 || (rc = top(p, &obj)) != 0)
		return rc;
	if (obj->k != V_DICT && obj->k != V_TENSOR && obj->k != V_LIST)
		return moe_error_set(&p->err, MOE_EFORMAT,
			"pickle BUILD on an unsupported object at offset %zu", at(p));
	return 0;
}

static int op_long1(struct moe_pickle *p)
{
	size_t n;
	uint64_t v;
	int rc;

	if ((rc = len_field(p, 1, &n)) != 0)
		return rc;
	if (n > 8)
		return moe_error_set(&p->err, MOE_ERANGE,
			"pickle integer of %zu bytes is too large", n);
	v = n ? le(p->p, (int)n) : 0;
	if (n && n < 8 && (p->p[n - 1] & 0x80))
		v |= ~0ull << (8 * n);       /* sign-extend */
	p->p += n;
	return push_int(p, V_INT, (int64_t)v);
}

static int op_binfloat(struct moe_pickle *p)
{
	struct val *v;
	uint64_t b = 0;
	int rc;

	if ((rc = need(p, 8)) != 0)
		return rc;
	for (int i = 0; i < 8; i++)  /* big-endian */
		b = b << 8 | p->p[i];
	p->p += 8;
	if ((v = new_val(p, V_FLOAT)) == NULL)
		return p->err.code;
	memcpy(&v->u.f, &b, 8);
	return push(p, v);
}

/* Fixed-width operand of an opcode. */
static int arg(struct moe_pickle *p, int n, uint64_t *v)
{
	int rc = need(p, (size_t)n);

	if (rc == 0) {
		*v = le(p->p, n);
		p->p += n;
	}
	return rc;
}

static int step(struct moe_pickle *p, int op, int *done)
{
	struct val *v;
	uint64_t u;
	size_t n, from = 0;
	int rc;

	switch (op) {
	case 0x80:  /* PROTO */
		if ((rc = arg(p, 1, &u)) != 0)
			return rc;
		if (u < 2 || u > 5)
			return moe_error_set(&p->err, MOE_EUNSUP,
				"pickle protocol %llu (supported: 2 to 5)", (unsigned long long)u);
		return 0;
	case 0x95:  /* FRAME: a length hint, the opcodes follow inline */
		return arg(p, 8, &u);
	case '.':   /* STOP */
		*done = 1;
		return 0;
	case '(':   /* MARK */
		if (p->nmarks >= MAX_MARKS)
			return moe_error_set(&p->err, MOE_ERANGE, "pickle nests more than %u MARKs", MAX_MARKS);
		if (grow(p, (void **)&p->marks, &p->capmarks, p->nmarks + 1, sizeof *p->marks) != 0)
			return MOE_ENOMEM;
		p->marks[p->nmarks++] = p->sp;
		return 0;
	case '0':   /* POP */
		return pop(p, &v);
	case '1':   /* POP_MARK */
		if ((rc = pop_mark(p, &from)) != 0)
			return rc;
		p->sp = from;
		return 0;
	case '}':   /* EMPTY_DICT */
		return push(p, new_val(p, V_DICT));
	case ']':   /* EMPTY_LIST */
		return push(p, new_val(p, V_LIST));
	case ')':   /* EMPTY_TUPLE */
		return push(p, new_val(p, V_TUPLE));
	case 'd': case 'l': case 't':  /* DICT, LIST, TUPLE */
		if ((rc = pop_mark(p, &from)) != 0)
			return rc;
		return collect(p, op == 'd' ? V_DICT : op == 'l' ? V_LIST : V_TUPLE, from);
	case 0x85: case 0x86: case 0x87:  /* TUPLE1..3 */
		n = (size_t)(op - 0x84);
		if (p->sp - floor_sp(p) < n)
			return moe_error_set(&p->err, MOE_EFORMAT,
				"pickle stack underflow at offset %zu", at(p));
		return collect(p, V_TUPLE, p->sp - n);
	case 's':   /* SETITEM */
		if (p->sp - floor_sp(p) < 3)
			return moe_error_set(&p->err, MOE_EFORMAT,
				"pickle stack underflow at offset %zu", at(p));
		return extend(p, p->sp - 2, V_DICT);
	case 'u':   /* SETITEMS */
		if ((rc = pop_mark(p, &from)) != 0)
			return rc;
		return extend(p, from, V_DICT);
	case 'a':   /* APPEND */
		if (p->sp - floor_sp(p) < 2)
			return moe_error_set(&p->err, MOE_EFORMAT,
				"pickle stack underflow at offset %zu", at(p));
		return extend(p, p->sp - 1, V_LIST);
	case 'e':   /* APPENDS */
		if ((rc = pop_mark(p, &from)) != 0)
			return rc;
		return extend(p, from, V_LIST);
	case 'J':   /* BININT */
		if ((rc = arg(p, 4, &u)) != 0)
			return rc;
		return push_int(p, V_INT, (int32_t)(uint32_t)u);
	case 'K':   /* BININT1 */
	case 'M':   /* BININT2 */
		if ((rc = arg(p, op == 'K' ? 1 : 2, &u)) != 0)
			return rc;
		return push_int(p, V_INT, (int64_t)u);
	case 0x8a:  /* LONG1 */
		return op_long1(p);
	case 'G':   /* BINFLOAT */
		return op_binfloat(p);
	case 'X': case 0x8c: case 0x8d:  /* BINUNICODE, SHORT_BINUNICODE, BINUNICODE8 */
		if ((rc = len_field(p, op == 'X' ? 4 : op == 0x8c ? 1 : 8, &n)) != 0)
			return rc;
		return push_str(p, V_STR, n);
	case 'B': case 'C': case 0x8e:   /* BINBYTES, SHORT_BINBYTES, BINBYTES8 */
		if ((rc = len_field(p, op == 'B' ? 4 : op == 'C' ? 1 : 8, &n)) != 0)
			return rc;
		return push_str(p, V_BYTES, n);
	case 'N':   /* NONE */
		return push(p, new_val(p, V_NONE));
	case 0x88: case 0x89:  /* NEWTRUE, NEWFALSE */
		return push_int(p, V_BOOL, op == 0x88);
	case 'q': case 'r':    /* BINPUT, LONG_BINPUT */
		if ((rc = arg(p, op == 'q' ? 1 : 4, &u)) != 0)
			return rc;
		return memo_put(p, u);
	case 0x94:  /* MEMOIZE */
		if ((rc = memo_put(p, p->memo_next)) == 0)
			p->memo_next++;
		return rc;
	case 'h': case 'j':    /* BINGET, LONG_BINGET */
		if ((rc = arg(p, op == 'h' ? 1 : 4, &u)) != 0)
			return rc;
		return memo_get(p, u);
	case 'c':   /* GLOBAL */
		return op_global(p);
	case 0x93:  /* STACK_GLOBAL */
		return op_stack_global(p);
	case 'R':   /* REDUCE */
	case 0x81:  /* NEWOBJ: cls, args -> cls.__new__(cls, *args) */
		return op_reduce(p);
	case 'b':   /* BUILD */
		return op_build(p);
	case 'Q':   /* BINPERSID */
		return op_persid(p);
	case 'i':   /* INST: imports like GLOBAL, so check the name first */
		if ((rc = op_global(p)) != 0)
			return rc;
		return moe_error_set(&p->err, MOE_EUNSUP,
			"pickle opcode INST is not supported");
	default:
		return moe_error_set(&p->err, MOE_EUNSUP,
			"unsupported pickle opcode 0x%02x at offset %zu", op, at(p));
	}
}

/* Flattening: appends name -> tensor for every tensor under v. */
static int flatten(struct moe_pickle *p, struct val *v, char *name, size_t len, int depth);

static int add_tensor(struct moe_pickle *p, const struct tensor *t, const char *name)
{
	struct moe_pickle_tensor *o;

	if (name[0] == '\0')
		return moe_error_set(&p->err, MOE_EFORMAT, "pickle tensor with an empty name");
	if (grow(p, (void **)&p->tens, &p->captens, p->ntens + 1, sizeof *p->tens) != 0)
		return MOE_ENOMEM;
	o = &p->tens[p->ntens];
	memset(o, 0, sizeof *o);
	if ((o->name = strdup(name)) == NULL)
		return oom(p);
	o->storage = t->storage;
	o->storage_offset = t->offset;
	o->ndim = t->ndim;
	memcpy(o->shape, t->shape, sizeof o->shape);
	memcpy(o->stride, t->stride, sizeof o->stride);
	p->ntens++;
	return 0;
}

/* Appends ".key" (or "key" at the root) to name; key is a str or int. */
static int child_name(struct moe_pickle *p, struct val *key, char *name, size_t len,
	size_t *nlen)
{
	char num[32];
	const char *s;
	size_t n;

	if (key->k == V_STR) {
		s = key->u.str.s;
		n = key->u.str.n;
		if (memchr(s, '\0', n))
			return moe_error_set(&p->err, MOE_EFORMAT, "pickle key with a NUL byte");
	} else if (key->k == V_INT) {
		n = (size_t)snprintf(num, sizeof num, "%lld", (long long)key->u.i);
		s = num;
	} else {
		return moe_error_set(&p->err, MOE_EUNSUP,
			"pickle dict holding tensors has a key that is not a string or integer");
	}
	if (len + 1 + n >= MAX_NAME)
		return moe_error_set(&p->err, MOE_ERANGE,
			"pickle tensor name longer than %d bytes", MAX_NAME);
	if (len)
		name[len++] = '.';
	memcpy(name + len, s, n);
	name[len + n] = '\0';
	*nlen = len + n;
	return 0;
}

static int flatten(struct moe_pickle *p, struct val *v, char *name, size_t len, int depth)
{
	size_t step_, nl = 0;
	int rc;

	if (++p->visits > MAX_VISITS)
		return moe_error_set(&p->err, MOE_ERANGE,
			"pickle state dict visits more than %u values", MAX_VISITS);
	if (v->k == V_TENSOR)
		return add_tensor(p, v->u.t, name);
	if (v->k != V_DICT && v->k != V_LIST && v->k != V_TUPLE)
		return 0;
	if (depth >= MAX_DEPTH)
		return moe_error_set(&p->err, MOE_ERANGE,
			"pickle state dict nests deeper than %d", MAX_DEPTH);
	step_ = v->k == V_DICT ? 2 : 1;
	for (size_t i = 0; i < v->u.seq.n; i += step_) {
		struct val *item = v->u.seq.it[i + step_ - 1], idx;
		if (++p->visits > MAX_VISITS)
			return moe_error_set(&p->err, MOE_ERANGE,
				"pickle state dict visits more than %u values", MAX_VISITS);
		if (item->k != V_TENSOR && item->k != V_DICT && item->k != V_LIST &&
		    item->k != V_TUPLE)
			continue;
		idx.k = V_INT;
		idx.u.i = (int64_t)i;
		if ((rc = child_name(p, v->k == V_DICT ? v->u.seq.it[i] : &idx,
		    name, len, &nl)) != 0)
			return rc;
		if ((rc = flatten(p, item, name, nl, depth + 1)) != 0)
			return rc;
		name[len] = '\0';
	}
	return 0;
}

/* Does the subtree hold a tensor? Shared subtrees can make the walk
 * exponential, so it gives up (no) after *budget values. */
static int has_tensor(struct val *v, int depth, size_t *budget)
{
	if (v->k == V_TENSOR)
		return 1;
	if ((v->k != V_DICT && v->k != V_LIST && v->k != V_TUPLE) || depth > 8)
		return 0;
	for (size_t i = 0; i < v->u.seq.n; i++) {
		if (*budget == 0)
			return 0;
		--*budget;
		if (has_tensor(v->u.seq.it[i], depth + 1, budget))
			return 1;
	}
	return 0;
}

/* {"state_dict": {...}} and friends: the weights the user means. */
static struct val *unwrap(struct val *root)
{
	static const char *wrappers[] = { "state_dict", "model_state_dict", "model", "module" };

	for (int depth = 0; depth < 4 && root->k == V_DICT; depth++) {
		struct val *next = NULL;
		for (size_t i = 0; i + 1 < root->u.seq.n && !next; i += 2) {
			struct val *k = root->u.seq.it[i], *v = root->u.seq.it[i + 1];
			if (k->k != V_STR || v->k != V_DICT)
				continue;
			for (size_t w = 0; w < sizeof wrappers / sizeof *wrappers; w++)
				if (strcmp(k->u.str.s, wrappers[w]) == 0) {
					size_t budget = MAX_VISITS;
					if (has_tensor(v, 0, &budget))
						next = v;
				}
		}
		if (next == NULL)
			break;
		root = next;
	}
	return root;
}

int moe_pickle_load(struct moe_pickle *p, const void *buf, size_t n)
{
	char *name;
	struct val *root;
	int done = 0, rc = 0;

	if (p->loaded)
		return moe_error_set(&p->err, MOE_EINVAL, "pickle handle already used");
	p->loaded = 1;
	p->base = p->p = buf;
	p->end = p->p + n;
	while (!done && rc == 0) {
		if (p->p >= p->end)
			return moe_error_set(&p->err, MOE_ETRUNC,
				"truncated pickle (no STOP) at offset %zu", at(p));
		p->p++;
		rc = step(p, p->p[-1], &done);
	}
	if (rc != 0)
		return rc;
	if (p->nmarks != 0 || p->sp != 1)
		return moe_error_set(&p->err, MOE_EFORMAT,
			"pickle stops with %zu values and %zu marks on the stack", p->sp, p->nmarks);
	root = unwrap(p->stack[0]);
	if (root->k != V_DICT)
		return moe_error_set(&p->err, MOE_EFORMAT, "pickle is not a state dict");
	if ((name = malloc(MAX_NAME + 1)) == NULL)
		return oom(p);
	name[0] = '\0';
	rc = flatten(p, root, name, 0, 0);
	free(name);
	return rc;
}
