# moe-run end to end: generation, logits, traces, perplexity, threads and batches agree, bad inputs and broken outputs.
. "$SRC/tests/cli/lib.sh"

cat >tiny.json <<'JSON'
{"model_type": "mixtral", "hidden_size": 64, "intermediate_size": 64, "num_hidden_layers": 2,
 "num_attention_heads": 4, "num_key_value_heads": 2, "num_local_experts": 8,
 "num_experts_per_tok": 2, "vocab_size": 128, "max_position_embeddings": 512,
 "rms_norm_eps": 1e-5, "rope_theta": 10000.0}
JSON
echo '1 17 42 99 5 64 3 77' >ids

test_expect_success "setup: random mixtral with moe-convert --init" "
	moe-convert --init tiny.json -f gguf -o tiny.gguf &&
	moe-convert --dtype bf16 -f gguf -o tiny-bf16.gguf tiny.gguf &&
	moe-convert --drop-tensors 'blk\.1\.ffn_up_exps' -f gguf -o missing.gguf tiny.gguf
"

test_expect_success "greedy token ids: prompt, -f and stdin agree" "
	moe-run --tokens --temp 0 -n 12 -p \"\$(cat ids)\" tiny.gguf >a &&
	moe-run --tokens --temp 0 -n 12 -f ids tiny.gguf >b &&
	moe-run --tokens --temp 0 -n 12 tiny.gguf <ids >c &&
	test_cmp a b && test_cmp a c &&
	test \$(wc -w <a) = 12
"

test_expect_success "threads and batch sizes give the same tokens and logits" "
	moe-run --tokens --temp 0 -n 12 -t 1 -b 1 --logits l1 -f ids tiny.gguf >d &&
	moe-run --tokens --temp 0 -n 12 -t 2 -b 3 --logits l2 -f ids tiny.gguf >e &&
	moe-run --tokens --temp 0 -n 12 -t 3 --logits l3 -f ids tiny.gguf >f &&
	test_cmp a d && test_cmp a e && test_cmp a f &&
	cmp l1 l2 && cmp l1 l3
"

test_expect_success "--logits: one float32 row of the vocabulary per evaluated token" "
	moe-run --tokens -n 0 --logits p.f32 -f ids tiny.gguf >out &&
	test ! -s out &&
	test \$(wc -c <p.f32) = \$((8 * 128 * 4)) &&
	test \$(wc -c <l1) = \$((20 * 128 * 4)) &&
	head -c \$((8 * 128 * 4)) l1 >l1p && cmp l1p p.f32
"

test_expect_success "sampling: same seed same tokens, any seed stays in the vocabulary" "
	moe-run --tokens -n 16 -s 7 --temp 1.5 --top-k 0 --top-p 1 --min-p 0 -f ids tiny.gguf >s1 &&
	moe-run --tokens -n 16 -s 7 --temp 1.5 --top-k 0 --top-p 1 --min-p 0 -f ids tiny.gguf >s2 &&
	test_cmp s1 s2 &&
	moe-run --tokens -n 16 -s 8 --repeat-penalty 1.3 -f ids tiny.gguf >s3 &&
	for t in \$(cat s1 s3); do test \$t -ge 0 && test \$t -lt 128 || exit 1; done
"

test_expect_success "--trace: one record per token, read back by moe-route-stats" "
	moe-run --tokens --temp 0 -n 4 --trace tr.jsonl -f ids tiny.gguf >g &&
	test \$(wc -l <tr.jsonl) = 13 &&
	grep -q '\"moe_layers\":\[0,1\]' tr.jsonl &&
	grep -q '\"top_k\":2' tr.jsonl &&
	moe-route-stats tr.jsonl >stats &&
	moe-run --tokens -n 0 --trace - -f ids tiny.gguf | moe-route-stats >stats2 &&
	grep -qi 'tokens' stats2
"

test_expect_success "--top-k-experts: all 8 experts per token, recorded in the trace" "
	moe-run --tokens -n 0 --top-k-experts 8 --trace tr8.jsonl -f ids tiny.gguf &&
	grep -q '\"top_k\":8' tr8.jsonl &&
	moe-run --tokens --temp 0 -n 4 --top-k-experts 1 -f ids tiny.gguf >k1 &&
	test \$(wc -w <k1) = 4
"

test_expect_success "bf16 weights: greedy generation runs" "
	moe-run --tokens --temp 0 -n 1 -f ids tiny-bf16.gguf >h &&
	test \$(wc -w <h) = 1
"

test_expect_success "--perplexity over token ids: a line per chunk and the estimate" "
	seq 1 40 | tr '\n' ' ' >pp &&
	moe-run --tokens --perplexity pp -c 16 tiny.gguf >ppl &&
	test \$(grep -c '^\[[0-9]\]' ppl) = 2 &&
	grep -q '^Final estimate: PPL = [0-9.]* +/- [0-9.]*\$' ppl
"

test_expect_success "--timings reports load, prompt and decode speed" "
	moe-run --tokens --temp 0 -n 4 --timings -f ids tiny.gguf >/dev/null 2>tm &&
	grep -q 'load' tm && grep -q 'prompt 8 tokens' tm && grep -q 'decode 4 tokens' tm &&
	grep -q 'MB of weights per token' tm
"

cat >v3.json <<'JSON'
{"model_type": "deepseek_v3", "hidden_size": 64, "intermediate_size": 128, "moe_intermediate_size": 32,
 "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 4, "n_routed_experts": 16,
 "n_shared_experts": 1, "num_experts_per_tok": 4, "n_group": 4, "topk_group": 2,
 "first_k_dense_replace": 1, "q_lora_rank": 32, "kv_lora_rank": 32, "qk_nope_head_dim": 16,
 "qk_rope_head_dim": 8, "v_head_dim": 16, "routed_scaling_factor": 2.5, "scoring_func": "sigmoid",
 "topk_method": "noaux_tc", "norm_topk_prob": true, "vocab_size": 128,
 "max_position_embeddings": 512, "rms_norm_eps": 1e-6, "rope_theta": 10000.0}
JSON
cat >q3.json <<'JSON'
{"model_type": "qwen3_moe", "hidden_size": 64, "intermediate_size": 128, "moe_intermediate_size": 32,
 "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32,
 "num_experts": 8, "num_experts_per_tok": 2, "norm_topk_prob": true, "vocab_size": 128,
 "max_position_embeddings": 512, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0}
JSON

test_expect_success "deepseek-v3 layout: MLA, sigmoid routing limited to 2 of 4 expert groups" "
	moe-convert --init v3.json -f gguf -o v3.gguf &&
	moe-run --tokens --temp 0 -n 6 --trace v3.jsonl -f ids v3.gguf >v3a &&
	moe-run --tokens --temp 0 -n 6 -b 1 -f ids v3.gguf >v3b &&
	test_cmp v3a v3b &&
	grep -q '\"gating\":\"sigmoid\"' v3.jsonl &&
	sed -n 's/.*\"experts\":\[\(\[[^]]*\]\(,\[[^]]*\]\)*\)\].*/\1/p' v3.jsonl | tr -d '[' |
		tr ']' '\n' | sed 's/^,//' | awk -F, 'NF { delete g; n = 0
			for (i = 1; i <= NF; i++) if (!((\$i - \$i % 4) in g)) { g[\$i - \$i % 4] = 1; n++ }
			if (n > 2) bad = 1; rows++ }
			END { exit bad || rows != 28 }'
"

test_expect_success "qwen3moe layout: per-head q/k norms; batch and one by one agree" "
	moe-convert --init q3.json -f gguf -o q3.gguf &&
	moe-run --tokens -n 0 --logits q3a -f ids q3.gguf &&
	moe-run --tokens -n 0 -b 1 --logits q3b -f ids q3.gguf &&
	cmp q3a q3b
"

test_expect_success "bad model file: one line, exit 1" "
	echo 'not a model' >junk.gguf &&
	test_fails 1 moe-run --tokens -p 1 junk.gguf
"

test_expect_success "missing tensor is named" "
	test_fails 1 moe-run --tokens -p 1 missing.gguf &&
	grep -q \"missing tensor 'blk.1.ffn_up_exps.weight'\" \"\$TMPD/.ferr\"
"

test_expect_success "bad token id and text without a vocabulary are refused" "
	test_fails 1 moe-run --tokens -p '1 128' tiny.gguf &&
	grep -q \"bad token id '128'\" \"\$TMPD/.ferr\" &&
	test_fails 1 moe-run -p 'hello' tiny.gguf &&
	grep -q 'tokenizer' \"\$TMPD/.ferr\" &&
	test_fails 1 moe-run --tokens -n 600 -p 1 tiny.gguf &&
	test_fails 1 moe-run --tokens --top-k-experts 9 -p 1 tiny.gguf
"

test_expect_success "usage errors exit 2" "
	test_fails 2 moe-run --tokens -p 1 &&
	test_fails 2 moe-run --tokens --temp -1 -p 1 tiny.gguf &&
	test_fails 2 moe-run --perplexity pp -p 1 tiny.gguf &&
	test_fails 2 moe-run -t 0 -p 1 tiny.gguf
"

test_expect_success "closed pipe: silent exit 1" "
	{ moe-run --tokens --ignore-eos -n 400 -p 1 tiny.gguf 2>pipe.err; echo \$? >st; } | head -c1 >/dev/null &&
	test \"\$(cat st)\" = 1 && test ! -s pipe.err
"

test_expect_success "full disk: --logits and standard output fail with one line" "
	test_fails 1 moe-run --tokens -n 2 --logits /dev/full -p 1 tiny.gguf &&
	FAILS_STDOUT=/dev/full test_fails 1 moe-run --tokens -n 2 -p 1 tiny.gguf
"

test_expect_success 'the model through a pipe and as a Hugging Face directory' '
	moe-convert --init "$SRC/tests/data/tiny-mixtral.json" -o pipe.gguf &&
	moe-convert -o pipehf/ pipe.gguf &&
	moe-run --temp 0 -n 3 --logits a.f32 -p "the cat" pipe.gguf >/dev/null &&
	cat pipe.gguf | moe-run --temp 0 -n 3 --logits b.f32 -p "the cat" - >/dev/null &&
	moe-run --temp 0 -n 3 --logits c.f32 -p "the cat" pipehf >/dev/null &&
	cmp a.f32 b.f32 && cmp a.f32 c.f32 && test -s a.f32
'

test_expect_success 'the README pipeline: init | quantize | run --trace | route-stats' '
	moe-convert --init "$SRC/tests/data/tiny-mixtral.json" -f gguf -o - |
		moe-quantize -t q8_0 -o - - |
		moe-run -p "the cat sat on the mat" -n 16 --trace - - |
		moe-route-stats - >stats &&
	grep -q "3 layers, 3 MoE, 8 experts, top-2" stats &&
	grep -q "expert-cache hit rate" stats
'

if have_shared; then
	M=$SHARED/ref/models
	test_expect_success "reference: greedy ids equal llama.cpp's for every F32 model" "
		for f in \$M/*-f32.gguf; do
			b=\${f%.gguf}
			tr -d '\n' <\$b.greedy.json | sed 's/.*\"prompt_tokens\": *\[\([^]]*\)\].*/\1/' >pr &&
			tr -d '\n' <\$b.greedy.json | sed 's/.*\"generated\": *\[\([^]]*\)\].*/\1/' | tr ',' ' ' >want &&
			moe-run --tokens --temp 0 --ignore-eos -n 24 -f pr \$f >got &&
			test \"\$(cat got)\" = \"\$(tr -s ' ' <want | sed 's/^ //')\" || { echo \$f; exit 1; }
		done
	"
	test_expect_success "reference: perplexity equals llama-perplexity's" "
		for f in \$M/llama-moe-f32.gguf \$M/qwen2moe-q8_0.gguf; do
			b=\${f%.gguf}
			tr -d '\n' <\$b.perplexity.json | sed 's/.*\"text_tokens\": *\[\([^]]*\)\].*/\1/' >tt &&
			want=\$(tr -d '\n' <\$b.perplexity.json | sed 's/.*\"final_ppl\": *\([0-9.]*\).*/\1/') &&
			moe-run --tokens --perplexity tt -c 64 \$f >ppl &&
			got=\$(sed -n 's/^Final estimate: PPL = \([0-9.]*\) .*/\1/p' ppl) &&
			awk -v a=\$got -v b=\$want 'BEGIN { d = a / b - 1; exit !(d < 1e-4 && d > -1e-4) }' || { echo \$f \$got \$want; exit 1; }
		done
	"
	test_expect_success "reference: a text prompt is tokenized like llama.cpp's" "
		moe-run -n 0 --trace - -p 'the cat sat on the mat' \$M/llama-moe-f32.gguf |
			sed -n 's/.*\"token\":\([0-9]*\).*/\1/p' | tr '\n' ' ' >got &&
		test \"\$(cat got)\" = '1 298 310 287 308 287 316 298 319 '
	"
else
	test_skip "reference models" "$SHARED/ref not found"
fi

test_done
