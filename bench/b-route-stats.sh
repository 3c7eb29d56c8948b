# moe-route-stats: routing decisions per second on a generated trace (>= 1M tokens x 32 layers x top-8)
# and trace bytes per token in both encodings; baseline: cat of the same file in the same run.
: "${BIN:?}" "${SRC:?}" "${BENCH_TMP:?}"
TOKENS=${ROUTE_BENCH_TOKENS:-1000000}
LAYERS=32 EXPERTS=64 TOPK=8
JSONL_TOKENS=$((TOKENS / 20))
D=$BENCH_TMP/route
mkdir -p "$D" || exit 1

now() { date +%s.%N; }
# CPU seconds (user + system) of finished children, from the file `times` wrote.
cpu() { awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); print u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$1"; }
# run LABEL DECISIONS CMD...: wall-clock and CPU rate of one command.
run() {
	label=$1 n=$2
	shift 2
	times >"$D/times0"; t0=$(now)
	"$@" >/dev/null || exit 1
	t1=$(now); times >"$D/times1"
	c0=$(cpu "$D/times0") c1=$(cpu "$D/times1")
	echo "$label: $(rate "$n" "$t0" "$t1") M decisions/s wall ($(secs "$t0" "$t1")s), $(rate "$n" "$c0" "$c1") M decisions per CPU-second"
}
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

run "binary, all statistics but the cache" $decisions moe-route-stats --no-cache "$D/big.bin"
run "binary, all statistics with the LRU/LFU/OPT cache simulation" $decisions moe-route-stats "$D/big.bin"
run "JSON Lines ($JSONL_TOKENS tokens), all statistics but the cache" $jdecisions moe-route-stats --no-cache "$D/small.jsonl"
run "JSON Lines -> binary conversion" $jdecisions moe-route-stats --to bin -o "$D/conv.bin" "$D/small.jsonl"
run "binary -> JSON Lines conversion" $jdecisions moe-route-stats --to jsonl -o "$D/conv.jsonl" "$D/conv.bin"
echo "load average during the run: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"

bin_size=$(wc -c <"$D/big.bin")
hdr=$((bin_size - TOKENS * (12 + LAYERS * TOPK * 6)))
echo "binary: $(( (bin_size - hdr) / TOKENS )) bytes/token (header $hdr bytes)"
echo "JSON Lines: $(awk -v s="$(wc -c <"$D/small.jsonl")" -v n="$JSONL_TOKENS" 'BEGIN { printf "%.0f", s / n }') bytes/token"
rm -rf "$D"
