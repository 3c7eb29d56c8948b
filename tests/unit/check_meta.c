/* Tests of the typed metadata store: set/replace/remove, typed reads, copies, JSON. */
#include "error.h"
#include "meta.h"
#include "testutil.h"

START_TEST(set_get_replace_remove)
{
	struct moe_meta *m;
	uint64_t u;
	double f;
	const char *s;
	int b;

	ck_assert_int_eq(moe_meta_new(&m), 0);
	ck_assert_int_eq(moe_meta_set_str(m, "general.architecture", "llama"), 0);
	ck_assert_int_eq(moe_meta_set_u32(m, "llama.expert_count", 8), 0);
	ck_assert_int_eq(moe_meta_set_f32(m, "llama.rope.freq_base", 1e6f), 0);
	ck_assert_int_eq(moe_meta_set_bool(m, "flag", 1), 0);
	ck_assert_uint_eq(moe_meta_count(m), 4);
	ck_assert_int_eq(moe_meta_get_u64(m, "llama.expert_count", &u), 0);
	ck_assert_uint_eq(u, 8);
	ck_assert_int_eq(moe_meta_get_f64(m, "llama.rope.freq_base", &f), 0);
	ck_assert(f == 1e6);
	ck_assert_int_eq(moe_meta_get_f64(m, "llama.expert_count", &f), 0);
	ck_assert(f == 8);
	ck_assert_int_eq(moe_meta_get_str(m, "general.architecture", &s), 0);
	ck_assert_str_eq(s, "llama");
	ck_assert_int_eq(moe_meta_get_bool(m, "flag", &b), 0);
	ck_assert_int_eq(b, 1);
	ck_assert_int_eq(moe_meta_get_u64(m, "general.architecture", &u), MOE_EFORMAT);
	ck_assert_int_eq(moe_meta_get_u64(m, "missing", &u), MOE_ENOENT);
	/* replacing keeps the position */
	ck_assert_int_eq(moe_meta_set_u32(m, "general.architecture", 3), 0);
	ck_assert_str_eq(moe_meta_key(m, 0), "general.architecture");
	ck_assert_int_eq(moe_meta_at(m, 0)->type, MOE_V_U32);
	ck_assert_int_eq(moe_meta_remove(m, "llama.expert_count"), 0);
	ck_assert_int_eq(moe_meta_remove(m, "llama.expert_count"), MOE_ENOENT);
	ck_assert_uint_eq(moe_meta_count(m), 3);
	ck_assert_str_eq(moe_meta_key(m, 1), "llama.rope.freq_base");
	moe_meta_free(m);
}
END_TEST

START_TEST(negative_ints_do_not_read_as_u64)
{
	struct moe_meta *m;
	struct moe_value v = { .type = MOE_V_I32, .v.i = -1 };
	uint64_t u;

	ck_assert_int_eq(moe_meta_new(&m), 0);
	ck_assert_int_eq(moe_meta_set(m, "x", &v), 0);
	ck_assert_int_eq(moe_meta_get_u64(m, "x", &u), MOE_EFORMAT);
	moe_meta_free(m);
}
END_TEST

START_TEST(arrays_copy_and_json)
{
	struct moe_value v = { .type = MOE_V_ARR }, c, *nested;
	struct moe_str *strs;
	int32_t *ints;
	json_t *j;
	char *s;

	/* [["a", "bc"], [1, -2, 3]] */
	v.v.arr.type = MOE_V_ARR;
	v.v.arr.n = 2;
	nested = calloc(2, sizeof *nested);
	v.v.arr.data = nested;
	nested[0].type = MOE_V_ARR;
	nested[0].v.arr.type = MOE_V_STR;
	nested[0].v.arr.n = 2;
	strs = calloc(2, sizeof *strs);
	strs[0].s = strdup("a"); strs[0].len = 1;
	strs[1].s = strdup("bc"); strs[1].len = 2;
	nested[0].v.arr.data = strs;
	nested[1].type = MOE_V_ARR;
	nested[1].v.arr.type = MOE_V_I32;
	nested[1].v.arr.n = 3;
	ints = malloc(3 * sizeof *ints);
	ints[0] = 1; ints[1] = -2; ints[2] = 3;
	nested[1].v.arr.data = ints;

	ck_assert_int_eq(moe_value_copy(&c, &v), 0);
	moe_value_release(&v);
	j = moe_value_to_json(&c, 0);
	s = json_dumps(j, JSON_COMPACT);
	ck_assert_str_eq(s, "[[\"a\",\"bc\"],[1,-2,3]]");
	free(s);
	json_decref(j);
	j = moe_value_to_json(&c, 1);
	s = json_dumps(j, JSON_COMPACT);
	ck_assert_str_eq(s, "[[\"a\",\"... (1 more)\"],\"... (1 more)\"]");
	free(s);
	json_decref(j);
	moe_value_release(&c);
}
END_TEST

START_TEST(arch_prefixed_keys)
{
	struct moe_meta *m;
	uint64_t u;
	double f;

	ck_assert_int_eq(moe_meta_new(&m), 0);
	ck_assert_int_eq(moe_meta_set_u32(m, "llama.block_count", 32), 0);
	ck_assert_int_eq(moe_meta_get_arch_u64(m, "block_count", &u), MOE_ENOENT); /* no arch yet */
	ck_assert_int_eq(moe_meta_set_str(m, "general.architecture", "llama"), 0);
	ck_assert_int_eq(moe_meta_set_f32(m, "llama.rope.freq_base", 1e6f), 0);
	ck_assert_int_eq(moe_meta_get_arch_u64(m, "block_count", &u), 0);
	ck_assert_uint_eq(u, 32);
	ck_assert_int_eq(moe_meta_get_arch_f64(m, "rope.freq_base", &f), 0);
	ck_assert(f == 1e6);
	ck_assert_int_eq(moe_meta_get_arch_u64(m, "expert_count", &u), MOE_ENOENT);
	moe_meta_free(m);
}
END_TEST

START_TEST(vtype_table)
{
	ck_assert_uint_eq(moe_vtype_size(MOE_V_U64), 8);
	ck_assert_uint_eq(moe_vtype_size(MOE_V_BOOL), 1);
	ck_assert_uint_eq(moe_vtype_size(MOE_V_STR), 0);
	ck_assert_str_eq(moe_vtype_name(MOE_V_F32), "f32");
	ck_assert_str_eq(moe_vtype_name((enum moe_vtype)99), "invalid");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("meta");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, set_get_replace_remove);
	tcase_add_test(tc, negative_ints_do_not_read_as_u64);
	tcase_add_test(tc, arrays_copy_and_json);
	tcase_add_test(tc, arch_prefixed_keys);
	tcase_add_test(tc, vtype_table);
	suite_add_tcase(s, tc);
	return moe_test_run(s);
}
