# moe-convert end to end: --init, round trips, pipes, shards, subsets, casts and failures.
. "$SRC/tests/cli/lib.sh"

CFG=$SRC/tests/data/tiny-mixtral.json

test_expect_success '--init writes a GGUF that lists as expected' '
	moe-convert --init "$CFG" --seed 7 -o tiny.gguf &&
	moe-inspect -j -t tiny.gguf >out &&
	grep -q "\"tensor_count\":33" out &&
	grep -q "\"name\":\"blk.2.ffn_down_exps.weight\",\"dtype\":\"F32\",\"shape\":\[8,64,96\]" out
'

test_expect_success '--init is deterministic and seeded' '
	moe-convert --init "$CFG" --seed 7 -o again.gguf && cmp tiny.gguf again.gguf &&
	moe-convert --init "$CFG" --seed 8 -o other.gguf && ! cmp -s tiny.gguf other.gguf
'

test_expect_success 'GGUF -> HF directory -> GGUF is byte-identical' '
	moe-convert -o hf/ tiny.gguf &&
	test -f hf/model.safetensors && test -f hf/config.json &&
	grep -q "\"model_type\": \"mixtral\"" hf/config.json &&
	moe-convert -o back.gguf hf && cmp tiny.gguf back.gguf
'

test_expect_success 'the HF directory has a tokenizer; HF -> HF -> GGUF keeps the vocabulary' '
	test -f hf/tokenizer.json && test -f hf/tokenizer_config.json &&
	grep -q "\"bos_token\": \"<s>\"" hf/tokenizer_config.json &&
	moe-convert -o hf2/ hf && moe-convert -o fromhf2.gguf hf2 &&
	moe-inspect -m tiny.gguf | grep "^tokenizer.ggml.tokens" >a &&
	moe-inspect -m fromhf2.gguf | grep "^tokenizer.ggml.tokens" >b &&
	test_cmp a b &&
	moe-inspect -m fromhf2.gguf | grep -q "^tokenizer.ggml.bos_token_id	u32	1"
'

test_expect_success 'HF names and per-expert tensors on the HF side' '
	moe-inspect -t hf >out &&
	grep -q "^model.layers.1.block_sparse_moe.experts.7.w2.weight  *F32  *\[64, 96\]" out &&
	grep -q "^lm_head.weight" out
'

test_expect_success 'pipes: GGUF on stdin to safetensors on stdout and back' '
	cat tiny.gguf | moe-convert -f safetensors -o - | moe-convert -f gguf -o - >piped.gguf &&
	cmp tiny.gguf piped.gguf
'

test_expect_success 'sharded output with an index, read back as one checkpoint' '
	moe-convert --max-shard-size 300KB -o shards tiny.gguf &&
	test -f shards/model.safetensors.index.json &&
	test $(ls shards/*.safetensors | wc -l) -gt 3 &&
	moe-convert -o fromshards.gguf shards && cmp tiny.gguf fromshards.gguf
'

test_expect_success 'archives: a tarred HF directory, from a file and a pipe' '
	tar -cf hf.tar hf &&
	moe-convert -o fromtar.gguf hf.tar && cmp tiny.gguf fromtar.gguf &&
	tar -cf - hf | moe-convert -f gguf -o - >fromtarpipe.gguf && cmp tiny.gguf fromtarpipe.gguf
'

test_expect_success '--dtype bf16 keeps norms and routers F32' '
	moe-convert --dtype bf16 -o bf16.gguf tiny.gguf &&
	moe-inspect -t bf16.gguf >out &&
	grep -q "^blk.0.ffn_up_exps.weight  *BF16" out &&
	grep -q "^blk.0.ffn_gate_inp.weight  *F32" out &&
	grep -q "^blk.0.attn_norm.weight  *F32" out &&
	moe-inspect -m bf16.gguf | grep -q "^general.file_type	u32	32"
'

test_expect_success 'expert and layer subsets update counts' '
	moe-convert --experts 1,3,5 --layers 0,2 -o sub.gguf tiny.gguf &&
	moe-inspect -m -t sub.gguf >out &&
	grep -q "^llama.block_count	u32	2" out &&
	grep -q "^llama.expert_count	u32	3" out &&
	grep -q "^blk.1.ffn_gate_inp.weight  *F32  *\[3, 64\]" out &&
	! grep -q "^blk.2" out
'

test_expect_success 'an expert list file with per-block lines' '
	printf "# from a routing trace\n0: 0 1\n1: 2 3\n2: 4 5\n" >hot.txt &&
	moe-convert --experts-file hot.txt -f safetensors -o hot.safetensors tiny.gguf &&
	moe-inspect -t hot.safetensors >out &&
	grep -q "experts.1.w1.weight" out && ! grep -q "experts.2.w1.weight" out
'

test_expect_success 'FP8 block-scaled weights dequantise to BF16' '
	moe-quantize -t fp8 -f safetensors -o fp8.safetensors tiny.gguf &&
	moe-convert -o fp8.gguf fp8.safetensors &&
	moe-inspect -t fp8.gguf >out &&
	grep -q "^blk.1.ffn_down_exps.weight  *BF16  *\[8, 64, 96\]" out &&
	! grep -q scale_inv out
'

test_expect_success '--dry-run lists the plan and writes nothing' '
	moe-convert -n -o never.safetensors tiny.gguf >out &&
	test ! -e never.safetensors &&
	tail -n 1 out | grep -q "^# 96 tensors"
'

test_expect_success '--drop-tensors leaves tensors out' '
	moe-convert --drop-tensors "^output\\.weight$" -o nohead.gguf tiny.gguf &&
	! moe-inspect -t nohead.gguf | grep -q "^output.weight"
'

test_expect_success 'refuses to overwrite without --force; --force replaces' '
	test_fails 1 moe-convert -o tiny.gguf hf &&
	grep -q "output exists (use --force" "$TMPD/.ferr" &&
	moe-convert --force -o tiny.gguf hf
'

test_expect_success 'top-k above the kept experts is refused' '
	test_fails 1 moe-convert --experts 0 -o x.gguf tiny.gguf &&
	grep -q "top-k 2 exceeds the 1 experts kept" "$TMPD/.ferr" &&
	test ! -e x.gguf
'

test_expect_success 'bad lists and options are usage errors or one-line failures' '
	test_fails 1 moe-convert --layers 9 -o x.gguf tiny.gguf &&
	test_fails 2 moe-convert --dtype q4_0 -o x.gguf tiny.gguf &&
	test_fails 2 moe-convert -o x.bin tiny.gguf &&
	test_fails 2 moe-convert --experts 1 --experts-file hot.txt -o x.gguf tiny.gguf &&
	test_fails 2 moe-convert tiny.gguf
'

test_expect_success 'unknown model_type for --init names the supported list' '
	printf "{\"model_type\": \"dbrx\"}" >dbrx.json &&
	test_fails 1 moe-convert --init dbrx.json -o x.gguf &&
	grep -q "model_type .dbrx. is not one of llama (mixtral)" "$TMPD/.ferr"
'

test_expect_success 'truncated input: one line, no output left' '
	head -c 100000 tiny.gguf >trunc.gguf &&
	test_fails 1 moe-convert -f safetensors -o t.safetensors trunc.gguf &&
	test ! -e t.safetensors && test -z "$(ls -A | grep "^\.t\.safetensors")"
'

test_expect_success 'full disk: one line, exit 1' '
	test_fails 1 moe-convert -f gguf -o /dev/full tiny.gguf &&
	grep -q "No space left" "$TMPD/.ferr"
'

test_expect_success 'closed pipe: silent failure' '
	moe-convert -f gguf -o - tiny.gguf 2>err | head -c 100 >/dev/null;
	test ! -s err
'

if have_shared; then
	test_expect_success 'every reference GGUF survives GGUF -> HF -> GGUF' '
		for m in "$SHARED"/ref/models/*-f32.gguf; do
			case $m in *dequant*) continue ;; esac
			rm -rf r && moe-convert -o r/ "$m" && moe-convert --force -o r.gguf r &&
			cmp "$m" r.gguf || exit 1
		done
	'
	test_expect_success 'quantized reference GGUFs convert to BF16 safetensors' '
		for m in "$SHARED"/ref/models/*-q4_0.gguf; do
			test -f "$m" || continue
			rm -rf q && moe-convert --dtype bf16 -o q/ "$m" &&
			moe-inspect -t q | grep -q "experts\.0\..*  *BF16" || exit 1
		done
	'
else
	test_skip 'reference GGUF round trips' "no $SHARED/ref"
fi

test_done
