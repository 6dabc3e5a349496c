/* The pure parts of the mailbox commands: LIST patterns (reference + pattern, '*' and '%',
 * INBOX's case, hostile patterns) and APPEND's date-time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "imapd/datetime.h"
#include "imapd/list_match.h"

static int canon(const char *ref, const char *pat, char *dst, size_t size)
{
    return imap_list_pattern(ref, strlen(ref), pat, strlen(pat), dst, size);
}

static int match(const char *ref, const char *pat, const char *name)
{
    char p[IMAP_LIST_PATTERN_MAX];
    assert_int_equal(canon(ref, pat, p, sizeof p), 0);
    return imap_list_match(p, name);
}

static void test_table(void **state)
{
    (void)state;
    static const struct {
        const char *ref, *pat, *name;
        int match;
    } rows[] = {
        {"", "*", "INBOX", 1},          {"", "*", "a/b/c", 1},        {"", "%", "a", 1},
        {"", "%", "a/b", 0},            {"", "%/%", "a/b", 1},        {"", "a/%", "a/b", 1},
        {"", "a/%", "a/b/c", 0},        {"", "a/*", "a/b/c", 1},      {"", "a*", "a", 1},
        {"", "a*", "ab/c", 1},          {"", "a%", "ab/c", 0},        {"", "inbox", "INBOX", 1},
        {"", "InBoX/%", "INBOX/x", 1},  {"", "sent", "Sent", 0},      {"", "Sent", "Sent", 1},
        {"a/", "%", "a/b", 1},          {"a/", "/b", "a/b", 1},       {"a", "/b", "a/b", 1},
        {"", "", "INBOX", 0},           {"", "*b*", "abc", 1},        {"", "*x*", "abc", 0},
        {"", "%%%", "abc", 1},          {"", "a%c", "abc", 1},        {"", "a%c", "a/c", 0},
        {"", "&AOk-t&AOk-", "&AOk-t&AOk-", 1},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        if (match(rows[i].ref, rows[i].pat, rows[i].name) != rows[i].match)
            fail_msg("row %zu: ref \"%s\" pattern \"%s\" name \"%s\"", i, rows[i].ref, rows[i].pat, rows[i].name);
    }
}

static void test_refused(void **state)
{
    (void)state;
    char p[16];
    assert_int_equal(canon("0123456789", "abcdef", p, sizeof p), -1);
    assert_int_equal(canon("", "a\r\nb", p, sizeof p), -1);
    assert_int_equal(imap_list_pattern("a\0b", 3, "", 0, p, sizeof p), -1);
}

/* "*%*%*%..." against a long name: quadratic at worst, never exponential. */
static void test_hostile(void **state)
{
    (void)state;
    char pat[IMAP_LIST_PATTERN_MAX], name[2048];
    for (size_t i = 0; i + 1 < sizeof pat; i++)
        pat[i] = i % 2 ? '%' : '*';
    pat[sizeof pat - 2] = 'z';
    pat[sizeof pat - 1] = '\0';
    memset(name, 'a', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    assert_int_equal(imap_list_match(pat, name), 0);
    name[sizeof name - 2] = 'z';
    assert_int_equal(imap_list_match(pat, name), 1);
}

static void test_root(void **state)
{
    (void)state;
    char r[32];
    imap_list_root("", 0, r, sizeof r);
    assert_string_equal(r, "");
    imap_list_root("a/b/c", 5, r, sizeof r);
    assert_string_equal(r, "a/");
    imap_list_root("abc", 3, r, sizeof r);
    assert_string_equal(r, "");
}

static void test_datetime(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        long long t; /* -1: refused */
    } rows[] = {
        {"17-Jul-1996 02:44:25 -0700", 837596665},  {" 1-Jan-2020 00:00:00 +0000", 1577836800},
        {"1-Jan-2020 00:00:00 +0000", 1577836800},   {"01-jan-2020 01:00:00 +0100", 1577836800},
        {"31-Dec-1999 23:59:60 +0000", 946684800},   {"31-Feb-2020 00:00:00 +0000", -1},
        {"32-Jan-2020 00:00:00 +0000", -1},          {"01-Foo-2020 00:00:00 +0000", -1},
        {"01-Jan-2020 24:00:00 +0000", -1},          {"01-Jan-2020 00:00:00 0000", -1},
        {"01-Jan-2020 00:00:00 +00000", -1},         {"01-Jan-2020T00:00:00 +0000", -1},
        {"", -1},                                    {"0x-Jan-2020 00:00:00 +0000", -1},
        {"01-Jan-2020 00:00:00 +2400", -1},          {"01-Jan-0999 00:00:00 +0000", -1},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        time_t t = 0;
        int rc = imap_parse_datetime(rows[i].text, strlen(rows[i].text), &t);
        if (rows[i].t < 0 ? rc != -1 : (rc != 0 || (long long)t != rows[i].t))
            fail_msg("row %zu \"%s\": rc %d t %lld", i, rows[i].text, rc, (long long)t);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_root),
        cmocka_unit_test(test_datetime),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
