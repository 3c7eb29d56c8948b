/* libFuzzer harness: routing traces (all encodings) through reader, statistics, writer; partial state loader. */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "input.h"
#include "output.h"
#include "route_stats.h"
#include "trace.h"

static void stats_and_copy(struct moe_trace_reader *r)
{
	const struct moe_trace_header *h = moe_trace_reader_header(r);
	const struct moe_trace_token *t;
	struct moe_route_opts o;
	struct moe_route_stats *s = NULL;
	struct moe_output *out = NULL;
	struct moe_trace_writer *w = NULL;
	int fd = open("/dev/null", O_WRONLY);

	moe_route_opts_init(&o);
	o.group_size = 3;
	o.cache_segment = 5;
	o.window = 4;
	o.top_tokens = 2;
	if (moe_route_stats_new(&s, h, &o) != 0 || moe_output_open_fd(&out, fd, "null") != 0 ||
	    moe_trace_writer_new(&w, out, MOE_TRACE_JSONL, h) != 0)
		goto done;
	while (moe_trace_read(r, &t) > 0) {
		/* the writer must accept whatever the reader validated */
		if (moe_route_stats_add(s, t) != 0 || moe_trace_write(w, t) != 0)
			abort();
	}
	if (moe_route_stats_flush(s) == 0)
		for (uint32_t l = 0; l < h->n_moe; l++) {
			double a, b;
			(void)moe_route_stats_jaccard(s, l);
			(void)moe_route_stats_aux_loss(s, l, &a, &b);
			if (l > 0)
				(void)moe_route_stats_consistency(s, l);
		}
done:
	moe_trace_writer_free(w);
	moe_output_free(out);
	moe_route_stats_free(s);
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moe_input *in;
	struct moe_trace_reader *r = NULL;
	struct moe_route_stats *p = NULL;

	if (moe_input_open_memory(&in, data, size, "fuzz") != 0)
		return 0;
	if (moe_trace_reader_new(&r, in) == 0)
		stats_and_copy(r);
	moe_trace_reader_free(r);
	moe_input_free(in);
	if (moe_input_open_memory(&in, data, size, "fuzz") != 0)
		return 0;
	(void)moe_route_stats_load(&p, in);
	moe_route_stats_free(p);
	moe_input_free(in);
	return 0;
}
