/* Shared scaffolding for the Check unit tests: suite runner and temp files. */
#ifndef MOE_TESTUTIL_H
#define MOE_TESTUTIL_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Runs suite s and returns the process exit status. */
static inline int moe_test_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* Writes n bytes to a fresh temp file; returns its malloc'd path. */
static inline char *moe_test_file(const void *buf, size_t n)
{
	char *path = strdup("/tmp/moe-unit.XXXXXX");
	int fd = mkstemp(path);

	ck_assert(fd >= 0);
	ck_assert(write(fd, buf, n) == (ssize_t)n);
	close(fd);
	return path;
}

/* A forward-only source that hands out at most step bytes per read, like
 * a slow pipe: for moe_input_open_fn. */
struct moe_test_chunks {
	const unsigned char *p;
	size_t n, pos, step;
};

static inline ssize_t moe_test_chunk_read(void *ctx, void *buf, size_t n)
{
	struct moe_test_chunks *c = ctx;
	size_t k = c->n - c->pos;

	if (k > n)
		k = n;
	if (k > c->step)
		k = c->step;
	memcpy(buf, c->p + c->pos, k);
	c->pos += k;
	return (ssize_t)k;
}

/* Directory of the shared reference data, or NULL (with a note) if absent. */
static inline const char *moe_test_shared(void)
{
	const char *d = getenv("MOE_TEST_SHARED");
	char probe[4096];

	if (d == NULL)
		d = "../shared";
	snprintf(probe, sizeof probe, "%s/ref/README.md", d);
	if (access(probe, R_OK) != 0) {
		fprintf(stderr, "note: %s/ref not found; skipping reference-data checks\n", d);
		return NULL;
	}
	return d;
}

#endif
