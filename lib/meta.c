/* Ordered typed metadata store with GGUF value types. */
#include "meta.h"

#include <stdlib.h>
#include <string.h>

#include <stdio.h>

#include "error.h"

struct entry {
	char *key;
	struct moe_value val;
};

struct moe_meta {
	struct entry *e;
	size_t n, cap;
};

int moe_meta_new(struct moe_meta **out)
{
	*out = calloc(1, sizeof **out);
	return *out ? 0 : MOE_ENOMEM;
}

void moe_meta_free(struct moe_meta *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n; i++) {
		free(m->e[i].key);
		moe_value_release(&m->e[i].val);
	}
	free(m->e);
	free(m);
}

size_t moe_vtype_size(enum moe_vtype t)
{
	static const size_t sz[MOE_V_COUNT] = { 1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8 };
	return (unsigned)t < MOE_V_COUNT ? sz[t] : 0;
}

const char *moe_vtype_name(enum moe_vtype t)
{
	static const char *nm[MOE_V_COUNT] = { "u8", "i8", "u16", "i16", "u32",
		"i32", "f32", "bool", "string", "array", "u64", "i64", "f64" };
	return (unsigned)t < MOE_V_COUNT ? nm[t] : "invalid";
}

void moe_value_release(struct moe_value *v)
{
	if (v->type == MOE_V_STR) {
		free(v->v.str.s);
	} else if (v->type == MOE_V_ARR) {
		if (v->v.arr.type == MOE_V_STR) {
			struct moe_str *s = v->v.arr.data;
			for (uint64_t i = 0; s && i < v->v.arr.n; i++)
				free(s[i].s);
		} else if (v->v.arr.type == MOE_V_ARR) {
			struct moe_value *a = v->v.arr.data;
			for (uint64_t i = 0; a && i < v->v.arr.n; i++)
				moe_value_release(&a[i]);
		}
		free(v->v.arr.data);
	}
	memset(v, 0, sizeof *v);
}

static int str_copy(struct moe_str *d, const struct moe_str *s)
{
	d->s = malloc(s->len + 1);
	if (d->s == NULL)
		return MOE_ENOMEM;
	memcpy(d->s, s->s, s->len);
	d->s[s->len] = '\0';
	d->len = s->len;
	return 0;
}

int moe_value_copy(struct moe_value *dst, const struct moe_value *src)
{
	uint64_t n = src->v.arr.n;
	size_t esz;

	*dst = *src;
	if (src->type == MOE_V_STR)
		return str_copy(&dst->v.str, &src->v.str);
	if (src->type != MOE_V_ARR)
		return 0;
	dst->v.arr.data = NULL;
	esz = src->v.arr.type == MOE_V_STR ? sizeof(struct moe_str) :
	      src->v.arr.type == MOE_V_ARR ? sizeof(struct moe_value) :
	      moe_vtype_size(src->v.arr.type);
	if (n == 0)
		return 0;
	if ((dst->v.arr.data = calloc(n, esz)) == NULL)
		return MOE_ENOMEM;
	for (uint64_t i = 0; i < n; i++) {
		int rc = 0;
		if (src->v.arr.type == MOE_V_STR)
			rc = str_copy((struct moe_str *)dst->v.arr.data + i,
				(const struct moe_str *)src->v.arr.data + i);
		else if (src->v.arr.type == MOE_V_ARR)
			rc = moe_value_copy((struct moe_value *)dst->v.arr.data + i,
				(const struct moe_value *)src->v.arr.data + i);
		if (rc != 0) {
			dst->v.arr.n = i;
			moe_value_release(dst);
			return rc;
		}
	}
	if (src->v.arr.type != MOE_V_STR && src->v.arr.type != MOE_V_ARR)
		memcpy(dst->v.arr.data, src->v.arr.data, n * esz);
	return 0;
}

size_t moe_meta_count(const struct moe_meta *m) { return m->n; }
const char *moe_meta_key(const struct moe_meta *m, size_t i) { return m->e[i].key; }
const struct moe_value *moe_meta_at(const struct moe_meta *m, size_t i) { return &m->e[i].val; }

static struct entry *lookup(const struct moe_meta *m, const char *key)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->e[i].key, key) == 0)
			return &m->e[i];
	return NULL;
}

const struct moe_value *moe_meta_find(const struct moe_meta *m, const char *key)
{
	struct entry *e = m ? lookup(m, key) : NULL;
	return e ? &e->val : NULL;
}

int moe_meta_set(struct moe_meta *m, const char *key, struct moe_value *v)
{
	struct entry *e = lookup(m, key);

	if (e) {
		moe_value_release(&e->val);
		e->val = *v;
		return 0;
	}
	if (m->n == m->cap) {
		size_t cap = m->cap ? 2 * m->cap : 16;
		struct entry *ne = realloc(m->e, cap * sizeof *ne);
		if (ne == NULL)
			return MOE_ENOMEM;
		m->e = ne;
		m->cap = cap;
	}
	if ((m->e[m->n].key = strdup(key)) == NULL)
		return MOE_ENOMEM;
	m->e[m->n++].val = *v;
	return 0;
}

int moe_meta_set_str(struct moe_meta *m, const char *key, const char *s)
{
	struct moe_value v = { .type = MOE_V_STR };
	struct moe_str src = { (char *)s, strlen(s) };
	int rc = str_copy(&v.v.str, &src);

	if (rc == 0 && (rc = moe_meta_set(m, key, &v)) != 0)
		moe_value_release(&v);
	return rc;
}

int moe_meta_set_u32(struct moe_meta *m, const char *key, uint32_t u)
{
	struct moe_value v = { .type = MOE_V_U32, .v.u = u };
	return moe_meta_set(m, key, &v);
}

int moe_meta_set_f32(struct moe_meta *m, const char *key, float f)
{
	struct moe_value v = { .type = MOE_V_F32, .v.f = f };
	return moe_meta_set(m, key, &v);
}

int moe_meta_set_bool(struct moe_meta *m, const char *key, int b)
{
	struct moe_value v = { .type = MOE_V_BOOL, .v.u = b != 0 };
	return moe_meta_set(m, key, &v);
}

int moe_meta_set_array(struct moe_meta *m, const char *key, enum moe_vtype et,
	void *data, uint64_t n)
{
	struct moe_value v = { .type = MOE_V_ARR };
	int rc;

	v.v.arr.type = et;
	v.v.arr.n = n;
	v.v.arr.data = data;
	if ((rc = moe_meta_set(m, key, &v)) != 0)
		moe_value_release(&v);
	return rc;
}

int moe_meta_remove(struct moe_meta *m, const char *key)
{
	struct entry *e = lookup(m, key);

	if (e == NULL)
		return MOE_ENOENT;
	free(e->key);
	moe_value_release(&e->val);
	memmove(e, e + 1, (size_t)(m->e + m->n - e - 1) * sizeof *e);
	m->n--;
	return 0;
}

static int is_uint(enum moe_vtype t)
{
	return t == MOE_V_U8 || t == MOE_V_U16 || t == MOE_V_U32 || t == MOE_V_U64;
}

static int is_sint(enum moe_vtype t)
{
	return t == MOE_V_I8 || t == MOE_V_I16 || t == MOE_V_I32 || t == MOE_V_I64;
}

int moe_meta_get_u64(const struct moe_meta *m, const char *key, uint64_t *out)
{
	const struct moe_value *v = moe_meta_find(m, key);

	if (v == NULL)
		return MOE_ENOENT;
	if (is_uint(v->type))
		*out = v->v.u;
	else if (is_sint(v->type) && v->v.i >= 0)
		*out = (uint64_t)v->v.i;
	else
		return MOE_EFORMAT;
	return 0;
}

int moe_meta_get_f64(const struct moe_meta *m, const char *key, double *out)
{
	const struct moe_value *v = moe_meta_find(m, key);

	if (v == NULL)
		return MOE_ENOENT;
	if (v->type == MOE_V_F32 || v->type == MOE_V_F64)
		*out = v->v.f;
	else if (is_uint(v->type))
		*out = (double)v->v.u;
	else if (is_sint(v->type))
		*out = (double)v->v.i;
	else
		return MOE_EFORMAT;
	return 0;
}

int moe_meta_get_str(const struct moe_meta *m, const char *key, const char **out)
{
	const struct moe_value *v = moe_meta_find(m, key);

	if (v == NULL)
		return MOE_ENOENT;
	if (v->type != MOE_V_STR)
		return MOE_EFORMAT;
	*out = v->v.str.s;
	return 0;
}

int moe_meta_get_bool(const struct moe_meta *m, const char *key, int *out)
{
	const struct moe_value *v = moe_meta_find(m, key);

	if (v == NULL)
		return MOE_ENOENT;
	if (v->type != MOE_V_BOOL)
		return MOE_EFORMAT;
	*out = (int)v->v.u;
	return 0;
}

/* "{general.architecture}.{suffix}" into key; 0 or MOE_ENOENT. */
static int arch_key(const struct moe_meta *m, const char *suffix, char *key, size_t n)
{
	const char *arch;

	if (moe_meta_get_str(m, "general.architecture", &arch) != 0)
		return MOE_ENOENT;
	if ((size_t)snprintf(key, n, "%s.%s", arch, suffix) >= n)
		return MOE_ENOENT;
	return 0;
}

int moe_meta_get_arch_u64(const struct moe_meta *m, const char *suffix, uint64_t *out)
{
	char key[256];

	return arch_key(m, suffix, key, sizeof key) ? MOE_ENOENT : moe_meta_get_u64(m, key, out);
}

int moe_meta_get_arch_f64(const struct moe_meta *m, const char *suffix, double *out)
{
	char key[256];

	return arch_key(m, suffix, key, sizeof key) ? MOE_ENOENT : moe_meta_get_f64(m, key, out);
}

/* One packed array element as a scalar value. */
static struct moe_value elem(enum moe_vtype t, const void *p)
{
	struct moe_value v = { .type = t };
	union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32;
		int32_t i32; float f32; uint64_t u64; int64_t i64; double f64; } x;

	memcpy(&x, p, moe_vtype_size(t));
	switch (t) {
	case MOE_V_U8: case MOE_V_BOOL: v.v.u = x.u8; break;
	case MOE_V_I8: v.v.i = x.i8; break;
	case MOE_V_U16: v.v.u = x.u16; break;
	case MOE_V_I16: v.v.i = x.i16; break;
	case MOE_V_U32: v.v.u = x.u32; break;
	case MOE_V_I32: v.v.i = x.i32; break;
	case MOE_V_F32: v.v.f = x.f32; break;
	case MOE_V_U64: v.v.u = x.u64; break;
	case MOE_V_I64: v.v.i = x.i64; break;
	case MOE_V_F64: v.v.f = x.f64; break;
	default: break;
	}
	return v;
}

static json_t *array_to_json(const struct moe_value *v, size_t max_items)
{
	json_t *a = json_array();
	uint64_t n = v->v.arr.n, shown = max_items && n > max_items ? max_items : n;
	size_t esz = moe_vtype_size(v->v.arr.type);

	for (uint64_t i = 0; a && i < shown; i++) {
		json_t *j;
		if (v->v.arr.type == MOE_V_STR) {
			const struct moe_str *s = (const struct moe_str *)v->v.arr.data + i;
			j = json_stringn_nocheck(s->s, s->len);
		} else if (v->v.arr.type == MOE_V_ARR) {
			j = moe_value_to_json((const struct moe_value *)v->v.arr.data + i,
				max_items);
		} else {
			struct moe_value e = elem(v->v.arr.type,
				(const char *)v->v.arr.data + i * esz);
			j = moe_value_to_json(&e, max_items);
		}
		json_array_append_new(a, j);
	}
	if (a && shown < n) {
		char buf[64];
		snprintf(buf, sizeof buf, "... (%llu more)",
			(unsigned long long)(n - shown));
		json_array_append_new(a, json_string(buf));
	}
	return a;
}

json_t *moe_value_to_json(const struct moe_value *v, size_t max_items)
{
	switch (v->type) {
	case MOE_V_U8: case MOE_V_U16: case MOE_V_U32: case MOE_V_U64:
		return json_integer((json_int_t)v->v.u);
	case MOE_V_I8: case MOE_V_I16: case MOE_V_I32: case MOE_V_I64:
		return json_integer(v->v.i);
	case MOE_V_F32: case MOE_V_F64:
		return json_real(v->v.f);
	case MOE_V_BOOL:
		return json_boolean(v->v.u);
	case MOE_V_STR:
		return json_stringn_nocheck(v->v.str.s, v->v.str.len);
	case MOE_V_ARR:
		return array_to_json(v, max_items);
	default:
		return json_null();
	}
}

static enum moe_vtype vtype_by_name(const char *s)
{
	for (int t = 0; s && t < MOE_V_COUNT; t++)
		if (strcmp(moe_vtype_name((enum moe_vtype)t), s) == 0)
			return (enum moe_vtype)t;
	return MOE_V_COUNT;
}

static json_t *typed_value(const struct moe_value *v);

static json_t *typed_array(const struct moe_value *v)
{
	json_t *a = json_array();
	size_t esz = moe_vtype_size(v->v.arr.type);

	for (uint64_t i = 0; a && i < v->v.arr.n; i++) {
		json_t *e;
		if (v->v.arr.type == MOE_V_ARR) {
			e = typed_value((const struct moe_value *)v->v.arr.data + i);
		} else if (v->v.arr.type == MOE_V_STR) {
			const struct moe_str *s = (const struct moe_str *)v->v.arr.data + i;
			e = json_stringn(s->s, s->len);
		} else {
			struct moe_value x = elem(v->v.arr.type, (const char *)v->v.arr.data + i * esz);
			e = moe_value_to_json(&x, 0);
		}
		if (e == NULL || json_array_append_new(a, e) != 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a ? json_pack("{s:s, s:s, s:o}", "t", "array", "e",
		moe_vtype_name(v->v.arr.type), "v", a) : NULL;
}

static json_t *typed_value(const struct moe_value *v)
{
	json_t *x;

	if (v->type == MOE_V_ARR)
		return typed_array(v);
	if (v->type == MOE_V_U64 && v->v.u > INT64_MAX)
		return NULL;
	x = v->type == MOE_V_STR ? json_stringn(v->v.str.s, v->v.str.len)
		: moe_value_to_json(v, 0);
	return x ? json_pack("{s:s, s:o}", "t", moe_vtype_name(v->type), "v", x) : NULL;
}

int moe_meta_to_typed_json(const struct moe_meta *m, json_t **out)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < m->n; i++) {
		json_t *v = typed_value(&m->e[i].val);
		if (v == NULL || json_object_set_new(v, "k", json_string(m->e[i].key)) != 0 ||
		    json_array_append_new(a, v) != 0) {
			json_decref(a);
			return MOE_EFORMAT;
		}
	}
	*out = a;
	return a ? 0 : MOE_ENOMEM;
}

/* Stores a JSON scalar into packed element slot p of type t. */
static int pack_elem(enum moe_vtype t, json_t *j, void *p)
{
	union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32;
		int32_t i32; float f32; uint64_t u64; int64_t i64; double f64; } x;
	json_int_t i = json_integer_value(j);

	if (t == MOE_V_F32 || t == MOE_V_F64) {
		if (!json_is_number(j))
			return MOE_EFORMAT;
		if (t == MOE_V_F32)
			x.f32 = (float)json_number_value(j);
		else
			x.f64 = json_number_value(j);
	} else if (t == MOE_V_BOOL) {
		if (!json_is_boolean(j))
			return MOE_EFORMAT;
		x.u8 = json_is_true(j);
	} else {
		if (!json_is_integer(j))
			return MOE_EFORMAT;
		switch (t) {
		case MOE_V_U8: x.u8 = (uint8_t)i; break;
		case MOE_V_I8: x.i8 = (int8_t)i; break;
		case MOE_V_U16: x.u16 = (uint16_t)i; break;
		case MOE_V_I16: x.i16 = (int16_t)i; break;
		case MOE_V_U32: x.u32 = (uint32_t)i; break;
		case MOE_V_I32: x.i32 = (int32_t)i; break;
		case MOE_V_U64: x.u64 = (uint64_t)i; break;
		case MOE_V_I64: x.i64 = i; break;
		default: return MOE_EFORMAT;
		}
	}
	memcpy(p, &x, moe_vtype_size(t));
	return 0;
}

static int untyped_value(json_t *j, struct moe_value *v, int depth);

static int untyped_array(json_t *j, struct moe_value *v, int depth)
{
	json_t *a = json_object_get(j, "v");
	enum moe_vtype et = vtype_by_name(json_string_value(json_object_get(j, "e")));
	size_t n = json_array_size(a), esz;

	if (!json_is_array(a) || et == MOE_V_COUNT || depth > 8)
		return MOE_EFORMAT;
	esz = et == MOE_V_STR ? sizeof(struct moe_str) :
	      et == MOE_V_ARR ? sizeof(struct moe_value) : moe_vtype_size(et);
	v->type = MOE_V_ARR;
	v->v.arr.type = et;
	v->v.arr.n = 0;
	if (n && (v->v.arr.data = calloc(n, esz)) == NULL)
		return MOE_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_array_get(a, i);
		void *slot = (char *)v->v.arr.data + i * esz;
		int rc;
		if (et == MOE_V_STR) {
			struct moe_str src = { (char *)json_string_value(e), json_string_length(e) };
			rc = json_is_string(e) ? str_copy(slot, &src) : MOE_EFORMAT;
		} else if (et == MOE_V_ARR) {
			rc = untyped_value(e, slot, depth + 1);
		} else {
			rc = pack_elem(et, e, slot);
		}
		if (rc != 0) {
			if (et == MOE_V_ARR)
				moe_value_release(slot);
			return rc;    /* caller releases v; n counts the done ones */
		}
		v->v.arr.n = i + 1;
	}
	return 0;
}

static int untyped_value(json_t *j, struct moe_value *v, int depth)
{
	enum moe_vtype t = vtype_by_name(json_string_value(json_object_get(j, "t")));
	json_t *x = json_object_get(j, "v");

	memset(v, 0, sizeof *v);
	if (t == MOE_V_ARR)
		return untyped_array(j, v, depth);
	v->type = t;
	if (t == MOE_V_STR) {
		struct moe_str src = { (char *)json_string_value(x), json_string_length(x) };
		return json_is_string(x) ? str_copy(&v->v.str, &src) : MOE_EFORMAT;
	}
	if (t == MOE_V_COUNT)
		return MOE_EFORMAT;
	if (t == MOE_V_F32 || t == MOE_V_F64) {
		if (!json_is_number(x))
			return MOE_EFORMAT;
		v->v.f = t == MOE_V_F32 ? (double)(float)json_number_value(x) : json_number_value(x);
		return 0;
	}
	if (t == MOE_V_BOOL) {
		if (!json_is_boolean(x))
			return MOE_EFORMAT;
		v->v.u = json_is_true(x);
		return 0;
	}
	if (!json_is_integer(x))
		return MOE_EFORMAT;
	if (t == MOE_V_I8 || t == MOE_V_I16 || t == MOE_V_I32 || t == MOE_V_I64)
		v->v.i = json_integer_value(x);
	else
		v->v.u = (uint64_t)json_integer_value(x);
	return 0;
}

int moe_meta_from_typed_json(struct moe_meta *m, json_t *j)
{
	size_t i;
	json_t *e;

	if (!json_is_array(j))
		return MOE_EFORMAT;
	json_array_foreach(j, i, e) {
		const char *k = json_string_value(json_object_get(e, "k"));
		struct moe_value v;
		int rc;
		if (k == NULL)
			return MOE_EFORMAT;
		if ((rc = untyped_value(e, &v, 0)) == 0)
			rc = moe_meta_set(m, k, &v);
		if (rc != 0) {
			moe_value_release(&v);
			return rc;
		}
	}
	return 0;
}
