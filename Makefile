# migrate: build, test and demo. See README.md.
#
#   make          build ./migrate
#   make test     install missing Debian packages, run the whole suite, then
#                 the whole suite again under AddressSanitizer + UBSan
#   make demo     install missing packages, build, and run the demo
#
# Variables: CC (gcc or clang), SAN=1 (sanitizer build), BUILD (output dir).

CC      ?= cc
BUILD   ?= build
PKGS     = yaml-0.1 jansson libcurl libssh2 libgit2
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
GITREV  := $(shell git rev-parse --short HEAD 2>/dev/null)

WARN     = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
           -Wno-missing-field-initializers
CFLAGS  ?= -O2 -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -pthread $(WARN) $(CFLAGS) -Ilib \
             $(shell pkg-config --cflags $(PKGS))
LIBS     = -Wl,--as-needed $(shell pkg-config --libs $(PKGS)) -lm -pthread
TEST_LIBS = $(shell pkg-config --libs criterion)

ifeq ($(SAN),1)
SANFLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
ALL_CFLAGS += $(SANFLAGS) -O1
LDSAN    = $(SANFLAGS)
endif
# Sanitizers halt on the first error and report leaks; used for every test run.
export ASAN_OPTIONS  = detect_leaks=1:halt_on_error=1:abort_on_error=0:strict_string_checks=1
export UBSAN_OPTIONS = halt_on_error=1:print_stacktrace=1
# Criterion's own runner leaks a timer record now and then: tests/lsan.supp says which.
export LSAN_OPTIONS  = suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0

LIB_SRC  = $(sort $(wildcard lib/*.c lib/*/*.c))
CMD_SRC  = $(sort $(wildcard cmd/*.c))
UNIT_SRC = $(sort $(wildcard tests/unit/*.c)) tests/testutil.c
INT_SRC  = $(sort $(wildcard tests/integration/*.c)) tests/testutil.c
LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o)
CMD_OBJ  = $(CMD_SRC:%.c=$(BUILD)/%.o)
UNIT_OBJ = $(UNIT_SRC:%.c=$(BUILD)/%.o)
INT_OBJ  = $(INT_SRC:%.c=$(BUILD)/%.o)
BJ_SRC   = $(sort $(wildcard tests/bench/judge/*.c))
BJ_OBJ   = $(BJ_SRC:%.c=$(BUILD)/%.o)
LIBMG    = $(BUILD)/libmigrate.a

# Exactly what building, testing and the demo need from Debian: the libraries, and the real
# daemons the tests drive (haproxy, nginx, and prometheus, whose package also has the promtool
# that turns the tests' OpenMetrics fixtures into TSDB blocks), python3 for the test servers,
# openssl for test CAs, chromium: the headless browser that loads `migrate report`'s page.
DEB_PACKAGES = gcc libc6-dev make pkg-config git libyaml-dev libjansson-dev \
               libcurl4-openssl-dev libssh2-1-dev libgit2-dev libcriterion-dev \
               clang-format haproxy nginx prometheus python3 python3-yaml openssl openssh-server \
               chromium
# The deploy benchmark compares against Ansible; only `make bench` needs it.
BENCH_PACKAGES = $(DEB_PACKAGES) ansible-core

.PHONY: FORCE all bench bench-judge deps check unit integration integration-kube fuzz-replay fuzz fuzz-long test test-asan demo format \
        format-check lint examples-check test-programs syntax-check clean
.DEFAULT_GOAL := all

all: migrate

migrate: $(BUILD)/migrate
	@if [ "$(BUILD)" = build ]; then ln -sf $(BUILD)/migrate migrate; fi

$(BUILD)/migrate: $(CMD_OBJ) $(LIBMG)
	$(CC) $(LDSAN) -o $@ $(CMD_OBJ) $(LIBMG) $(LIBS)

$(LIBMG): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

# --version names the commit: main.o is rebuilt when the version or the commit changes.
$(BUILD)/version.stamp: FORCE
	@mkdir -p $(dir $@)
	@echo '$(VERSION) $(GITREV)' | cmp -s - $@ || echo '$(VERSION) $(GITREV)' > $@
# (http.c puts the version in the User-Agent; buildinfo.c gives it to the library.)
$(BUILD)/cmd/main.o $(BUILD)/lib/core/http.o $(BUILD)/lib/core/buildinfo.o: $(BUILD)/%.o: %.c $(BUILD)/version.stamp
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DMG_VERSION='"$(VERSION)"' -DMG_GITREV='"$(GITREV)"' -MMD -MP -c -o $@ $<
FORCE:

-include $(LIB_OBJ:.o=.d) $(CMD_OBJ:.o=.d) $(UNIT_OBJ:.o=.d) $(INT_OBJ:.o=.d) $(BJ_OBJ:.o=.d)

$(BUILD)/tests/unit.bin: $(UNIT_OBJ) $(LIBMG)
	$(CC) $(LDSAN) -o $@ $(UNIT_OBJ) $(LIBMG) $(LIBS) $(TEST_LIBS)

$(BUILD)/tests/integration.bin: $(INT_OBJ) $(LIBMG)
	$(CC) $(LDSAN) -o $@ $(INT_OBJ) $(LIBMG) $(LIBS) $(TEST_LIBS)

$(BUILD)/tests/bench-judge: $(BJ_OBJ) $(LIBMG)
	$(CC) $(LDSAN) -o $@ $(BJ_OBJ) $(LIBMG) $(LIBS)

# One replay binary per fuzz target (tests/fuzz/<target>_fuzz.c, corpus tests/fuzz/corpus/<target>/),
# built with any compiler: `make check` runs every corpus through them.
FUZZ_TARGETS = plan nginxconf kubeconfig template prometheus cloudflare kubeapi
FUZZ_COMMON  = tests/fuzz/replay.c tests/fuzz/fuzzutil.c
$(BUILD)/tests/fuzz-replay-%: tests/fuzz/%_fuzz.c $(FUZZ_COMMON) tests/fuzz/fuzzutil.h $(LIBMG)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDSAN) -o $@ $< $(FUZZ_COMMON) $(LIBMG) $(LIBS)

# Every source of the binary and the test programs through the compiler's front end only
# (-fsyntax-only, a stamp per file): `make test` runs it with clang, whose warnings all come
# from the front end (the flow-based ones such as -Wsometimes-uninitialized too), so -Werror
# fails here as a full clang build would, without generating the code the gcc build already has.
SYNTAX_SRC = $(sort $(LIB_SRC) $(CMD_SRC) $(UNIT_SRC) $(INT_SRC))
SYNTAX_OUT = $(SYNTAX_SRC:%.c=$(BUILD)/%.syntax)
syntax-check: $(SYNTAX_OUT)
$(BUILD)/%.syntax: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DMG_VERSION='"$(VERSION)"' -DMG_GITREV='"$(GITREV)"' -fsyntax-only \
	  -MMD -MP -MT $@ -MF $(@:.syntax=.sd) $< && touch $@
-include $(SYNTAX_OUT:.syntax=.sd)

# Tests run from the repository root so fixtures are found by relative path.
unit: $(BUILD)/tests/unit.bin
	$(BUILD)/tests/unit.bin --jobs 2

integration: $(BUILD)/tests/integration.bin $(BUILD)/migrate
	MIGRATE_BIN=$(CURDIR)/$(BUILD)/migrate $(BUILD)/tests/integration.bin --jobs 2

# The CLI suites again with every plan's state in the cluster: MG_TEST_STATE_BACKEND=kubernetes
# gives each test a tests/servers/kubeapi.py of its own and rewrites its plans' `state:` to
# `backend: kubernetes` (tests/testutil.h), so every command must behave the same with either
# backend. KUBE_SUITES="step cli" runs those alone.
KUBE_SUITES ?= step autopilot cli nginx dual deploy secrets gate report
empty :=
space := $(empty) $(empty)
integration-kube: $(BUILD)/tests/integration.bin $(BUILD)/migrate
	MG_TEST_STATE_BACKEND=kubernetes MIGRATE_BIN=$(CURDIR)/$(BUILD)/migrate \
	  $(BUILD)/tests/integration.bin --jobs 2 --filter '@($(subst $(space),|,$(strip $(KUBE_SUITES))))/*'

bench: PKG_SET = $(BENCH_PACKAGES)
bench: deps all
	sh tests/bench/rollback.sh
	sh tests/bench/breach.sh
	MIGRATE_BIN=$(BUILD)/migrate sh tests/bench/configmap.sh
	MIGRATE_BIN=$(BUILD)/migrate sh tests/bench/history.sh
	MIGRATE_BIN=$(BUILD)/migrate sh tests/bench/deploy.sh
	MIGRATE_BIN=$(BUILD)/migrate sh tests/bench/kubestate.sh
	MIGRATE_BIN=$(BUILD)/migrate sh tests/bench/leader.sh
	$(MAKE) --no-print-directory bench-judge

# The error-rate judge against other rules on simulated steps (docs/gates.md (the benchmark)): a
# Markdown table on stdout, a JSON object per row in $(BUILD)/bench-judge.jsonl (and per
# scenario in bench-judge-cells.jsonl); exits non-zero when a figure is impossible. Needs
# nothing but the library: no deps, no network.
bench-judge: $(BUILD)/tests/bench-judge
	$(BUILD)/tests/bench-judge --jsonl $(BUILD)/bench-judge.jsonl --cells $(BUILD)/bench-judge-cells.jsonl

# Every program `make check` runs, so that `make -j` builds them all before any test starts.
test-programs: $(BUILD)/migrate $(BUILD)/tests/unit.bin $(BUILD)/tests/integration.bin \
               $(FUZZ_TARGETS:%=$(BUILD)/tests/fuzz-replay-%)

fuzz-replay: $(FUZZ_TARGETS:%=$(BUILD)/tests/fuzz-replay-%)
	@for t in $(FUZZ_TARGETS); do \
	  printf '%s: ' $$t; $(BUILD)/tests/fuzz-replay-$$t tests/fuzz/corpus/$$t || exit 1; \
	done

# integration-kube after the normal integration run, never beside it (both use both cores).
# KUBE_CHECK=0 leaves it out: `make test` runs it in the gcc pass only (the backend switch
# checks behaviour, which the sanitizers do not change; the kube store's code runs under them
# in the kubestore, kubecli, kubestate and leader suites), to keep CI near its time budget.
KUBE_CHECK ?= 1
check: unit integration fuzz-replay
	@if [ "$(KUBE_CHECK)" = 1 ]; then $(MAKE) --no-print-directory integration-kube; fi

# Short libFuzzer runs when clang is there (tests/fuzz/run.sh says when it is not):
# FUZZ_SECONDS in all, split between the targets.
FUZZ_SECONDS ?= 20
fuzz:
	sh tests/fuzz/run.sh $(FUZZ_SECONDS)

# Each target for FUZZ_LONG_SECONDS, one after another; findings in build-fuzz/crashes/<target>/,
# new coverage merged into tests/fuzz/corpus/<target>/ (see tests/fuzz/README.md).
# FUZZ_ONLY="template kubeapi" runs those alone.
FUZZ_LONG_SECONDS ?= 600
fuzz-long:
	sh tests/fuzz/run.sh --long $(FUZZ_LONG_SECONDS) "$(FUZZ_ONLY)"

# Warnings fail the build here, so "warning-free under gcc and clang" stays true.
# Builds use every core (NPROC); the test runs set their own --jobs. Each stage prints the time
# it starts, so a CI log shows where the minutes go.
NPROC := $(shell nproc 2>/dev/null || echo 2)
stage = @date '+test: %T $(1)'
test: deps
	$(call stage,format-check)
	$(MAKE) --no-print-directory format-check
	$(call stage,gcc build)
	$(MAKE) --no-print-directory -j$(NPROC) CFLAGS='-O2 -g -Werror' test-programs
	$(call stage,lint)
	$(MAKE) --no-print-directory CFLAGS='-O2 -g -Werror' lint
	$(call stage,examples-check)
	$(MAKE) --no-print-directory CFLAGS='-O2 -g -Werror' examples-check
	$(call stage,install-check)
	$(MAKE) --no-print-directory CFLAGS='-O2 -g -Werror' install-check
	$(call stage,gcc check)
	$(MAKE) --no-print-directory CFLAGS='-O2 -g -Werror' check
	$(call stage,asan build)
	$(MAKE) --no-print-directory -j$(NPROC) BUILD=build-asan SAN=1 CFLAGS='-g -Werror' test-programs
	$(call stage,asan check)
	$(MAKE) --no-print-directory BUILD=build-asan SAN=1 CFLAGS='-g -Werror' KUBE_CHECK=0 check
	$(call stage,clang warnings)
	@if command -v clang >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory -j$(NPROC) CC=clang BUILD=build-clang CFLAGS='-O2 -g -Werror' \
	    syntax-check; \
	else echo "test: clang not installed; gcc build only"; fi
	$(call stage,fuzz)
	$(MAKE) --no-print-directory fuzz
	$(call stage,done)

demo: deps
	$(MAKE) --no-print-directory all
	@sh examples/demo.sh

# Another apt (unattended-upgrades on a fresh VM) may hold the dpkg lock: wait for it.
PKG_SET ?= $(DEB_PACKAGES)
deps:
	@missing=""; for p in $(PKG_SET); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  if [ "$$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi; \
	  $$sudo apt-get -o DPkg::Lock::Timeout=600 update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
	    --no-install-recommends $$missing; \
	fi

FORMAT_SRC = $(sort $(LIB_SRC) $(CMD_SRC) $(wildcard lib/*.h lib/*/*.h cmd/*.h) $(UNIT_SRC) $(INT_SRC) \
             $(wildcard tests/*.h tests/unit/*.h tests/fuzz/*.c tests/fuzz/*.h) \
             $(BJ_SRC) $(wildcard tests/bench/judge/*.h))
format:
	clang-format -i $(FORMAT_SRC)

format-check:
	clang-format --dry-run --Werror $(FORMAT_SRC)

# The library's rules, mechanically (tests/lint.sh says which), then proof that each check fires.
lint: $(LIBMG)
	sh tests/lint.sh . $(LIBMG)
	CC='$(CC)' sh tests/lint-selftest.sh

# examples/kubernetes (the leader-elected autopilot) checked offline: the manifests, the Role
# against docs/kubernetes.md, the plan through `migrate validate`, the Containerfile's packages
# against ldd. Parts whose tool is missing (PyYAML, kubectl) are skipped and say so.
examples-check: $(BUILD)/migrate
	MIGRATE_BIN=$(CURDIR)/$(BUILD)/migrate sh tests/examples-kubernetes.sh

# ---- make install / make uninstall (issue 17) ---------------------------------------------------
# Installs the binary, migrate(1) and migrate-plan(5), the bash and zsh completions in their
# standard places, and the templates, example plans and examples under share/migrate/. The man
# page and the completions are written by the binary itself from its command table (`migrate
# __generate man|bash|zsh`, cmd/generate.c): the rows --help prints, so they cannot say something
# else. migrate-plan(5) is made from docs/plan.md by docs/plan2man.awk, which fails the build on
# Markdown it does not know rather than drop a key. `make` builds them too, so a docs/plan.md it
# cannot read fails at once. DESTDIR stages (packaging); PREFIX=$HOME/.local installs for one user.
# tests/install.sh (`make install-check`, run by `make test`) checks the installed tree.
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
MANDIR      ?= $(PREFIX)/share/man
SHAREDIR    ?= $(PREFIX)/share/migrate
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  ?= $(PREFIX)/share/zsh/site-functions
INSTALL     ?= install
# share/migrate/ gets templates/, plans/ and examples/, less the demo's own files (its script,
# app and plans only run inside this tree, with tests/sandbox/).
SHARE_EXCLUDE = examples/demo.sh examples/app/% plans/demo.yaml plans/demo-deploy.yaml
SHARE_FILES   = $(filter-out $(SHARE_EXCLUDE),$(shell find templates plans examples -type f \
                  ! -name '*.pyc' ! -name '*~' | LC_ALL=C sort))
GEN_DIR   = $(BUILD)/share
GEN_FILES = $(GEN_DIR)/migrate.1 $(GEN_DIR)/migrate-plan.5 $(GEN_DIR)/migrate.bash $(GEN_DIR)/_migrate
MAN_DATE := $(shell git log -1 --format=%cs 2>/dev/null)
# The man pages' and completions' tests need man, groff, bash-completion's loader and zsh.
DEB_PACKAGES += man-db groff-base bash-completion zsh

.PHONY: install uninstall install-check
all: $(GEN_FILES)

$(GEN_DIR)/migrate.1: $(BUILD)/migrate
	@mkdir -p $(dir $@)
	$(BUILD)/migrate __generate man '$(MAN_DATE)' > $@.tmp || { rm -f $@.tmp; exit 1; }
	@mv $@.tmp $@
$(GEN_DIR)/migrate.bash: $(BUILD)/migrate
	@mkdir -p $(dir $@)
	$(BUILD)/migrate __generate bash > $@.tmp || { rm -f $@.tmp; exit 1; }
	@mv $@.tmp $@
$(GEN_DIR)/_migrate: $(BUILD)/migrate
	@mkdir -p $(dir $@)
	$(BUILD)/migrate __generate zsh > $@.tmp || { rm -f $@.tmp; exit 1; }
	@mv $@.tmp $@
$(GEN_DIR)/migrate-plan.5: docs/plan.md docs/plan2man.awk $(BUILD)/version.stamp
	@mkdir -p $(dir $@)
	LC_ALL=C awk -v version='$(VERSION)' -v date='$(MAN_DATE)' -f docs/plan2man.awk docs/plan.md \
	  > $@.tmp || { rm -f $@.tmp; exit 1; }
	@mv $@.tmp $@

install: $(BUILD)/migrate $(GEN_FILES)
	$(INSTALL) -d '$(DESTDIR)$(BINDIR)' '$(DESTDIR)$(MANDIR)/man1' '$(DESTDIR)$(MANDIR)/man5' \
	  '$(DESTDIR)$(BASHCOMPDIR)' '$(DESTDIR)$(ZSHCOMPDIR)'
	$(INSTALL) -m 755 $(BUILD)/migrate '$(DESTDIR)$(BINDIR)/migrate'
	$(INSTALL) -m 644 $(GEN_DIR)/migrate.1 '$(DESTDIR)$(MANDIR)/man1/migrate.1'
	$(INSTALL) -m 644 $(GEN_DIR)/migrate-plan.5 '$(DESTDIR)$(MANDIR)/man5/migrate-plan.5'
	$(INSTALL) -m 644 $(GEN_DIR)/migrate.bash '$(DESTDIR)$(BASHCOMPDIR)/migrate'
	$(INSTALL) -m 644 $(GEN_DIR)/_migrate '$(DESTDIR)$(ZSHCOMPDIR)/_migrate'
	@for f in $(SHARE_FILES); do \
	  if [ -x "$$f" ]; then m=755; else m=644; fi; \
	  $(INSTALL) -d '$(DESTDIR)$(SHAREDIR)/'"$${f%/*}" && \
	  $(INSTALL) -m $$m "$$f" '$(DESTDIR)$(SHAREDIR)/'"$$f" || exit 1; \
	done
	@echo 'install: $(words $(SHARE_FILES)) templates, plans and examples in $(DESTDIR)$(SHAREDIR)'

# Removes what install put there, and share/migrate's directories once empty; leaves the
# standard directories (bin, man1, completions, ...) as automake does.
uninstall:
	rm -f '$(DESTDIR)$(BINDIR)/migrate' '$(DESTDIR)$(MANDIR)/man1/migrate.1' \
	  '$(DESTDIR)$(MANDIR)/man5/migrate-plan.5' '$(DESTDIR)$(BASHCOMPDIR)/migrate' \
	  '$(DESTDIR)$(ZSHCOMPDIR)/_migrate'
	@for f in $(SHARE_FILES); do rm -f '$(DESTDIR)$(SHAREDIR)/'"$$f" || exit 1; done
	@for f in $(SHARE_FILES); do \
	  d=$${f%/*}; while :; do echo "$$d"; [ "$$d" = "$${d%/*}" ] && break; d=$${d%/*}; done; \
	done | LC_ALL=C sort -ru | while read -r d; do rmdir '$(DESTDIR)$(SHAREDIR)/'"$$d" 2>/dev/null; done; \
	rmdir '$(DESTDIR)$(SHAREDIR)' 2>/dev/null; \
	echo 'uninstall: removed migrate from $(DESTDIR)$(PREFIX)'

install-check: $(BUILD)/migrate $(GEN_FILES)
	MAKE='$(MAKE)' BUILD='$(BUILD)' sh tests/install.sh
# ---- end of make install ---------------------------------------------------------------------------

clean:
	rm -rf build build-asan build-clang build-fuzz migrate
