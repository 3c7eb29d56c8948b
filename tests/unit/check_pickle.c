/* Tests of the restricted unpickler: torch state-dict opcodes, refusal of foreign GLOBALs, bounds. */
#include <stdio.h>
#include <sys/stat.h>

#include "error.h"
#include "pickle.h"
#include "testutil.h"
#include "torchzip.h"

static int load(const void *buf, size_t n, struct moe_pickle **out)
{
	int rc;

	ck_assert_int_eq(moe_pickle_new(out), 0);
	rc = moe_pickle_load(*out, buf, n);
	if (rc != 0)
		ck_assert(moe_pickle_errstr(*out)[0] != '\0');
	return rc;
}

static int load_free(const void *buf, size_t n, char *msg, size_t cap)
{
	struct moe_pickle *p;
	int rc = load(buf, n, &p);

	if (msg)
		snprintf(msg, cap, "%s", moe_pickle_errstr(p));
	moe_pickle_free(p);
	return rc;
}

static void two_tensors(struct tz_pickler *pk, int proto)
{
	struct tz_tensor t[2] = {
		{ "w", "FloatStorage", "0", 6, 0, 2, { 2, 3 }, { 3, 1 }, 0 },
		{ "b", "HalfStorage", "1", 3, 1, 1, { 2 }, { 1 }, 1 },
	};

	pk_begin(pk, proto);
	pk_state_dict(pk, t, 2);
	pk_end(pk);
}

START_TEST(state_dict_protocols)
{
	int protos[] = { 2, 3, 4, 5 };

	for (int k = 0; k < 4; k++) {
		struct tz_pickler pk;
		struct moe_pickle *p;
		const struct moe_pickle_tensor *t;
		const struct moe_pickle_storage *s;

		two_tensors(&pk, protos[k]);
		ck_assert_int_eq(load(pk.b.p, pk.b.n, &p), 0);
		ck_assert_uint_eq(moe_pickle_ntensors(p), 2);
		ck_assert_uint_eq(moe_pickle_nstorages(p), 2);
		t = moe_pickle_tensor(p, 0);
		ck_assert_str_eq(t->name, "w");
		ck_assert_int_eq(t->ndim, 2);
		ck_assert_uint_eq(t->shape[0], 2);
		ck_assert_uint_eq(t->shape[1], 3);
		ck_assert_int_eq(t->stride[0], 3);
		s = moe_pickle_storage(p, t->storage);
		ck_assert_str_eq(s->key, "0");
		ck_assert_int_eq(s->dtype, MOE_DT_F32);
		ck_assert_uint_eq(s->numel, 6);
		t = moe_pickle_tensor(p, 1);
		ck_assert_str_eq(t->name, "b");
		ck_assert_uint_eq(t->storage_offset, 1);
		ck_assert_int_eq(moe_pickle_storage(p, t->storage)->dtype, MOE_DT_F16);
		ck_assert_ptr_null(moe_pickle_tensor(p, 2));
		moe_pickle_free(p);
		free(pk.b.p);
	}
}
END_TEST

/* Appends raw bytes to a pickle under construction. */
#define RAW(b, s) tz_put((b), (s), sizeof(s) - 1)

START_TEST(scalars_and_containers)
{
	struct tz_pickler pk;
	struct moe_pickle *p;
	struct tz_tensor t = { "x", "LongStorage", "k_1", 1, 0, 0, { 0 }, { 0 }, 0 };

	/* {'a': [1, -2 (LONG1), 1.5, None, True, b'xy', (x,)], 'n': {'x': tensor}} */
	pk_begin(&pk, 2);
	RAW(&pk.b, "}q\x00(X\x01\x00\x00\x00" "aq\x01](K\x01\x8a\x01\xfeG?\xf8\x00\x00\x00\x00\x00\x00N\x88" "C\x02xy");
	RAW(&pk.b, "K\x07\x85" "e");
	RAW(&pk.b, "X\x01\x00\x00\x00n}q\x02X\x01\x00\x00\x00x");
	pk_tensor(&pk, &t);
	RAW(&pk.b, "su");
	pk_end(&pk);
	ck_assert_int_eq(load(pk.b.p, pk.b.n, &p), 0);
	ck_assert_uint_eq(moe_pickle_ntensors(p), 1);
	ck_assert_str_eq(moe_pickle_tensor(p, 0)->name, "n.x");
	ck_assert_int_eq(moe_pickle_tensor(p, 0)->ndim, 0);
	ck_assert_int_eq(moe_pickle_storage(p, 0)->dtype, MOE_DT_I64);
	moe_pickle_free(p);
	free(pk.b.p);
}
END_TEST

/* {"state_dict": {...}} is unwrapped; other nesting keeps its path. */
START_TEST(nesting_and_unwrap)
{
	const char *wrappers[] = { "state_dict", "model", "model_state_dict", "other" };

	for (int k = 0; k < 4; k++) {
		struct tz_pickler pk;
		struct moe_pickle *p;
		struct tz_tensor t[2] = {
			{ "w", "FloatStorage", "0", 4, 0, 1, { 4 }, { 1 }, 0 },
			{ "b", "FloatStorage", "1", 2, 0, 1, { 2 }, { 1 }, 0 },
		};
		char want[64];

		pk_begin(&pk, 2);
		pk_op(&pk, '}');
		pk_memoize(&pk, NULL);
		pk_op(&pk, '(');
		pk_str(&pk, wrappers[k], 0);
		pk_state_dict(&pk, t, 2);
		pk_str(&pk, "epoch", 0);
		pk_int(&pk, 3);
		pk_str(&pk, "list", 0);
		pk_op(&pk, ']');
		pk_memoize(&pk, NULL);
		pk_tensor(&pk, &t[1]);
		pk_op(&pk, 'a');
		pk_op(&pk, 'u');
		pk_end(&pk);
		ck_assert_int_eq(load(pk.b.p, pk.b.n, &p), 0);
		if (k < 3) {
			ck_assert_uint_eq(moe_pickle_ntensors(p), 2);
			ck_assert_str_eq(moe_pickle_tensor(p, 0)->name, "w");
			ck_assert_str_eq(moe_pickle_tensor(p, 1)->name, "b");
		} else {
			ck_assert_uint_eq(moe_pickle_ntensors(p), 3);
			snprintf(want, sizeof want, "%s.w", wrappers[k]);
			ck_assert_str_eq(moe_pickle_tensor(p, 0)->name, want);
			ck_assert_str_eq(moe_pickle_tensor(p, 2)->name, "list.0");
		}
		moe_pickle_free(p);
		free(pk.b.p);
	}
}
END_TEST

/* Each malicious pickle would create the marker file if it were run. */
static const char *marker = "/tmp/moe-pickle-pwned";

static void malicious(const char *mod, const char *name, int stack_global, int inst)
{
	struct tz_buf b = { 0 };
	char cmd[128], msg[600], want[300];
	struct stat st;

	snprintf(cmd, sizeof cmd, "touch %s", marker);
	RAW(&b, "\x80\x02");
	if (stack_global) {
		tz_u8(&b, 0x8c); tz_u8(&b, (unsigned)strlen(mod)); tz_put(&b, mod, strlen(mod));
		tz_u8(&b, 0x8c); tz_u8(&b, (unsigned)strlen(name)); tz_put(&b, name, strlen(name));
		tz_u8(&b, 0x93);
	} else {
		tz_u8(&b, inst ? '(' : 'c');
		if (inst)
			tz_u8(&b, 'i');
		tz_put(&b, mod, strlen(mod)); tz_u8(&b, '\n');
		tz_put(&b, name, strlen(name)); tz_u8(&b, '\n');
	}
	tz_u8(&b, 'X'); tz_le(&b, strlen(cmd), 4); tz_put(&b, cmd, strlen(cmd));
	RAW(&b, "\x85R.");
	unlink(marker);
	ck_assert_int_eq(load_free(b.p, b.n, msg, sizeof msg), MOE_ESECURITY);
	snprintf(want, sizeof want,
		"refusing pickle GLOBAL '%s %s' (only torch state-dict types are allowed)", mod, name);
	ck_assert_str_eq(msg, want);
	ck_assert_int_ne(stat(marker, &st), 0);
	free(b.p);
}

START_TEST(refuses_foreign_globals)
{
	static const char *bad[][2] = {
		{ "os", "system" }, { "posix", "system" }, { "builtins", "eval" },
		{ "builtins", "exec" }, { "__builtin__", "eval" }, { "subprocess", "Popen" },
		{ "torch.storage", "_load_from_bytes" }, { "numpy.core.multiarray", "_reconstruct" },
		{ "collections", "OrderedDicts" }, { "torch", "load" }, { "torch._utils", "x" },
	};

	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		malicious(bad[i][0], bad[i][1], 0, 0);
		malicious(bad[i][0], bad[i][1], 1, 0);
		malicious(bad[i][0], bad[i][1], 0, 1);
	}
}
END_TEST

START_TEST(refuses_global_inside_state_dict)
{
	struct tz_pickler pk;
	struct tz_tensor t = { "w", "FloatStorage", "0", 1, 0, 1, { 1 }, { 1 }, 0 };
	char msg[600];

	pk_begin(&pk, 2);
	pk_ordered_dict(&pk);
	pk_str(&pk, "w", 0);
	pk_tensor(&pk, &t);
	pk_str(&pk, "evil", 0);
	pk_global(&pk, "os", "system");
	pk_str(&pk, "true", 0);
	pk_op(&pk, 0x85);
	pk_op(&pk, 'R');
	pk_op(&pk, 's');
	pk_op(&pk, 's');
	pk_end(&pk);
	ck_assert_int_eq(load_free(pk.b.p, pk.b.n, msg, sizeof msg), MOE_ESECURITY);
	ck_assert(strstr(msg, "'os system'") != NULL);
	free(pk.b.p);
	/* names with control bytes are shown escaped, on one line */
	ck_assert_int_eq(load_free("\x80\x02" "cos\x1b\nsys\ntem\n", 15, msg, sizeof msg), MOE_ESECURITY);
	ck_assert(strchr(msg, '\x1b') == NULL);
	ck_assert(strstr(msg, "os\\x1b") != NULL);
}
END_TEST

START_TEST(unknown_storage_type)
{
	struct tz_pickler pk;
	struct tz_tensor t = { "w", "ComplexFloatStorage", "0", 1, 0, 1, { 1 }, { 1 }, 0 };
	char msg[600];

	pk_begin(&pk, 2);
	pk_state_dict(&pk, &t, 1);
	pk_end(&pk);
	ck_assert_int_eq(load_free(pk.b.p, pk.b.n, msg, sizeof msg), MOE_EUNSUP);
	ck_assert_str_eq(msg, "unsupported PyTorch storage type 'torch.ComplexFloatStorage'");
	free(pk.b.p);
}
END_TEST

START_TEST(malformed)
{
	#define C(s, r) { s, sizeof(s) - 1, r }
	static const struct { const char *p; size_t n; int rc; } cases[] = {
		C("", MOE_ETRUNC),
		C("\x80\x02", MOE_ETRUNC),                /* no STOP */
		C("\x80\x01}.", MOE_EUNSUP),             /* protocol 1 */
		C("\x80\x06}.", MOE_EUNSUP),
		C("\x80\x02(}.", MOE_EFORMAT),           /* unbalanced MARK */
		C("\x80\x02}}.", MOE_EFORMAT),           /* two values left */
		C("\x80\x02.", MOE_EFORMAT),             /* empty stack at STOP */
		C("\x80\x02R.", MOE_EFORMAT),            /* underflow */
		C("\x80\x02}(s.", MOE_EFORMAT),          /* SETITEM across a MARK */
		C("\x80\x02u.", MOE_EFORMAT),            /* SETITEMS without MARK */
		C("\x80\x02}(K\x01u.", MOE_EFORMAT),     /* odd SETITEMS */
		C("\x80\x02]K\x01K\x02s.", MOE_EFORMAT), /* SETITEM on a list */
		C("\x80\x02h\x05.", MOE_EFORMAT),        /* memo never written */
		C("\x80\x02}r\xff\xff\xff\xff.", MOE_ERANGE),
		C("\x80\x02X\xff\xff\xff\xff.", MOE_ETRUNC),
		C("\x80\x02\x8d\xff\xff\xff\xff\xff\xff\xff\xff.", MOE_ETRUNC),
		C("\x80\x02\x8a\x09\x01\x01\x01\x01\x01\x01\x01\x01\x01.", MOE_ERANGE),
		C("\x80\x02I1\n.", MOE_EUNSUP),          /* protocol 0 INT */
		C("\x80\x02]K\x01Q.", MOE_EFORMAT),      /* BINPERSID of an int */
		C("\x80\x02" "ccollections\nOrderedDict\nK\x01\x85R.", MOE_EFORMAT),
		C("\x80\x02" "ctorch\nFloatStorage\n)R.", MOE_EFORMAT),
		C("\x80\x02]}b.", MOE_EFORMAT),          /* BUILD leaves a list: not a dict */
		C("\x80\x02K\x01}b.", MOE_EFORMAT),      /* BUILD on an int */
	};

	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char msg[600];
		int rc = load_free(cases[i].p, cases[i].n, msg, sizeof msg);
		if (rc != cases[i].rc)
			ck_abort_msg("case %zu: rc %d (want %d): %s", i, rc, cases[i].rc, msg);
	}
}
END_TEST

/* ('storage', type, key, loc, numel) that does not fit the view. */
START_TEST(bad_tensor_views)
{
	struct tz_tensor cases[] = {
		{ "w", "FloatStorage", "0", 5, 0, 2, { 2, 3 }, { 3, 1 }, 0 },  /* needs 6 */
		{ "w", "FloatStorage", "0", 6, 1, 2, { 2, 3 }, { 3, 1 }, 0 },  /* offset */
		{ "w", "FloatStorage", "../x", 6, 0, 1, { 6 }, { 1 }, 0 },     /* key */
		{ "w", "FloatStorage", "0", 0, 0, 1, { 1 }, { 1 }, 0 },        /* empty storage */
		{ "w", "FloatStorage", "0", 6, 0, 1, { 6 }, { -1 }, 0 },
		{ "w", "FloatStorage", "0", 1, 0, 2, { 1 << 30, 1 << 30 }, { 1LL << 40, 1LL << 40 }, 0 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct tz_pickler pk;
		char msg[600];
		pk_begin(&pk, 2);
		pk_state_dict(&pk, &cases[i], 1);
		pk_end(&pk);
		if (load_free(pk.b.p, pk.b.n, msg, sizeof msg) == 0)
			ck_abort_msg("case %zu accepted", i);
		free(pk.b.p);
	}
}
END_TEST

START_TEST(same_key_two_types)
{
	struct tz_pickler pk;
	struct tz_tensor t[2] = {
		{ "a", "FloatStorage", "0", 4, 0, 1, { 4 }, { 1 }, 0 },
		{ "b", "HalfStorage", "0", 8, 0, 1, { 8 }, { 1 }, 0 },
	};

	pk_begin(&pk, 2);
	pk_state_dict(&pk, t, 2);
	pk_end(&pk);
	ck_assert_int_eq(load_free(pk.b.p, pk.b.n, NULL, 0), MOE_EFORMAT);
	free(pk.b.p);
}
END_TEST

/* Every prefix of a valid pickle fails cleanly. */
START_TEST(truncated_everywhere)
{
	struct tz_pickler pk;

	two_tensors(&pk, 4);
	for (size_t n = 0; n < pk.b.n; n++) {
		unsigned char *copy = malloc(n ? n : 1);
		memcpy(copy, pk.b.p, n);
		ck_assert_int_ne(load_free(copy, n, NULL, 0), 0);
		free(copy);
	}
	ck_assert_int_eq(load_free(pk.b.p, pk.b.n, NULL, 0), 0);
	free(pk.b.p);
}
END_TEST

/* Self-reference and exponential sharing through the memo stay bounded. */
START_TEST(cycles_and_blowup)
{
	struct tz_pickler pk;
	struct tz_tensor t = { "w", "FloatStorage", "0", 1, 0, 1, { 1 }, { 1 }, 0 };
	char msg[600];

	/* d = {}; d['x'] = d; d['t'] = tensor */
	pk_begin(&pk, 2);
	RAW(&pk.b, "}q\x00X\x01\x00\x00\x00xh\x00sX\x01\x00\x00\x00t");
	pk_tensor(&pk, &t);
	RAW(&pk.b, "s");
	pk_end(&pk);
	ck_assert_int_eq(load_free(pk.b.p, pk.b.n, msg, sizeof msg), MOE_ERANGE);
	free(pk.b.p);

	/* d0 = {'t': tensor}; d(k+1) = {'a': dk, 'b': dk}: 2^60 paths */
	pk_begin(&pk, 2);
	RAW(&pk.b, "}X\x01\x00\x00\x00t");
	pk_tensor(&pk, &t);
	RAW(&pk.b, "sr\x00\x10\x00\x00" "0");
	for (int k = 0; k < 60; k++) {
		RAW(&pk.b, "}(X\x01\x00\x00\x00" "aj\x00\x10\x00\x00X\x01\x00\x00\x00" "bj\x00\x10\x00\x00ur\x00\x10\x00\x00");
		if (k < 59)
			RAW(&pk.b, "0");
	}
	pk_end(&pk);
	ck_assert_int_ne(load_free(pk.b.p, pk.b.n, msg, sizeof msg), 0);
	free(pk.b.p);

	/* {'model': D8, 't': tensor}, D(k+1) = 64 keys all naming Dk, D0 = []:
	 * the unwrap probe and the flattening both stop early */
	pk_begin(&pk, 2);
	RAW(&pk.b, "]r\x00\x10\x00\x00" "0");
	for (int k = 0; k < 8; k++) {
		RAW(&pk.b, "}(");
		for (int j = 0; j < 64; j++) {
			pk_op(&pk, 'K');
			pk_op(&pk, (unsigned)j);
			RAW(&pk.b, "j\x00\x10\x00\x00");
		}
		RAW(&pk.b, "ur\x00\x10\x00\x00" "0");
	}
	RAW(&pk.b, "}(X\x05\x00\x00\x00modelj\x00\x10\x00\x00X\x01\x00\x00\x00t");
	pk_tensor(&pk, &t);
	RAW(&pk.b, "u");
	pk_end(&pk);
	ck_assert_int_eq(load_free(pk.b.p, pk.b.n, msg, sizeof msg), MOE_ERANGE);
	free(pk.b.p);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pickle");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, state_dict_protocols);
	tcase_add_test(tc, scalars_and_containers);
	tcase_add_test(tc, nesting_and_unwrap);
	tcase_add_test(tc, refuses_foreign_globals);
	tcase_add_test(tc, refuses_global_inside_state_dict);
	tcase_add_test(tc, unknown_storage_type);
	tcase_add_test(tc, malformed);
	tcase_add_test(tc, bad_tensor_views);
	tcase_add_test(tc, same_key_two_types);
	tcase_add_test(tc, truncated_everywhere);
	tcase_add_test(tc, cycles_and_blowup);
	suite_add_tcase(s, tc);
	return moe_test_run(s);
}
