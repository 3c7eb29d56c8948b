/* Front-end helpers shared by the tools (not part of libmoe): messages, numbers, output, progress. */
#ifndef MOE_CLI_H
#define MOE_CLI_H

#include <stdint.h>
#include <stdio.h>

/* Exit codes of every tool. */
enum { MOE_EXIT_OK = 0, MOE_EXIT_FAIL = 1, MOE_EXIT_USAGE = 2 };

/* Records the program name (basename of argv0) and ignores SIGPIPE so that
 * a closed pipe is an EPIPE error we can stay silent about. */
void moe_cli_init(const char *argv0);
const char *moe_cli_progname(void);

/* "prog: subject: message" on stderr (subject may be NULL); flushes
 * stdout first. */
void moe_cli_error(const char *subject, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Prints "prog (moe-tools) VERSION" to stdout. */
void moe_cli_version(void);

/* Strict numbers: whole string, range-checked. 0 or -1 (message printed,
 * naming opt). */
int moe_cli_parse_u64(const char *opt, const char *s, uint64_t min,
	uint64_t max, uint64_t *out);
int moe_cli_parse_double(const char *opt, const char *s, double min,
	double max, double *out);
/* Byte sizes: "1000", "5GB" (10^9), "5GiB" (2^30), K/M/G/T with B or iB. */
int moe_cli_parse_size(const char *opt, const char *s, uint64_t *out);

/* If path is "-" (stdout) and stdout is a terminal, prints an error and
 * returns -1: binary output never goes to a terminal. */
int moe_cli_refuse_tty(const char *path);

/* Closes stdout and reports a failed write (full disk). Silent on EPIPE.
 * Returns status unchanged on success, MOE_EXIT_FAIL otherwise. */
int moe_cli_close_stdout(int status);

struct moe_conversion;
/* Writes a planned conversion to path ("-": stdout, refused on a
 * terminal) atomically; prints one "prog: subject: message" line on
 * failure, none when a reader closed the pipe. 0 or -1. */
int moe_cli_write_conversion(struct moe_conversion *c, const char *path, int force,
	const char *subject);

/* Progress bar on stderr, drawn only when stderr is a terminal. */
struct moe_progress {
	const char *label;
	uint64_t total;
	uint64_t done;
	double start, last;
	int enabled;
};
void moe_progress_init(struct moe_progress *p, const char *label, uint64_t total);
void moe_progress_update(struct moe_progress *p, uint64_t done);
void moe_progress_finish(struct moe_progress *p);
/* Adapter with the library's progress callback signature. */
void moe_progress_cb(void *p, uint64_t done, uint64_t total);

#endif
