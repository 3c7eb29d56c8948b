/* Routing statistics over a trace: load balance, losses, capacity drops, co-activation, caching. */
#ifndef MOE_ROUTE_STATS_H
#define MOE_ROUTE_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "cache_sim.h"
#include "input.h"
#include "token_count.h"
#include "output.h"
#include "trace.h"

/*
 * A moe_route_stats handle accumulates counts (never ratios) token by
 * token, so two handles over different shards can be merged exactly; the
 * ratios are derived on demand by the accessors. Pointers returned by the
 * accessors stay owned by the handle and live until moe_route_stats_free().
 *
 * State that spans tokens (capacity groups, cache segments, adjacent-token
 * pairs) restarts at every change of sequence id, so shards cut at sequence
 * boundaries merge to exactly the single-pass result. Memory is bounded by
 * the model shape and the options, not by the trace length: Belady's
 * policy needs the future, so the cache is simulated per segment of at
 * most cache_segment tokens (cold at the start of each sequence and
 * segment), buffering one segment of expert ids per layer.
 */

#define MOE_ROUTE_MAX_CF 32
#define MOE_ROUTE_PARTIAL_VERSION 1

struct moe_route_opts {
	double cf[MOE_ROUTE_MAX_CF];    /* capacity factors */
	uint32_t n_cf;
	uint32_t group_size;            /* tokens per capacity group */
	uint32_t cache_segment;         /* tokens per cold-cache segment */
	uint64_t window;                /* tokens per balance window, 0 = off */
	uint32_t top_m;                 /* experts in the collapse share */
	int no_cache;                   /* skip the cache simulation */
	uint32_t top_tokens;            /* token ids kept per expert, 0 = off */
};

/* Defaults: CF 1.0 1.25 1.5 2.0, group 1024, segment 4096, top-m 1. */
void moe_route_opts_init(struct moe_route_opts *o);

/* Balance of one load vector (formulas in moe-trace(5)). */
struct moe_route_balance {
	uint64_t total;
	double cv;            /* std / mean (population) */
	double jain;          /* (sum c)^2 / (E sum c^2) */
	double max_mean;      /* max c / mean c */
	double entropy;       /* -sum f ln f, nats */
	double entropy_norm;  /* entropy / ln E (1 when E = 1) */
	double eff_experts;   /* exp(entropy) */
	double top_m_share;   /* share of the m most loaded experts */
	uint32_t dead;        /* experts with c = 0 */
};
void moe_route_balance(const uint64_t *c, uint32_t n, uint32_t top_m,
	struct moe_route_balance *b);

struct moe_route_stats;

int moe_route_stats_new(struct moe_route_stats **out,
	const struct moe_trace_header *h, const struct moe_route_opts *o);
void moe_route_stats_free(struct moe_route_stats *s);
const char *moe_route_stats_errstr(const struct moe_route_stats *s);

/* Adds one token (already validated against the same header shape). The
 * token is copied into a batch that worker threads process per layer. */
int moe_route_stats_add(struct moe_route_stats *s, const struct moe_trace_token *t);
/* Processes buffered tokens and closes the pending group, cache segment
 * and window; call after the last token of an input, and before reading
 * results, saving or merging. */
int moe_route_stats_flush(struct moe_route_stats *s);

/* Adds b's counts into a; both must have the same shape and options. */
int moe_route_stats_merge(struct moe_route_stats *a, const struct moe_route_stats *b);
/* Mergeable state as JSON ("format": "moe-route-partial"). */
int moe_route_stats_save(const struct moe_route_stats *s, struct moe_output *o);
/* Reads a partial written by moe_route_stats_save. */
int moe_route_stats_load(struct moe_route_stats **out, struct moe_input *in);

const struct moe_trace_header *moe_route_stats_header(const struct moe_route_stats *s);
const struct moe_route_opts *moe_route_stats_opts(const struct moe_route_stats *s);
uint64_t moe_route_stats_tokens(const struct moe_route_stats *s);

/* Per MoE layer index l (0 .. n_moe-1). */
const uint64_t *moe_route_stats_load_counts(const struct moe_route_stats *s, uint32_t l); /* (E) */
const uint64_t *moe_route_stats_top1_counts(const struct moe_route_stats *s, uint32_t l); /* (E) */
/* Switch auxiliary loss E*sum f_i P_i with f from the first-listed expert
 * (top1) and from all k (topk): 0, or MOE_ENOENT without probabilities. */
int moe_route_stats_aux_loss(const struct moe_route_stats *s, uint32_t l,
	double *top1, double *topk);
/* Router z-loss mean(lse^2): 0, or MOE_ENOENT without log-sum-exp. */
int moe_route_stats_z_loss(const struct moe_route_stats *s, uint32_t l, double *z);
/* Dropped assignments per capacity factor (n_cf). */
const uint64_t *moe_route_stats_drops(const struct moe_route_stats *s, uint32_t l);
/* Co-activation counts (E, E): entry [i][j], i < j, counts the tokens
 * that chose both (the lower triangle and diagonal are 0); NULL when the
 * matrices were skipped because E*E*n_moe is too large. */
const uint64_t *moe_route_stats_coact(const struct moe_route_stats *s, uint32_t l);
/* First-listed expert of layer l-1 -> layer l counts (E, E), l >= 1. */
const uint64_t *moe_route_stats_transitions(const struct moe_route_stats *s, uint32_t l);
/* Share of tokens whose layer-l expert is the most common successor of
 * their layer-(l-1) expert; l >= 1; NaN without data. */
double moe_route_stats_consistency(const struct moe_route_stats *s, uint32_t l);
/* Intersection-size histogram (k+1) of adjacent tokens' expert sets. */
const uint64_t *moe_route_stats_overlap(const struct moe_route_stats *s, uint32_t l);
/* Mean Jaccard index |A&B|/|A|B| of adjacent tokens; NaN without pairs. */
double moe_route_stats_jaccard(const struct moe_route_stats *s, uint32_t l);
/* Depth histogram (E+1) of policy pol, see moe_cache_sim_run; NULL when
 * the simulation is off. */
const uint64_t *moe_route_stats_cache(const struct moe_route_stats *s, uint32_t l, int pol);

/* Top token ids per expert (top_tokens of each, sorted by expert, count
 * descending): malloc'd array, caller frees; empty without token ids. */
int moe_route_stats_top_tokens(const struct moe_route_stats *s, uint32_t l,
	struct moe_token_entry **out, size_t *n);
/* First text seen for a token id, or NULL. */
const char *moe_route_stats_token_text(const struct moe_route_stats *s, uint32_t token);

/* Balance windows (--window): n_windows entries of n_moe balances. */
size_t moe_route_stats_windows(const struct moe_route_stats *s);
const struct moe_route_balance *moe_route_stats_window(const struct moe_route_stats *s,
	size_t w, uint64_t *tokens);

#endif
