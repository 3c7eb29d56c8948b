# moe-quantize end to end: types, rules, reports, pipes, refusals.
. "$SRC/tests/cli/lib.sh"

CFG=$SRC/tests/data/tiny-mixtral.json
moe-convert --init "$CFG" -o f32.gguf

test_expect_success 'q4_0 everywhere but norms and routers' '
	moe-quantize -t q4_0 -o q4.gguf f32.gguf &&
	moe-inspect -m -t q4.gguf >out &&
	grep -q "^blk.0.ffn_up_exps.weight  *Q4_0" out &&
	grep -q "^token_embd.weight  *Q4_0" out &&
	grep -q "^blk.0.ffn_gate_inp.weight  *F32" out &&
	grep -q "^blk.0.attn_norm.weight  *F32" out &&
	grep -q "^general.file_type	u32	2" out &&
	grep -q "^general.quantization_version	u32	2" out
'

test_expect_success 'class options and rules; first rule wins' '
	moe-quantize -t q4_0 --attn q8_0 --router f16 --rule "blk\\.1\\..*_exps=q8_0" \
		--rule "blk\\.1\\.=q5_0" -o mix.gguf f32.gguf &&
	moe-inspect -t mix.gguf >out &&
	grep -q "^blk.0.attn_q.weight  *Q8_0" out &&
	grep -q "^blk.0.ffn_gate_inp.weight  *F16" out &&
	grep -q "^blk.1.ffn_up_exps.weight  *Q8_0" out &&
	grep -q "^blk.1.attn_q.weight  *Q5_0" out &&
	grep -q "^blk.2.ffn_up_exps.weight  *Q4_0" out
'

test_expect_success 'K-quants fall back when rows are short, and the dry run says so' '
	moe-quantize -n -t q4_k f32.gguf >out &&
	grep -q "^# blk.0.ffn_down_exps.weight: row of 96 is not a multiple of Q4_K.s 256: Q5_0 instead" out &&
	grep -q "^routed_experts  *9 " out &&
	tail -n 1 out | grep -q "^total  *33 "
'

test_expect_success 'dry run as JSON; nothing written' '
	moe-quantize -n --json -t q8_0 -o never.gguf f32.gguf >out &&
	test ! -e never.gguf &&
	grep -q "\"total\":{\"tensors\":33" out &&
	grep -q "\"routed_experts\":{\"tensors\":9,\"params\":442368,\"bytes\":470016,\"bpw\":8.5" out
'

test_expect_success '--stats reports errors; exact types report no error' '
	moe-quantize --stats -t q8_0 -o q8.gguf f32.gguf >out &&
	grep "^blk.0.ffn_up_exps.weight  *Q8_0 " out | awk "{ exit !(\$3 > 0 && \$5 > 35 && \$5 < 60) }" &&
	grep "^blk.0.attn_norm.weight  *F32 " out | grep -q " 0  *0  *inf" &&
	moe-quantize -n --stats --json -t q4_0 f32.gguf | grep -q "\"snr_db\":null"
'

test_expect_success 'FP8 with 128x128 block scales, DeepSeek-V3 style, and back' '
	moe-quantize -t fp8 -f safetensors --stats -o fp8.safetensors f32.gguf >out &&
	grep "^model.layers.0.block_sparse_moe.experts.0.w1.weight  *F8_E4M3 " out |
		awk "{ exit !(\$5 > 25 && \$5 < 40) }" &&
	moe-inspect -t fp8.safetensors >out &&
	grep -q "^model.layers.2.block_sparse_moe.experts.7.w2.weight  *F8_E4M3  *\[64, 96\]" out &&
	grep -q "^model.layers.2.block_sparse_moe.experts.7.w2.weight_scale_inv  *F32  *\[1, 1\]" out &&
	grep -q "^lm_head.weight_scale_inv  *F32  *\[3, 1\]" out &&
	grep -q "^model.layers.0.block_sparse_moe.gate.weight  *F32" out &&
	moe-convert --dtype bf16 -o fp8back.gguf fp8.safetensors &&
	moe-inspect -t fp8back.gguf | grep -q "^blk.0.ffn_up_exps.weight  *BF16  *\[8, 96, 64\]" &&
	test_fails 1 moe-quantize -t fp8 -o x.gguf f32.gguf &&
	grep -q "GGUF cannot hold" "$TMPD/.ferr"
'

test_expect_success 'threads do not change the bytes' '
	moe-quantize -j 1 -t q4_k --experts q6_k -o j1.gguf f32.gguf &&
	moe-quantize -j 3 -t q4_k --experts q6_k -o j3.gguf f32.gguf &&
	cmp j1.gguf j3.gguf
'

test_expect_success 'HF input is renamed and quantized in one step, through a pipe' '
	moe-convert -o hf/ f32.gguf &&
	moe-quantize -t q4_0 -o fromhf.gguf hf && cmp q4.gguf fromhf.gguf &&
	cat f32.gguf | moe-quantize -t q4_0 -o - - >piped.gguf && cmp q4.gguf piped.gguf
'

test_expect_success 'presets' '
	moe-quantize -n --preset q4_k_m f32.gguf >out &&
	grep -q "^output_head" out &&
	test_fails 1 moe-quantize -n --preset q3_xxl f32.gguf
'

test_expect_success 'requantizing needs --allow-requantize' '
	test_fails 1 moe-quantize -t q8_0 -o rq.gguf q4.gguf &&
	grep -q "already Q4_0: requantizing to Q8_0" "$TMPD/.ferr" &&
	test ! -e rq.gguf &&
	moe-quantize --allow-requantize -t q8_0 -o rq.gguf q4.gguf
'

test_expect_success 'safetensors output holds only float types' '
	moe-quantize -f safetensors -t bf16 -o bf16.safetensors f32.gguf &&
	test_fails 1 moe-quantize -f safetensors -t q4_0 -o x.safetensors f32.gguf &&
	grep -q "safetensors cannot hold" "$TMPD/.ferr"
'

test_expect_success 'usage errors' '
	test_fails 2 moe-quantize -t q9_9 -o x.gguf f32.gguf &&
	test_fails 2 moe-quantize --rule nope -o x.gguf f32.gguf &&
	test_fails 2 moe-quantize -j 0 -o x.gguf f32.gguf &&
	test_fails 2 moe-quantize f32.gguf
'

test_expect_success 'bad input, full disk, closed pipe' '
	head -c 5000 f32.gguf >trunc.gguf &&
	test_fails 1 moe-quantize -o x.gguf trunc.gguf && test ! -e x.gguf &&
	test_fails 1 moe-quantize -o /dev/full f32.gguf &&
	moe-quantize -o - f32.gguf 2>err | head -c 10 >/dev/null; test ! -s err
'

if have_shared; then
	test_expect_success 'matches llama-quantize --pure on the reference models' '
		for m in llama-moe qwen2moe; do
			for t in q8_0 q4_0; do
				test -f "$SHARED/ref/models/$m-$t.gguf" || continue
				moe-quantize -t $t -o ours.gguf --force "$SHARED/ref/models/$m-f32.gguf" &&
				moe-inspect -j -t ours.gguf | tr "{" "\n" | grep "\"name\"" |
					sed "s/,\"file\".*//" | sort >a &&
				moe-inspect -j -t "$SHARED/ref/models/$m-$t.gguf" | tr "{" "\n" |
					grep "\"name\"" | sed "s/,\"file\".*//" | sort >b &&
				test_cmp b a || exit 1
			done
		done
	'
else
	test_skip 'llama-quantize comparison' "no $SHARED/ref"
fi

test_done
