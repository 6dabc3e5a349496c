/* The `dkim` list of the configuration: entries, defaults, and errors naming file:line (the
 * key files themselves are the queue's to check: tests/unit/test_queue_dkim_sign.c). */
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
#include "config_file.h"
#include "config_rules.h"

static void test_entries(void **state)
{
    (void)state;
    write_conf("hostname = \"mx.test\";\n"
               "dkim = ( { domain = \"example.test\"; selector = \"s2026\"; key = \"/k/a.pem\"; },\n"
               "         { domain = \"example.test\"; selector = \"s2025\"; key = \"/nonexistent/b.pem\";\n"
               "           active = false; } );\n");
    struct pm_config cfg;
    char err[256];
    assert_int_equal(pm_config_load(path, &cfg, err, sizeof err), 0);
    assert_int_equal(cfg.dkim.n, 2);
    assert_string_equal(cfg.dkim.v[0].selector, "s2026");
    assert_true(cfg.dkim.v[0].active); /* default */
    assert_false(cfg.dkim.v[1].active);
    assert_int_equal(cfg.dkim.v[0].line, 2);
    assert_int_equal(cfg.dkim.v[1].line, 3);
    assert_string_equal(cfg.dkim.v[1].file, path);
    pm_config_free(&cfg);
    unlink(path);
    write_conf("hostname = \"mx.test\";\ndkim = ( );\n");
    assert_int_equal(pm_config_load(path, &cfg, err, sizeof err), 0);
    assert_int_equal(cfg.dkim.n, 0);
    pm_config_free(&cfg);
    unlink(path);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("dkim = { domain = \"a.test\"; };\n", 1, "must be a list of groups");
    expect_error("dkim = ( \"a.test\" );\n", 1, "must be a group");
    expect_error("dkim = ( { domain = \"a.test\"; selector = \"s\"; } );\n", 1, "needs key");
    expect_error("dkim = ( { domain = \"a.test\";\n selector = \"s\"; key = \"/k\"; algorithm = \"rsa\"; } );\n", 2,
                 "unknown key 'algorithm'");
    expect_error("dkim = ( { domain = \"a..test\"; selector = \"s\"; key = \"/k\"; } );\n", 1, "empty label");
    expect_error("dkim = ( { domain = \"a.test\"; selector = \"s_1\"; key = \"/k\"; } );\n", 1, "not a DKIM selector");
    expect_error("dkim = ( { domain = \"a.test\"; selector = \"s\"; key = \"/k\"; active = 1; } );\n", 1,
                 "true or false");
    expect_error("dkim = ( { domain = \"a.test\"; selector = \"s\"; key = \"/k\"; },\n"
                 "         { domain = \"A.test\"; selector = \"S\"; key = \"/k2\"; } );\n",
                 2, "configured twice (also line 1)");
}

static void test_selector_rule(void **state)
{
    (void)state;
    char why[160];
    assert_int_equal(pm_rule_dkim_selector("s2026", why, sizeof why), 0);
    assert_int_equal(pm_rule_dkim_selector("2026", why, sizeof why), 0);
    assert_int_equal(pm_rule_dkim_selector("eu.s-1", why, sizeof why), 0);
    assert_int_equal(pm_rule_dkim_selector("", why, sizeof why), -1);
    assert_int_equal(pm_rule_dkim_selector("a..b", why, sizeof why), -1);
    assert_int_equal(pm_rule_dkim_selector("-a", why, sizeof why), -1);
    assert_int_equal(pm_rule_dkim_selector("a b", why, sizeof why), -1);
    assert_int_equal(pm_rule_dkim_selector("a.", why, sizeof why), -1);
    char long_sel[80];
    memset(long_sel, 'a', 64);
    long_sel[64] = '\0';
    assert_int_equal(pm_rule_dkim_selector(long_sel, why, sizeof why), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_entries),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_selector_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
