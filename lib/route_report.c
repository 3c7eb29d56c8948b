/* JSON, tidy CSV and SVG renderings of moe_route_stats results. */
#include "route_report.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

static const char *const pol_name[MOE_CACHE_NPOLICY] = { "lru", "lfu", "opt" };

double moe_route_report_hit_rate(const struct moe_route_stats *s, int pol, uint32_t c)
{
	const struct moe_trace_header *h = moe_route_stats_header(s);
	uint64_t hits = 0, all = 0;

	for (uint32_t l = 0; l < h->n_moe; l++) {
		const uint64_t *d = moe_route_stats_cache(s, l, pol);
		if (d == NULL)
			return NAN;
		hits += moe_cache_hits(d, c);
		all += moe_cache_hits(d, h->n_experts + 1);
	}
	return all ? (double)hits / (double)all : NAN;
}

static double layer_hit_rate(const uint64_t *d, uint32_t E, uint32_t c)
{
	uint64_t all = moe_cache_hits(d, E + 1);

	return all ? (double)moe_cache_hits(d, c) / (double)all : NAN;
}

static uint32_t n_sizes(const struct moe_route_stats *s, const struct moe_route_report *r)
{
	return r->n_cache_sizes ? r->n_cache_sizes : moe_route_stats_header(s)->n_experts;
}

static uint32_t size_at(const struct moe_route_report *r, uint32_t i)
{
	return r->n_cache_sizes ? r->cache_sizes[i] : i + 1;
}

/* Per-layer scalar metrics, shared by the JSON and CSV renderers. */
struct layer_metrics {
	struct moe_route_balance b;
	double aux1, auxk, z, jaccard, consistency;
};

static void metrics(const struct moe_route_stats *s, uint32_t l, struct layer_metrics *m)
{
	const struct moe_trace_header *h = moe_route_stats_header(s);

	moe_route_balance(moe_route_stats_load_counts(s, l), h->n_experts,
		moe_route_stats_opts(s)->top_m, &m->b);
	if (moe_route_stats_aux_loss(s, l, &m->aux1, &m->auxk) != 0)
		m->aux1 = m->auxk = NAN;
	if (moe_route_stats_z_loss(s, l, &m->z) != 0)
		m->z = NAN;
	m->jaccard = moe_route_stats_jaccard(s, l);
	m->consistency = l > 0 ? moe_route_stats_consistency(s, l) : NAN;
}

/* Named scalars in output order. */
#define N_SCALARS 13
static void scalars(const struct layer_metrics *m, const char **names, double *v)
{
	static const char *const n[N_SCALARS] = { "cv", "jain", "max_mean", "entropy",
		"entropy_norm", "effective_experts", "top_m_share", "dead_experts",
		"aux_loss_top1", "aux_loss_topk", "z_loss", "jaccard_adjacent",
		"transition_consistency" };
	double x[N_SCALARS] = { m->b.cv, m->b.jain, m->b.max_mean, m->b.entropy,
		m->b.entropy_norm, m->b.eff_experts, m->b.top_m_share, m->b.dead,
		m->aux1, m->auxk, m->z, m->jaccard, m->consistency };

	for (int i = 0; i < N_SCALARS; i++) {
		names[i] = n[i];
		v[i] = x[i];
	}
}

/* Overall row: mean of each per-layer metric over layers that have it
 * (dead experts: total), so one figure summarises the model. */
static void overall(const struct moe_route_stats *s, double *v)
{
	uint32_t n = moe_route_stats_header(s)->n_moe, cnt[N_SCALARS] = { 0 };
	const char *names[N_SCALARS];

	for (int i = 0; i < N_SCALARS; i++)
		v[i] = 0;
	for (uint32_t l = 0; l < n; l++) {
		struct layer_metrics m;
		double x[N_SCALARS];
		metrics(s, l, &m);
		scalars(&m, names, x);
		for (int i = 0; i < N_SCALARS; i++)
			if (!isnan(x[i])) {
				v[i] += x[i];
				cnt[i]++;
			}
	}
	for (int i = 0; i < N_SCALARS; i++)
		if (i != 7)
			v[i] = cnt[i] ? v[i] / cnt[i] : NAN;
}

static double drop_fraction(const struct moe_route_stats *s, uint32_t l, uint32_t c)
{
	double all = (double)moe_route_stats_tokens(s) * moe_route_stats_header(s)->top_k;

	return all ? (double)moe_route_stats_drops(s, l)[c] / all : NAN;
}

/* ---- JSON ---- */

static json_t *num(double x)
{
	return isfinite(x) ? json_real(x) : json_null();
}

static json_t *u64s(const uint64_t *v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < n; i++)
		json_array_append_new(a, json_integer((json_int_t)v[i]));
	return a;
}

static json_t *cache_json(const struct moe_route_stats *s, const struct moe_route_report *r,
	uint32_t l)
{
	uint32_t E = moe_route_stats_header(s)->n_experts, ns = n_sizes(s, r);
	json_t *o = json_object(), *sz = json_array();

	for (uint32_t i = 0; i < ns; i++)
		json_array_append_new(sz, json_integer(size_at(r, i)));
	json_object_set_new(o, "sizes", sz);
	for (int p = 0; p < MOE_CACHE_NPOLICY; p++) {
		const uint64_t *d = moe_route_stats_cache(s, l, p);
		json_t *a = json_array();
		for (uint32_t i = 0; i < ns; i++)
			json_array_append_new(a, num(layer_hit_rate(d, E, size_at(r, i))));
		json_object_set_new(o, pol_name[p], a);
	}
	/* LRU depth = distinct other experts since the last use */
	json_object_set_new(o, "reuse_distance", u64s(moe_route_stats_cache(s, l, MOE_CACHE_LRU), E));
	json_object_set_new(o, "first_uses", json_integer((json_int_t)moe_route_stats_cache(s, l, 0)[E]));
	return o;
}

/* Symmetric pair count from the upper triangle. */
static uint64_t coact_at(const uint64_t *m, uint32_t E, uint32_t i, uint32_t j)
{
	return i < j ? m[(size_t)i * E + j] : m[(size_t)j * E + i];
}

static json_t *coact_json(const uint64_t *m, uint32_t E)
{
	json_t *a = json_array();

	for (uint32_t i = 0; i < E; i++) {
		json_t *row = json_array();
		for (uint32_t j = 0; j < E; j++)
			json_array_append_new(row, json_integer((json_int_t)coact_at(m, E, i, j)));
		json_array_append_new(a, row);
	}
	return a;
}

static json_t *top_tokens_json(const struct moe_route_stats *s, uint32_t l)
{
	struct moe_token_entry *e;
	size_t n;
	json_t *a = json_array();

	if (moe_route_stats_top_tokens(s, l, &e, &n) != 0)
		n = 0;
	for (size_t i = 0; i < n; i++) {
		const char *t = moe_route_stats_token_text(s, e[i].token);
		json_t *x = json_object();
		json_object_set_new(x, "expert", json_integer(e[i].expert));
		json_object_set_new(x, "token", json_integer(e[i].token));
		if (t)
			json_object_set_new(x, "text", json_string(t));
		json_object_set_new(x, "count", json_integer((json_int_t)e[i].count));
		json_array_append_new(a, x);
	}
	free(e);
	return a;
}

static json_t *layer_json(const struct moe_route_stats *s, const struct moe_route_report *r,
	uint32_t l)
{
	const struct moe_trace_header *h = moe_route_stats_header(s);
	const struct moe_route_opts *op = moe_route_stats_opts(s);
	const uint64_t *load = moe_route_stats_load_counts(s, l);
	struct layer_metrics m;
	const char *names[N_SCALARS];
	double v[N_SCALARS];
	json_t *o = json_object(), *f = json_array(), *cap = json_array();

	metrics(s, l, &m);
	scalars(&m, names, v);
	json_object_set_new(o, "layer", json_integer(h->moe_layers[l]));
	json_object_set_new(o, "load", u64s(load, h->n_experts));
	for (uint32_t e = 0; e < h->n_experts; e++)
		json_array_append_new(f, num(m.b.total ? (double)load[e] / (double)m.b.total : NAN));
	json_object_set_new(o, "load_fraction", f);
	json_object_set_new(o, "top1", u64s(moe_route_stats_top1_counts(s, l), h->n_experts));
	for (int i = 0; i < N_SCALARS; i++)
		json_object_set_new(o, names[i], num(v[i]));
	for (uint32_t c = 0; c < op->n_cf; c++) {
		json_t *x = json_object();
		json_object_set_new(x, "factor", json_real(op->cf[c]));
		json_object_set_new(x, "dropped", json_integer((json_int_t)moe_route_stats_drops(s, l)[c]));
		json_object_set_new(x, "drop_fraction", num(drop_fraction(s, l, c)));
		json_array_append_new(cap, x);
	}
	json_object_set_new(o, "capacity", cap);
	json_object_set_new(o, "adjacent_overlap", u64s(moe_route_stats_overlap(s, l), h->top_k + 1));
	if (moe_route_stats_coact(s, l))
		json_object_set_new(o, "coactivation", coact_json(moe_route_stats_coact(s, l), h->n_experts));
	if (moe_route_stats_transitions(s, l)) {
		json_t *t = json_array();
		for (uint32_t i = 0; i < h->n_experts; i++)
			json_array_append_new(t, u64s(moe_route_stats_transitions(s, l) + (size_t)i * h->n_experts,
				h->n_experts));
		/* rows: first-listed expert in the previous MoE layer */
		json_object_set_new(o, "transitions_from_previous", t);
	}
	if (moe_route_stats_cache(s, l, 0))
		json_object_set_new(o, "cache", cache_json(s, r, l));
	if (op->top_tokens)
		json_object_set_new(o, "top_tokens", top_tokens_json(s, l));
	return o;
}

static json_t *windows_json(const struct moe_route_stats *s)
{
	const struct moe_trace_header *h = moe_route_stats_header(s);
	json_t *a = json_array();

	for (size_t w = 0; w < moe_route_stats_windows(s); w++) {
		uint64_t tokens;
		const struct moe_route_balance *b = moe_route_stats_window(s, w, &tokens);
		json_t *o = json_object(), *ls = json_array();
		json_object_set_new(o, "tokens", json_integer((json_int_t)tokens));
		for (uint32_t l = 0; l < h->n_moe; l++) {
			json_t *x = json_object();
			json_object_set_new(x, "layer", json_integer(h->moe_layers[l]));
			json_object_set_new(x, "cv", num(b[l].cv));
			json_object_set_new(x, "jain", num(b[l].jain));
			json_object_set_new(x, "max_mean", num(b[l].max_mean));
			json_object_set_new(x, "entropy_norm", num(b[l].entropy_norm));
			json_object_set_new(x, "dead_experts", json_integer(b[l].dead));
			json_array_append_new(ls, x);
		}
		json_object_set_new(o, "layers", ls);
		json_array_append_new(a, o);
	}
	return a;
}

static json_t *overall_json(const struct moe_route_stats *s, const struct moe_route_report *r)
{
	const struct moe_trace_header *h = moe_route_stats_header(s);
	const struct moe_route_opts *op = moe_route_stats_opts(s);
	struct layer_metrics m0;
	const char *names[N_SCALARS];
	double v[N_SCALARS], x[N_SCALARS];
	json_t *o = json_object(), *cap = json_array();

	memset(&m0, 0, sizeof m0);
	scalars(&m0, names, x);
	overall(s, v);
	for (int i = 0; i < N_SCALARS; i++)
		json_object_set_new(o, names[i], num(v[i]));
	for (uint32_t c = 0; c < op->n_cf; c++) {
		uint64_t d = 0;
		double all = (double)moe_route_stats_tokens(s) * h->top_k * h->n_moe;
		for (uint32_t l = 0; l < h->n_moe; l++)
			d += moe_route_stats_drops(s, l)[c];
		json_t *e = json_object();
		json_object_set_new(e, "factor", json_real(op->cf[c]));
		json_object_set_new(e, "dropped", json_integer((json_int_t)d));
		json_object_set_new(e, "drop_fraction", num(all ? d / all : NAN));
		json_array_append_new(cap, e);
	}
	json_object_set_new(o, "capacity", cap);
	if (moe_route_stats_cache(s, 0, 0)) {
		json_t *c = json_object(), *sz = json_array();
		for (uint32_t i = 0; i < n_sizes(s, r); i++)
			json_array_append_new(sz, json_integer(size_at(r, i)));
		json_object_set_new(c, "sizes", sz);
		for (int p = 0; p < MOE_CACHE_NPOLICY; p++) {
			json_t *a = json_array();
			for (uint32_t i = 0; i < n_sizes(s, r); i++)
				json_array_append_new(a, num(moe_route_report_hit_rate(s, p, size_at(r, i))));
			json_object_set_new(c, pol_name[p], a);
		}
		json_object_set_new(o, "cache", c);
	}
	return o;
}

int moe_route_report_json(const struct moe_route_stats *s,
	const struct moe_route_report *r, struct moe_output *out)
{
	const struct moe_trace_header *h = moe_route_stats_header(s);
	const struct moe_route_opts *op = moe_route_stats_opts(s);
	json_t *o = json_object(), *ls = json_array(), *layers = json_array(), *opt = json_object(),
		*cf = json_array();
	char *text;
	int rc;

	for (uint32_t i = 0; i < h->n_moe; i++) {
		json_array_append_new(ls, json_integer(h->moe_layers[i]));
		json_array_append_new(layers, layer_json(s, r, i));
	}
	for (uint32_t i = 0; i < op->n_cf; i++)
		json_array_append_new(cf, json_real(op->cf[i]));
	json_object_set_new(opt, "capacity_factors", cf);
	json_object_set_new(opt, "group_size", json_integer(op->group_size));
	json_object_set_new(opt, "cache_segment", json_integer(op->cache_segment));
	json_object_set_new(opt, "top_m", json_integer(op->top_m));
	json_object_set_new(opt, "window", json_integer((json_int_t)op->window));
	json_object_set_new(opt, "top_tokens", json_integer(op->top_tokens));
	json_object_set_new(o, "model", json_string(h->model));
	json_object_set_new(o, "gating", json_string(h->gating));
	json_object_set_new(o, "n_layers", json_integer(h->n_layers));
	json_object_set_new(o, "moe_layers", ls);
	json_object_set_new(o, "n_experts", json_integer(h->n_experts));
	json_object_set_new(o, "top_k", json_integer(h->top_k));
	json_object_set_new(o, "tokens", json_integer((json_int_t)moe_route_stats_tokens(s)));
	json_object_set_new(o, "options", opt);
	json_object_set_new(o, "overall", overall_json(s, r));
	json_object_set_new(o, "layers", layers);
	if (op->window)
		json_object_set_new(o, "windows", windows_json(s));
	text = json_dumps(o, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
	json_decref(o);
	if (text == NULL)
		return MOE_ENOMEM;
	rc = moe_output_write(out, text, strlen(text));
	if (rc == 0)
		rc = moe_output_write(out, "\n", 1);
	free(text);
	return rc;
}

/* ---- CSV ---- */

static int csv_row(struct moe_output *o, const char *layer, long expert,
	const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* One "layer,expert,metric,value" line; fmt formats "metric,value". */
static int csv_row(struct moe_output *o, const char *layer, long expert,
	const char *fmt, ...)
{
	char buf[256];
	int n = expert >= 0 ? snprintf(buf, sizeof buf, "%s,%ld,", layer, expert) :
		snprintf(buf, sizeof buf, "%s,,", layer);
	va_list ap;

	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof buf - 2)
		n = (int)sizeof buf - 2;
	buf[n++] = '\n';
	return moe_output_write(o, buf, (size_t)n);
}

/* metric token_<id>: how often the expert took that token (top ones). */
static int csv_top_tokens(const struct moe_route_stats *s, uint32_t l, const char *ln,
	struct moe_output *o)
{
	struct moe_token_entry *e;
	size_t n;
	int rc = moe_route_stats_top_tokens(s, l, &e, &n);

	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = csv_row(o, ln, e[i].expert, "token_%u,%llu", e[i].token,
			(unsigned long long)e[i].count);
	free(e);
	return rc;
}

static int csv_layer(const struct moe_route_stats *s, const struct moe_route_report *r,
	uint32_t l, struct moe_output *o)
{
	const struct moe_trace_header *h = moe_route_stats_header(s);
	const struct moe_route_opts *op = moe_route_stats_opts(s);
	const uint64_t *load = moe_route_stats_load_counts(s, l), *top1 = moe_route_stats_top1_counts(s, l);
	const uint64_t *co = moe_route_stats_coact(s, l);
	struct layer_metrics m;
	const char *names[N_SCALARS];
	double v[N_SCALARS];
	char ln[16];
	int rc = 0;

	snprintf(ln, sizeof ln, "%u", h->moe_layers[l]);
	metrics(s, l, &m);
	scalars(&m, names, v);
	for (uint32_t e = 0; rc == 0 && e < h->n_experts; e++) {
		rc = csv_row(o, ln, e, "load,%llu", (unsigned long long)load[e]);
		if (rc == 0)
			rc = csv_row(o, ln, e, "load_fraction,%.10g",
				m.b.total ? (double)load[e] / (double)m.b.total : NAN);
		if (rc == 0)
			rc = csv_row(o, ln, e, "top1,%llu", (unsigned long long)top1[e]);
		for (uint32_t j = 0; co && rc == 0 && j < h->n_experts; j++)
			if (coact_at(co, h->n_experts, e, j))
				rc = csv_row(o, ln, e, "coact_e%u,%llu", j,
					(unsigned long long)coact_at(co, h->n_experts, e, j));
	}
	for (int i = 0; rc == 0 && i < N_SCALARS; i++)
		rc = csv_row(o, ln, -1, "%s,%.10g", names[i], v[i]);
	for (uint32_t c = 0; rc == 0 && c < op->n_cf; c++)
		rc = csv_row(o, ln, -1, "drop_fraction_cf%g,%.10g", op->cf[c], drop_fraction(s, l, c));
	for (int p = 0; rc == 0 && p < MOE_CACHE_NPOLICY && moe_route_stats_cache(s, l, p); p++)
		for (uint32_t i = 0; rc == 0 && i < n_sizes(s, r); i++)
			rc = csv_row(o, ln, -1, "hit_rate_%s_c%u,%.10g", pol_name[p], size_at(r, i),
				layer_hit_rate(moe_route_stats_cache(s, l, p), h->n_experts, size_at(r, i)));
	if (moe_route_stats_cache(s, l, MOE_CACHE_LRU)) {
		const uint64_t *d = moe_route_stats_cache(s, l, MOE_CACHE_LRU);
		for (uint32_t i = 0; rc == 0 && i < h->n_experts; i++)
			rc = csv_row(o, ln, -1, "reuse_distance_%u,%llu", i, (unsigned long long)d[i]);
		if (rc == 0)
			rc = csv_row(o, ln, -1, "first_uses,%llu", (unsigned long long)d[h->n_experts]);
	}
	if (rc == 0 && op->top_tokens)
		rc = csv_top_tokens(s, l, ln, o);
	return rc;
}

int moe_route_report_csv(const struct moe_route_stats *s,
	const struct moe_route_report *r, struct moe_output *o)
{
	const struct moe_trace_header *h = moe_route_stats_header(s);
	struct layer_metrics m0;
	const char *names[N_SCALARS];
	double v[N_SCALARS], x[N_SCALARS];
	int rc = moe_output_write(o, "layer,expert,metric,value\n", 26);

	for (uint32_t l = 0; rc == 0 && l < h->n_moe; l++)
		rc = csv_layer(s, r, l, o);
	memset(&m0, 0, sizeof m0);
	scalars(&m0, names, x);
	overall(s, v);
	for (int i = 0; rc == 0 && i < N_SCALARS; i++)
		rc = csv_row(o, "all", -1, "%s,%.10g", names[i], v[i]);
	for (int p = 0; rc == 0 && p < MOE_CACHE_NPOLICY && moe_route_stats_cache(s, 0, p); p++)
		for (uint32_t i = 0; rc == 0 && i < n_sizes(s, r); i++)
			rc = csv_row(o, "all", -1, "hit_rate_%s_c%u,%.10g", pol_name[p], size_at(r, i),
				moe_route_report_hit_rate(s, p, size_at(r, i)));
	for (size_t w = 0; rc == 0 && w < moe_route_stats_windows(s); w++) {
		const struct moe_route_balance *b = moe_route_stats_window(s, w, NULL);
		for (uint32_t l = 0; rc == 0 && l < h->n_moe; l++) {
			char ln[16];
			snprintf(ln, sizeof ln, "%u", h->moe_layers[l]);
			rc = csv_row(o, ln, -1, "window%zu_cv,%.10g", w, b[l].cv);
			if (rc == 0)
				rc = csv_row(o, ln, -1, "window%zu_jain,%.10g", w, b[l].jain);
			if (rc == 0)
				rc = csv_row(o, ln, -1, "window%zu_entropy_norm,%.10g", w, b[l].entropy_norm);
		}
	}
	return rc;
}

/* ---- SVG ---- */

static int svg_printf(struct moe_output *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int svg_printf(struct moe_output *o, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0)
		return MOE_EINVAL;
	return moe_output_write(o, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* Blue (under-used) - white (uniform share) - red (over-used), by log2 of
 * load / mean over [-2, 2]. */
static void heat_color(double ratio, char *buf, size_t n)
{
	double x = ratio > 0 ? log2(ratio) / 2 : -1;
	int r = 255, g = 255, b = 255;

	if (x > 1)
		x = 1;
	if (x < -1)
		x = -1;
	if (x > 0) {
		g = b = (int)lround(255 * (1 - x));
	} else {
		r = g = (int)lround(255 * (1 + x));
	}
	snprintf(buf, n, "#%02x%02x%02x", r, g, b);
}

static int svg_heatmap(const struct moe_route_stats *s, struct moe_output *o, int y0)
{
	const struct moe_trace_header *h = moe_route_stats_header(s);
	double cw = 960.0 / h->n_experts, ch = h->n_moe > 40 ? 400.0 / h->n_moe : 10;
	int rc = svg_printf(o, "<text x=\"10\" y=\"%d\" font-size=\"14\">Load per layer (rows) and expert "
		"(columns): blue below the uniform share, red above (log2 scale, +-2)</text>\n", y0 - 8);

	if (cw > 24)
		cw = 24;
	for (uint32_t l = 0; rc == 0 && l < h->n_moe; l++) {
		const uint64_t *c = moe_route_stats_load_counts(s, l);
		struct moe_route_balance b;
		moe_route_balance(c, h->n_experts, 1, &b);
		double mean = (double)b.total / h->n_experts;
		rc = svg_printf(o, "<text x=\"36\" y=\"%.1f\" font-size=\"9\" text-anchor=\"end\">%u</text>\n",
			y0 + (l + 0.8) * ch, h->moe_layers[l]);
		for (uint32_t e = 0; rc == 0 && e < h->n_experts; e++) {
			char col[8];
			heat_color(mean > 0 ? (double)c[e] / mean : 1, col, sizeof col);
			rc = svg_printf(o, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\">"
				"<title>layer %u expert %u: %llu</title></rect>\n", 40 + e * cw, y0 + l * ch,
				cw, ch, col, h->moe_layers[l], e, (unsigned long long)c[e]);
		}
	}
	return rc;
}

static int svg_cache(const struct moe_route_stats *s, struct moe_output *o, int y0)
{
	static const char *const color[MOE_CACHE_NPOLICY] = { "#1f77b4", "#2ca02c", "#d62728" };
	uint32_t E = moe_route_stats_header(s)->n_experts;
	const double W = 600, H = 250, X = 60;
	int rc = svg_printf(o, "<text x=\"10\" y=\"%d\" font-size=\"14\">Expert-cache hit rate by cache size "
		"(all layers)</text>\n<rect x=\"%g\" y=\"%d\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"#888\"/>\n"
		"<text x=\"%g\" y=\"%g\" font-size=\"10\">1</text><text x=\"%g\" y=\"%g\" font-size=\"10\" "
		"text-anchor=\"end\">%u experts</text><text x=\"%g\" y=\"%d\" font-size=\"10\" text-anchor=\"end\">1.0</text>"
		"<text x=\"%g\" y=\"%g\" font-size=\"10\" text-anchor=\"end\">0.0</text>\n",
		y0 - 8, X, y0, W, H, X, y0 + H + 12, X + W, y0 + H + 12, E, X - 4, y0 + 10, X - 4, y0 + H);

	for (int p = 0; rc == 0 && p < MOE_CACHE_NPOLICY; p++) {
		rc = svg_printf(o, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", color[p]);
		for (uint32_t c = 1; rc == 0 && c <= E; c++) {
			double v = moe_route_report_hit_rate(s, p, c);
			double x = X + (E > 1 ? (c - 1) * W / (E - 1) : W / 2);
			rc = svg_printf(o, "%.1f,%.1f ", x, y0 + H - (isnan(v) ? 0 : v) * H);
		}
		if (rc == 0)
			rc = svg_printf(o, "\"/>\n<text x=\"%g\" y=\"%g\" font-size=\"12\" fill=\"%s\">%s</text>\n",
				X + W + 10, y0 + 20.0 + 16 * p, color[p], pol_name[p]);
	}
	return rc;
}

int moe_route_report_svg(const struct moe_route_stats *s,
	const struct moe_route_report *r, struct moe_output *o)
{
	const struct moe_trace_header *h = moe_route_stats_header(s);
	double ch = h->n_moe > 40 ? 400.0 / h->n_moe : 10;
	int heat_h = (int)(ch * h->n_moe) + 50, cache = moe_route_stats_cache(s, 0, 0) != NULL;
	int total = 30 + heat_h + (cache ? 310 : 0), rc;

	(void)r;
	rc = svg_printf(o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" "
		"width=\"1040\" height=\"%d\" font-family=\"sans-serif\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
		total);
	if (rc == 0)
		rc = svg_heatmap(s, o, 30);
	if (rc == 0 && cache)
		rc = svg_cache(s, o, 30 + heat_h + 20);
	if (rc == 0)
		rc = svg_printf(o, "</svg>\n");
	return rc;
}
