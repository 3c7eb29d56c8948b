# moe-inspect on GGUF files built here byte by byte: listings, every header section cut short, bad headers, pipes, reference models.
. "$SRC/tests/cli/lib.sh"
LC_ALL=C
export LC_ALL

# le VALUE NBYTES: VALUE (0 <= VALUE < 2^63) as NBYTES little-endian bytes
le() {
	v=$1 n=$2 s=
	while [ "$n" -gt 0 ]; do
		s="$s\\$(printf '%03o' $((v & 255)))"
		v=$((v >> 8))
		n=$((n - 1))
	done
	printf "$s"
}

# gstr S: a GGUF string (u64 length, bytes)
gstr() {
	le ${#1} 8
	printf '%s' "$1"
}

# hdr VERSION N_TENSORS N_KV
hdr() {
	printf 'GGUF'
	le "$1" 4
	le "$2" 8
	le "$3" 8
}

# pad FILE: zero bytes up to a multiple of 32
pad() {
	n=$(wc -c <"$1")
	head -c $(( (32 - n % 32) % 32 )) /dev/zero >>"$1"
}

# The sample file, kept as sections so that cuts can land on their edges.
hdr 3 2 3 >s-hdr
{
	gstr general.architecture; le 8 4; gstr llama
	gstr llama.block_count; le 4 4; le 2 4
	gstr tokenizer.ggml.tokens; le 9 4; le 8 4; le 3 8; gstr a; gstr bc; gstr ''
} >s-kv
{
	gstr token_embd.weight; le 2 4; le 4 8; le 2 8; le 0 4; le 0 8
} >s-ti1
{
	# Q8_0 (ggml type 8), ggml ne {32, 2, 2}: 4 blocks of 34 bytes
	gstr blk.0.ffn_up_exps.weight; le 3 4; le 32 8; le 2 8; le 2 8; le 8 4; le 32 8
} >s-ti2
cat s-hdr s-kv s-ti1 s-ti2 >s-head
cp s-head sample.gguf
pad sample.gguf
i=0; while [ $i -lt 168 ]; do printf '\001'; i=$((i + 1)); done >>sample.gguf
pad sample.gguf

size() { wc -c <"$1" | tr -d ' '; }
HDR=$(size s-hdr)
KV_END=$((HDR + $(size s-kv)))
TI1_END=$((KV_END + $(size s-ti1)))
INFO_END=$(size s-head)
DATA=$(( (INFO_END + 31) / 32 * 32 ))

test_expect_success 'sample: sizes are as built' '
	test "$(size sample.gguf)" = $((DATA + 192))
'

test_expect_success 'summary line' '
	moe-inspect sample.gguf | head -n 1 >out &&
	echo "sample.gguf: gguf, 1 file, 2 tensors, 136 parameters, 168 bytes of tensor data" >expect &&
	test_cmp expect out
'

test_expect_success 'tensor listing: shapes outermost first, absolute offsets' '
	moe-inspect --tensors sample.gguf >out &&
	test_golden gguf-tensors out &&
	grep -q "^blk.0.ffn_up_exps.weight  Q8_0     \[2, 2, 32\]  *136  *0  $((DATA + 32))$" out
'

test_expect_success 'metadata listing keeps file order and types' '
	moe-inspect --metadata sample.gguf >out &&
	test_golden gguf-metadata out
'

test_expect_success 'JSON report' '
	moe-inspect --json --tensors --metadata sample.gguf >out &&
	test_golden gguf-json out
'

test_expect_success 'through a pipe: same listing, stream source' '
	moe-inspect --tensors sample.gguf | tail -n +2 >expect &&
	cat sample.gguf | moe-inspect --tensors - >out &&
	head -n 1 out | grep -q "^<stdin>: gguf, 1 file, 2 tensors" &&
	tail -n +2 out >out2 &&
	test_cmp expect out2 &&
	cat sample.gguf | moe-inspect --json - | grep -q "\"source\":\[\"stream\"\]"
'

test_expect_success 'version 2 reads like version 3' '
	{ hdr 2 2 3; cat s-kv s-ti1 s-ti2; } >v2.gguf && pad v2.gguf &&
	tail -c 192 sample.gguf >>v2.gguf &&
	moe-inspect --tensors v2.gguf | tail -n +2 >out &&
	moe-inspect --tensors sample.gguf | tail -n +2 >expect &&
	test_cmp expect out
'

# cut N NAME: the first N bytes of sample.gguf
cut_at() {
	head -c "$1" sample.gguf >"$2"
}

# fails_with FILE MESSAGE: exit 1, exactly "moe-inspect: FILE: MESSAGE"
fails_with() {
	test_fails 1 moe-inspect "$1" &&
	echo "moe-inspect: $1: $2" >expect &&
	test_cmp expect "$TMPD/.ferr"
}

test_expect_success 'cut: empty and inside the magic' '
	cut_at 0 c0.gguf && fails_with c0.gguf "empty input" &&
	cut_at 3 c3.gguf && fails_with c3.gguf "not a checkpoint (unknown format)"
'

test_expect_success 'cut: inside the counts' '
	cut_at 10 c10.gguf && fails_with c10.gguf "truncated GGUF header"
'

test_expect_success 'cut: after the header, counts cannot fit' '
	cut_at $HDR ch.gguf &&
	fails_with ch.gguf "header says 2 tensors and 3 metadata keys, more than the remaining 0 bytes can hold"
'

test_expect_success 'cut: inside a metadata value' '
	cut_at $((KV_END - 5)) ckv.gguf &&
	fails_with ckv.gguf "truncated metadata key '\''tokenizer.ggml.tokens'\'' (array of 3 items)"
'

test_expect_success 'cut: after the metadata' '
	cut_at $KV_END ckve.gguf && fails_with ckve.gguf "truncated tensor info #1"
'

test_expect_success 'cut: inside a tensor info' '
	cut_at $((TI1_END + 8 + 24 + 6)) cti.gguf &&
	fails_with cti.gguf "truncated tensor info for '\''blk.0.ffn_up_exps.weight'\''"
'

test_expect_success 'cut: after the tensor infos and inside the data' '
	cut_at $INFO_END cinfo.gguf &&
	fails_with cinfo.gguf "truncated tensor '\''token_embd.weight'\'' (its data ends at byte $((DATA + 32)), the file has $INFO_END)" &&
	cut_at $((DATA + 100)) cdata.gguf &&
	fails_with cdata.gguf "truncated tensor '\''blk.0.ffn_up_exps.weight'\'' (its data ends at byte $((DATA + 168)), the file has $((DATA + 100)))"
'

test_expect_success 'cut: a pipe cannot see a short data section, but a short header it can' '
	head -c $KV_END sample.gguf | test_fails 1 moe-inspect - &&
	echo "moe-inspect: <stdin>: truncated tensor info #1" >expect &&
	test_cmp expect "$TMPD/.ferr"
'

test_expect_success 'bad: wrong magic' '
	{ printf GGUX; tail -c +5 sample.gguf; } >magic.gguf &&
	fails_with magic.gguf "not a checkpoint (unknown format)"
'

test_expect_success 'bad: big-endian file' '
	{ printf "GGUF\000\000\000\003"; tail -c +9 sample.gguf; } >be.gguf &&
	fails_with be.gguf "big-endian GGUF is not supported"
'

test_expect_success 'bad: versions 1 and 4' '
	{ hdr 1 0 0; } >v1.gguf &&
	fails_with v1.gguf "GGUF version 1 is not supported (this reads 2 and 3)" &&
	{ hdr 4 0 0; } >v4.gguf &&
	fails_with v4.gguf "GGUF version 4 is not supported (this reads 2 and 3)"
'

test_expect_success 'bad: huge counts' '
	{ hdr 3 1000000000000000000 0; } >nt.gguf &&
	fails_with nt.gguf "header says 1000000000000000000 tensors (at most 16777216)" &&
	{ hdr 3 0 4611686018427387904; } >nkv.gguf &&
	fails_with nkv.gguf "header says 4611686018427387904 metadata keys (at most 8192)" &&
	{ hdr 3 1000 0; cat s-ti1; } >ntsmall.gguf &&
	fails_with ntsmall.gguf "header says 1000 tensors and 0 metadata keys, more than the remaining 57 bytes can hold"
'

test_expect_success 'bad: huge string length' '
	{ hdr 3 0 1; le 4611686018427387904 8; printf abcdefgh; } >str.gguf &&
	fails_with str.gguf "metadata key #1: string of 4611686018427387904 bytes (at most 65536)"
'

test_expect_success 'bad: unknown ggml type, too many dimensions' '
	{ hdr 3 1 0; gstr w; le 1 4; le 4 8; le 41 4; le 0 8; } >ty.gguf && pad ty.gguf &&
	head -c 32 /dev/zero >>ty.gguf &&
	fails_with ty.gguf "tensor '\''w'\'' has unknown ggml type 41" &&
	{ hdr 3 1 0; gstr w; le 9 4; i=0; while [ $i -lt 9 ]; do le 1 8; i=$((i + 1)); done; le 0 4; le 0 8; } >nd.gguf &&
	pad nd.gguf && head -c 32 /dev/zero >>nd.gguf &&
	fails_with nd.gguf "tensor '\''w'\'' has 9 dimensions (GGUF allows 4)"
'

test_expect_success 'bad: misaligned and overlapping offsets' '
	{ hdr 3 1 0; gstr w; le 1 4; le 4 8; le 0 4; le 8 8; } >mis.gguf && pad mis.gguf &&
	head -c 64 /dev/zero >>mis.gguf &&
	fails_with mis.gguf "tensor '\''w'\'' has offset 8, not a multiple of the alignment 32" &&
	{ hdr 3 2 0; gstr a; le 1 4; le 16 8; le 0 4; le 0 8; gstr b; le 1 4; le 4 8; le 0 4; le 32 8; } >ov.gguf &&
	pad ov.gguf && head -c 64 /dev/zero >>ov.gguf &&
	fails_with ov.gguf "tensors '\''a'\'' and '\''b'\'' overlap"
'

test_expect_success 'bad: the same refusal through a pipe' '
	cat ty.gguf | test_fails 1 moe-inspect - &&
	echo "moe-inspect: <stdin>: tensor '\''w'\'' has unknown ggml type 41" >expect &&
	test_cmp expect "$TMPD/.ferr"
'

if have_shared; then
	README=$SHARED/ref/README.md
	for f in "$SHARED"/ref/models/*.gguf; do
		b=$(basename "$f")
		test_expect_success "reference model $b: listing" '
			moe-inspect --tensors "$f" >out &&
			n=$(head -n 1 out | sed "s/.* \([0-9]*\) tensors.*/\1/") &&
			test $(wc -l <out) = $((n + 2)) &&
			! grep -v -e "^name " -e "  0  [0-9]*$" -e ": gguf, 1 file, " out
		'
		row=$(grep "^| $b |" "$README")
		if [ -n "$row" ]; then
			want=$(printf '%s\n' "$row" | awk -F'|' '{ print $(NF - 2) }' | sed 's|/.*||; s/[ ,]//g')
			test_expect_success "reference model $b: parameters as the README says" '
				cat "$f" | moe-inspect - >out &&
				grep -q ", $want parameters," out
			'
		fi
	done
else
	test_skip 'reference models' "no $SHARED/ref"
fi

test_done
