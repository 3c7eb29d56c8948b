# Shared helpers for the end-to-end tests (sourced by tests/cli/t*.sh), in the spirit of git's t/test-lib.sh.
: "${BIN:?BIN must name the directory of the built tools}"
: "${SRC:?SRC must name the source tree}"
PATH=$BIN:$PATH
SHARED=${MOE_TEST_SHARED:-$SRC/../shared}
GOLDEN=$SRC/tests/cli/golden
# Sanitizer findings must not look like an ordinary failure (exit 1).
ASAN_OPTIONS=${ASAN_OPTIONS:-exitcode=99:detect_leaks=1:abort_on_error=0}
UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:exitcode=98:print_stacktrace=1}
MOE_NO_PROGRESS=1
export PATH ASAN_OPTIONS UBSAN_OPTIONS MOE_NO_PROGRESS
TMPD=$(mktemp -d "${TMPDIR:-/tmp}/moe-test.XXXXXX") || exit 1
trap 'rm -rf "$TMPD"' EXIT
cd "$TMPD" || exit 1
test_count=0
test_failed=0
test_skipped=0

say() { printf '%s\n' "$*"; }

# test_expect_success DESC 'commands'
test_expect_success() {
	test_count=$((test_count + 1))
	if (eval "$2") >"$TMPD/.log" 2>&1; then
		say "ok $test_count - $1"
	else
		test_failed=$((test_failed + 1))
		say "not ok $test_count - $1"
		sed 's/^/#   /' "$TMPD/.log" | head -40
	fi
}

# test_skip DESC REASON
test_skip() {
	test_count=$((test_count + 1))
	test_skipped=$((test_skipped + 1))
	say "ok $test_count # skip $1 ($2)"
}

# test_cmp EXPECTED ACTUAL
test_cmp() {
	diff -u "$1" "$2"
}

# test_golden NAME ACTUAL: compares with tests/cli/golden/NAME; REDO=1 rewrites it.
test_golden() {
	if [ -n "${REDO:-}" ]; then
		cp "$2" "$GOLDEN/$1"
	fi
	diff -u "$GOLDEN/$1" "$2"
}

# test_fails STATUS CMD...: CMD must exit with STATUS (1 or 2), print exactly
# one line on stderr that starts with the tool's name, and not crash.
# CMD's stdout goes to $FAILS_STDOUT if set (e.g. /dev/full).
test_fails() {
	want=$1
	shift
	"$@" >"${FAILS_STDOUT:-$TMPD/.fout}" 2>"$TMPD/.ferr"
	got=$?
	if [ "$got" != "$want" ]; then
		say "expected exit $want, got $got from: $*"
		cat "$TMPD/.ferr"
		return 1
	fi
	if [ "$want" = 1 ]; then
		lines=$(wc -l <"$TMPD/.ferr")
		if [ "$lines" -ne 1 ] || ! grep -q "^$(basename "$1"): " "$TMPD/.ferr"; then
			say "expected one '$(basename "$1"): ...' line on stderr, got:"
			cat "$TMPD/.ferr"
			return 1
		fi
	fi
	return 0
}

# stderr of the last test_fails
last_err() { cat "$TMPD/.ferr"; }

have_shared() { [ -d "$SHARED/ref" ]; }

test_done() {
	say "# $0: $test_count tests, $test_failed failed, $test_skipped skipped"
	echo "$test_count $test_failed $test_skipped" >"${RESULT_FILE:-/dev/null}"
	[ "$test_failed" -eq 0 ]
}
