/* Stack-processing simulation of LRU, LFU and Belady's OPT expert caches (all sizes at once). */
#include "cache_sim.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

#define NEVER UINT64_MAX

/*
 * The stack holds one 64-bit key per expert, highest priority first:
 * priority in the high bits, 0xffff - id in the low 16 (ties in OPT go to
 * the lower id), so one unsigned comparison orders two experts and the
 * id travels with its key. At most 2^24 accesses per run keep the
 * fields apart: LRU last use << 16; LFU uses << 40 | last use << 16;
 * OPT (2^40 - next use) << 16, 0 for "never again".
 */
struct moe_cache_sim {
	uint32_t n;             /* experts */
	uint64_t *stack;        /* (n) keys, highest priority first */
	uint32_t *uses;         /* (n) */
	uint64_t *nextuse;      /* (cap) time of the next access of ids[t] */
	uint32_t *next;         /* (n) scratch for nextuse */
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
	s->uses = malloc(n_experts * sizeof *s->uses);
	s->next = malloc(n_experts * sizeof *s->next);
	if (!s->stack || !s->uses || !s->next)
		return MOE_ENOMEM;
	return 0;
}

void moe_cache_sim_free(struct moe_cache_sim *s)
{
	if (s == NULL)
		return;
	free(s->stack);
	free(s->uses);
	free(s->next);
	free(s->nextuse);
	free(s);
}

static uint64_t key_of(const struct moe_cache_sim *s, int pol, size_t t, uint16_t x)
{
	uint64_t k;

	if (pol == MOE_CACHE_LRU)
		k = (uint64_t)(t + 1) << 16;
	else if (pol == MOE_CACHE_LFU)
		k = (uint64_t)s->uses[x] << 40 | (uint64_t)(t + 1) << 16;
	else
		k = s->nextuse[t] == NEVER ? 0 : ((1ull << 40) - s->nextuse[t]) << 16;
	return k | (uint64_t)(0xffffu - x);
}

/*
 * One pass of policy pol. For a cache of c < p experts (p = depth of x)
 * the access misses and the victim is the lowest-priority of stack[0..c);
 * carrying that victim down, each slot keeps the higher of the carry and
 * its old key, and x's old slot receives the last carry.
 */
static void run_policy(struct moe_cache_sim *s, int pol, const uint16_t *ids,
	size_t n, uint64_t *depth)
{
	uint64_t *st = s->stack;
	uint32_t len = 0;

	memset(s->uses, 0, s->n * sizeof *s->uses);
	for (size_t t = 0; t < n; t++) {
		uint16_t x = ids[t];
		uint64_t low = 0xffffu - x;
		uint32_t p = 0;
		if (len > 0 && (st[0] & 0xffff) != low) {
			/* search and carry in one pass */
			uint64_t carry = st[0];
			for (p = 1; p < len; p++) {
				uint64_t y = st[p];
				if ((y & 0xffff) == low)
					break;
				st[p] = y > carry ? y : carry;
				carry = y > carry ? carry : y;
			}
			st[p] = carry;
		}
		if (p == len) {
			depth[s->n]++;   /* first use */
			len++;
		} else {
			depth[p]++;
		}
		s->uses[x]++;
		st[0] = key_of(s, pol, t, x);
	}
}

/*
 * LRU needs no stack: the depth of x is the number of experts used since
 * x's last use, i.e. those with a later last use. Counting over all E
 * experts is branch-free and vectorises, cheaper than walking the stack.
 */
static void run_lru(struct moe_cache_sim *s, const uint16_t *ids, size_t n, uint64_t *depth)
{
	uint32_t *last = s->next;   /* (n) time of last use + 1, 0 = never */

	memset(last, 0, s->n * sizeof *last);
	for (size_t t = 0; t < n; t++) {
		uint32_t lx = last[ids[t]], d = 0;
		if (lx == 0) {
			depth[s->n]++;
		} else {
			for (uint32_t e = 0; e < s->n; e++)
				d += last[e] > lx;
			depth[d]++;
		}
		last[ids[t]] = (uint32_t)t + 1;
	}
}

int moe_cache_sim_run(struct moe_cache_sim *s, const uint16_t *ids, size_t n,
	uint64_t *depth)
{
	if (n > MOE_CACHE_MAX_RUN)
		return MOE_ERANGE;
	if (n > s->cap) {
		uint64_t *nu = realloc(s->nextuse, n * sizeof *nu);
		if (nu == NULL)
			return MOE_ENOMEM;
		s->nextuse = nu;
		s->cap = n;
	}
	/* next use of each access, filled backwards */
	for (uint32_t e = 0; e < s->n; e++)
		s->next[e] = UINT32_MAX;
	for (size_t t = n; t-- > 0;) {
		s->nextuse[t] = s->next[ids[t]] == UINT32_MAX ? NEVER : s->next[ids[t]];
		s->next[ids[t]] = (uint32_t)t;
	}
	run_policy(s, MOE_CACHE_LFU, ids, n, depth + (size_t)MOE_CACHE_LFU * (s->n + 1));
	run_policy(s, MOE_CACHE_OPT, ids, n, depth + (size_t)MOE_CACHE_OPT * (s->n + 1));
	run_lru(s, ids, n, depth + (size_t)MOE_CACHE_LRU * (s->n + 1));
	return 0;
}

uint64_t moe_cache_hits(const uint64_t *depth_row, uint32_t c)
{
	uint64_t h = 0;

	for (uint32_t d = 0; d < c; d++)
		h += depth_row[d];
	return h;
}
