/* The milter codec (milter_proto.c): every packet we send decodes to what was meant, every
 * reply a milter may send decodes, and truncated, oversized or garbage packets are refused.
 * Then the header and body edits (milter_edit.c) as libmilter defines them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd/milter_edit.h"
#include "smtpd/milter_proto.h"

/* Takes the one packet in b; checks it is the only one. */
static unsigned char *one_packet(struct evbuffer *b, char want_cmd, size_t *len)
{
    char cmd;
    unsigned char *data;
    assert_int_equal(milter_frame(b, &cmd, &data, len), 1);
    assert_int_equal(cmd, want_cmd);
    assert_int_equal(evbuffer_get_length(b), 0);
    return data;
}

static uint32_t be32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return ntohl(v);
}

static void test_encode_commands(void **state)
{
    (void)state;
    struct evbuffer *b = evbuffer_new();
    size_t len;
    const char *s[8];

    assert_int_equal(milter_enc_optneg(b, 6, MILTER_OUR_ACTIONS, MILTER_OUR_PROTOCOL), 0);
    unsigned char *d = one_packet(b, SMFIC_OPTNEG, &len);
    assert_int_equal(len, 12);
    assert_int_equal(be32(d), 6);
    assert_int_equal(be32(d + 4), MILTER_OUR_ACTIONS);
    assert_int_equal(be32(d + 8), MILTER_OUR_PROTOCOL);
    free(d);

    const char *names[] = {"j", "{auth_authen}", "{client_addr}"};
    const char *values[] = {"mx.example.test", NULL, "192.0.2.1"};
    assert_int_equal(milter_enc_macros(b, SMFIC_CONNECT, names, values, 3), 0);
    d = one_packet(b, SMFIC_MACRO, &len);
    assert_int_equal(d[0], SMFIC_CONNECT);
    assert_int_equal(milter_strings(d + 1, len - 1, s, 8), 4); /* the NULL value is left out */
    assert_string_equal(s[0], "j");
    assert_string_equal(s[1], "mx.example.test");
    assert_string_equal(s[2], "{client_addr}");
    assert_string_equal(s[3], "192.0.2.1");
    free(d);

    assert_int_equal(milter_enc_connect(b, "[192.0.2.1]", '4', 40000, "192.0.2.1"), 0);
    d = one_packet(b, SMFIC_CONNECT, &len);
    assert_string_equal((char *)d, "[192.0.2.1]");
    size_t h = strlen("[192.0.2.1]") + 1;
    assert_int_equal(d[h], '4');
    assert_int_equal((d[h + 1] << 8) | d[h + 2], 40000);
    assert_string_equal((char *)d + h + 3, "192.0.2.1");
    assert_int_equal(len, h + 3 + strlen("192.0.2.1") + 1);
    free(d);

    assert_int_equal(milter_enc_helo(b, "client.example"), 0);
    d = one_packet(b, SMFIC_HELO, &len);
    assert_int_equal(milter_strings(d, len, s, 8), 1);
    assert_string_equal(s[0], "client.example");
    free(d);

    const char *args[] = {"SIZE=100", "BODY=8BITMIME"};
    assert_int_equal(milter_enc_envelope(b, SMFIC_MAIL, "a@example.test", args, 2), 0);
    d = one_packet(b, SMFIC_MAIL, &len);
    assert_int_equal(milter_strings(d, len, s, 8), 3);
    assert_string_equal(s[0], "<a@example.test>");
    assert_string_equal(s[1], "SIZE=100");
    assert_string_equal(s[2], "BODY=8BITMIME");
    free(d);

    assert_int_equal(milter_enc_envelope(b, SMFIC_RCPT, "", NULL, 0), 0); /* the null path */
    d = one_packet(b, SMFIC_RCPT, &len);
    assert_int_equal(milter_strings(d, len, s, 8), 1);
    assert_string_equal(s[0], "<>");
    free(d);

    assert_int_equal(milter_enc_header(b, "Subject", "hello"), 0);
    d = one_packet(b, SMFIC_HEADER, &len);
    assert_int_equal(milter_strings(d, len, s, 8), 2);
    assert_string_equal(s[0], "Subject");
    assert_string_equal(s[1], "hello");
    free(d);

    static unsigned char big[MILTER_BODY_CHUNK + 1];
    memset(big, 'x', sizeof big);
    assert_int_equal(milter_enc_body(b, big, MILTER_BODY_CHUNK), 0);
    d = one_packet(b, SMFIC_BODY, &len);
    assert_int_equal(len, MILTER_BODY_CHUNK);
    free(d);
    assert_int_equal(milter_enc_body(b, big, sizeof big), -1); /* over one chunk */
    assert_int_equal(evbuffer_get_length(b), 0);

    const char simple[] = {SMFIC_ABORT, SMFIC_EOH, SMFIC_DATA, SMFIC_BODYEOB, SMFIC_QUIT};
    for (size_t i = 0; i < sizeof simple; i++) {
        assert_int_equal(milter_enc_simple(b, simple[i]), 0);
        d = one_packet(b, simple[i], &len);
        assert_int_equal(len, 0);
        free(d);
    }
    evbuffer_free(b);
}

/* A reply as a milter writes it: length, code, data. */
static void put_reply(struct evbuffer *b, char code, const void *data, size_t len)
{
    uint32_t n = htonl((uint32_t)len + 1);
    evbuffer_add(b, &n, 4);
    evbuffer_add(b, &code, 1);
    evbuffer_add(b, data, len);
}

static int decode(char code, const void *data, size_t len, struct milter_reply *r)
{
    struct evbuffer *b = evbuffer_new();
    put_reply(b, code, data, len);
    char cmd, why[128];
    unsigned char *d;
    size_t dlen;
    assert_int_equal(milter_frame(b, &cmd, &d, &dlen), 1);
    static unsigned char keep[4096]; /* r points into the data: keep a copy alive */
    assert_true(dlen <= sizeof keep);
    memcpy(keep, d, dlen);
    free(d);
    evbuffer_free(b);
    return milter_decode_reply(cmd, keep, dlen, r, why, sizeof why);
}

static void test_decode_replies(void **state)
{
    (void)state;
    struct milter_reply r;
    unsigned char neg[12];
    uint32_t v[3] = {htonl(6), htonl(SMFIF_ADDHDRS | SMFIF_QUARANTINE), htonl(SMFIP_NOHELO | SMFIP_NR_HDR)};
    memcpy(neg, v, 12);
    assert_int_equal(decode(SMFIC_OPTNEG, neg, 12, &r), 0);
    assert_int_equal(r.version, 6);
    assert_int_equal(r.actions, SMFIF_ADDHDRS | SMFIF_QUARANTINE);
    assert_int_equal(r.protocol, SMFIP_NOHELO | SMFIP_NR_HDR);
    assert_int_equal(decode(SMFIC_OPTNEG, neg, 11, &r), -1);

    const char plain[] = {SMFIR_ACCEPT, SMFIR_CONTINUE, SMFIR_DISCARD, SMFIR_REJECT, SMFIR_TEMPFAIL, SMFIR_PROGRESS,
                          SMFIR_SKIP};
    for (size_t i = 0; i < sizeof plain; i++) {
        assert_int_equal(decode(plain[i], "", 0, &r), 0);
        assert_int_equal(r.code, plain[i]);
        assert_int_equal(decode(plain[i], "x", 1, &r), -1); /* these carry nothing */
    }

    assert_int_equal(decode(SMFIR_REPLYCODE, "554 5.7.1 Spam message rejected", 32, &r), 0);
    assert_string_equal(r.text, "554 5.7.1 Spam message rejected");
    assert_int_equal(decode(SMFIR_REPLYCODE, "250 ok", 7, &r), -1);       /* not 4xx/5xx */
    assert_int_equal(decode(SMFIR_REPLYCODE, "554 no end", 10, &r), -1);  /* not NUL-ended */
    assert_int_equal(decode(SMFIR_REPLYCODE, "55", 3, &r), -1);
    assert_int_equal(decode(SMFIR_REPLYCODE, "554 a\0b", 8, &r), -1);     /* two strings */
    assert_int_equal(decode(SMFIR_REPLYCODE, "550-5.7.1 a\r\n550 5.7.1 b", sizeof "550-5.7.1 a\r\n550 5.7.1 b", &r), 0); /* multi-line */

    assert_int_equal(decode(SMFIR_QUARANTINE, "virus found", 12, &r), 0);
    assert_string_equal(r.text, "virus found");
    assert_int_equal(decode(SMFIR_QUARANTINE, "a\nb", 4, &r), -1);

    assert_int_equal(decode(SMFIR_ADDHEADER, "X-Spam\0yes", 11, &r), 0);
    assert_string_equal(r.name, "X-Spam");
    assert_string_equal(r.value, "yes");
    assert_int_equal(decode(SMFIR_ADDHEADER, "X Spam\0yes", 11, &r), -1); /* not a field name */
    assert_int_equal(decode(SMFIR_ADDHEADER, "X:S\0yes", 8, &r), -1);
    assert_int_equal(decode(SMFIR_ADDHEADER, "X-Spam\0y\res", 12, &r), -1); /* bare CR */
    assert_int_equal(decode(SMFIR_ADDHEADER, "X-Spam\0a\n\tb", 12, &r), 0);  /* folded */
    assert_int_equal(decode(SMFIR_ADDHEADER, "X-Spam", 7, &r), -1);          /* no value */

    unsigned char chg[32] = {0, 0, 0, 2};
    memcpy(chg + 4, "Subject\0new", 12);
    assert_int_equal(decode(SMFIR_CHGHEADER, chg, 16, &r), 0);
    assert_int_equal(r.index, 2);
    assert_string_equal(r.name, "Subject");
    assert_string_equal(r.value, "new");
    assert_int_equal(decode(SMFIR_INSHEADER, chg, 16, &r), 0);
    assert_int_equal(decode(SMFIR_CHGHEADER, chg, 3, &r), -1); /* truncated index */
    assert_int_equal(decode(SMFIR_CHGHEADER, chg, 12, &r), -1); /* value cut */

    assert_int_equal(decode(SMFIR_REPLBODY, "new body\r\n", 10, &r), 0);
    assert_int_equal(r.body_len, 10);

    /* What we never offered, and garbage */
    assert_int_equal(decode(SMFIR_ADDRCPT, "<x@y>", 6, &r), -1);
    assert_int_equal(decode(SMFIR_CHGFROM, "<x@y>", 6, &r), -1);
    assert_int_equal(decode('Z', "", 0, &r), -1);
    assert_int_equal(decode(0, "", 0, &r), -1);
}

static void test_framing_bounds(void **state)
{
    (void)state;
    struct evbuffer *b = evbuffer_new();
    char cmd;
    unsigned char *d;
    size_t len;
    /* Truncated: every prefix of a good packet is "not yet" */
    put_reply(b, SMFIR_ADDHEADER, "X-A\0b", 6);
    unsigned char whole[16];
    size_t n = evbuffer_get_length(b);
    evbuffer_remove(b, whole, n);
    for (size_t k = 0; k < n; k++) {
        evbuffer_add(b, whole, k);
        assert_int_equal(milter_frame(b, &cmd, &d, &len), 0);
        evbuffer_drain(b, k);
    }
    evbuffer_add(b, whole, n);
    assert_int_equal(milter_frame(b, &cmd, &d, &len), 1);
    free(d);
    /* Length 0 (no command byte) and over the bound are refused at once, without the data */
    uint32_t zero = 0, huge = htonl(MILTER_MAX_PACKET + 2), ok = htonl(MILTER_MAX_PACKET + 1);
    evbuffer_add(b, &zero, 4);
    assert_int_equal(milter_frame(b, &cmd, &d, &len), -1);
    evbuffer_drain(b, evbuffer_get_length(b));
    evbuffer_add(b, &huge, 4);
    assert_int_equal(milter_frame(b, &cmd, &d, &len), -1);
    evbuffer_drain(b, evbuffer_get_length(b));
    uint32_t all = htonl(0xffffffffu);
    evbuffer_add(b, &all, 4);
    assert_int_equal(milter_frame(b, &cmd, &d, &len), -1);
    evbuffer_drain(b, evbuffer_get_length(b));
    /* The largest allowed is waited for */
    evbuffer_add(b, &ok, 4);
    evbuffer_add(b, "b", 1);
    assert_int_equal(milter_frame(b, &cmd, &d, &len), 0);
    evbuffer_free(b);
    /* Strings that do not end inside the packet */
    const char *s[4];
    assert_int_equal(milter_strings((const unsigned char *)"ab\0cd", 5, s, 4), -1);
    assert_int_equal(milter_strings((const unsigned char *)"ab\0cd", 6, s, 4), 2);
    assert_int_equal(milter_strings((const unsigned char *)"", 0, s, 4), 0);
    /* Oversize on our side: a header over the packet bound is not encoded */
    char *v = malloc(MILTER_MAX_PACKET + 10);
    memset(v, 'a', MILTER_MAX_PACKET + 9);
    v[MILTER_MAX_PACKET + 9] = '\0';
    struct evbuffer *o = evbuffer_new();
    assert_int_equal(milter_enc_header(o, "X", v), -1);
    assert_int_equal(evbuffer_get_length(o), 0);
    evbuffer_free(o);
    free(v);
}

/* ------------------------------------------------------------------ edits */

static struct milter_msg parse(const char *text)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, text, strlen(text));
    struct milter_msg m;
    assert_int_equal(milter_msg_parse(&m, b), 0);
    return m;
}

static void assert_built(struct milter_msg *m, const char *want)
{
    struct evbuffer *b = milter_msg_build(m);
    assert_non_null(b);
    size_t n = evbuffer_get_length(b);
    char *got = calloc(1, n + 1);
    evbuffer_remove(b, got, n);
    assert_string_equal(got, want);
    free(got);
    evbuffer_free(b);
}

#define MSG "Received: from x\r\n\tby y\r\nSubject: one\r\nX-A: 1\r\nsubject: two\r\n\r\nbody\r\n"

static void test_parse_and_headers(void **state)
{
    (void)state;
    struct milter_msg m = parse(MSG);
    assert_int_equal(m.n, 4);
    char *name, *value;
    assert_int_equal(milter_msg_header(&m, 0, &name, &value), 0);
    assert_string_equal(name, "Received");
    assert_string_equal(value, "from x\n\tby y"); /* folded: LF inside, no trailing line end */
    free(name), free(value);
    assert_int_equal(milter_msg_header(&m, 3, &name, &value), 0);
    assert_string_equal(name, "subject");
    assert_string_equal(value, "two");
    free(name), free(value);
    assert_int_equal(milter_msg_size(&m), strlen(MSG));
    assert_built(&m, MSG); /* unchanged: byte for byte */

    m = parse("Subject: x\r\n"); /* headers only */
    assert_int_equal(m.n, 1);
    assert_built(&m, "Subject: x\r\n");
    m = parse("\r\nbody only\r\n");
    assert_int_equal(m.n, 0);
    assert_built(&m, "\r\nbody only\r\n");
}

static void test_edits(void **state)
{
    (void)state;
    struct milter_msg m = parse(MSG);
    assert_int_equal(milter_msg_add(&m, "X-Spam", "yes"), 0);
    assert_built(&m, "Received: from x\r\n\tby y\r\nSubject: one\r\nX-A: 1\r\nsubject: two\r\nX-Spam: yes\r\n\r\nbody\r\n");

    m = parse(MSG); /* change the 2nd Subject (case-insensitive), then the 1st */
    assert_int_equal(milter_msg_change(&m, "Subject", 2, "TWO"), 0);
    assert_int_equal(milter_msg_change(&m, "SUBJECT", 1, "ONE"), 0);
    assert_built(&m, "Received: from x\r\n\tby y\r\nSUBJECT: ONE\r\nX-A: 1\r\nSubject: TWO\r\n\r\nbody\r\n");

    m = parse(MSG); /* delete by empty value; a missing nth occurrence with a value is added */
    assert_int_equal(milter_msg_change(&m, "Subject", 1, ""), 0);
    assert_int_equal(milter_msg_change(&m, "X-A", 5, "added"), 0);
    assert_int_equal(milter_msg_change(&m, "X-None", 1, ""), 0); /* nothing to delete */
    assert_built(&m, "Received: from x\r\n\tby y\r\nX-A: 1\r\nsubject: two\r\nX-A: added\r\n\r\nbody\r\n");

    m = parse(MSG); /* insert at 0 (top), at 2, past the end; a folded value gets CRLF */
    assert_int_equal(milter_msg_insert(&m, 0, "X-Top", "t"), 0);
    assert_int_equal(milter_msg_insert(&m, 2, "X-Two", "a\n\tb"), 0);
    assert_int_equal(milter_msg_insert(&m, 1000, "X-End", "e"), 0);
    assert_built(&m, "X-Top: t\r\nReceived: from x\r\n\tby y\r\nX-Two: a\r\n\tb\r\nSubject: one\r\nX-A: 1\r\n"
                     "subject: two\r\nX-End: e\r\n\r\nbody\r\n");
}

static void test_body_replacement(void **state)
{
    (void)state;
    struct milter_msg m = parse(MSG);
    /* Chunks with bare LFs (and a CRLF split between two chunks) come out CRLF */
    assert_int_equal(milter_msg_body_chunk(&m, "new\nbo", 6, 1000), 0);
    assert_int_equal(milter_msg_body_chunk(&m, "dy\r", 3, 1000), 0);
    assert_int_equal(milter_msg_body_chunk(&m, "\nend", 4, 1000), 0);
    milter_msg_body_commit(&m);
    assert_built(&m, "Received: from x\r\n\tby y\r\nSubject: one\r\nX-A: 1\r\nsubject: two\r\n\r\nnew\r\nbody\r\nend\r\n");

    m = parse(MSG); /* over the bound: refused; dropped chunks leave the old body */
    assert_int_equal(milter_msg_body_chunk(&m, "0123456789", 10, 8), -1);
    milter_msg_body_drop(&m);
    milter_msg_body_commit(&m);
    assert_built(&m, MSG);

    m = parse("Subject: x\r\n"); /* a body for a message that had none: the empty line comes */
    assert_int_equal(milter_msg_body_chunk(&m, "b\r\n", 3, 100), 0);
    milter_msg_body_commit(&m);
    assert_built(&m, "Subject: x\r\n\r\nb\r\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_commands),   cmocka_unit_test(test_decode_replies),
        cmocka_unit_test(test_framing_bounds),    cmocka_unit_test(test_parse_and_headers),
        cmocka_unit_test(test_edits),             cmocka_unit_test(test_body_replacement),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
