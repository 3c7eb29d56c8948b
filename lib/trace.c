/* Routing traces: validation, format sniffing, the binary encoding, reader and writer entry points. */
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
 * JSON Lines (trace_jsonl.c): see moe-trace(5); line 1 is the header
 * object, then one object per token with per-MoE-layer arrays "experts",
 * "weights" and optional "probs", "lse". CSV import: trace_csv.c.
 */
#include "trace.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trace_impl.h"

#define MAGIC "MOETRACE"
#define BIN_FIXED 40
#define MAX_HEADER_BYTES (1u << 20)
#define MAX_LINE (256u << 20)

int moe_trace_utf8_valid(const unsigned char *s, size_t n)
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
		moe_trace_utf8_valid((const unsigned char *)s, strlen(s));
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
		    !moe_trace_utf8_valid((const unsigned char *)t->text, n)) {
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

int moe_trace_rfail(struct moe_trace_reader *r, int code, const char *fmt, ...)
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
		return moe_trace_rfail(r, MOE_ENOMEM, "out of memory");
	r->t.experts = r->experts;
	r->t.weights = r->weights;
	return 0;
}

/* Reads one line (without the newline) into r->line; 1, 0 at end, or < 0. */
int moe_trace_read_line(struct moe_trace_reader *r, size_t *len)
{
	size_t n = 0;

	for (;;) {
		const void *p;
		size_t got;
		int rc = moe_input_peek(r->in, 4096, &p, &got);
		if (rc != 0)
			return moe_trace_rfail(r, rc, "%s", moe_input_errstr(r->in));
		if (got == 0) {
			if (n == 0)
				return 0;
			break;
		}
		const char *nl = memchr(p, '\n', got);
		size_t take = nl ? (size_t)(nl - (const char *)p) : got;
		if (n + take + 1 > MAX_LINE)
			return moe_trace_rfail(r, MOE_ERANGE, "line %llu: longer than %u bytes",
				(unsigned long long)r->lineno + 1, MAX_LINE);
		if (n + take + 1 > r->line_cap) {
			size_t cap = r->line_cap ? r->line_cap : 4096;
			while (cap < n + take + 1)
				cap *= 2;
			char *nb = realloc(r->line, cap);
			if (nb == NULL)
				return moe_trace_rfail(r, MOE_ENOMEM, "out of memory");
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
		return moe_trace_rfail(r, MOE_EFORMAT, "binary header: truncated strings");
	len = rd16(b + *off);
	*off += 2;
	if (n - *off < len)
		return moe_trace_rfail(r, MOE_EFORMAT, "binary header: string of %zu bytes overruns the header", len);
	if ((*out = malloc(len + 1)) == NULL)
		return moe_trace_rfail(r, MOE_ENOMEM, "out of memory");
	memcpy(*out, b + *off, len);
	(*out)[len] = '\0';
	if (strlen(*out) != len)
		return moe_trace_rfail(r, MOE_EFORMAT, "binary header: string contains NUL");
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
		return moe_trace_rfail(r, rc, "binary header: truncated");
	version = rd32(fixed + 8);
	if (version != MOE_TRACE_VERSION)
		return moe_trace_rfail(r, MOE_EUNSUP, "trace version %u is not supported (this reader knows version %u)",
			version, MOE_TRACE_VERSION);
	hbytes = rd32(fixed + 12);
	r->h.n_layers = rd32(fixed + 16);
	r->h.n_moe = rd32(fixed + 20);
	r->h.n_experts = rd32(fixed + 24);
	r->h.top_k = rd32(fixed + 28);
	r->h.flags = rd32(fixed + 32);
	if (hbytes < BIN_FIXED + 6 || hbytes > MAX_HEADER_BYTES)
		return moe_trace_rfail(r, MOE_EFORMAT, "binary header: size %u out of range", hbytes);
	if (r->h.n_moe < 1 || r->h.n_moe > MOE_TRACE_MAX_LAYERS)
		return moe_trace_rfail(r, MOE_EFORMAT, "binary header: MoE layer count %u out of range", r->h.n_moe);
	n = hbytes - BIN_FIXED;
	if ((rest = malloc(n)) == NULL)
		return moe_trace_rfail(r, MOE_ENOMEM, "out of memory");
	if ((rc = moe_input_read(r->in, rest, n)) != 0) {
		rc = moe_trace_rfail(r, rc, "binary header: truncated");
		goto out;
	}
	if ((rc = bin_string(r, rest, n, &off, &r->model)) != 0 ||
	    (rc = bin_string(r, rest, n, &off, &r->gating)) != 0 ||
	    (rc = bin_string(r, rest, n, &off, &r->vocab)) != 0)
		goto out;
	if (n - off != (size_t)r->h.n_moe * 4) {
		rc = moe_trace_rfail(r, MOE_EFORMAT, "binary header: layer list has %zu bytes, expected %zu",
			n - off, (size_t)r->h.n_moe * 4);
		goto out;
	}
	if ((r->layers = malloc(r->h.n_moe * sizeof *r->layers)) == NULL) {
		rc = moe_trace_rfail(r, MOE_ENOMEM, "out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < r->h.n_moe; i++)
		r->layers[i] = rd32(rest + off + 4 * i);
	r->h.moe_layers = r->layers;
	r->h.model = r->model;
	r->h.gating = r->gating;
	r->h.vocab = r->vocab;
	if (moe_trace_header_check(&r->h, msg, sizeof msg) != 0) {
		rc = moe_trace_rfail(r, MOE_EFORMAT, "header: %s", msg);
		goto out;
	}
	r->rec_bytes = moe_trace_record_bytes(&r->h);
	if (rd32(fixed + 36) != r->rec_bytes) {
		rc = moe_trace_rfail(r, MOE_EFORMAT, "header: record size %u does not match the shape (%llu)",
			rd32(fixed + 36), (unsigned long long)r->rec_bytes);
		goto out;
	}
	if ((r->rec = malloc(r->rec_bytes)) == NULL)
		rc = moe_trace_rfail(r, MOE_ENOMEM, "out of memory");
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
			return moe_trace_rfail(r, (int)k, "%s", moe_input_errstr(r->in));
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
		return moe_trace_rfail(r, MOE_ETRUNC, "record %llu: truncated (%zu of %llu bytes)",
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
			return moe_trace_rfail(r, MOE_ETRUNC, "record %llu: truncated text length",
				(unsigned long long)r->count + 1);
		tl = rd16(lb);
		if ((rc = read_full(r, r->text, tl, &got)) != 0)
			return rc;
		if (got < tl)
			return moe_trace_rfail(r, MOE_ETRUNC, "record %llu: truncated text",
				(unsigned long long)r->count + 1);
		r->text[tl] = '\0';
		if (tl > 0)
			r->t.text = r->text;
		if (strlen(r->text) != tl)
			return moe_trace_rfail(r, MOE_EFORMAT, "record %llu: text contains NUL",
				(unsigned long long)r->count + 1);
	}
	if (r->t.token < -1)
		return moe_trace_rfail(r, MOE_EFORMAT, "record %llu: token id %d is negative",
			(unsigned long long)r->count + 1, r->t.token);
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
		return moe_trace_rfail(r, rc, "%s", moe_input_errstr(r->in));
	b = p;
	if (got == 0)
		return moe_trace_rfail(r, MOE_ETRUNC, "empty input (no trace header)");
	if (got == 8 && memcmp(b, MAGIC, 8) == 0)
		r->fmt = MOE_TRACE_BIN;
	else if (b[0] == '{')
		r->fmt = MOE_TRACE_JSONL;
	else if (isdigit(b[0]) || (got >= 5 && memcmp(b, "token", 5) == 0))
		r->fmt = MOE_TRACE_CSV;
	else if (got < 8 && memcmp(b, MAGIC, got) == 0)
		return moe_trace_rfail(r, MOE_ETRUNC, "binary header: truncated");
	else
		return moe_trace_rfail(r, MOE_EFORMAT, "not a routing trace (no moe-trace header, JSON object or CSV row)");
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
		r->fmt == MOE_TRACE_JSONL ? moe_trace_jsonl_read_header(r) : moe_trace_csv_read_header(r);
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
		r->fmt == MOE_TRACE_JSONL ? moe_trace_jsonl_read(r) : moe_trace_csv_read(r);
	if (rc <= 0)
		return rc;
	if (moe_trace_token_check(&r->h, &r->t, msg, sizeof msg) != 0) {
		where(r, at, sizeof at);
		return moe_trace_rfail(r, MOE_EFORMAT, "%s: %s", at, msg);
	}
	r->count++;
	*t = &r->t;
	return 1;
}

/* ---- writer ---- */

int moe_trace_wfail(struct moe_trace_writer *w, int code, const char *msg)
{
	return moe_error_set(&w->err, code, "%s", msg);
}

int moe_trace_wout(struct moe_trace_writer *w, const void *p, size_t n)
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
		return moe_trace_wfail(w, MOE_ERANGE, "header too large");
	if ((b = malloc(n)) == NULL)
		return moe_trace_wfail(w, MOE_ENOMEM, "out of memory");
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
	rc = moe_trace_wout(w, b, n);
	free(b);
	return rc;
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
		return moe_trace_wfail(w, MOE_EINVAL, "traces are written as JSON Lines or binary");
	if (moe_trace_header_check(h, msg, sizeof msg) != 0)
		return moe_error_set(&w->err, MOE_EINVAL, "header: %s", msg);
	w->h = *h;
	if ((w->layers = malloc(h->n_moe * sizeof *w->layers)) == NULL)
		return moe_trace_wfail(w, MOE_ENOMEM, "out of memory");
	memcpy(w->layers, h->moe_layers, h->n_moe * sizeof *w->layers);
	w->h.moe_layers = w->layers;
	/* strings are only needed for the header, written now */
	w->cap = moe_trace_record_bytes(h) + 2 + MOE_TRACE_MAX_TEXT;
	if (fmt == MOE_TRACE_JSONL)
		w->cap = 4096;
	if ((w->rec = malloc(w->cap)) == NULL)
		return moe_trace_wfail(w, MOE_ENOMEM, "out of memory");
	int rc = fmt == MOE_TRACE_BIN ? bin_write_header(w) : moe_trace_jsonl_write_header(w);
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
	return moe_trace_wout(w, w->rec, (size_t)(p - w->rec));
}

int moe_trace_write(struct moe_trace_writer *w, const struct moe_trace_token *t)
{
	char msg[384];

	if (w->err.code)
		return w->err.code;
	if (moe_trace_token_check(&w->h, t, msg, sizeof msg) != 0)
		return moe_error_set(&w->err, MOE_EINVAL, "%s", msg);
	if (t->token < -1)
		return moe_trace_wfail(w, MOE_EINVAL, "token id is negative");
	return w->fmt == MOE_TRACE_BIN ? bin_write(w, t) : moe_trace_jsonl_write(w, t);
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
