# moe-route-stats: routing decisions per second on a generated trace (>= 1M tokens x 32 layers x top-8)
# and trace bytes per token in both encodings; baseline: cat of the same file in the same run.
: "${BIN:?}" "${SRC:?}" "${BENCH_TMP:?}"
TOKENS=${ROUTE_BENCH_TOKENS:-1000000}
LAYERS=32 EXPERTS=64 TOPK=8
JSONL_TOKENS=$((TOKENS / 20))
D=$BENCH_TMP/route
mkdir -p "$D" || exit 1

now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.1f", n / (b - a) / 1e6 }'; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# The generator writes through the library's trace writer.
cc -O2 -std=c11 -D_GNU_SOURCE -I"$SRC/lib" -o "$D/gen_trace" "$SRC/bench/gen_trace.c" \
	"$BIN/../libmoe.a" $(pkg-config --libs jansson libarchive) -lm -pthread || exit 1
"$D/gen_trace" "$TOKENS" $LAYERS $EXPERTS $TOPK bin >"$D/big.bin" || exit 1
"$D/gen_trace" "$JSONL_TOKENS" $LAYERS $EXPERTS $TOPK jsonl >"$D/small.jsonl" || exit 1
decisions=$((TOKENS * LAYERS * TOPK))
jdecisions=$((JSONL_TOKENS * LAYERS * TOPK))
echo "trace: $TOKENS tokens x $LAYERS layers x top-$TOPK of $EXPERTS experts = $decisions decisions, $(nproc) cores"

t0=$(now); cat "$D/big.bin" >/dev/null; t1=$(now)
base=$(secs "$t0" "$t1")
echo "baseline cat of the binary trace: ${base}s"

t0=$(now); moe-route-stats --no-cache "$D/big.bin" >/dev/null || exit 1; t1=$(now)
echo "binary, all statistics but the cache: $(rate $decisions "$t0" "$t1") M decisions/s ($(secs "$t0" "$t1")s, $(awk -v a="$(secs "$t0" "$t1")" -v b="$base" 'BEGIN { printf "%.1f", a / b }')x cat)"
t0=$(now); moe-route-stats "$D/big.bin" >/dev/null || exit 1; t1=$(now)
echo "binary, all statistics with LRU/LFU/OPT cache simulation: $(rate $decisions "$t0" "$t1") M decisions/s ($(secs "$t0" "$t1")s)"
t0=$(now); moe-route-stats --no-cache "$D/small.jsonl" >/dev/null || exit 1; t1=$(now)
echo "JSON Lines ($JSONL_TOKENS tokens), all statistics but the cache: $(rate $jdecisions "$t0" "$t1") M decisions/s"
t0=$(now); moe-route-stats --to bin -o "$D/conv.bin" "$D/small.jsonl" || exit 1; t1=$(now)
echo "JSON Lines -> binary conversion: $(rate $jdecisions "$t0" "$t1") M decisions/s"

bin_size=$(wc -c <"$D/big.bin")
hdr=$((bin_size - TOKENS * (12 + LAYERS * TOPK * 6)))
echo "binary: $(( (bin_size - hdr) / TOKENS )) bytes/token (header $hdr bytes)"
echo "JSON Lines: $(awk -v s="$(wc -c <"$D/small.jsonl")" -v n="$JSONL_TOKENS" 'BEGIN { printf "%.0f", s / n }') bytes/token"
rm -rf "$D"
