# libFuzzer harnesses (tests/fuzz/README.md). Included from the top Makefile, which owns BUILD,
# SAN, CC and PKGS; everything here lives in $(FUZZ_BUILD) so it never collides with a build.
#   make fuzz         every fuzzer FUZZ_SECONDS (default 600) each, FUZZ_JOBS (2) at a time,
#                     then a table: execs, exec/s, coverage, corpus size, crashes
#   make fuzz-smoke   each fuzzer FUZZ_SMOKE_SECONDS (default 4) over its seeds, plus every
#                     reproducer in tests/fuzz/regress/; fails on any crash, leak or UB (make test)
# New corpus entries go to $(FUZZ_BUILD)/work*/, never into the tree.
FUZZ_BUILD         ?= build-fuzz
FUZZ_CC            ?= clang
FUZZ_SECONDS       ?= 600
FUZZ_SMOKE_SECONDS ?= 4
FUZZ_JOBS          ?= 2
FUZZ_ONLY          ?=

# Read once, whether the top Makefile includes this file, it is given with -f, or both (the
# sub-makes below name it with -f, as the top Makefile may not include it).
ifndef FUZZ_MK_READ
FUZZ_MK_READ := 1

# The top Makefile and this fragment, for the sub-makes below.
FUZZ_MAKEFILES := $(firstword $(MAKEFILE_LIST)) $(lastword $(MAKEFILE_LIST))
FUZZ_SUBMAKE   := $(MAKE) --no-print-directory $(foreach f,$(FUZZ_MAKEFILES),-f $(f))

FUZZ_NAMES    := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS     := $(addprefix $(FUZZ_BUILD)/fuzz/fuzz_,$(FUZZ_NAMES))
FUZZ_LIBFILES := $(foreach s,smtpd pop3d mta queue resolver imapd,$(FUZZ_BUILD)/lib/lib$(s).a) $(FUZZ_BUILD)/lib/libcommon.a
# The libraries are built by the top Makefile itself (BUILD=$(FUZZ_BUILD) CC=clang SAN=1) with
# coverage instrumentation; only the harnesses link libFuzzer's main.
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -O1 -fno-omit-frame-pointer \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -Icommon -Iservices -Itests/fuzz -I$(FUZZ_BUILD)/gen $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# The bus harnesses stand in for ZAP's verdict (the sender's key): see tests/fuzz/fuzz_bus.h.
FUZZ_LDFLAGS_queue_bus    := -Wl,--wrap=zmq_msg_gets
FUZZ_LDFLAGS_resolver_bus := -Wl,--wrap=zmq_msg_gets -Wl,--wrap=pm_bus_bind
# Stands in for one open bug's case until it is fixed (tests/fuzz/README.md, "Open").
# A harness links the service libraries it may pull objects from, so each service's own
# packages (<svc>_PKGS: libunbound, libcurl, zlib, json-c) too. imapd's harnesses compile and
# link with GMime (imapd_PKGS), as the top Makefile's service_rules give its objects and unit
# tests; the others never link GMime.
FUZZ_SVC_CFLAGS = $(resolver_CFLAGS) $(mta_CFLAGS) $(queue_CFLAGS) $(if $(filter imapd_%,$*),$(imapd_CFLAGS))
FUZZ_SVC_LDLIBS = $(resolver_LDLIBS) $(mta_LDLIBS) $(queue_LDLIBS) $(if $(filter imapd_%,$*),$(imapd_LDLIBS))
FUZZ_RUN := $(PYTHON) tests/fuzz/run.py --build $(FUZZ_BUILD) --jobs $(FUZZ_JOBS) $(if $(FUZZ_ONLY),--only $(FUZZ_ONLY))

.PHONY: fuzz fuzz-smoke fuzz-build fuzz-libs fuzz-lib-files fuzz-bins fuzz-seeds

fuzz-libs:
	+@$(FUZZ_SUBMAKE) BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) SAN=1 EXTRA_CFLAGS=-fsanitize=fuzzer-no-link fuzz-lib-files

# Inside that sub-make the top Makefile's rules build these (BUILD is $(FUZZ_BUILD) there).
fuzz-lib-files: $(FUZZ_LIBFILES)
	@:

# A second make, so the harnesses see the libraries the first one just (re)built.
fuzz-build: fuzz-libs
	+@$(FUZZ_SUBMAKE) fuzz-bins

fuzz-bins: $(FUZZ_BINS)
	@:

$(FUZZ_BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(wildcard tests/fuzz/*.h) $(FUZZ_LIBFILES)
	@mkdir -p $(dir $@)
	@echo "  LD  $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SVC_CFLAGS) -o $@ $< $(FUZZ_LIBFILES) $(FUZZ_SVC_LDLIBS) $(LDLIBS) $(FUZZ_LDFLAGS_$*)

fuzz: fuzz-build
	@$(FUZZ_RUN) --seconds $(FUZZ_SECONDS)

fuzz-smoke: fuzz-build
	@$(FUZZ_RUN) --smoke --seconds $(FUZZ_SMOKE_SECONDS)

# Rewrites the seed corpora (kept in git): text seeds and dnsmasq captures (seeds.py), DNS
# answers built with ldns and BusMessages packed with the generated protobuf-c code.
fuzz-seeds: fuzz-libs
	@mkdir -p $(FUZZ_BUILD)/fuzz tests/fuzz/corpus/dns_answer tests/fuzz/corpus/queue_bus tests/fuzz/corpus/resolver_bus
	@$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -o $(FUZZ_BUILD)/fuzz/gen_dns tests/fuzz/gen/gen_dns.c -lldns
	@$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Icommon -I$(FUZZ_BUILD)/gen -o $(FUZZ_BUILD)/fuzz/gen_bus \
	    tests/fuzz/gen/gen_bus.c $(FUZZ_BUILD)/gen/postmesh.pb-c.c -lprotobuf-c
	@$(PYTHON) tests/fuzz/seeds.py
	@$(FUZZ_BUILD)/fuzz/gen_dns tests/fuzz/corpus/dns_answer
	@$(FUZZ_BUILD)/fuzz/gen_bus tests/fuzz/corpus

endif # FUZZ_MK_READ
