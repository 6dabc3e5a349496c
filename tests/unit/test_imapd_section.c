/* BODY[section]<partial> bytes (services/imapd/mime.h, section.c): a table of sections of
 * the test messages with the exact values Dovecot 2.3.19 sent for them (literal head
 * included; a section naming nothing is {0}), then partial ranges of a body big enough to
 * go out through evbuffer_add_file, and section sizes. Section texts are parsed by
 * fetch_atts.c's imap_section_parse, as FETCH does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/buffer.h>
#include <glib.h>

#include "imapd/fetch_atts.h"
#include "imapd/mime.h"
#include "imapd/mime_int.h"  /* hdr_state, full_state: which sections spare GMime */
#define IMAPD_GOLDEN_SECTIONS
#include "imapd_mime_golden.h"

static char *section_value(struct imap_msg *m, const char *text, int partial, uint64_t origin,
                           uint64_t count, size_t *len)
{
    struct imap_section sec;
    const char *err;
    assert_int_equal(imap_section_parse(text, strlen(text), 0, &sec, &err), 0);
    struct evbuffer *out = evbuffer_new();
    assert_int_equal(imap_msg_section_write(m, &sec, partial, origin, count, out), 0);
    if (!partial) {
        /* The size agrees with what was sent (its literal head aside). */
        int64_t size = imap_msg_section_size(m, &sec);
        char head[32];
        snprintf(head, sizeof head, "{%lld}\r\n", (long long)size);
        assert_true(evbuffer_get_length(out) == strlen(head) + (size_t)size);
    }
    imap_section_free(&sec);
    *len = evbuffer_get_length(out);
    char *s = malloc(*len + 1);
    evbuffer_remove(out, s, *len);
    s[*len] = '\0';
    evbuffer_free(out);
    return s;
}

static void test_dovecot_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct case_section *c = &cases[i];
        struct imap_msg *m = imap_msg_open(msg_fd(c->msg, c->len));
        assert_non_null(m);
        size_t len;
        char *got = section_value(m, c->section, c->partial, c->origin, c->count, &len);
        if (len != strlen(c->want) || memcmp(got, c->want, len) != 0)
            fail_msg("%s BODY[%s]\n got: %s\nwant: %s", c->name, c->section, got, c->want);
        free(got);
        imap_msg_free(m);
    }
}

/* One message of 300 KB: its text goes out with evbuffer_add_file; partial windows at the
 * start, across the middle, past the end. */
static void test_big_partial(void **state)
{
    (void)state;
    GString *g = g_string_new("Subject: big\r\nContent-Type: multipart/mixed; boundary=Z\r\n\r\n--Z\r\n\r\n");
    size_t body_at = g->len;
    for (int i = 0; g->len < 300 * 1024; i++)
        g_string_append_printf(g, "line %06d of the big part\r\n", i);
    size_t body_len = g->len - body_at;
    g_string_append(g, "\r\n--Z--\r\n");
    struct imap_msg *m = imap_msg_open(msg_fd(g->str, g->len));
    assert_non_null(m);
    size_t len;
    char *s = section_value(m, "1", 0, 0, 0, &len);
    char head[32];
    snprintf(head, sizeof head, "{%zu}\r\n", body_len);
    assert_int_equal(len, strlen(head) + body_len);
    assert_memory_equal(s + strlen(head), g->str + body_at, body_len);
    free(s);
    const uint64_t windows[][2] = {{0, 10}, {100000, 150000}, {body_len - 5, 100}, {body_len, 1}, {body_len + 9, 1}};
    for (size_t w = 0; w < sizeof windows / sizeof windows[0]; w++) {
        uint64_t o = windows[w][0], n = windows[w][1];
        uint64_t want = o >= body_len ? 0 : (body_len - o < n ? body_len - o : n);
        s = section_value(m, "1", 1, o, n, &len);
        snprintf(head, sizeof head, "{%llu}\r\n", (unsigned long long)want);
        assert_int_equal(len, strlen(head) + want);
        assert_memory_equal(s, head, strlen(head));
        if (want > 0)
            assert_memory_equal(s + strlen(head), g->str + body_at + o, want);
        free(s);
    }
    imap_msg_free(m);
    g_string_free(g, TRUE);
}

/* HEADER.FIELDS with a partial window: taken from the put-together bytes. */
static void test_fields_partial(void **state)
{
    (void)state;
    struct imap_msg *m = imap_msg_open(msg_fd(msg_simple, sizeof msg_simple - 1));
    size_t len;
    char *s = section_value(m, "HEADER.FIELDS (Subject To)", 1, 4, 6, &len);
    assert_string_equal(s, "{6}\r\nbob@ex");
    free(s);
    s = section_value(m, "HEADER.FIELDS (\"subject\")", 0, 0, 0, &len);
    assert_string_equal(s, "{24}\r\nSubject: Hello there\r\n\r\n");
    free(s);
    imap_msg_free(m);
}

/* The message file vanished or shrank after it was opened: an error, never a short literal
 * passed off as the section. */
static void test_truncated(void **state)
{
    (void)state;
    int fd = msg_fd(msg_simple, sizeof msg_simple - 1);
    struct imap_msg *m = imap_msg_open(fd);
    assert_int_equal(ftruncate(fd, 10), 0);
    struct imap_section sec;
    const char *err;
    assert_int_equal(imap_section_parse("TEXT", 4, 0, &sec, &err), 0);
    struct evbuffer *out = evbuffer_new();
    assert_int_equal(imap_msg_section_write(m, &sec, 0, 0, 0, out), -1);
    assert_int_equal(evbuffer_get_length(out), 0);  /* no literal head without its bytes */
    evbuffer_free(out);
    imap_section_free(&sec);
    imap_msg_free(m);
}

/* The top-level HEADER, TEXT and whole message are byte ranges found by a scan for the
 * blank line, HEADER.FIELDS(.NOT) a scan of the header's lines: GMime parses nothing for
 * them (FETCH 1:* BODY.PEEK[HEADER] of a big folder ran at a sixth of Dovecot's speed,
 * HEADER.FIELDS at a tenth of HEADER's, when it did). */
static void test_top_sections_spare_gmime(void **state)
{
    (void)state;
    const char *sections[] = {"HEADER", "TEXT", "", "HEADER.FIELDS (Subject To)", "HEADER.FIELDS.NOT (Subject)"};
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++) {
        struct imap_msg *m = imap_msg_open(msg_fd(msg_simple, sizeof msg_simple - 1));
        size_t len;
        free(section_value(m, sections[i], 0, 0, 0, &len));
        free(section_value(m, sections[i], 1, 2, 5, &len));
        assert_int_equal(m->hdr_state, 0);
        assert_int_equal(m->full_state, 0);
        imap_msg_free(m);
    }
}

/* The header's end where the first read (16 KiB) stops: inside a long header, on a CR
 * whose LF comes in the next read, and bare LF lines; HEADER is the bytes up to it. */
static void test_header_end_across_first_read(void **state)
{
    (void)state;
    const size_t ends[] = {100, 16 * 1024 - 1, 16 * 1024, 16 * 1024 + 1, 40000};
    for (size_t k = 0; k < sizeof ends / sizeof ends[0]; k++) {
        for (int lf = 0; lf < 2; lf++) {
            GString *g = g_string_new("Subject: long\r\n");
            while (g->len + 40 < ends[k])
                g_string_append(g, "X-Filler: 0123456789012345678901234\r\n");
            while (g->len + (lf ? 1 : 2) < ends[k])
                g_string_insert(g, 9, "x");  /* the Subject grows to the exact length */
            g_string_append(g, lf ? "\n" : "\r\n");
            assert_int_equal(g->len, ends[k]);
            g_string_append(g, "body\r\n");
            struct imap_msg *m = imap_msg_open(msg_fd(g->str, g->len));
            size_t len;
            char *s = section_value(m, "HEADER", 0, 0, 0, &len);
            char head[32];
            snprintf(head, sizeof head, "{%zu}\r\n", ends[k]);
            assert_int_equal(len, strlen(head) + ends[k]);
            assert_memory_equal(s + strlen(head), g->str, ends[k]);
            free(s);
            s = section_value(m, "TEXT", 0, 0, 0, &len);
            assert_string_equal(s, "{6}\r\nbody\r\n");
            free(s);
            imap_msg_free(m);
            g_string_free(g, TRUE);
        }
    }
}

/* HEADER.FIELDS by the line scan: folds kept, names without case and blanks before the
 * colon, lines that are no field left out, the last field without a line break given one
 * (the bytes GMime's field list gave for the same header). */
static void test_fields_scan(void **state)
{
    (void)state;
    static const char msg[] = "From: a\r\nbogus line\r\nSubject : s\r\n  cont\r\nX: 1\r\n\tmore\r\n"
                              "subject: two\r\n\r\nSubject: body\r\n";
    struct imap_msg *m = imap_msg_open(msg_fd(msg, sizeof msg - 1));
    size_t len;
    char *s = section_value(m, "HEADER.FIELDS (SUBJECT)", 0, 0, 0, &len);
    assert_string_equal(s, "{37}\r\nSubject : s\r\n  cont\r\nsubject: two\r\n\r\n");
    free(s);
    s = section_value(m, "HEADER.FIELDS.NOT (Subject)", 0, 0, 0, &len);
    assert_string_equal(s, "{24}\r\nFrom: a\r\nX: 1\r\n\tmore\r\n\r\n");
    free(s);
    imap_msg_free(m);
    static const char nobreak[] = "From: a\r\nTo: b";
    m = imap_msg_open(msg_fd(nobreak, sizeof nobreak - 1));
    s = section_value(m, "HEADER.FIELDS (to)", 0, 0, 0, &len);
    assert_string_equal(s, "{9}\r\nTo: b\r\n\r\n");
    free(s);
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
        cmocka_unit_test(test_big_partial),
        cmocka_unit_test(test_fields_partial),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_top_sections_spare_gmime),
        cmocka_unit_test(test_header_end_across_first_read),
        cmocka_unit_test(test_fields_scan),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
