# moe-tools: libmoe and five tools. GNU Make; sources are picked up by wildcard.
VERSION    = 0.1.0
PREFIX    ?= /usr/local
DESTDIR   ?=
B         ?= build
CC        ?= cc
CFLAGS    ?= -O2 -g
PKGS       = libarchive jansson libpcre2-8
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS))
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -DMOE_VERSION=\"$(VERSION)\" -Wall -Wextra \
             -Wshadow -Wstrict-prototypes -Wno-sign-compare -Ilib $(PKG_CFLAGS) $(CFLAGS)
LIBS       = $(PKG_LIBS) -lm -pthread

TOOLS      = moe-inspect moe-convert moe-quantize moe-run moe-route-stats
# lib/cli.c is the tools' front-end (it prints); libmoe.a itself never prints.
LIB_SRC    = $(filter-out lib/cli.c,$(wildcard lib/*.c))
LIB_OBJ    = $(LIB_SRC:%.c=$(B)/%.o)
CLI_OBJ    = $(B)/lib/cli.o
BINS       = $(TOOLS:%=$(B)/bin/%)
UNIT_SRC   = $(wildcard tests/unit/check_*.c)
UNIT_BINS  = $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)
FUZZ_SRC   = $(wildcard tests/fuzz/fuzz_*.c)
MANS       = $(wildcard man/*.1 man/*.5)

.SECONDARY:
.PHONY: all check check-unit check-cli check-asan fuzz bench install uninstall clean demo
all: $(B)/libmoe.a $(BINS) $(B)/libmoe.pc

$(B)/%.o: %.c $(wildcard lib/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(B)/libmoe.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/bin/%: $(B)/cmd/%.o $(CLI_OBJ) $(B)/libmoe.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS)

$(B)/tests/check_%: tests/unit/check_%.c $(B)/libmoe.a $(CLI_OBJ) $(wildcard tests/unit/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(CLI_OBJ) $(B)/libmoe.a $(CHECK_LIBS) $(LIBS)

$(B)/libmoe.pc: Makefile
	@mkdir -p $(B)
	printf 'prefix=%s\nlibdir=$${prefix}/lib\nincludedir=$${prefix}/include/moe\n\nName: libmoe\nDescription: Mixture-of-Experts checkpoint library\nVersion: %s\nRequires.private: %s\nLibs: -L$${libdir} -lmoe\nLibs.private: -lm -pthread\nCflags: -I$${includedir}\n' \
	  '$(PREFIX)' '$(VERSION)' '$(PKGS)' > $@

# The main job on the embedded examples (README's first command).
demo: all
	./$(B)/bin/moe-inspect examples/configs/*.json

check: check-unit check-cli

check-unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; MOE_TEST_SHARED=$${MOE_TEST_SHARED:-../shared} $$t; done

check-cli: all $(UNIT_BINS)
	@BIN=$(CURDIR)/$(B)/bin SRC=$(CURDIR) sh tests/cli/run.sh

# Same suites under AddressSanitizer + UndefinedBehaviorSanitizer.
check-asan:
	$(MAKE) B=build-asan CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  LDFLAGS="-fsanitize=address,undefined" check

# libFuzzer harnesses (clang); FUZZ_SECONDS per harness.
FUZZ_SECONDS ?= 60
fuzz:
	$(MAKE) B=build-fuzz CC=clang CFLAGS="-O1 -g -fsanitize=fuzzer-no-link,address,undefined" build-fuzz/libmoe.a
	@set -e; mkdir -p build-fuzz/bin; for f in $(FUZZ_SRC); do n=$$(basename $$f .c); \
	  clang $(ALL_CFLAGS) -O1 -g -fsanitize=fuzzer,address,undefined -o build-fuzz/bin/$$n $$f build-fuzz/libmoe.a $(LIBS); \
	  mkdir -p build-fuzz/corpus/$$n; \
	  echo "== $$n ($(FUZZ_SECONDS)s)"; \
	  seeds=tests/fuzz/corpus/$$n; [ -d $$seeds ] || seeds=; \
	  build-fuzz/bin/$$n -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 build-fuzz/corpus/$$n $$seeds; done

bench: all
	@BIN=$(CURDIR)/$(B)/bin SRC=$(CURDIR) sh bench/run.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include/moe \
	  $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5 \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(PREFIX)/share/zsh/site-functions \
	  $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	install -m 755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(B)/libmoe.a $(DESTDIR)$(PREFIX)/lib/
	install -m 644 $(B)/libmoe.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/
	install -m 644 $(filter-out lib/cli.h lib/%_impl.h,$(wildcard lib/*.h)) $(DESTDIR)$(PREFIX)/include/moe/
	install -m 644 $(wildcard man/*.1) $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 $(wildcard man/*.5) $(DESTDIR)$(PREFIX)/share/man/man5/
	for t in $(TOOLS); do \
	  install -m 644 completions/bash/$$t $(DESTDIR)$(PREFIX)/share/bash-completion/completions/$$t; \
	  install -m 644 completions/zsh/_$$t $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_$$t; \
	  install -m 644 completions/fish/$$t.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/$$t.fish; done

uninstall:
	for t in $(TOOLS); do rm -f $(DESTDIR)$(PREFIX)/bin/$$t \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions/$$t \
	  $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_$$t \
	  $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/$$t.fish; done
	rm -f $(DESTDIR)$(PREFIX)/lib/libmoe.a $(DESTDIR)$(PREFIX)/lib/pkgconfig/libmoe.pc
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/share/man/man1/,$(notdir $(wildcard man/*.1)))
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/share/man/man5/,$(notdir $(wildcard man/*.5)))
	rm -rf $(DESTDIR)$(PREFIX)/include/moe

clean:
	rm -rf build build-asan build-fuzz build-*
