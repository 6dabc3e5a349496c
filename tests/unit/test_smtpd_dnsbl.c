/* DNS list names and answers (services/smtpd/dnsbl.c): the reversed address (IPv4, IPv6
 * nibbles, IPv4-mapped), which A answers list a client, and the TXT reason made fit for a
 * reply line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "smtpd/dnsbl.h"

static void test_names(void **state)
{
    (void)state;
    char out[300];
    assert_int_equal(smtpd_dnsbl_name("192.0.2.99", "zen.example.test", out, sizeof out), 0);
    assert_string_equal(out, "99.2.0.192.zen.example.test");
    assert_int_equal(smtpd_dnsbl_name("::ffff:127.0.0.2", "bl.test", out, sizeof out), 0);
    assert_string_equal(out, "2.0.0.127.bl.test");
    /* RFC 5782 2.4: 32 nibbles, least significant first. */
    assert_int_equal(smtpd_dnsbl_name("2001:db8:1:2::abcd", "bl.test", out, sizeof out), 0);
    assert_string_equal(out, "d.c.b.a.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.test");
    assert_int_equal(smtpd_dnsbl_name("not-an-ip", "bl.test", out, sizeof out), -1);
    assert_int_equal(smtpd_dnsbl_name("", "bl.test", out, sizeof out), -1);
    assert_int_equal(smtpd_dnsbl_name("2001:db8::1", "bl.test", out, 40), -1); /* does not fit */
}

static void test_listed(void **state)
{
    (void)state;
    struct pm_dnsbl any = {"bl.test", 1, NULL}, only3 = {"bl.test", 1, "127.0.0.3"};
    const char *two[] = {"127.0.0.2"}, *three[] = {"::1", "127.0.0.3"}, *err[] = {"127.255.255.254"},
               *outside[] = {"10.0.0.2"}, *v6[] = {"::1"};
    assert_true(smtpd_dnsbl_listed(&any, two, 1));
    assert_true(smtpd_dnsbl_listed(&any, three, 2));
    assert_false(smtpd_dnsbl_listed(&any, err, 1));     /* the list's own error code */
    assert_false(smtpd_dnsbl_listed(&any, outside, 1)); /* not an answer a list gives */
    assert_false(smtpd_dnsbl_listed(&any, v6, 1));
    assert_false(smtpd_dnsbl_listed(&any, NULL, 0));
    assert_false(smtpd_dnsbl_listed(&only3, two, 1));
    assert_true(smtpd_dnsbl_listed(&only3, three, 2));
}

static void test_reason(void **state)
{
    (void)state;
    char out[32];
    smtpd_dnsbl_reason("see\r\nhttp://x\t\x01\xc3\xa9  ", out, 20);
    assert_string_equal(out, "see  http://x");
    smtpd_dnsbl_reason("0123456789012345678901234567890123456789", out, 10);
    assert_string_equal(out, "0123456789");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_listed),
        cmocka_unit_test(test_reason),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
