# Runs every bench/b-*.sh; benchmarks report ratios against a baseline measured in the same run.
: "${BIN:?}" "${SRC:?}"
PATH=$BIN:$PATH
export PATH
BENCH_TMP=${BENCH_TMP:-$(mktemp -d "${TMPDIR:-/tmp}/moe-bench.XXXXXX")}
export BENCH_TMP
trap 'rm -rf "$BENCH_TMP"' EXIT
status=0
for b in "$SRC"/bench/b-*.sh; do
	[ -f "$b" ] || continue
	echo "== $(basename "$b")"
	sh "$b" || status=1
done
exit $status
