# moe-inspect's report: examples against goldens, TSV/JSON, same numbers from GGUF, safetensors and config, DeepSeek-V3-shaped directory, failures.
. "$SRC/tests/cli/lib.sh"
. "$SRC/tests/cli/dsv3-shape.sh"

EX=$SRC/examples/configs
TAB=$(printf '\t')

test_expect_success 'main job: every example config, side by side' '
	(cd "$SRC" && moe-inspect examples/configs/*.json) >out &&
	test_golden inspect-examples out
'

test_expect_success 'tsv: one row per input after a header, sortable by total' '
	(cd "$SRC" && moe-inspect --tsv examples/configs/*.json) >out &&
	test_golden inspect-examples.tsv out &&
	test $(wc -l <out) = $(($(ls "$EX"/*.json | wc -l) + 1)) &&
	sort -t "$TAB" -k3 -n out | sed -n "\$p" | cut -f2 >biggest &&
	echo deepseek_v3 >expect && test_cmp expect biggest
'

test_expect_success 'json: DeepSeek-V3 report' '
	(cd "$SRC" && moe-inspect --json examples/configs/deepseek-v3.json) >out &&
	test_golden inspect-deepseek-v3.json out
'

test_expect_success 'json: every member name is documented in the man page' '
	(cd "$SRC" && moe-inspect -j -b 100 examples/configs/*.json) >out &&
	tr ",{[" "\n\n\n" <out | sed -n "s/.*\"\([a-z_0-9]*\)\":.*/\1/p" | sort -u >keys &&
	test $(wc -l <keys) -gt 60 &&
	for k in $(cat keys); do
		grep -q "Li.* $k\( \|$\)" "$SRC/man/moe-inspect.1" || { echo "undocumented: $k"; exit 1; }
	done
'

test_expect_success '--ctx and --bandwidth: KV cache and decode bound' '
	(cd "$SRC" && moe-inspect -c 32768 -b 400 examples/configs/mixtral-8x7b.json) >out &&
	test_golden inspect-mixtral-8x7b-ctx-bw out &&
	grep -q "kv cache     131.1 kB per token (F16), 4.3 GB at 32768 tokens" out
'

test_expect_success '--layers: one line per layer' '
	moe-inspect -l "$EX/deepseek-v3.json" >out &&
	test $(grep -c "^    [0-9]* *mla  *\(dense\|moe\)  " out) = 61 &&
	grep -q "^    2     mla       dense      583.5M     583.5M$" out &&
	grep -q "^    3     mla       moe        11.51B     585.3M$" out
'

test_expect_success 'stdin and an archive give the same report as the file' '
	moe-inspect --tsv "$EX/olmoe-1b-7b.json" | sed 1d | cut -f2- >want &&
	moe-inspect --tsv - <"$EX/olmoe-1b-7b.json" | sed 1d | cut -f2- >got &&
	test_cmp want got &&
	mkdir olmoe && cp "$EX/olmoe-1b-7b.json" olmoe/config.json &&
	tar -cf olmoe.tar olmoe &&
	moe-inspect --tsv olmoe.tar | sed 1d | cut -f2- >got &&
	test_cmp want got
'

test_expect_success 'unsupported model_type: one line naming it and the list, exit 1' '
	printf "{\"model_type\":\"llama\",\"hidden_size\":8}" >llama.json &&
	test_fails 1 moe-inspect llama.json &&
	grep -q "^moe-inspect: llama.json: unsupported model_type .llama. (supported: dbrx, " "$TMPD/.ferr"
'

test_expect_success 'incomplete config: one line naming the key, exit 1' '
	printf "{\"model_type\":\"mixtral\"}" >stub.json &&
	test_fails 1 moe-inspect stub.json &&
	echo "moe-inspect: stub.json: config.json: missing '"'"'hidden_size'"'"'" >expect &&
	test_cmp expect "$TMPD/.ferr"
'

test_expect_success 'bad --ctx and --bandwidth, --tsv with a listing: usage error' '
	test_fails 2 moe-inspect --tsv -t "$EX/olmoe-1b-7b.json" &&
	grep -q "^moe-inspect: --tsv cannot be combined" "$TMPD/.ferr" &&
	test_fails 2 moe-inspect --ctx 0 "$EX/olmoe-1b-7b.json" &&
	test_fails 2 moe-inspect -b fast "$EX/olmoe-1b-7b.json"
'

test_expect_success 'several inputs: a bad one is reported, the others still are, exit 1' '
	moe-inspect --tsv "$EX/olmoe-1b-7b.json" stub.json "$EX/mixtral-8x7b.json" >out 2>err
	test $? = 1 && test $(wc -l <out) = 3 && test $(wc -l <err) = 1
'

test_expect_success 'full disk: error, exit 1' '
	FAILS_STDOUT=/dev/full test_fails 1 moe-inspect "$EX/olmoe-1b-7b.json" &&
	grep -q "standard output: No space left" "$TMPD/.ferr"
'

# The same tiny model as GGUF, as safetensors (converted) and as bare
# config.json: one set of numbers. Columns 3-17 of the TSV row.
if have_shared; then
	for g in "$SHARED"/ref/models/*-f32.gguf; do
		case $g in *-dequant-f32.gguf) continue ;; esac
		m=$(basename "$g" -f32.gguf)
		test_expect_success "$m: GGUF, safetensors and config.json agree" "
			moe-inspect --tsv '$g' | sed 1d | cut -f3- >gguf.$m &&
			moe-convert -f safetensors -o st.$m/ '$g' &&
			moe-inspect --tsv st.$m | sed 1d | cut -f3- >st.$m.row &&
			moe-inspect --tsv st.$m/config.json | sed 1d | cut -f3- >cfg.$m &&
			test_cmp gguf.$m st.$m.row &&
			test_cmp gguf.$m cfg.$m
		"
	done
	test_expect_success 'totals and actives of the tiny models as models.json gives them' '
		awk -F"\"" "/\"file\":/ { f = \$4 }
			/\"total\":/ { t = \$3; gsub(/[^0-9]/, \"\", t) }
			/\"active_per_token\":/ { a = \$3; gsub(/[^0-9]/, \"\", a); print f, t, a }" \
			"$SHARED/ref/models/models.json" >list &&
		test $(wc -l <list) -ge 8 &&
		while read -r f t a; do
			moe-inspect --tsv "$SHARED/ref/models/$f" | sed 1d | cut -f3,4 >got &&
			printf "%s\t%s\n" "$t" "$a" >want &&
			test_cmp want got || exit 1
		done <list
	'
else
	test_skip 'GGUF, safetensors and config.json agree' 'no ../shared/ref'
fi

test_expect_success 'DeepSeek-V3-shaped directory: 163 shards, counts from headers only' '
	gen_dsv3 dsv3 "$EX/deepseek-v3.json" &&
	moe-inspect --tsv dsv3 | sed 1d | cut -f3,4,8 >got &&
	printf "671026419200\t37552297472\t684489845504\n" >want &&
	test_cmp want got &&
	moe-inspect -j dsv3 >out &&
	grep -q "\"params_notes\":\[\"quantisation scale tensors are not counted as parameters\"\]" out &&
	grep -q "\"mtp\":{\"total\":13463426304," out &&
	read_bytes=$(sed "s/.*\"bytes_read\":\([0-9]*\),.*/\1/" out) &&
	test "$read_bytes" -lt 50000000
'

test_done
