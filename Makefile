# Postmesh build. `make run` and `make test` are all a fresh Debian 12 machine needs.
# BUILD selects the output directory so parallel builds (e.g. sanitizer) do not collide.
BUILD   ?= build
SAN     ?= 0
PYTHON  := /usr/bin/python3
CC      := gcc
PKGS    := libzmq libprotobuf-c lmdb ldns libconfig libevent libevent_openssl openssl libseccomp libcrypt opendkim libidn2
CONFIG  ?= deploy/local/postmesh.conf

CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -Icommon -I$(BUILD)/gen
ifeq ($(SAN),1)
CFLAGS_OPT := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDSAN      := -fsanitize=address,undefined
else
CFLAGS_OPT := -O2
LDSAN      :=
endif
CFLAGS  := $(CFLAGS_BASE) $(CFLAGS_OPT) $(EXTRA_CFLAGS) $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# libspf2 and libopendmarc ship no pkg-config file.
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lspf2 -lopendmarc -lpthread

# A service's own libraries beyond the common set: <svc>_PKGS (pkg-config names) compile
# and link only its objects, its binary and its unit tests (GMime for imapd's MIME).
imapd_PKGS := gmime-3.0
resolver_PKGS := libunbound
mta_PKGS := libcurl
queue_PKGS := zlib json-c

# services/<svc>/*.c -> $(BUILD)/bin/postmesh-<svc>; services/cli is the `postmesh` CLI.
SERVICES := $(notdir $(patsubst %/,%,$(wildcard services/*/)))
BINS     := $(foreach s,$(SERVICES),$(BUILD)/bin/$(if $(filter cli,$(s)),postmesh,postmesh-$(s)))

PROTO_C  := $(BUILD)/gen/postmesh.pb-c.c
COMMON_SRC := $(wildcard common/*.c)
COMMON_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(COMMON_SRC)) $(BUILD)/obj/gen/postmesh.pb-c.o
LIBCOMMON  := $(BUILD)/lib/libcommon.a

UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))

.PHONY: all deps deps-check run test unit unit-run integration bench clean valgrind install
.SECONDARY:

all: deps-check $(BINS)

deps:
	@sh scripts/install-deps.sh

deps-check:
	@sh scripts/install-deps.sh

$(PROTO_C): proto/postmesh.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --proto_path=proto --c_out=$(BUILD)/gen $<

$(BUILD)/gen/postmesh.pb-c.h: $(PROTO_C)

$(BUILD)/obj/gen/postmesh.pb-c.o: $(PROTO_C)
	@mkdir -p $(dir $@)
	@echo "  CC  $<"
	@$(CC) $(CFLAGS) -Wno-unused-parameter -c $< -o $@

$(BUILD)/obj/%.o: %.c $(BUILD)/gen/postmesh.pb-c.h
	@mkdir -p $(dir $@)
	@echo "  CC  $<"
	@$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(LIBCOMMON): $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	@rm -f $@ && ar rcs $@ $^

# Each service's objects except main.o form lib<svc>.a so unit tests can link its parsers.
define service_rules
$(1)_SRC := $$(wildcard services/$(1)/*.c)
$(1)_OBJ := $$(patsubst %.c,$$(BUILD)/obj/%.o,$$($(1)_SRC))
$(1)_CFLAGS := $$(if $$($(1)_PKGS),$$(shell pkg-config --cflags $$($(1)_PKGS) 2>/dev/null))
$(1)_LDLIBS := $$(if $$($(1)_PKGS),$$(shell pkg-config --libs $$($(1)_PKGS) 2>/dev/null))
$$($(1)_OBJ): CFLAGS += $$($(1)_CFLAGS)
$$(BUILD)/lib/lib$(1).a: $$(filter-out %/main.o,$$($(1)_OBJ))
	@mkdir -p $$(dir $$@)
	@rm -f $$@ && ar rcs $$@ $$^
$$(BUILD)/bin/$(if $(filter cli,$(1)),postmesh,postmesh-$(1)): $$($(1)_OBJ) $$(LIBCOMMON)
	@mkdir -p $$(dir $$@)
	@echo "  LD  $$@"
	@$$(CC) $$(LDSAN) -o $$@ $$($(1)_OBJ) $$(LIBCOMMON) $$($(1)_LDLIBS) $$(LDLIBS)
endef
$(foreach s,$(SERVICES),$(eval $(call service_rules,$(s))))

# tests/unit/test_<svc>_<what>.c links lib<svc>.a when services/<svc> exists (so a broken
# service never blocks another's tests); test_common_*.c links libcommon only.
define unit_rule
$(1)_SVC := $$(word 2,$$(subst _, ,$(1)))
$(1)_LIB := $$(if $$(filter $$($(1)_SVC),$$(SERVICES)),$$(BUILD)/lib/lib$$($(1)_SVC).a)
$$(BUILD)/tests/$(1): tests/unit/$(1).c $$($(1)_LIB) $$(LIBCOMMON)
	@mkdir -p $$(dir $$@)
	@echo "  LD  $$@"
	@$$(CC) $$(CFLAGS) $$($$($(1)_SVC)_CFLAGS) -Iservices -o $$@ $$< $$($(1)_LIB) $$(LIBCOMMON) $$(LDSAN) \
	    $$($$($(1)_SVC)_LDLIBS) $$(LDLIBS) -lcmocka
endef
$(foreach t,$(patsubst tests/unit/%.c,%,$(UNIT_SRC)),$(eval $(call unit_rule,$(t))))

# The sandbox probe (tests/sandbox/): built with `all`, outside bin/ (never installed).
-include tests/sandbox/sandbox.mk

# libFuzzer harnesses (tests/fuzz/README.md): `make fuzz` (FUZZ_SECONDS each), and a short
# `fuzz-smoke` over the seeds and every reproducer, part of `make test`.
-include tests/fuzz/fuzz.mk

# The container image, the compose stack behind HAProxy and the Kubernetes manifests on a
# real engine (podman): `make test-containers` (tests/containers/README.md), run by .ci/run.
-include tests/containers/containers.mk

# Unit tests run under ASan+UBSan (LeakSanitizer included).
unit: deps-check
	@$(MAKE) --no-print-directory BUILD=build-asan SAN=1 unit-run

unit-run: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $$t; done

# The parsers' unit tests again under valgrind (plain build): no leaks, no invalid reads.
valgrind: all $(UNIT_BINS)
	@for t in $(UNIT_BINS); do \
	    valgrind -q --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=9 $$t >$(BUILD)/valgrind.log 2>&1 \
	        || { cat $(BUILD)/valgrind.log; echo "valgrind: $$t failed"; exit 1; }; \
	done; echo "valgrind: $(words $(UNIT_BINS)) unit test programs clean (no leaks, no invalid accesses)"

# Two pytest-xdist workers: most of a test's time is spent waiting (timeouts, retries, a
# peer's answer), so two at once take half the time on two cores. PYTEST_WORKERS=0 runs
# them one by one in this process (pdb, -x, output).
PYTEST_WORKERS ?= 2
integration: all
	POSTMESH_BIN=$(abspath $(BUILD)/bin) $(PYTHON) -m pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS) tests/integration $(PYTEST_ARGS)

# The builds of `make test` (sanitizer, plain, fuzzers) use every core; the steps still run
# one after the other, and the packages are checked once, first.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
test: deps-check
	@$(MAKE) --no-print-directory -j$(JOBS) unit
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@$(MAKE) --no-print-directory -j$(JOBS) valgrind
	@$(MAKE) --no-print-directory -j$(JOBS) fuzz-smoke
	@$(MAKE) --no-print-directory integration

run: all
	$(BUILD)/bin/postmesh -c $(CONFIG) run

# Not in `make test`. The long fault-injection suite: more mail, every service SIGKILLed
# several times, FAULT_REPEAT runs in a row (default 5); the summaries are printed.
.PHONY: test-long soak
test-long: all
	POSTMESH_TEST_LONG=1 POSTMESH_BIN=$(abspath $(BUILD)/bin) $(PYTHON) -m pytest -q -s -p no:cacheprovider tests/integration/test_faults.py $(PYTEST_ARGS)

# SOAK_SECONDS (default 1800) of steady mixed load under `postmesh run`; prints the RSS of
# every service process at start and end and checks that nothing accepted was lost.
soak: all
	POSTMESH_BIN=$(abspath $(BUILD)/bin) $(PYTHON) scripts/soak.py

# The benchmark's EHLO load generator (scripts/loadgen.c, libevent), outside bin/ (never installed).
LOADGEN := $(BUILD)/tools/loadgen
$(LOADGEN): scripts/loadgen.c
	@mkdir -p $(dir $@)
	@echo "  CC  $<"
	@$(CC) $(CFLAGS_BASE) -O2 -o $@ $< $(shell pkg-config --cflags --libs libevent)
.PHONY: loadgen
loadgen: $(LOADGEN)

# BENCH_QUICK=1 (or `sh scripts/bench --smoke`): every figure with tiny counts, under a minute.
# Then the IMAP figures against Dovecot (scripts/bench_imap.py, its own table).
bench: all $(LOADGEN)
	POSTMESH_BIN=$(abspath $(BUILD)/bin) LOADGEN=$(abspath $(LOADGEN)) sh scripts/bench
	POSTMESH_BIN=$(abspath $(BUILD)/bin) sh scripts/bench-imap

# Release build for packaging: test-only hooks compiled out, binaries to $(DESTDIR)$(PREFIX)/bin.
PREFIX ?= /usr/local
install: deps-check
	@$(MAKE) --no-print-directory BUILD=build-release EXTRA_CFLAGS=-DPOSTMESH_NO_TEST_HOOKS all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 build-release/bin/* $(DESTDIR)$(PREFIX)/bin/

clean:
	rm -rf build build-asan build-*

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
