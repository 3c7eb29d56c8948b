/* Worker threads for the inference kernels: a generation counter starts a job, a counter of pending workers ends it. */
#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "error.h"

/*
 * A decoded token runs hundreds of small jobs, so waking workers through a
 * condition variable each time would cost more than the jobs. Workers spin
 * on the generation counter for a while after each job and only then
 * sleep; the caller wakes sleepers through the condition variable. The
 * caller spins, then yields, until every worker has finished. Spins are
 * short because a loaded machine may have descheduled the thread waited
 * for.
 */
#define SPIN 2000

struct worker {
	struct moe_pool *pool;
	int ith;
	pthread_t tid;
};

struct moe_pool {
	int n;                    /* threads, the caller included */
	struct worker *w;         /* [n - 1] */
	pthread_mutex_t mu;
	pthread_cond_t wake;
	atomic_ulong gen;         /* bumped for every job */
	atomic_int pending;       /* workers still running the job */
	atomic_int quit;
	int sleepers;             /* under mu */
	moe_pool_fn fn;
	void *ctx;
};

/* Waits for a generation other than seen; 0 to quit. */
static unsigned long next_job(struct moe_pool *p, unsigned long seen)
{
	unsigned long g;

	for (int i = 0; i < SPIN; i++)
		if ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) != seen)
			return g;
	pthread_mutex_lock(&p->mu);
	p->sleepers++;
	while ((g = atomic_load(&p->gen)) == seen && !atomic_load(&p->quit))
		pthread_cond_wait(&p->wake, &p->mu);
	p->sleepers--;
	pthread_mutex_unlock(&p->mu);
	return g;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct moe_pool *p = w->pool;
	unsigned long seen = 0;

	for (;;) {
		seen = next_job(p, seen);
		if (atomic_load(&p->quit))
			break;
		p->fn(p->ctx, w->ith, p->n);
		atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
	}
	return NULL;
}

int moe_pool_new(struct moe_pool **out, int n_threads)
{
	struct moe_pool *p;
	int started = 0;

	if (n_threads < 1 || n_threads > 1024)
		return MOE_EINVAL;
	if ((p = calloc(1, sizeof *p)) == NULL)
		return MOE_ENOMEM;
	p->n = n_threads;
	if (n_threads > 1 && (p->w = calloc((size_t)n_threads - 1, sizeof *p->w)) == NULL) {
		free(p);
		return MOE_ENOMEM;
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->wake, NULL);
	atomic_init(&p->gen, 0);
	atomic_init(&p->pending, 0);
	atomic_init(&p->quit, 0);
	for (; started < n_threads - 1; started++) {
		p->w[started].pool = p;
		p->w[started].ith = started + 1;
		if (pthread_create(&p->w[started].tid, NULL, worker_main, &p->w[started]) != 0)
			break;
	}
	if (started < n_threads - 1) {
		p->n = started + 1;
		moe_pool_free(p);
		return MOE_EIO;
	}
	*out = p;
	return 0;
}

void moe_pool_free(struct moe_pool *p)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	atomic_store(&p->quit, 1);
	atomic_fetch_add(&p->gen, 1);
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->n - 1; i++)
		pthread_join(p->w[i].tid, NULL);
	pthread_cond_destroy(&p->wake);
	pthread_mutex_destroy(&p->mu);
	free(p->w);
	free(p);
}

int moe_pool_size(const struct moe_pool *p)
{
	return p->n;
}

void moe_pool_run(struct moe_pool *p, moe_pool_fn fn, void *ctx)
{
	if (p->n == 1) {
		fn(ctx, 0, 1);
		return;
	}
	p->fn = fn;
	p->ctx = ctx;
	atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
	pthread_mutex_lock(&p->mu);
	if (p->sleepers > 0)
		pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->mu);
	fn(ctx, 0, p->n);
	for (int i = 0; atomic_load_explicit(&p->pending, memory_order_acquire) > 0; i++)
		if (i > SPIN)
			sched_yield();
}

/* Below this many units a job finishes before the workers would wake. */
#define MIN_PARALLEL_WORK 32768.0

void moe_pool_run_sized(struct moe_pool *p, moe_pool_fn fn, void *ctx, double work)
{
	if (work < MIN_PARALLEL_WORK)
		fn(ctx, 0, 1);
	else
		moe_pool_run(p, fn, ctx);
}
