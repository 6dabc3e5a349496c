/* mta.tls_policy (common/config_tls_policy.c): rows, their defaults, every bad value with
 * its "file:line:" error; mta.ca_file must be readable (it is read before the chroot). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>

#include "config_file.h"
#include "config_tls_policy.h"

static void test_rows_load(void **state)
{
    (void)state;
    write_conf("mta = { tls_level = \"may\";\n"
               "  tls_policy = ( { domain = \"Bank.Example\"; level = \"secure\"; ca_file = \"/dev/null\";\n"
               "                   match = [ \"mx.bank.example\", \".bank.example\" ]; },\n"
               "                 { domain = \".example\"; level = \"dane-only\"; } ); };\n");
    struct pm_config cfg;
    char err[512];
    int rc = pm_config_load(path, &cfg, err, sizeof err);
    if (rc != 0)
        fail_msg("%s", err);
    unlink(path);
    assert_int_equal(cfg.mta.tls_policy.n, 2);
    const struct pm_tls_policy *p = &cfg.mta.tls_policy.v[0];
    assert_string_equal(p->domain, "bank.example");
    assert_string_equal(p->level, "secure");
    assert_string_equal(p->ca_file, "/dev/null");
    assert_int_equal(p->match.n, 2);
    assert_string_equal(p->match.v[1], ".bank.example");
    assert_string_equal(cfg.mta.tls_policy.v[1].ca_file, "");
    assert_ptr_equal(pm_tls_policy_find(&cfg.mta.tls_policy, "bank.example"), p);
    assert_ptr_equal(pm_tls_policy_find(&cfg.mta.tls_policy, "other.example"), &cfg.mta.tls_policy.v[1]);
    assert_null(pm_tls_policy_find(&cfg.mta.tls_policy, "example"));
    pm_config_free(&cfg);
}

static void test_bad_rows(void **state)
{
    (void)state;
    expect_error("mta = {\n tls_policy = ( { domain = \"a.example\";\n level = \"strict\"; } ); };\n", 3,
                 "mta.tls_policy.level: 'strict' is not a level");
    expect_error("mta = {\n tls_policy = ( { domain = \"a.example\"; level = \"\"; } ); };\n", 2,
                 "is not a level");
    expect_error("mta = {\n tls_policy = ( { domain = \"a.example\"; level = \"verify\";\n"
                 "  ca_file = \"/nonexistent/ca.pem\"; } ); };\n", 3,
                 "mta.tls_policy.ca_file: '/nonexistent/ca.pem' cannot be read");
    expect_error("mta = {\n tls_policy = ( { level = \"verify\"; } ); };\n", 2, "needs domain");
    expect_error("mta = {\n tls_policy = ( { domain = \"a.example\"; } ); };\n", 2, "needs level");
    expect_error("mta = {\n tls_policy = ( { domain = \"a..example\"; level = \"may\"; } ); };\n", 2,
                 "mta.tls_policy.domain");
    expect_error("mta = {\n tls_policy = ( { domain = \"a.example\"; level = \"may\"; },\n"
                 " { domain = \"A.example\"; level = \"none\"; } ); };\n", 3, "listed twice");
    expect_error("mta = {\n tls_policy = ( { domain = \"a.example\"; level = \"may\"; colour = 1; } ); };\n", 2,
                 "unknown key 'colour'");
    expect_error("mta = {\n tls_policy = ( { domain = \"a.example\"; level = \"secure\"; match = \"x\"; } ); };\n",
                 2, "must be a list");
    expect_error("mta = {\n tls_policy = { domain = \"a.example\"; }; };\n", 2, "must be a list of groups");
    expect_error("mta = {\n tls_level = \"paranoid\"; };\n", 2, "tls_level");
    expect_error("mta = {\n ca_file = \"/nonexistent/bundle.pem\"; };\n", 2,
                 "mta.ca_file: '/nonexistent/bundle.pem' cannot be read");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_load),
        cmocka_unit_test(test_bad_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
