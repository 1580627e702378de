# mailcast - one non-recursive GNU Makefile.
#
#   make            build ./mailcast
#   make run        install what is missing, build, start on SQLite
#   make test       install what is missing, build, run every test (both stores)
#   make test SANITIZE=1   the same under ASan and UBSan
#   make bench      benchmarks (see bench/RESULTS.md)

PKGS     := libmicrohttpd jansson sqlite3 libpq libcrypto libssl libidn2 libevent libevent_openssl libevent_pthreads libxml-2.0 gmime-3.0 libcurl
LIBS_EXTRA := -lcsv -lopendkim
CC       ?= gcc
BUILD    ?= build
WARN     := -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes -Wvla
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 -D_GNU_SOURCE $(WARN) -Isrc -I$(BUILD)/gen
ifdef CI
CFLAGS   += -Werror
endif
ifdef SANITIZE
CFLAGS   += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
BUILD    := build-san
endif
# make TSAN=1 test-tsan: ThreadSanitizer, in a build directory of its own;
# tests/tsan.supp says what is suppressed and why.
ifdef TSAN
CFLAGS   += -fsanitize=thread -fno-omit-frame-pointer
LDFLAGS  += -fsanitize=thread
BUILD    := build-tsan
endif

# The sub-makes of `make run` and `make test` build on every core: a
# newcomer types plain `make test`, and a serial build was a third of it.
NPROC    := $(shell nproc 2>/dev/null || echo 2)

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
LIBS       = $(PKG_LIBS) $(LIBS_EXTRA) -lpthread -lm

CORE_SRC  := $(wildcard src/core/*.c)
STORE_SRC := $(wildcard src/store/*.c)
HTTP_SRC  := $(wildcard src/http/*.c)
TPL_SRC   := $(wildcard src/template/*.c)
SMTP_SRC  := $(wildcard src/smtp/*.c)
APP_SRC   := $(wildcard src/app/*.c)
IMPORT_SRC := $(wildcard src/import/*.c)
WORKER_SRC := $(wildcard src/worker/*.c)
WEBHOOK_SRC := $(wildcard src/webhook/*.c)
BOUNCE_SRC := $(wildcard src/bounce/*.c)
CLI_SRC   := $(filter-out src/cli/main.c,$(wildcard src/cli/*.c))
LIB_SRC   := $(CORE_SRC) $(STORE_SRC) $(TPL_SRC) $(SMTP_SRC) $(BOUNCE_SRC) $(APP_SRC) $(IMPORT_SRC) $(WORKER_SRC) $(WEBHOOK_SRC) $(HTTP_SRC) $(CLI_SRC)
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/migrations_gen.o $(BUILD)/gen/console_gen.o
MIGRATIONS := $(sort $(wildcard migrations/sqlite/*.sql migrations/pg/*.sql))

UNIT_SRC  := $(wildcard tests/unit/*/test_*.c)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

# Fuzz targets: tests/fuzz/fuzz_NAME.c with its seed corpus in
# tests/fuzz/corpus/NAME/.  The replay binaries live in $(BUILD)/fuzz/, not
# $(BUILD)/tests/, which tests/run.sh treats as cmocka tests.
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_NAMES := $(FUZZ_SRC:tests/fuzz/fuzz_%.c=%)
FUZZ_REPLAY := $(FUZZ_NAMES:%=$(BUILD)/fuzz/fuzz_%_replay)
# libFuzzer builds: clang compiles the whole library once with coverage
# instrumentation and the sanitizers ($(BUILD)/fuzz/lib/), and each target
# links against that archive.
FUZZ_CC   ?= clang
FUZZ_SAN  := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_FLAGS := -g -O1 $(FUZZ_SAN) -std=c11 -D_GNU_SOURCE $(WARN) -Isrc -I$(BUILD)/gen
FUZZ_TIME ?= 60
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/fuzz/lib/%.o) $(BUILD)/fuzz/lib/gen/migrations_gen.o

all: mailcast

mailcast: $(BUILD)/mailcast
	@cp $< $@.tmp && mv -f $@.tmp $@

$(BUILD)/mailcast: $(BUILD)/src/cli/main.o $(BUILD)/libmailcast.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/libmailcast.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -MMD -MP -c -o $@ $<

# The directories too: a removed file changes only its directory's time.
$(BUILD)/gen/migrations_gen.c: $(MIGRATIONS) migrations/sqlite migrations/pg scripts/embed_sql.sh
	@mkdir -p $(dir $@)
	sh scripts/embed_sql.sh > $@.tmp && mv $@.tmp $@

$(BUILD)/gen/migrations_gen.o: $(BUILD)/gen/migrations_gen.c
	$(CC) $(CFLAGS) -c -o $@ $<

# The web console (console/, scripts/embed_console.sh).  npm runs only when
# console/package-lock.json changes: its stamp is npm's own record of the
# install.  The third-party modules are pinned exactly in the lock file.
CONSOLE_SRC := $(wildcard console/src/*)
CONSOLE_NPM := console/node_modules/.package-lock.json

$(CONSOLE_NPM): console/package.json console/package-lock.json
	cd console && npm ci --ignore-scripts --no-audit --no-fund --silent
	@touch $@

$(BUILD)/gen/console_gen.c: $(CONSOLE_SRC) console/src $(CONSOLE_NPM) scripts/embed_console.sh
	@mkdir -p $(dir $@)
	sh scripts/embed_console.sh $(BUILD)/console > $@.tmp && mv $@.tmp $@

$(BUILD)/gen/console_gen.o: $(BUILD)/gen/console_gen.c src/http/console.h
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libmailcast.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Itests/unit -o $@ $< $(BUILD)/libmailcast.a $(LDFLAGS) $(LIBS) -lcmocka

# Replays every seed of every fuzz target under the current CFLAGS (so
# SANITIZE=1 applies); needs neither clang nor libFuzzer.  Exits non-zero
# when a binary fails to build, an input crashes or trips a sanitizer, or a
# corpus is missing or empty.
fuzz-build: $(FUZZ_REPLAY)

fuzz-replay: $(FUZZ_REPLAY)
	@set -e; for n in $(FUZZ_NAMES); do \
	    $(BUILD)/fuzz/fuzz_$${n}_replay tests/fuzz/corpus/$$n; done

$(BUILD)/fuzz/fuzz_%_replay: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h tests/fuzz/replay.c $(BUILD)/libmailcast.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -o $@ $< tests/fuzz/replay.c $(BUILD)/libmailcast.a $(LDFLAGS) $(LIBS)

# Real fuzzing with libFuzzer (clang 14; runtime from libclang-rt-14-dev):
# each target runs FUZZ_TIME seconds, starting from its seeds and keeping
# what it finds in $(BUILD)/fuzz/corpus-NAME/ (add the good ones to the
# seed corpus by hand).  A crash leaves crash-* in the current directory.
fuzz: $(FUZZ_NAMES:%=$(BUILD)/fuzz/fuzz_%)
	@set -e; for n in $(FUZZ_NAMES); do \
	    mkdir -p $(BUILD)/fuzz/corpus-$$n; \
	    $(BUILD)/fuzz/fuzz_$$n -max_total_time=$(FUZZ_TIME) \
	        $(BUILD)/fuzz/corpus-$$n tests/fuzz/corpus/$$n; done

$(BUILD)/fuzz/lib/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link $(PKG_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/fuzz/lib/gen/migrations_gen.o: $(BUILD)/gen/migrations_gen.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -c -o $@ $<

$(BUILD)/fuzz/libmailcast-fuzz.a: $(FUZZ_LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(BUILD)/fuzz/libmailcast-fuzz.a
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer $(PKG_CFLAGS) -o $@ $< \
	    $(BUILD)/fuzz/libmailcast-fuzz.a $(LIBS)

deps:
	@bash scripts/deps.sh

deps-test:
	@bash scripts/deps.sh --test

# `make run` builds after deps in one shell, so pkg-config sees fresh packages.
run: deps
	@$(MAKE) -j$(NPROC) --no-print-directory mailcast
	@mkdir -p var
	./mailcast serve

unit: $(UNIT_BIN)

test: deps-test
	@$(MAKE) -j$(NPROC) --no-print-directory $(BUILD)/mailcast unit fuzz-build
	@bash tests/run.sh $(BUILD)

# make TSAN=1 test-tsan: the delivery, crash, fault, SMTP client and bounce listener tests
# under ThreadSanitizer (build-tsan/); any report fails (tests/tsan.sh).
test-tsan: deps-test
	@$(MAKE) -j$(NPROC) --no-print-directory TSAN=1 build-tsan/mailcast
	@bash tests/tsan.sh build-tsan

# Benchmarks (bench/README.md): C programs built against the library, then
# every benchmark in turn; each prints a ratio against a baseline measured in
# the same run.  BENCH_N scales the import and materialisation runs,
# BENCH_DELIVERY_N the delivery run; BENCH_STORES picks sqlite, postgres or both.
BENCH_BIN    := $(BUILD)/bench/template $(BUILD)/bench/import_baseline $(BUILD)/bench/materialise_baseline
BENCH_N      ?= 1000000
BENCH_DELIVERY_N ?= 100000
BENCH_BOUNCES_N ?= 5000
BENCH_STORES ?= sqlite,postgres
BENCH_ENV     = MAILCAST_BIN=$(BUILD)/mailcast BENCH_BIN_DIR=$(BUILD)/bench

bench-build: $(BENCH_BIN)

$(BUILD)/bench/%: bench/%.c bench/bench_util.h $(BUILD)/libmailcast.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -o $@ $< $(BUILD)/libmailcast.a $(LDFLAGS) $(LIBS)

bench: $(BUILD)/mailcast bench-build
	$(BUILD)/bench/template
	$(BENCH_ENV) /usr/bin/python3 bench/import --rows $(BENCH_N) --stores $(BENCH_STORES)
	$(BENCH_ENV) /usr/bin/python3 bench/materialise --rows $(BENCH_N) --stores $(BENCH_STORES)
	$(BENCH_ENV) /usr/bin/python3 bench/delivery --messages $(BENCH_DELIVERY_N) --stores $(BENCH_STORES)
	$(BENCH_ENV) /usr/bin/python3 bench/bounces --messages $(BENCH_BOUNCES_N) --stores $(BENCH_STORES)

clean:
	rm -rf build build-san mailcast console/node_modules

.PHONY: all mailcast deps deps-test run unit test test-tsan bench bench-build clean fuzz-build fuzz-replay fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
