/* Stack-processing simulation of LRU, LFU and Belady's OPT expert caches (all sizes at once). */
#include "cache_sim.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

#define NEVER UINT64_MAX

struct moe_cache_sim {
	uint32_t n;             /* experts */
	uint16_t *stack;        /* (n) highest priority first */
	int32_t *pos;           /* (n) depth in stack or -1 */
	uint64_t *last, *uses, *next;   /* (n) per-expert priorities */
	uint64_t *nextuse;      /* (cap) time of the next access of ids[t] */
	size_t cap;
};

int moe_cache_sim_new(struct moe_cache_sim **out, uint32_t n_experts)
{
	struct moe_cache_sim *s = calloc(1, sizeof *s);

	*out = s;
	if (s == NULL)
		return MOE_ENOMEM;
	s->n = n_experts;
	s->stack = malloc(n_experts * sizeof *s->stack);
	s->pos = malloc(n_experts * sizeof *s->pos);
	s->last = malloc(n_experts * sizeof *s->last);
	s->uses = malloc(n_experts * sizeof *s->uses);
	s->next = malloc(n_experts * sizeof *s->next);
	if (!s->stack || !s->pos || !s->last || !s->uses || !s->next)
		return MOE_ENOMEM;
	return 0;
}

void moe_cache_sim_free(struct moe_cache_sim *s)
{
	if (s == NULL)
		return;
	free(s->stack);
	free(s->pos);
	free(s->last);
	free(s->uses);
	free(s->next);
	free(s->nextuse);
	free(s);
}

/*
 * One access to x. For a cache of c < p experts (p = depth of x), x is a
 * miss and the victim is the lowest-priority of stack[0..c); carrying that
 * victim down the stack, each slot keeps the higher-priority of the carry
 * and its old occupant, and x's old slot receives the last carry. HIGHER
 * (a, b) is nonzero when a stays in the smaller cache; one copy of the loop
 * per policy keeps the comparison inline.
 */
#define DEFINE_RUN(name, HIGHER)                                              \
static void name(struct moe_cache_sim *s, const uint16_t *ids, size_t n,      \
	uint64_t *depth)                                                      \
{                                                                             \
	uint16_t *st = s->stack;                                              \
	int32_t *pos = s->pos;                                                \
	const uint64_t *last = s->last, *uses = s->uses, *next = s->next;     \
	uint32_t len = 0;                                                     \
	(void)last, (void)uses, (void)next;                                   \
	for (size_t t = 0; t < n; t++) {                                      \
		uint16_t x = ids[t], carry;                                   \
		uint32_t p;                                                   \
		if (pos[x] < 0) {                                             \
			depth[s->n]++;                                        \
			p = len++;                                            \
		} else {                                                      \
			p = (uint32_t)pos[x];                                 \
			depth[p]++;                                           \
		}                                                             \
		if (p > 0) {                                                  \
			carry = st[0];                                        \
			for (uint32_t i = 1; i < p; i++) {                    \
				uint16_t y = st[i];                           \
				if (HIGHER(carry, y)) {                       \
					st[i] = carry;                        \
					pos[carry] = (int32_t)i;              \
					carry = y;                            \
				}                                             \
			}                                                     \
			st[p] = carry;                                        \
			pos[carry] = (int32_t)p;                              \
		}                                                             \
		st[0] = x;                                                    \
		pos[x] = 0;                                                   \
		s->last[x] = t + 1;                                           \
		s->uses[x]++;                                                 \
		s->next[x] = s->nextuse[t];                                   \
	}                                                                     \
}

/* LRU: the carry is always older, so this is move-to-front. */
#define LRU_HIGHER(a, b) (last[a] > last[b])
#define LFU_HIGHER(a, b) (uses[a] != uses[b] ? uses[a] > uses[b] : last[a] > last[b])
#define OPT_HIGHER(a, b) (next[a] != next[b] ? next[a] < next[b] : (a) < (b))
DEFINE_RUN(run_lru, LRU_HIGHER)
DEFINE_RUN(run_lfu, LFU_HIGHER)
DEFINE_RUN(run_opt, OPT_HIGHER)

static void reset(struct moe_cache_sim *s)
{
	for (uint32_t e = 0; e < s->n; e++) {
		s->pos[e] = -1;
		s->last[e] = s->uses[e] = 0;
		s->next[e] = NEVER;
	}
}

int moe_cache_sim_run(struct moe_cache_sim *s, const uint16_t *ids, size_t n,
	uint64_t *depth)
{
	if (n > s->cap) {
		uint64_t *nu = realloc(s->nextuse, n * sizeof *nu);
		if (nu == NULL)
			return MOE_ENOMEM;
		s->nextuse = nu;
		s->cap = n;
	}
	/* next use of each access, filled backwards; s->next is scratch here */
	for (uint32_t e = 0; e < s->n; e++)
		s->next[e] = NEVER;
	for (size_t t = n; t-- > 0;) {
		s->nextuse[t] = s->next[ids[t]];
		s->next[ids[t]] = t;
	}
	reset(s);
	run_lru(s, ids, n, depth + (size_t)MOE_CACHE_LRU * (s->n + 1));
	reset(s);
	run_lfu(s, ids, n, depth + (size_t)MOE_CACHE_LFU * (s->n + 1));
	reset(s);
	run_opt(s, ids, n, depth + (size_t)MOE_CACHE_OPT * (s->n + 1));
	return 0;
}

uint64_t moe_cache_hits(const uint64_t *depth_row, uint32_t c)
{
	uint64_t h = 0;

	for (uint32_t d = 0; d < c; d++)
		h += depth_row[d];
	return h;
}
