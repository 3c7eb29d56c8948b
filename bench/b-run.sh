# moe-run prompt and decode speed on a ~2 GB Q4_0 MoE (moe-convert --init, moe-quantize) with 2 threads, next to the memory bandwidth measured in the same run.
: "${BENCH_TMP:?}" "${SRC:?}"
set -e
D=$BENCH_TMP/run
mkdir -p "$D"
CC=${CC:-cc}
THREADS=${BENCH_RUN_THREADS:-2}
LAYERS=${BENCH_RUN_LAYERS:-28}
cat >"$D/config.json" <<JSON
{"model_type": "mixtral", "hidden_size": 2048, "intermediate_size": 1024,
 "num_hidden_layers": $LAYERS, "num_attention_heads": 16, "num_key_value_heads": 4,
 "num_local_experts": 16, "num_experts_per_tok": 2, "vocab_size": 32000,
 "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 1e6}
JSON
moe-convert --init "$D/config.json" --dtype f16 -o "$D/f16.gguf" 2>/dev/null
moe-quantize -j "$THREADS" -t q4_0 -o "$D/q4_0.gguf" "$D/f16.gguf" >/dev/null 2>&1
rm -f "$D/f16.gguf"
bytes=$(stat -c %s "$D/q4_0.gguf")

# Bandwidth baselines: reading the model through the page cache (cat), and
# summing it through a mapping with $THREADS threads (what decoding does).
$CC -std=c11 -D_GNU_SOURCE -O2 -pthread -o "$D/memread" "$SRC/bench/memread.c"
cat "$D/q4_0.gguf" >/dev/null
now() { date +%s.%N; }
t0=$(now); cat "$D/q4_0.gguf" >/dev/null; t1=$(now)
cat_bw=$(awk -v a="$t0" -v b="$t1" -v n="$bytes" 'BEGIN { printf "%.2f", n / (b - a) / 1e9 }')
map_bw=$("$D/memread" "$D/q4_0.gguf" "$THREADS")
printf 'model: %.2f GB Q4_0, %s layers, 16 experts (top 2)\n' "$(echo "$bytes" | awk '{ print $1 / 1e9 }')" "$LAYERS"
printf 'bandwidth: cat from page cache %s GB/s, mapped read with %s threads %s GB/s\n' "$cat_bw" "$THREADS" "$map_bw"

run() {   # run LABEL MODEL: 128-token prompt, 32 decoded tokens
	awk 'BEGIN { srand(1); for (i = 0; i < 128; i++) printf "%d ", 1 + int(rand() * 300) }' >"$D/prompt"
	moe-run --tokens --temp 0 --ignore-eos -n 32 -t "$THREADS" --timings -f "$D/prompt" "$2" \
		2>"$D/timings" >/dev/null
	awk -v label="$1" -v bw="$map_bw" '
		/prompt/ { for (i = 1; i <= NF; i++) if ($i == "tokens/s") pp = $(i - 1) }
		/decode/ { for (i = 1; i <= NF; i++) if ($i == "tokens/s") tg = $(i - 1) }
		/MB of weights per token/ { mb = $2 }
		END {
			bound = bw * 1000 / mb
			printf "%-22s prompt %8.2f tok/s  decode %7.2f tok/s  (%.1f MB/token: bound %.2f tok/s at %.2f GB/s, %.0f%% of it)\n",
				label, pp, tg, mb, bound, bw, 100 * tg / bound
		}' "$D/timings"
}
run "q4_0 ~2GB" "$D/q4_0.gguf"
SHARED=${MOE_TEST_SHARED:-$SRC/../shared}
if [ -f "$SHARED/ref/models/deepseek2-lite-f32.gguf" ]; then
	run "deepseek2-lite-f32" "$SHARED/ref/models/deepseek2-lite-f32.gguf"
fi
rm -rf "$D"
