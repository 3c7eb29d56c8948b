# Listing a DeepSeek-V3-shaped sharded checkpoint (163 sparse shards, ~684B bf16 parameters) against cat of its headers.
: "${BIN:?}" "${SRC:?}"
PATH=$BIN:$PATH
NSHARDS=163
top=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/b-shards.XXXXXX") || exit 1
trap '[ -n "${KEEP:-}" ] || rm -rf "$top"' EXIT INT TERM
dir=$top/deepseek-v3
mkdir "$dir" "$top/headers" || exit 1

now() { date +%s%N; }
ms() { echo $((($2 - $1) / 1000000)); }
# CPU time (user + system, ms) used by this shell's finished children so
# far: `times` must run in this shell, not in a $(...) subshell.
cpu_file() {
	awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/)
		printf "%d\n", (u[1] * 60 + u[2] + s[1] * 60 + s[2]) * 1000 }' "$1"
}

# The shards are sparse: only headers take disk space. Check the
# filesystem keeps a 64 MiB hole as a hole before making 1.4 TB of them.
truncate -s 64M "$top/probe" || exit 1
if [ "$(du -k "$top/probe" | cut -f1)" -gt 1024 ]; then
	echo "b-shards: skipped: $top does not support sparse files"
	exit 0
fi
rm -f "$top/probe"

# Tensor list of DeepSeek-V3 (61 layers + the MTP layer, MLA attention,
# 3 dense layers, then 256 routed + 1 shared expert per layer), all BF16,
# split into NSHARDS shards at even byte boundaries. awk writes each
# shard's header JSON to headers/K.json, "K datasize" lines to sizes, and
# the index.
awk -v nsh=$NSHARDS -v dir="$dir" -v hdir="$top/headers" '
function add(name, s0, s1,    n) {
	n = s0 * (s1 == "" ? 1 : s1) * 2
	nm[++nt] = name
	shp[nt] = s1 == "" ? s0 : s0 "," s1
	nb[nt] = n
	total += n
}
function layer(L, pre, e) {
	pre = "model.layers." L "."
	add(pre "input_layernorm.weight", 7168)
	add(pre "self_attn.q_a_proj.weight", 1536, 7168)
	add(pre "self_attn.q_a_layernorm.weight", 1536)
	add(pre "self_attn.q_b_proj.weight", 24576, 1536)
	add(pre "self_attn.kv_a_proj_with_mqa.weight", 576, 7168)
	add(pre "self_attn.kv_a_layernorm.weight", 512)
	add(pre "self_attn.kv_b_proj.weight", 32768, 512)
	add(pre "self_attn.o_proj.weight", 7168, 16384)
	add(pre "post_attention_layernorm.weight", 7168)
	if (L < 3) {
		add(pre "mlp.gate_proj.weight", 18432, 7168)
		add(pre "mlp.up_proj.weight", 18432, 7168)
		add(pre "mlp.down_proj.weight", 7168, 18432)
		return
	}
	add(pre "mlp.gate.weight", 256, 7168)
	add(pre "mlp.gate.e_score_correction_bias", 256)
	for (e = 0; e < 256; e++) {
		add(pre "mlp.experts." e ".gate_proj.weight", 2048, 7168)
		add(pre "mlp.experts." e ".up_proj.weight", 2048, 7168)
		add(pre "mlp.experts." e ".down_proj.weight", 7168, 2048)
	}
	add(pre "mlp.shared_experts.gate_proj.weight", 2048, 7168)
	add(pre "mlp.shared_experts.up_proj.weight", 2048, 7168)
	add(pre "mlp.shared_experts.down_proj.weight", 7168, 2048)
}
BEGIN {
	add("model.embed_tokens.weight", 129280, 7168)
	for (L = 0; L < 62; L++)
		layer(L)
	pre = "model.layers.61."
	add(pre "embed_tokens.weight", 129280, 7168)
	add(pre "enorm.weight", 7168)
	add(pre "hnorm.weight", 7168)
	add(pre "eh_proj.weight", 7168, 14336)
	add(pre "shared_head.norm.weight", 7168)
	add(pre "shared_head.head.weight", 129280, 7168)
	add("model.norm.weight", 7168)
	add("lm_head.weight", 129280, 7168)

	idx = dir "/model.safetensors.index.json"
	printf "{\n  \"metadata\": {\n    \"total_size\": %.0f\n  },\n  \"weight_map\": {", total > idx
	at = 0; k = 0; sep = ""
	for (i = 1; i <= nt; i++) {
		s = int(at * nsh / total) + 1
		if (s != k) {
			if (k) { printf "}" > f; close(f); printf "%d %.0f\n", k, off > (hdir "/sizes") }
			k = s; off = 0; f = sprintf("%s/%05d.json", hdir, k)
			printf "{\"__metadata__\":{\"format\":\"pt\"}" > f
		}
		printf ",\"%s\":{\"dtype\":\"BF16\",\"shape\":[%s],\"data_offsets\":[%.0f,%.0f]}", nm[i], shp[i], off, off + nb[i] > f
		printf "%s\n    \"%s\": \"model-%05d-of-%05d.safetensors\"", sep, nm[i], k, nsh > idx
		sep = ","
		off += nb[i]; at += nb[i]
	}
	printf "}" > f; close(f); printf "%d %.0f\n", k, off > (hdir "/sizes")
	printf "\n  }\n}\n" > idx
	printf "%d tensors, %.1fB parameters, %.2f TB\n", nt, total / 2 / 1e9, total / 1e12 > (hdir "/summary")
}' || exit 1

# Each shard: u64 length + header (padded to 8) written for real, then
# extended to its full size as a hole.
t0=$(now)
while read -r k size; do
	hj=$top/headers/$(printf %05d "$k").json
	n=$(wc -c <"$hj")
	pad=$(( (8 - n % 8) % 8 ))
	h=$((n + pad))
	hb=$top/headers/$(printf %05d "$k").hdr
	printf "$(printf '\\%03o\\%03o\\%03o\\%03o' $((h & 255)) $((h >> 8 & 255)) \
		$((h >> 16 & 255)) $((h >> 24 & 255)))\\000\\000\\000\\000" >"$hb"
	cat "$hj" >>"$hb"
	printf '%*s' "$pad" '' >>"$hb"
	shard=$dir/$(printf 'model-%05d-of-%05d.safetensors' "$k" $NSHARDS)
	cp "$hb" "$shard" && truncate -s $((8 + h + size)) "$shard" || exit 1
	rm -f "$hj"
done <"$top/headers/sizes"
rm -f "$top/headers/sizes"
t1=$(now)
hdr_bytes=$(cat "$top"/headers/*.hdr | wc -c)
idx_bytes=$(wc -c <"$dir/model.safetensors.index.json")
echo "b-shards: built $NSHARDS sparse shards in $(ms "$t0" "$t1") ms: $(cat "$top/headers/summary")," \
	"$(du -sk "$dir" | cut -f1) KiB on disk"

# Best of 3 runs each (warm cache for both); CPU time is the mean.
best_inspect=
best_cat=
times >"$top/times"
c0=$(cpu_file "$top/times")
for run in 1 2 3; do
	t0=$(now)
	moe-inspect --tensors "$dir" >/dev/null || { echo "b-shards: moe-inspect failed"; exit 1; }
	t1=$(now)
	times >"$top/times"
	c1=$(cpu_file "$top/times")
	cpu_inspect=$((${cpu_inspect:-0} + c1 - c0))
	cat "$top"/headers/*.hdr >/dev/null
	t2=$(now)
	a=$(ms "$t0" "$t1")
	b=$(((t2 - t1) / 1000))
	[ -z "$best_inspect" ] || [ "$a" -lt "$best_inspect" ] && best_inspect=$a
	[ -z "$best_cat" ] || [ "$b" -lt "$best_cat" ] && best_cat=$b
	times >"$top/times"
	c0=$(cpu_file "$top/times")
done
read_bytes=$(moe-inspect --json "$dir" | sed -n 's/.*"bytes_read":\([0-9]*\).*/\1/p')
ntensors=$(moe-inspect --json "$dir" | sed -n 's/.*"tensor_count":\([0-9]*\).*/\1/p')
echo "b-shards: moe-inspect --tensors: $best_inspect ms wall (best of 3), $((cpu_inspect / 3)) ms CPU," \
	"$ntensors tensors; bytes read $read_bytes" \
	"= shard headers $hdr_bytes + index $idx_bytes ($((hdr_bytes + idx_bytes)))"
echo "b-shards: baseline cat of the $hdr_bytes header bytes: $best_cat us"
[ "$read_bytes" = $((hdr_bytes + idx_bytes)) ] || { echo "b-shards: read more than headers and index"; exit 1; }
