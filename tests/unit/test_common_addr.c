/* RFC 5321 path/mailbox parser: syntax, length limits, UTF-8 and relay tricks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"

static enum pm_addr_status path(const char *s, int flags, struct pm_addr *a)
{
    size_t used = 0;
    const char *why = NULL;
    enum pm_addr_status st = pm_addr_parse_path(s, strlen(s), flags, a, &used, &why);
    if (st == PM_ADDR_OK)
        assert_true(used > 0 && used <= strlen(s));
    else
        assert_non_null(why);
    return st;
}

static void test_simple(void **state)
{
    (void)state;
    struct pm_addr a;
    assert_int_equal(path("<alice@example.test>", 0, &a), PM_ADDR_OK);
    assert_string_equal(a.address, "alice@example.test");
    assert_int_equal(a.local_len, 5);
    assert_string_equal(a.domain, "example.test");
    assert_false(a.is_null);

    size_t used;
    assert_int_equal(pm_addr_parse_path("<a@b.test> SIZE=10", 18, 0, &a, &used, NULL), PM_ADDR_OK);
    assert_int_equal(used, 10);

    assert_int_equal(path("<first.last+tag@sub.example.test>", 0, &a), PM_ADDR_OK);
    assert_int_equal(path("<x@localhost>", 0, &a), PM_ADDR_OK);
    assert_int_equal(path("<\"john smith\"@example.test>", 0, &a), PM_ADDR_OK);
    assert_true(a.is_quoted);
    assert_string_equal(a.domain, "example.test");
    assert_int_equal(path("<\"a\\\"b\"@example.test>", 0, &a), PM_ADDR_OK);
}

static void test_null_and_postmaster(void **state)
{
    (void)state;
    struct pm_addr a;
    assert_int_equal(path("<>", PM_ADDR_NULL_OK, &a), PM_ADDR_OK);
    assert_true(a.is_null);
    assert_string_equal(a.address, "");
    assert_int_equal(path("<>", 0, &a), PM_ADDR_SYNTAX);
    assert_int_equal(path("<Postmaster>", PM_ADDR_POSTMASTER, &a), PM_ADDR_OK);
    assert_string_equal(a.domain, "");
    assert_int_equal(path("<postmaster>", 0, &a), PM_ADDR_SYNTAX);
}

static void test_syntax_errors(void **state)
{
    (void)state;
    struct pm_addr a;
    const char *bad[] = {
        "alice@example.test",     /* no brackets */
        "<alice@example.test",    /* unterminated */
        "<alice>",                /* no domain */
        "<@example.test>",        /* empty local part */
        "<alice@>",               /* empty domain */
        "<.alice@example.test>",  /* leading dot */
        "<alice.@example.test>",  /* trailing dot in local part */
        "<al..ice@example.test>", /* double dot */
        "<alice@example.test.>",  /* trailing dot in domain */
        "<alice@.example.test>",
        "<alice@exa..mple.test>",
        "<alice@-example.test>",
        "<alice@example-.test>",
        "<alice@exa_mple.test>",
        "<a@b@example.test>",     /* multiple @ */
        "<a b@example.test>",
        "<a\x01@example.test>",
        "<\"unterminated@example.test>",
        "<alice@[300.1.1.1]>",
        "<alice@[tag:general]>",
        "<alice@[192.0.2.1>",
        "<@a.test:>",
        "<@a.test,b.test:x@c.test>",
        "<>",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        enum pm_addr_status st = path(bad[i], 0, &a);
        if (st != PM_ADDR_SYNTAX)
            fail_msg("accepted or misclassified: %s (%d)", bad[i], st);
    }
}

static void test_literals(void **state)
{
    (void)state;
    struct pm_addr a;
    assert_int_equal(path("<u@[192.0.2.1]>", 0, &a), PM_ADDR_OK);
    assert_true(a.is_literal);
    assert_string_equal(a.domain, "[192.0.2.1]");
    assert_int_equal(path("<u@[IPv6:2001:db8::1]>", 0, &a), PM_ADDR_OK);
    assert_true(a.is_literal);
    assert_int_equal(path("<u@[2001:db8::1]>", 0, &a), PM_ADDR_SYNTAX);
    /* Found by fuzzing: a NUL inside a literal ended what inet_pton() saw, so this passed and
     * the stored address was cut at the NUL. */
    static const char nul[] = "<u@[192.0.2.1\0x]>";
    size_t used = 0;
    const char *why = NULL;
    assert_int_equal(pm_addr_parse_path(nul, sizeof nul - 1, 0, &a, &used, &why), PM_ADDR_SYNTAX);
    assert_int_equal(pm_addr_check_domain("[192.0.2.1\0]", 13, 0) == PM_ADDR_OK, 0);
}

static void fill(char *dst, char c, size_t n)
{
    memset(dst, c, n);
    dst[n] = '\0';
}

static void test_lengths(void **state)
{
    (void)state;
    struct pm_addr a;
    char buf[2400], local[512];

    /* A local part far over 64 octets is fine while the path fits in 256. */
    fill(local, 'l', 200);
    snprintf(buf, sizeof buf, "<%s@example.test>", local); /* 200 + 1 + 12 + 2 = 215 */
    assert_int_equal(path(buf, 0, &a), PM_ADDR_OK);
    assert_int_equal(a.local_len, 200);

    /* Exactly 256 octets including <> is accepted, 257 refused. */
    fill(local, 'l', 256 - 2 - 13);
    snprintf(buf, sizeof buf, "<%s@example.test>", local);
    assert_int_equal(strlen(buf), 256);
    assert_int_equal(path(buf, 0, &a), PM_ADDR_OK);
    fill(local, 'l', 256 - 2 - 13 + 1);
    snprintf(buf, sizeof buf, "<%s@example.test>", local);
    assert_int_equal(path(buf, 0, &a), PM_ADDR_TOO_LONG);

    /* A path with no '>' that is longer than the limit is "too long", not a hang or overflow. */
    fill(buf, 'x', 900);
    buf[0] = '<';
    assert_int_equal(path(buf, 0, &a), PM_ADDR_TOO_LONG);

    /* Labels over 63 octets and domains over 255 octets are refused. */
    char dom[2100];
    fill(dom, 'd', 64);
    assert_int_equal(pm_addr_check_domain(dom, strlen(dom), 0), PM_ADDR_DOMAIN_LONG);
    fill(dom, 'd', 63);
    assert_int_equal(pm_addr_check_domain(dom, strlen(dom), 0), PM_ADDR_OK);
    /* 4 labels of 63 + 3 dots = 255: ok; one more octet: refused. */
    fill(local, 'a', 63);
    snprintf(dom, sizeof dom, "%s.%s.%s.%s", local, local, local, local);
    assert_int_equal(strlen(dom), 255);
    assert_int_equal(pm_addr_check_domain(dom, 255, 0), PM_ADDR_OK);
    strcat(dom, "b");
    assert_int_equal(pm_addr_check_domain(dom, 256, 0), PM_ADDR_DOMAIN_LONG);
    snprintf(buf, sizeof buf, "u@%s", dom);
    assert_int_equal(pm_addr_parse_mailbox(buf, strlen(buf), 0, &a, NULL), PM_ADDR_DOMAIN_LONG);
}

static void test_relay_tricks(void **state)
{
    (void)state;
    struct pm_addr a;
    const char *tricks[] = {
        "<user%remote.test@example.test>",      /* percent hack */
        "<remote.test!user@example.test>",      /* bang path */
        "<\"user@remote.test\"@example.test>",  /* quoted local part hiding an @ */
        "<\"user%remote.test\"@example.test>",
        "<@example.test:user@remote.test>",     /* source route */
        "<@a.test,@example.test:user@remote.test>",
    };
    for (size_t i = 0; i < sizeof tricks / sizeof tricks[0]; i++) {
        if (path(tricks[i], PM_ADDR_STRICT, &a) != PM_ADDR_TRICK)
            fail_msg("relay trick not refused: %s", tricks[i]);
        /* Without STRICT the syntax is valid (MAIL FROM); a route is dropped. */
        if (path(tricks[i], 0, &a) != PM_ADDR_OK)
            fail_msg("valid syntax refused: %s", tricks[i]);
    }
    assert_int_equal(path("<@example.test:user@remote.test>", 0, &a), PM_ADDR_OK);
    assert_string_equal(a.address, "user@remote.test");
    assert_true(a.had_route);
    /* Tricks that are plain syntax errors stay syntax errors. */
    assert_int_equal(path("<user@remote.test@example.test>", PM_ADDR_STRICT, &a), PM_ADDR_SYNTAX);
    assert_int_equal(path("<user@example.test.>", PM_ADDR_STRICT, &a), PM_ADDR_SYNTAX);
}

static void test_utf8(void **state)
{
    (void)state;
    struct pm_addr a;
    const char *u = "<j\xc3\xb6rg@b\xc3\xbc" "cher.example>";
    assert_int_equal(path(u, 0, &a), PM_ADDR_NON_ASCII);
    assert_int_equal(path(u, PM_ADDR_UTF8, &a), PM_ADDR_OK);
    assert_true(a.is_utf8);
    /* Invalid UTF-8 (overlong '/', lone continuation, surrogate) is refused even with SMTPUTF8. */
    assert_int_equal(path("<a\xc0\xaf@example.test>", PM_ADDR_UTF8, &a), PM_ADDR_NON_ASCII);
    assert_int_equal(path("<a\x80@example.test>", PM_ADDR_UTF8, &a), PM_ADDR_NON_ASCII);
    assert_int_equal(path("<a\xed\xa0\x80@example.test>", PM_ADDR_UTF8, &a), PM_ADDR_NON_ASCII);
    assert_int_equal(path("<a\xe2\x82@example.test>", PM_ADDR_UTF8, &a), PM_ADDR_NON_ASCII);
    assert_int_equal(pm_addr_utf8_len((const unsigned char *)"\xf0\x9f\x98\x80", 4), 4);
    assert_int_equal(pm_addr_utf8_len((const unsigned char *)"\xf4\x90\x80\x80", 4), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple),         cmocka_unit_test(test_null_and_postmaster),
        cmocka_unit_test(test_syntax_errors),  cmocka_unit_test(test_literals),
        cmocka_unit_test(test_lengths),        cmocka_unit_test(test_relay_tricks),
        cmocka_unit_test(test_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
