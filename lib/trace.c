/* Routing trace reader and writer: JSON Lines, binary stream, CSV import. */
/*
 * Binary encoding, version 1 (all integers little-endian, no padding):
 *
 *   offset  size  field
 *   0       8     magic "MOETRACE"
 *   8       4     u32 version (1)
 *   12      4     u32 header_bytes: total header size including these
 *                 fields, 46 + strings + 4*n_moe .. 1 MiB
 *   16      4     u32 n_layers   (1 .. 4096)
 *   20      4     u32 n_moe      (1 .. n_layers)
 *   24      4     u32 n_experts  (1 .. 65535)
 *   28      4     u32 top_k      (1 .. min(256, n_experts))
 *   32      4     u32 flags      (1 probs, 2 lse, 4 text; other bits 0)
 *   36      4     u32 record_bytes: fixed record size, must equal
 *                 12 + n_moe*k*6 + (probs ? n_moe*E*4) + (lse ? n_moe*4)
 *   40      2+n   u16 length + model name (UTF-8, no NUL)
 *           2+n   u16 length + gating function name
 *           2+n   u16 length + vocabulary reference
 *           4*m   u32 moe_layers[n_moe], strictly increasing, < n_layers
 *
 * Then one record per token until the end of the stream (no count, so a
 * writer can stream):
 *
 *   u32 seq, u32 pos, i32 token (-1 none)
 *   u16 experts[n_moe][k]
 *   f32 weights[n_moe][k]
 *   f32 probs[n_moe][E]          if flags & 1
 *   f32 lse[n_moe]               if flags & 2
 *   u16 text_len + text bytes    if flags & 4 (0 = no text)
 *
 * Without text the records are fixed-size, so a shard of a big trace can
 * be cut at any multiple of record_bytes after the header.
 * JSON Lines: see moe-trace(5); line 1 is the header object, then one
 * object per token with per-MoE-layer arrays "experts", "weights" and
 * optional "probs", "lse".
 */
#include "trace.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

#define MAGIC "MOETRACE"
#define BIN_FIXED 40
#define MAX_HEADER_BYTES (1u << 20)
#define MAX_LINE (256u << 20)
#define CSV_MAX_ROWS (1u << 28)

static int utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned c = s[i], need, min, cp;
		if (c < 0x80) {
			if (c == 0)
				return 0;
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0)
			need = 1, min = 0x80, cp = c & 0x1f;
		else if ((c & 0xf0) == 0xe0)
			need = 2, min = 0x800, cp = c & 0x0f;
		else if ((c & 0xf8) == 0xf0)
			need = 3, min = 0x10000, cp = c & 0x07;
		else
			return 0;
		if (n - i <= need)
			return 0;
		for (unsigned j = 1; j <= need; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += need + 1;
	}
	return 1;
}

static int str_ok(const char *s)
{
	return s != NULL && strlen(s) <= MOE_TRACE_MAX_NAME &&
		utf8_valid((const unsigned char *)s, strlen(s));
}

int moe_trace_header_check(const struct moe_trace_header *h, char *msg, size_t len)
{
	const char *why = NULL;

	if (h->n_layers < 1 || h->n_layers > MOE_TRACE_MAX_LAYERS)
		why = "layer count out of range (1 to 4096)";
	else if (h->n_moe < 1 || h->n_moe > h->n_layers)
		why = "MoE layer count out of range";
	else if (h->n_experts < 1 || h->n_experts > MOE_TRACE_MAX_EXPERTS)
		why = "expert count out of range (1 to 65535)";
	else if (h->top_k < 1 || h->top_k > h->n_experts || h->top_k > MOE_TRACE_MAX_TOPK)
		why = "top-k out of range (1 to the expert count, at most 256)";
	else if ((uint64_t)h->n_moe * h->n_experts > MOE_TRACE_MAX_PAIRS)
		why = "too many layer-expert pairs (MoE layers times experts above 4194304)";
	else if (h->flags & ~(unsigned)(MOE_TRACE_PROBS | MOE_TRACE_LSE | MOE_TRACE_TEXT))
		why = "unknown flags";
	else if (!str_ok(h->model) || !str_ok(h->gating) || !str_ok(h->vocab))
		why = "model, gating or vocabulary name is missing, too long or not UTF-8";
	if (why == NULL && h->moe_layers == NULL)
		why = "MoE layer list missing";
	for (uint32_t i = 0; why == NULL && i < h->n_moe; i++)
		if (h->moe_layers[i] >= h->n_layers ||
		    (i > 0 && h->moe_layers[i] <= h->moe_layers[i - 1]))
			why = "MoE layer list not increasing or out of range";
	if (why == NULL)
		return 0;
	snprintf(msg, len, "%s", why);
	return MOE_EFORMAT;
}

int moe_trace_token_check(const struct moe_trace_header *h,
	const struct moe_trace_token *t, char *msg, size_t len)
{
	uint32_t k = h->top_k, E = h->n_experts;

	for (uint32_t l = 0; l < h->n_moe; l++) {
		const uint16_t *e = t->experts + (size_t)l * k;
		const float *w = t->weights + (size_t)l * k;
		for (uint32_t j = 0; j < k; j++) {
			if (e[j] >= E) {
				snprintf(msg, len, "layer %u: expert %u out of range (%u experts)",
					h->moe_layers[l], e[j], E);
				return MOE_EFORMAT;
			}
			if (!isfinite(w[j])) {
				snprintf(msg, len, "layer %u: weight %u is not finite",
					h->moe_layers[l], j + 1);
				return MOE_EFORMAT;
			}
			for (uint32_t i = 0; i < j; i++)
				if (e[i] == e[j]) {
					snprintf(msg, len, "layer %u: expert %u chosen twice",
						h->moe_layers[l], e[j]);
					return MOE_EFORMAT;
				}
		}
		if (t->probs) {
			const float *p = t->probs + (size_t)l * E;
			for (uint32_t j = 0; j < E; j++)
				if (!(p[j] >= 0 && p[j] <= 1)) {
					snprintf(msg, len, "layer %u: probability of expert %u is not in [0, 1]",
						h->moe_layers[l], j);
					return MOE_EFORMAT;
				}
		}
		if (t->lse && !(fabsf(t->lse[l]) <= MOE_TRACE_MAX_LSE)) {
			snprintf(msg, len, "layer %u: log-sum-exp is not finite or beyond 1e6", h->moe_layers[l]);
			return MOE_EFORMAT;
		}
	}
	if (!(h->flags & MOE_TRACE_PROBS) != !t->probs ||
	    !(h->flags & MOE_TRACE_LSE) != !t->lse) {
		snprintf(msg, len, "probabilities or log-sum-exp present but not declared in the header, or missing");
		return MOE_EFORMAT;
	}
	if (t->text) {
		size_t n = strlen(t->text);
		if (!(h->flags & MOE_TRACE_TEXT) || n > MOE_TRACE_MAX_TEXT ||
		    !utf8_valid((const unsigned char *)t->text, n)) {
			snprintf(msg, len, "token text undeclared in the header, too long or not UTF-8");
			return MOE_EFORMAT;
		}
	}
	return 0;
}

uint64_t moe_trace_record_bytes(const struct moe_trace_header *h)
{
	uint64_t n = 12 + (uint64_t)h->n_moe * h->top_k * 6;

	if (h->flags & MOE_TRACE_PROBS)
		n += (uint64_t)h->n_moe * h->n_experts * 4;
	if (h->flags & MOE_TRACE_LSE)
		n += (uint64_t)h->n_moe * 4;
	return n;
}

/* ---- little-endian helpers ---- */

static uint32_t rd32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t rd16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static void wr32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

static void wr16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HOST_LE 1
#else
#define HOST_LE 0
#endif

static void get_u16s(uint16_t *dst, const unsigned char *src, size_t n)
{
	if (HOST_LE) {
		memcpy(dst, src, n * 2);
		return;
	}
	for (size_t i = 0; i < n; i++)
		dst[i] = rd16(src + 2 * i);
}

static void get_f32s(float *dst, const unsigned char *src, size_t n)
{
	if (HOST_LE) {
		memcpy(dst, src, n * 4);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		uint32_t u = rd32(src + 4 * i);
		memcpy(dst + i, &u, 4);
	}
}

static void put_u16s(unsigned char *dst, const uint16_t *src, size_t n)
{
	if (HOST_LE) {
		memcpy(dst, src, n * 2);
		return;
	}
	for (size_t i = 0; i < n; i++)
		wr16(dst + 2 * i, src[i]);
}

static void put_f32s(unsigned char *dst, const float *src, size_t n)
{
	if (HOST_LE) {
		memcpy(dst, src, n * 4);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		uint32_t u;
		memcpy(&u, src + i, 4);
		wr32(dst + 4 * i, u);
	}
}

/* ---- reader ---- */

struct csv_row {
	uint64_t token;
	uint64_t line;
	uint32_t layer;
	uint32_t expert;
	float weight;
};

struct moe_trace_reader {
	struct moe_input *in;
	struct moe_error err;
	enum moe_trace_format fmt;
	struct moe_trace_header h;
	uint32_t *layers;           /* (n_moe) owned copy for h.moe_layers */
	char *model, *gating, *vocab;
	struct moe_trace_token t;
	uint16_t *experts;          /* (n_moe, k) */
	float *weights;             /* (n_moe, k) */
	float *probs;               /* (n_moe, E) */
	float *lse;                 /* (n_moe) */
	char *text;                 /* MOE_TRACE_MAX_TEXT + 1 */
	unsigned char *rec;         /* binary record buffer */
	uint64_t rec_bytes;
	char *line;                 /* JSONL/CSV line buffer */
	size_t line_cap;
	uint64_t lineno;            /* JSONL/CSV line of the last token */
	uint64_t count;
	struct csv_row *rows;       /* CSV: all rows, grouped by token */
	size_t n_rows, row_next;
	int32_t *layer_index;       /* CSV: model layer -> MoE index or -1 */
	int csv_weights;
};

static int rfail(struct moe_trace_reader *r, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int rfail(struct moe_trace_reader *r, int code, const char *fmt, ...)
{
	char buf[sizeof r->err.msg];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	return moe_error_set(&r->err, code, "%s", buf);
}

/* Where the current token came from, for messages. */
static void where(const struct moe_trace_reader *r, char *buf, size_t n)
{
	if (r->fmt == MOE_TRACE_BIN)
		snprintf(buf, n, "record %llu", (unsigned long long)r->count + 1);
	else
		snprintf(buf, n, "line %llu", (unsigned long long)r->lineno);
}

static int alloc_token(struct moe_trace_reader *r)
{
	const struct moe_trace_header *h = &r->h;
	size_t nk = (size_t)h->n_moe * h->top_k;

	r->experts = malloc(nk * sizeof *r->experts);
	r->weights = malloc(nk * sizeof *r->weights);
	r->lse = malloc(h->n_moe * sizeof *r->lse);
	r->text = malloc(MOE_TRACE_MAX_TEXT + 1);
	if (h->flags & MOE_TRACE_PROBS)
		r->probs = malloc((size_t)h->n_moe * h->n_experts * sizeof *r->probs);
	if (!r->experts || !r->weights || !r->lse || !r->text ||
	    ((h->flags & MOE_TRACE_PROBS) && !r->probs))
		return rfail(r, MOE_ENOMEM, "out of memory");
	r->t.experts = r->experts;
	r->t.weights = r->weights;
	return 0;
}

/* Reads one line (without the newline) into r->line; 1, 0 at end, or < 0. */
static int read_line(struct moe_trace_reader *r, size_t *len)
{
	size_t n = 0;

	for (;;) {
		const void *p;
		size_t got;
		int rc = moe_input_peek(r->in, 4096, &p, &got);
		if (rc != 0)
			return rfail(r, rc, "%s", moe_input_errstr(r->in));
		if (got == 0) {
			if (n == 0)
				return 0;
			break;
		}
		const char *nl = memchr(p, '\n', got);
		size_t take = nl ? (size_t)(nl - (const char *)p) : got;
		if (n + take + 1 > MAX_LINE)
			return rfail(r, MOE_ERANGE, "line %llu: longer than %u bytes",
				(unsigned long long)r->lineno + 1, MAX_LINE);
		if (n + take + 1 > r->line_cap) {
			size_t cap = r->line_cap ? r->line_cap : 4096;
			while (cap < n + take + 1)
				cap *= 2;
			char *nb = realloc(r->line, cap);
			if (nb == NULL)
				return rfail(r, MOE_ENOMEM, "out of memory");
			r->line = nb;
			r->line_cap = cap;
		}
		memcpy(r->line + n, p, take);
		n += take;
		moe_input_skip(r->in, take + (nl != NULL));
		if (nl)
			break;
	}
	r->line[n] = '\0';
	if (n > 0 && r->line[n - 1] == '\r')
		r->line[--n] = '\0';
	r->lineno++;
	*len = n;
	return 1;
}

/* ---- binary ---- */

static int bin_string(struct moe_trace_reader *r, const unsigned char *b,
	size_t n, size_t *off, char **out)
{
	size_t len;

	if (n - *off < 2)
		return rfail(r, MOE_EFORMAT, "binary header: truncated strings");
	len = rd16(b + *off);
	*off += 2;
	if (n - *off < len)
		return rfail(r, MOE_EFORMAT, "binary header: string of %zu bytes overruns the header", len);
	if ((*out = malloc(len + 1)) == NULL)
		return rfail(r, MOE_ENOMEM, "out of memory");
	memcpy(*out, b + *off, len);
	(*out)[len] = '\0';
	if (strlen(*out) != len)
		return rfail(r, MOE_EFORMAT, "binary header: string contains NUL");
	*off += len;
	return 0;
}

static int bin_header(struct moe_trace_reader *r)
{
	unsigned char fixed[BIN_FIXED], *rest = NULL;
	uint32_t version, hbytes;
	size_t off = 0, n;
	int rc;
	char msg[256];

	if ((rc = moe_input_read(r->in, fixed, sizeof fixed)) != 0)
		return rfail(r, rc, "binary header: truncated");
	version = rd32(fixed + 8);
	if (version != MOE_TRACE_VERSION)
		return rfail(r, MOE_EUNSUP, "trace version %u is not supported (this reader knows version %u)",
			version, MOE_TRACE_VERSION);
	hbytes = rd32(fixed + 12);
	r->h.n_layers = rd32(fixed + 16);
	r->h.n_moe = rd32(fixed + 20);
	r->h.n_experts = rd32(fixed + 24);
	r->h.top_k = rd32(fixed + 28);
	r->h.flags = rd32(fixed + 32);
	if (hbytes < BIN_FIXED + 6 || hbytes > MAX_HEADER_BYTES)
		return rfail(r, MOE_EFORMAT, "binary header: size %u out of range", hbytes);
	if (r->h.n_moe < 1 || r->h.n_moe > MOE_TRACE_MAX_LAYERS)
		return rfail(r, MOE_EFORMAT, "binary header: MoE layer count %u out of range", r->h.n_moe);
	n = hbytes - BIN_FIXED;
	if ((rest = malloc(n)) == NULL)
		return rfail(r, MOE_ENOMEM, "out of memory");
	if ((rc = moe_input_read(r->in, rest, n)) != 0) {
		rc = rfail(r, rc, "binary header: truncated");
		goto out;
	}
	if ((rc = bin_string(r, rest, n, &off, &r->model)) != 0 ||
	    (rc = bin_string(r, rest, n, &off, &r->gating)) != 0 ||
	    (rc = bin_string(r, rest, n, &off, &r->vocab)) != 0)
		goto out;
	if (n - off != (size_t)r->h.n_moe * 4) {
		rc = rfail(r, MOE_EFORMAT, "binary header: layer list has %zu bytes, expected %zu",
			n - off, (size_t)r->h.n_moe * 4);
		goto out;
	}
	if ((r->layers = malloc(r->h.n_moe * sizeof *r->layers)) == NULL) {
		rc = rfail(r, MOE_ENOMEM, "out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < r->h.n_moe; i++)
		r->layers[i] = rd32(rest + off + 4 * i);
	r->h.moe_layers = r->layers;
	r->h.model = r->model;
	r->h.gating = r->gating;
	r->h.vocab = r->vocab;
	if (moe_trace_header_check(&r->h, msg, sizeof msg) != 0) {
		rc = rfail(r, MOE_EFORMAT, "header: %s", msg);
		goto out;
	}
	r->rec_bytes = moe_trace_record_bytes(&r->h);
	if (rd32(fixed + 36) != r->rec_bytes) {
		rc = rfail(r, MOE_EFORMAT, "header: record size %u does not match the shape (%llu)",
			rd32(fixed + 36), (unsigned long long)r->rec_bytes);
		goto out;
	}
	if ((r->rec = malloc(r->rec_bytes)) == NULL)
		rc = rfail(r, MOE_ENOMEM, "out of memory");
out:
	free(rest);
	return rc;
}

/* Reads up to n bytes; returns how many (short only at the end). */
static int read_full(struct moe_trace_reader *r, void *buf, size_t n, size_t *got)
{
	*got = 0;
	while (*got < n) {
		ssize_t k = moe_input_read_some(r->in, (char *)buf + *got, n - *got);
		if (k < 0)
			return rfail(r, (int)k, "%s", moe_input_errstr(r->in));
		if (k == 0)
			break;
		*got += (size_t)k;
	}
	return 0;
}

static int bin_token(struct moe_trace_reader *r)
{
	const struct moe_trace_header *h = &r->h;
	size_t nk = (size_t)h->n_moe * h->top_k, got;
	const unsigned char *p = r->rec;
	int rc;

	if ((rc = read_full(r, r->rec, r->rec_bytes, &got)) != 0)
		return rc;
	if (got == 0)
		return 0;
	if (got < r->rec_bytes)
		return rfail(r, MOE_ETRUNC, "record %llu: truncated (%zu of %llu bytes)",
			(unsigned long long)r->count + 1, got, (unsigned long long)r->rec_bytes);
	r->t.seq = rd32(p);
	r->t.pos = rd32(p + 4);
	r->t.token = (int32_t)rd32(p + 8);
	p += 12;
	get_u16s(r->experts, p, nk);
	p += nk * 2;
	get_f32s(r->weights, p, nk);
	p += nk * 4;
	r->t.probs = NULL;
	r->t.lse = NULL;
	if (h->flags & MOE_TRACE_PROBS) {
		get_f32s(r->probs, p, (size_t)h->n_moe * h->n_experts);
		p += (size_t)h->n_moe * h->n_experts * 4;
		r->t.probs = r->probs;
	}
	if (h->flags & MOE_TRACE_LSE) {
		get_f32s(r->lse, p, h->n_moe);
		r->t.lse = r->lse;
	}
	r->t.text = NULL;
	if (h->flags & MOE_TRACE_TEXT) {
		unsigned char lb[2];
		size_t tl;
		if ((rc = read_full(r, lb, 2, &got)) != 0)
			return rc;
		if (got < 2)
			return rfail(r, MOE_ETRUNC, "record %llu: truncated text length",
				(unsigned long long)r->count + 1);
		tl = rd16(lb);
		if ((rc = read_full(r, r->text, tl, &got)) != 0)
			return rc;
		if (got < tl)
			return rfail(r, MOE_ETRUNC, "record %llu: truncated text",
				(unsigned long long)r->count + 1);
		r->text[tl] = '\0';
		if (tl > 0)
			r->t.text = r->text;
		if (strlen(r->text) != tl)
			return rfail(r, MOE_EFORMAT, "record %llu: text contains NUL",
				(unsigned long long)r->count + 1);
	}
	if (r->t.token < -1)
		return rfail(r, MOE_EFORMAT, "record %llu: token id %d is negative",
			(unsigned long long)r->count + 1, r->t.token);
	return 1;
}

/* ---- JSON Lines ---- */

static int json_u32(json_t *o, const char *key, uint32_t max, int required, uint32_t *out)
{
	json_t *v = json_object_get(o, key);

	if (v == NULL)
		return required ? -1 : 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > (json_int_t)max)
		return -1;
	*out = (uint32_t)json_integer_value(v);
	return 0;
}

static int json_str(struct moe_trace_reader *r, json_t *o, const char *key, char **out)
{
	json_t *v = json_object_get(o, key);
	const char *s = v == NULL ? "" : json_string_value(v);

	if (s == NULL)
		return rfail(r, MOE_EFORMAT, "line 1: header field \"%s\" is not a string", key);
	if ((*out = strdup(s)) == NULL)
		return rfail(r, MOE_ENOMEM, "out of memory");
	return 0;
}

static int json_flag(json_t *o, const char *key, unsigned bit, unsigned *flags)
{
	json_t *v = json_object_get(o, key);

	if (v == NULL)
		return 0;
	if (!json_is_boolean(v))
		return -1;
	if (json_is_true(v))
		*flags |= bit;
	return 0;
}

static int jsonl_header(struct moe_trace_reader *r)
{
	json_error_t je;
	json_t *o, *v, *ls;
	size_t len;
	int rc;
	char msg[256];

	if ((rc = read_line(r, &len)) <= 0)
		return rc < 0 ? rc : rfail(r, MOE_ETRUNC, "empty input (no trace header)");
	o = json_loadb(r->line, len, JSON_REJECT_DUPLICATES, &je);
	if (o == NULL || !json_is_object(o)) {
		json_decref(o);
		return rfail(r, MOE_EFORMAT, "line 1: %s%s", o ? "not a JSON object" : "invalid JSON: ",
			o ? "" : je.text);
	}
	v = json_object_get(o, "format");
	if (v == NULL || !json_is_string(v) || strcmp(json_string_value(v), "moe-trace") != 0) {
		rc = rfail(r, MOE_EFORMAT, "line 1: missing trace header (\"format\": \"moe-trace\")");
		goto out;
	}
	v = json_object_get(o, "version");
	if (!json_is_integer(v) || json_integer_value(v) < 1) {
		rc = rfail(r, MOE_EFORMAT, "line 1: header has no valid \"version\"");
		goto out;
	}
	if (json_integer_value(v) != MOE_TRACE_VERSION) {
		rc = rfail(r, MOE_EUNSUP, "trace version %lld is not supported (this reader knows version %d)",
			(long long)json_integer_value(v), MOE_TRACE_VERSION);
		goto out;
	}
	if (json_u32(o, "n_layers", MOE_TRACE_MAX_LAYERS, 1, &r->h.n_layers) ||
	    json_u32(o, "n_experts", MOE_TRACE_MAX_EXPERTS, 1, &r->h.n_experts) ||
	    json_u32(o, "top_k", MOE_TRACE_MAX_TOPK, 1, &r->h.top_k) ||
	    json_flag(o, "probs", MOE_TRACE_PROBS, &r->h.flags) ||
	    json_flag(o, "lse", MOE_TRACE_LSE, &r->h.flags) ||
	    json_flag(o, "text", MOE_TRACE_TEXT, &r->h.flags)) {
		rc = rfail(r, MOE_EFORMAT, "line 1: header needs whole numbers n_layers, n_experts, top_k in range and boolean probs, lse, text");
		goto out;
	}
	ls = json_object_get(o, "moe_layers");
	if (!json_is_array(ls) || json_array_size(ls) < 1 ||
	    json_array_size(ls) > MOE_TRACE_MAX_LAYERS) {
		rc = rfail(r, MOE_EFORMAT, "line 1: header needs a non-empty \"moe_layers\" array");
		goto out;
	}
	r->h.n_moe = (uint32_t)json_array_size(ls);
	if ((r->layers = malloc(r->h.n_moe * sizeof *r->layers)) == NULL) {
		rc = rfail(r, MOE_ENOMEM, "out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < r->h.n_moe; i++) {
		json_t *e = json_array_get(ls, i);
		if (!json_is_integer(e) || json_integer_value(e) < 0 ||
		    json_integer_value(e) >= MOE_TRACE_MAX_LAYERS) {
			rc = rfail(r, MOE_EFORMAT, "line 1: \"moe_layers\" entry %u is not a layer index", i);
			goto out;
		}
		r->layers[i] = (uint32_t)json_integer_value(e);
	}
	if ((rc = json_str(r, o, "model", &r->model)) != 0 ||
	    (rc = json_str(r, o, "gating", &r->gating)) != 0 ||
	    (rc = json_str(r, o, "vocab", &r->vocab)) != 0)
		goto out;
	r->h.moe_layers = r->layers;
	r->h.model = r->model;
	r->h.gating = r->gating;
	r->h.vocab = r->vocab;
	if (moe_trace_header_check(&r->h, msg, sizeof msg) != 0)
		rc = rfail(r, MOE_EFORMAT, "line 1: %s", msg);
out:
	json_decref(o);
	return rc;
}

/* Fills n_moe rows of `want` numbers from a JSON array of arrays. */
static int json_matrix(struct moe_trace_reader *r, json_t *a, const char *key,
	size_t want, uint16_t *ids, float *vals, uint32_t max_id)
{
	if (!json_is_array(a) || json_array_size(a) != r->h.n_moe)
		return rfail(r, MOE_EFORMAT, "line %llu: \"%s\" must be an array of %u MoE layers",
			(unsigned long long)r->lineno, key, r->h.n_moe);
	for (uint32_t l = 0; l < r->h.n_moe; l++) {
		json_t *row = json_array_get(a, l);
		if (!json_is_array(row) || json_array_size(row) != want)
			return rfail(r, MOE_EFORMAT, "line %llu: layer %u: \"%s\" has %zu entries, expected %zu",
				(unsigned long long)r->lineno, r->h.moe_layers[l], key,
				json_is_array(row) ? json_array_size(row) : 0, want);
		for (size_t j = 0; j < want; j++) {
			json_t *e = json_array_get(row, j);
			if (ids) {
				if (!json_is_integer(e) || json_integer_value(e) < 0)
					return rfail(r, MOE_EFORMAT, "line %llu: layer %u: expert id %zu is not a whole number",
						(unsigned long long)r->lineno, r->h.moe_layers[l], j + 1);
				if (json_integer_value(e) >= max_id)
					return rfail(r, MOE_EFORMAT, "line %llu: layer %u: expert %lld out of range (%u experts)",
						(unsigned long long)r->lineno, r->h.moe_layers[l],
						(long long)json_integer_value(e), max_id);
				ids[l * want + j] = (uint16_t)json_integer_value(e);
			} else {
				if (!json_is_number(e))
					return rfail(r, MOE_EFORMAT, "line %llu: layer %u: \"%s\" entry %zu is not a number",
						(unsigned long long)r->lineno, r->h.moe_layers[l], key, j + 1);
				vals[l * want + j] = (float)json_number_value(e);
			}
		}
	}
	return 0;
}

static int jsonl_fields(struct moe_trace_reader *r, json_t *o)
{
	const struct moe_trace_header *h = &r->h;
	uint32_t tok = 0;
	json_t *v;
	int rc;

	if (json_u32(o, "seq", UINT32_MAX, 1, &r->t.seq) ||
	    json_u32(o, "pos", UINT32_MAX, 1, &r->t.pos) ||
	    json_u32(o, "token", INT32_MAX, 0, &tok))
		return rfail(r, MOE_EFORMAT, "line %llu: \"seq\", \"pos\" (and \"token\") must be whole numbers",
			(unsigned long long)r->lineno);
	r->t.token = json_object_get(o, "token") ? (int32_t)tok : -1;
	if ((rc = json_matrix(r, json_object_get(o, "experts"), "experts", h->top_k,
	    r->experts, NULL, h->n_experts)) != 0 ||
	    (rc = json_matrix(r, json_object_get(o, "weights"), "weights", h->top_k,
	    NULL, r->weights, 0)) != 0)
		return rc;
	r->t.probs = NULL;
	if ((v = json_object_get(o, "probs")) != NULL || (h->flags & MOE_TRACE_PROBS)) {
		if (!(h->flags & MOE_TRACE_PROBS))
			return rfail(r, MOE_EFORMAT, "line %llu: \"probs\" present but the header has \"probs\": false",
				(unsigned long long)r->lineno);
		if ((rc = json_matrix(r, v, "probs", h->n_experts, NULL, r->probs, 0)) != 0)
			return rc;
		r->t.probs = r->probs;
	}
	r->t.lse = NULL;
	if ((v = json_object_get(o, "lse")) != NULL || (h->flags & MOE_TRACE_LSE)) {
		if (!(h->flags & MOE_TRACE_LSE) || !json_is_array(v) || json_array_size(v) != h->n_moe)
			return rfail(r, MOE_EFORMAT, "line %llu: \"lse\" must be declared in the header and have %u numbers",
				(unsigned long long)r->lineno, h->n_moe);
		for (uint32_t l = 0; l < h->n_moe; l++) {
			if (!json_is_number(json_array_get(v, l)))
				return rfail(r, MOE_EFORMAT, "line %llu: \"lse\" entry %u is not a number",
					(unsigned long long)r->lineno, l + 1);
			r->lse[l] = (float)json_number_value(json_array_get(v, l));
		}
		r->t.lse = r->lse;
	}
	r->t.text = NULL;
	if ((v = json_object_get(o, "text")) != NULL) {
		if (!json_is_string(v) || json_string_length(v) > MOE_TRACE_MAX_TEXT)
			return rfail(r, MOE_EFORMAT, "line %llu: \"text\" must be a string of at most %u bytes",
				(unsigned long long)r->lineno, MOE_TRACE_MAX_TEXT);
		memcpy(r->text, json_string_value(v), json_string_length(v) + 1);
		if (json_string_length(v) > 0)
			r->t.text = r->text;
	}
	return 1;
}

/*
 * Fast path for token lines: a strict scanner for the plain form writers
 * produce (known keys, no escapes, JSON numbers). It fills the same fields
 * jansson would; anything it is unsure of (escapes, unknown or repeated
 * keys, bad counts, ids out of range, missing fields) returns 0 and the
 * line is parsed again by jansson, which also words every error.
 */
struct scan {
	const char *p;
};

static void sc_ws(struct scan *c)
{
	while (*c->p == ' ' || *c->p == '\t')
		c->p++;
}

static int sc_char(struct scan *c, char ch)
{
	sc_ws(c);
	if (*c->p != ch)
		return 0;
	c->p++;
	return 1;
}

/* JSON unsigned integer without leading zeros, at most max. */
static int sc_uint(struct scan *c, uint64_t max, uint64_t *out)
{
	const char *p;
	uint64_t v = 0;

	sc_ws(c);
	p = c->p;
	if (*p < '0' || *p > '9' || (*p == '0' && p[1] >= '0' && p[1] <= '9'))
		return 0;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (p - c->p >= 10)
			return 0;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (*p == '.' || *p == 'e' || *p == 'E' || v > max)
		return 0;
	c->p = p;
	*out = v;
	return 1;
}

/* JSON number, converted as jansson does (strtod, then to float). */
static int sc_float(struct scan *c, float *out)
{
	const char *p, *start;
	char *end;
	double d;

	sc_ws(c);
	p = start = c->p;
	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		while (*p >= '0' && *p <= '9')
			p++;
	else
		return 0;
	if (*p == '.') {
		if (*++p < '0' || *p > '9')
			return 0;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (*p < '0' || *p > '9')
			return 0;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	d = strtod(start, &end);
	if (end != p || !isfinite(d))
		return 0;
	c->p = p;
	*out = (float)d;
	return 1;
}

/* Array of rows arrays of cols numbers (ids when ids != NULL). */
static int sc_matrix(struct scan *c, uint32_t rows, uint32_t cols, uint32_t max_id,
	uint16_t *ids, float *vals)
{
	if (!sc_char(c, '['))
		return 0;
	for (uint32_t l = 0; l < rows; l++) {
		if ((l && !sc_char(c, ',')) || !sc_char(c, '['))
			return 0;
		for (uint32_t j = 0; j < cols; j++) {
			uint64_t v;
			if (j && !sc_char(c, ','))
				return 0;
			if (ids) {
				if (!sc_uint(c, max_id - 1, &v))
					return 0;
				ids[(size_t)l * cols + j] = (uint16_t)v;
			} else if (!sc_float(c, &vals[(size_t)l * cols + j])) {
				return 0;
			}
		}
		if (!sc_char(c, ']'))
			return 0;
	}
	return sc_char(c, ']');
}

/* Plain string (no escapes, no control bytes) into dst; length <= max. */
static int sc_string(struct scan *c, char *dst, size_t max, size_t *len)
{
	const char *p;

	if (!sc_char(c, '"'))
		return 0;
	for (p = c->p; *p != '"'; p++)
		if (*p == '\\' || (unsigned char)*p < 0x20)
			return 0;
	if ((size_t)(p - c->p) > max || !utf8_valid((const unsigned char *)c->p, (size_t)(p - c->p)))
		return 0;
	*len = (size_t)(p - c->p);
	if (dst) {
		memcpy(dst, c->p, *len);
		dst[*len] = '\0';
	}
	c->p = p + 1;
	return 1;
}

enum { K_SEQ = 1, K_POS = 2, K_TOKEN = 4, K_TEXT = 8, K_EXPERTS = 16, K_WEIGHTS = 32,
	K_PROBS = 64, K_LSE = 128 };

static int sc_field(struct moe_trace_reader *r, struct scan *c, const char *key, size_t kl,
	unsigned *seen)
{
	const struct moe_trace_header *h = &r->h;
	static const char *const names[] = { "seq", "pos", "token", "text", "experts",
		"weights", "probs", "lse" };
	unsigned bit = 0;
	uint64_t v;
	size_t n;

	for (unsigned i = 0; i < 8; i++)
		if (strlen(names[i]) == kl && memcmp(names[i], key, kl) == 0)
			bit = 1u << i;
	if (bit == 0 || (*seen & bit))
		return 0;
	*seen |= bit;
	switch (bit) {
	case K_SEQ:
	case K_POS:
		if (!sc_uint(c, UINT32_MAX, &v))
			return 0;
		*(bit == K_SEQ ? &r->t.seq : &r->t.pos) = (uint32_t)v;
		return 1;
	case K_TOKEN:
		if (!sc_uint(c, INT32_MAX, &v))
			return 0;
		r->t.token = (int32_t)v;
		return 1;
	case K_TEXT:
		if (!sc_string(c, r->text, MOE_TRACE_MAX_TEXT, &n))
			return 0;
		r->t.text = n ? r->text : NULL;
		return 1;
	case K_EXPERTS:
		return sc_matrix(c, h->n_moe, h->top_k, h->n_experts, r->experts, NULL);
	case K_WEIGHTS:
		return sc_matrix(c, h->n_moe, h->top_k, 0, NULL, r->weights);
	case K_PROBS:
		if (!(h->flags & MOE_TRACE_PROBS))
			return 0;
		r->t.probs = r->probs;
		return sc_matrix(c, h->n_moe, h->n_experts, 0, NULL, r->probs);
	default:
		if (!(h->flags & MOE_TRACE_LSE) || !sc_char(c, '['))
			return 0;
		for (uint32_t l = 0; l < h->n_moe; l++)
			if ((l && !sc_char(c, ',')) || !sc_float(c, &r->lse[l]))
				return 0;
		r->t.lse = r->lse;
		return sc_char(c, ']');
	}
}

static int jsonl_fast(struct moe_trace_reader *r)
{
	struct scan c = { r->line };
	unsigned seen = 0, need = K_SEQ | K_POS | K_EXPERTS | K_WEIGHTS;

	if (r->h.flags & MOE_TRACE_PROBS)
		need |= K_PROBS;
	if (r->h.flags & MOE_TRACE_LSE)
		need |= K_LSE;
	r->t.token = -1;
	r->t.text = NULL;
	r->t.probs = NULL;
	r->t.lse = NULL;
	if (!sc_char(&c, '{'))
		return 0;
	do {
		const char *key;
		size_t kl;
		if (!sc_char(&c, '"'))
			return 0;
		c.p--;
		key = c.p + 1;
		if (!sc_string(&c, NULL, 16, &kl) || !sc_char(&c, ':') ||
		    !sc_field(r, &c, key, kl, &seen))
			return 0;
	} while (sc_char(&c, ','));
	if (!sc_char(&c, '}'))
		return 0;
	sc_ws(&c);
	return *c.p == '\0' && (seen & need) == need;
}

static int jsonl_token(struct moe_trace_reader *r)
{
	json_error_t je;
	json_t *o;
	size_t len;
	int rc;

	do {
		if ((rc = read_line(r, &len)) <= 0)
			return rc;
	} while (len == 0);
	if (strlen(r->line) == len && jsonl_fast(r))
		return 1;
	o = json_loadb(r->line, len, JSON_REJECT_DUPLICATES, &je);
	if (o == NULL || !json_is_object(o)) {
		json_decref(o);
		return rfail(r, MOE_EFORMAT, "line %llu: %s%s", (unsigned long long)r->lineno,
			o ? "not a JSON object" : "invalid JSON: ", o ? "" : je.text);
	}
	rc = jsonl_fields(r, o);
	json_decref(o);
	return rc;
}

/* ---- CSV import ---- */

static int csv_field(const char **p, uint64_t max, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;

	while (*s == ' ')
		s++;
	if (!isdigit((unsigned char)*s))
		return -1;
	while (isdigit((unsigned char)*s)) {
		if (v > (max - (uint64_t)(*s - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s++ - '0');
	}
	while (*s == ' ')
		s++;
	*p = s;
	*out = v;
	return 0;
}

/* Parses "token,layer,expert[,weight]"; returns number of fields or -1. */
static int csv_parse(const char *s, struct csv_row *row)
{
	uint64_t v[3];
	char *end;

	for (int i = 0; i < 3; i++) {
		uint64_t max = i == 0 ? UINT32_MAX : i == 1 ? MOE_TRACE_MAX_LAYERS - 1 : MOE_TRACE_MAX_EXPERTS - 1;
		if (csv_field(&s, max, &v[i]) != 0)
			return -1;
		if (i < 2 && *s++ != ',')
			return -1;
	}
	row->token = v[0];
	row->layer = (uint32_t)v[1];
	row->expert = (uint32_t)v[2];
	if (*s == '\0')
		return 3;
	if (*s++ != ',')
		return -1;
	row->weight = strtof(s, &end);
	while (*end == ' ')
		end++;
	if (end == s || *end != '\0' || !isfinite(row->weight))
		return -1;
	return 4;
}

static int csv_load(struct moe_trace_reader *r)
{
	size_t cap = 0, len;
	uint32_t max_layer = 0, max_expert = 0;
	int rc, nf = -1;

	while ((rc = read_line(r, &len)) > 0) {
		struct csv_row row;
		int f;
		if (len == 0)
			continue;
		if (r->lineno == 1 && isalpha((unsigned char)r->line[0]))
			continue;   /* column names */
		f = csv_parse(r->line, &row);
		if (f < 0 || (nf >= 0 && f != nf))
			return rfail(r, MOE_EFORMAT, "line %llu: expected token,layer,expert%s with whole numbers",
				(unsigned long long)r->lineno, nf == 4 ? ",weight" : "[,weight]");
		nf = f;
		if (f == 3)
			row.weight = 0;
		row.line = r->lineno;
		if (r->n_rows == cap) {
			struct csv_row *nr;
			if (cap >= CSV_MAX_ROWS)
				return rfail(r, MOE_ERANGE, "line %llu: more than %u CSV rows",
					(unsigned long long)r->lineno, CSV_MAX_ROWS);
			cap = cap ? cap * 2 : 1024;
			if ((nr = realloc(r->rows, cap * sizeof *nr)) == NULL)
				return rfail(r, MOE_ENOMEM, "out of memory");
			r->rows = nr;
		}
		r->rows[r->n_rows++] = row;
		if (row.layer > max_layer)
			max_layer = row.layer;
		if (row.expert > max_expert)
			max_expert = row.expert;
	}
	if (rc < 0)
		return rc;
	if (r->n_rows == 0)
		return rfail(r, MOE_EFORMAT, "no CSV rows");
	r->csv_weights = nf == 4;
	return 0;
}

/* Infers the header from the rows: layers seen, max expert + 1, and k from
 * the first token's first layer. */
static int csv_header(struct moe_trace_reader *r)
{
	uint32_t max_expert = 0, n_moe = 0, k = 0;
	int rc;
	char msg[256];

	if ((rc = csv_load(r)) != 0)
		return rc;
	r->layer_index = malloc(MOE_TRACE_MAX_LAYERS * sizeof *r->layer_index);
	r->layers = malloc(MOE_TRACE_MAX_LAYERS * sizeof *r->layers);
	r->model = strdup("");
	r->gating = strdup("");
	r->vocab = strdup("");
	if (!r->layer_index || !r->layers || !r->model || !r->gating || !r->vocab)
		return rfail(r, MOE_ENOMEM, "out of memory");
	for (uint32_t i = 0; i < MOE_TRACE_MAX_LAYERS; i++)
		r->layer_index[i] = -1;
	for (size_t i = 0; i < r->n_rows; i++) {
		r->layer_index[r->rows[i].layer] = 0;
		if (r->rows[i].expert > max_expert)
			max_expert = r->rows[i].expert;
		if (r->rows[i].token == r->rows[0].token && r->rows[i].layer == r->rows[0].layer)
			k++;
	}
	for (uint32_t i = 0; i < MOE_TRACE_MAX_LAYERS; i++)
		if (r->layer_index[i] == 0) {
			r->layer_index[i] = (int32_t)n_moe;
			r->layers[n_moe++] = i;
		}
	r->h.n_layers = r->layers[n_moe - 1] + 1;
	r->h.n_moe = n_moe;
	r->h.moe_layers = r->layers;
	r->h.n_experts = max_expert + 1;
	r->h.top_k = k;
	r->h.model = r->model;
	r->h.gating = r->gating;
	r->h.vocab = r->vocab;
	if (moe_trace_header_check(&r->h, msg, sizeof msg) != 0)
		return rfail(r, MOE_EFORMAT, "CSV: %s", msg);
	return 0;
}

static int csv_token(struct moe_trace_reader *r)
{
	const struct moe_trace_header *h = &r->h;
	uint32_t k = h->top_k, fill[MOE_TRACE_MAX_LAYERS];
	size_t i = r->row_next;
	uint64_t tok;

	if (i >= r->n_rows)
		return 0;
	tok = r->rows[i].token;
	memset(fill, 0, h->n_moe * sizeof *fill);
	r->lineno = r->rows[i].line;
	for (; i < r->n_rows && r->rows[i].token == tok; i++) {
		const struct csv_row *row = &r->rows[i];
		uint32_t l = (uint32_t)r->layer_index[row->layer];
		if (fill[l] == k)
			return rfail(r, MOE_EFORMAT, "line %llu: token %llu has more than %u experts in layer %u",
				(unsigned long long)row->line, (unsigned long long)tok, k, row->layer);
		r->experts[l * k + fill[l]] = (uint16_t)row->expert;
		r->weights[l * k + fill[l]] = r->csv_weights ? row->weight : 1.0f / (float)k;
		fill[l]++;
	}
	for (uint32_t l = 0; l < h->n_moe; l++)
		if (fill[l] != k)
			return rfail(r, MOE_EFORMAT, "line %llu: token %llu has %u experts in layer %u, expected %u",
				(unsigned long long)r->lineno, (unsigned long long)tok, fill[l],
				h->moe_layers[l], k);
	r->row_next = i;
	r->t.seq = 0;
	r->t.pos = (uint32_t)tok;
	r->t.token = -1;
	r->t.text = NULL;
	r->t.probs = NULL;
	r->t.lse = NULL;
	return 1;
}

/* ---- reader entry points ---- */

static int sniff(struct moe_trace_reader *r)
{
	const void *p;
	const unsigned char *b;
	size_t got;
	int rc = moe_input_peek(r->in, 8, &p, &got);

	if (rc != 0)
		return rfail(r, rc, "%s", moe_input_errstr(r->in));
	b = p;
	if (got == 0)
		return rfail(r, MOE_ETRUNC, "empty input (no trace header)");
	if (got == 8 && memcmp(b, MAGIC, 8) == 0)
		r->fmt = MOE_TRACE_BIN;
	else if (b[0] == '{')
		r->fmt = MOE_TRACE_JSONL;
	else if (isdigit(b[0]) || (got >= 5 && memcmp(b, "token", 5) == 0))
		r->fmt = MOE_TRACE_CSV;
	else if (got < 8 && memcmp(b, MAGIC, got) == 0)
		return rfail(r, MOE_ETRUNC, "binary header: truncated");
	else
		return rfail(r, MOE_EFORMAT, "not a routing trace (no moe-trace header, JSON object or CSV row)");
	return 0;
}

int moe_trace_reader_new(struct moe_trace_reader **out, struct moe_input *in)
{
	struct moe_trace_reader *r = calloc(1, sizeof *r);
	int rc;

	*out = r;
	if (r == NULL)
		return MOE_ENOMEM;
	r->in = in;
	if ((rc = sniff(r)) != 0)
		return rc;
	rc = r->fmt == MOE_TRACE_BIN ? bin_header(r) :
		r->fmt == MOE_TRACE_JSONL ? jsonl_header(r) : csv_header(r);
	if (rc == 0)
		rc = alloc_token(r);
	return rc;
}

void moe_trace_reader_free(struct moe_trace_reader *r)
{
	if (r == NULL)
		return;
	free(r->layers);
	free(r->model);
	free(r->gating);
	free(r->vocab);
	free(r->experts);
	free(r->weights);
	free(r->probs);
	free(r->lse);
	free(r->text);
	free(r->rec);
	free(r->line);
	free(r->rows);
	free(r->layer_index);
	free(r);
}

const struct moe_trace_header *moe_trace_reader_header(const struct moe_trace_reader *r)
{
	return &r->h;
}

enum moe_trace_format moe_trace_reader_format(const struct moe_trace_reader *r)
{
	return r->fmt;
}

uint64_t moe_trace_reader_count(const struct moe_trace_reader *r)
{
	return r->count;
}

const char *moe_trace_reader_errstr(const struct moe_trace_reader *r)
{
	return moe_error_str(&r->err);
}

int moe_trace_read(struct moe_trace_reader *r, const struct moe_trace_token **t)
{
	char msg[384], at[48];
	int rc;

	if (r->err.code)
		return r->err.code;
	rc = r->fmt == MOE_TRACE_BIN ? bin_token(r) :
		r->fmt == MOE_TRACE_JSONL ? jsonl_token(r) : csv_token(r);
	if (rc <= 0)
		return rc;
	if (moe_trace_token_check(&r->h, &r->t, msg, sizeof msg) != 0) {
		where(r, at, sizeof at);
		return rfail(r, MOE_EFORMAT, "%s: %s", at, msg);
	}
	r->count++;
	*t = &r->t;
	return 1;
}

/* ---- writer ---- */

struct moe_trace_writer {
	struct moe_output *o;
	struct moe_error err;
	enum moe_trace_format fmt;
	struct moe_trace_header h;
	uint32_t *layers;
	unsigned char *rec;         /* binary record, or JSONL line buffer */
	size_t cap;
};

static int wfail(struct moe_trace_writer *w, int code, const char *msg)
{
	return moe_error_set(&w->err, code, "%s", msg);
}

static int wout(struct moe_trace_writer *w, const void *p, size_t n)
{
	int rc = moe_output_write(w->o, p, n);

	return rc ? moe_error_set(&w->err, rc, "%s", moe_output_errstr(w->o)) : 0;
}

static int bin_write_header(struct moe_trace_writer *w)
{
	const struct moe_trace_header *h = &w->h;
	size_t ls[3] = { strlen(h->model), strlen(h->gating), strlen(h->vocab) };
	size_t n = BIN_FIXED + 6 + ls[0] + ls[1] + ls[2] + 4 * (size_t)h->n_moe, off = BIN_FIXED;
	const char *ss[3] = { h->model, h->gating, h->vocab };
	unsigned char *b;
	int rc;

	if (n > MAX_HEADER_BYTES)
		return wfail(w, MOE_ERANGE, "header too large");
	if ((b = malloc(n)) == NULL)
		return wfail(w, MOE_ENOMEM, "out of memory");
	memcpy(b, MAGIC, 8);
	wr32(b + 8, MOE_TRACE_VERSION);
	wr32(b + 12, (uint32_t)n);
	wr32(b + 16, h->n_layers);
	wr32(b + 20, h->n_moe);
	wr32(b + 24, h->n_experts);
	wr32(b + 28, h->top_k);
	wr32(b + 32, h->flags);
	wr32(b + 36, (uint32_t)moe_trace_record_bytes(h));
	for (int i = 0; i < 3; i++) {
		wr16(b + off, (uint16_t)ls[i]);
		memcpy(b + off + 2, ss[i], ls[i]);
		off += 2 + ls[i];
	}
	for (uint32_t i = 0; i < h->n_moe; i++)
		wr32(b + off + 4 * i, h->moe_layers[i]);
	rc = wout(w, b, n);
	free(b);
	return rc;
}

static int jsonl_write_header(struct moe_trace_writer *w)
{
	const struct moe_trace_header *h = &w->h;
	json_t *o = json_object(), *ls = json_array();
	char *s = NULL;
	int rc;

	if (o == NULL || ls == NULL)
		goto oom;
	for (uint32_t i = 0; i < h->n_moe; i++)
		if (json_array_append_new(ls, json_integer(h->moe_layers[i])) != 0)
			goto oom;
	if (json_object_set_new(o, "format", json_string("moe-trace")) ||
	    json_object_set_new(o, "version", json_integer(MOE_TRACE_VERSION)) ||
	    json_object_set_new(o, "model", json_string(h->model)) ||
	    json_object_set_new(o, "n_layers", json_integer(h->n_layers)) ||
	    json_object_set(o, "moe_layers", ls) ||
	    json_object_set_new(o, "n_experts", json_integer(h->n_experts)) ||
	    json_object_set_new(o, "top_k", json_integer(h->top_k)) ||
	    json_object_set_new(o, "gating", json_string(h->gating)) ||
	    json_object_set_new(o, "vocab", json_string(h->vocab)) ||
	    json_object_set_new(o, "probs", json_boolean(h->flags & MOE_TRACE_PROBS)) ||
	    json_object_set_new(o, "lse", json_boolean(h->flags & MOE_TRACE_LSE)) ||
	    json_object_set_new(o, "text", json_boolean(h->flags & MOE_TRACE_TEXT)) ||
	    (s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER)) == NULL)
		goto oom;
	rc = wout(w, s, strlen(s));
	if (rc == 0)
		rc = wout(w, "\n", 1);
	free(s);
	json_decref(ls);
	json_decref(o);
	return rc;
oom:
	json_decref(ls);
	json_decref(o);
	return wfail(w, MOE_ENOMEM, "out of memory");
}

int moe_trace_writer_new(struct moe_trace_writer **out, struct moe_output *o,
	enum moe_trace_format fmt, const struct moe_trace_header *h)
{
	struct moe_trace_writer *w = calloc(1, sizeof *w);
	char msg[256];

	*out = w;
	if (w == NULL)
		return MOE_ENOMEM;
	w->o = o;
	w->fmt = fmt;
	if (fmt != MOE_TRACE_JSONL && fmt != MOE_TRACE_BIN)
		return wfail(w, MOE_EINVAL, "traces are written as JSON Lines or binary");
	if (moe_trace_header_check(h, msg, sizeof msg) != 0)
		return moe_error_set(&w->err, MOE_EINVAL, "header: %s", msg);
	w->h = *h;
	if ((w->layers = malloc(h->n_moe * sizeof *w->layers)) == NULL)
		return wfail(w, MOE_ENOMEM, "out of memory");
	memcpy(w->layers, h->moe_layers, h->n_moe * sizeof *w->layers);
	w->h.moe_layers = w->layers;
	/* strings are only needed for the header, written now */
	w->cap = moe_trace_record_bytes(h) + 2 + MOE_TRACE_MAX_TEXT;
	if (fmt == MOE_TRACE_JSONL)
		w->cap = 4096;
	if ((w->rec = malloc(w->cap)) == NULL)
		return wfail(w, MOE_ENOMEM, "out of memory");
	int rc = fmt == MOE_TRACE_BIN ? bin_write_header(w) : jsonl_write_header(w);
	w->h.model = w->h.gating = w->h.vocab = "";
	return rc;
}

static int bin_write(struct moe_trace_writer *w, const struct moe_trace_token *t)
{
	const struct moe_trace_header *h = &w->h;
	size_t nk = (size_t)h->n_moe * h->top_k;
	unsigned char *p = w->rec;

	wr32(p, t->seq);
	wr32(p + 4, t->pos);
	wr32(p + 8, (uint32_t)t->token);
	p += 12;
	put_u16s(p, t->experts, nk);
	p += nk * 2;
	put_f32s(p, t->weights, nk);
	p += nk * 4;
	if (h->flags & MOE_TRACE_PROBS) {
		put_f32s(p, t->probs, (size_t)h->n_moe * h->n_experts);
		p += (size_t)h->n_moe * h->n_experts * 4;
	}
	if (h->flags & MOE_TRACE_LSE) {
		put_f32s(p, t->lse, h->n_moe);
		p += h->n_moe * 4;
	}
	if (h->flags & MOE_TRACE_TEXT) {
		size_t n = t->text ? strlen(t->text) : 0;
		wr16(p, (uint16_t)n);
		memcpy(p + 2, t->text ? t->text : "", n);
		p += 2 + n;
	}
	return wout(w, w->rec, (size_t)(p - w->rec));
}

/* Growable line buffer for JSONL. */
struct sbuf {
	struct moe_trace_writer *w;
	size_t len;
	int oom;
};

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->w->cap) {
		size_t cap = b->w->cap * 2;
		unsigned char *nr;
		while (cap < b->len + n + 1)
			cap *= 2;
		if ((nr = realloc(b->w->rec, cap)) == NULL) {
			b->oom = 1;
			return;
		}
		b->w->rec = nr;
		b->w->cap = cap;
	}
	memcpy(b->w->rec + b->len, s, n);
	b->len += n;
}

static void sb_str(struct sbuf *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

/* Shortest decimal that reads back as the same float. */
static void sb_float(struct sbuf *b, float f)
{
	char s[32];

	for (int prec = 6; prec <= 9; prec++) {
		snprintf(s, sizeof s, "%.*g", prec, (double)f);
		if (strtof(s, NULL) == f)
			break;
	}
	sb_str(b, s);
}

static void sb_json_string(struct sbuf *b, const char *s)
{
	sb_put(b, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[8];
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			sb_put(b, esc, 2);
		} else if (c < 0x20) {
			snprintf(esc, sizeof esc, "\\u%04x", c);
			sb_put(b, esc, 6);
		} else {
			sb_put(b, s, 1);
		}
	}
	sb_put(b, "\"", 1);
}

static void sb_rows(struct sbuf *b, const char *key, const uint16_t *ids,
	const float *vals, uint32_t rows, uint32_t cols)
{
	char num[16];

	sb_str(b, ",\"");
	sb_str(b, key);
	sb_str(b, "\":[");
	for (uint32_t l = 0; l < rows; l++) {
		sb_str(b, l ? ",[" : "[");
		for (uint32_t j = 0; j < cols; j++) {
			if (j)
				sb_put(b, ",", 1);
			if (ids) {
				snprintf(num, sizeof num, "%u", ids[(size_t)l * cols + j]);
				sb_str(b, num);
			} else {
				sb_float(b, vals[(size_t)l * cols + j]);
			}
		}
		sb_put(b, "]", 1);
	}
	sb_put(b, "]", 1);
}

static int jsonl_write(struct moe_trace_writer *w, const struct moe_trace_token *t)
{
	const struct moe_trace_header *h = &w->h;
	struct sbuf b = { w, 0, 0 };
	char num[64];

	snprintf(num, sizeof num, "{\"seq\":%u,\"pos\":%u", t->seq, t->pos);
	sb_str(&b, num);
	if (t->token >= 0) {
		snprintf(num, sizeof num, ",\"token\":%d", t->token);
		sb_str(&b, num);
	}
	if (t->text && t->text[0]) {
		sb_str(&b, ",\"text\":");
		sb_json_string(&b, t->text);
	}
	sb_rows(&b, "experts", t->experts, NULL, h->n_moe, h->top_k);
	sb_rows(&b, "weights", NULL, t->weights, h->n_moe, h->top_k);
	if (t->probs)
		sb_rows(&b, "probs", NULL, t->probs, h->n_moe, h->n_experts);
	if (t->lse) {
		sb_str(&b, ",\"lse\":[");
		for (uint32_t l = 0; l < h->n_moe; l++) {
			if (l)
				sb_put(&b, ",", 1);
			sb_float(&b, t->lse[l]);
		}
		sb_put(&b, "]", 1);
	}
	sb_str(&b, "}\n");
	if (b.oom)
		return wfail(w, MOE_ENOMEM, "out of memory");
	return wout(w, w->rec, b.len);
}

int moe_trace_write(struct moe_trace_writer *w, const struct moe_trace_token *t)
{
	char msg[384];

	if (w->err.code)
		return w->err.code;
	if (moe_trace_token_check(&w->h, t, msg, sizeof msg) != 0)
		return moe_error_set(&w->err, MOE_EINVAL, "%s", msg);
	if (t->token < -1)
		return wfail(w, MOE_EINVAL, "token id is negative");
	return w->fmt == MOE_TRACE_BIN ? bin_write(w, t) : jsonl_write(w, t);
}

void moe_trace_writer_free(struct moe_trace_writer *w)
{
	if (w == NULL)
		return;
	free(w->layers);
	free(w->rec);
	free(w);
}

const char *moe_trace_writer_errstr(const struct moe_trace_writer *w)
{
	return moe_error_str(&w->err);
}
