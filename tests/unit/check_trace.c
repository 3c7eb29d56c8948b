/* Tests of the routing trace formats: round trips, sniffing, CSV import, validation messages. */
#include <math.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "error.h"

#include "trace.h"
#include "testutil.h"

static const uint32_t layers2[] = { 1, 3 };

/* 4 layers, MoE at 1 and 3, 4 experts, top-2, with probs, lse and text. */
static struct moe_trace_header header(unsigned flags)
{
	struct moe_trace_header h = { .n_layers = 4, .n_moe = 2, .moe_layers = layers2,
		.n_experts = 4, .top_k = 2, .flags = flags, .model = "tiny \"q\"",
		.gating = "softmax", .vocab = "vocab.gguf" };
	return h;
}

static const uint16_t ex[3][4] = { { 0, 1, 2, 3 }, { 3, 2, 1, 0 }, { 1, 3, 0, 2 } };
static const float wt[3][4] = { { 0.6f, 0.4f, 0.1f, 1e-7f }, { 0.3f, 0.7f, 0.5f, 0.5f },
	{ 1.0f / 3, 2.0f / 3, 0.25f, 0.75f } };
static const float pr[3][8] = { { 0.6f, 0.4f, 0, 0, 0.1f, 0.2f, 0.3f, 0.4f },
	{ 0.25f, 0.25f, 0.25f, 0.25f, 1, 0, 0, 0 }, { 0.1f, 0.2f, 0.3f, 0.4f, 0.4f, 0.3f, 0.2f, 0.1f } };
static const float ls[3][2] = { { 1.5f, -2.25f }, { 3.0f, 0.0f }, { 1e-3f, 7.125f } };
static const char *const tx[3] = { "the", NULL, "caf\xc3\xa9 \"\\\n" };

static struct moe_trace_token token(int i, unsigned flags)
{
	struct moe_trace_token t = { .seq = 7, .pos = (uint32_t)i, .token = i == 1 ? -1 : 100 + i,
		.experts = ex[i], .weights = wt[i] };
	if (flags & MOE_TRACE_PROBS)
		t.probs = pr[i];
	if (flags & MOE_TRACE_LSE)
		t.lse = ls[i];
	if (flags & MOE_TRACE_TEXT)
		t.text = tx[i];
	return t;
}

/* Writes the three tokens in fmt; returns malloc'd bytes and *n. */
static char *write_trace(enum moe_trace_format fmt, unsigned flags, size_t *n)
{
	char path[] = "/tmp/moe-trace.XXXXXX";
	struct moe_output *o;
	struct moe_trace_writer *w;
	struct moe_trace_header h = header(flags);
	struct stat st;
	char *buf;
	FILE *f;
	int fd = mkstemp(path);

	ck_assert(fd >= 0);
	close(fd);
	ck_assert_int_eq(moe_output_open(&o, path, MOE_OUT_FORCE), 0);
	ck_assert_int_eq(moe_trace_writer_new(&w, o, fmt, &h), 0);
	for (int i = 0; i < 3; i++) {
		struct moe_trace_token t = token(i, flags);
		ck_assert_int_eq(moe_trace_write(w, &t), 0);
	}
	ck_assert_int_eq(moe_output_commit(o), 0);
	moe_trace_writer_free(w);
	moe_output_free(o);
	ck_assert_int_eq(stat(path, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	f = fopen(path, "rb");
	ck_assert(fread(buf, 1, (size_t)st.st_size, f) == (size_t)st.st_size);
	fclose(f);
	unlink(path);
	buf[st.st_size] = '\0';
	*n = (size_t)st.st_size;
	return buf;
}

static void check_tokens(const char *buf, size_t n, enum moe_trace_format fmt, unsigned flags)
{
	struct moe_input *in;
	struct moe_trace_reader *r;
	const struct moe_trace_header *h;
	const struct moe_trace_token *t;

	ck_assert_int_eq(moe_input_open_memory(&in, buf, n, "t"), 0);
	ck_assert_int_eq(moe_trace_reader_new(&r, in), 0);
	ck_assert_int_eq(moe_trace_reader_format(r), fmt);
	h = moe_trace_reader_header(r);
	ck_assert_uint_eq(h->n_layers, 4);
	ck_assert_uint_eq(h->n_moe, 2);
	ck_assert_uint_eq(h->moe_layers[1], 3);
	ck_assert_uint_eq(h->flags, flags);
	ck_assert_str_eq(h->model, "tiny \"q\"");
	ck_assert_str_eq(h->vocab, "vocab.gguf");
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(moe_trace_read(r, &t), 1);
		ck_assert_uint_eq(t->pos, (uint32_t)i);
		ck_assert_int_eq(t->token, i == 1 ? -1 : 100 + i);
		ck_assert_mem_eq(t->experts, ex[i], sizeof ex[i]);
		/* bit-exact floats: the JSON writer prints 6 digits when
		 * they read back as the same float, else 9 */
		ck_assert_mem_eq(t->weights, wt[i], sizeof wt[i]);
		if (flags & MOE_TRACE_PROBS)
			ck_assert_mem_eq(t->probs, pr[i], sizeof pr[i]);
		else
			ck_assert_ptr_null(t->probs);
		if (flags & MOE_TRACE_LSE)
			ck_assert_mem_eq(t->lse, ls[i], sizeof ls[i]);
		if ((flags & MOE_TRACE_TEXT) && tx[i])
			ck_assert_str_eq(t->text, tx[i]);
		else
			ck_assert_ptr_null(t->text);
	}
	ck_assert_int_eq(moe_trace_read(r, &t), 0);
	ck_assert_uint_eq(moe_trace_reader_count(r), 3);
	moe_trace_reader_free(r);
	moe_input_free(in);
}

START_TEST(round_trips)
{
	static const unsigned fl[] = { 0, MOE_TRACE_PROBS | MOE_TRACE_LSE | MOE_TRACE_TEXT, MOE_TRACE_LSE };

	for (size_t i = 0; i < sizeof fl / sizeof fl[0]; i++) {
		size_t nj, nb;
		char *j = write_trace(MOE_TRACE_JSONL, fl[i], &nj);
		char *b = write_trace(MOE_TRACE_BIN, fl[i], &nb);
		check_tokens(j, nj, MOE_TRACE_JSONL, fl[i]);
		check_tokens(b, nb, MOE_TRACE_BIN, fl[i]);
		free(j);
		free(b);
	}
}
END_TEST

START_TEST(binary_layout)
{
	size_t n;
	char *b = write_trace(MOE_TRACE_BIN, 0, &n);
	struct moe_trace_header h = header(0);

	/* header: 40 fixed + (2+8) model + (2+7) gating + (2+10) vocab + 2*4
	 * layers = 79 bytes; records: 12 + 2*2*2 ids + 2*2*4 weights = 36 */
	ck_assert_uint_eq(moe_trace_record_bytes(&h), 36);
	ck_assert_uint_eq(n, 79 + 3 * 36);
	ck_assert_mem_eq(b, "MOETRACE\1\0\0\0\x4f\0\0\0", 16);
	free(b);
}
END_TEST

/* First error message of reading buf to the end. */
static char *read_error(const char *buf, size_t n, int *code)
{
	static char msg[512];
	struct moe_input *in;
	struct moe_trace_reader *r;
	const struct moe_trace_token *t;
	int rc;

	ck_assert_int_eq(moe_input_open_memory(&in, buf, n, "t"), 0);
	rc = moe_trace_reader_new(&r, in);
	while (rc == 0 && (rc = moe_trace_read(r, &t)) > 0)
		rc = 0;
	*code = rc;
	snprintf(msg, sizeof msg, "%s", rc ? moe_trace_reader_errstr(r) : "");
	moe_trace_reader_free(r);
	moe_input_free(in);
	return msg;
}

#define HDR "{\"format\":\"moe-trace\",\"version\":1,\"n_layers\":2,\"moe_layers\":[0,1],\"n_experts\":8,\"top_k\":2}\n"
#define TOK "{\"seq\":0,\"pos\":0,\"experts\":[[0,1],[2,3]],\"weights\":[[0.5,0.5],[0.5,0.5]]}\n"

START_TEST(bad_jsonl)
{
	static const struct { const char *text, *msg; int code; } cases[] = {
		{ HDR TOK "{\"seq\":0,\"pos\":1,\"experts\":[[0,9],[2,3]],\"weights\":[[0.5,0.5],[0.5,0.5]]}\n",
		  "line 3: layer 0: expert 9 out of range (8 experts)", MOE_EFORMAT },
		{ HDR "{\"seq\":0,\"pos\":1,\"experts\":[[0,1,2],[2,3]],\"weights\":[[0.5,0.5],[0.5,0.5]]}\n",
		  "line 2: layer 0: \"experts\" has 3 entries, expected 2", MOE_EFORMAT },
		{ HDR "{\"seq\":0,\"pos\":1,\"experts\":[[1,1],[2,3]],\"weights\":[[0.5,0.5],[0.5,0.5]]}\n",
		  "line 2: layer 0: expert 1 chosen twice", MOE_EFORMAT },
		{ HDR "{\"seq\":0,\"pos\":1,\"experts\":[[0,1],[2,3]],\"weights\":[[0.5,1e999],[0.5,0.5]]}\n",
		  "line 2: invalid JSON: real number overflow near '1e999'", MOE_EFORMAT },
		{ TOK, "line 1: missing trace header (\"format\": \"moe-trace\")", MOE_EFORMAT },
		{ "", "empty input (no trace header)", MOE_ETRUNC },
		{ "{\"format\":\"moe-trace\",\"version\":2}\n",
		  "trace version 2 is not supported (this reader knows version 1)", MOE_EUNSUP },
		{ HDR "{\"seq\":0,\n", "line 2: invalid JSON", MOE_EFORMAT },
		{ "hello", "not a routing trace (no moe-trace header, JSON object or CSV row)", MOE_EFORMAT },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int code;
		const char *m = read_error(cases[i].text, strlen(cases[i].text), &code);
		if (i == 7) {   /* jansson's wording varies by version: check the prefix */
			ck_assert_int_eq(strncmp(m, "line 2: invalid JSON: ", 22), 0);
			continue;
		}
		ck_assert_str_eq(m, cases[i].msg);
		ck_assert_int_eq(code, cases[i].code);
	}
}
END_TEST

START_TEST(bad_binary)
{
	size_t n;
	char *b = write_trace(MOE_TRACE_BIN, 0, &n);
	float nan_ = NAN;
	int code;

	/* truncated last record */
	ck_assert_str_eq(read_error(b, n - 5, &code), "record 3: truncated (31 of 36 bytes)");
	ck_assert_int_eq(code, MOE_ETRUNC);
	/* truncated header */
	ck_assert_str_eq(read_error(b, 50, &code), "binary header: truncated");
	/* expert id 9 in record 2, layer 3, slot 1 (ids start at 79 + 36 + 12) */
	b[79 + 36 + 12] = 9;
	ck_assert_str_eq(read_error(b, n, &code), "record 2: layer 1: expert 9 out of range (4 experts)");
	b[79 + 36 + 12] = 3;
	/* NaN weight: record 1, layer 3 (second MoE layer), weight 1 */
	memcpy(b + 79 + 12 + 8 + 8, &nan_, 4);
	ck_assert_str_eq(read_error(b, n, &code), "record 1: layer 3: weight 1 is not finite");
	/* newer version */
	b[8] = 2;
	ck_assert_str_eq(read_error(b, n, &code), "trace version 2 is not supported (this reader knows version 1)");
	ck_assert_int_eq(code, MOE_EUNSUP);
	b[8] = 1;
	/* record size that does not match the shape */
	b[36] = 99;
	ck_assert_str_eq(read_error(b, n, &code), "header: record size 99 does not match the shape (36)");
	/* header length beyond the limit */
	b[36] = 36;
	b[15] = 0x7f;
	ck_assert_str_eq(read_error(b, n, &code), "binary header: size 2130706511 out of range");
	free(b);
}
END_TEST

START_TEST(csv_import)
{
	static const char csv[] = "token,layer,expert,weight\n"
		"0,2,5,0.75\n0,2,1,0.25\n0,4,0,0.5\n0,4,3,0.5\n"
		"1,4,3,0.5\n1,2,2,0.5\n1,2,5,0.5\n1,4,1,0.5\n";
	static const char bad[] = "0,2,5\n0,2,1\n0,4,0\n1,2,1\n1,4,0\n1,4,2\n";
	struct moe_input *in;
	struct moe_trace_reader *r;
	const struct moe_trace_header *h;
	const struct moe_trace_token *t;
	int code;

	ck_assert_int_eq(moe_input_open_memory(&in, csv, sizeof csv - 1, "c"), 0);
	ck_assert_int_eq(moe_trace_reader_new(&r, in), 0);
	ck_assert_int_eq(moe_trace_reader_format(r), MOE_TRACE_CSV);
	h = moe_trace_reader_header(r);
	/* layers seen 2 and 4 -> 5 layers, 2 MoE; experts up to 5 -> 6; k = 2 */
	ck_assert_uint_eq(h->n_layers, 5);
	ck_assert_uint_eq(h->n_moe, 2);
	ck_assert_uint_eq(h->moe_layers[0], 2);
	ck_assert_uint_eq(h->n_experts, 6);
	ck_assert_uint_eq(h->top_k, 2);
	ck_assert_int_eq(moe_trace_read(r, &t), 1);
	ck_assert_uint_eq(t->experts[0], 5);
	ck_assert_uint_eq(t->experts[1], 1);
	ck_assert_uint_eq(t->experts[2], 0);
	ck_assert(t->weights[0] == 0.75f);
	ck_assert_int_eq(moe_trace_read(r, &t), 1);
	/* rows of layer 4 and 2 interleave: order within a layer is kept */
	ck_assert_uint_eq(t->experts[0], 2);
	ck_assert_uint_eq(t->experts[1], 5);
	ck_assert_uint_eq(t->experts[2], 3);
	ck_assert_uint_eq(t->experts[3], 1);
	ck_assert_int_eq(moe_trace_read(r, &t), 0);
	moe_trace_reader_free(r);
	moe_input_free(in);
	/* token 0 has one expert in layer 4 while k = 2 */
	ck_assert_str_eq(read_error(bad, sizeof bad - 1, &code),
		"line 1: token 0 has 1 experts in layer 4, expected 2");
	ck_assert_str_eq(read_error("0,1,2\n0,1,x\n", 12, &code),
		"line 2: expected token,layer,expert[,weight] with whole numbers");
}
END_TEST

START_TEST(writer_validates)
{
	struct moe_output *o;
	struct moe_trace_writer *w;
	struct moe_trace_header h = header(0);
	uint16_t dup[4] = { 1, 1, 2, 3 };
	struct moe_trace_token t = token(0, 0);
	int fd = open("/dev/null", O_WRONLY);

	ck_assert_int_eq(moe_output_open_fd(&o, fd, "null"), 0);
	ck_assert_int_eq(moe_trace_writer_new(&w, o, MOE_TRACE_BIN, &h), 0);
	t.experts = dup;
	ck_assert_int_eq(moe_trace_write(w, &t), MOE_EINVAL);
	ck_assert_str_eq(moe_trace_writer_errstr(w), "layer 1: expert 1 chosen twice");
	moe_trace_writer_free(w);
	h.top_k = 5;
	ck_assert_int_eq(moe_trace_writer_new(&w, o, MOE_TRACE_BIN, &h), MOE_EINVAL);
	ck_assert_str_eq(moe_trace_writer_errstr(w),
		"header: top-k out of range (1 to the expert count, at most 256)");
	moe_trace_writer_free(w);
	moe_output_free(o);
	close(fd);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("trace");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, round_trips);
	tcase_add_test(tc, binary_layout);
	tcase_add_test(tc, bad_jsonl);
	tcase_add_test(tc, bad_binary);
	tcase_add_test(tc, csv_import);
	tcase_add_test(tc, writer_validates);
	suite_add_tcase(s, tc);
	return moe_test_run(s);
}
