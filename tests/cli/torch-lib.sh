# Shell helpers that write torch.save-layout zips byte by byte (sourced by t1300 and t1400).

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

# bytes FIRST N: N bytes counting up from FIRST (mod 256)
bytes() {
	b=$1
	end=$(($1 + $2))
	while [ "$b" -lt "$end" ]; do
		printf "$(printf '\\%03o' $((b & 255)))"
		b=$((b + 1))
	done
}

# mkpt OUT: a small state dict: embed (4,3) F32, its transpose (a strided
# view of the same storage), a bias viewing a HalfStorage from offset 2, a
# tied copy of embed. Storage bytes count up: 1..48 and 101..112. Works in a scratch directory next to OUT.
mkpt() {
	rm -rf mkpt.tmp && mkdir -p mkpt.tmp/archive/data && (
		cd mkpt.tmp &&
		{
			printf '\200\002ccollections\nOrderedDict\n)R('
			str model.embed_tokens.weight; tensor 0 FloatStorage 12 0 "4 3" "3 1"
			str model.embed_tokens.weight_t; tensor 0 FloatStorage 12 0 "3 4" "1 3"
			str model.norm.bias; tensor 1 HalfStorage 6 2 "4" "1"
			str lm_head.weight; tensor 0 FloatStorage 12 0 "4 3" "3 1"
			printf 'u.'
		} >archive/data.pkl &&
		printf little >archive/byteorder &&
		bytes 1 48 >archive/data/0 &&
		bytes 101 12 >archive/data/1 &&
		printf '3\n' >archive/version &&
		mkzip model.pt archive/data.pkl archive/byteorder archive/data/0 archive/data/1 archive/version
	) && mv mkpt.tmp/model.pt "$1" && mv mkpt.tmp/archive . && rm -rf mkpt.tmp
}
