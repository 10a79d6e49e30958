# Warren build. `make` builds build/warren and build/warren-edge; `make check`
# installs Debian dependencies, builds with ASan+UBSan and runs every test.
# Sources are picked up by wildcard so new modules need no Makefile edit:
#   src/{lib,proto,net,connector,edge,cfapi}/*.c -> libwarren.a (no command-line code)
#   src/cmd/*.c                             -> the two programs only (cmd.a is a
#                                              link-time bag, not a library)
#   tests/unit/test_*.c                     -> one cmocka binary each
#   tests/unit/*.c (the rest)               -> linked into each of them
#   tests/fuzz/fuzz_*.c                     -> one libFuzzer binary each

BUILD   ?= build
# `make V=1` shows full compiler command lines.
ifeq ($(V),1)
Q :=
else
Q = @echo "  CC      $<";
QL = @echo "  LD      $@";
endif
CC      ?= cc
PKGS    := libuv gnutls libngtcp2 libngtcp2_crypto_gnutls libnghttp2 libnghttp3 yaml-0.1 jansson sqlite3 libpq ldns lwip libsodium libb2 libqrencode
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
GIT_REV := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)

WARN    := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
CFLAGS  ?= -O2 -g
CPPFLAGS += -Isrc -D_GNU_SOURCE -DWR_VERSION='"$(VERSION)"' -DWR_GIT_REV='"$(GIT_REV)"'
ALL_CFLAGS = -std=c11 $(WARN) $(CFLAGS) $(EXTRA_CFLAGS) $(PKG_CFLAGS)
LDLIBS  += $(PKG_LIBS) -lresolv -lm -lpthread

LIB_SRC  := $(wildcard src/lib/*.c src/proto/*.c src/net/*.c src/connector/*.c src/edge/*.c src/cfapi/*.c)
CMD_SRC  := $(filter-out src/cmd/warren.c src/cmd/warren-edge.c,$(wildcard src/cmd/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CMD_OBJ  := $(CMD_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
# Every other tests/unit/*.c (unit.c, quic_pair.c, the suites' shared
# fixtures) is linked into every unit binary.
UNIT_SUPPORT_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(filter-out $(UNIT_SRC),$(wildcard tests/unit/*.c)))
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)

.PHONY: all deps check layers unit unit-pg e2e fuzz fuzz-build fuzz-corpus demo bench bench-scale soak clean asan fmt deb
all: $(BUILD)/warren $(BUILD)/warren-edge

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

# Data compiled in: cloudflare_roots.pem as a C string literal (one quoted
# line per line of the file).
CPPFLAGS += -I$(BUILD)/gen
$(BUILD)/gen/cloudflare_roots.inc: src/connector/cloudflare_roots.pem
	@mkdir -p $(dir $@)
	@sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' $< > $@
$(BUILD)/obj/src/connector/cloudflare_roots.o: $(BUILD)/gen/cloudflare_roots.inc

# The dashboard's front end (src/edge/assets/*.js|css) as C arrays, so the
# binary serves it with no files beside it and no build step beyond cc.
DASH_ASSETS := $(wildcard src/edge/assets/*.js src/edge/assets/*.css)
$(BUILD)/gen/dash_assets.inc: $(DASH_ASSETS) scripts/embed-assets.sh
	@mkdir -p $(dir $@)
	@scripts/embed-assets.sh $(DASH_ASSETS) > $@
$(BUILD)/obj/src/edge/dash.o: $(BUILD)/gen/dash_assets.inc

$(BUILD)/libwarren.a: $(LIB_OBJ)
	@rm -f $@; ar rcs $@ $^

# The command layer's objects, archived only so that the programs and the
# unit tests of the command line link what they use.
$(BUILD)/obj/cmd.a: $(CMD_OBJ)
	@rm -f $@; ar rcs $@ $^

$(BUILD)/warren: $(BUILD)/obj/src/cmd/warren.o $(BUILD)/obj/cmd.a $(BUILD)/libwarren.a
	$(QL)$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/warren-edge: $(BUILD)/obj/src/cmd/warren-edge.o $(BUILD)/obj/cmd.a $(BUILD)/libwarren.a
	$(QL)$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(UNIT_SUPPORT_OBJ) $(BUILD)/obj/cmd.a $(BUILD)/libwarren.a
	@mkdir -p $(dir $@)
	$(QL)$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# --- tests -------------------------------------------------------------------
# The sanitizer build lives in build/asan so it never mixes with release objects.
SAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
ASAN_BUILD := build/asan
export ASAN_OPTIONS ?= detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1

deps:
	@scripts/install-deps.sh

asan:
	$(MAKE) BUILD=$(ASAN_BUILD) CFLAGS="$(SAN_FLAGS)" LDFLAGS="-fsanitize=address,undefined" all unit-bins

unit-bins: $(UNIT_BIN) $(BUILD)/tests/h3client

# The HTTP/3 test client of tests/e2e/test_http3.py (not installed).
$(BUILD)/tests/h3client: $(BUILD)/obj/tests/tools/h3client.o $(BUILD)/libwarren.a
	@mkdir -p $(dir $@)
	$(QL)$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

unit: asan
	@scripts/run-unit.sh $(ASAN_BUILD)/tests

# The store's suites again on a throw-away PostgreSQL server (they run both
# backends), and the suites whose stores come from unit_store_new on
# PostgreSQL only (WARREN_TEST_PG_ALL).
PG_UNIT := test_store test_store_async
PG_ALL_UNIT := test_api test_login test_devices
unit-pg: asan
	@tests/tools/pg_tmp.sh run sh -c 'for t in $(PG_UNIT) $(PG_ALL_UNIT); do \
	  case " $(PG_ALL_UNIT) " in *" $$t "*) export WARREN_TEST_PG_ALL=$$WARREN_TEST_PG;; esac; \
	  $(ASAN_BUILD)/tests/$$t >$(ASAN_BUILD)/tests/$$t.pg.log 2>&1 \
	  && echo "PASS $$t (postgres)" || { tail -n 40 $(ASAN_BUILD)/tests/$$t.pg.log; exit 1; }; done'

e2e: asan
	WARREN_BUILD=$(ASAN_BUILD) /usr/bin/python3 -m pytest -q -ra tests/e2e

# Includes point down cmd -> connector|edge|cfapi -> net -> proto -> lib.
layers:
	@scripts/check-layers.py && echo "layers: every include points down"

check: deps
	$(MAKE) layers
	$(MAKE) all
	$(MAKE) unit
	$(MAKE) unit-pg
	$(MAKE) e2e
	$(MAKE) fuzz FUZZ_SECONDS=$${FUZZ_SECONDS:-5}

# --- fuzzing (clang + libFuzzer) ----------------------------------------------
FUZZ_BUILD := build/fuzz
FUZZ_SECONDS ?= 30
fuzz-build:
	$(MAKE) BUILD=$(FUZZ_BUILD) CC=clang CFLAGS="-O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all" $(FUZZ_BUILD)/libwarren.a
	@mkdir -p $(FUZZ_BUILD)/bin
	@for f in $(FUZZ_SRC); do n=$$(basename $$f .c); \
	  clang $(CPPFLAGS) -std=c11 $(WARN) -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all $(PKG_CFLAGS) \
	    $$f $(FUZZ_BUILD)/libwarren.a $(PKG_LIBS) -lresolv -lm -lpthread -o $(FUZZ_BUILD)/bin/$$n || exit 1; done

fuzz: fuzz-build
	@scripts/run-fuzz.sh $(FUZZ_BUILD)/bin $(FUZZ_SECONDS)

# Fuzzes like `make fuzz`, then merges the inputs that add coverage into the
# checked-in corpus (tests/fuzz/corpus/<target>/) for review and commit.
# `make fuzz` and `make check` never write to the tree.
fuzz-corpus: fuzz-build
	@scripts/run-fuzz.sh $(FUZZ_BUILD)/bin $(FUZZ_SECONDS) merge

# An hour (SOAK_SECONDS) of mixed load against the release binaries; the
# report goes to build/soak/latest.md and .json (see scripts/soak.py).
SOAK_SECONDS ?= 3600
soak: all
	@/usr/bin/python3 scripts/soak.py --build $(BUILD) --seconds $(SOAK_SECONDS)

# Debian packages warren and warren-edge (binaries, man pages from --help,
# systemd units) from the release build, into $(BUILD)/deb; see scripts/mkdeb.sh.
deb: all
	@scripts/mkdeb.sh $(BUILD) $(BUILD)/deb

demo: all
	@WARREN_BUILD=$(BUILD) scripts/demo.sh

bench: all $(BUILD)/tests/h3client
	@WARREN_BUILD=$(BUILD) scripts/bench.sh

# `make bench-scale`: one edge under 1,000 registered connections and 10,000
# visitor connections from bench/scale_load.c (bench/scale.py drives it).
$(BUILD)/bench/scale_load: bench/scale_load.c $(BUILD)/libwarren.a
	@mkdir -p $(dir $@)
	$(QL)$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

bench-scale: all $(BUILD)/bench/scale_load
	@WARREN_BUILD=$(BUILD) /usr/bin/python3 bench/scale.py

clean:
	rm -rf build
