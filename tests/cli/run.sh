# Runs every tests/cli/t*.sh and prints one summary line "N passed, N failed".
: "${BIN:?}" "${SRC:?}"
passed=0
failed=0
skipped=0
res=$(mktemp)
for t in "$SRC"/tests/cli/t[0-9]*.sh; do
	[ -f "$t" ] || continue
	echo "== $(basename "$t")"
	: >"$res"
	RESULT_FILE=$res sh "$t"
	read -r n f s <"$res" || { n=1; f=1; s=0; echo "not ok - $(basename "$t") did not finish"; }
	passed=$((passed + n - f - s))
	failed=$((failed + f))
	skipped=$((skipped + s))
done
rm -f "$res"
echo "cli: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
