/* Tests of routing statistics and cache simulation against hand-worked answers. */
#include <math.h>

#include "error.h"
#include "route_report.h"
#include "route_stats.h"
#include "testutil.h"

#define EPS 1e-12

static uint32_t L1[] = { 0 }, L2[] = { 0, 1 };

static struct moe_trace_header hdr(uint32_t n_moe, uint32_t E, uint32_t k, unsigned flags)
{
	struct moe_trace_header h = { .n_layers = n_moe, .n_moe = n_moe,
		.moe_layers = n_moe == 1 ? L1 : L2, .n_experts = E, .top_k = k,
		.flags = flags, .model = "m", .gating = "softmax", .vocab = "" };
	return h;
}

static int32_t token_id = -1;   /* token id of the next add() */

/* Adds a token whose experts are ids (n_moe * k), weights all 1/2. */
static void add(struct moe_route_stats *s, uint32_t seq, uint32_t pos, const uint16_t *ids,
	const float *probs, const float *lse)
{
	static const float w[16] = { 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f,
		0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f };
	struct moe_trace_token t = { .seq = seq, .pos = pos, .token = token_id, .experts = ids,
		.weights = w, .probs = probs, .lse = lse };

	ck_assert_int_eq(moe_route_stats_add(s, &t), 0);
}

START_TEST(uniform_routing)
{
	struct moe_trace_header h = hdr(1, 4, 1, 0);
	struct moe_route_opts o;
	struct moe_route_stats *s;
	struct moe_route_balance b;

	moe_route_opts_init(&o);
	ck_assert_int_eq(moe_route_stats_new(&s, &h, &o), 0);
	/* experts 0 1 2 3 0 1 2 3: every load is 2 */
	for (uint16_t i = 0; i < 8; i++) {
		uint16_t e = i % 4;
		add(s, 0, i, &e, NULL, NULL);
	}
	ck_assert_int_eq(moe_route_stats_flush(s), 0);
	moe_route_balance(moe_route_stats_load_counts(s, 0), 4, 1, &b);
	ck_assert_double_eq_tol(b.cv, 0, EPS);
	ck_assert_double_eq_tol(b.jain, 1, EPS);
	ck_assert_double_eq_tol(b.entropy_norm, 1, EPS);
	ck_assert_double_eq_tol(b.eff_experts, 4, 1e-9);
	ck_assert_double_eq_tol(b.max_mean, 1, EPS);
	ck_assert_double_eq_tol(b.top_m_share, 0.25, EPS);
	ck_assert_uint_eq(b.dead, 0);
	/* capacity floor(1 * 8 * 1 / 4) = 2 per expert at CF 1: no drops */
	ck_assert_uint_eq(moe_route_stats_drops(s, 0)[0], 0);
	moe_route_stats_free(s);
}
END_TEST

START_TEST(full_collapse)
{
	uint64_t c[4] = { 4, 0, 0, 0 };
	struct moe_route_balance b;

	/* mean 1, variance ((4-1)^2 + 3 * 1^2) / 4 = 3, CV = sqrt 3;
	 * Jain = 16 / (4 * 16) = 1/4; entropy 0 so exp(H) = 1 */
	moe_route_balance(c, 4, 1, &b);
	ck_assert_double_eq_tol(b.cv, sqrt(3), EPS);
	ck_assert_double_eq_tol(b.jain, 0.25, EPS);
	ck_assert_double_eq_tol(b.max_mean, 4, EPS);
	ck_assert_double_eq_tol(b.entropy, 0, EPS);
	ck_assert_double_eq_tol(b.eff_experts, 1, EPS);
	ck_assert_double_eq_tol(b.top_m_share, 1, EPS);
	ck_assert_uint_eq(b.dead, 3);
	/* loads 2 1 1 0 (total 4): f = 1/2 1/4 1/4, H = 1.5 ln 2,
	 * normalised by ln 4 = 2 ln 2 -> 0.75; top-2 share 3/4 */
	uint64_t d[4] = { 2, 1, 1, 0 };
	moe_route_balance(d, 4, 2, &b);
	ck_assert_double_eq_tol(b.entropy_norm, 0.75, EPS);
	ck_assert_double_eq_tol(b.eff_experts, pow(2, 1.5), 1e-12);
	ck_assert_double_eq_tol(b.top_m_share, 0.75, EPS);
}
END_TEST

START_TEST(zipf_drops)
{
	struct moe_trace_header h = hdr(1, 4, 1, 0);
	struct moe_route_opts o;
	struct moe_route_stats *s;
	/* a group of 10 tokens with loads 5 3 1 1 (Zipf-like), twice */
	static const uint16_t seq[10] = { 0, 1, 0, 2, 0, 1, 3, 0, 1, 0 };

	moe_route_opts_init(&o);
	o.group_size = 10;
	ck_assert_int_eq(moe_route_stats_new(&s, &h, &o), 0);
	for (int r = 0; r < 2; r++)
		for (uint32_t i = 0; i < 10; i++)
			add(s, 0, r * 10 + i, &seq[i], NULL, NULL);
	ck_assert_int_eq(moe_route_stats_flush(s), 0);
	/* capacity = floor(CF * 10 * 1 / 4):
	 * CF 1    -> 2: drops (5-2) + (3-2) = 4 per group
	 * CF 1.25 -> 3: drops 2;  CF 1.5 -> 3: drops 2;  CF 2 -> 5: none */
	const uint64_t *d = moe_route_stats_drops(s, 0);
	ck_assert_uint_eq(d[0], 8);
	ck_assert_uint_eq(d[1], 4);
	ck_assert_uint_eq(d[2], 4);
	ck_assert_uint_eq(d[3], 0);
	moe_route_stats_free(s);

	/* a new sequence closes the group: 10 tokens in two sequences of 5
	 * (loads 3 1 1 0 then 2 2 0 1, capacity floor(5/4) = 1 at CF 1)
	 * drop (3-1) and (2-1)+(2-1) = 4 */
	moe_route_opts_init(&o);
	o.group_size = 10;
	ck_assert_int_eq(moe_route_stats_new(&s, &h, &o), 0);
	for (uint32_t i = 0; i < 10; i++)
		add(s, i < 5 ? 0 : 1, i, &seq[i], NULL, NULL);
	ck_assert_int_eq(moe_route_stats_flush(s), 0);
	ck_assert_uint_eq(moe_route_stats_drops(s, 0)[0], 4);
	moe_route_stats_free(s);
}
END_TEST

/* Hits for sizes 1..E of each policy on ids. */
static void cache_hits(const uint16_t *ids, size_t n, uint32_t E, uint64_t hits[3][8],
	uint64_t *depth)
{
	struct moe_cache_sim *c;

	memset(depth, 0, 3 * (E + 1) * sizeof *depth);
	ck_assert_int_eq(moe_cache_sim_new(&c, E), 0);
	ck_assert_int_eq(moe_cache_sim_run(c, ids, n, depth), 0);
	for (int p = 0; p < 3; p++)
		for (uint32_t s = 1; s <= E; s++)
			hits[p][s] = moe_cache_hits(depth + p * (E + 1), s);
	moe_cache_sim_free(c);
}

START_TEST(cache_policies)
{
	uint64_t h[3][8], depth[3 * 4];
	/* A B C A B C (A=0): the LRU/LFU worst case.
	 * size 2: LRU and LFU always evict the next one needed: 0 hits.
	 * OPT at C (t2) evicts B (next use 4, A's is 3) -> A hits; at B
	 * (t4) evicts A (never again) -> C hits: 2 hits.
	 * size 3: the three second uses hit under every policy. */
	static const uint16_t abc[] = { 0, 1, 2, 0, 1, 2 };
	/* A A B C B C A, size 2:
	 * LRU: A miss, A hit, B miss, C miss evicts A, B hit, C hit, A miss: 3
	 * LFU: A(2 uses) stays; C evicts B(1); B evicts C(1); C: A and B have
	 *      2 uses, B is more recent so A goes; A miss: 1 hit
	 * OPT: C evicts A (next use 6 > B's 4): B hit, C hit: 3
	 * size 1: only the repeated A hits: 1 each. size 3: 4 reuses hit. */
	static const uint16_t aabcbca[] = { 0, 0, 1, 2, 1, 2, 0 };

	cache_hits(abc, 6, 3, h, depth);
	ck_assert_uint_eq(h[MOE_CACHE_LRU][2], 0);
	ck_assert_uint_eq(h[MOE_CACHE_LFU][2], 0);
	ck_assert_uint_eq(h[MOE_CACHE_OPT][2], 2);
	ck_assert_uint_eq(h[MOE_CACHE_OPT][1], 0);
	for (int p = 0; p < 3; p++)
		ck_assert_uint_eq(h[p][3], 3);
	/* three first uses in every policy's cold bucket */
	ck_assert_uint_eq(depth[3], 3);

	cache_hits(aabcbca, 7, 3, h, depth);
	ck_assert_uint_eq(h[MOE_CACHE_LRU][1], 1);
	ck_assert_uint_eq(h[MOE_CACHE_LFU][1], 1);
	ck_assert_uint_eq(h[MOE_CACHE_OPT][1], 1);
	ck_assert_uint_eq(h[MOE_CACHE_LRU][2], 3);
	ck_assert_uint_eq(h[MOE_CACHE_LFU][2], 1);
	ck_assert_uint_eq(h[MOE_CACHE_OPT][2], 3);
	for (int p = 0; p < 3; p++)
		ck_assert_uint_eq(h[p][3], 4);
	/* reuse distances: A 0 (A again), B 1 (C between), C 1 (B), A 2
	 * (B and C) */
	ck_assert_uint_eq(depth[0], 1);
	ck_assert_uint_eq(depth[1], 2);
	ck_assert_uint_eq(depth[2], 1);
	ck_assert_uint_eq(depth[3], 3);
}
END_TEST

/* Belady's policy is optimal and never worse than LRU or LFU, and the stack
 * simulation agrees with a direct simulation of each size (LRU). */
START_TEST(cache_properties)
{
	uint16_t ids[600];
	uint64_t depth[3 * 17];
	uint32_t E = 16, x = 12345;
	struct moe_cache_sim *c;

	for (size_t i = 0; i < 600; i++) {
		x = x * 1103515245u + 12345u;
		ids[i] = (uint16_t)((x >> 16) % (1 + (x >> 8) % E));
	}
	memset(depth, 0, sizeof depth);
	ck_assert_int_eq(moe_cache_sim_new(&c, E), 0);
	ck_assert_int_eq(moe_cache_sim_run(c, ids, 600, depth), 0);
	moe_cache_sim_free(c);
	for (uint32_t size = 1; size <= E; size++) {
		uint64_t opt = moe_cache_hits(depth + 2 * (E + 1), size);
		uint16_t cache[16];
		uint64_t when[16], hits = 0;
		uint32_t n = 0;
		ck_assert_uint_ge(opt, moe_cache_hits(depth, size));
		ck_assert_uint_ge(opt, moe_cache_hits(depth + (E + 1), size));
		for (size_t t = 0; t < 600; t++) {   /* direct LRU of this size */
			uint32_t j, v = 0;
			for (j = 0; j < n && cache[j] != ids[t]; j++)
				;
			if (j < n) {
				hits++;
			} else if (n < size) {
				j = n++;
			} else {
				for (j = 1; j < n; j++)
					if (when[j] < when[v])
						v = j;
				j = v;
			}
			cache[j] = ids[t];
			when[j] = t;
		}
		ck_assert_uint_eq(hits, moe_cache_hits(depth, size));
	}
}
END_TEST

START_TEST(losses_overlap_transitions)
{
	struct moe_trace_header h = hdr(1, 2, 1, MOE_TRACE_PROBS | MOE_TRACE_LSE);
	struct moe_route_opts o;
	struct moe_route_stats *s;
	static const float p[2] = { 0.75f, 0.25f }, l1 = 1, l3 = 3;
	static const uint16_t e0 = 0;
	double a1, ak, z;

	moe_route_opts_init(&o);
	ck_assert_int_eq(moe_route_stats_new(&s, &h, &o), 0);
	/* both tokens choose expert 0 with P = (3/4, 1/4): f = (1, 0),
	 * aux = E * sum f P = 2 * 3/4 = 1.5; z = (1^2 + 3^2) / 2 = 5 */
	add(s, 0, 0, &e0, p, &l1);
	add(s, 0, 1, &e0, p, &l3);
	ck_assert_int_eq(moe_route_stats_flush(s), 0);
	ck_assert_int_eq(moe_route_stats_aux_loss(s, 0, &a1, &ak), 0);
	ck_assert_double_eq_tol(a1, 1.5, EPS);
	ck_assert_double_eq_tol(ak, 1.5, EPS);
	ck_assert_int_eq(moe_route_stats_z_loss(s, 0, &z), 0);
	ck_assert_double_eq_tol(z, 5, EPS);
	moe_route_stats_free(s);

	/* two layers, E = 4, k = 2 */
	h = hdr(2, 4, 2, 0);
	ck_assert_int_eq(moe_route_stats_new(&s, &h, &o), 0);
	ck_assert_int_eq(moe_route_stats_aux_loss(s, 0, &a1, &ak), MOE_ENOENT);
	static const uint16_t t[6][4] = {
		{ 0, 1, 1, 0 }, { 1, 2, 1, 3 }, { 2, 1, 1, 2 },  /* seq 0 */
		{ 0, 3, 2, 0 }, { 0, 2, 1, 0 }, { 1, 0, 3, 0 },  /* seq 1 */
	};
	for (uint32_t i = 0; i < 6; i++)
		add(s, i / 3, i % 3, t[i], NULL, NULL);
	ck_assert_int_eq(moe_route_stats_flush(s), 0);
	/* layer 0 adjacent pairs: {0,1}{1,2} J 1/3, {1,2}{2,1} J 1,
	 * {0,3}{0,2} J 1/3, {0,2}{1,0} J 1/3 -> mean (1 + 1 + 1/3 + 1/3 + 1/3 ... ) */
	ck_assert_double_eq_tol(moe_route_stats_jaccard(s, 0), (1.0 / 3 * 3 + 1) / 4, EPS);
	ck_assert_uint_eq(moe_route_stats_overlap(s, 0)[1], 3);
	ck_assert_uint_eq(moe_route_stats_overlap(s, 0)[2], 1);
	/* co-activation in layer 0: {0,1} {1,2} {1,2} {0,3} {0,2} {0,1} */
	ck_assert_uint_eq(moe_route_stats_coact(s, 0)[0 * 4 + 1], 2);
	ck_assert_uint_eq(moe_route_stats_coact(s, 0)[1 * 4 + 2], 2);
	ck_assert_uint_eq(moe_route_stats_coact(s, 0)[0 * 4 + 3], 1);
	ck_assert_uint_eq(moe_route_stats_coact(s, 0)[2 * 4 + 1], 0);   /* lower triangle */
	ck_assert_uint_eq(moe_route_stats_coact(s, 0)[2 * 4 + 2], 0);
	/* first-listed expert layer 0 -> layer 1: 0->1, 1->1, 2->1, 0->2,
	 * 0->1, 1->3: from 0 the best successor (1) covers 2 of 3, from 1 one
	 * of 2, from 2 one of 1: (2 + 1 + 1) / 6 */
	ck_assert_double_eq_tol(moe_route_stats_consistency(s, 1), 4.0 / 6, EPS);
	ck_assert_uint_eq(moe_route_stats_transitions(s, 1)[0 * 4 + 1], 2);
	moe_route_stats_free(s);
}
END_TEST

/* Saves s to a temp file and returns its text. */
static char *saved(const struct moe_route_stats *s, char *path)
{
	struct moe_output *o;
	static char buf[1 << 20];
	FILE *f;
	size_t n;

	ck_assert_int_eq(moe_output_open(&o, path, MOE_OUT_FORCE), 0);
	ck_assert_int_eq(moe_route_stats_save(s, o), 0);
	ck_assert_int_eq(moe_output_commit(o), 0);
	moe_output_free(o);
	f = fopen(path, "r");
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strdup(buf);
}

START_TEST(partial_merge_equals_single_pass)
{
	struct moe_trace_header h = hdr(2, 8, 2, MOE_TRACE_PROBS | MOE_TRACE_LSE);
	struct moe_route_opts o;
	struct moe_route_stats *all, *part[3], *m = NULL;
	struct moe_input *in;
	char path[] = "/tmp/moe-partial.XXXXXX";
	uint32_t x = 7;
	int fd = mkstemp(path);

	ck_assert(fd >= 0);
	close(fd);
	moe_route_opts_init(&o);
	o.group_size = 5;
	o.cache_segment = 7;
	o.top_tokens = 2;
	ck_assert_int_eq(moe_route_stats_new(&all, &h, &o), 0);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(moe_route_stats_new(&part[i], &h, &o), 0);
	/* 6 sequences of 1..23 tokens; shard i gets sequences i, i+3 */
	for (uint32_t q = 0; q < 6; q++)
		for (uint32_t pos = 0; pos < 1 + q * 4; pos++) {
			uint16_t ids[4];
			float pr[16], lse[2];
			for (int l = 0; l < 2; l++) {
				x = x * 1103515245u + 12345u;
				ids[2 * l] = (uint16_t)((x >> 16) % 8);
				ids[2 * l + 1] = (uint16_t)((ids[2 * l] + 1 + (x >> 8) % 7) % 8);
				lse[l] = (float)((x >> 4) % 1000) / 77.0f;
				for (int e = 0; e < 8; e++)
					pr[l * 8 + e] = (float)((x >> e) % 97) / 97.0f;
			}
			token_id = (int32_t)(pos % 5);
			add(all, q, pos, ids, pr, lse);
			add(part[q % 3], q, pos, ids, pr, lse);
		}
	ck_assert_int_eq(moe_route_stats_flush(all), 0);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(moe_route_stats_flush(part[i]), 0);
	/* round trip each shard through a partial file, then merge */
	char *single = saved(all, path);
	for (int i = 0; i < 3; i++) {
		struct moe_route_stats *p;
		free(saved(part[i], path));
		ck_assert_int_eq(moe_input_open(&in, path, NULL, 0), 0);
		ck_assert_int_eq(moe_route_stats_load(&p, in), 0);
		moe_input_free(in);
		if (i == 0) {
			m = p;
		} else {
			ck_assert_int_eq(moe_route_stats_merge(m, p), 0);
			moe_route_stats_free(p);
		}
	}
	token_id = -1;
	char *merged = saved(m, path);
	ck_assert_str_eq(merged, single);
	ck_assert_ptr_nonnull(strstr(single, "\"token_counts\":["));
	/* derived ratios are computed from the same integers */
	double a, b, c, d;
	ck_assert_int_eq(moe_route_stats_aux_loss(all, 1, &a, &b), 0);
	ck_assert_int_eq(moe_route_stats_aux_loss(m, 1, &c, &d), 0);
	ck_assert(a == c && b == d);
	ck_assert(moe_route_report_hit_rate(all, MOE_CACHE_OPT, 3) ==
		moe_route_report_hit_rate(m, MOE_CACHE_OPT, 3));
	/* different options refuse to merge */
	o.group_size = 6;
	struct moe_route_stats *other;
	ck_assert_int_eq(moe_route_stats_new(&other, &h, &o), 0);
	ck_assert_int_eq(moe_route_stats_merge(m, other), MOE_EINVAL);
	ck_assert_str_eq(moe_route_stats_errstr(m),
		"statistics options differ (capacity factors, group size, cache or top tokens)");
	moe_route_stats_free(other);
	free(single);
	free(merged);
	moe_route_stats_free(all);
	moe_route_stats_free(m);
	for (int i = 0; i < 3; i++)
		moe_route_stats_free(part[i]);
	unlink(path);
}
END_TEST

START_TEST(top_tokens)
{
	struct moe_trace_header h = hdr(1, 3, 1, 0);
	struct moe_route_opts o;
	struct moe_route_stats *s;
	struct moe_token_entry *e;
	size_t n;
	/* token ids 7 7 7 9 9 4 to experts 0 0 1 0 0 0: expert 0 took 7 twice,
	 * 9 twice, 4 once -> top 2: 7 and 9 (tie on count: lower id first);
	 * expert 1 took 7 once */
	static const uint16_t ex[6] = { 0, 0, 1, 0, 0, 0 };
	static const int32_t tok[6] = { 7, 7, 7, 9, 9, 4 };

	moe_route_opts_init(&o);
	o.top_tokens = 2;
	ck_assert_int_eq(moe_route_stats_new(&s, &h, &o), 0);
	for (uint32_t i = 0; i < 6; i++) {
		token_id = tok[i];
		add(s, 0, i, &ex[i], NULL, NULL);
	}
	token_id = -1;
	ck_assert_int_eq(moe_route_stats_flush(s), 0);
	ck_assert_int_eq(moe_route_stats_top_tokens(s, 0, &e, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_uint_eq(e[0].expert, 0);
	ck_assert_uint_eq(e[0].token, 7);
	ck_assert_uint_eq(e[0].count, 2);
	ck_assert_uint_eq(e[1].token, 9);
	ck_assert_uint_eq(e[2].expert, 1);
	ck_assert_uint_eq(e[2].count, 1);
	free(e);
	moe_route_stats_free(s);
}
END_TEST

START_TEST(windows)
{
	struct moe_trace_header h = hdr(1, 2, 1, 0);
	struct moe_route_opts o;
	struct moe_route_stats *s;
	static const uint16_t seq[5] = { 0, 1, 0, 0, 1 };
	uint64_t n;

	moe_route_opts_init(&o);
	o.window = 2;
	ck_assert_int_eq(moe_route_stats_new(&s, &h, &o), 0);
	for (uint32_t i = 0; i < 5; i++)
		add(s, 0, i, &seq[i], NULL, NULL);
	ck_assert_int_eq(moe_route_stats_flush(s), 0);
	/* windows {0,1} balanced, {0,0} collapsed, {1} (last, short) */
	ck_assert_uint_eq(moe_route_stats_windows(s), 3);
	ck_assert_double_eq_tol(moe_route_stats_window(s, 0, &n)->jain, 1, EPS);
	ck_assert_double_eq_tol(moe_route_stats_window(s, 1, &n)->jain, 0.5, EPS);
	ck_assert_uint_eq(moe_route_stats_window(s, 2, &n)->dead, 1);
	ck_assert_uint_eq(n, 1);
	moe_route_stats_free(s);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("route_stats");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, uniform_routing);
	tcase_add_test(tc, full_collapse);
	tcase_add_test(tc, zipf_drops);
	tcase_add_test(tc, cache_policies);
	tcase_add_test(tc, cache_properties);
	tcase_add_test(tc, losses_overlap_transitions);
	tcase_add_test(tc, partial_merge_equals_single_pass);
	tcase_add_test(tc, top_tokens);
	tcase_add_test(tc, windows);
	suite_add_tcase(s, tc);
	return moe_test_run(s);
}
