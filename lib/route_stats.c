/* Routing statistics: exact integer accumulators per MoE layer, derived metrics, partial state I/O. */
#include "route_stats.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"

/* Probabilities and lse^2 are summed in fixed point so that the sum does
 * not depend on the order of tokens: merged shards then give exactly the
 * single-pass result, which floating-point sums would not. */
#define PROB_SCALE 4294967296.0   /* 2^32: p in [0, 1] */
#define LSE_SCALE 65536.0         /* 2^16 */
#define MAX_MATRIX_ENTRIES (1u << 27)
#define MAX_THREADS 16
#define MAX_SEGMENT_IDS (1u << 27)   /* 256 MiB of buffered ids */

__extension__ typedef __int128 i128;

struct layer {
	uint64_t *load, *top1;    /* (E) assignments, first-listed choices */
	uint64_t *probsum;        /* (E) sum round(p * 2^32), or NULL */
	i128 zsum;                /* sum round(lse^2 * 2^16) */
	uint64_t *drops;          /* (n_cf) */
	uint64_t *coact;          /* (E, E) or NULL */
	uint64_t *trans;          /* (E, E) from the previous MoE layer, or NULL */
	uint64_t *overlap;        /* (k + 1) */
	uint64_t *cache;          /* (MOE_CACHE_NPOLICY, E + 1) or NULL */
	struct moe_token_count *tok;   /* (expert, token id) counts, or NULL */
	/* transient state, not saved in partials */
	uint32_t *group;          /* (E) loads in the current capacity group */
	uint16_t *seg;            /* (cache_segment, k) current cache segment */
	uint64_t *mark;           /* (E) tick of the last token using the expert */
	uint64_t *wload;          /* (E) loads in the current window */
	uint64_t tick;            /* tokens seen by this layer */
	uint32_t group_n, seg_n;  /* tokens in the current group, segment */
	uint64_t win_n;           /* tokens in the current window */
	size_t n_wins;            /* windows closed */
};

struct moe_route_stats {
	struct moe_error err;
	struct moe_trace_header h;
	uint32_t *layers;
	char *model, *gating;
	struct moe_route_opts o;
	uint64_t tokens;
	int matrices;
	struct layer *L;          /* (n_moe) */
	struct moe_token_count *texts;  /* token id -> text, with top_tokens */
	struct moe_cache_sim *sim[MAX_THREADS];   /* one per cache thread */
	int n_threads;
	int have_prev;
	uint32_t prev_seq, prev_pos;
	uint16_t *b_experts;              /* (b_cap, n_moe, k) batch of tokens */
	float *b_probs;                   /* (b_cap, n_moe, E) or NULL */
	float *b_lse;                     /* (b_cap, n_moe) or NULL */
	int32_t *b_token;                 /* (b_cap) */
	unsigned char *b_events;          /* (b_cap) EV_* */
	uint32_t b_n, b_cap;
	uint64_t win_n;                   /* tokens in the current window */
	struct moe_route_balance *wins;   /* (n_wins, n_moe) */
	uint64_t *win_tokens;             /* (n_wins) */
	size_t n_wins, cap_wins;
};

void moe_route_opts_init(struct moe_route_opts *o)
{
	static const double cf[] = { 1.0, 1.25, 1.5, 2.0 };

	memset(o, 0, sizeof *o);
	memcpy(o->cf, cf, sizeof cf);
	o->n_cf = 4;
	o->group_size = 1024;
	o->cache_segment = 4096;
	o->top_m = 1;
}

static int cmp_desc(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? 1 : x > y ? -1 : 0;
}

void moe_route_balance(const uint64_t *c, uint32_t n, uint32_t top_m,
	struct moe_route_balance *b)
{
	double total = 0, sq = 0, max = 0, h = 0, var = 0, mean;
	uint64_t *sorted;

	memset(b, 0, sizeof *b);
	for (uint32_t i = 0; i < n; i++) {
		total += (double)c[i];
		sq += (double)c[i] * (double)c[i];
		if ((double)c[i] > max)
			max = (double)c[i];
		b->dead += c[i] == 0;
		b->total += c[i];
	}
	if (total == 0) {
		b->cv = b->jain = b->max_mean = b->entropy = b->entropy_norm =
			b->eff_experts = b->top_m_share = NAN;
		return;
	}
	mean = total / n;
	for (uint32_t i = 0; i < n; i++) {
		double f = (double)c[i] / total, d = (double)c[i] - mean;
		var += d * d;
		if (c[i])
			h -= f * log(f);
	}
	b->cv = sqrt(var / n) / mean;
	b->jain = total * total / (n * sq);
	b->max_mean = max / mean;
	b->entropy = h;
	b->entropy_norm = n > 1 ? h / log((double)n) : 1.0;
	b->eff_experts = exp(h);
	if ((sorted = malloc(n * sizeof *sorted)) != NULL) {
		double top = 0;
		memcpy(sorted, c, n * sizeof *sorted);
		qsort(sorted, n, sizeof *sorted, cmp_desc);
		for (uint32_t i = 0; i < top_m && i < n; i++)
			top += (double)sorted[i];
		b->top_m_share = top / total;
		free(sorted);
	} else {
		b->top_m_share = NAN;
	}
}

static void *zalloc(size_t n, size_t size, int *oom)
{
	void *p;

	if (n == 0)
		n = 1;
	p = calloc(n, size);
	if (p == NULL)
		*oom = 1;
	return p;
}

static int alloc_layers(struct moe_route_stats *s)
{
	uint32_t E = s->h.n_experts, k = s->h.top_k;
	int oom = 0;

	s->matrices = E <= 1024 && (uint64_t)E * E * s->h.n_moe <= MAX_MATRIX_ENTRIES;
	s->L = zalloc(s->h.n_moe, sizeof *s->L, &oom);
	if (oom)
		return moe_error_set(&s->err, MOE_ENOMEM, "out of memory");
	for (uint32_t l = 0; l < s->h.n_moe; l++) {
		struct layer *y = &s->L[l];
		y->load = zalloc(E, sizeof *y->load, &oom);
		y->top1 = zalloc(E, sizeof *y->top1, &oom);
		if (s->h.flags & MOE_TRACE_PROBS)
			y->probsum = zalloc(E, sizeof *y->probsum, &oom);
		y->drops = zalloc(s->o.n_cf, sizeof *y->drops, &oom);
		if (s->matrices) {
			y->coact = zalloc((size_t)E * E, sizeof *y->coact, &oom);
			if (l > 0)
				y->trans = zalloc((size_t)E * E, sizeof *y->trans, &oom);
		}
		y->overlap = zalloc(k + 1, sizeof *y->overlap, &oom);
		if (!s->o.no_cache) {
			y->cache = zalloc((size_t)MOE_CACHE_NPOLICY * (E + 1), sizeof *y->cache, &oom);
			y->seg = zalloc((size_t)s->o.cache_segment * k, sizeof *y->seg, &oom);
		}
		y->group = zalloc(E, sizeof *y->group, &oom);
		y->mark = zalloc(E, sizeof *y->mark, &oom);
		if (s->o.window)
			y->wload = zalloc(E, sizeof *y->wload, &oom);
		if (s->o.top_tokens && moe_token_count_new(&y->tok) != 0)
			oom = 1;
	}
	if (s->o.top_tokens && moe_token_count_new(&s->texts) != 0)
		oom = 1;
	{
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		s->n_threads = cpus < 1 ? 1 : cpus > MAX_THREADS ? MAX_THREADS : (int)cpus;
		if ((uint32_t)s->n_threads > s->h.n_moe)
			s->n_threads = (int)s->h.n_moe;
	}
	for (int i = 0; !oom && !s->o.no_cache && i < s->n_threads; i++)
		if (moe_cache_sim_new(&s->sim[i], E) != 0)
			oom = 1;
	/* a batch of about 2^22 stored values keeps threads busy and memory small */
	{
		uint64_t per = (uint64_t)s->h.n_moe * (k + ((s->h.flags & MOE_TRACE_PROBS) ? E : 0) + 1);
		uint64_t cap = (1u << 22) / per;
		s->b_cap = cap < 1 ? 1 : cap > 4096 ? 4096 : (uint32_t)cap;
	}
	s->b_experts = zalloc((size_t)s->b_cap * s->h.n_moe * k, sizeof *s->b_experts, &oom);
	if (s->h.flags & MOE_TRACE_PROBS)
		s->b_probs = zalloc((size_t)s->b_cap * s->h.n_moe * E, sizeof *s->b_probs, &oom);
	if (s->h.flags & MOE_TRACE_LSE)
		s->b_lse = zalloc((size_t)s->b_cap * s->h.n_moe, sizeof *s->b_lse, &oom);
	s->b_token = zalloc(s->b_cap, sizeof *s->b_token, &oom);
	s->b_events = zalloc(s->b_cap, sizeof *s->b_events, &oom);
	return oom ? moe_error_set(&s->err, MOE_ENOMEM, "out of memory") : 0;
}

int moe_route_stats_new(struct moe_route_stats **out,
	const struct moe_trace_header *h, const struct moe_route_opts *o)
{
	struct moe_route_stats *s = calloc(1, sizeof *s);
	char msg[256];

	*out = s;
	if (s == NULL)
		return MOE_ENOMEM;
	if (moe_trace_header_check(h, msg, sizeof msg) != 0)
		return moe_error_set(&s->err, MOE_EINVAL, "header: %s", msg);
	if (o->n_cf > MOE_ROUTE_MAX_CF || o->group_size == 0 || o->cache_segment == 0 ||
	    o->cache_segment > (1u << 24) || o->top_m == 0)
		return moe_error_set(&s->err, MOE_EINVAL, "bad statistics options");
	if (!o->no_cache && ((uint64_t)h->n_moe * h->top_k * o->cache_segment > MAX_SEGMENT_IDS ||
	    (uint64_t)h->top_k * o->cache_segment > MOE_CACHE_MAX_RUN))
		return moe_error_set(&s->err, MOE_ERANGE,
			"cache segment of %u tokens needs more than %u buffered expert ids; use a smaller --cache-segment",
			o->cache_segment, MAX_SEGMENT_IDS);
	s->h = *h;
	s->o = *o;
	s->layers = malloc(h->n_moe * sizeof *s->layers);
	s->model = strdup(h->model);
	s->gating = strdup(h->gating);
	if (!s->layers || !s->model || !s->gating)
		return moe_error_set(&s->err, MOE_ENOMEM, "out of memory");
	memcpy(s->layers, h->moe_layers, h->n_moe * sizeof *s->layers);
	s->h.moe_layers = s->layers;
	s->h.model = s->model;
	s->h.gating = s->gating;
	s->h.vocab = "";
	s->h.flags &= MOE_TRACE_PROBS | MOE_TRACE_LSE;
	return alloc_layers(s);
}

void moe_route_stats_free(struct moe_route_stats *s)
{
	if (s == NULL)
		return;
	for (uint32_t l = 0; s->L && l < s->h.n_moe; l++) {
		struct layer *y = &s->L[l];
		free(y->load);
		free(y->top1);
		free(y->probsum);
		free(y->drops);
		free(y->coact);
		free(y->trans);
		free(y->overlap);
		free(y->cache);
		free(y->group);
		free(y->seg);
		free(y->mark);
		free(y->wload);
		moe_token_count_free(y->tok);
	}
	moe_token_count_free(s->texts);
	free(s->b_experts);
	free(s->b_probs);
	free(s->b_lse);
	free(s->b_token);
	free(s->b_events);
	free(s->L);
	for (int i = 0; i < MAX_THREADS; i++)
		moe_cache_sim_free(s->sim[i]);
	free(s->wins);
	free(s->win_tokens);
	free(s->layers);
	free(s->model);
	free(s->gating);
	free(s);
}

const char *moe_route_stats_errstr(const struct moe_route_stats *s)
{
	return moe_error_str(&s->err);
}

/*
 * Tokens are buffered in a batch and each worker thread takes whole layers
 * (l = id, id + n_threads, ...) through the batch: every statistic is per
 * layer, and the per-token events (new sequence, adjacency) are decided
 * once by the caller's thread, so all layers see the same groups,
 * segments and windows.
 */
enum { EV_NEWSEQ = 1, EV_ADJACENT = 2 };

/* Capacity of an expert in a group of n tokens: floor(CF * n * k / E). */
static void close_group(const struct moe_route_stats *s, struct layer *y)
{
	uint32_t E = s->h.n_experts;

	if (y->group_n == 0)
		return;
	for (uint32_t c = 0; c < s->o.n_cf; c++) {
		double cap = floor(s->o.cf[c] * (double)y->group_n * s->h.top_k / E);
		uint64_t d = 0;
		for (uint32_t e = 0; e < E; e++)
			if ((double)y->group[e] > cap)
				d += y->group[e] - (uint64_t)cap;
		y->drops[c] += d;
	}
	memset(y->group, 0, E * sizeof *y->group);
	y->group_n = 0;
}

static int close_segment(const struct moe_route_stats *s, struct layer *y,
	struct moe_cache_sim *sim)
{
	int rc = 0;

	if (y->seg && y->seg_n > 0)
		rc = moe_cache_sim_run(sim, y->seg, (size_t)y->seg_n * s->h.top_k, y->cache);
	y->seg_n = 0;
	return rc;
}

/* The window slots were reserved by the caller's thread. */
static void close_window(const struct moe_route_stats *s, struct layer *y, uint32_t l)
{
	if (y->win_n == 0)
		return;
	moe_route_balance(y->wload, s->h.n_experts, s->o.top_m,
		&s->wins[y->n_wins++ * s->h.n_moe + l]);
	memset(y->wload, 0, s->h.n_experts * sizeof *y->wload);
	y->win_n = 0;
}

/* Token i of the batch in layer l. */
static int add_layer(const struct moe_route_stats *s, uint32_t l, uint32_t i)
{
	struct layer *y = &s->L[l];
	uint32_t k = s->h.top_k, E = s->h.n_experts, n = s->h.n_moe, inter = 0;
	const uint16_t *e = s->b_experts + ((size_t)i * n + l) * k;

	y->tick++;
	y->top1[e[0]]++;
	for (uint32_t j = 0; j < k; j++) {
		y->load[e[j]]++;
		y->group[e[j]]++;
		inter += y->mark[e[j]] == y->tick - 1;
	}
	for (uint32_t j = 0; j < k; j++)
		y->mark[e[j]] = y->tick;
	if (s->b_events[i] & EV_ADJACENT)
		y->overlap[inter]++;
	if (y->coact)   /* upper triangle only: half the increments */
		for (uint32_t a = 0; a < k; a++)
			for (uint32_t b = a + 1; b < k; b++) {
				uint32_t lo = e[a] < e[b] ? e[a] : e[b], hi = e[a] ^ e[b] ^ lo;
				y->coact[(size_t)lo * E + hi]++;
			}
	if (y->trans)
		y->trans[(size_t)e[-(ptrdiff_t)k] * E + e[0]]++;
	if (y->seg)
		memcpy(y->seg + (size_t)y->seg_n * k, e, k * sizeof *e);
	if (y->wload)
		for (uint32_t j = 0; j < k; j++)
			y->wload[e[j]]++;
	if (y->probsum) {
		const float *p = s->b_probs + ((size_t)i * n + l) * E;
		for (uint32_t x = 0; x < E; x++)
			y->probsum[x] += (uint64_t)llrint((double)p[x] * PROB_SCALE);
	}
	if (s->b_lse) {
		double v = s->b_lse[(size_t)i * n + l];
		y->zsum += (i128)llrint(v * v * LSE_SCALE);
	}
	if (y->tok && s->b_token[i] >= 0)
		for (uint32_t j = 0; j < k; j++)
			if (moe_token_count_add(y->tok, e[j], (uint32_t)s->b_token[i], 1) != 0)
				return MOE_ENOMEM;
	return 0;
}

struct job {
	const struct moe_route_stats *s;
	int id, final, rc;
};

static void *worker(void *arg)
{
	struct job *j = arg;
	const struct moe_route_stats *s = j->s;
	struct moe_cache_sim *sim = s->sim[j->id];

	for (uint32_t l = (uint32_t)j->id; l < s->h.n_moe; l += (uint32_t)s->n_threads) {
		struct layer *y = &s->L[l];
		for (uint32_t i = 0; i < s->b_n && j->rc == 0; i++) {
			if (s->b_events[i] & EV_NEWSEQ) {
				close_group(s, y);
				j->rc |= close_segment(s, y, sim);
			}
			j->rc |= add_layer(s, l, i);
			if (++y->group_n == s->o.group_size)
				close_group(s, y);
			if (y->seg && ++y->seg_n == s->o.cache_segment)
				j->rc |= close_segment(s, y, sim);
			if (y->wload && ++y->win_n == s->o.window)
				close_window(s, y, l);
		}
		if (j->final) {
			close_group(s, y);
			j->rc |= close_segment(s, y, sim);
			if (y->wload)
				close_window(s, y, l);
		}
	}
	return NULL;
}

/* Runs the batch through all layers on n_threads threads. */
static int run_batch(struct moe_route_stats *s, int final)
{
	struct job jobs[MAX_THREADS];
	pthread_t tid[MAX_THREADS];
	int started = 1, rc = 0;

	for (int i = 0; i < s->n_threads; i++)
		jobs[i] = (struct job){ s, i, final, 0 };
	for (int i = 1; i < s->n_threads && started == i; i++)
		if (pthread_create(&tid[i], NULL, worker, &jobs[i]) == 0)
			started = i + 1;
	/* threads that failed to start: their layers run here */
	for (int i = started; i < s->n_threads; i++)
		worker(&jobs[i]);
	worker(&jobs[0]);
	for (int i = 1; i < started; i++)
		pthread_join(tid[i], NULL);
	for (int i = 0; i < s->n_threads; i++)
		rc |= jobs[i].rc;
	s->b_n = 0;
	return rc ? moe_error_set(&s->err, MOE_ENOMEM, "out of memory") : 0;
}

/* Counts windows as the workers will, so that their slots exist. */
static int reserve_window(struct moe_route_stats *s, uint64_t tokens)
{
	uint32_t n = s->h.n_moe;

	if (s->n_wins == s->cap_wins) {
		size_t cap = s->cap_wins ? s->cap_wins * 2 : 64;
		struct moe_route_balance *w = realloc(s->wins, cap * n * sizeof *w);
		if (w == NULL)
			return moe_error_set(&s->err, MOE_ENOMEM, "out of memory");
		s->wins = w;
		uint64_t *t = realloc(s->win_tokens, cap * sizeof *t);
		if (t == NULL)
			return moe_error_set(&s->err, MOE_ENOMEM, "out of memory");
		s->win_tokens = t;
		s->cap_wins = cap;
	}
	s->win_tokens[s->n_wins++] = tokens;
	s->win_n = 0;
	return 0;
}

int moe_route_stats_flush(struct moe_route_stats *s)
{
	int rc;

	if (s->err.code)
		return s->err.code;
	if (s->win_n && (rc = reserve_window(s, s->win_n)) != 0)
		return rc;
	s->have_prev = 0;
	return run_batch(s, 1);
}

int moe_route_stats_add(struct moe_route_stats *s, const struct moe_trace_token *t)
{
	uint32_t k = s->h.top_k, n = s->h.n_moe, i = s->b_n;
	int rc;

	if (s->err.code)
		return s->err.code;
	if ((s->h.flags & MOE_TRACE_PROBS) && t->probs == NULL)
		return moe_error_set(&s->err, MOE_EINVAL, "token without router probabilities");
	if ((s->h.flags & MOE_TRACE_LSE) && t->lse == NULL)
		return moe_error_set(&s->err, MOE_EINVAL, "token without log-sum-exp");
	for (uint32_t l = 0; t->lse && l < n; l++)
		if (!(fabsf(t->lse[l]) <= MOE_TRACE_MAX_LSE))
			return moe_error_set(&s->err, MOE_ERANGE, "log-sum-exp beyond 1e6");
	s->b_events[i] = (!s->have_prev || t->seq != s->prev_seq ? EV_NEWSEQ : 0) |
		(s->have_prev && t->seq == s->prev_seq && t->pos == s->prev_pos + 1 ? EV_ADJACENT : 0);
	memcpy(s->b_experts + (size_t)i * n * k, t->experts, (size_t)n * k * sizeof *t->experts);
	if (s->b_probs)
		memcpy(s->b_probs + (size_t)i * n * s->h.n_experts, t->probs,
			(size_t)n * s->h.n_experts * sizeof *t->probs);
	if (s->b_lse)
		memcpy(s->b_lse + (size_t)i * n, t->lse, n * sizeof *t->lse);
	s->b_token[i] = t->token;
	if (s->texts && t->token >= 0 && t->text &&
	    moe_token_count_set_text(s->texts, (uint32_t)t->token, t->text) != 0)
		return moe_error_set(&s->err, MOE_ENOMEM, "out of memory");
	s->tokens++;
	s->have_prev = 1;
	s->prev_seq = t->seq;
	s->prev_pos = t->pos;
	if (s->o.window && ++s->win_n == s->o.window && (rc = reserve_window(s, s->win_n)) != 0)
		return rc;
	if (++s->b_n == s->b_cap)
		return run_batch(s, 0);
	return 0;
}

/* ---- accessors ---- */

const struct moe_trace_header *moe_route_stats_header(const struct moe_route_stats *s) { return &s->h; }
const struct moe_route_opts *moe_route_stats_opts(const struct moe_route_stats *s) { return &s->o; }
uint64_t moe_route_stats_tokens(const struct moe_route_stats *s) { return s->tokens; }
const uint64_t *moe_route_stats_load_counts(const struct moe_route_stats *s, uint32_t l) { return s->L[l].load; }
const uint64_t *moe_route_stats_top1_counts(const struct moe_route_stats *s, uint32_t l) { return s->L[l].top1; }
const uint64_t *moe_route_stats_drops(const struct moe_route_stats *s, uint32_t l) { return s->L[l].drops; }
const uint64_t *moe_route_stats_coact(const struct moe_route_stats *s, uint32_t l) { return s->L[l].coact; }
const uint64_t *moe_route_stats_transitions(const struct moe_route_stats *s, uint32_t l) { return s->L[l].trans; }
const uint64_t *moe_route_stats_overlap(const struct moe_route_stats *s, uint32_t l) { return s->L[l].overlap; }
size_t moe_route_stats_windows(const struct moe_route_stats *s) { return s->n_wins; }

const uint64_t *moe_route_stats_cache(const struct moe_route_stats *s, uint32_t l, int pol)
{
	if (s->L[l].cache == NULL || pol < 0 || pol >= MOE_CACHE_NPOLICY)
		return NULL;
	return s->L[l].cache + (size_t)pol * (s->h.n_experts + 1);
}

const struct moe_route_balance *moe_route_stats_window(const struct moe_route_stats *s,
	size_t w, uint64_t *tokens)
{
	if (tokens)
		*tokens = s->win_tokens[w];
	return s->wins + w * s->h.n_moe;
}

int moe_route_stats_top_tokens(const struct moe_route_stats *s, uint32_t l,
	struct moe_token_entry **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (s->L[l].tok == NULL)
		return 0;
	return moe_token_count_entries(s->L[l].tok, s->o.top_tokens, out, n);
}

const char *moe_route_stats_token_text(const struct moe_route_stats *s, uint32_t token)
{
	return s->texts ? moe_token_count_text(s->texts, token) : NULL;
}

int moe_route_stats_aux_loss(const struct moe_route_stats *s, uint32_t l,
	double *top1, double *topk)
{
	const struct layer *y = &s->L[l];
	double T = (double)s->tokens, a1 = 0, ak = 0;
	uint32_t E = s->h.n_experts;

	if (y->probsum == NULL || s->tokens == 0)
		return MOE_ENOENT;
	for (uint32_t i = 0; i < E; i++) {
		double P = (double)y->probsum[i] / PROB_SCALE / T;
		a1 += (double)y->top1[i] / T * P;
		ak += (double)y->load[i] / (T * s->h.top_k) * P;
	}
	*top1 = E * a1;
	*topk = E * ak;
	return 0;
}

int moe_route_stats_z_loss(const struct moe_route_stats *s, uint32_t l, double *z)
{
	if (!(s->h.flags & MOE_TRACE_LSE) || s->tokens == 0)
		return MOE_ENOENT;
	*z = (double)s->L[l].zsum / LSE_SCALE / (double)s->tokens;
	return 0;
}

double moe_route_stats_consistency(const struct moe_route_stats *s, uint32_t l)
{
	const uint64_t *m = s->L[l].trans;
	uint32_t E = s->h.n_experts;
	uint64_t best = 0, all = 0;

	if (m == NULL)
		return NAN;
	for (uint32_t i = 0; i < E; i++) {
		uint64_t mx = 0;
		for (uint32_t j = 0; j < E; j++) {
			all += m[(size_t)i * E + j];
			if (m[(size_t)i * E + j] > mx)
				mx = m[(size_t)i * E + j];
		}
		best += mx;
	}
	return all ? (double)best / (double)all : NAN;
}

double moe_route_stats_jaccard(const struct moe_route_stats *s, uint32_t l)
{
	uint32_t k = s->h.top_k;
	double sum = 0;
	uint64_t n = 0;

	for (uint32_t i = 0; i <= k; i++) {
		sum += (double)s->L[l].overlap[i] * i / (2.0 * k - i);
		n += s->L[l].overlap[i];
	}
	return n ? sum / (double)n : NAN;
}

/* ---- merge and partial state ---- */

static int same_shape(struct moe_route_stats *a, const struct moe_route_stats *b)
{
	const struct moe_trace_header *x = &a->h, *y = &b->h;

	if (x->n_layers != y->n_layers || x->n_moe != y->n_moe ||
	    x->n_experts != y->n_experts || x->top_k != y->top_k ||
	    x->flags != y->flags ||
	    memcmp(x->moe_layers, y->moe_layers, x->n_moe * sizeof *x->moe_layers) != 0)
		return moe_error_set(&a->err, MOE_EINVAL,
			"trace shape differs (layers, experts, top-k or recorded fields)");
	if (a->o.n_cf != b->o.n_cf || memcmp(a->o.cf, b->o.cf, a->o.n_cf * sizeof a->o.cf[0]) != 0 ||
	    a->o.group_size != b->o.group_size || a->o.cache_segment != b->o.cache_segment ||
	    a->o.no_cache != b->o.no_cache || a->matrices != b->matrices ||
	    a->o.top_tokens != b->o.top_tokens)
		return moe_error_set(&a->err, MOE_EINVAL,
			"statistics options differ (capacity factors, group size, cache or top tokens)");
	return 0;
}

static void add_u64(uint64_t *a, const uint64_t *b, size_t n)
{
	if (a && b)
		for (size_t i = 0; i < n; i++)
			a[i] += b[i];
}

int moe_route_stats_merge(struct moe_route_stats *a, const struct moe_route_stats *b)
{
	uint32_t E = a->h.n_experts;
	int rc;

	if ((rc = same_shape(a, b)) != 0)
		return rc;
	if (a->o.window || b->o.window)
		return moe_error_set(&a->err, MOE_EINVAL, "balance windows cannot be merged");
	for (uint32_t l = 0; l < a->h.n_moe; l++) {
		struct layer *x = &a->L[l];
		const struct layer *y = &b->L[l];
		add_u64(x->load, y->load, E);
		add_u64(x->top1, y->top1, E);
		add_u64(x->probsum, y->probsum, E);
		x->zsum += y->zsum;
		add_u64(x->drops, y->drops, a->o.n_cf);
		add_u64(x->coact, y->coact, (size_t)E * E);
		add_u64(x->trans, y->trans, (size_t)E * E);
		add_u64(x->overlap, y->overlap, a->h.top_k + 1);
		add_u64(x->cache, y->cache, (size_t)MOE_CACHE_NPOLICY * (E + 1));
		if (x->tok && moe_token_count_merge(x->tok, y->tok) != 0)
			return moe_error_set(&a->err, MOE_ENOMEM, "out of memory");
	}
	if (a->texts && moe_token_count_merge(a->texts, b->texts) != 0)
		return moe_error_set(&a->err, MOE_ENOMEM, "out of memory");
	a->tokens += b->tokens;
	return 0;
}

static json_t *u64_array(const uint64_t *v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < n; i++)
		if (json_array_append_new(a, json_integer((json_int_t)v[i])) != 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

/* i128 as decimal text (JSON integers stop at 2^63). */
static json_t *i128_string(i128 v)
{
	char buf[48], *p = buf + sizeof buf - 1;
	int neg = v < 0;
	unsigned __int128 u = neg ? -(unsigned __int128)v : (unsigned __int128)v;

	*p = '\0';
	do {
		*--p = (char)('0' + (int)(u % 10));
		u /= 10;
	} while (u);
	if (neg)
		*--p = '-';
	return json_string(p);
}

static int set(json_t *o, const char *k, json_t *v)
{
	return v == NULL || json_object_set_new(o, k, v) != 0;
}

/* Flat [expert, token, count, ...] in a canonical order. */
static json_t *token_counts_json(const struct moe_token_count *c)
{
	struct moe_token_entry *e;
	size_t n;
	json_t *a = NULL;

	if (moe_token_count_entries(c, 0, &e, &n) == 0 && (a = json_array()) != NULL)
		for (size_t i = 0; i < n; i++)
			if (json_array_append_new(a, json_integer(e[i].expert)) ||
			    json_array_append_new(a, json_integer(e[i].token)) ||
			    json_array_append_new(a, json_integer((json_int_t)e[i].count))) {
				json_decref(a);
				a = NULL;
				break;
			}
	free(e);
	return a;
}

static json_t *texts_json(const struct moe_token_count *c)
{
	uint32_t *ids;
	const char **texts;
	size_t n;
	json_t *a = NULL;

	if (moe_token_count_texts(c, &ids, &texts, &n) == 0 && (a = json_array()) != NULL)
		for (size_t i = 0; i < n; i++)
			if (json_array_append_new(a, json_pack("[Is]", (json_int_t)ids[i], texts[i]))) {
				json_decref(a);
				a = NULL;
				break;
			}
	free(ids);
	free(texts);
	return a;
}

static json_t *layer_json(const struct moe_route_stats *s, const struct layer *y)
{
	uint32_t E = s->h.n_experts;
	json_t *o = json_object();
	int bad = o == NULL;

	bad = bad || set(o, "load", u64_array(y->load, E)) || set(o, "top1", u64_array(y->top1, E)) ||
		set(o, "drops", u64_array(y->drops, s->o.n_cf)) ||
		set(o, "overlap", u64_array(y->overlap, s->h.top_k + 1)) ||
		set(o, "zsum", i128_string(y->zsum));
	if (!bad && y->probsum)
		bad = set(o, "probsum", u64_array(y->probsum, E));
	if (!bad && y->coact)
		bad = set(o, "coact", u64_array(y->coact, (size_t)E * E));
	if (!bad && y->trans)
		bad = set(o, "trans", u64_array(y->trans, (size_t)E * E));
	if (!bad && y->cache)
		bad = set(o, "cache", u64_array(y->cache, (size_t)MOE_CACHE_NPOLICY * (E + 1)));
	if (!bad && y->tok)
		bad = set(o, "token_counts", token_counts_json(y->tok));
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int moe_route_stats_save(const struct moe_route_stats *s, struct moe_output *out)
{
	json_t *o = json_object(), *cf = json_array(), *ls = json_array(), *layers = json_array();
	char *text = NULL;
	int rc = MOE_ENOMEM, bad = !o || !cf || !ls || !layers;

	if (s->o.window)
		return MOE_EINVAL;
	for (uint32_t i = 0; !bad && i < s->o.n_cf; i++)
		bad = json_array_append_new(cf, json_real(s->o.cf[i])) != 0;
	for (uint32_t i = 0; !bad && i < s->h.n_moe; i++)
		bad = json_array_append_new(ls, json_integer(s->h.moe_layers[i])) != 0;
	for (uint32_t l = 0; !bad && l < s->h.n_moe; l++)
		bad = json_array_append_new(layers, layer_json(s, &s->L[l])) != 0;
	bad = bad || set(o, "format", json_string("moe-route-partial")) ||
		set(o, "version", json_integer(MOE_ROUTE_PARTIAL_VERSION)) ||
		set(o, "model", json_string(s->h.model)) ||
		set(o, "gating", json_string(s->h.gating)) ||
		set(o, "n_layers", json_integer(s->h.n_layers)) ||
		json_object_set(o, "moe_layers", ls) != 0 ||
		set(o, "n_experts", json_integer(s->h.n_experts)) ||
		set(o, "top_k", json_integer(s->h.top_k)) ||
		set(o, "probs", json_boolean(s->h.flags & MOE_TRACE_PROBS)) ||
		set(o, "lse", json_boolean(s->h.flags & MOE_TRACE_LSE)) ||
		json_object_set(o, "capacity_factors", cf) != 0 ||
		set(o, "group_size", json_integer(s->o.group_size)) ||
		set(o, "cache_segment", json_integer(s->o.cache_segment)) ||
		set(o, "cache", json_boolean(!s->o.no_cache)) ||
		set(o, "top_m", json_integer(s->o.top_m)) ||
		set(o, "top_tokens", json_integer(s->o.top_tokens)) ||
		(s->texts && set(o, "texts", texts_json(s->texts))) ||
		set(o, "tokens", json_integer((json_int_t)s->tokens)) ||
		json_object_set(o, "layers", layers) != 0 ||
		(text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER)) == NULL;
	if (!bad) {
		rc = moe_output_write(out, text, strlen(text));
		if (rc == 0)
			rc = moe_output_write(out, "\n", 1);
	}
	free(text);
	json_decref(cf);
	json_decref(ls);
	json_decref(layers);
	json_decref(o);
	return rc;
}

/* ---- loading partials ---- */

static int get_u64s(struct moe_error *err, json_t *o, const char *key, uint64_t *dst, size_t n)
{
	json_t *a = json_object_get(o, key);

	if (dst == NULL)
		return a == NULL ? 0 : moe_error_set(err, MOE_EFORMAT, "unexpected \"%s\" array", key);
	if (!json_is_array(a) || json_array_size(a) != n)
		return moe_error_set(err, MOE_EFORMAT, "\"%s\" must be an array of %zu counts", key, n);
	for (size_t i = 0; i < n; i++) {
		json_t *v = json_array_get(a, i);
		if (!json_is_integer(v) || json_integer_value(v) < 0)
			return moe_error_set(err, MOE_EFORMAT, "\"%s\" entry %zu is not a count", key, i);
		dst[i] = (uint64_t)json_integer_value(v);
	}
	return 0;
}

static int get_i128(struct moe_error *err, json_t *o, i128 *out)
{
	const char *p = json_string_value(json_object_get(o, "zsum"));
	int neg;
	i128 v = 0;

	if (p == NULL)
		return moe_error_set(err, MOE_EFORMAT, "\"zsum\" must be a decimal string");
	neg = *p == '-';
	p += neg;
	if (*p == '\0' || strlen(p) > 38)
		return moe_error_set(err, MOE_EFORMAT, "\"zsum\" must be a decimal string");
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return moe_error_set(err, MOE_EFORMAT, "\"zsum\" must be a decimal string");
		v = v * 10 + (*p - '0');
	}
	*out = neg ? -v : v;
	return 0;
}

static int get_uint(json_t *o, const char *key, uint64_t max, uint64_t *out)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) > max)
		return -1;
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

static int load_shape(json_t *o, struct moe_trace_header *h, uint32_t *layers,
	struct moe_route_opts *opt, struct moe_error *err)
{
	json_t *ls = json_object_get(o, "moe_layers"), *cf = json_object_get(o, "capacity_factors");
	uint64_t v[6];

	if (get_uint(o, "n_layers", MOE_TRACE_MAX_LAYERS, &v[0]) ||
	    get_uint(o, "n_experts", MOE_TRACE_MAX_EXPERTS, &v[1]) ||
	    get_uint(o, "top_k", MOE_TRACE_MAX_TOPK, &v[2]) ||
	    get_uint(o, "group_size", UINT32_MAX, &v[3]) ||
	    get_uint(o, "cache_segment", 1u << 24, &v[4]) ||
	    get_uint(o, "top_m", UINT32_MAX, &v[5]) ||
	    !json_is_array(ls) || json_array_size(ls) < 1 || json_array_size(ls) > MOE_TRACE_MAX_LAYERS ||
	    !json_is_array(cf) || json_array_size(cf) > MOE_ROUTE_MAX_CF ||
	    !json_is_boolean(json_object_get(o, "probs")) || !json_is_boolean(json_object_get(o, "lse")) ||
	    !json_is_boolean(json_object_get(o, "cache")) ||
	    !json_is_string(json_object_get(o, "model")) || !json_is_string(json_object_get(o, "gating")))
		return moe_error_set(err, MOE_EFORMAT, "partial state: missing or bad shape fields");
	h->n_layers = (uint32_t)v[0];
	h->n_experts = (uint32_t)v[1];
	h->top_k = (uint32_t)v[2];
	h->n_moe = (uint32_t)json_array_size(ls);
	for (uint32_t i = 0; i < h->n_moe; i++) {
		json_t *e = json_array_get(ls, i);
		if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) >= MOE_TRACE_MAX_LAYERS)
			return moe_error_set(err, MOE_EFORMAT, "partial state: bad \"moe_layers\"");
		layers[i] = (uint32_t)json_integer_value(e);
	}
	h->moe_layers = layers;
	h->flags = (json_is_true(json_object_get(o, "probs")) ? MOE_TRACE_PROBS : 0) |
		(json_is_true(json_object_get(o, "lse")) ? MOE_TRACE_LSE : 0);
	h->model = json_string_value(json_object_get(o, "model"));
	h->gating = json_string_value(json_object_get(o, "gating"));
	h->vocab = "";
	moe_route_opts_init(opt);
	opt->n_cf = (uint32_t)json_array_size(cf);
	for (uint32_t i = 0; i < opt->n_cf; i++) {
		if (!json_is_number(json_array_get(cf, i)))
			return moe_error_set(err, MOE_EFORMAT, "partial state: bad \"capacity_factors\"");
		opt->cf[i] = json_number_value(json_array_get(cf, i));
	}
	opt->group_size = (uint32_t)v[3];
	opt->cache_segment = (uint32_t)v[4];
	opt->top_m = (uint32_t)v[5];
	opt->no_cache = !json_is_true(json_object_get(o, "cache"));
	if (json_object_get(o, "top_tokens") && get_uint(o, "top_tokens", UINT32_MAX, &v[0]) != 0)
		return moe_error_set(err, MOE_EFORMAT, "partial state: bad \"top_tokens\"");
	opt->top_tokens = json_object_get(o, "top_tokens") ? (uint32_t)v[0] : 0;
	return 0;
}

static int load_token_counts(struct moe_route_stats *s, struct moe_token_count *c, json_t *a)
{
	size_t n = json_array_size(a);

	if (!json_is_array(a) || n % 3 != 0)
		return moe_error_set(&s->err, MOE_EFORMAT, "partial state: bad \"token_counts\"");
	for (size_t i = 0; i < n; i += 3) {
		json_t *e = json_array_get(a, i), *t = json_array_get(a, i + 1), *k = json_array_get(a, i + 2);
		if (!json_is_integer(e) || !json_is_integer(t) || !json_is_integer(k) ||
		    json_integer_value(e) < 0 || json_integer_value(e) >= s->h.n_experts ||
		    json_integer_value(t) < 0 || json_integer_value(t) > INT32_MAX ||
		    json_integer_value(k) < 0)
			return moe_error_set(&s->err, MOE_EFORMAT, "partial state: bad \"token_counts\" entry %zu", i / 3);
		if (moe_token_count_add(c, (uint32_t)json_integer_value(e), (uint32_t)json_integer_value(t),
		    (uint64_t)json_integer_value(k)) != 0)
			return moe_error_set(&s->err, MOE_ENOMEM, "out of memory");
	}
	return 0;
}

static int load_texts(struct moe_route_stats *s, json_t *a)
{
	for (size_t i = 0; i < json_array_size(a); i++) {
		json_t *p = json_array_get(a, i), *id = json_array_get(p, 0), *tx = json_array_get(p, 1);
		if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) > INT32_MAX ||
		    !json_is_string(tx))
			return moe_error_set(&s->err, MOE_EFORMAT, "partial state: bad \"texts\" entry %zu", i);
		if (moe_token_count_set_text(s->texts, (uint32_t)json_integer_value(id), json_string_value(tx)) != 0)
			return moe_error_set(&s->err, MOE_ENOMEM, "out of memory");
	}
	return 0;
}

static int load_layers(struct moe_route_stats *s, json_t *o)
{
	json_t *ls = json_object_get(o, "layers");
	uint32_t E = s->h.n_experts;
	uint64_t tokens;
	int rc;

	if (get_uint(o, "tokens", INT64_MAX, &tokens) != 0)
		return moe_error_set(&s->err, MOE_EFORMAT, "partial state: bad \"tokens\"");
	s->tokens = tokens;
	if (!json_is_array(ls) || json_array_size(ls) != s->h.n_moe)
		return moe_error_set(&s->err, MOE_EFORMAT, "partial state: \"layers\" must have %u entries", s->h.n_moe);
	for (uint32_t l = 0; l < s->h.n_moe; l++) {
		json_t *y = json_array_get(ls, l);
		struct layer *x = &s->L[l];
		if (!json_is_object(y))
			return moe_error_set(&s->err, MOE_EFORMAT, "partial state: layer %u is not an object", l);
		if ((rc = get_u64s(&s->err, y, "load", x->load, E)) != 0 ||
		    (rc = get_u64s(&s->err, y, "top1", x->top1, E)) != 0 ||
		    (rc = get_u64s(&s->err, y, "probsum", x->probsum, E)) != 0 ||
		    (rc = get_u64s(&s->err, y, "drops", x->drops, s->o.n_cf)) != 0 ||
		    (rc = get_u64s(&s->err, y, "overlap", x->overlap, s->h.top_k + 1)) != 0 ||
		    (rc = get_u64s(&s->err, y, "coact", x->coact, (size_t)E * E)) != 0 ||
		    (rc = get_u64s(&s->err, y, "trans", x->trans, (size_t)E * E)) != 0 ||
		    (rc = get_u64s(&s->err, y, "cache", x->cache, (size_t)MOE_CACHE_NPOLICY * (E + 1))) != 0 ||
		    (rc = get_i128(&s->err, y, &x->zsum)) != 0)
			return rc;
		if (x->tok && (rc = load_token_counts(s, x->tok, json_object_get(y, "token_counts"))) != 0)
			return rc;
	}
	if (s->texts && json_object_get(o, "texts") && (rc = load_texts(s, json_object_get(o, "texts"))) != 0)
		return rc;
	return 0;
}

int moe_route_stats_load(struct moe_route_stats **out, struct moe_input *in)
{
	struct moe_error err = { 0 };
	struct moe_trace_header h;
	struct moe_route_opts opt;
	uint32_t *layers = malloc(MOE_TRACE_MAX_LAYERS * sizeof *layers);
	char *text = NULL;
	size_t len = 0, cap = 0;
	json_error_t je;
	json_t *o = NULL, *v;
	int rc;

	*out = NULL;
	if (layers == NULL)
		return MOE_ENOMEM;
	for (;;) {   /* whole file: partials are small (counts only) */
		ssize_t r;
		if (len + 65536 > cap) {
			char *nt;
			cap = cap ? cap * 2 : 1 << 20;
			if (cap > (1u << 30) || (nt = realloc(text, cap)) == NULL) {
				rc = moe_error_set(&err, MOE_ERANGE, "partial state larger than 1 GiB");
				goto fail;
			}
			text = nt;
		}
		if ((r = moe_input_read_some(in, text + len, cap - len)) < 0) {
			rc = moe_error_set(&err, (int)r, "%s", moe_input_errstr(in));
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	o = json_loadb(text ? text : "", len, JSON_REJECT_DUPLICATES, &je);
	v = json_object_get(o, "format");
	if (!json_is_object(o) || !json_is_string(v) ||
	    strcmp(json_string_value(v), "moe-route-partial") != 0) {
		rc = moe_error_set(&err, MOE_EFORMAT, "not a moe-route-stats partial state (--partial output)");
		goto fail;
	}
	v = json_object_get(o, "version");
	if (!json_is_integer(v) || json_integer_value(v) != MOE_ROUTE_PARTIAL_VERSION) {
		rc = moe_error_set(&err, MOE_EUNSUP, "partial state version %lld is not supported (this reader knows version %d)",
			json_is_integer(v) ? (long long)json_integer_value(v) : -1LL, MOE_ROUTE_PARTIAL_VERSION);
		goto fail;
	}
	if ((rc = load_shape(o, &h, layers, &opt, &err)) != 0)
		goto fail;
	if ((rc = moe_route_stats_new(out, &h, &opt)) != 0) {
		if (*out)
			moe_error_copy(&err, &(*out)->err);
		goto fail;
	}
	if ((rc = load_layers(*out, o)) != 0)
		moe_error_copy(&err, &(*out)->err);
fail:
	if (rc != 0 && *out == NULL && (*out = calloc(1, sizeof **out)) != NULL)
		(*out)->err = err;
	else if (rc != 0 && *out)
		(*out)->err = err;
	json_decref(o);
	free(text);
	free(layers);
	return rc;
}
