# moe-inspect on PyTorch zip checkpoints (torch.save layout) built here byte by byte: files, pipes, hostile and broken input.
. "$SRC/tests/cli/lib.sh"

# le N BYTES: N as BYTES little-endian bytes
le() {
	n=$1
	i=0
	while [ "$i" -lt "$2" ]; do
		printf "$(printf '\\%03o' $((n & 255)))"
		n=$((n >> 8))
		i=$((i + 1))
	done
}

# str TEXT: pickle BINUNICODE (ASCII text)
str() {
	printf 'X'
	le ${#1} 4
	printf '%s' "$1"
}

# int N: pickle BININT
int() {
	printf 'J'
	le "$1" 4
}

# tensor KEY STORAGE_TYPE NUMEL OFFSET "SIZE..." "STRIDE...": what torch.save
# writes for one tensor: _rebuild_tensor_v2(persistent storage id,
# storage_offset, size, stride, requires_grad=False, OrderedDict())
tensor() {
	printf 'ctorch._utils\n_rebuild_tensor_v2\n(('
	str storage
	printf 'ctorch\n%s\n' "$2"
	str "$1"
	str cpu
	int "$3"
	printf 'tQ'
	int "$4"
	printf '('
	for d in $5; do int "$d"; done
	printf 't('
	for d in $6; do int "$d"; done
	printf 't\211ccollections\nOrderedDict\n)RtR'
}

# crc FILE: zip CRC-32 of FILE, 4 bytes little-endian (gzip's trailer has it)
crc() {
	gzip -c <"$1" | tail -c 8 | head -c 4
}

# mkzip OUT FILE...: a zip of stored entries in the given order, as
# PyTorchStreamWriter writes them (without its 64-byte padding)
mkzip() {
	out=$1
	shift
	: >"$out"
	: >cd.tmp
	cnt=0
	for f in "$@"; do
		size=$(($(wc -c <"$f")))
		off=$(($(wc -c <"$out")))
		{
			printf 'PK\003\004'; le 20 2; le 0 2; le 0 2; le 0 4
			crc "$f"; le "$size" 4; le "$size" 4; le ${#f} 2; le 0 2
			printf '%s' "$f"
			cat "$f"
		} >>"$out"
		{
			printf 'PK\001\002'; le 20 2; le 20 2; le 0 2; le 0 2; le 0 4
			crc "$f"; le "$size" 4; le "$size" 4; le ${#f} 2; le 0 6; le 0 2; le 0 4
			le "$off" 4
			printf '%s' "$f"
		} >>cd.tmp
		cnt=$((cnt + 1))
	done
	cdoff=$(($(wc -c <"$out")))
	cdsize=$(($(wc -c <cd.tmp)))
	cat cd.tmp >>"$out"
	{ printf 'PK\005\006'; le 0 4; le "$cnt" 2; le "$cnt" 2; le "$cdsize" 4; le "$cdoff" 4; le 0 2; } >>"$out"
	rm -f cd.tmp
}

# A state dict: embed (4,3) F32, its transpose (a strided view of the same
# storage), a bias viewing a HalfStorage from offset 2, a tied copy of embed.
mkdir -p archive/data
{
	printf '\200\002ccollections\nOrderedDict\n)R('
	str model.embed_tokens.weight; tensor 0 FloatStorage 12 0 "4 3" "3 1"
	str model.embed_tokens.weight_t; tensor 0 FloatStorage 12 0 "3 4" "1 3"
	str model.norm.bias; tensor 1 HalfStorage 6 2 "4" "1"
	str lm_head.weight; tensor 0 FloatStorage 12 0 "4 3" "3 1"
	printf 'u.'
} >archive/data.pkl
printf little >archive/byteorder
head -c 48 /dev/zero >archive/data/0
head -c 12 /dev/zero >archive/data/1
printf '3\n' >archive/version
mkzip model.pt archive/data.pkl archive/byteorder archive/data/0 archive/data/1 archive/version

test_expect_success 'listing: names, dtypes, shapes of a torch.save zip' '
	moe-inspect -t model.pt >out &&
	test_golden torch-tensors out
'

test_expect_success 'json: format pytorch' '
	moe-inspect --json model.pt >out &&
	grep -q "\"format\":\"pytorch\"" out
'

test_expect_success 'pipe: same tensors from standard input' '
	cat model.pt | moe-inspect -t - >out &&
	test_golden torch-tensors-pipe out &&
	sed -n "2,\$p" out | cut -c1-60 >a &&
	moe-inspect -t model.pt | sed -n "2,\$p" | cut -c1-60 >b &&
	test_cmp b a
'

test_expect_success 'a pickle that would run a command is refused, nothing runs' '
	mkdir -p evil/archive &&
	{
		printf "\\200\\002cos\\nsystem\\n"
		str "touch $TMPD/pwned"
		printf "\\205R."
	} >evil/archive/data.pkl &&
	(cd evil && mkzip ../evil.pt archive/data.pkl) &&
	test_fails 1 moe-inspect evil.pt &&
	last_err | grep -q "^moe-inspect: evil.pt: refusing pickle GLOBAL .os system. (only torch state-dict types are allowed)$" &&
	test ! -e "$TMPD/pwned"
'

test_expect_success 'STACK_GLOBAL of builtins.eval is refused too' '
	mkdir -p evil2/archive &&
	printf "\\200\\004\\214\\010builtins\\214\\004eval\\223X\\001\\000\\000\\0001\\205R." \
		>evil2/archive/data.pkl &&
	(cd evil2 && mkzip ../evil2.pt archive/data.pkl) &&
	test_fails 1 moe-inspect evil2.pt &&
	last_err | grep -q "refusing pickle GLOBAL .builtins eval."
'

test_expect_success 'truncated zip: one line, exit 1' '
	head -c 300 model.pt >cut.pt &&
	test_fails 1 moe-inspect cut.pt &&
	head -c 100 model.pt >cut2.pt &&
	test_fails 1 moe-inspect cut2.pt
'

test_expect_success 'missing storage member' '
	mkzip nostorage.pt archive/data.pkl archive/byteorder archive/data/0 &&
	test_fails 1 moe-inspect nostorage.pt &&
	last_err | grep -q "storage member .archive/data/1. is missing"
'

test_expect_success 'big-endian checkpoint is refused' '
	mkdir -p be/archive &&
	cp archive/data.pkl be/archive/ &&
	printf big >be/archive/byteorder &&
	(cd be && mkzip ../be.pt archive/data.pkl archive/byteorder) &&
	test_fails 1 moe-inspect be.pt &&
	last_err | grep -q "big-endian"
'

test_expect_success 'legacy (pre-1.6, not zip) torch file' '
	printf "\\200\\002\\212\\012l\\374\\234F\\371 j\\250P\\031." >legacy.pt &&
	test_fails 1 moe-inspect legacy.pt &&
	last_err | grep -q "unsupported legacy format"
'

test_expect_success 'empty file' '
	: >empty.pt &&
	test_fails 1 moe-inspect empty.pt
'

test_done
