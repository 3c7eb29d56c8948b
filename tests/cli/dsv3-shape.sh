# Builds a directory shaped like the DeepSeek-V3 checkpoint (163 FP8 safetensors shards, index, config) with sparse data; sourced by t2000 and bench.
# gen_dsv3 DIR CONFIG: DIR gets model-000NN-of-000163.safetensors, the index and
# config.json (a copy of CONFIG). Headers are real; data is a hole (truncate).
gen_dsv3() {
	mkdir -p "$1" || return 1
	cp "$2" "$1/config.json" || return 1
	awk -v dir="$1" '
	function t(name, dtype, r, c,   sz) {
		n++; nm[n] = name; dt[n] = dtype
		sh[n] = (c == "") ? r : r "," c
		sz = (dtype == "BF16") ? 2 : (dtype == "F32") ? 4 : 1
		nb[n] = r * (c == "" ? 1 : c) * sz
	}
	# FP8 weight with its 128x128 block scales
	function w8(name, r, c) {
		t(name ".weight", "F8_E4M3", r, c)
		t(name ".weight_scale_inv", "F32", int((r + 127) / 128), int((c + 127) / 128))
	}
	function block(L,   p, e) {
		p = "model.layers." L "."
		t(p "input_layernorm.weight", "BF16", 7168, "")
		t(p "post_attention_layernorm.weight", "BF16", 7168, "")
		w8(p "self_attn.q_a_proj", 1536, 7168)
		t(p "self_attn.q_a_layernorm.weight", "BF16", 1536, "")
		w8(p "self_attn.q_b_proj", 24576, 1536)
		w8(p "self_attn.kv_a_proj_with_mqa", 576, 7168)
		t(p "self_attn.kv_a_layernorm.weight", "BF16", 512, "")
		w8(p "self_attn.kv_b_proj", 32768, 512)
		w8(p "self_attn.o_proj", 7168, 16384)
		if (L < 3) {
			w8(p "mlp.gate_proj", 18432, 7168)
			w8(p "mlp.up_proj", 18432, 7168)
			w8(p "mlp.down_proj", 7168, 18432)
			return
		}
		t(p "mlp.gate.weight", "BF16", 256, 7168)
		t(p "mlp.gate.e_score_correction_bias", "F32", 256, "")
		for (e = 0; e < 256; e++) {
			w8(p "mlp.experts." e ".gate_proj", 2048, 7168)
			w8(p "mlp.experts." e ".up_proj", 2048, 7168)
			w8(p "mlp.experts." e ".down_proj", 7168, 2048)
		}
		w8(p "mlp.shared_experts.gate_proj", 2048, 7168)
		w8(p "mlp.shared_experts.up_proj", 2048, 7168)
		w8(p "mlp.shared_experts.down_proj", 7168, 2048)
	}
	BEGIN {
		t("model.embed_tokens.weight", "BF16", 129280, 7168)
		for (L = 0; L <= 61; L++)
			block(L)
		# layer 61: the multi-token-prediction module
		t("model.layers.61.embed_tokens.weight", "BF16", 129280, 7168)
		t("model.layers.61.enorm.weight", "BF16", 7168, "")
		t("model.layers.61.hnorm.weight", "BF16", 7168, "")
		t("model.layers.61.eh_proj.weight", "BF16", 7168, 14336)
		t("model.layers.61.shared_head.norm.weight", "BF16", 7168, "")
		t("model.layers.61.shared_head.head.weight", "BF16", 129280, 7168)
		t("model.norm.weight", "BF16", 7168, "")
		t("lm_head.weight", "BF16", 129280, 7168)
		S = 163
		idx = dir "/model.safetensors.index.json"
		printf "{\"metadata\":{},\"weight_map\":{" > idx
		for (i = 1; i <= n; i++) {
			s = int((i - 1) * S / n) + 1
			f = sprintf("model-%05d-of-%06d.safetensors", s, S)
			hdr = dir "/" f ".hdr"
			if (s != cur) {
				if (cur)
					printf "}" > prev
				printf "{\"__metadata__\":{\"format\":\"pt\"}" > hdr
				cur = s; prev = hdr; off = 0
			}
			printf ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%s],\"data_offsets\":[%.0f,%.0f]}", \
				nm[i], dt[i], sh[i], off, off + nb[i] > hdr
			off += nb[i]; size[s] = off
			printf "%s\"%s\":\"%s\"", (i > 1 ? "," : ""), nm[i], f > idx
		}
		printf "}" > prev
		printf "}}\n" > idx
		for (s = 1; s <= S; s++)
			printf "%.0f\n", size[s] > (dir "/sizes")
	}' || return 1
	s=0
	while read -r data; do
		s=$((s + 1))
		f=$(printf '%s/model-%05d-of-%06d.safetensors' "$1" "$s" 163)
		n=$(wc -c <"$f.hdr")
		pad=$(( (8 - n % 8) % 8 ))
		h=$((n + pad))
		printf "$(printf '\\%03o\\%03o\\%03o\\%03o' $((h & 255)) $((h >> 8 & 255)) \
			$((h >> 16 & 255)) $((h >> 24 & 255)))\\000\\000\\000\\000" >"$f"
		cat "$f.hdr" >>"$f"
		printf '%*s' "$pad" '' >>"$f"
		rm -f "$f.hdr"
		truncate -s $((8 + h + data)) "$f" || return 1
	done <"$1/sizes"
	rm -f "$1/sizes"
}
