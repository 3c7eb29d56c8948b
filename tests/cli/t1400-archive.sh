# moe-inspect on checkpoints inside tar, tar.gz, tar.xz, tar.zst and zip archives, from files and pipes.
. "$SRC/tests/cli/lib.sh"
. "$SRC/tests/cli/torch-lib.sh"

# st FILE JSON NDATA: a safetensors file with JSON as its header (space
# padded to 8 bytes) and NDATA zero bytes of data.
st() {
	n=$(printf '%s' "$2" | wc -c)
	pad=$(( (8 - n % 8) % 8 ))
	h=$((n + pad))
	le "$h" 8 >"$1"
	printf '%s%*s' "$2" "$pad" '' >>"$1"
	head -c "$3" /dev/zero >>"$1"
}

S1=model-00001-of-00002.safetensors
S2=model-00002-of-00002.safetensors
mkdir -p model
st model/$S1 '{"model.layers.0.mlp.experts.0.up_proj.weight":{"dtype":"BF16","shape":[16,8],"data_offsets":[0,256]}}' 256
st model/$S2 '{"model.norm.weight":{"dtype":"F32","shape":[4,8],"data_offsets":[0,128]}}' 128
printf '{"weight_map":{"model.layers.0.mlp.experts.0.up_proj.weight":"%s","model.norm.weight":"%s"}}\n' \
	$S1 $S2 >model/model.safetensors.index.json
cp "$SRC/examples/configs/mixtral-8x7b.json" model/config.json
printf 'not a checkpoint\n' >model/README.md
mkpt model/pytorch_model.bin

have() { command -v "$1" >/dev/null 2>&1; }
# member order (and so the listing) must not depend on readdir order
TS=
tar --sort=name -cf /dev/null model 2>/dev/null && TS=--sort=name

test_expect_success 'tar on a pipe: every member listed, names archive:member' '
	tar $TS -cf - model | moe-inspect -t - >out &&
	test_golden archive-tar-pipe out &&
	tar $TS -cf - model | moe-inspect -j - >out &&
	grep -q "<stdin>:model/$S1" out &&
	grep -q "<stdin>:model/pytorch_model.bin" out
'

test_expect_success 'tar.gz file: same tensors, source archive in json' '
	tar $TS -czf model.tgz model &&
	moe-inspect -t model.tgz >out &&
	sed -n "2,\$p" out | cut -c1-60 >a &&
	tar $TS -cf - model | moe-inspect -t - | sed -n "2,\$p" | cut -c1-60 >b &&
	test_cmp b a &&
	moe-inspect -j model.tgz >out &&
	grep -q "\"archive\"" out &&
	grep -q "mixtral" out
'

if have xz; then
	test_expect_success 'tar.xz on a pipe' '
		tar $TS -cJf - model | moe-inspect -t - >out &&
		grep -q "^<stdin>: mixed, .*, 6 tensors" out
	'
else
	test_skip 'tar.xz on a pipe' 'xz not installed'
fi

if have zstd; then
	test_expect_success 'tar.zst file and pipe' '
		tar $TS -cf - model | zstd -q -c >model.tar.zst &&
		moe-inspect -t model.tar.zst >out &&
		grep -q "model.tar.zst: mixed, .*, 6 tensors" out &&
		zstd -q -c <model.tar.zst | cat >/dev/null &&
		cat model.tar.zst | moe-inspect - >out &&
		grep -q "6 tensors" out
	'
else
	test_skip 'tar.zst file and pipe' 'zstd not installed'
fi

if have zip; then
	mkzipdir() { rm -f "$1" && zip -q -r "$1" model; }
elif have bsdtar; then
	mkzipdir() { rm -f "$1" && bsdtar --format zip -cf "$1" model; }
else
	mkzipdir() { return 1; }
fi
if have zip || have bsdtar; then
	test_expect_success 'zip of a model directory (not a torch zip): file and pipe' '
		mkzipdir model.zip &&
		moe-inspect -t model.zip >out &&
		grep -q "model.zip: mixed, .*, 6 tensors" out &&
		grep -q "^model.norm.weight " out &&
		cat model.zip | moe-inspect -t - >out &&
		grep -q "^model.embed_tokens.weight_t " out
	'
else
	test_skip 'zip of a model directory' 'neither zip nor bsdtar installed'
fi

test_expect_success 'archive without a checkpoint: one line, exit 1' '
	mkdir -p empty && printf "hello\n" >empty/README.md &&
	tar $TS -cf none.tar empty &&
	test_fails 1 moe-inspect none.tar &&
	last_err | grep -q "^moe-inspect: none.tar: no checkpoint in archive$" &&
	tar $TS -cf - empty | test_fails 1 moe-inspect -
'

test_expect_success 'config.json only: a config, no tensors' '
	mkdir -p cfg && cp model/config.json cfg/ &&
	tar $TS -czf cfg.tgz cfg &&
	moe-inspect cfg.tgz >out &&
	grep -q "config" out
'

test_expect_success 'corrupt and truncated archives: one line, exit 1' '
	head -c $(($(wc -c <model.tgz) / 2)) model.tgz >cut.tgz &&
	test_fails 1 moe-inspect cut.tgz &&
	{ printf "\\037\\213\\010\\000"; head -c 500 /dev/zero; } >garbage.gz &&
	test_fails 1 moe-inspect garbage.gz &&
	tar $TS -cf model.tar model &&
	head -c 3000 model.tar | test_fails 1 moe-inspect -
'

test_expect_success 'index naming a shard that is not in the archive' '
	mkdir -p half && cp model/$S1 model/model.safetensors.index.json half/ &&
	tar $TS -cf half.tar half &&
	test_fails 1 moe-inspect half.tar &&
	last_err | grep -q "names shard .half/$S2. which is not in the archive"
'

test_expect_success 'hostile pickle inside a tar: refused, nothing runs' '
	mkdir -p evil/archive &&
	{
		printf "\\200\\002cposix\\nsystem\\n"
		str "touch $TMPD/pwned"
		printf "\\205R."
	} >evil/archive/data.pkl &&
	(cd evil && mkzip model.pt archive/data.pkl && rm -r archive) &&
	tar $TS -cf - evil | test_fails 1 moe-inspect - &&
	last_err | grep -q "refusing pickle GLOBAL .posix system." &&
	test ! -e "$TMPD/pwned"
'

test_done
