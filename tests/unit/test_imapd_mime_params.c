/* BODYSTRUCTURE parameter lists (services/imapd/mime_params.c): raw Content-Type /
 * Content-Disposition values and the list Dovecot 2.3 gives for each (its lib-mail
 * rfc2231-parser.c rules: values as sent, continuations joined, plain parameters first),
 * then hostile inputs that must stay bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <glib.h>

#include "imapd/mime_int.h"

static char *params(const char *raw, int default_charset)
{
    struct evbuffer *out = evbuffer_new();
    mime_write_params(out, raw, default_charset);
    size_t len = evbuffer_get_length(out);
    char *s = malloc(len + 1);
    evbuffer_remove(out, s, len);
    s[len] = '\0';
    evbuffer_free(out);
    return s;
}

static const struct { const char *raw; int text; const char *want; } cases[] = {
    {"text/plain", 0, "NIL"},
    {"text/plain", 1, "(\"charset\" \"us-ascii\")"},
    {NULL, 1, "(\"charset\" \"us-ascii\")"},
    {"TEXT/PLAIN; CHARSET=UTF-8; Format=Flowed", 1, "(\"CHARSET\" \"UTF-8\" \"Format\" \"Flowed\")"},
    /* an encoded word in quotes: the sender's bytes, not decoded and encoded again */
    {"application/octet-stream; name=\"=?UTF-8?Q?r=C3=A9sum=C3=A9.txt?=\"", 0,
     "(\"name\" \"=?UTF-8?Q?r=C3=A9sum=C3=A9.txt?=\")"},
    /* continuations: one parameter, never "name*" */
    {"text/plain; charset=us-ascii; name*0=\"a-rather-long-\"; name*1=\"file-name.txt\"", 1,
     "(\"charset\" \"us-ascii\" \"name\" \"a-rather-long-file-name.txt\")"},
    {"attachment; filename*=utf-8''%C3%BCbersicht.txt", 0, "(\"filename*\" \"utf-8''%C3%BCbersicht.txt\")"},
    /* encoded pieces among plain ones (a plain piece's % escaped), out of order */
    {"x/y; n*1=\"b%c\"; n*0*=utf-8''%41; z=1", 0, "(\"z\" \"1\" \"n*\" \"utf-8''%41b%25c\")"},
    {"x/y; n*1=b; n*0=a; a=1", 0, "(\"a\" \"1\" \"n\" \"ab\")"},
    /* a missing piece: each as written */
    {"x/y; n*0=a; n*2=c", 0, "(\"n*0\" \"a\" \"n*2\" \"c\")"},
    /* a star inside a name is just a name */
    {"x/y; a*b=1", 0, "(\"a*b\" \"1\")"},
    /* quoting, comments, folds */
    {"text/plain (a; comment); charset=\"utf\\\"8\" (more)", 0, "(\"charset\" \"utf\\\"8\")"},
    {"text/plain;\r\n\tcharset=\"utf-\r\n 8\"", 0, "(\"charset\" \"utf- 8\")"},
    {"x/y; name==?utf-8?b?YQ==?=", 0, "(\"name\" \"=?utf-8?b?YQ==?=\")"},
    {"x/y; name=", 0, "(\"name\" \"\")"},
    /* broken pieces are skipped up to the next ';' */
    {"x/y; a b; c=d; =e; f=\"open", 0, "(\"c\" \"d\")"},
    {"x/y; a=\"q\" junk; b=2;", 0, "(\"a\" \"q\" \"b\" \"2\")"},
    {"x/y; (open comment", 0, "NIL"},
    /* 8-bit values go out as literals, as Dovecot does */
    {"x/y; name=\"\xc3\xa9\"", 0, "(\"name\" {2}\r\n\xc3\xa9)"},
};

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = params(cases[i].raw, cases[i].text);
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("%s\n got: %s\nwant: %s", cases[i].raw ? cases[i].raw : "(none)", got, cases[i].want);
        free(got);
    }
}

/* Thousands of parameters, pieces, deep comments, huge indexes: bounded, no crash. */
static void test_hostile(void **state)
{
    (void)state;
    GString *g = g_string_new("x/y");
    for (int i = 0; i < 5000; i++)
        g_string_append_printf(g, "; n*%d=v%d", 4999 - i, i);
    char *got = params(g->str, 0);
    assert_true(strlen(got) < 128 * 32);  /* PARAMS_MAX of them at most */
    free(got);
    g_string_assign(g, "x/y; a=1 ");
    for (int i = 0; i < 100000; i++)
        g_string_append_c(g, '(');
    got = params(g->str, 0);
    assert_string_equal(got, "NIL");  /* the open comment breaks a=1 too, as Dovecot */
    free(got);
    got = params("x/y; n*99999999999999999999=a; n*4294967296*=b", 0);
    assert_non_null(strstr(got, "\"n*"));
    free(got);
    g_string_free(g, TRUE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
