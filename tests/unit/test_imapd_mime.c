/* MIME view of a message (services/imapd/mime.h): ENVELOPE, BODY and BODYSTRUCTURE byte
 * for byte as Dovecot answers them for the same files (imapd_mime_msgs.h), a bare-LF file,
 * hostile shapes (deep nesting, many parts, a huge header) that must stay bounded, the
 * SEARCH helpers and BINARY. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/buffer.h>
#include <glib.h>

#include "imapd/fetch_atts.h"
#include "imapd/mime.h"
#define IMAPD_GOLDEN_STRUCT
#include "imapd_mime_golden.h"

/* A section from its text (fetch_atts.c's parser), on the heap; NULL if invalid. */
static struct imap_section *sec_parse(const char *text, int binary)
{
    struct imap_section *sec = calloc(1, sizeof *sec);
    const char *err;
    if (imap_section_parse(text, strlen(text), binary, sec, &err) < 0) {
        free(sec);
        return NULL;
    }
    return sec;
}

static void sec_free(struct imap_section *sec)
{
    imap_section_free(sec);
    free(sec);
}

static struct imap_msg *open_msg(const char *data, size_t len)
{
    struct imap_msg *m = imap_msg_open(msg_fd(data, len));
    assert_non_null(m);
    return m;
}

/* out's bytes as a string (freed by the caller). */
static char *take(struct evbuffer *out)
{
    size_t n = evbuffer_get_length(out);
    char *s = malloc(n + 1);
    evbuffer_remove(out, s, n);
    s[n] = '\0';
    return s;
}

static void expect(struct imap_msg *m, int what, const char *want, const char *name)
{
    struct evbuffer *out = evbuffer_new();
    int rc = what == 0 ? imap_msg_envelope(m, out) : imap_msg_bodystructure(m, what == 1, out);
    assert_int_equal(rc, 0);
    char *got = take(out);
    if (strcmp(got, want) != 0)
        fail_msg("%s item %d\n got: %s\nwant: %s", name, what, got, want);
    free(got);
    evbuffer_free(out);
}

static void test_dovecot_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct case_struct *c = &cases[i];
        /* Items in both orders: the lazy header-only parse then the full one, and back. */
        struct imap_msg *m = open_msg(c->msg, c->len);
        expect(m, 0, c->envelope, c->name);
        expect(m, 1, c->bodystructure, c->name);
        expect(m, 2, c->body, c->name);
        assert_int_equal(imap_msg_size(m), c->len);
        imap_msg_free(m);
        m = open_msg(c->msg, c->len);
        expect(m, 1, c->bodystructure, c->name);
        expect(m, 0, c->envelope, c->name);
        imap_msg_free(m);
    }
}

/* A bare-LF file is served as its bytes are: the same structure as the CRLF one, sizes
 * and line counts of the LF bytes (Dovecot would count each LF as CRLF: 8 1). */
static void test_bare_lf(void **state)
{
    (void)state;
    struct imap_msg *m = open_msg(msg_lf, sizeof msg_lf - 1);
    expect(m, 1, "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 7 1 NIL NIL NIL NIL)"
                 " \"mixed\" (\"boundary\" \"L\") NIL NIL NIL)", "lf");
    expect(m, 0, "(NIL \"bare lf\" ((NIL NIL \"lf\" \"example.org\")) ((NIL NIL \"lf\" \"example.org\"))"
                 " ((NIL NIL \"lf\" \"example.org\")) NIL NIL NIL NIL NIL)", "lf");
    imap_msg_free(m);
}

static char *nested(int levels, size_t *len)
{
    GString *g = g_string_new("From: a@b\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n");
    for (int i = 1; i < levels; i++)
        g_string_append_printf(g, "--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n", i - 1, i);
    g_string_append_printf(g, "--b%d\r\nContent-Type: text/plain\r\n\r\nx\r\n", levels - 1);
    for (int i = levels - 1; i >= 0; i--)
        g_string_append_printf(g, "--b%d--\r\n", i);
    *len = g->len;
    return g_string_free(g, FALSE);
}

static int max_depth(const char *s)
{
    int d = 0, max = 0;
    for (; *s; s++) {
        d += *s == '(' ? 1 : *s == ')' ? -1 : 0;
        if (d > max)
            max = d;
    }
    return max;
}

static char *structure(struct imap_msg *m)
{
    struct evbuffer *out = evbuffer_new();
    assert_int_equal(imap_msg_bodystructure(m, 1, out), 0);
    char *s = take(out);
    evbuffer_free(out);
    return s;
}

/* 5,000 nested multiparts (GMime itself stops at 1,024): described down to
 * IMAP_MIME_DEPTH_MAX levels, the deepest one as an opaque leaf; no recursion past it. */
static void test_hostile_depth(void **state)
{
    (void)state;
    size_t len;
    char *msg = nested(5000, &len);
    struct imap_msg *m = open_msg(msg, len);
    char *s = structure(m);
    assert_true(max_depth(s) <= IMAP_MIME_DEPTH_MAX + 2);
    assert_non_null(strstr(s, "\"multipart\" \"mixed\""));  /* the leaf at the cap */
    free(s);
    imap_msg_free(m);
    g_free(msg);

    /* message/rfc822 inside message/rfc822, 3,000 times. */
    GString *g = g_string_new(NULL);
    for (int i = 0; i < 3000; i++)
        g_string_append(g, "From: a@b\r\nContent-Type: message/rfc822\r\n\r\n");
    g_string_append(g, "From: z@z\r\n\r\nbody\r\n");
    m = open_msg(g->str, g->len);
    s = structure(m);
    assert_true(max_depth(s) < 4 * IMAP_MIME_DEPTH_MAX);  /* each level adds its envelope */
    free(s);
    imap_msg_free(m);
    g_string_free(g, TRUE);
}

/* 20,000 parts: at most IMAP_MIME_PARTS_MAX described, and GMime given only a bounded
 * prefix of the file. */
static void test_hostile_width(void **state)
{
    (void)state;
    GString *g = g_string_new("From: a@b\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n");
    for (int i = 0; i < 20000; i++)
        g_string_append(g, "--b\r\n\r\nx\r\n");
    g_string_append(g, "--b--\r\n");
    struct imap_msg *m = open_msg(g->str, g->len);
    char *s = structure(m);
    size_t parts = 0;
    for (const char *p = s; (p = strstr(p, "(\"text\"")) != NULL; p++)
        parts++;
    assert_true(parts > 100 && parts <= IMAP_MIME_PARTS_MAX);
    free(s);
    imap_msg_free(m);
    g_string_free(g, TRUE);
}

static char *item(struct imap_msg *m, int what)
{
    struct evbuffer *out = evbuffer_new();
    assert_int_equal(what == 0 ? imap_msg_envelope(m, out) : imap_msg_bodystructure(m, 1, out), 0);
    char *s = take(out);
    evbuffer_free(out);
    return s;
}

/* A 3 MB header (60,000 fields in its middle): GMime gets only its first and last
 * IMAP_MIME_HEADER_MAX / 2 bytes, so memory stays small, yet the fields at both ends
 * (Content-Type, Subject after the padding) count and every offset is the file's:
 * ENVELOPE, BODYSTRUCTURE and the parts are those of the same message without the pad. */
static void test_hostile_header(void **state)
{
    (void)state;
    const char *at = strstr(msg_nested, "Subject:");
    GString *g = g_string_new_len(msg_nested, at - msg_nested);
    for (int i = 0; i < 60000; i++)
        g_string_append(g, "X-Pad: 0123456789012345678901234567890123456789\r\n");
    size_t pad = g->len - (size_t)(at - msg_nested);
    g_string_append(g, at);
    struct imap_msg *big = open_msg(g->str, g->len);
    struct imap_msg *small = open_msg(msg_nested, sizeof msg_nested - 1);
    for (int what = 0; what < 2; what++) {
        char *a = item(small, what), *b = item(big, what);
        assert_string_equal(a, b);
        free(a);
        free(b);
    }
    static const char *const secs[] = {"HEADER", "TEXT", "1", "2", "2.MIME", "2.HEADER", "2.2", "1.MIME"};
    for (size_t i = 0; i < sizeof secs / sizeof secs[0]; i++) {
        struct imap_section *sec = sec_parse(secs[i], 0);
        int64_t want = imap_msg_section_size(small, sec) + (i == 0 ? (int64_t)pad : 0);
        assert_int_equal(imap_msg_section_size(big, sec), want);
        sec_free(sec);
    }
    imap_msg_free(big);
    imap_msg_free(small);
    g_string_free(g, TRUE);
}

static const char msg_search[] =
    "From: =?ISO-8859-1?Q?Andr=E9?= <andre@example.org>\r\n"
    "To: bob@example.net\r\n"
    "Subject: =?UTF-8?B?SGVsbG8gV8O2cmxk?=\r\n"
    "Date: Mon, 30 Nov 2026 23:30:00 -0500\r\n"
    "Content-Type: multipart/mixed; boundary=S\r\n"
    "\r\n"
    "--S\r\n"
    "Content-Type: text/plain; charset=iso-8859-1\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "Un caf=E9 cr=E8me, s'il vous pla=EEt\r\n"
    "--S\r\n"
    "Content-Type: application/octet-stream\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "AAECc2VjcmV0\r\n"
    "--S\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Transfer-Encoding: x-unknown\r\n"
    "\r\n"
    "odd\r\n"
    "--S--\r\n";

static void test_search(void **state)
{
    (void)state;
    struct imap_msg *m = open_msg(msg_search, sizeof msg_search - 1);
    assert_int_equal(imap_msg_header_contains(m, "subject", "WÖRLD"), 1);
    assert_int_equal(imap_msg_header_contains(m, "Subject", "SGVsbG8"), 0);  /* decoded, not raw */
    assert_int_equal(imap_msg_header_contains(m, "from", "andré"), 1);
    assert_int_equal(imap_msg_header_contains(m, "to", "andré"), 0);
    assert_int_equal(imap_msg_header_contains(m, "cc", ""), 0);          /* no such field */
    assert_int_equal(imap_msg_header_contains(m, "to", ""), 1);
    assert_int_equal(imap_msg_body_contains(m, "CAFÉ CRÈME"), 1);       /* QP + latin-1 */
    assert_int_equal(imap_msg_body_contains(m, "caf=E9"), 0);
    assert_int_equal(imap_msg_body_contains(m, "secret"), 0);          /* not text: raw base64 */
    assert_int_equal(imap_msg_body_contains(m, "AAECc2Vj"), 1);
    assert_int_equal(imap_msg_text_contains(m, "bob@example"), 1);     /* header part of TEXT */
    assert_int_equal(imap_msg_text_contains(m, "plaît"), 1);
    assert_int_equal(imap_msg_text_contains(m, "nowhere"), 0);
    int y, mo, d;
    assert_int_equal(imap_msg_sent_date(m, &y, &mo, &d), 0);
    assert_int_equal(y * 10000 + mo * 100 + d, 20261130);             /* its own zone's day */
    imap_msg_free(m);

    m = open_msg(msg_missing, sizeof msg_missing - 1);
    assert_int_equal(imap_msg_sent_date(m, &y, &mo, &d), -1);
    imap_msg_free(m);
}

/* A needle across the 64 KiB chunks the body is read in. */
static void test_search_chunks(void **state)
{
    (void)state;
    GString *g = g_string_new("Subject: big\r\n\r\n");
    while (g->len < 64 * 1024 - 3)
        g_string_append_c(g, 'a');
    g_string_append(g, "NEEDLE in the middle\r\n");
    struct imap_msg *m = open_msg(g->str, g->len);
    assert_int_equal(imap_msg_body_contains(m, "needle in"), 1);
    assert_int_equal(imap_msg_body_contains(m, "aneedle"), 1);
    assert_int_equal(imap_msg_body_contains(m, "needles"), 0);
    imap_msg_free(m);
    g_string_free(g, TRUE);
}

static char *binary(struct imap_msg *m, const char *spec, int *rc)
{
    struct imap_section *sec = sec_parse(spec, 1);
    assert_non_null(sec);
    struct evbuffer *out = evbuffer_new();
    *rc = imap_msg_binary_write(m, sec, 0, 0, 0, out);
    char *s = take(out);
    evbuffer_free(out);
    sec_free(sec);
    return s;
}

static void test_binary(void **state)
{
    (void)state;
    struct imap_msg *m = open_msg(msg_search, sizeof msg_search - 1);
    int rc;
    char *s = binary(m, "2", &rc);
    assert_int_equal(rc, 0);
    assert_memory_equal(s, "~{9}\r\n\0\1\2secret", 15);   /* NUL inside: literal8 */
    free(s);
    s = binary(m, "1", &rc);
    assert_string_equal(s, "{30}\r\nUn caf\xe9 cr\xe8me, s'il vous pla\xeet");
    free(s);
    s = binary(m, "3", &rc);
    assert_int_equal(rc, -2);  /* UNKNOWN-CTE */
    free(s);
    struct imap_section *sec = sec_parse("2", 1);
    assert_int_equal(imap_msg_binary_size(m, sec), 9);
    sec_free(sec);
    assert_null(sec_parse("1.MIME", 1));  /* BINARY takes part numbers only */
    imap_msg_free(m);

    /* An empty base64 part decodes to nothing: {0} (found by fuzz_imapd_mime). */
    static const char empty[] = "Content-Type: multipart/mixed; boundary=E\r\n\r\n--E\r\n"
                                "Content-Transfer-Encoding: base64\r\n\r\n\r\n--E--\r\n";
    m = open_msg(empty, sizeof empty - 1);
    s = binary(m, "1", &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(s, "{0}\r\n");
    free(s);
    imap_msg_free(m);
}

static void test_files(void **state)
{
    (void)state;
    errno = 0;
    assert_null(imap_msg_open_path("/nonexistent/msg"));
    assert_int_equal(errno, ENOENT);
    assert_null(imap_msg_open(open("/tmp", O_RDONLY | O_DIRECTORY)));
    assert_int_equal(errno, EINVAL);
    /* An empty file is an empty message. */
    struct imap_msg *m = open_msg("", 0);
    expect(m, 0, "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)", "empty");
    expect(m, 1, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)", "empty");
    imap_msg_free(m);
}

static int teardown(void **state)
{
    (void)state;
    imap_mime_shutdown();
    return 0;
}

int main(void)
{
    imap_mime_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dovecot_table),
        cmocka_unit_test(test_bare_lf),
        cmocka_unit_test(test_hostile_depth),
        cmocka_unit_test(test_hostile_width),
        cmocka_unit_test(test_hostile_header),
        cmocka_unit_test(test_search),
        cmocka_unit_test(test_search_chunks),
        cmocka_unit_test(test_binary),
        cmocka_unit_test(test_files),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
