# moe-convert on a ~2 GB BF16 checkpoint made with --init: time as a ratio to cp of the same bytes, and peak RSS.
: "${BENCH_TMP:?}"
set -e
D=$BENCH_TMP/convert
mkdir -p "$D"
cc -O2 -o "$D/peakrss" "$SRC/bench/peakrss.c"
cat >"$D/config.json" <<'JSON'
{"model_type": "mixtral", "hidden_size": 2048, "intermediate_size": 1024,
 "num_hidden_layers": 8, "num_attention_heads": 16, "num_key_value_heads": 4,
 "num_local_experts": 16, "num_experts_per_tok": 2, "vocab_size": 32000,
 "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 1e6}
JSON
moe-convert --init "$D/config.json" --dtype bf16 -o "$D/hf/" 2>/dev/null
bytes=$(stat -c %s "$D/hf/model.safetensors")
sync
# one warm-up read so that both runs start from the page cache
cat "$D/hf/model.safetensors" >/dev/null
run() { "$D/peakrss" "$@" 2>&1 >/dev/null | tail -n 1; }
cp_t=$(run cp "$D/hf/model.safetensors" "$D/copy.bin" | cut -d' ' -f1)
set -- $(run moe-convert -o "$D/m.gguf" "$D/hf")
to_gguf_t=$1 to_gguf_rss=$2
rm -f "$D/copy.bin"
cp_t2=$(run cp "$D/m.gguf" "$D/copy.bin" | cut -d' ' -f1)
rm -f "$D/copy.bin"
# the converter fsyncs before renaming; so does this baseline
sync_t=$(run dd if="$D/m.gguf" of="$D/copy.bin" bs=4M conv=fsync | cut -d' ' -f1)
set -- $(run moe-convert -o "$D/back/" "$D/m.gguf")
to_hf_t=$1 to_hf_rss=$2
# tensor data only: the headers differ (the second carries GGUF metadata)
data() { hl=$(od -An -tu8 -N8 "$1" | tr -d ' '); tail -c +$((hl + 9)) "$1"; }
[ "$(data "$D/hf/model.safetensors" | cksum)" = "$(data "$D/back/model.safetensors" | cksum)" ] &&
	same=identical || same=DIFFERENT
awk -v b="$bytes" -v c1="$cp_t" -v g="$to_gguf_t" -v gr="$to_gguf_rss" \
    -v c2="$cp_t2" -v s2="$sync_t" -v h="$to_hf_t" -v hr="$to_hf_rss" -v same="$same" 'BEGIN {
	printf "checkpoint: %.2f GB BF16 (--init, 8 layers x 16 experts)\n", b / 1e9
	printf "HF -> GGUF: %.2fs, cp of the same bytes %.2fs: ratio %.2fx (goal <= 1.3x), peak RSS %.1f MB (goal < 64 MB)\n", g, c1, g / c1, gr / 1024
	printf "GGUF -> HF: %.2fs, cp of the same bytes %.2fs: ratio %.2fx (goal <= 1.3x), peak RSS %.1f MB (goal < 64 MB)\n", h, c2, h / c2, hr / 1024
	printf "           (dd with fsync of the same bytes %.2fs: ratio %.2fx)\n", s2, h / s2
	printf "round trip of the tensor data: %s\n", same
}'
rm -rf "$D"
