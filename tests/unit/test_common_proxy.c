/* The PROXY protocol parser (common/proxy.c): a table of headers (v1 and v2, valid and not)
 * with the expected verdict and addresses, each fed whole, octet by octet and in every
 * two-piece split, which must all agree; the octets after a header are never consumed. */
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

#include "net.h"
#include "proxy.h"

static const char SIG[] = "\r\n\r\n\0\r\nQUIT\n";

struct result {
    enum pm_proxy_status st;
    size_t used;
    const char *error;
    struct pm_proxy_header h;
};

/* Feeds in[0..n) in pieces: the first cut at `cut` (0: none), then `step` octets at a time. */
static struct result feed(const unsigned char *in, size_t n, size_t cut, size_t step)
{
    struct pm_proxy_parser p;
    pm_proxy_init(&p);
    struct result r = {PM_PROXY_MORE, 0, NULL, {0}};
    size_t off = 0;
    while (off < n) {
        size_t chunk = cut && off < cut ? cut - off : step;
        if (chunk > n - off)
            chunk = n - off;
        size_t used;
        r.st = pm_proxy_feed(&p, in + off, chunk, &used, &r.h);
        assert_true(used <= chunk);
        off += used;
        if (r.st != PM_PROXY_MORE)
            break;
        assert_int_equal(used, chunk); /* MORE: every octet given was header */
    }
    r.used = off;
    r.error = p.error;
    return r;
}

static void addr_text(const struct sockaddr_storage *ss, char *dst, size_t size)
{
    char ip[64];
    pm_sockaddr_ip((const struct sockaddr *)ss, ip, sizeof ip);
    snprintf(dst, size, "%s %d", ip, pm_sockaddr_port((const struct sockaddr *)ss));
}

struct row {
    const char *name;
    const unsigned char *in;
    size_t n;
    enum pm_proxy_status st;
    size_t header_len; /* octets that are header (DONE) */
    int local;
    const char *src, *dst; /* "ip port" */
    const char *error;     /* for ERROR, the token, or NULL to skip */
};

#define T(s) (const unsigned char *)(s), sizeof(s) - 1

/* v2 headers, built from their fields. */
static unsigned char v2buf[16][300];
static size_t v2(int slot, unsigned char vercmd, unsigned char fam, const unsigned char *addr, size_t alen,
                 size_t extra_tlv, const char *trailer)
{
    unsigned char *b = v2buf[slot];
    memcpy(b, SIG, 12);
    b[12] = vercmd;
    b[13] = fam;
    size_t len = alen + extra_tlv;
    b[14] = (unsigned char)(len >> 8);
    b[15] = (unsigned char)len;
    if (alen)
        memcpy(b + 16, addr, alen);
    memset(b + 16 + alen, 0x04, extra_tlv); /* a NOOP TLV's bytes; content is skipped anyway */
    size_t n = 16 + len;
    size_t tl = strlen(trailer);
    memcpy(b + n, trailer, tl);
    return n + tl;
}

static const unsigned char tcp4_addr[12] = {192, 0, 2, 1, 198, 51, 100, 7, 0xDC, 0x04, 0x00, 0x19}; /* 56324, 25 */
static unsigned char tcp6_addr[36];

static void check_row(const struct row *t)
{
    struct result whole = feed(t->in, t->n, 0, t->n);
    if (whole.st != t->st)
        fail_msg("%s: status %d, expected %d (error %s)", t->name, whole.st, t->st, whole.error ? whole.error : "-");
    if (t->st == PM_PROXY_DONE) {
        assert_int_equal(whole.used, t->header_len);
        assert_int_equal(whole.h.local, t->local);
        if (!t->local) {
            char s[80], d[80];
            addr_text(&whole.h.src, s, sizeof s);
            addr_text(&whole.h.dst, d, sizeof d);
            assert_string_equal(s, t->src);
            assert_string_equal(d, t->dst);
        }
    }
    if (t->st == PM_PROXY_ERROR && t->error)
        assert_string_equal(whole.error, t->error);
    /* Any split gives the same verdict at the same octet. */
    for (size_t step = 1; step <= 7; step++) {
        struct result r = feed(t->in, t->n, 0, step);
        assert_int_equal(r.st, whole.st);
        assert_int_equal(r.used, whole.used);
        if (r.st == PM_PROXY_DONE)
            assert_memory_equal(&r.h, &whole.h, sizeof r.h);
    }
    for (size_t cut = 1; cut < t->n; cut++) {
        struct result r = feed(t->in, t->n, cut, t->n);
        assert_int_equal(r.st, whole.st);
        assert_int_equal(r.used, whole.used);
        if (r.st == PM_PROXY_DONE)
            assert_memory_equal(&r.h, &whole.h, sizeof r.h);
        else if (r.st == PM_PROXY_ERROR)
            assert_string_equal(r.error, whole.error);
    }
}

static void test_table(void **state)
{
    (void)state;
    for (int i = 0; i < 16; i++)
        tcp6_addr[i] = i == 0 ? 0x20 : i == 1 ? 0x01 : i == 2 ? 0x0d : i == 3 ? 0xb8 : i == 15 ? 0x05 : 0;
    memcpy(tcp6_addr + 16, tcp6_addr, 16);
    tcp6_addr[31] = 0x06;
    tcp6_addr[32] = 0x04;
    tcp6_addr[33] = 0xd2; /* 1234 */
    tcp6_addr[34] = 0x01;
    tcp6_addr[35] = 0xd1; /* 465 */
    unsigned char unix_addr[216] = {0};
    size_t n0 = v2(0, 0x21, 0x11, tcp4_addr, 12, 0, "EHLO");
    size_t n1 = v2(1, 0x21, 0x21, tcp6_addr, 36, 0, "");
    size_t n2 = v2(2, 0x20, 0x00, NULL, 0, 0, "\x16\x03\x01"); /* LOCAL, then a ClientHello */
    size_t n3 = v2(3, 0x21, 0x11, tcp4_addr, 12, 200, "x");   /* TLVs skipped */
    size_t n4 = v2(4, 0x21, 0x00, NULL, 0, 0, "");           /* PROXY + UNSPEC */
    size_t n5 = v2(5, 0x21, 0x31, unix_addr, 216, 0, "");    /* AF_UNIX: as UNSPEC */
    size_t n6 = v2(6, 0x21, 0x12, tcp4_addr, 12, 0, "");     /* UDP: as UNSPEC */
    size_t n7 = v2(7, 0x21, 0x11, tcp4_addr, 8, 0, "");      /* too short for TCP4 */
    size_t n8 = v2(8, 0x11, 0x11, tcp4_addr, 12, 0, "");     /* version 1 in a v2 header */
    size_t n9 = v2(9, 0x22, 0x11, tcp4_addr, 12, 0, "");     /* command 2 */
    size_t n10 = v2(10, 0x21, 0x41, tcp4_addr, 12, 0, "");   /* family 4 */
    size_t n11 = v2(11, 0x21, 0x21, tcp6_addr, 20, 0, "");   /* too short for TCP6 */
    size_t n12 = v2(12, 0x20, 0x11, tcp4_addr, 12, 0, "Q");  /* LOCAL with an address block: ignored */
    size_t n13 = v2(13, 0x21, 0x10, tcp4_addr, 12, 0, "");   /* INET with protocol 0 */
    /* A length field beyond the bound, without the octets (rejected on the field itself). */
    unsigned char big[16];
    memcpy(big, SIG, 12);
    big[12] = 0x21;
    big[13] = 0x11;
    big[14] = 0xFF;
    big[15] = 0xFF;
    unsigned char v1long[140];
    memset(v1long, 'A', sizeof v1long);
    memcpy(v1long, "PROXY UNKNOWN ", 14);
    v1long[sizeof v1long - 2] = '\r';
    v1long[sizeof v1long - 1] = '\n';
    const struct row rows[] = {
        {"v1 tcp4", T("PROXY TCP4 192.0.2.1 198.51.100.7 56324 25\r\nEHLO x\r\n"), PM_PROXY_DONE, 44, 0,
         "192.0.2.1 56324", "198.51.100.7 25", NULL},
        {"v1 tcp6", T("PROXY TCP6 2001:db8::5 2001:db8::6 1234 465\r\n"), PM_PROXY_DONE, 45, 0, "2001:db8::5 1234",
         "2001:db8::6 465", NULL},
        {"v1 unknown", T("PROXY UNKNOWN\r\n"), PM_PROXY_DONE, 15, 1, NULL, NULL, NULL},
        {"v1 unknown with junk", T("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"), PM_PROXY_DONE, 35, 1, NULL, NULL, NULL},
        {"v1 longest", T("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                         "65535 65535\r\n"),
         PM_PROXY_DONE, 104, 0, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535",
         "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535", NULL},
        {"v1 ports 0", T("PROXY TCP4 10.0.0.1 10.0.0.2 0 0\r\n"), PM_PROXY_DONE, 34, 0, "10.0.0.1 0", "10.0.0.2 0",
         NULL},
        {"v1 too long", v1long, sizeof v1long, PM_PROXY_ERROR, 0, 0, NULL, NULL, "v1_too_long"},
        {"v1 endless", T("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 "
                         "4 5 6 7 8 9 0 1 2 3 4 5 6"),
         PM_PROXY_ERROR, 0, 0, NULL, NULL, "v1_too_long"},
        {"v1 bare lf", T("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"), PM_PROXY_ERROR, 0, 0, NULL, NULL, "v1_bare_lf"},
        {"v1 lf at once", T("PROXY \n"), PM_PROXY_ERROR, 0, 0, NULL, NULL, "v1_bare_lf"},
        {"v1 family mismatch", T("PROXY TCP4 2001:db8::1 1.2.3.4 1 2\r\n"), PM_PROXY_ERROR, 0, 0, NULL, NULL,
         "v1_address"},
        {"v1 tcp6 with v4", T("PROXY TCP6 1.2.3.4 1.2.3.5 1 2\r\n"), PM_PROXY_ERROR, 0, 0, NULL, NULL, "v1_address"},
        {"v1 port too big", T("PROXY TCP4 1.2.3.4 5.6.7.8 65536 25\r\n"), PM_PROXY_ERROR, 0, 0, NULL, NULL, "v1_port"},
        {"v1 port leading zero", T("PROXY TCP4 1.2.3.4 5.6.7.8 025 25\r\n"), PM_PROXY_ERROR, 0, 0, NULL, NULL,
         "v1_port"},
        {"v1 port sign", T("PROXY TCP4 1.2.3.4 5.6.7.8 -1 25\r\n"), PM_PROXY_ERROR, 0, 0, NULL, NULL, "v1_port"},
        {"v1 missing field", T("PROXY TCP4 1.2.3.4 5.6.7.8 25\r\n"), PM_PROXY_ERROR, 0, 0, NULL, NULL, "v1_fields"},
        {"v1 extra field", T("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"), PM_PROXY_ERROR, 0, 0, NULL, NULL, "v1_fields"},
        {"v1 double space", T("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n"), PM_PROXY_ERROR, 0, 0, NULL, NULL, NULL},
        {"v1 udp", T("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"), PM_PROXY_ERROR, 0, 0, NULL, NULL, "v1_protocol"},
        {"v1 lower case", T("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), PM_PROXY_ERROR, 0, 0, NULL, NULL, "bad_signature"},
        {"v1 nul", T("PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n"), PM_PROXY_ERROR, 0, 0, NULL, NULL, "v1_bad_octet"},
        {"v1 octal address", T("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n"), PM_PROXY_ERROR, 0, 0, NULL, NULL,
         "v1_address"},
        {"smtp client first", T("EHLO client.example\r\n"), PM_PROXY_ERROR, 0, 0, NULL, NULL, "bad_signature"},
        {"tls client first", T("\x16\x03\x01\x02\x00\x01"), PM_PROXY_ERROR, 0, 0, NULL, NULL, "bad_signature"},
        {"PROX then junk", T("PROXZ"), PM_PROXY_ERROR, 0, 0, NULL, NULL, "bad_signature"},
        {"v2 tcp4", v2buf[0], n0, PM_PROXY_DONE, 28, 0, "192.0.2.1 56324", "198.51.100.7 25", NULL},
        {"v2 tcp6", v2buf[1], n1, PM_PROXY_DONE, 52, 0, "2001:db8::5 1234", "2001:db8::6 465", NULL},
        {"v2 local", v2buf[2], n2, PM_PROXY_DONE, 16, 1, NULL, NULL, NULL},
        {"v2 tlvs", v2buf[3], n3, PM_PROXY_DONE, 228, 0, "192.0.2.1 56324", "198.51.100.7 25", NULL},
        {"v2 unspec", v2buf[4], n4, PM_PROXY_DONE, 16, 1, NULL, NULL, NULL},
        {"v2 unix", v2buf[5], n5, PM_PROXY_DONE, 232, 1, NULL, NULL, NULL},
        {"v2 udp", v2buf[6], n6, PM_PROXY_DONE, 28, 1, NULL, NULL, NULL},
        {"v2 short tcp4", v2buf[7], n7, PM_PROXY_ERROR, 0, 0, NULL, NULL, "v2_short_address"},
        {"v2 version 1", v2buf[8], n8, PM_PROXY_ERROR, 0, 0, NULL, NULL, "v2_version"},
        {"v2 command 2", v2buf[9], n9, PM_PROXY_ERROR, 0, 0, NULL, NULL, "v2_command"},
        {"v2 family 4", v2buf[10], n10, PM_PROXY_ERROR, 0, 0, NULL, NULL, "v2_family"},
        {"v2 short tcp6", v2buf[11], n11, PM_PROXY_ERROR, 0, 0, NULL, NULL, "v2_short_address"},
        {"v2 local with block", v2buf[12], n12, PM_PROXY_DONE, 28, 1, NULL, NULL, NULL},
        {"v2 inet protocol 0", v2buf[13], n13, PM_PROXY_ERROR, 0, 0, NULL, NULL, "v2_family"},
        {"v2 too long", big, sizeof big, PM_PROXY_ERROR, 0, 0, NULL, NULL, "v2_too_long"},
        {"v2 bad signature", T("\r\n\r\n\0\r\nQUIX\n\x21\x11\x00\x0c"), PM_PROXY_ERROR, 0, 0, NULL, NULL,
         "bad_signature"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        check_row(&rows[i]);
}

/* An incomplete header is MORE however far it got, and nothing is consumed after ERROR. */
static void test_incomplete_and_sticky_error(void **state)
{
    (void)state;
    const char *h = "PROXY TCP4 192.0.2.1 198.51.100.7 56324 25\r\n";
    struct result r = feed((const unsigned char *)h, strlen(h) - 1, 0, 3);
    assert_int_equal(r.st, PM_PROXY_MORE);
    assert_int_equal(r.used, strlen(h) - 1);
    struct pm_proxy_parser p;
    struct pm_proxy_header out;
    size_t used;
    pm_proxy_init(&p);
    assert_int_equal(pm_proxy_feed(&p, "GET /", 5, &used, &out), PM_PROXY_ERROR);
    assert_int_equal(used, 1); /* the offending octet */
    assert_int_equal(pm_proxy_feed(&p, "PROXY UNKNOWN\r\n", 15, &used, &out), PM_PROXY_ERROR);
    assert_int_equal(used, 0);
    /* A v2 header that is all TLVs up to the bound is accepted, and no more. */
    static unsigned char maxed[16 + PM_PROXY_V2_MAX_LEN + 4];
    memcpy(maxed, SIG, 12);
    maxed[12] = 0x21;
    maxed[13] = 0x11;
    maxed[14] = PM_PROXY_V2_MAX_LEN >> 8;
    maxed[15] = PM_PROXY_V2_MAX_LEN & 0xFF;
    memcpy(maxed + 16, tcp4_addr, 12);
    r = feed(maxed, sizeof maxed, 0, 97);
    assert_int_equal(r.st, PM_PROXY_DONE);
    assert_int_equal(r.used, 16 + PM_PROXY_V2_MAX_LEN);
    maxed[15] = (PM_PROXY_V2_MAX_LEN + 1) & 0xFF;
    r = feed(maxed, sizeof maxed, 0, 97);
    assert_int_equal(r.st, PM_PROXY_ERROR);
    assert_int_equal(r.used, 16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_incomplete_and_sticky_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
