/* Config loader: defaults, unknown keys and bad values name file:line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static char path[64];

static void write_conf(const char *text)
{
    strcpy(path, "/tmp/pmconfXXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static void test_defaults_and_values(void **state)
{
    (void)state;
    write_conf("hostname = \"mx.test\";\ndomains = [ \"a.test\", \"B.test\" ];\n"
               "queue = { retry_min = 10; retry_max = 20; };\n"
               "smtpd = { listen = ( { address = \"127.0.0.1:2525\"; mode = \"smtp\"; } ); };\n");
    struct pm_config cfg;
    char err[256];
    assert_int_equal(pm_config_load(path, &cfg, err, sizeof err), 0);
    assert_string_equal(cfg.hostname, "mx.test");
    assert_int_equal(cfg.queue.retry_min, 10);
    assert_int_equal(cfg.queue.max_lifetime, 432000);
    assert_int_equal(cfg.smtpd.max_message_size, 36700160);
    assert_int_equal(cfg.smtpd.listen.n, 1);
    assert_string_equal(cfg.smtpd.listen.v[0].mode, "smtp");
    assert_true(pm_config_is_local_domain(&cfg, "b.TEST"));
    assert_false(pm_config_is_local_domain(&cfg, "c.test"));
    pm_config_free(&cfg);
    unlink(path);
}

static void expect_error(const char *text, const char *needle)
{
    write_conf(text);
    struct pm_config cfg;
    char err[256];
    assert_int_equal(pm_config_load(path, &cfg, err, sizeof err), -1);
    if (!strstr(err, needle))
        fail_msg("error '%s' does not contain '%s'", err, needle);
    unlink(path);
}

static void test_errors_name_file_and_line(void **state)
{
    (void)state;
    char want[128];
    expect_error("hostname = \"x\";\nbogus = 1;\n", "unknown key 'bogus'");
    snprintf(want, sizeof want, "%s:2:", path);
    expect_error("hostname = \"x\";\nqueue = { nope = 1; };\n", ":2: unknown key 'queue.nope'");
    expect_error("queue = {\n retry_min = \"x\"; };\n", ":2: queue.retry_min must be an integer");
    expect_error("smtpd = { listen = ( { address = \"1.2.3.4:25\"; mode = \"pop3\"; } ); };\n", "mode 'pop3'");
    expect_error("hostname = ;\n", ":1: syntax error");
    expect_error("queue = { retry_min = 100; retry_max = 10; };\n", "must not exceed");
    expect_error("domains = \"x\";\n", "list of strings");
    (void)want;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_values),
        cmocka_unit_test(test_errors_name_file_and_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
