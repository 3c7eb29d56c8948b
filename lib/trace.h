/* Routing traces: which experts each token used, as JSON Lines, a binary stream or imported CSV. */
#ifndef MOE_TRACE_H
#define MOE_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "input.h"
#include "output.h"

/*
 * A trace is a header (model shape) followed by one record per token. The
 * layout of both encodings is documented in moe-trace(5) and at the top of
 * trace.c. Readers and writers own their handles; the header and token
 * returned by a reader stay owned by it and are valid until the next read
 * (tokens) or moe_trace_reader_free() (header). Writers copy nothing from
 * the caller's header after moe_trace_writer_new() returns.
 *
 * Writing, as an inference engine does per token:
 *   moe_output_open(&o, "run.bin", 0);
 *   moe_trace_writer_new(&w, o, MOE_TRACE_BIN, &h);
 *   per token: fill t.experts and t.weights (n_moe x k), moe_trace_write(w, &t);
 *   moe_output_commit(o);   the trace is complete only after this
 *   moe_trace_writer_free(w); moe_output_free(o);
 */

#define MOE_TRACE_VERSION 1
#define MOE_TRACE_MAX_LAYERS 4096
#define MOE_TRACE_MAX_EXPERTS 65535
#define MOE_TRACE_MAX_TOPK 256
#define MOE_TRACE_MAX_TEXT 65535   /* bytes of token text */
#define MOE_TRACE_MAX_NAME 65535   /* bytes of model/gating/vocab strings */
#define MOE_TRACE_MAX_LSE 1e6f     /* |router log-sum-exp| */
#define MOE_TRACE_MAX_PAIRS (1u << 22) /* MoE layers x experts: bounds records and state */

enum moe_trace_format {
	MOE_TRACE_JSONL = 1,
	MOE_TRACE_BIN = 2,
	MOE_TRACE_CSV = 3     /* read only: rows token,layer,expert[,weight] */
};

enum {
	MOE_TRACE_PROBS = 1,  /* full router probability vector per MoE layer */
	MOE_TRACE_LSE = 2,    /* router log-sum-exp per MoE layer */
	MOE_TRACE_TEXT = 4    /* token text */
};

struct moe_trace_header {
	uint32_t n_layers;          /* all layers of the model */
	uint32_t n_moe;             /* MoE layers recorded per token */
	const uint32_t *moe_layers; /* (n_moe) model layer index, increasing */
	uint32_t n_experts;         /* routed experts per MoE layer */
	uint32_t top_k;             /* experts chosen per token and layer */
	unsigned flags;             /* MOE_TRACE_PROBS | _LSE | _TEXT */
	const char *model;          /* "" when unknown */
	const char *gating;         /* "softmax", "sigmoid", ... or "" */
	const char *vocab;          /* vocabulary reference or "" */
};

struct moe_trace_token {
	uint32_t seq;               /* sequence (request) id */
	uint32_t pos;               /* position in the sequence */
	int32_t token;              /* token id, -1 when unknown */
	const char *text;           /* NUL-terminated, NULL when absent */
	const uint16_t *experts;    /* (n_moe, top_k) chosen expert ids */
	const float *weights;       /* (n_moe, top_k) gate weights */
	const float *probs;         /* (n_moe, n_experts) or NULL */
	const float *lse;           /* (n_moe) or NULL */
};

/* Checks a header's counts and strings: 0 or MOE_EFORMAT with a message. */
int moe_trace_header_check(const struct moe_trace_header *h, char *msg, size_t len);
/* Checks one token against h: 0 or MOE_EFORMAT with a message such as
 * "expert 9 out of range (8 experts)". */
int moe_trace_token_check(const struct moe_trace_header *h,
	const struct moe_trace_token *t, char *msg, size_t len);

struct moe_trace_reader;

/* Reads the header, detecting the encoding by content (binary magic, '{'
 * for JSON Lines, a digit or a CSV header line for CSV). The input stays
 * owned by the caller and must outlive the reader. */
int moe_trace_reader_new(struct moe_trace_reader **out, struct moe_input *in);
void moe_trace_reader_free(struct moe_trace_reader *r);
const struct moe_trace_header *moe_trace_reader_header(const struct moe_trace_reader *r);
enum moe_trace_format moe_trace_reader_format(const struct moe_trace_reader *r);
/* Next token: 1 and *t set, 0 at the end, or a negative code; the message
 * names the line or record ("line 7: ..."). */
int moe_trace_read(struct moe_trace_reader *r, const struct moe_trace_token **t);
/* Tokens returned so far. */
uint64_t moe_trace_reader_count(const struct moe_trace_reader *r);
const char *moe_trace_reader_errstr(const struct moe_trace_reader *r);

struct moe_trace_writer;

/* Writes h to o in fmt (JSONL or BIN). o stays owned by the caller, who
 * commits it after the last token. */
int moe_trace_writer_new(struct moe_trace_writer **out, struct moe_output *o,
	enum moe_trace_format fmt, const struct moe_trace_header *h);
/* Validates and appends one token. */
int moe_trace_write(struct moe_trace_writer *w, const struct moe_trace_token *t);
void moe_trace_writer_free(struct moe_trace_writer *w);
const char *moe_trace_writer_errstr(const struct moe_trace_writer *w);

/* Bytes per binary record for h, excluding token text. */
uint64_t moe_trace_record_bytes(const struct moe_trace_header *h);

#endif
