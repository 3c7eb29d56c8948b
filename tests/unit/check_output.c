/* Tests of the atomic writer: commit renames, failure leaves nothing, force, full disk. */
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>

#include "error.h"
#include "output.h"
#include "testutil.h"

static char dir[] = "/tmp/moe-out.XXXXXX";

static int count_entries(void)
{
	char cmd[256];
	FILE *p;
	int n = -1;

	snprintf(cmd, sizeof cmd, "ls -A %s | wc -l", dir);
	p = popen(cmd, "r");
	ck_assert(fscanf(p, "%d", &n) == 1);
	pclose(p);
	return n;
}

START_TEST(commit_and_abort)
{
	struct moe_output *o;
	char path[512], buf[16] = { 0 };
	FILE *f;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/out.bin", dir);
	ck_assert_int_eq(moe_output_open(&o, path, 0), 0);
	ck_assert_int_eq(moe_output_write(o, "hello", 5), 0);
	ck_assert_int_eq(moe_output_zeros(o, 3), 0);
	ck_assert_uint_eq(moe_output_tell(o), 8);
	ck_assert_int_eq(access(path, F_OK), -1);  /* not there before commit */
	ck_assert_int_eq(moe_output_commit(o), 0);
	moe_output_free(o);
	f = fopen(path, "rb");
	ck_assert_uint_eq(fread(buf, 1, sizeof buf, f), 8);
	fclose(f);
	ck_assert(memcmp(buf, "hello\0\0\0", 8) == 0);

	/* existing target without force */
	ck_assert_int_eq(moe_output_open(&o, path, 0), MOE_EEXIST);
	moe_output_free(o);
	/* with force, but abandoned: the old file stays, no temp is left */
	ck_assert_int_eq(moe_output_open(&o, path, MOE_OUT_FORCE), 0);
	ck_assert_int_eq(moe_output_write(o, "xx", 2), 0);
	moe_output_free(o);
	ck_assert_int_eq(count_entries(), 1);
	f = fopen(path, "rb");
	ck_assert_uint_eq(fread(buf, 1, sizeof buf, f), 8);
	fclose(f);
	unlink(path);
	rmdir(dir);
}
END_TEST

START_TEST(full_disk_is_an_error)
{
	struct moe_output *o;
	int fd = open("/dev/full", O_WRONLY);
	static char big[3 << 20];

	ck_assert(fd >= 0);
	ck_assert_int_eq(moe_output_open_fd(&o, fd, "/dev/full"), 0);
	ck_assert_int_eq(moe_output_write(o, big, sizeof big), MOE_EIO);
	ck_assert_ptr_nonnull(strstr(moe_output_errstr(o), "No space left"));
	moe_output_free(o);
	ck_assert_int_eq(moe_output_open_fd(&o, fd, "/dev/full"), 0);
	ck_assert_int_eq(moe_output_write(o, "x", 1), 0);   /* buffered */
	ck_assert_int_eq(moe_output_commit(o), MOE_EIO);    /* flush fails */
	moe_output_free(o);
	close(fd);
}
END_TEST

START_TEST(closed_pipe_is_epipe)
{
	struct moe_output *o;
	int fds[2];

	signal(SIGPIPE, SIG_IGN);
	ck_assert_int_eq(pipe(fds), 0);
	close(fds[0]);
	ck_assert_int_eq(moe_output_open_fd(&o, fds[1], "pipe"), 0);
	ck_assert(moe_output_is_stream(o));
	ck_assert_int_eq(moe_output_write(o, "x", 1), 0);
	ck_assert_int_eq(moe_output_commit(o), MOE_EPIPE);
	ck_assert_int_eq(moe_output_pwrite(o, "x", 1, 0), MOE_EPIPE);  /* sticky */
	moe_output_free(o);
	close(fds[1]);
}
END_TEST

START_TEST(missing_directory)
{
	struct moe_output *o;

	ck_assert_int_eq(moe_output_open(&o, "/nonexistent-dir/x.gguf", 0), MOE_EIO);
	ck_assert_ptr_nonnull(strstr(moe_output_errstr(o), "cannot create"));
	moe_output_free(o);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("output");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, commit_and_abort);
	tcase_add_test(tc, full_disk_is_an_error);
	tcase_add_test(tc, closed_pipe_is_epipe);
	tcase_add_test(tc, missing_directory);
	suite_add_tcase(s, tc);
	return moe_test_run(s);
}
