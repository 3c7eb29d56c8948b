# moe-inspect on PyTorch zip checkpoints (torch.save layout) built here byte by byte: files, pipes, hostile and broken input.
. "$SRC/tests/cli/lib.sh"

. "$SRC/tests/cli/torch-lib.sh"

mkpt model.pt

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

# data OUT.safetensors NAME: the bytes of tensor NAME (offset and size from the listing)
data() {
	moe-inspect -t "$1" | awk -v n="$2" '$1 == n { print $(NF - 2), $NF }' >pos &&
	read -r size off <pos &&
	tail -c +$((off + 1)) "$1" | head -c "$size"
}

# The transposed view, gathered: element (i, j) of embed.T is float i + 3j.
for i in 0 1 2; do for j in 0 1 2 3; do bytes $((4 * (i + 3 * j) + 1)) 4; done; done >want.t
bytes 1 48 >want.w
bytes 105 8 >want.b

for how in file pipe tar; do
	test_expect_success "values survive moe-convert to safetensors ($how)" '
		case $how in
		file) moe-convert -o out-$how.safetensors model.pt ;;
		pipe) cat model.pt | moe-convert -o out-$how.safetensors - ;;
		tar) tar -cf - model.pt | moe-convert -o out-$how.safetensors - ;;
		esac &&
		data out-$how.safetensors model.embed_tokens.weight >got && cmp want.w got &&
		data out-$how.safetensors lm_head.weight >got && cmp want.w got &&
		data out-$how.safetensors model.embed_tokens.weight_t >got && cmp want.t got &&
		data out-$how.safetensors model.norm.bias >got && cmp want.b got
	'
done

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
