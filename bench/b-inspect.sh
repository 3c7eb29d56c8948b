# moe-inspect's full report (architecture, counts from config and from every tensor, memory) on a DeepSeek-V3-shaped FP8 checkpoint: 163 sparse shards.
: "${BIN:?}" "${SRC:?}"
PATH=$BIN:$PATH
. "$SRC/tests/cli/dsv3-shape.sh"
top=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/b-inspect.XXXXXX") || exit 1
trap '[ -n "${KEEP:-}" ] || rm -rf "$top"' EXIT INT TERM

now() { date +%s%N; }
# CPU ms (user + system) of this shell's finished children: `times` must
# run in this shell (not in $(...)), so it writes a file read here.
cpu_ms() {
	awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/)
		printf "%d\n", (u[1] * 60 + u[2] + s[1] * 60 + s[2]) * 1000 }' "$top/times"
}

truncate -s 64M "$top/probe" || exit 1
if [ "$(du -k "$top/probe" | cut -f1)" -gt 1024 ]; then
	echo "b-inspect: skipped: $top does not support sparse files"
	exit 0
fi
rm -f "$top/probe"
gen_dsv3 "$top/dsv3" "$SRC/examples/configs/deepseek-v3.json" || exit 1
moe-inspect --tsv "$top/dsv3" | sed 1d | cut -f3,4,8 >"$top/got" || exit 1
printf '671026419200\t37552297472\t684489845504\n' | cmp -s - "$top/got" ||
	{ echo "b-inspect: wrong counts: $(cat "$top/got")"; exit 1; }

best=
times >"$top/times"
c0=$(cpu_ms)
for run in 1 2 3; do
	t0=$(now)
	moe-inspect "$top/dsv3" >/dev/null || { echo "b-inspect: moe-inspect failed"; exit 1; }
	t1=$(now)
	ms=$(((t1 - t0) / 1000000))
	[ -z "$best" ] || [ "$ms" -lt "$best" ] && best=$ms
done
times >"$top/times"
c1=$(cpu_ms)
n=$(moe-inspect -j "$top/dsv3" | sed -n 's/.*"tensor_count":\([0-9]*\).*/\1/p')
echo "b-inspect: DeepSeek-V3 shape (163 FP8 shards, $n tensors, 684.49B parameters):" \
	"report in $best ms wall (best of 3), $(((c1 - c0) / 3)) ms CPU per run"
