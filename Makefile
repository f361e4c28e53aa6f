# SPDX-License-Identifier: BSD-3-Clause
# mikkoo: PgQ -> RabbitMQ relay and operator tools.
#
#   make                 build everything into $(O) (default build/)
#   make check           unit tests + the bats suite on throwaway real servers
#   make check-asan      the same, built with ASan+UBSan into build-asan/
#   make test            what CI runs: install deps, build, check-asan
#   make demo            the end-to-end demo on throwaway servers
#   make install         PREFIX=/usr/local DESTDIR=
#   make deb             build-deb/mikkoo_VERSION_ARCH.deb, checked by lintian
#
# Local overrides go in config.mk (not tracked).  V=1 shows full commands.

PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man
DATADIR ?= $(PREFIX)/share/mikkoo
# What the service directories, the unit and the example point at.
SYSCONFDIR ?= /etc
LOGDIR  ?= /var/log/mikkoo-relay
# Set (/lib/systemd/system) to install the unit where systemd reads it.
SYSTEMDUNITDIR ?=
DEBDIR  ?= build-deb
O       ?= build
CC      ?= cc
CFLAGS  ?= -O2 -g

-include config.mk

VERSION := 0.2.0

# What every program links, and what only the relay does (its /metrics
# and /health server).
PKGS       = libpq librabbitmq jansson yaml-0.1
RELAY_PKGS = libmicrohttpd
# Recursively expanded on purpose: pkg-config only runs when something is
# compiled, so "make deps" works before the -dev packages exist.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) $(RELAY_PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS))
RELAY_LIBS = $(shell pkg-config --libs $(RELAY_PKGS))

HARDEN_CFLAGS  = -fstack-protector-strong -D_FORTIFY_SOURCE=2
HARDEN_LDFLAGS = -Wl,-z,relro,-z,now
# Messages are built into fixed buffers and may be cut short on purpose,
# so -Wformat-truncation's findings are not bugs here.
ALL_CFLAGS  = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow \
	-Wno-missing-field-initializers -Wno-format-truncation -Icommon \
	$(EXTRA_INC) \
	-DMIKKOO_VERSION='"$(VERSION)"' $(HARDEN_CFLAGS) $(PKG_CFLAGS) \
	$(CPPFLAGS) $(CFLAGS) $(SAN)
ALL_LDFLAGS = $(HARDEN_LDFLAGS) $(LDFLAGS) $(SAN)

ASAN_FLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer

ifneq ($(V),1)
Q = @
QCC = @echo '   CC     $@';
QAR = @echo '   AR     $@';
QLD = @echo '   LD     $@';
endif

CMDS       := $(notdir $(wildcard cmd/*))
COMMON_SRC := $(wildcard common/*.c)
COMMON_OBJ := $(COMMON_SRC:%.c=$(O)/%.o)
LIB        := $(O)/libmikkoo.a
# The relay's own modules (cmd/mikkoo-relay/ but main.c), also an archive
# for the unit tests, fuzzers and benchmarks that exercise them.
RELAY_SRC  := $(filter-out %/main.c,$(wildcard cmd/mikkoo-relay/*.c))
RELAY_OBJ  := $(RELAY_SRC:%.c=$(O)/%.o)
RELAY_LIB  := $(O)/librelay.a
BINS       := $(CMDS:%=$(O)/bin/%)
UNIT_SRC   := $(wildcard test/unit/test-*.c)
UNITS      := $(UNIT_SRC:test/unit/%.c=$(O)/test/%)
TOOL_SRC   := $(wildcard test/tools/*.c bench/*.c)
TOOLS      := $(patsubst %.c,$(O)/%,$(TOOL_SRC))
MANS       := $(wildcard man/*.[1-9])

# mikkoo.sql, put together from its parts (in this order: each part
# says what it holds).
SQL_PARTS := $(addprefix sql/,schema.sql audit.sql events.sql capture.sql \
	snapshot.sql logical.sql grants.sql upgrade.sql)
SQL       := $(O)/mikkoo.sql

all: $(BINS) $(SQL)

$(SQL): $(SQL_PARTS)
	@mkdir -p $(dir $@)
	$(Q)cat $^ >$@.tmp && mv $@.tmp $@

$(O)/%.o: %.c
	@mkdir -p $(dir $@)
	$(QCC)$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(LIB): $(COMMON_OBJ)
	$(QAR)rm -f $@ && $(AR) rcs $@.tmp $^ && mv $@.tmp $@
$(RELAY_LIB): $(RELAY_OBJ)
	$(QAR)rm -f $@ && $(AR) rcs $@.tmp $^ && mv $@.tmp $@

# The relay's headers are for the relay and what tests its modules.
$(O)/cmd/mikkoo-relay/%.o $(O)/test/unit/%.o $(O)/test/tools/%.o \
$(O)/bench/%.o: EXTRA_INC = -Icmd/mikkoo-relay

# One rule per command: every .c under cmd/NAME/ links into bin/NAME.
define cmd_rule
$(O)/bin/$(1): $(patsubst %.c,$(O)/%.o,$(wildcard cmd/$(1)/*.c)) $(LIB)
	@mkdir -p $$(dir $$@)
	$$(QLD)$$(CC) -o $$@ $$^ $$(ALL_LDFLAGS) $$(PKG_LIBS) \
		$$(if $$(filter mikkoo-relay,$(1)),$$(RELAY_LIBS)) -lm
endef
$(foreach c,$(CMDS),$(eval $(call cmd_rule,$(c))))

# Tests and benchmarks link the relay's archive before the common one.
$(O)/test/%: $(O)/test/unit/%.o $(RELAY_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(QLD)$(CC) -o $@ $^ $(ALL_LDFLAGS) $(PKG_LIBS) $(RELAY_LIBS) -lm

$(O)/test/tools/%: $(O)/test/tools/%.o $(RELAY_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(QLD)$(CC) -o $@ $^ $(ALL_LDFLAGS) $(PKG_LIBS) $(RELAY_LIBS) -lm
$(O)/bench/%: $(O)/bench/%.o $(RELAY_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(QLD)$(CC) -o $@ $^ $(ALL_LDFLAGS) $(PKG_LIBS) $(RELAY_LIBS) -lm

units: $(UNITS)
tools: $(TOOLS)

# libFuzzer targets (clang): the mapping, the config and URL parsers, the
# JSON-lines reader, the confirm tracker.  make fuzz runs each for
# FUZZ_SECONDS on a copy of the committed seed corpus; the suite runs a
# short round (test/85-fuzz.bats).
FUZZ_SRC     := $(wildcard fuzz/fuzz-*.c)
FUZZ_SECONDS ?= 60
FUZZ_SAN      = -fsanitize=address,undefined -fno-sanitize-recover=all

$(O)/fuzz/%: fuzz/%.c fuzz/canary.h $(RELAY_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(QLD)$(CC) $(ALL_CFLAGS) -Icmd/mikkoo-relay -fsanitize=fuzzer -o $@ \
		$< $(RELAY_LIB) $(LIB) $(ALL_LDFLAGS) $(PKG_LIBS) $(RELAY_LIBS) -lm

fuzzers: $(FUZZ_SRC:fuzz/%.c=$(O)/fuzz/%)

fuzz-build:
	$(Q)$(MAKE) --no-print-directory O=build-fuzz CC=clang CFLAGS='-O1 -g -Wno-unknown-warning-option' \
		SAN='-fsanitize=fuzzer-no-link $(FUZZ_SAN)' fuzzers

fuzz: fuzz-build
	$(Q)for f in build-fuzz/fuzz/fuzz-*; do n=$${f##*/}; \
		mkdir -p build-fuzz/corpus/$$n && \
		cp -n fuzz/corpus/$$n/* build-fuzz/corpus/$$n/ 2>/dev/null; \
		$$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
			build-fuzz/corpus/$$n || exit 1; done

# The suite: unit binaries and bats files, on real servers started by
# test/run itself.  MIKKOO_BIN tells the tests which build to exercise.
# PLAIN_BIN: an unsanitized build for the valgrind tests (valgrind cannot
# run ASan binaries).
PLAIN_BIN ?= $(abspath $(O))/bin

check: all units tools
	$(Q)MIKKOO_BUILD=$(abspath $(O)) MIKKOO_PLAIN_BIN=$(PLAIN_BIN) \
		MIKKOO_FUZZ_BIN=$(abspath build-fuzz)/fuzz test/run $(TESTS)

# The test build also has the relay's fault points (MIKKOO_FAULT).
check-asan: all fuzz-build
	$(Q)$(MAKE) --no-print-directory O=build-asan \
		CFLAGS='-O1 -g -DMIKKOO_TEST_HOOKS' \
		SAN='$(ASAN_FLAGS)' PLAIN_BIN=$(abspath $(O))/bin check

check-valgrind: all units tools
	$(Q)MIKKOO_BUILD=$(abspath $(O)) MIKKOO_WRAP='valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --track-fds=no' test/run $(TESTS)

# Ten minutes of random faults under the oracle (not part of check).
soak: all tools
	$(Q)MIKKOO_BUILD=$(abspath $(O)) test/soak $(SOAK_SECONDS)

lint-man:
	$(Q)mandoc -Tlint -Wwarning $(MANS)

# The C sources clang-format keeps to the house style (.clang-format).
FORMATTED = $(wildcard common/*.[ch] cmd/*/*.[ch] bench/*.c fuzz/*.[ch] \
	test/unit/*.c test/tools/*.c)

format-check:
	$(Q)clang-format --dry-run --Werror $(FORMATTED)

format:
	$(Q)clang-format -i $(FORMATTED)

deps:
	$(Q)scripts/install-deps

# CI's entry point: a clean Debian 12 machine to a green suite.
test: deps
	$(Q)$(MAKE) --no-print-directory format-check
	$(Q)$(MAKE) --no-print-directory all
	$(Q)$(MAKE) --no-print-directory check-asan

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)MIKKOO_BUILD=$(abspath $(O)) scripts/demo

bench: deps
	$(Q)$(MAKE) --no-print-directory all tools
	$(Q)MIKKOO_BUILD=$(abspath $(O)) bench/run

# The paths the files in dist/ and the man pages name, as installed.
DIST_SED = sed -e 's|/usr/bin/mikkoo|$(BINDIR)/mikkoo|g' \
	-e 's|/etc/mikkoo|$(SYSCONFDIR)/mikkoo|g' \
	-e 's|/var/log/mikkoo-relay|$(LOGDIR)|g' \
	-e 's|/usr/share/mikkoo|$(DATADIR)|g' \
	-e 's|/usr/local/share/mikkoo|$(DATADIR)|g'
DIST_DIRS = s6 runit systemd prometheus grafana examples

install: all install-dist
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR)
	install -m 755 $(BINS) $(DESTDIR)$(BINDIR)/
	install -m 644 $(SQL) $(DESTDIR)$(DATADIR)/
	for m in $(MANS); do \
		s=$${m##*.}; install -d $(DESTDIR)$(MANDIR)/man$$s; \
		$(DIST_SED) $$m >$(DESTDIR)$(MANDIR)/man$$s/$${m##*/} && \
		chmod 644 $(DESTDIR)$(MANDIR)/man$$s/$${m##*/} || exit 1; done

# dist/: the s6 and runit service directories, the systemd unit, the
# Prometheus rules, the Grafana dashboard and an example configuration,
# into $(DATADIR) with their paths made the installed ones.
install-dist:
	cd dist && find $(DIST_DIRS) -type f | sort | while read -r f; do \
		m=644; [ -x "$$f" ] && m=755; \
		install -d "$(DESTDIR)$(DATADIR)/$${f%/*}" && \
		$(DIST_SED) "$$f" >"$(DESTDIR)$(DATADIR)/$$f" && \
		chmod $$m "$(DESTDIR)$(DATADIR)/$$f" || exit 1; done
	if [ -n "$(SYSTEMDUNITDIR)" ]; then \
		install -d $(DESTDIR)$(SYSTEMDUNITDIR) && \
		install -m 644 $(DESTDIR)$(DATADIR)/systemd/mikkoo-relay.service \
			$(DESTDIR)$(SYSTEMDUNITDIR)/; fi

uninstall:
	rm -f $(CMDS:%=$(DESTDIR)$(BINDIR)/%) $(DESTDIR)$(DATADIR)/mikkoo.sql
	for m in $(MANS); do s=$${m##*.}; \
		rm -f $(DESTDIR)$(MANDIR)/man$$s/$$(basename $$m); done
	rm -rf $(DIST_DIRS:%=$(DESTDIR)$(DATADIR)/%)
	[ -z "$(SYSTEMDUNITDIR)" ] || \
		rm -f $(DESTDIR)$(SYSTEMDUNITDIR)/mikkoo-relay.service
	-rmdir $(DESTDIR)$(DATADIR)

# The Debian package, built from a copy of the tree (its clean step
# would otherwise remove build-asan/), then checked by lintian.
deb:
	$(Q)DEBDIR=$(abspath $(DEBDIR)) VERSION=$(VERSION) scripts/build-deb

clean:
	rm -rf build build-asan build-fuzz build-deb

# Keep objects make sees as intermediate (unit tests, tools).
.SECONDARY:

# fuzzers and fuzz-build are phony so they always check the fuzz build
.PHONY: all units tools fuzzers fuzz-build fuzz check check-asan check-valgrind soak lint-man \
	format-check format deps test demo bench install install-dist uninstall deb clean

-include $(COMMON_OBJ:.o=.d) $(wildcard $(O)/cmd/*/*.d $(O)/test/*/*.d $(O)/bench/*.d)
