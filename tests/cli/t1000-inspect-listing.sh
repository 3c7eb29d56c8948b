# moe-inspect listing on inputs that need no other backend: config files, directories, bad input.
. "$SRC/tests/cli/lib.sh"

mkdir model
printf '{"model_type": "mixtral", "num_local_experts": 8}\n' >model/config.json
printf '{"bos_token_id": 1}\n' >model/generation_config.json

test_expect_success 'config.json: summary line' '
	moe-inspect -t model/config.json >out &&
	echo "model/config.json: config, 0 files, 0 tensors, 0 parameters, 0 bytes of tensor data" >expect &&
	head -n 1 out >first &&
	test_cmp expect first
'

test_expect_success 'directory with only side files: config format' '
	moe-inspect --json --metadata model >out &&
	grep -q "\"format\":\"config\"" out &&
	grep -q "\"source\":\[\"directory\"\]" out &&
	grep -q "\"generation_config\":{\"bos_token_id\":1}" out
'

test_expect_success 'metadata text shows side JSON files' '
	moe-inspect -m model >out &&
	grep -q "^# config.json" out &&
	grep -q "^# generation_config.json" out
'

test_expect_success 'stdin: config through a pipe' '
	cat model/config.json | moe-inspect -jm - >out &&
	grep -q "\"input\":\"<stdin>\"" out
'

test_expect_success 'missing file: one line, exit 1' '
	test_fails 1 moe-inspect nonexistent.gguf &&
	echo "moe-inspect: nonexistent.gguf: No such file or directory" >expect &&
	test_cmp expect "$TMPD/.ferr"
'

test_expect_success 'empty file: one line, exit 1' '
	: >empty &&
	test_fails 1 moe-inspect empty &&
	echo "moe-inspect: empty: empty input" >expect &&
	test_cmp expect "$TMPD/.ferr"
'

test_expect_success 'unknown content: one line, exit 1' '
	echo "hello world" >hello.txt &&
	test_fails 1 moe-inspect hello.txt &&
	grep -q "not a checkpoint" "$TMPD/.ferr"
'

test_expect_success 'legacy torch file is named as such' '
	printf "\200\002\212\012lfD\000" >old.pt &&
	test_fails 1 moe-inspect old.pt &&
	grep -q "unsupported legacy format" "$TMPD/.ferr"
'

test_expect_success 'broken JSON names the line' '
	printf "{\n\"a\": tru\n" >bad.json &&
	test_fails 1 moe-inspect bad.json &&
	grep -q "bad.json: invalid JSON at line 2" "$TMPD/.ferr"
'

test_expect_success 'empty directory: one line, exit 1' '
	mkdir emptydir &&
	test_fails 1 moe-inspect emptydir &&
	grep -q "no checkpoint files" "$TMPD/.ferr"
'

test_expect_success 'several inputs: bad ones reported, good ones listed, exit 1' '
	moe-inspect -t model/config.json missing.json model/config.json >out 2>err
	test $? = 1 &&
	test $(grep -c "^model/config.json: config" out) = 2 &&
	test $(wc -l <err) = 1
'

test_expect_success 'full disk on stdout: error, exit 1' '
	FAILS_STDOUT=/dev/full test_fails 1 moe-inspect -t model/config.json &&
	grep -q "standard output: No space left" "$TMPD/.ferr"
'

test_expect_success 'closed pipe: no message, no crash' '
	i=0; while [ $i -lt 300 ]; do echo model/config.json; i=$((i+1)); done >list &&
	moe-inspect -t $(cat list) 2>err | head -c 10 >/dev/null &&
	test ! -s err
'

test_done
