/* Tests of the token sampler: greedy, penalty, truncation rules, temperature limits and seeding. */
#include <check.h>
#include <math.h>
#include <stdint.h>

#include "error.h"
#include "sampling.h"
#include "testutil.h"

static const struct moe_sampler_params GREEDY = { 0, 0, 1, 0, 1, 64, 1 };

static struct moe_sampler *sampler(struct moe_sampler_params p, uint32_t nv)
{
	struct moe_sampler *s;

	ck_assert_int_eq(moe_sampler_new(&s, &p, nv), 0);
	return s;
}

START_TEST(test_greedy)
{
	float lg[5] = { 0.5f, 2.0f, -1.0f, 2.0f, 1.0f };
	struct moe_sampler *s = sampler(GREEDY, 5);

	ck_assert_int_eq(moe_sampler_sample(s, lg, NULL, 0), 1);   /* lowest id on ties */
	moe_sampler_free(s);
}
END_TEST

START_TEST(test_repeat_penalty)
{
	float lg[4] = { 3.0f, 2.0f, -1.0f, 2.5f };
	int32_t hist[3] = { 0, 0, 2 };
	struct moe_sampler_params p = GREEDY;
	struct moe_sampler *s;

	p.repeat_penalty = 1.5f;   /* 3 -> 2, applied once however often seen */
	s = sampler(p, 4);
	ck_assert_int_eq(moe_sampler_sample(s, lg, hist, 3), 3);
	ck_assert_int_eq(moe_sampler_sample(s, lg, hist, 3), 3);   /* no state kept */
	ck_assert(lg[0] == 3.0f);                                   /* input untouched */
	moe_sampler_free(s);
	p.repeat_last_n = 1;   /* only token 2 is recent */
	s = sampler(p, 4);
	ck_assert_int_eq(moe_sampler_sample(s, lg, hist, 3), 0);
	moe_sampler_free(s);
}
END_TEST

/* Truncation leaves one candidate: every draw returns it. */
START_TEST(test_truncation)
{
	float lg[6] = { 1.0f, 4.0f, 3.9f, 0.0f, -2.0f, 3.0f };
	struct moe_sampler_params p = { 1.0f, 1, 1, 0, 1, 64, 7 };
	struct moe_sampler *s;

	s = sampler(p, 6);   /* top-k 1 */
	for (int i = 0; i < 50; i++)
		ck_assert_int_eq(moe_sampler_sample(s, lg, NULL, 0), 1);
	moe_sampler_free(s);
	p.top_k = 0;
	p.top_p = 0.3f;      /* p(1) is above 0.3 */
	s = sampler(p, 6);
	for (int i = 0; i < 50; i++)
		ck_assert_int_eq(moe_sampler_sample(s, lg, NULL, 0), 1);
	moe_sampler_free(s);
	p.top_p = 1;
	p.min_p = 0.95f;     /* exp(-0.1) = 0.905 < 0.95: only id 1 survives */
	s = sampler(p, 6);
	for (int i = 0; i < 50; i++)
		ck_assert_int_eq(moe_sampler_sample(s, lg, NULL, 0), 1);
	moe_sampler_free(s);
	p.min_p = 0.5f;      /* ids 1 and 2 survive, both get drawn */
	s = sampler(p, 6);
	{
		int seen[6] = { 0 };

		for (int i = 0; i < 200; i++)
			seen[moe_sampler_sample(s, lg, NULL, 0)]++;
		ck_assert(seen[1] > 0 && seen[2] > 0);
		ck_assert_int_eq(seen[1] + seen[2], 200);
	}
	moe_sampler_free(s);
}
END_TEST

/* Same seed, same draws; the frequencies follow softmax(logits / temp). */
START_TEST(test_seed_and_temperature)
{
	float lg[3] = { 0.0f, logf(2.0f), logf(3.0f) };   /* probabilities 1/6, 2/6, 3/6 */
	struct moe_sampler_params p = { 1.0f, 0, 1, 0, 1, 64, 12345 };
	struct moe_sampler *a = sampler(p, 3), *b = sampler(p, 3);
	int cnt[3] = { 0 };

	for (int i = 0; i < 6000; i++) {
		int32_t x = moe_sampler_sample(a, lg, NULL, 0);

		ck_assert_int_eq(x, moe_sampler_sample(b, lg, NULL, 0));
		cnt[x]++;
	}
	ck_assert(abs(cnt[0] - 1000) < 150 && abs(cnt[1] - 2000) < 200 && abs(cnt[2] - 3000) < 200);
	moe_sampler_free(a);
	moe_sampler_free(b);
	p.temp = 0.01f;   /* nearly greedy */
	a = sampler(p, 3);
	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(moe_sampler_sample(a, lg, NULL, 0), 2);
	moe_sampler_free(a);
}
END_TEST

START_TEST(test_bad_params)
{
	struct moe_sampler *s;
	struct moe_sampler_params p = GREEDY;

	p.top_p = 0;
	ck_assert_int_eq(moe_sampler_new(&s, &p, 4), MOE_EINVAL);
	p = GREEDY;
	ck_assert_int_eq(moe_sampler_new(&s, &p, 0), MOE_EINVAL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sampling");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_greedy);
	tcase_add_test(tc, test_repeat_penalty);
	tcase_add_test(tc, test_truncation);
	tcase_add_test(tc, test_seed_and_temperature);
	tcase_add_test(tc, test_bad_params);
	suite_add_tcase(s, tc);
	return moe_test_run(s);
}
