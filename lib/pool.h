/* A fixed set of worker threads that run one parallel job at a time (fork-join). */
#ifndef MOE_POOL_H
#define MOE_POOL_H

/*
 * moe_pool_run() calls fn(ctx, ith, nth) once for every ith in 0..nth-1,
 * the caller's thread taking ith 0, and returns when all have finished.
 * The pool owns its threads; jobs must not call moe_pool_run() themselves.
 * A pool of 1 thread starts no thread at all.
 */

struct moe_pool;

typedef void (*moe_pool_fn)(void *ctx, int ith, int nth);

int moe_pool_new(struct moe_pool **out, int n_threads);
void moe_pool_free(struct moe_pool *p);
void moe_pool_run(struct moe_pool *p, moe_pool_fn fn, void *ctx);
/* Same, or fn(ctx, 0, 1) on the caller alone when work (any unit, e.g.
 * multiply-adds) is below what is worth waking the workers for. */
void moe_pool_run_sized(struct moe_pool *p, moe_pool_fn fn, void *ctx, double work);
int moe_pool_size(const struct moe_pool *p);

/* The slice [*lo, *hi) of n items that worker ith of nth takes. */
static inline void moe_pool_split(long n, int ith, int nth, long *lo, long *hi)
{
	long per = (n + nth - 1) / nth;

	*lo = per * ith < n ? per * ith : n;
	*hi = *lo + per < n ? *lo + per : n;
}

#endif
