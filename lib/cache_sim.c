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

/* Nonzero when a has the higher priority (stays in the smaller cache). */
static inline int higher(const struct moe_cache_sim *s, int pol, uint16_t a, uint16_t b)
{
	switch (pol) {
	case MOE_CACHE_LRU:
		return s->last[a] > s->last[b];
	case MOE_CACHE_LFU:
		return s->uses[a] != s->uses[b] ? s->uses[a] > s->uses[b] :
			s->last[a] > s->last[b];
	default:
		return s->next[a] != s->next[b] ? s->next[a] < s->next[b] : a < b;
	}
}

/*
 * One access to x. For a cache of c < p experts (p = depth of x), x is a
 * miss and the victim is the lowest-priority of stack[0..c); carrying that
 * victim down the stack, each slot keeps the higher-priority of the carry
 * and its old occupant, and x's old slot receives the last carry.
 */
static uint32_t access1(struct moe_cache_sim *s, int pol, uint16_t x, uint32_t *len)
{
	uint32_t p = s->pos[x] >= 0 ? (uint32_t)s->pos[x] : *len;
	uint16_t carry;

	if (p == 0 && *len > 0)
		return 0;    /* already on top */
	if (*len == 0) {
		s->stack[0] = x;
		s->pos[x] = 0;
		*len = 1;
		return 0;
	}
	carry = s->stack[0];
	for (uint32_t i = 1; i < p; i++) {
		uint16_t y = s->stack[i];
		if (higher(s, pol, carry, y)) {
			s->stack[i] = carry;
			s->pos[carry] = (int32_t)i;
			carry = y;
		}
	}
	s->stack[p] = carry;
	s->pos[carry] = (int32_t)p;
	s->stack[0] = x;
	s->pos[x] = 0;
	if (p == *len)
		++*len;
	return p;
}

static void run_policy(struct moe_cache_sim *s, int pol, const uint16_t *ids,
	size_t n, uint64_t *depth)
{
	uint32_t len = 0;

	for (uint32_t e = 0; e < s->n; e++) {
		s->pos[e] = -1;
		s->last[e] = s->uses[e] = 0;
		s->next[e] = NEVER;
	}
	for (size_t t = 0; t < n; t++) {
		uint16_t x = ids[t];
		int cold = s->pos[x] < 0;
		uint32_t p = access1(s, pol, x, &len);
		depth[cold ? s->n : p]++;
		s->last[x] = t + 1;
		s->uses[x]++;
		s->next[x] = s->nextuse[t];
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
	for (int pol = 0; pol < MOE_CACHE_NPOLICY; pol++)
		run_policy(s, pol, ids, n, depth + (size_t)pol * (s->n + 1));
	return 0;
}

uint64_t moe_cache_hits(const uint64_t *depth_row, uint32_t c)
{
	uint64_t h = 0;

	for (uint32_t d = 0; d < c; d++)
		h += depth_row[d];
	return h;
}
