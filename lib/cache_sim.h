/* Expert-cache simulation: LRU, LFU and Belady hit counts for every cache size in one pass. */
#ifndef MOE_CACHE_SIM_H
#define MOE_CACHE_SIM_H

#include <stddef.h>
#include <stdint.h>

/*
 * The three policies are stack algorithms (Mattson et al., 1970): the
 * contents of a cache of C experts are always the top C entries of one
 * priority stack, so a single pass gives the depth at which each access
 * is found and hits(C) = accesses found at depth < C.
 *   LRU: priority = time of last use.
 *   LFU: priority = uses since the cache was cold ("perfect" LFU, counted
 *        also while evicted); ties go to the more recently used expert.
 *   OPT: Belady's MIN: priority = time of next use (sooner is kept);
 *        experts not used again tie, broken by lower expert id.
 * The handle owns its scratch buffers; results are added to caller arrays.
 */

enum { MOE_CACHE_LRU, MOE_CACHE_LFU, MOE_CACHE_OPT, MOE_CACHE_NPOLICY };

/* Longest access stream of one run (MOE_ERANGE beyond). */
#define MOE_CACHE_MAX_RUN (1u << 24)

struct moe_cache_sim;

int moe_cache_sim_new(struct moe_cache_sim **out, uint32_t n_experts);
void moe_cache_sim_free(struct moe_cache_sim *s);

/* Runs all policies from a cold cache over ids[0..n) (each < n_experts)
 * and adds to depth[policy * (E + 1) + d]: d < E is the 0-based stack
 * depth of a reuse, d = E a first use (a miss at every size). The LRU row
 * is also the reuse-distance histogram (distinct other experts touched
 * since the last use). */
int moe_cache_sim_run(struct moe_cache_sim *s, const uint16_t *ids, size_t n,
	uint64_t *depth);

/* Hits for a cache of c experts from one policy's depth row. */
uint64_t moe_cache_hits(const uint64_t *depth_row, uint32_t c);

#endif
