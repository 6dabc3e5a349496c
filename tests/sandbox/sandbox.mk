# tests/sandbox: the probe that tries escapes from inside a service's real sandbox (see
# probe.c); tests/integration/test_sandbox*.py run it. Not in $(BUILD)/bin: it is no service
# and `make install` must not ship it. Include after libcommon's rules.
SANDBOX_PROBE := $(BUILD)/tests/sandbox_probe

$(SANDBOX_PROBE): tests/sandbox/probe.c $(LIBCOMMON)
	@mkdir -p $(dir $@)
	@echo "  LD  $@"
	@$(CC) $(CFLAGS) -o $@ $< $(LIBCOMMON) $(LDSAN) $(LDLIBS)

all: $(SANDBOX_PROBE)
