# moe-quantize on a ~2 GB F16 checkpoint made with --init: Q8_0, Q4_0, Q4_K with 2 threads, next to reading the same bytes.
: "${BENCH_TMP:?}"
set -e
D=$BENCH_TMP/quantize
mkdir -p "$D"
cat >"$D/config.json" <<'JSON'
{"model_type": "mixtral", "hidden_size": 2048, "intermediate_size": 1024,
 "num_hidden_layers": 8, "num_attention_heads": 16, "num_key_value_heads": 4,
 "num_local_experts": 16, "num_experts_per_tok": 2, "vocab_size": 32000,
 "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 1e6}
JSON
moe-convert --init "$D/config.json" --dtype f16 -o "$D/f16.gguf" 2>/dev/null
bytes=$(stat -c %s "$D/f16.gguf")
now() { date +%s.%N; }
t0=$(now); cat "$D/f16.gguf" >/dev/null; t1=$(now)
read_t=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
awk -v b="$bytes" -v r="$read_t" 'BEGIN {
	printf "input: %.2f GB F16; reading it (cat, page cache warm after the write): %.2fs\n", b / 1e9, r }'
for t in q8_0 q4_0 q4_k; do
	t0=$(now)
	moe-quantize -j 2 -t $t -o "$D/$t.gguf" "$D/f16.gguf"
	t1=$(now)
	awk -v t=$t -v a="$t0" -v e="$t1" -v b="$bytes" -v r="$read_t" -v o="$(stat -c %s "$D/$t.gguf")" 'BEGIN {
		q = e - a
		printf "%-5s %6.2fs  %6.0f MB/s of input  %5.1fx the read time  (output %.2f GB)\n", t, q, b / q / 1e6, q / r, o / 1e9 }'
	rm -f "$D/$t.gguf"
done
rm -rf "$D"
