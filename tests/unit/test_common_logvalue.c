/* Log values from peers (common/logvalue.c): bare when harmless, else quoted with every
 * unsafe byte escaped; UTF-8 checked strictly; output bounded and always a whole value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logvalue.h"

struct vcase {
    const char *in;
    size_t len; /* 0: strlen(in) */
    const char *want;
};

static void check_cases(const struct vcase *c, size_t n, unsigned flags)
{
    for (size_t i = 0; i < n; i++) {
        char out[PM_LOGV_SIZE];
        size_t len = c[i].len ? c[i].len : strlen(c[i].in);
        pm_logv_mem(out, sizeof out, c[i].in, len, flags);
        if (strcmp(out, c[i].want) != 0)
            fail_msg("case %zu: got [%s], want [%s]", i, out, c[i].want);
    }
}

static void test_bare(void **state)
{
    (void)state;
    static const struct vcase c[] = {
        {"alice@example.test", 0, "alice@example.test"},
        {"<alice+tag@example.test>", 0, "<alice+tag@example.test>"},
        {"<>", 0, "<>"},
        {"127.0.0.1:2525", 0, "127.0.0.1:2525"},
        {"[IPv6:::1]", 0, "[IPv6:::1]"},
        {"mx.example.test,mx2.example.test", 0, "mx.example.test,mx2.example.test"},
        {"a_b-c/d%e!f#g$h&i*j(k)l?m^n{o}p|q~r'st;u`v", 0, "a_b-c/d%e!f#g$h&i*j(k)l?m^n{o}p|q~r'st;u`v"},
        {"", 0, "\"\""},
    };
    check_cases(c, sizeof c / sizeof c[0], 0);
    char out[PM_LOGV_SIZE];
    assert_string_equal(PM_LOGV(out, NULL), "\"\"");
    assert_string_equal(PM_LOGV(out, "bob@example.test"), "bob@example.test");
}

static void test_quoted_ascii(void **state)
{
    (void)state;
    static const struct vcase c[] = {
        {"two words", 0, "\"two words\""},
        {"say \"hi\"", 0, "\"say \\\"hi\\\"\""},
        {"back\\slash", 0, "\"back\\\\slash\""},
        {"a=b", 0, "\"a\\x3db\""},
        {"tab\there", 0, "\"tab\\x09here\""},
        {"cr\rlf\n", 0, "\"cr\\x0dlf\\x0a\""},
        {"esc\x1b[2J", 0, "\"esc\\x1b[2J\""},
        {"del\x7f", 0, "\"del\\x7f\""},
        {"nul\0after", 9, "\"nul\\x00after\""},
        {"\"", 0, "\"\\\"\""},
    };
    check_cases(c, sizeof c / sizeof c[0], 0);
}

/* The reported attack: nothing in the value may read as a key of the line. */
static void test_injection(void **state)
{
    (void)state;
    const char *evil = "\"x id=0000000000000000 event=delivered to=ceo@example.test\"@evil.test";
    char out[PM_LOGV_SIZE];
    pm_logv_path(out, sizeof out, evil);
    assert_string_equal(out, "\"<\\\"x id\\x3d0000000000000000 event\\x3ddelivered to\\x3dceo@example.test\\\"@evil.test>\"");
    assert_null(strchr(out, '='));
    assert_null(strstr(out, " id="));
    assert_null(strstr(out, "event="));
    /* A newline cannot start a forged line either. */
    pm_logv(out, sizeof out, "x\nts=1 svc=queue event=delivered id=0000000000000000");
    assert_null(strchr(out, '\n'));
    assert_null(strchr(out, '='));
}

static void test_utf8(void **state)
{
    (void)state;
    static const struct vcase c[] = {
        /* valid letters and symbols: as they are, bare when nothing else needs quotes */
        {"j\xc3\xb6rg@b\xc3\xbc" "cher.test", 0, "j\xc3\xb6rg@b\xc3\xbc" "cher.test"},
        {"gr\xc3\xbc\xc3\x9f" "e sch\xc3\xb6n", 0, "\"gr\xc3\xbc\xc3\x9f" "e sch\xc3\xb6n\""},
        {"\xe2\x82\xac", 0, "\xe2\x82\xac"},                                /* U+20AC */
        {"\xf0\x9f\x98\x80", 0, "\xf0\x9f\x98\x80"},                        /* U+1F600 */
        {"\xef\xbf\xbd", 0, "\xef\xbf\xbd"},                                /* U+FFFD */
        {"\xf4\x8f\xbf\xbf", 0, "\xf4\x8f\xbf\xbf"},                        /* U+10FFFF, the last */
        {"\xed\x9f\xbf", 0, "\xed\x9f\xbf"},                                /* U+D7FF, before the surrogates */
        {"\xe4\xbe\x8b@\xe4\xbe\x8b.test", 0, "\xe4\xbe\x8b@\xe4\xbe\x8b.test"},
        /* C1 controls, separators, bidi controls: valid but escaped */
        {"\xc2\x80", 0, "\"\\xc2\\x80\""},
        {"a\xc2\x9b" "2J", 0, "\"a\\xc2\\x9b2J\""},                    /* U+009B CSI */
        {"\xc2\x85", 0, "\"\\xc2\\x85\""},                              /* NEL */
        {"\xc2\xa1", 0, "\xc2\xa1"},                                        /* U+00A1 is printable */
        /* look like a space or nothing: a reader would see two values */
        {"a\xc2\xa0id", 0, "\"a\\xc2\\xa0id\""},                              /* NBSP */
        {"a\xe3\x80\x80id", 0, "\"a\\xe3\\x80\\x80id\""},                  /* U+3000 */
        {"a\xe2\x80\x8b" "b", 0, "\"a\\xe2\\x80\\x8bb\""},                    /* U+200B zero width */
        {"\xef\xbb\xbf" "a", 0, "\"\\xef\\xbb\\xbfa\""},                   /* U+FEFF */
        {"a\xc2\xad" "b", 0, "\"a\\xc2\\xadb\""},                              /* soft hyphen */
        {"\xe2\x80\xa8", 0, "\"\\xe2\\x80\\xa8\""},                     /* U+2028 */
        {"\xe2\x80\xae" "txt", 0, "\"\\xe2\\x80\\xaetxt\""},            /* U+202E RLO */
        {"\xe2\x81\xa6", 0, "\"\\xe2\\x81\\xa6\""},                     /* U+2066 */
        /* invalid: each byte that is not part of a valid sequence */
        {"\x80", 0, "\"\\x80\""},                                       /* lone continuation */
        {"\xbf\xbf", 0, "\"\\xbf\\xbf\""},
        {"\xc3", 0, "\"\\xc3\""},                                       /* cut at the end */
        {"\xc3" "a", 0, "\"\\xc3a\""},                                  /* cut by ASCII */
        {"\xe2\x82", 0, "\"\\xe2\\x82\""},                              /* 3-byte cut short */
        {"\xf0\x9f\x98", 0, "\"\\xf0\\x9f\\x98\""},
        {"\xfe\xff", 0, "\"\\xfe\\xff\""},
        {"\xf5\x80\x80\x80", 0, "\"\\xf5\\x80\\x80\\x80\""},           /* above U+10FFFF */
        {"\xf4\x90\x80\x80", 0, "\"\\xf4\\x90\\x80\\x80\""},           /* U+110000 */
        /* overlong forms */
        {"\xc0\xae", 0, "\"\\xc0\\xae\""},                              /* '.' in two bytes */
        {"\xc1\xbf", 0, "\"\\xc1\\xbf\""},
        {"\xc0\xbd", 0, "\"\\xc0\\xbd\""},                              /* '=' in two bytes */
        {"\xe0\x80\xbd", 0, "\"\\xe0\\x80\\xbd\""},                     /* '=' in three */
        {"\xe0\x9f\xbf", 0, "\"\\xe0\\x9f\\xbf\""},                     /* U+07FF in three */
        {"\xf0\x80\x80\xbd", 0, "\"\\xf0\\x80\\x80\\xbd\""},           /* '=' in four */
        {"\xf0\x8f\xbf\xbf", 0, "\"\\xf0\\x8f\\xbf\\xbf\""},           /* U+FFFF in four */
        /* UTF-16 surrogates encoded as UTF-8 (CESU) */
        {"\xed\xa0\x80", 0, "\"\\xed\\xa0\\x80\""},                     /* U+D800 */
        {"\xed\xbf\xbf", 0, "\"\\xed\\xbf\\xbf\""},                     /* U+DFFF */
        {"\xed\xa0\xbd\xed\xb8\x80", 0, "\"\\xed\\xa0\\xbd\\xed\\xb8\\x80\""},
        /* a bad byte does not swallow the good ones after it */
        {"\xe2\x28\xa1", 0, "\"\\xe2(\\xa1\""},
        {"\xc3\xc3\xa9", 0, "\"\\xc3\xc3\xa9\""},
        {"\xc3\xa9\x80", 0, "\"\xc3\xa9\\x80\""},
    };
    check_cases(c, sizeof c / sizeof c[0], 0);
}

static void test_token_and_text(void **state)
{
    (void)state;
    static const struct vcase token[] = {
        {"alice@example.test", 0, "alice@example.test"},
        {"a b,c", 0, "\"a\\x20b\\x2cc\""},
    };
    check_cases(token, sizeof token / sizeof token[0], PM_LOGV_TOKEN);
    static const struct vcase text[] = {
        {"Subject: hi \"there\" a=b\n\tfolded\n", 0, "Subject: hi \"there\" a=b\n\tfolded\n"},
        {"x\x1b]0;owned\x07\r", 0, "x\\x1b]0;owned\\x07\\x0d"},
        {"back\\slash \xc2\x9b \xff caf\xc3\xa9", 0, "back\\\\slash \\xc2\\x9b \\xff caf\xc3\xa9"},
        {"", 0, ""},
    };
    check_cases(text, sizeof text / sizeof text[0], PM_LOGV_TEXT);
}

/* Checks that out is one well-formed value: bare, or quoted with only \" \\ \xHH escapes. */
static void assert_whole_value(const char *out)
{
    size_t n = strlen(out);
    if (n == 0 || out[0] != '"') {
        assert_null(strpbrk(out, " \"\\="));
        return;
    }
    assert_true(n >= 2 && out[n - 1] == '"');
    for (size_t i = 1; i < n - 1; i++) {
        if (out[i] == '"')
            fail_msg("unescaped quote at %zu in [%s]", i, out);
        if (out[i] == '\\') {
            assert_true(i + 1 < n - 1);
            if (out[i + 1] == 'x') {
                assert_true(i + 3 < n - 1);
                i += 3;
            } else {
                assert_true(out[i + 1] == '"' || out[i + 1] == '\\');
                i++;
            }
        }
    }
}

static void test_truncation(void **state)
{
    (void)state;
    char big[4000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char out[PM_LOGV_SIZE];
    /* A safe value that does not fit is quoted and marked. */
    pm_logv(out, sizeof out, big);
    assert_int_equal(strlen(out), sizeof out - 1);
    assert_int_equal(out[0], '"');
    assert_string_equal(out + strlen(out) - 4, "...\"");
    /* One that just fits stays bare. */
    big[sizeof out - 1] = '\0';
    pm_logv(out, sizeof out, big);
    assert_int_equal(strlen(out), sizeof out - 1);
    assert_int_equal(out[0], 'a');
    /* Escapes and characters are never cut in half, whatever the buffer size. */
    const char *hostile = "\"=\\\x01\xc3\xa9\xf0\x9f\x98\x80\xc2\x9b\xff x";
    char line[2000] = "";
    for (int i = 0; i < 100; i++)
        strcat(line, hostile);
    for (size_t size = 1; size < 200; size++) {
        char *o = malloc(size);
        assert_non_null(o);
        memset(o, 'Z', size);
        pm_logv(o, size, line);
        assert_true(strlen(o) < size);
        if (size >= 6) {
            assert_whole_value(o);
            assert_string_equal(o + strlen(o) - 4, "...\"");
        } else {
            assert_string_equal(o, ""); /* too small for even `"..."` */
        }
        for (size_t i = 0; o[i]; i++) /* never a cut UTF-8 sequence: only whole ones or escapes */
            if ((unsigned char)o[i] >= 0x80) {
                assert_true((unsigned char)o[i] == 0xc3 || (unsigned char)o[i] == 0xf0 ||
                            ((unsigned char)o[i] & 0xc0) == 0x80);
                if ((unsigned char)o[i] == 0xc3)
                    assert_int_equal((unsigned char)o[i + 1], 0xa9);
                if ((unsigned char)o[i] == 0xf0)
                    assert_memory_equal(o + i, "\xf0\x9f\x98\x80", 4);
            }
        free(o);
    }
    /* A truncated path keeps no closing '>' that the address did not reach. */
    char addr[1000];
    memset(addr, 'b', sizeof addr - 1);
    addr[sizeof addr - 1] = '\0';
    pm_logv_path(out, sizeof out, addr);
    assert_string_equal(out + strlen(out) - 5, "b...\"");
    assert_string_equal(PM_LOGV_PATH(out, "a@b.test"), "<a@b.test>");
    assert_string_equal(PM_LOGV_PATH(out, ""), "<>");
    assert_string_equal(PM_LOGV_PATH(out, NULL), "<>");
    assert_string_equal(PM_LOGV_PATH(out, "a b@c"), "\"<a b@c>\"");
    /* Text mode cuts with the mark too. */
    memset(big, 'c', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    pm_logv_mem(out, 10, big, strlen(big), PM_LOGV_TEXT);
    assert_string_equal(out, "cccccc...");
    pm_logv_mem(out, 0, big, strlen(big), 0); /* size 0: nothing written, no crash */
}

/* Every byte value alone, and all two-byte strings: never a raw '=', control, quote or
 * unpaired backslash in the output, and only valid UTF-8. */
static void test_exhaustive_pairs(void **state)
{
    (void)state;
    char out[64];
    for (int a = 0; a < 256; a++)
        for (int b = -1; b < 256; b++) {
            unsigned char in[2] = {(unsigned char)a, (unsigned char)(b < 0 ? 0 : b)};
            pm_logv_mem(out, sizeof out, in, b < 0 ? 1 : 2, 0);
            assert_whole_value(out);
            for (const unsigned char *p = (const unsigned char *)out; *p; p++) {
                assert_true(*p >= 0x20 && *p != 0x7f && *p != '=');
                if (*p >= 0x80) { /* a whole valid sequence, not a C1 control */
                    assert_true(*p >= 0xc2 && *p <= 0xdf);
                    assert_true(p[1] >= 0xa0 && p[1] <= 0xbf ? 1 : *p > 0xc2);
                    assert_true((p[1] & 0xc0) == 0x80);
                    p++;
                }
            }
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bare),
        cmocka_unit_test(test_quoted_ascii),
        cmocka_unit_test(test_injection),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_token_and_text),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_exhaustive_pairs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
