# Quantizer throughput (Q8_0, Q4_0, Q4_K) with memcpy of the same bytes as the in-run baseline.
: "${BIN:?}" "${SRC:?}" "${BENCH_TMP:=$(mktemp -d)}"
CC=${CC:-cc}
LIB=$BIN/../libmoe.a
[ -f "$LIB" ] || { echo "b-quant: $LIB not built" >&2; exit 1; }
$CC -std=c11 -D_GNU_SOURCE -O2 -I"$SRC/lib" -o "$BENCH_TMP/bench_quant" \
	"$SRC/bench/bench_quant.c" "$LIB" -lm || exit 1
"$BENCH_TMP/bench_quant" "${BENCH_QUANT_MIB:-16}"
