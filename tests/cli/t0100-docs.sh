# Docs cannot drift: every option in a tool's table is in its man page and completions,
# and the man page SYNOPSIS is the usage text.
. "$SRC/tests/cli/lib.sh"

# Long option names of a tool's struct option table.
long_opts() {
	sed -n '/struct option/,/{ *NULL/p' "$SRC/cmd/$1.c" |
		sed -n 's/^[[:space:]]*{ *"\([a-z0-9-]*\)".*/\1/p' | sort -u
}

# Whitespace-normalised words of the rendered SYNOPSIS.
synopsis() {
	mandoc -T ascii "$SRC/man/$1.1" | sed 's/.\x08//g' |
		sed -n '/^SYNOPSIS/,/^DESCRIPTION/p' | sed '1d;$d' | tr -s ' \n' '  ' | sed 's/^ //;s/ $//'
}

usage_words() {
	"$1" -h | sed 's/^usage: //' | tr -s ' \n' '  ' | sed 's/^ //;s/ $//'
}

for t in moe-inspect moe-convert moe-quantize moe-run moe-route-stats; do
	test_expect_success "$t: man page and three completions exist" "
		test -f '$SRC/man/$t.1' &&
		test -f '$SRC/completions/bash/$t' &&
		test -f '$SRC/completions/zsh/_$t' &&
		test -f '$SRC/completions/fish/$t.fish'
	"
	if command -v mandoc >/dev/null 2>&1; then
		test_expect_success "$t: man page passes mandoc -T lint (warnings)" "
			mandoc -T lint -W warning '$SRC/man/$t.1'
		"
	else
		test_skip "$t: mandoc lint" "mandoc not installed"
	fi
	test_expect_success "$t: every long option is documented and completed" "
		for o in \$(long_opts $t); do
			grep -q -- \"Fl -\$o\" '$SRC/man/$t.1' || { echo \"--\$o missing from man/$t.1\"; exit 1; }
			grep -q -- \"--\$o\" '$SRC/completions/bash/$t' || { echo \"--\$o missing from bash\"; exit 1; }
			grep -q -- \"--\$o\" '$SRC/completions/zsh/_$t' || { echo \"--\$o missing from zsh\"; exit 1; }
			grep -q -- \"-l \$o\" '$SRC/completions/fish/$t.fish' || { echo \"--\$o missing from fish\"; exit 1; }
		done
	"
	test_expect_success "$t: completions offer no option the tool lacks" "
		long_opts $t >known &&
		for o in \$(grep -o -- '--[a-z][a-z0-9-]*' '$SRC/completions/bash/$t' | sed 's/^--//' | sort -u); do
			grep -qx -- \"\$o\" known || { echo \"bash completes unknown --\$o\"; exit 1; }
		done &&
		for o in \$(sed -n 's/^complete .* -l \([a-z0-9-]*\).*/\1/p' '$SRC/completions/fish/$t.fish' | sort -u); do
			grep -qx -- \"\$o\" known || { echo \"fish completes unknown --\$o\"; exit 1; }
		done
	"
	if command -v mandoc >/dev/null 2>&1 && grep -q 'struct option' "$SRC/cmd/$t.c"; then
		test_expect_success "$t: SYNOPSIS is the usage text" "
			synopsis $t >man.txt && usage_words $t >usage.txt &&
			test_cmp usage.txt man.txt
		"
	fi
done

test_expect_success "README installs the packages CI installs" "
	ci=\$(sed -n 's/^PKGS=\"\\(.*\\)\"$/\\1/p' '$SRC/.ci/run') &&
	test -n \"\$ci\" &&
	grep -q \"apt-get install -y \$ci && make demo\" '$SRC/README.md'
"

test_done
