/* smtpd.milters, smtpd.milter_timeout and smtpd.milter_default_action: the two spellings of
 * the list, each address form (milter_addr.c), and file:line errors for every bad value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "config_file.h"
#include "milter_addr.h"

#define HEAD "hostname = \"mx.test\";\n"

static void test_strings_and_groups(void **state)
{
    (void)state;
    write_conf(HEAD "smtpd = {\n  milters = ( \"inet:127.0.0.1:11332\",\n"
                    "    { address = \"inet6:[::1]:8891\"; timeout = 7; default_action = \"accept\"; } );\n"
                    "  milter_timeout = 12;\n};\n");
    struct pm_config cfg;
    char err[256];
    assert_int_equal(pm_config_load(path, &cfg, err, sizeof err), 0);
    assert_int_equal(cfg.smtpd.milters.n, 2);
    assert_string_equal(cfg.smtpd.milters.v[0].address, "inet:127.0.0.1:11332");
    assert_int_equal(cfg.smtpd.milters.v[0].timeout, 0); /* smtpd.milter_timeout's */
    assert_null(cfg.smtpd.milters.v[0].default_action);
    assert_int_equal(cfg.smtpd.milters.v[1].timeout, 7);
    assert_string_equal(cfg.smtpd.milters.v[1].default_action, "accept");
    assert_int_equal(cfg.smtpd.milter_timeout, 12);
    assert_string_equal(cfg.smtpd.milter_default_action, "tempfail");
    pm_config_free(&cfg);
    unlink(path);

    write_conf(HEAD "smtpd = { milters = [ \"inet:11332@127.0.0.1\" ]; };\n"); /* an array, Sendmail's form */
    assert_int_equal(pm_config_load(path, &cfg, err, sizeof err), 0);
    assert_int_equal(cfg.smtpd.milters.n, 1);
    pm_config_free(&cfg);
    unlink(path);

    write_conf(HEAD); /* none by default */
    assert_int_equal(pm_config_load(path, &cfg, err, sizeof err), 0);
    assert_int_equal(cfg.smtpd.milters.n, 0);
    assert_int_equal(cfg.smtpd.milter_timeout, 30);
    pm_config_free(&cfg);
    unlink(path);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error(HEAD "smtpd = {\n milters = [ \"unix:/run/rspamd.sock\" ];\n};\n", 3, "empty chroot");
    expect_error(HEAD "smtpd = {\n milters = [ \"inet:localhost:11332\" ];\n};\n", 3, "no names");
    expect_error(HEAD "smtpd = {\n milters = [ \"inet:127.0.0.1:0\" ];\n};\n", 3, "port must be 1-65535");
    expect_error(HEAD "smtpd = {\n milters = [ \"inet6:127.0.0.1:1\" ];\n};\n", 3, "inet6: needs an IPv6");
    expect_error(HEAD "smtpd = {\n milters = [ \"tcp://127.0.0.1:1\" ];\n};\n", 3, "is not a milter address");
    expect_error(HEAD "smtpd = {\n milters = ( { timeout = 5; } );\n};\n", 3, "needs address");
    expect_error(HEAD "smtpd = {\n milters = ( { address = \"inet:127.0.0.1:1\";\n  timeout = 0; } );\n};\n", 4,
                 "timeout must be an integer in [1, 3600]");
    expect_error(HEAD "smtpd = {\n milters = ( { address = \"inet:127.0.0.1:1\";\n  default_action = \"reject\"; } );\n};\n",
                 4, "not one of tempfail, accept");
    expect_error(HEAD "smtpd = {\n milters = ( { address = \"inet:127.0.0.1:1\";\n  port = 1; } );\n};\n", 4,
                 "unknown key 'port'");
    expect_error(HEAD "smtpd = {\n milters = \"inet:127.0.0.1:1\";\n};\n", 3, "must be a list");
    expect_error(HEAD "smtpd = {\n milter_default_action = \"discard\";\n};\n", 3, "is not one of tempfail, accept");
    expect_error(HEAD "smtpd = {\n milter_timeout = 0;\n};\n", 3, "out of range");
}

static void test_addresses(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    socklen_t len;
    char why[256];
    assert_int_equal(pm_milter_addr_parse("inet:192.0.2.7:25", &ss, &len, why, sizeof why), 0);
    const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
    assert_int_equal(in->sin_family, AF_INET);
    assert_int_equal(ntohs(in->sin_port), 25);
    assert_int_equal(len, sizeof *in);
    assert_int_equal(pm_milter_addr_parse("inet6:[2001:db8::1]:8891", &ss, &len, why, sizeof why), 0);
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
    assert_int_equal(in6->sin6_family, AF_INET6);
    assert_int_equal(ntohs(in6->sin6_port), 8891);
    assert_int_equal(pm_milter_addr_parse("inet6:8891@::1", &ss, &len, why, sizeof why), 0);
    assert_int_equal(pm_milter_addr_parse("inet6:::1:8891", &ss, &len, why, sizeof why), 0); /* last colon */
    const char *bad[] = {"", "inet:", "inet:1.2.3.4", "inet:1.2.3.4:", "inet:1.2.3.4:99999", "inet:1.2.3.4:12a",
                         "inet:@1.2.3.4", "inet:[1.2.3.4]:1x", "local:/x", "/run/x.sock", "inet6:[::1]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (pm_milter_addr_parse(bad[i], &ss, &len, why, sizeof why) == 0)
            fail_msg("'%s' was taken", bad[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strings_and_groups),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_addresses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
