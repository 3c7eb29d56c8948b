/* Internals shared by the trace encodings (trace.c, trace_jsonl.c, trace_csv.c); not part of the API. */
#ifndef MOE_TRACE_IMPL_H
#define MOE_TRACE_IMPL_H

#include "error.h"
#include "trace.h"

struct csv_row {
	uint64_t token;
	uint64_t line;
	uint32_t layer;
	uint32_t expert;
	float weight;
};

struct moe_trace_reader {
	struct moe_input *in;
	struct moe_error err;
	enum moe_trace_format fmt;
	struct moe_trace_header h;
	uint32_t *layers;           /* (n_moe) owned copy for h.moe_layers */
	char *model, *gating, *vocab;
	struct moe_trace_token t;
	uint16_t *experts;          /* (n_moe, k) */
	float *weights;             /* (n_moe, k) */
	float *probs;               /* (n_moe, E) */
	float *lse;                 /* (n_moe) */
	char *text;                 /* MOE_TRACE_MAX_TEXT + 1 */
	unsigned char *rec;         /* binary record buffer */
	uint64_t rec_bytes;
	char *line;                 /* JSONL/CSV line buffer */
	size_t line_cap;
	uint64_t lineno;            /* JSONL/CSV line of the last token */
	uint64_t count;
	struct csv_row *rows;       /* CSV: all rows, grouped by token */
	size_t n_rows, row_next;
	int32_t *layer_index;       /* CSV: model layer -> MoE index or -1 */
	int csv_weights;
};

struct moe_trace_writer {
	struct moe_output *o;
	struct moe_error err;
	enum moe_trace_format fmt;
	struct moe_trace_header h;
	uint32_t *layers;
	unsigned char *rec;         /* binary record, or JSONL line buffer */
	size_t cap;
};

int moe_trace_rfail(struct moe_trace_reader *r, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int moe_trace_wfail(struct moe_trace_writer *w, int code, const char *msg);
/* Writes through the output, keeping its error on w. */
int moe_trace_wout(struct moe_trace_writer *w, const void *p, size_t n);
int moe_trace_utf8_valid(const unsigned char *s, size_t n);
/* Reads one line (without the newline) into r->line: 1, 0 at end, or < 0. */
int moe_trace_read_line(struct moe_trace_reader *r, size_t *len);

/* Per encoding: header after sniffing, next token (1, 0 at end, < 0). */
int moe_trace_jsonl_read_header(struct moe_trace_reader *r);
int moe_trace_jsonl_read(struct moe_trace_reader *r);
int moe_trace_csv_read_header(struct moe_trace_reader *r);
int moe_trace_csv_read(struct moe_trace_reader *r);
int moe_trace_jsonl_write_header(struct moe_trace_writer *w);
int moe_trace_jsonl_write(struct moe_trace_writer *w, const struct moe_trace_token *t);

#endif
