# moe-route-stats: statistics with known answers, conversions, partial/merge, bad traces, output failures.
. "$SRC/tests/cli/lib.sh"

# gen N E K SEQLEN MODE: JSONL trace of N tokens over 2 MoE layers (1 and 3
# of 4); MODE uniform cycles through the experts so every load is equal,
# collapse sends every token to experts 0..k-1.
gen() {
	awk -v n="$1" -v E="$2" -v k="$3" -v sl="$4" -v mode="$5" 'BEGIN {
		printf "{\"format\":\"moe-trace\",\"version\":1,\"model\":\"synthetic\",\"n_layers\":4,"
		printf "\"moe_layers\":[1,3],\"n_experts\":%d,\"top_k\":%d,\"gating\":\"softmax\"}\n", E, k
		for (t = 0; t < n; t++) {
			printf "{\"seq\":%d,\"pos\":%d,\"token\":%d,\"experts\":[", int(t / sl), t % sl, t % 5
			for (l = 0; l < 2; l++) {
				printf "%s[", l ? "," : ""
				for (j = 0; j < k; j++)
					printf "%s%d", j ? "," : "", mode == "uniform" ? (t * k + j + l) % E : j
				printf "]"
			}
			printf "],\"weights\":["
			for (l = 0; l < 2; l++) {
				printf "%s[", l ? "," : ""
				for (j = 0; j < k; j++)
					printf "%s%s", j ? "," : "", j ? "0.25" : "0.75"
				printf "]"
			}
			printf "]}\n"
		}
	}'
}

test_expect_success "uniform routing: CV 0, Jain 1, entropy 1, no drops" "
	gen 16 8 2 16 uniform >u.jsonl &&
	moe-route-stats u.jsonl >out &&
	test_golden route-stats-uniform.txt out &&
	moe-route-stats --json u.jsonl >u.json &&
	grep -q '\"cv\": 0.0,' u.json && grep -q '\"jain\": 1.0,' u.json &&
	grep -q '\"entropy_norm\": 1.0,' u.json && grep -q '\"effective_experts\": 8' u.json
"

test_expect_success "full collapse onto k experts: Jain k/E, k dead-free experts" "
	gen 12 8 2 12 collapse >c.jsonl &&
	moe-route-stats --csv c.jsonl >c.csv &&
	grep -qx '1,,jain,0.25' c.csv && grep -qx '1,,dead_experts,6' c.csv &&
	grep -qx '1,,top_m_share,0.5' c.csv && grep -qx '3,0,load,12' c.csv &&
	grep -qx 'all,,dead_experts,12' c.csv
"

# 12 tokens, 2 experts each of 8 in one group: capacity floor(CF*12*2/8):
# CF 1 -> 3, so experts 0 and 1 drop 9 each of 24 assignments: 0.75;
# CF 2 -> 6: 12 of 24 = 0.5.
test_expect_success "collapse: capacity drops worked by hand" "
	grep -qx '1,,drop_fraction_cf1,0.75' c.csv &&
	grep -qx '1,,drop_fraction_cf2,0.5' c.csv
"

test_expect_success "collapse: every cache size of 2 or more hits after the first uses" "
	grep -qx '1,,hit_rate_lru_c2,0.9166666667' c.csv &&
	grep -qx '1,,hit_rate_opt_c1,0' c.csv &&
	grep -qx '1,,reuse_distance_1,22' c.csv && grep -qx '1,,first_uses,2' c.csv &&
	grep -qx '1,,reuse_distance_0,0' c.csv
"

test_expect_success "collapse: co-activation is symmetric, transitions always 0 -> 0" "
	grep -qx '1,0,coact_e1,12' c.csv && grep -qx '1,1,coact_e0,12' c.csv &&
	grep -qx '3,,transition_consistency,1' c.csv &&
	moe-route-stats --json c.jsonl | grep -q 'transitions_from_previous'
"

test_expect_success "JSONL -> binary -> JSONL is lossless, binary -> JSONL -> binary identical" "
	moe-route-stats --to jsonl u.jsonl >u1.jsonl &&
	moe-route-stats --to bin -o u.bin u.jsonl &&
	moe-route-stats --to jsonl -o u2.jsonl u.bin &&
	test_cmp u1.jsonl u2.jsonl &&
	moe-route-stats --to bin -o u3.bin u2.jsonl &&
	cmp u.bin u3.bin &&
	moe-route-stats --json u.bin >ub.json && test_cmp u.json ub.json
"

test_expect_success "escaped JSON (parsed by jansson) reads the same as plain lines (fast scanner)" "
	sed '2,\$s/\"seq\"/\"s\\\\u0065q\"/' u.jsonl >esc.jsonl &&
	grep -q 's\\\\u0065q' esc.jsonl &&
	moe-route-stats --to bin -o esc.bin esc.jsonl && cmp u.bin esc.bin
"

test_expect_success "binary size: 40 + strings + layers header, 36-byte records for k=2" "
	test \$(wc -c <u.bin) -eq \$((40 + 2 + 9 + 2 + 7 + 2 + 8 + 16 * 36))
"

test_expect_success "stdin pipe equals the file" "
	cat u.bin | moe-route-stats >p.txt && moe-route-stats u.bin >f.txt && test_cmp f.txt p.txt &&
	cat u.jsonl | moe-route-stats - >p2.txt && test_cmp f.txt p2.txt
"

test_expect_success "CSV rows import with the same loads" "
	printf 'token,layer,expert,weight\n0,1,5,0.75\n0,1,2,0.25\n0,3,1,0.5\n0,3,7,0.5\n1,3,1,0.5\n1,3,2,0.5\n1,1,5,0.5\n1,1,0,0.5\n' >d.csv &&
	moe-route-stats --csv --no-cache d.csv >d.out &&
	grep -qx '1,5,load,2' d.out && grep -qx '3,1,load,2' d.out && grep -qx '3,7,load,1' d.out &&
	moe-route-stats --to jsonl d.csv >d.jsonl &&
	head -1 d.jsonl | grep -q '\"n_layers\":4,\"moe_layers\":\\[1,3\\],\"n_experts\":8,\"top_k\":2'
"

test_expect_success "partial + merge equals the single pass (shards cut between sequences)" "
	gen 200 8 2 7 uniform | awk 'NR == 1 || (NR % 3) != 0' >z.jsonl &&
	moe-route-stats --json --group-size 5 --cache-segment 4 z.jsonl >single.json &&
	head -1 z.jsonl >h &&
	{ cat h; grep '\"seq\":[0-9]*[02468],' z.jsonl; } >s0.jsonl &&
	{ cat h; grep '\"seq\":[0-9]*[13579],' z.jsonl; } >s1.jsonl &&
	moe-route-stats --partial --group-size 5 --cache-segment 4 -o s0.part s0.jsonl &&
	moe-route-stats --partial --group-size 5 --cache-segment 4 s1.jsonl >s1.part &&
	moe-route-stats --merge --json s0.part s1.part >merged.json &&
	test_cmp single.json merged.json &&
	moe-route-stats --merge --partial -o m.part s1.part s0.part &&
	moe-route-stats --merge --json m.part >tree.json &&
	test_cmp single.json tree.json
"

test_expect_success "--top-tokens: tokens per expert, merged exactly" "
	moe-route-stats --csv --no-cache --top-tokens 2 u.jsonl >tt.csv &&
	grep -qx '1,0,token_0,1' tt.csv && grep -qx '1,0,token_2,1' tt.csv &&
	test \$(grep -c '^1,0,token_' tt.csv) -eq 2 &&
	moe-route-stats --json --top-tokens 3 --group-size 5 --cache-segment 4 z.jsonl >t1.json &&
	moe-route-stats --partial --top-tokens 3 --group-size 5 --cache-segment 4 -o t0.part s0.jsonl &&
	moe-route-stats --partial --top-tokens 3 --group-size 5 --cache-segment 4 -o t1.part s1.jsonl &&
	moe-route-stats --merge --json t1.part t0.part >t2.json && test_cmp t1.json t2.json
"

test_expect_success "merge refuses partials made with other options" "
	moe-route-stats --partial --group-size 6 -o other.part s1.jsonl &&
	test_fails 1 moe-route-stats --merge s0.part other.part &&
	test \"\$(last_err)\" = 'moe-route-stats: other.part: statistics options differ (capacity factors, group size, cache or top tokens)'
"

test_expect_success "--window reports balance drift; --svg writes a plot" "
	moe-route-stats --window 5 --svg plot.svg u.jsonl >w.txt &&
	grep -q '^balance per window' w.txt && test \$(grep -c '^ *[0-9] *5 ' w.txt) -eq 3 &&
	grep -q '<svg' plot.svg && grep -q '</svg>' plot.svg && grep -q 'polyline' plot.svg
"

test_expect_success "--cache-sizes selects the reported sizes" "
	moe-route-stats --csv --cache-sizes 1,4 u.jsonl >cs.csv &&
	test \$(grep -c '^all,,hit_rate_' cs.csv) -eq 6 &&
	test_fails 1 moe-route-stats --cache-sizes 9 u.jsonl &&
	test \"\$(last_err)\" = 'moe-route-stats: --cache-sizes: 9 exceeds the 8 experts'
"

HDR='{"format":"moe-trace","version":1,"n_layers":2,"moe_layers":[0,1],"n_experts":8,"top_k":2}'
TOK='{"seq":0,"pos":0,"experts":[[0,1],[2,3]],"weights":[[0.5,0.5],[0.5,0.5]]}'

test_expect_success "expert out of range names the line" "
	printf '%s\n%s\n%s\n' '$HDR' '$TOK' '{\"seq\":0,\"pos\":1,\"experts\":[[0,9],[2,3]],\"weights\":[[0.5,0.5],[0.5,0.5]]}' >bad.jsonl &&
	test_fails 1 moe-route-stats bad.jsonl &&
	test \"\$(last_err)\" = 'moe-route-stats: bad.jsonl: line 3: layer 0: expert 9 out of range (8 experts)' &&
	test ! -s \"\$TMPD/.fout\"
"

test_expect_success "mismatched k names the line" "
	printf '%s\n%s\n' '$HDR' '{\"seq\":0,\"pos\":1,\"experts\":[[0],[2,3]],\"weights\":[[0.5],[0.5,0.5]]}' >k.jsonl &&
	test_fails 1 moe-route-stats k.jsonl &&
	test \"\$(last_err)\" = 'moe-route-stats: k.jsonl: line 2: layer 0: \"experts\" has 1 entries, expected 2'
"

test_expect_success "non-finite weight in a binary record names the record" "
	moe-route-stats --to bin -o nf.bin u.jsonl &&
	printf '\377\377\377\177' | dd of=nf.bin bs=1 seek=\$((70 + 36 + 20)) conv=notrunc 2>/dev/null &&
	test_fails 1 moe-route-stats nf.bin &&
	test \"\$(last_err)\" = 'moe-route-stats: nf.bin: record 2: layer 1: weight 1 is not finite'
"

test_expect_success "missing header" "
	printf '%s\n' '$TOK' >nh.jsonl &&
	test_fails 1 moe-route-stats nh.jsonl &&
	test \"\$(last_err)\" = 'moe-route-stats: nh.jsonl: line 1: missing trace header (\"format\": \"moe-trace\")'
"

test_expect_success "truncated binary record" "
	head -c \$((70 + 36 * 3 + 10)) u.bin >tr.bin &&
	test_fails 1 moe-route-stats tr.bin &&
	test \"\$(last_err)\" = 'moe-route-stats: tr.bin: record 4: truncated (10 of 36 bytes)' &&
	head -c 20 u.bin | test_fails 1 moe-route-stats &&
	test \"\$(last_err)\" = 'moe-route-stats: <stdin>: binary header: truncated'
"

test_expect_success "empty input and unknown formats" "
	: >empty &&
	test_fails 1 moe-route-stats empty &&
	test \"\$(last_err)\" = 'moe-route-stats: empty: empty input (no trace header)' &&
	echo hello >junk && test_fails 1 moe-route-stats junk &&
	test_fails 1 moe-route-stats no-such-file
"

test_expect_success "a bad trace among good ones: reported, others read, exit 1" "
	sed '3s/\"experts\":\\[\\[[0-9]*/\"experts\":[[12/' u.jsonl >ub.jsonl &&
	test_fails 1 moe-route-stats u.jsonl ub.jsonl u.bin &&
	test \"\$(last_err)\" = 'moe-route-stats: ub.jsonl: line 3: layer 1: expert 12 out of range (8 experts)' &&
	test ! -s \"\$TMPD/.fout\" &&
	test_fails 1 moe-route-stats u.jsonl bad.jsonl &&
	test \"\$(last_err)\" = 'moe-route-stats: bad.jsonl: trace shape differs from the first input (layers, experts, top-k or recorded fields)'
"

test_expect_success "newer binary version names both versions" "
	cp u.bin v2.bin && printf '\2' | dd of=v2.bin bs=1 seek=8 conv=notrunc 2>/dev/null &&
	test_fails 1 moe-route-stats v2.bin &&
	test \"\$(last_err)\" = 'moe-route-stats: v2.bin: trace version 2 is not supported (this reader knows version 1)'
"

test_expect_success "full disk: one error, exit 1" "
	{ moe-route-stats u.jsonl >/dev/full 2>err; test \$? -eq 1; } && test \$(wc -l <err) -eq 1 &&
	{ moe-route-stats --json u.jsonl >/dev/full 2>err2; test \$? -eq 1; } && test \$(wc -l <err2) -eq 1 &&
	{ moe-route-stats --to jsonl u.bin >/dev/full 2>err3; test \$? -eq 1; } && grep -q 'No space left' err3
"

test_expect_success "closed pipe: silent exit 1" "
	gen 20000 8 2 100 uniform >big.jsonl &&
	{ moe-route-stats --to jsonl big.jsonl 2>pipe.err; echo \$? >st; } | head -c1 >/dev/null &&
	test \"\$(cat st)\" = 1 && test ! -s pipe.err &&
	{ moe-route-stats --json big.jsonl 2>pipe2.err; echo \$? >st2; } | head -c1 >/dev/null &&
	test ! -s pipe2.err
"

test_expect_success "existing output needs --force" "
	test_fails 1 moe-route-stats --to bin -o u.bin u.jsonl &&
	test \"\$(last_err)\" = 'moe-route-stats: u.bin: output exists (use --force to replace it)' &&
	moe-route-stats -f --to bin -o u.bin u.jsonl
"

test_expect_success "usage errors exit 2" "
	test_fails 2 moe-route-stats --to xml u.jsonl &&
	test_fails 2 moe-route-stats --window 5 --partial u.jsonl &&
	test_fails 2 moe-route-stats --group-size 0 u.jsonl &&
	test_fails 2 moe-route-stats --capacity-factors 1,x u.jsonl &&
	test_fails 2 moe-route-stats --no-such-option &&
	moe-route-stats -h | grep -q '^usage: moe-route-stats'
"

if have_shared && test -f "$SHARED/ref/models/olmoe-f32.gguf"; then
	test_expect_success "a moe-run trace (probabilities, lse, text) reads back and converts losslessly" "
		moe-run -n 4 -p 'the cat' --trace run.jsonl '$SHARED/ref/models/olmoe-f32.gguf' >/dev/null &&
		head -1 run.jsonl | grep -q '\"probs\":true,\"lse\":true,\"text\":true' &&
		moe-route-stats --json run.jsonl >run.json &&
		grep -q '\"aux_loss_top1\": [0-9]' run.json && grep -q '\"z_loss\": [0-9]' run.json &&
		moe-route-stats --to bin -o run.bin run.jsonl &&
		moe-route-stats --to jsonl run.bin >run2.jsonl &&
		moe-route-stats --to jsonl run.jsonl >run1.jsonl && test_cmp run1.jsonl run2.jsonl
	"
else
	test_skip "a moe-run trace reads back" "no reference models in \$MOE_TEST_SHARED"
fi

test_done
