/* IMAP string output (services/imapd/istring.h): quoted vs literal, NIL, astring, the
 * "for humans" and "no LF" cleanups, with the inputs and outputs of Dovecot's own
 * test-imap-quote.c where they exist (so both servers write alike); modified UTF-7. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <event2/buffer.h>

#include "imapd/istring.h"

enum how { STRING, NSTRING, NOLF, HUMANS, ASTRING, LITERAL8 };

static char *out_of(enum how how, const char *s, size_t len)
{
    struct evbuffer *out = evbuffer_new();
    switch (how) {
    case STRING: imap_write_string(out, s, len); break;
    case NSTRING: imap_write_nstring(out, s); break;
    case NOLF: imap_write_nstring_nolf(out, s); break;
    case HUMANS: imap_write_string_for_humans(out, s, len); break;
    case ASTRING: imap_write_astring(out, s, len); break;
    case LITERAL8: imap_write_literal(out, s, len, 1); break;
    }
    size_t n = evbuffer_get_length(out);
    char *r = malloc(n + 1);
    evbuffer_remove(out, r, n);
    r[n] = '\0';
    evbuffer_free(out);
    return r;
}

static const struct { enum how how; const char *in; const char *want; } cases[] = {
    {STRING, "", "\"\""},
    {STRING, "plain text", "\"plain text\""},
    {STRING, "a\"b\\c", "\"a\\\"b\\\\c\""},
    {STRING, "\"\"\"\"", "\"\\\"\\\"\\\"\\\"\""},        /* 4 escapes: still quoted */
    {STRING, "\"\"\"\"\"", "{5}\r\n\"\"\"\"\""},         /* 5: a literal is shorter */
    {STRING, "two\r\nlines", "{10}\r\ntwo\r\nlines"},
    {STRING, "caf\xc3\xa9", "{5}\r\ncaf\xc3\xa9"},       /* 8-bit */
    {NSTRING, NULL, "NIL"},
    {NSTRING, "NIL", "\"NIL\""},
    /* Dovecot test_imap_append_string_for_humans */
    {HUMANS, "", "\"\""},
    {HUMANS, " ", "\"\""},
    {HUMANS, "  ", "\"\""},
    {HUMANS, "\t", "\"\""},
    {HUMANS, " \t", "\"\""},
    {HUMANS, " \t ", "\"\""},
    {HUMANS, " foo", "{3}\r\nfoo"},
    {HUMANS, "\tfoo", "{3}\r\nfoo"},
    {HUMANS, "\t \tfoo", "{3}\r\nfoo"},
    {HUMANS, " foo ", "{3}\r\nfoo"},
    {HUMANS, " foo  ", "{3}\r\nfoo"},
    {HUMANS, " foo  \t  \t", "{3}\r\nfoo"},
    {HUMANS, "hello\"world", "{11}\r\nhello\"world"},
    {HUMANS, "hello\\world", "{11}\r\nhello\\world"},
    {HUMANS, "hello\rworld", "{10}\r\nhelloworld"},
    {HUMANS, "hello\nworld", "{10}\r\nhelloworld"},
    {HUMANS, "hello\r\n world", "{11}\r\nhello world"},
    {HUMANS, "hello world", "\"hello world\""},
    /* Dovecot test_imap_append_nstring_nolf */
    {NOLF, "", "\"\""},
    {NOLF, "foo", "\"foo\""},
    {NOLF, "foo\r", "\"foo\""},
    {NOLF, "foo\n", "\"foo\""},
    {NOLF, "foo\r\n", "\"foo\""},
    {NOLF, "foo\r\nbar", "\"foo bar\""},
    {NOLF, "foo\rbar", "\"foo bar\""},
    {NOLF, "foo\n  bar", "\"foo  bar\""},
    {NOLF, "foo\r\n  bar", "\"foo  bar\""},
    {NOLF, "foo\n\tbar", "\"foo\tbar\""},
    {NOLF, "foo\r\n\tbar", "\"foo\tbar\""},
    {NOLF, "\nfoo\r bar\r\n", "\" foo bar\""},
    {NOLF, NULL, "NIL"},
    /* astring: atoms bare (INBOX), else a string; never a bare NIL */
    {ASTRING, "INBOX", "INBOX"},
    {ASTRING, "Sent/2026", "Sent/2026"},
    {ASTRING, "a]b", "a]b"},
    {ASTRING, "two words", "\"two words\""},
    {ASTRING, "nil", "\"nil\""},
    {ASTRING, "", "\"\""},
    {ASTRING, "a*b", "\"a*b\""},
    {ASTRING, "a[b", "\"a[b\""}, /* a bare a[b would not read back through parse.c */
    {NOLF, "\r\r", "\"\""},     /* only line breaks: an empty string, no NULL arithmetic */
};

static void test_strings(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *in = cases[i].in;
        char *got = out_of(cases[i].how, in, in != NULL ? strlen(in) : 0);
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("case %zu (%d) [%s]: got [%s] want [%s]", i, cases[i].how, in ? in : "NULL", got, cases[i].want);
        free(got);
    }
}

/* Bytes a C string cannot hold: NUL goes as a literal (string) or becomes 0x80 (humans,
 * as Dovecot); literal8 announces ~{n}. */
static void test_nul(void **state)
{
    (void)state;
    char *got = out_of(STRING, "a\0b", 3);
    assert_memory_equal(got, "{3}\r\na\0b", 8);
    free(got);
    got = out_of(HUMANS, "a\0b", 3);
    assert_string_equal(got, "{3}\r\na\x80" "b");
    free(got);
    got = out_of(LITERAL8, "\0\1", 2);
    assert_memory_equal(got, "~{2}\r\n\0\1", 8);
    free(got);
    assert_int_equal(imap_quotable("ok", 2), 1);
    assert_int_equal(imap_quotable("a\0", 2), 0);
}

static const struct { const char *mutf7, *utf8; } names[] = {
    {"INBOX", "INBOX"},
    {"&-", "&"},
    {"Entw&APw-rfe", "Entw\xc3\xbcrfe"},
    {"&ZeVnLIqe-", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"},
    {"Caf&AOk-/&2D3eAA-", "Caf\xc3\xa9/\xf0\x9f\x98\x80"},   /* a surrogate pair: U+1F600 */
    {"a&-b&-", "a&b&"},
};

static void test_mutf7(void **state)
{
    (void)state;
    char buf[256];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *m = names[i].mutf7, *u = names[i].utf8;
        assert_int_equal(imap_mutf7_to_utf8(m, strlen(m), buf, sizeof buf), (long)strlen(u));
        assert_string_equal(buf, u);
        assert_int_equal(imap_utf8_to_mutf7(u, strlen(u), buf, sizeof buf), (long)strlen(m));
        assert_string_equal(buf, m);
        assert_true(imap_mutf7_valid(m, strlen(m)));
    }
    static const char *const invalid[] = {
        "&", "&AOk", "&AOk-&AOk-", "&AGE-", "&AO-", "&2D0-", "&3gA-", "a\x7f", "caf\xc3\xa9", "&AOl-",
    };
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++)
        if (imap_mutf7_valid(invalid[i], strlen(invalid[i])))
            fail_msg("accepted invalid mUTF-7 [%s]", invalid[i]);
    assert_int_equal(imap_utf8_to_mutf7("\xc3", 1, buf, sizeof buf), -1);     /* cut UTF-8 */
    assert_int_equal(imap_utf8_to_mutf7("\xc0\xaf", 2, buf, sizeof buf), -1); /* overlong */
    assert_int_equal(imap_utf8_to_mutf7("a\tb", 3, buf, sizeof buf), -1);     /* control */
    assert_int_equal(imap_mutf7_to_utf8("INBOX", 5, buf, 5), -1);             /* no room for NUL */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_nul),
        cmocka_unit_test(test_mutf7),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
