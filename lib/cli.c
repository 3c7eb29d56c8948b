/* Tool front-end: program name, diagnostics, strict option values, stdout and progress. */
#include "cli.h"
#include "convert.h"
#include "error.h"
#include "output.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static const char *progname = "moe";

void moe_cli_init(const char *argv0)
{
	const char *s = strrchr(argv0, '/');

	progname = s ? s + 1 : argv0;
	signal(SIGPIPE, SIG_IGN);
}

const char *moe_cli_progname(void)
{
	return progname;
}

void moe_cli_error(const char *subject, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	if (subject)
		fprintf(stderr, "%s: %s: ", progname, subject);
	else
		fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void moe_cli_version(void)
{
	printf("%s (moe-tools) %s\n", progname, MOE_VERSION);
}

int moe_cli_parse_u64(const char *opt, const char *s, uint64_t min,
	uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	if (*s == '-' || *s == '+' || *s == '\0' || *s == ' ')
		goto bad;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		goto bad;
	*out = v;
	return 0;
bad:
	moe_cli_error(NULL, "%s: '%s' is not a whole number from %llu to %llu",
		opt, s, (unsigned long long)min, (unsigned long long)max);
	return -1;
}

int moe_cli_parse_double(const char *opt, const char *s, double min,
	double max, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (*s == '\0' || errno != 0 || *end != '\0' || !isfinite(v) ||
	    v < min || v > max) {
		moe_cli_error(NULL, "%s: '%s' is not a number from %g to %g",
			opt, s, min, max);
		return -1;
	}
	*out = v;
	return 0;
}

int moe_cli_parse_size(const char *opt, const char *s, uint64_t *out)
{
	static const char units[] = "KMGT";
	char *end;
	unsigned long long v;
	uint64_t mult = 1;
	const char *u;

	errno = 0;
	if (*s < '0' || *s > '9')
		goto bad;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		goto bad;
	if (*end != '\0') {
		const char *p = strchr(units, (char)(*end & ~0x20));
		int bin;
		if (p == NULL)
			goto bad;
		u = end + 1;
		bin = strcasecmp(u, "iB") == 0;
		if (!bin && strcasecmp(u, "B") != 0 && *u != '\0')
			goto bad;
		for (int i = 0; i <= p - units; i++)
			mult *= bin ? 1024 : 1000;
	}
	if (v == 0 || v > UINT64_MAX / mult)
		goto bad;
	*out = v * mult;
	return 0;
bad:
	moe_cli_error(NULL, "%s: '%s' is not a size (e.g. 5GB, 500MiB)", opt, s);
	return -1;
}

int moe_cli_refuse_tty(const char *path)
{
	if (strcmp(path, "-") == 0 && isatty(STDOUT_FILENO)) {
		moe_cli_error(NULL, "refusing to write binary output to a terminal");
		return -1;
	}
	return 0;
}

int moe_cli_close_stdout(int status)
{
	int err = ferror(stdout);

	errno = 0;
	if (fclose(stdout) != 0 || err) {
		if (errno == EPIPE)
			return MOE_EXIT_FAIL;
		fprintf(stderr, "%s: standard output: %s\n", progname,
			strerror(errno ? errno : EIO));
		return MOE_EXIT_FAIL;
	}
	return status;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void moe_progress_init(struct moe_progress *p, const char *label, uint64_t total)
{
	memset(p, 0, sizeof *p);
	p->label = label;
	p->total = total;
	p->enabled = isatty(STDERR_FILENO) && getenv("MOE_NO_PROGRESS") == NULL;
	p->start = p->last = now();
}

static void draw(struct moe_progress *p)
{
	double frac = p->total ? (double)p->done / (double)p->total : 0;
	int width = 30, fill = (int)(frac * width);
	double el = now() - p->start;

	if (frac > 1)
		frac = 1, fill = width;
	fprintf(stderr, "\r%s [%.*s%*s] %3d%% %6.1fs", p->label, fill,
		"##############################", width - fill, "",
		(int)(frac * 100), el);
}

void moe_progress_update(struct moe_progress *p, uint64_t done)
{
	double t;

	p->done = done;
	if (!p->enabled)
		return;
	t = now();
	if (t - p->last < 0.1)
		return;
	p->last = t;
	draw(p);
}

void moe_progress_finish(struct moe_progress *p)
{
	if (!p->enabled)
		return;
	p->done = p->total;
	draw(p);
	fputc('\n', stderr);
}

void moe_progress_cb(void *p, uint64_t done, uint64_t total)
{
	struct moe_progress *pr = p;

	pr->total = total;
	moe_progress_update(pr, done);
}

int moe_cli_write_conversion(struct moe_conversion *c, const char *path, int force,
	const char *subject)
{
	struct moe_output *out = NULL;
	int rc;

	if (moe_cli_refuse_tty(path) != 0)
		return -1;
	if (moe_output_open(&out, path, force ? MOE_OUT_FORCE : 0) != 0) {
		moe_cli_error(path, "%s", out ? moe_output_errstr(out) : "out of memory");
		moe_output_free(out);
		return -1;
	}
	/* a reader that stopped early (| head) is not an error worth a line */
	if ((rc = moe_convert_write(c, out)) != 0) {
		if (rc != MOE_EPIPE)
			moe_cli_error(subject, "%s", moe_convert_errstr(c));
	} else if ((rc = moe_output_commit(out)) != 0 && rc != MOE_EPIPE) {
		moe_cli_error(path, "%s", moe_output_errstr(out));
	}
	moe_output_free(out);
	return rc ? -1 : 0;
}
