# Every tool: help, version, usage errors, exit codes, stdout failures.
. "$SRC/tests/cli/lib.sh"

for t in moe-inspect moe-convert moe-quantize moe-run moe-route-stats; do
	test_expect_success "$t --version names the tool and the suite" "
		$t --version >out &&
		grep -q '^$t (moe-tools) [0-9]' out
	"
	test_expect_success "$t --version to a full disk fails" "
		FAILS_STDOUT=/dev/full test_fails 1 $t --version
	"
done

for t in moe-inspect moe-convert moe-quantize moe-run; do
	test_expect_success "$t -h prints usage on stdout, exit 0" "
		$t -h >out 2>err &&
		grep -q '^usage: $t' out && test ! -s err
	"
	test_expect_success "$t bad option: usage on stderr, exit 2" "
		test_fails 2 $t --no-such-option &&
		grep -q '^usage: $t' \"\$TMPD/.ferr\"
	"
done

test_expect_success "moe-inspect with no operand reads stdin" "
	printf '{\"model_type\":\"x\"}' | moe-inspect -m >out &&
	grep -q '<stdin>: config' out
"

for t in moe-convert moe-quantize; do
	test_expect_success "$t without an output is a usage error" "
		printf x | test_fails 2 $t - &&
		grep -q 'no output' \"\$TMPD/.ferr\"
	"
done

test_done
