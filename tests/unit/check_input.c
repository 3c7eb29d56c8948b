/* Tests of the input layer: peek/read/skip/seek on files, memory, pipes and callbacks. */
#include <fcntl.h>
#include <sys/stat.h>

#include "error.h"
#include "input.h"
#include "testutil.h"

static unsigned char data[300000];

static void fill(void)
{
	for (size_t i = 0; i < sizeof data; i++)
		data[i] = (unsigned char)(i * 7 + (i >> 8));
}

/* Same checks for every kind of input. */
static void exercise(struct moe_input *in, int seekable)
{
	const void *p;
	size_t got;
	unsigned char buf[1000];

	ck_assert_int_eq(moe_input_peek(in, 512, &p, &got), 0);
	ck_assert_uint_eq(got, 512);
	ck_assert(memcmp(p, data, 512) == 0);
	ck_assert_uint_eq(moe_input_tell(in), 0);
	ck_assert_int_eq(moe_input_read(in, buf, 100), 0);
	ck_assert(memcmp(buf, data, 100) == 0);
	ck_assert_int_eq(moe_input_skip(in, 200000), 0);
	ck_assert_uint_eq(moe_input_tell(in), 200100);
	ck_assert_int_eq(moe_input_read(in, buf, 1000), 0);
	ck_assert(memcmp(buf, data + 200100, 1000) == 0);
	ck_assert_int_eq(moe_input_seek(in, 250000), 0);
	ck_assert_int_eq(moe_input_read(in, buf, 10), 0);
	ck_assert(memcmp(buf, data + 250000, 10) == 0);
	if (seekable) {
		ck_assert_int_eq(moe_input_seek(in, 5), 0);
		ck_assert_int_eq(moe_input_read(in, buf, 10), 0);
		ck_assert(memcmp(buf, data + 5, 10) == 0);
		ck_assert_int_eq(moe_input_seek(in, sizeof data + 1), MOE_ETRUNC);
	} else {
		ck_assert_int_eq(moe_input_seek(in, 5), MOE_ESEEK);
	}
	ck_assert_int_eq(moe_input_seek(in, sizeof data - 3), 0);
	ck_assert_int_eq(moe_input_read(in, buf, 4), MOE_ETRUNC);
	ck_assert_ptr_nonnull(strstr(moe_input_errstr(in), "unexpected end"));
}

START_TEST(file_input)
{
	char *path;
	struct moe_input *in;
	const void *base;
	uint64_t size;

	fill();
	path = moe_test_file(data, sizeof data);
	ck_assert_int_eq(moe_input_open(&in, path, NULL, 0), 0);
	ck_assert(moe_input_seekable(in));
	ck_assert_int_eq(moe_input_size(in), (int64_t)sizeof data);
	exercise(in, 1);
	ck_assert_int_eq(moe_input_map(in, &base, &size), 0);
	ck_assert_uint_eq(size, sizeof data);
	ck_assert(memcmp(base, data, sizeof data) == 0);
	moe_input_free(in);
	unlink(path);
	free(path);
}
END_TEST

START_TEST(memory_input)
{
	struct moe_input *in;

	fill();
	ck_assert_int_eq(moe_input_open_memory(&in, data, sizeof data, "mem"), 0);
	exercise(in, 1);
	moe_input_free(in);
}
END_TEST

struct src { size_t pos; size_t chunk; };

static ssize_t cb(void *ctx, void *buf, size_t n)
{
	struct src *s = ctx;
	size_t k = n < s->chunk ? n : s->chunk;

	if (k > sizeof data - s->pos)
		k = sizeof data - s->pos;
	memcpy(buf, data + s->pos, k);
	s->pos += k;
	return (ssize_t)k;
}

START_TEST(callback_input_short_reads)
{
	struct moe_input *in;
	struct src s = { 0, 7 };   /* short reads, like a slow pipe */
	const void *base;
	uint64_t size;

	fill();
	ck_assert_int_eq(moe_input_open_fn(&in, "cb", cb, &s, -1), 0);
	ck_assert(!moe_input_seekable(in));
	exercise(in, 0);
	ck_assert_int_eq(moe_input_map(in, &base, &size), MOE_ESEEK);
	moe_input_free(in);
}
END_TEST

START_TEST(pipe_input)
{
	int fds[2];
	struct moe_input *in;
	pid_t pid;
	int saved = dup(STDIN_FILENO);

	fill();
	ck_assert_int_eq(pipe(fds), 0);
	pid = fork();
	if (pid == 0) {
		size_t off = 0;
		close(fds[0]);
		while (off < sizeof data) {
			ssize_t w = write(fds[1], data + off, sizeof data - off);
			if (w <= 0)
				_exit(1);
			off += (size_t)w;
		}
		_exit(0);
	}
	close(fds[1]);
	dup2(fds[0], STDIN_FILENO);
	close(fds[0]);
	ck_assert_int_eq(moe_input_open(&in, "-", NULL, 0), 0);
	ck_assert_str_eq(moe_input_name(in), "<stdin>");
	ck_assert_int_eq(moe_input_size(in), -1);
	exercise(in, 0);
	moe_input_free(in);
	dup2(saved, STDIN_FILENO);
	close(saved);
}
END_TEST

START_TEST(open_errors)
{
	struct moe_input *in;
	char eb[128];

	ck_assert_int_eq(moe_input_open(&in, "/nonexistent/x", eb, sizeof eb), MOE_ENOENT);
	ck_assert_ptr_null(in);
	ck_assert_str_eq(eb, "No such file or directory");
	ck_assert_int_eq(moe_input_open(&in, "/tmp", eb, sizeof eb), MOE_EINVAL);
	ck_assert_str_eq(eb, "is a directory");
}
END_TEST

START_TEST(empty_and_peek_limits)
{
	struct moe_input *in;
	const void *p;
	size_t got;
	char c;

	ck_assert_int_eq(moe_input_open_memory(&in, "", 0, "empty"), 0);
	ck_assert_int_eq(moe_input_peek(in, 16, &p, &got), 0);
	ck_assert_uint_eq(got, 0);
	ck_assert_int_eq(moe_input_read(in, &c, 1), MOE_ETRUNC);
	ck_assert_int_eq(moe_input_peek(in, MOE_INPUT_PEEK_MAX + 1, &p, &got), MOE_EINVAL);
	moe_input_free(in);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("input");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, file_input);
	tcase_add_test(tc, memory_input);
	tcase_add_test(tc, callback_input_short_reads);
	tcase_add_test(tc, pipe_input);
	tcase_add_test(tc, open_errors);
	tcase_add_test(tc, empty_and_peek_limits);
	suite_add_tcase(s, tc);
	return moe_test_run(s);
}
