/* Test-only writer of torch.save-style zip checkpoints: the pickle opcodes and zip layout torch emits. */
#ifndef TORCHZIP_H
#define TORCHZIP_H

/*
 * No Python here, so the tests build what torch.save writes, byte by byte.
 *
 * Pickle (torch.save's default protocol 2; protocol 4 variant for the
 * newer opcodes), for state dict {name: tensor}:
 *
 *   80 02                               PROTO 2
 *   c "collections\nOrderedDict\n" q    GLOBAL, BINPUT
 *   ) R q                               EMPTY_TUPLE, REDUCE -> OrderedDict()
 *   ( X name q                          MARK (SETITEMS batch), BINUNICODE key
 *     c "torch._utils\n_rebuild_tensor_v2\n" q
 *     ( ( X "storage" q c "torch\nFloatStorage\n" q X key q X "cpu" q K numel t q
 *       Q                               BINPERSID ('storage', type, key, loc, numel)
 *       K off                           storage_offset (BININT1/BININT2/BININT/LONG1)
 *       K K \x86 q  K K \x86 q          size, stride (TUPLE1-3 or MARK..TUPLE)
 *       \x89                            requires_grad = False
 *       h <OrderedDict> ) R q           backward_hooks = OrderedDict()
 *     t q R q                           args tuple, REDUCE -> tensor
 *   u                                   SETITEMS (SETITEM 's' for one item)
 *   } q X "_metadata" ... b             state of the OrderedDict, BUILD
 *   .                                   STOP
 *
 * Globals and repeated strings are memoized and fetched again with BINGET
 * (protocol 4: MEMOIZE, SHORT_BINUNICODE, STACK_GLOBAL, one FRAME).
 *
 * Zip: stored entries "<prefix>/data.pkl", ".format_version" (optional),
 * "byteorder", "data/<key>" in key order, "version"; each local header has
 * a "FB" extra field padding its data to a 64-byte boundary; central
 * directory and end record as any zip. Optionally bit 3 with data
 * descriptors after each entry (sizes unknown in the local header).
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct tz_buf {
	unsigned char *p;
	size_t n, cap;
};

static inline void tz_put(struct tz_buf *b, const void *d, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
	}
	memcpy(b->p + b->n, d, n);
	b->n += n;
}

static inline void tz_u8(struct tz_buf *b, unsigned v) { unsigned char c = (unsigned char)v; tz_put(b, &c, 1); }
static inline void tz_le(struct tz_buf *b, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		tz_u8(b, (unsigned)(v >> (8 * i)) & 0xff);
}

/* ---- pickle ---- */

struct tz_pickler {
	struct tz_buf b;
	int proto;
	char *keys[8192];   /* memoized things: "g:mod.name" or "s:text" */
	int nkeys;
};

static inline void pk_memoize(struct tz_pickler *pk, const char *key)
{
	if (pk->proto >= 4) {
		tz_u8(&pk->b, 0x94);
	} else if (pk->nkeys < 256) {
		tz_u8(&pk->b, 'q');
		tz_u8(&pk->b, (unsigned)pk->nkeys);
	} else {
		tz_u8(&pk->b, 'r');
		tz_le(&pk->b, (uint64_t)pk->nkeys, 4);
	}
	if (pk->nkeys < 8192)
		pk->keys[pk->nkeys++] = key ? strdup(key) : NULL;
}

/* BINGET of a memoized key; 0 if not memoized yet. */
static inline int pk_get(struct tz_pickler *pk, const char *key)
{
	for (int i = 0; i < pk->nkeys; i++)
		if (pk->keys[i] && strcmp(pk->keys[i], key) == 0) {
			if (i < 256) {
				tz_u8(&pk->b, 'h');
				tz_u8(&pk->b, (unsigned)i);
			} else {
				tz_u8(&pk->b, 'j');
				tz_le(&pk->b, (uint64_t)i, 4);
			}
			return 1;
		}
	return 0;
}

static inline void pk_str_raw(struct tz_pickler *pk, const char *s)
{
	size_t n = strlen(s);

	if (pk->proto >= 4 && n < 256) {
		tz_u8(&pk->b, 0x8c);
		tz_u8(&pk->b, (unsigned)n);
	} else {
		tz_u8(&pk->b, 'X');
		tz_le(&pk->b, n, 4);
	}
	tz_put(&pk->b, s, n);
}

/* A string, memoized (repeats become BINGET when share is set). */
static inline void pk_str(struct tz_pickler *pk, const char *s, int share)
{
	char key[600];

	snprintf(key, sizeof key, "s:%s", s);
	if (share && pk_get(pk, key))
		return;
	pk_str_raw(pk, s);
	pk_memoize(pk, share ? key : NULL);
}

static inline void pk_global(struct tz_pickler *pk, const char *mod, const char *name)
{
	char key[600];

	snprintf(key, sizeof key, "g:%s.%s", mod, name);
	if (pk_get(pk, key))
		return;
	if (pk->proto >= 4) {
		pk_str(pk, mod, 0);
		pk_str(pk, name, 0);
		tz_u8(&pk->b, 0x93);
	} else {
		tz_u8(&pk->b, 'c');
		tz_put(&pk->b, mod, strlen(mod));
		tz_u8(&pk->b, '\n');
		tz_put(&pk->b, name, strlen(name));
		tz_u8(&pk->b, '\n');
	}
	pk_memoize(pk, key);
}

/* The int opcodes pickle chooses by magnitude. */
static inline void pk_int(struct tz_pickler *pk, int64_t v)
{
	if (v >= 0 && v < 256) {
		tz_u8(&pk->b, 'K');
		tz_u8(&pk->b, (unsigned)v);
	} else if (v >= 0 && v < 65536) {
		tz_u8(&pk->b, 'M');
		tz_le(&pk->b, (uint64_t)v, 2);
	} else if (v >= INT32_MIN && v <= INT32_MAX) {
		tz_u8(&pk->b, 'J');
		tz_le(&pk->b, (uint64_t)v, 4);
	} else {
		tz_u8(&pk->b, 0x8a);
		tz_u8(&pk->b, 8);
		tz_le(&pk->b, (uint64_t)v, 8);
	}
}

static inline void pk_op(struct tz_pickler *pk, unsigned op) { tz_u8(&pk->b, op); }

static inline void pk_tuple_ints(struct tz_pickler *pk, int n, const int64_t *v)
{
	if (n == 0) {
		pk_op(pk, ')');
		return;
	}
	if (n > 3)
		pk_op(pk, '(');
	for (int i = 0; i < n; i++)
		pk_int(pk, v[i]);
	pk_op(pk, n > 3 ? 't' : 0x84 + (unsigned)n);
	pk_memoize(pk, NULL);
}

static inline void pk_begin(struct tz_pickler *pk, int proto)
{
	memset(pk, 0, sizeof *pk);
	pk->proto = proto;
	pk_op(pk, 0x80);
	pk_op(pk, (unsigned)proto);
	if (proto >= 4) {  /* one FRAME over the rest; length patched in pk_end */
		pk_op(pk, 0x95);
		tz_le(&pk->b, 0, 8);
	}
}

static inline void pk_end(struct tz_pickler *pk)
{
	pk_op(pk, '.');
	if (pk->proto >= 4) {
		uint64_t len = pk->b.n - 11;
		for (int i = 0; i < 8; i++)
			pk->b.p[3 + i] = (unsigned char)(len >> (8 * i));
	}
	for (int i = 0; i < pk->nkeys; i++)
		free(pk->keys[i]);
}

struct tz_tensor {
	const char *name;
	const char *stype;     /* "FloatStorage" ... */
	const char *key;       /* storage key */
	uint64_t numel;        /* of the storage */
	uint64_t offset;       /* storage_offset, elements */
	int ndim;
	int64_t shape[8], stride[8];
	int param;             /* wrap in _rebuild_parameter */
};

static inline void pk_ordered_dict(struct tz_pickler *pk)
{
	pk_global(pk, "collections", "OrderedDict");
	pk_op(pk, ')');
	pk_op(pk, 'R');
	pk_memoize(pk, NULL);
}

static inline void pk_tensor(struct tz_pickler *pk, const struct tz_tensor *t)
{
	if (t->param)
		pk_global(pk, "torch._utils", "_rebuild_parameter");
	pk_global(pk, "torch._utils", "_rebuild_tensor_v2");
	pk_op(pk, '(');
	pk_op(pk, '(');
	pk_str(pk, "storage", 1);
	pk_global(pk, "torch", t->stype);
	pk_str(pk, t->key, 0);
	pk_str(pk, "cpu", 1);
	pk_int(pk, (int64_t)t->numel);
	pk_op(pk, 't');
	pk_memoize(pk, NULL);
	pk_op(pk, 'Q');
	pk_int(pk, (int64_t)t->offset);
	pk_tuple_ints(pk, t->ndim, t->shape);
	pk_tuple_ints(pk, t->ndim, t->stride);
	pk_op(pk, 0x89);
	pk_ordered_dict(pk);
	pk_op(pk, 't');
	pk_memoize(pk, NULL);
	pk_op(pk, 'R');
	pk_memoize(pk, NULL);
	if (t->param) {
		pk_op(pk, 0x88);
		pk_ordered_dict(pk);
		pk_op(pk, 0x87);
		pk_memoize(pk, NULL);
		pk_op(pk, 'R');
		pk_memoize(pk, NULL);
	}
}

/* OrderedDict of tensors with torch's _metadata state; names may not
 * contain '.' here (nesting is built by the caller). */
static inline void pk_state_dict(struct tz_pickler *pk, const struct tz_tensor *t, size_t n)
{
	pk_ordered_dict(pk);
	if (n != 1)
		pk_op(pk, '(');
	for (size_t i = 0; i < n; i++) {
		pk_str(pk, t[i].name, 0);
		pk_tensor(pk, &t[i]);
	}
	pk_op(pk, n != 1 ? 'u' : 's');
	/* state = {'_metadata': OrderedDict({'': {'version': 1}})} */
	pk_op(pk, '}');
	pk_memoize(pk, NULL);
	pk_str(pk, "_metadata", 0);
	pk_ordered_dict(pk);
	pk_str(pk, "", 0);
	pk_op(pk, '}');
	pk_memoize(pk, NULL);
	pk_str(pk, "version", 1);
	pk_int(pk, 1);
	pk_op(pk, 's');
	pk_op(pk, 's');
	pk_op(pk, 's');
	pk_op(pk, 'b');
}

/* ---- zip ---- */

static inline uint32_t tz_crc32(const unsigned char *p, size_t n)
{
	uint32_t c = 0xffffffffu;

	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
	}
	return ~c;
}

struct tz_member {
	const char *name;
	const void *data;
	size_t n;
};

static inline void tz_zip(struct tz_buf *z, const struct tz_member *m, size_t n, int descriptor)
{
	size_t *ofs = calloc(n ? n : 1, sizeof *ofs), cd;

	for (size_t i = 0; i < n; i++) {
		size_t nl = strlen(m[i].name), pad;
		uint32_t crc = tz_crc32(m[i].data, m[i].n);
		ofs[i] = z->n;
		pad = (64 - (z->n + 30 + nl + 4) % 64) % 64;
		tz_le(z, 0x04034b50, 4);
		tz_le(z, 20, 2);
		tz_le(z, descriptor ? 8 : 0, 2);
		tz_le(z, 0, 2);              /* stored */
		tz_le(z, 0, 4);              /* time, date */
		tz_le(z, descriptor ? 0 : crc, 4);
		tz_le(z, descriptor ? 0 : m[i].n, 4);
		tz_le(z, descriptor ? 0 : m[i].n, 4);
		tz_le(z, nl, 2);
		tz_le(z, 4 + pad, 2);
		tz_put(z, m[i].name, nl);
		tz_le(z, 0x4246, 2);         /* "FB" padding field */
		tz_le(z, pad, 2);
		for (size_t k = 0; k < pad; k++)
			tz_u8(z, 'Z');
		tz_put(z, m[i].data, m[i].n);
		if (descriptor) {
			tz_le(z, 0x08074b50, 4);
			tz_le(z, crc, 4);
			tz_le(z, m[i].n, 4);
			tz_le(z, m[i].n, 4);
		}
	}
	cd = z->n;
	for (size_t i = 0; i < n; i++) {
		size_t nl = strlen(m[i].name);
		tz_le(z, 0x02014b50, 4);
		tz_le(z, 20, 2);
		tz_le(z, 20, 2);
		tz_le(z, descriptor ? 8 : 0, 2);
		tz_le(z, 0, 2);
		tz_le(z, 0, 4);
		tz_le(z, tz_crc32(m[i].data, m[i].n), 4);
		tz_le(z, m[i].n, 4);
		tz_le(z, m[i].n, 4);
		tz_le(z, nl, 2);
		tz_le(z, 0, 2);
		tz_le(z, 0, 2);
		tz_le(z, 0, 2);
		tz_le(z, 0, 2);
		tz_le(z, 0, 4);
		tz_le(z, ofs[i], 4);
		tz_put(z, m[i].name, nl);
	}
	tz_le(z, 0x06054b50, 4);
	tz_le(z, 0, 4);
	tz_le(z, n, 2);
	tz_le(z, n, 2);
	tz_le(z, z->n - cd - 0, 4);
	tz_le(z, cd, 4);
	tz_le(z, 0, 2);
	free(ofs);
}

/* A whole checkpoint: pickle bytes plus storages (key i = keys[i]). */
struct tz_storage {
	const char *key;
	const void *data;
	size_t n;
};

static inline void tz_checkpoint(struct tz_buf *z, const char *prefix, const struct tz_buf *pkl,
	const struct tz_storage *st, size_t nst, int format_version, int descriptor)
{
	struct tz_member m[64];
	char names[64][128];
	size_t n = 0;

	snprintf(names[n], sizeof names[n], "%s/data.pkl", prefix);
	m[n] = (struct tz_member){ names[n], pkl->p, pkl->n };
	n++;
	if (format_version) {
		snprintf(names[n], sizeof names[n], "%s/.format_version", prefix);
		m[n] = (struct tz_member){ names[n], "1", 1 };
		n++;
	}
	snprintf(names[n], sizeof names[n], "%s/byteorder", prefix);
	m[n] = (struct tz_member){ names[n], "little", 6 };
	n++;
	for (size_t i = 0; i < nst && n < 62; i++) {
		snprintf(names[n], sizeof names[n], "%s/data/%s", prefix, st[i].key);
		m[n] = (struct tz_member){ names[n], st[i].data, st[i].n };
		n++;
	}
	snprintf(names[n], sizeof names[n], "%s/version", prefix);
	m[n] = (struct tz_member){ names[n], "3\n", 2 };
	n++;
	tz_zip(z, m, n, descriptor);
}

#endif
