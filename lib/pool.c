/* Worker threads for the inference kernels: a generation counter wakes them, a count says when all are done. */
#include "pool.h"

#include <pthread.h>
#include <stdlib.h>

#include "error.h"

struct worker {
	struct moe_pool *pool;
	int ith;
	pthread_t tid;
};

struct moe_pool {
	int n;                    /* threads, the caller included */
	struct worker *w;         /* [n - 1] */
	pthread_mutex_t mu;
	pthread_cond_t wake, done;
	unsigned long gen;        /* bumped for every job */
	int pending;              /* workers still running the job */
	int quit;
	moe_pool_fn fn;
	void *ctx;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct moe_pool *p = w->pool;
	unsigned long seen = 0;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->gen == seen && !p->quit)
			pthread_cond_wait(&p->wake, &p->mu);
		if (p->quit)
			break;
		seen = p->gen;
		pthread_mutex_unlock(&p->mu);
		p->fn(p->ctx, w->ith, p->n);
		pthread_mutex_lock(&p->mu);
		if (--p->pending == 0)
			pthread_cond_signal(&p->done);
	}
	pthread_mutex_unlock(&p->mu);
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
	pthread_cond_init(&p->done, NULL);
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
	p->quit = 1;
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->n - 1; i++)
		pthread_join(p->w[i].tid, NULL);
	pthread_cond_destroy(&p->wake);
	pthread_cond_destroy(&p->done);
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
	pthread_mutex_lock(&p->mu);
	p->fn = fn;
	p->ctx = ctx;
	p->pending = p->n - 1;
	p->gen++;
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->mu);
	fn(ctx, 0, p->n);
	pthread_mutex_lock(&p->mu);
	while (p->pending > 0)
		pthread_cond_wait(&p->done, &p->mu);
	pthread_mutex_unlock(&p->mu);
}
