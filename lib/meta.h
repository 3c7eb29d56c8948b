/* Typed key/value metadata (GGUF KV, safetensors __metadata__) kept in file order. */
#ifndef MOE_META_H
#define MOE_META_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/*
 * Value types use GGUF's numbering so a GGUF round trip keeps every type.
 * A moe_meta owns its keys and values; pointers returned by the getters
 * live until the key is replaced or removed, or the meta is freed.
 */
enum moe_vtype {
	MOE_V_U8 = 0, MOE_V_I8 = 1, MOE_V_U16 = 2, MOE_V_I16 = 3,
	MOE_V_U32 = 4, MOE_V_I32 = 5, MOE_V_F32 = 6, MOE_V_BOOL = 7,
	MOE_V_STR = 8, MOE_V_ARR = 9, MOE_V_U64 = 10, MOE_V_I64 = 11,
	MOE_V_F64 = 12,
	MOE_V_COUNT
};

struct moe_str {
	char *s;     /* NUL-terminated copy; may contain earlier NULs */
	uint64_t len;
};

struct moe_value {
	enum moe_vtype type;
	union {
		uint64_t u;     /* U8..U64, BOOL (0/1) */
		int64_t i;      /* I8..I64 */
		double f;       /* F32 (exactly representable), F64 */
		struct moe_str str;
		struct {
			enum moe_vtype type;  /* element type */
			uint64_t n;
			/* packed native elements for numeric/bool types (size of
			 * moe_vtype_size each), struct moe_str[n] for STR,
			 * struct moe_value[n] for nested ARR */
			void *data;
		} arr;
	} v;
};

struct moe_meta;

int moe_meta_new(struct moe_meta **out);
void moe_meta_free(struct moe_meta *m);

/* Bytes of one packed element (0 for STR and ARR). */
size_t moe_vtype_size(enum moe_vtype t);
/* "u32", "string", "array", ... */
const char *moe_vtype_name(enum moe_vtype t);
/* Frees what v owns (strings, arrays); v itself is not freed. */
void moe_value_release(struct moe_value *v);
/* Deep copy. */
int moe_value_copy(struct moe_value *dst, const struct moe_value *src);

size_t moe_meta_count(const struct moe_meta *m);
const char *moe_meta_key(const struct moe_meta *m, size_t i);
const struct moe_value *moe_meta_at(const struct moe_meta *m, size_t i);
const struct moe_value *moe_meta_find(const struct moe_meta *m, const char *key);

/* Stores v under key, taking ownership of v's contents (replacing any
 * old value in place, so file order is kept). */
int moe_meta_set(struct moe_meta *m, const char *key, struct moe_value *v);
int moe_meta_set_str(struct moe_meta *m, const char *key, const char *s);
int moe_meta_set_u32(struct moe_meta *m, const char *key, uint32_t u);
int moe_meta_set_f32(struct moe_meta *m, const char *key, float f);
int moe_meta_set_bool(struct moe_meta *m, const char *key, int b);
/* Stores an array of n elements of type et, taking ownership of data
 * (freed, with its strings, even on failure). */
int moe_meta_set_array(struct moe_meta *m, const char *key, enum moe_vtype et,
	void *data, uint64_t n);
int moe_meta_remove(struct moe_meta *m, const char *key);

/* Typed reads: 0, MOE_ENOENT if absent, MOE_EFORMAT if the stored type
 * does not convert (any integer type reads as u64 if non-negative). */
int moe_meta_get_u64(const struct moe_meta *m, const char *key, uint64_t *out);
int moe_meta_get_f64(const struct moe_meta *m, const char *key, double *out);
int moe_meta_get_str(const struct moe_meta *m, const char *key, const char **out);
int moe_meta_get_bool(const struct moe_meta *m, const char *key, int *out);

/* GGUF's per-architecture keys: reads "{general.architecture}.{suffix}"
 * like moe_meta_get_u64 / _f64; MOE_ENOENT also when there is no
 * general.architecture. */
int moe_meta_get_arch_u64(const struct moe_meta *m, const char *suffix, uint64_t *out);
int moe_meta_get_arch_f64(const struct moe_meta *m, const char *suffix, double *out);

/* JSON form of a value for reports; arrays longer than max_items are
 * cut (max_items 0 = all) and end with the string "... (N more)". */
json_t *moe_value_to_json(const struct moe_value *v, size_t max_items);

/*
 * Lossless JSON form of a whole meta, for carrying GGUF metadata through
 * formats that only hold strings (safetensors __metadata__): an array of
 * {"k": key, "t": type, "v": value}, arrays as {"t": "array", "e": element
 * type, "v": [...]} with nested arrays encoded the same way. F32 values are
 * stored as their exact double. Strings must be UTF-8.
 */
int moe_meta_to_typed_json(const struct moe_meta *m, json_t **out);
/* Adds every entry of a moe_meta_to_typed_json() array to m; MOE_EFORMAT on
 * anything it did not write. */
int moe_meta_from_typed_json(struct moe_meta *m, json_t *j);

#endif
