/* JSON Lines encoding of routing traces: reader (strict fast scanner, jansson for the rest) and writer. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trace_impl.h"

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
		return moe_trace_rfail(r, MOE_EFORMAT, "line 1: header field \"%s\" is not a string", key);
	if ((*out = strdup(s)) == NULL)
		return moe_trace_rfail(r, MOE_ENOMEM, "out of memory");
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

int moe_trace_jsonl_read_header(struct moe_trace_reader *r)
{
	json_error_t je;
	json_t *o, *v, *ls;
	size_t len;
	int rc;
	char msg[256];

	if ((rc = moe_trace_read_line(r, &len)) <= 0)
		return rc < 0 ? rc : moe_trace_rfail(r, MOE_ETRUNC, "empty input (no trace header)");
	o = json_loadb(r->line, len, JSON_REJECT_DUPLICATES, &je);
	if (o == NULL || !json_is_object(o)) {
		json_decref(o);
		return moe_trace_rfail(r, MOE_EFORMAT, "line 1: %s%s", o ? "not a JSON object" : "invalid JSON: ",
			o ? "" : je.text);
	}
	v = json_object_get(o, "format");
	if (v == NULL || !json_is_string(v) || strcmp(json_string_value(v), "moe-trace") != 0) {
		rc = moe_trace_rfail(r, MOE_EFORMAT, "line 1: missing trace header (\"format\": \"moe-trace\")");
		goto out;
	}
	v = json_object_get(o, "version");
	if (!json_is_integer(v) || json_integer_value(v) < 1) {
		rc = moe_trace_rfail(r, MOE_EFORMAT, "line 1: header has no valid \"version\"");
		goto out;
	}
	if (json_integer_value(v) != MOE_TRACE_VERSION) {
		rc = moe_trace_rfail(r, MOE_EUNSUP, "trace version %lld is not supported (this reader knows version %d)",
			(long long)json_integer_value(v), MOE_TRACE_VERSION);
		goto out;
	}
	if (json_u32(o, "n_layers", MOE_TRACE_MAX_LAYERS, 1, &r->h.n_layers) ||
	    json_u32(o, "n_experts", MOE_TRACE_MAX_EXPERTS, 1, &r->h.n_experts) ||
	    json_u32(o, "top_k", MOE_TRACE_MAX_TOPK, 1, &r->h.top_k) ||
	    json_flag(o, "probs", MOE_TRACE_PROBS, &r->h.flags) ||
	    json_flag(o, "lse", MOE_TRACE_LSE, &r->h.flags) ||
	    json_flag(o, "text", MOE_TRACE_TEXT, &r->h.flags)) {
		rc = moe_trace_rfail(r, MOE_EFORMAT, "line 1: header needs whole numbers n_layers, n_experts, top_k in range and boolean probs, lse, text");
		goto out;
	}
	ls = json_object_get(o, "moe_layers");
	if (!json_is_array(ls) || json_array_size(ls) < 1 ||
	    json_array_size(ls) > MOE_TRACE_MAX_LAYERS) {
		rc = moe_trace_rfail(r, MOE_EFORMAT, "line 1: header needs a non-empty \"moe_layers\" array");
		goto out;
	}
	r->h.n_moe = (uint32_t)json_array_size(ls);
	if ((r->layers = malloc(r->h.n_moe * sizeof *r->layers)) == NULL) {
		rc = moe_trace_rfail(r, MOE_ENOMEM, "out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < r->h.n_moe; i++) {
		json_t *e = json_array_get(ls, i);
		if (!json_is_integer(e) || json_integer_value(e) < 0 ||
		    json_integer_value(e) >= MOE_TRACE_MAX_LAYERS) {
			rc = moe_trace_rfail(r, MOE_EFORMAT, "line 1: \"moe_layers\" entry %u is not a layer index", i);
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
		rc = moe_trace_rfail(r, MOE_EFORMAT, "line 1: %s", msg);
out:
	json_decref(o);
	return rc;
}

/* Fills n_moe rows of `want` numbers from a JSON array of arrays. */
static int json_matrix(struct moe_trace_reader *r, json_t *a, const char *key,
	size_t want, uint16_t *ids, float *vals, uint32_t max_id)
{
	if (!json_is_array(a) || json_array_size(a) != r->h.n_moe)
		return moe_trace_rfail(r, MOE_EFORMAT, "line %llu: \"%s\" must be an array of %u MoE layers",
			(unsigned long long)r->lineno, key, r->h.n_moe);
	for (uint32_t l = 0; l < r->h.n_moe; l++) {
		json_t *row = json_array_get(a, l);
		if (!json_is_array(row) || json_array_size(row) != want)
			return moe_trace_rfail(r, MOE_EFORMAT, "line %llu: layer %u: \"%s\" has %zu entries, expected %zu",
				(unsigned long long)r->lineno, r->h.moe_layers[l], key,
				json_is_array(row) ? json_array_size(row) : 0, want);
		for (size_t j = 0; j < want; j++) {
			json_t *e = json_array_get(row, j);
			if (ids) {
				if (!json_is_integer(e) || json_integer_value(e) < 0)
					return moe_trace_rfail(r, MOE_EFORMAT, "line %llu: layer %u: expert id %zu is not a whole number",
						(unsigned long long)r->lineno, r->h.moe_layers[l], j + 1);
				if (json_integer_value(e) >= max_id)
					return moe_trace_rfail(r, MOE_EFORMAT, "line %llu: layer %u: expert %lld out of range (%u experts)",
						(unsigned long long)r->lineno, r->h.moe_layers[l],
						(long long)json_integer_value(e), max_id);
				ids[l * want + j] = (uint16_t)json_integer_value(e);
			} else {
				if (!json_is_number(e))
					return moe_trace_rfail(r, MOE_EFORMAT, "line %llu: layer %u: \"%s\" entry %zu is not a number",
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
		return moe_trace_rfail(r, MOE_EFORMAT, "line %llu: \"seq\", \"pos\" (and \"token\") must be whole numbers",
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
			return moe_trace_rfail(r, MOE_EFORMAT, "line %llu: \"probs\" present but the header has \"probs\": false",
				(unsigned long long)r->lineno);
		if ((rc = json_matrix(r, v, "probs", h->n_experts, NULL, r->probs, 0)) != 0)
			return rc;
		r->t.probs = r->probs;
	}
	r->t.lse = NULL;
	if ((v = json_object_get(o, "lse")) != NULL || (h->flags & MOE_TRACE_LSE)) {
		if (!(h->flags & MOE_TRACE_LSE) || !json_is_array(v) || json_array_size(v) != h->n_moe)
			return moe_trace_rfail(r, MOE_EFORMAT, "line %llu: \"lse\" must be declared in the header and have %u numbers",
				(unsigned long long)r->lineno, h->n_moe);
		for (uint32_t l = 0; l < h->n_moe; l++) {
			if (!json_is_number(json_array_get(v, l)))
				return moe_trace_rfail(r, MOE_EFORMAT, "line %llu: \"lse\" entry %u is not a number",
					(unsigned long long)r->lineno, l + 1);
			r->lse[l] = (float)json_number_value(json_array_get(v, l));
		}
		r->t.lse = r->lse;
	}
	r->t.text = NULL;
	if ((v = json_object_get(o, "text")) != NULL) {
		if (!json_is_string(v) || json_string_length(v) > MOE_TRACE_MAX_TEXT)
			return moe_trace_rfail(r, MOE_EFORMAT, "line %llu: \"text\" must be a string of at most %u bytes",
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
	if ((size_t)(p - c->p) > max || !moe_trace_utf8_valid((const unsigned char *)c->p, (size_t)(p - c->p)))
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

int moe_trace_jsonl_read(struct moe_trace_reader *r)
{
	json_error_t je;
	json_t *o;
	size_t len;
	int rc;

	do {
		if ((rc = moe_trace_read_line(r, &len)) <= 0)
			return rc;
	} while (len == 0);
	if (strlen(r->line) == len && jsonl_fast(r))
		return 1;
	o = json_loadb(r->line, len, JSON_REJECT_DUPLICATES, &je);
	if (o == NULL || !json_is_object(o)) {
		json_decref(o);
		return moe_trace_rfail(r, MOE_EFORMAT, "line %llu: %s%s", (unsigned long long)r->lineno,
			o ? "not a JSON object" : "invalid JSON: ", o ? "" : je.text);
	}
	rc = jsonl_fields(r, o);
	json_decref(o);
	return rc;
}

int moe_trace_jsonl_write_header(struct moe_trace_writer *w)
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
	rc = moe_trace_wout(w, s, strlen(s));
	if (rc == 0)
		rc = moe_trace_wout(w, "\n", 1);
	free(s);
	json_decref(ls);
	json_decref(o);
	return rc;
oom:
	json_decref(ls);
	json_decref(o);
	return moe_trace_wfail(w, MOE_ENOMEM, "out of memory");
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

/* A short decimal that reads back as the same float. */
static void sb_float(struct sbuf *b, float f)
{
	char s[32];

	/* 6 digits reads well for round gate values; 9 always round-trips */
	snprintf(s, sizeof s, "%.6g", (double)f);
	if (strtof(s, NULL) != f)
		snprintf(s, sizeof s, "%.9g", (double)f);
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

int moe_trace_jsonl_write(struct moe_trace_writer *w, const struct moe_trace_token *t)
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
		return moe_trace_wfail(w, MOE_ENOMEM, "out of memory");
	return moe_trace_wout(w, w->rec, b.len);
}

