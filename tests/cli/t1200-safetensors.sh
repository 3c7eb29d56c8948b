# moe-inspect on safetensors files, sharded directories (with and without index.json), pipes and bad input.
. "$SRC/tests/cli/lib.sh"

# st FILE JSON NDATA: a safetensors file with JSON as its header (padded to
# 8 bytes with spaces) and NDATA zero bytes of data.
st() {
	n=$(printf '%s' "$2" | wc -c)
	pad=$(( (8 - n % 8) % 8 ))
	h=$((n + pad))
	printf "$(printf '\\%03o\\%03o\\%03o\\%03o' $((h & 255)) $((h >> 8 & 255)) \
		$((h >> 16 & 255)) $((h >> 24 & 255)))\\000\\000\\000\\000" >"$1"
	printf '%s%*s' "$2" "$pad" '' >>"$1"
	head -c "$3" /dev/zero >>"$1"
}

# t NAME DTYPE SHAPE BEGIN END: one header entry
t() {
	printf '"%s":{"dtype":"%s","shape":[%s],"data_offsets":[%s,%s]}' "$1" "$2" "$3" "$4" "$5"
}

META='"__metadata__":{"format":"pt"}'
st one.safetensors "{$META,$(t model.embed_tokens.weight BF16 4,8 0 64),$(t model.norm.weight F32 8 64 96),$(t empty I8 0,3 96 96)}" 96

mkdir sharded
S1=model-00001-of-00002.safetensors
S2=model-00002-of-00002.safetensors
st sharded/$S1 "{$META,$(t model.layers.0.mlp.experts.0.up_proj.weight BF16 16,8 0 256),$(t model.layers.0.mlp.experts.1.up_proj.weight BF16 16,8 256 512)}" 512
st sharded/$S2 "{$META,$(t model.layers.0.mlp.gate.weight F32 2,8 0 64),$(t lm_head.weight F16 32,8 64 576)}" 576
# index NAME=SHARD...: writes sharded/model.safetensors.index.json (total_size from $TOTAL)
index() {
	{
		printf '{\n  "metadata": {\n    "total_size": %s\n  },\n  "weight_map": {' "${TOTAL:-1088}"
		sep=
		for kv in "$@"; do
			printf '%s\n    "%s": "%s"' "$sep" "${kv%%=*}" "${kv#*=}"
			sep=,
		done
		printf '\n  }\n}\n'
	} >sharded/model.safetensors.index.json
}
E0=model.layers.0.mlp.experts.0.up_proj.weight
E1=model.layers.0.mlp.experts.1.up_proj.weight
GATE=model.layers.0.mlp.gate.weight
GOOD="$E0=$S1 $E1=$S1 $GATE=$S2 lm_head.weight=$S2"
index $GOOD

test_expect_success 'single file: summary line' '
	moe-inspect one.safetensors >out &&
	test_golden st-summary out
'

test_expect_success 'single file: tensor table in header order' '
	moe-inspect --tensors one.safetensors >out &&
	test_golden st-tensors out
'

test_expect_success 'single file: __metadata__ strings' '
	moe-inspect --metadata one.safetensors >out &&
	grep -q "^format	string	\"pt\"$" out
'

test_expect_success 'json: format, tensors and only the header read' '
	moe-inspect --json --tensors one.safetensors >out &&
	grep -q "\"format\":\"safetensors\"" out &&
	grep -q "{\"name\":\"model.norm.weight\",\"dtype\":\"F32\",\"shape\":\[8\],\"bytes\":32,\"file\":0,\"offset\":320}" out
'

test_expect_success 'pipe: same listing from standard input' '
	cat one.safetensors | moe-inspect -t - >out &&
	sed "1s/^one.safetensors:/<stdin>:/" "$GOLDEN/st-tensors" >expect &&
	test_cmp expect out &&
	cat one.safetensors | moe-inspect -j - >out &&
	grep -q "\"source\":\[\"stream\"\]" out
'

test_expect_success 'sharded directory with index: listing' '
	moe-inspect -t sharded >out &&
	test_golden st-sharded out
'

test_expect_success 'sharded directory: index source' '
	moe-inspect -j sharded >out &&
	grep -q "\"source\":\[\"directory\",\"index\"\]" out
'

test_expect_success 'listing reads the headers and the index, not the data' '
	mkdir big &&
	long=$(printf "%5000s" "" | tr " " x) &&
	st big/s1.safetensors "{\"__metadata__\":{\"pad\":\"$long\"},$(t a U8 1048576 0 1048576)}" 1048576 &&
	st big/s2.safetensors "{\"__metadata__\":{\"pad\":\"$long\"},$(t b U8 1048576 0 1048576)}" 1048576 &&
	printf "{\"weight_map\":{\"a\":\"s1.safetensors\",\"b\":\"s2.safetensors\"}}" \
		>big/model.safetensors.index.json &&
	moe-inspect -j big >out &&
	h1=$(($(wc -c <big/s1.safetensors) - 1048576)) &&
	h2=$(($(wc -c <big/s2.safetensors) - 1048576)) &&
	ix=$(wc -c <big/model.safetensors.index.json) &&
	grep -q "\"bytes_read\":$((h1 + h2 + ix))," out
'

test_expect_success 'index.json named directly' '
	moe-inspect -t sharded/model.safetensors.index.json >out &&
	sed "1s|^sharded:|sharded/model.safetensors.index.json:|" "$GOLDEN/st-sharded" >expect &&
	test_cmp expect out
'

test_expect_success 'directory without index: every safetensors file' '
	mkdir noindex &&
	cp sharded/$S1 sharded/$S2 noindex/ &&
	moe-inspect -j -t noindex >out &&
	grep -q "\"source\":\[\"directory\"\]" out &&
	grep -q "\"tensor_count\":4," out
'

test_expect_success 'bad: header length beyond the file' '
	printf "\377\000\000\000\000\000\000\000{}" >long.safetensors &&
	test_fails 1 moe-inspect long.safetensors &&
	echo "moe-inspect: long.safetensors: header length 255 is larger than the file (10 bytes)" >expect &&
	test_cmp expect "$TMPD/.ferr"
'

test_expect_success 'bad: huge header length' '
	printf "\377\377\377\377\377\377\377\177{}" >huge.safetensors &&
	test_fails 1 moe-inspect huge.safetensors &&
	echo "moe-inspect: huge.safetensors: header length 9223372036854775807 is over the 100 MB limit" >expect &&
	test_cmp expect "$TMPD/.ferr"
'

test_expect_success 'bad: truncated data' '
	head -c 300 one.safetensors >cut.safetensors &&
	test_fails 1 moe-inspect cut.safetensors &&
	grep -q "^moe-inspect: cut.safetensors: tensor .model.embed_tokens.weight.: data_offsets \[0, 64\] lie outside the 44-byte data buffer$" "$TMPD/.ferr"
'

test_expect_success 'bad: truncated header' '
	head -c 40 one.safetensors >cut2.safetensors &&
	test_fails 1 moe-inspect cut2.safetensors &&
	grep -q "cut2.safetensors: header length 248 is larger than the file (40 bytes)" "$TMPD/.ferr"
'

test_expect_success 'bad: unsupported dtype' '
	st f4.safetensors "{$(t w F4 2 0 1)}" 1 &&
	test_fails 1 moe-inspect f4.safetensors &&
	echo "moe-inspect: f4.safetensors: tensor '\''w'\'' has unsupported dtype '\''F4'\''" >expect &&
	test_cmp expect "$TMPD/.ferr"
'

test_expect_success 'bad: span does not match shape and dtype' '
	st span.safetensors "{$(t w F32 2,2 0 12)}" 12 &&
	test_fails 1 moe-inspect span.safetensors &&
	grep -q "tensor .w.: data_offsets span 12 bytes but shape and dtype F32 need 16" "$TMPD/.ferr"
'

test_expect_success 'bad: overlapping tensors' '
	st over.safetensors "{$(t a F32 2 0 8),$(t b F32 2 4 12)}" 12 &&
	test_fails 1 moe-inspect over.safetensors &&
	grep -q "tensor .b. overlaps tensor .a. in the data buffer" "$TMPD/.ferr"
'

test_expect_success 'bad: hole in the data buffer' '
	st gap.safetensors "{$(t a F32 2 0 8),$(t b F32 2 16 24)}" 24 &&
	test_fails 1 moe-inspect gap.safetensors &&
	grep -q "gap in the data buffer at offset 8 (before tensor .b.)" "$TMPD/.ferr"
'

test_expect_success 'bad: duplicate key, non-string metadata, bad UTF-8' '
	st dup.safetensors "{$(t a F32 1 0 4),$(t a F32 1 0 4)}" 4 &&
	test_fails 1 moe-inspect dup.safetensors &&
	grep -q "invalid header JSON.*duplicate" "$TMPD/.ferr" &&
	st meta.safetensors "{\"__metadata__\":{\"n\":1}}" 0 &&
	test_fails 1 moe-inspect meta.safetensors &&
	grep -q "__metadata__ value of .n. is not a string" "$TMPD/.ferr" &&
	st utf.safetensors "{$(t "$(printf "\377")" F32 1 0 4)}" 4 &&
	test_fails 1 moe-inspect utf.safetensors &&
	grep -q "invalid header JSON" "$TMPD/.ferr"
'

test_expect_success 'bad: the same refusal through a pipe' '
	cat over.safetensors | test_fails 1 moe-inspect - &&
	grep -q "^moe-inspect: <stdin>: tensor .b. overlaps tensor .a." "$TMPD/.ferr"
'

test_expect_success 'bad: a pipe that ends inside the header' '
	printf "\000\000\000\001\000\000\000\000{\"a\":" | test_fails 1 moe-inspect - &&
	echo "moe-inspect: <stdin>: truncated header (16777216 bytes announced)" >expect &&
	test_cmp expect "$TMPD/.ferr"
'

test_expect_success 'index: missing shard' '
	index $GOOD extra=model-00009-of-00009.safetensors &&
	test_fails 1 moe-inspect sharded &&
	echo "moe-inspect: sharded: missing shard '\''model-00009-of-00009.safetensors'\''" >expect &&
	test_cmp expect "$TMPD/.ferr"
'

test_expect_success 'index: path traversal refused' '
	index $GOOD x=../one.safetensors &&
	test_fails 1 moe-inspect sharded &&
	grep -q "shard name .\.\./one.safetensors. of tensor .x. is not a plain file name (refusing path traversal)" "$TMPD/.ferr"
'

test_expect_success 'index: tensor listed in the wrong shard' '
	index $E0=$S2 $E1=$S1 $GATE=$S2 lm_head.weight=$S2 &&
	test_fails 1 moe-inspect sharded &&
	grep -q "tensor .$E0. is in shard .$S1. but the index lists it in .$S2." "$TMPD/.ferr"
'

test_expect_success 'index: tensor in a shard but not listed' '
	index $E0=$S1 $GATE=$S2 lm_head.weight=$S2 &&
	test_fails 1 moe-inspect sharded &&
	grep -q "tensor .$E1. in shard .$S1. is not listed in the index" "$TMPD/.ferr"
'

test_expect_success 'index: total_size mismatch' '
	TOTAL=1000 index $GOOD &&
	test_fails 1 moe-inspect sharded &&
	grep -q "metadata.total_size is 1000 but the shards hold 1088 bytes" "$TMPD/.ferr"
'

test_expect_success 'index: a broken shard is named' '
	index $GOOD &&
	head -c 100 sharded/$S2 >sharded/cut && mv sharded/cut sharded/$S2 &&
	test_fails 1 moe-inspect sharded &&
	grep -q "^moe-inspect: sharded: $S2: header length" "$TMPD/.ferr"
'

test_done
