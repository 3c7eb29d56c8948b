/* CSV import of routing traces: rows token,layer,expert[,weight], header inferred from the rows. */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "trace_impl.h"

#define CSV_MAX_ROWS (1u << 28)

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

	while ((rc = moe_trace_read_line(r, &len)) > 0) {
		struct csv_row row;
		int f;
		if (len == 0)
			continue;
		if (r->lineno == 1 && isalpha((unsigned char)r->line[0]))
			continue;   /* column names */
		f = csv_parse(r->line, &row);
		if (f < 0 || (nf >= 0 && f != nf))
			return moe_trace_rfail(r, MOE_EFORMAT, "line %llu: expected token,layer,expert%s with whole numbers",
				(unsigned long long)r->lineno, nf == 4 ? ",weight" : "[,weight]");
		nf = f;
		if (f == 3)
			row.weight = 0;
		row.line = r->lineno;
		if (r->n_rows == cap) {
			struct csv_row *nr;
			if (cap >= CSV_MAX_ROWS)
				return moe_trace_rfail(r, MOE_ERANGE, "line %llu: more than %u CSV rows",
					(unsigned long long)r->lineno, CSV_MAX_ROWS);
			cap = cap ? cap * 2 : 1024;
			if ((nr = realloc(r->rows, cap * sizeof *nr)) == NULL)
				return moe_trace_rfail(r, MOE_ENOMEM, "out of memory");
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
		return moe_trace_rfail(r, MOE_EFORMAT, "no CSV rows");
	r->csv_weights = nf == 4;
	return 0;
}

/* Infers the header from the rows: layers seen, max expert + 1, and k from
 * the first token's first layer. */
int moe_trace_csv_read_header(struct moe_trace_reader *r)
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
		return moe_trace_rfail(r, MOE_ENOMEM, "out of memory");
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
		return moe_trace_rfail(r, MOE_EFORMAT, "CSV: %s", msg);
	return 0;
}

int moe_trace_csv_read(struct moe_trace_reader *r)
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
			return moe_trace_rfail(r, MOE_EFORMAT, "line %llu: token %llu has more than %u experts in layer %u",
				(unsigned long long)row->line, (unsigned long long)tok, k, row->layer);
		r->experts[l * k + fill[l]] = (uint16_t)row->expert;
		r->weights[l * k + fill[l]] = r->csv_weights ? row->weight : 1.0f / (float)k;
		fill[l]++;
	}
	for (uint32_t l = 0; l < h->n_moe; l++)
		if (fill[l] != k)
			return moe_trace_rfail(r, MOE_EFORMAT, "line %llu: token %llu has %u experts in layer %u, expected %u",
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

