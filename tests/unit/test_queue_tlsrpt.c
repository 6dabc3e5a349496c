/* TLSRPT (RFC 8460): the _smtp._tls TXT record and its mailto: URIs (common/tlsrpt_record.c),
 * the day records' aggregation (sessions counted per policy and per failure detail, bounded),
 * the keys and when a day is due, which sessions belong to a job's domain, and the report: its JSON shape (section 4.4), the gzip, the
 * section 5.3 message (multipart/report; report-type="tlsrpt", headers, file name). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "base64.h"
#include "queue/tlsrpt.h"
#include "tlsrpt_record.h"

static void test_mailto(void **state)
{
    (void)state;
    char a[PM_TLSRPT_ADDR_SIZE];
    const char *u = "mailto:tlsrpt@example.com";
    assert_int_equal(pm_tlsrpt_mailto_addr(u, strlen(u), a, sizeof a), 0);
    assert_string_equal(a, "tlsrpt@example.com");
    u = "MAILTO:tls%2Drpt@example.com?subject=x";
    assert_int_equal(pm_tlsrpt_mailto_addr(u, strlen(u), a, sizeof a), 0);
    assert_string_equal(a, "tls-rpt@example.com");
    const char *bad[] = {"https://example.com/r", "mailto:", "mailto:noat", "mailto:a@b@c", "mailto:@example.com",
                         "mailto:a@", "mailto:a%0D%0ABcc:x@y@z", "mailto:a%2Cb@example.com", "mailto:a b@example.com",
                         "mailto:a@exa_mple.com", "mailto:a%4", "mailto:\"a\"@example.com", "mailto:a@.example.com",
                         "mailto:a@example..com"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(pm_tlsrpt_mailto_addr(bad[i], strlen(bad[i]), a, sizeof a), -1);
    char longu[400] = "mailto:";
    memset(longu + 7, 'a', 300);
    strcpy(longu + 307, "@example.com");
    assert_int_equal(pm_tlsrpt_mailto_addr(longu, strlen(longu), a, sizeof a), -1); /* bounded */
}

static void test_record(void **state)
{
    (void)state;
    char rua[PM_TLSRPT_MAX_RUA][PM_TLSRPT_URI_SIZE];
    assert_int_equal(pm_tlsrpt_parse_record("v=TLSRPTv1; rua=mailto:r@example.com", rua, 8), 1);
    assert_string_equal(rua[0], "mailto:r@example.com");
    /* https dropped, several mailto kept, spaces around commas, extensions ignored */
    assert_int_equal(pm_tlsrpt_parse_record("v=TLSRPTv1 ;rua=https://r.example/x, mailto:a@x.example ,"
                                            "mailto:b@y.example; ext=1;",
                                            rua, 8),
                     2);
    assert_string_equal(rua[0], "mailto:a@x.example");
    assert_string_equal(rua[1], "mailto:b@y.example");
    assert_int_equal(pm_tlsrpt_parse_record("v=TLSRPTv1; rua=https://r.example/x", rua, 8), 0);
    assert_int_equal(pm_tlsrpt_parse_record("v=TLSRPTv10; rua=mailto:r@example.com", rua, 8), -1);
    assert_int_equal(pm_tlsrpt_parse_record("v=STSv1; id=1", rua, 8), -1);
    assert_int_equal(pm_tlsrpt_parse_record("v=TLSRPTv1", rua, 8), -1); /* a field is required */
    /* bounded: at most max kept */
    char many[2048] = "v=TLSRPTv1; rua=";
    for (int i = 0; i < 20; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%smailto:r%d@example.com", i ? "," : "", i);
    assert_int_equal(pm_tlsrpt_parse_record(many, rua, PM_TLSRPT_MAX_RUA), PM_TLSRPT_MAX_RUA);
    /* exactly one TLSRPT record among the TXT records (RFC 8460 3) */
    const char *one[] = {"v=spf1 -all", "v=TLSRPTv1; rua=mailto:r@example.com"};
    assert_int_equal(pm_tlsrpt_pick_record(one, 2, rua, 8), 1);
    const char *two[] = {"v=TLSRPTv1; rua=mailto:r@example.com", "v=TLSRPTv1; rua=mailto:s@example.com"};
    assert_int_equal(pm_tlsrpt_pick_record(two, 2, rua, 8), 0);
    const char *none[] = {"v=spf1 -all"};
    assert_int_equal(pm_tlsrpt_pick_record(none, 1, rua, 8), 0);
}

static void test_key_and_due(void **state)
{
    (void)state;
    char key[TLSRPT_KEY_SIZE];
    time_t t = 1796212800; /* 2026-12-02T12:00:00Z */
    int n = queue_tlsrpt_key(key, t, "example.com");
    assert_int_equal(n, 22);
    assert_string_equal(key, "2026-12-02 example.com");
    time_t day;
    const char *dom;
    size_t dl;
    assert_int_equal(queue_tlsrpt_key_parse(key, (size_t)n, &day, &dom, &dl), 0);
    assert_int_equal(day, 1796169600);
    assert_int_equal(dl, 11);
    assert_memory_equal(dom, "example.com", 11);
    assert_int_equal(queue_tlsrpt_key_parse("2026-13-02 x", 12, &day, &dom, &dl), -1);
    assert_int_equal(queue_tlsrpt_key_parse("garbage", 7, &day, &dom, &dl), -1);
    assert_int_equal(queue_tlsrpt_key(key, t, ""), -1);
    /* what reaches headers and a quoted file name: plain lower-case names only */
    const char *bad[] = {"Example.com", "a\"b.example", "a b.example", "a;b.example", ".example", "\xc3\xa9.example"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(queue_tlsrpt_key(key, t, bad[i]), -1);
    assert_int_equal(queue_tlsrpt_key_parse("2026-12-02 a\"b", 14, &day, &dom, &dl), -1);
    /* due after `hour` UTC of the next day */
    assert_false(queue_tlsrpt_due(day, t, 1));                /* that day itself */
    assert_false(queue_tlsrpt_due(day, day + 86400 + 3599, 1)); /* 00:59 the day after */
    assert_true(queue_tlsrpt_due(day, day + 86400 + 3600, 1));
    assert_true(queue_tlsrpt_due(day, day + 86400, 0));
    assert_true(queue_tlsrpt_due(day, day + 5 * 86400, 23));
}

static Postmesh__TlsSession *session(int ok, const char *type, const char *ip, const char *mx)
{
    static char *rua[] = {"mailto:tlsrpt@rcpt.example", "https://x.example/r"};
    static char *strings[] = {"3 1 1 abcdef"};
    static Postmesh__TlsSession s;
    postmesh__tls_session__init(&s);
    s.policy_domain = "rcpt.example";
    s.policy_type = POSTMESH__TLS_SESSION__POLICY_TYPE__TLSA;
    s.policy_strings = strings;
    s.n_policy_strings = 1;
    s.success = ok;
    s.result_type = (char *)type;
    s.sending_ip = "192.0.2.1";
    s.receiving_mx_hostname = (char *)mx;
    s.receiving_ip = (char *)ip;
    s.receiving_mx_helo = "mx.helo.example";
    s.additional_info = "";
    s.failure_reason_code = "";
    s.rua = rua;
    s.n_rua = 2;
    return &s;
}

static json_object *policy_at(json_object *rec, size_t i)
{
    json_object *p;
    assert_true(json_object_object_get_ex(rec, "policies", &p));
    return json_object_array_get_idx(p, i);
}

static long long int_at(json_object *o, const char *a, const char *b)
{
    json_object *x, *y;
    assert_true(json_object_object_get_ex(o, a, &x));
    if (!b)
        return json_object_get_int64(x);
    assert_true(json_object_object_get_ex(x, b, &y));
    return json_object_get_int64(y);
}

/* A session counts only for the job's destination domain: the same name, case aside, and
 * nothing that merely contains it or ends like it. */
static void test_session_for(void **state)
{
    (void)state;
    Postmesh__TlsSession s = POSTMESH__TLS_SESSION__INIT;
    s.policy_domain = "rcpt.example";
    assert_true(queue_tlsrpt_session_for(&s, "rcpt.example"));
    assert_true(queue_tlsrpt_session_for(&s, "RCPT.Example"));
    assert_false(queue_tlsrpt_session_for(&s, "other.example"));
    assert_false(queue_tlsrpt_session_for(&s, "x.rcpt.example"));
    assert_false(queue_tlsrpt_session_for(&s, "rcpt.example."));
    assert_false(queue_tlsrpt_session_for(&s, "example"));
    assert_false(queue_tlsrpt_session_for(&s, ""));
    assert_false(queue_tlsrpt_session_for(&s, NULL));
    s.policy_domain = "";
    assert_false(queue_tlsrpt_session_for(&s, ""));
    s.policy_domain = "sub.rcpt.example";
    assert_false(queue_tlsrpt_session_for(&s, "rcpt.example"));
}

static void test_merge(void **state)
{
    (void)state;
    json_object *rec = queue_tlsrpt_record_new();
    for (int i = 0; i < 3; i++)
        assert_int_equal(queue_tlsrpt_merge(rec, session(1, "", "192.0.2.7", "mx.rcpt.example")), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(queue_tlsrpt_merge(rec, session(0, "starttls-not-supported", "192.0.2.7", "mx.rcpt.example")), 0);
    assert_int_equal(queue_tlsrpt_merge(rec, session(0, "starttls-not-supported", "192.0.2.8", "mx2.rcpt.example")), 0);
    assert_int_equal(queue_tlsrpt_merge(rec, session(0, "certificate-expired", "192.0.2.7", "mx.rcpt.example")), 0);
    json_object *p = policy_at(rec, 0);
    assert_non_null(p);
    assert_null(policy_at(rec, 1));
    assert_int_equal(int_at(p, "summary", "total-successful-session-count"), 3);
    assert_int_equal(int_at(p, "summary", "total-failure-session-count"), 4);
    json_object *fd;
    assert_true(json_object_object_get_ex(p, "failure-details", &fd));
    assert_int_equal(json_object_array_length(fd), 3); /* keyed by (type, sending ip, mx, receiving ip) */
    assert_int_equal(int_at(json_object_array_get_idx(fd, 0), "failed-session-count", NULL), 2);
    /* another policy (STS) is its own entry */
    Postmesh__TlsSession *s = session(1, "", "192.0.2.7", "mx.rcpt.example");
    s->policy_type = POSTMESH__TLS_SESSION__POLICY_TYPE__STS;
    assert_int_equal(queue_tlsrpt_merge(rec, s), 0);
    assert_non_null(policy_at(rec, 1));
    /* rua: only mailto: kept, decoded for sending */
    char to[8][256];
    assert_int_equal(queue_tlsrpt_rua(rec, to, 8), 1);
    assert_string_equal(to[0], "tlsrpt@rcpt.example");
    long long ok, failed;
    queue_tlsrpt_totals(rec, &ok, &failed);
    assert_int_equal(ok, 4);
    assert_int_equal(failed, 4);
    /* bounded: more policies than TLSRPT_MAX_POLICIES are not counted, details stop growing */
    char buf[32][16];
    char *strs[1];
    for (int i = 0; i < 20; i++) {
        s = session(1, "", "192.0.2.7", "mx.rcpt.example");
        snprintf(buf[i], sizeof buf[i], "3 1 1 %02x", i);
        strs[0] = buf[i];
        s->policy_strings = strs;
        queue_tlsrpt_merge(rec, s);
    }
    json_object *pol;
    json_object_object_get_ex(rec, "policies", &pol);
    assert_int_equal(json_object_array_length(pol), TLSRPT_MAX_POLICIES);
    char ips[100][32];
    for (int i = 0; i < 100; i++) {
        snprintf(ips[i], sizeof ips[i], "198.51.100.%d", i);
        queue_tlsrpt_merge(rec, session(0, "validation-failure", ips[i], "mx.rcpt.example"));
    }
    assert_true(json_object_object_get_ex(policy_at(rec, 0), "failure-details", &fd));
    assert_int_equal(json_object_array_length(fd), TLSRPT_MAX_DETAILS);
    assert_int_equal(int_at(policy_at(rec, 0), "summary", "total-failure-session-count"), 104);
    /* no mailto: rua: not counted */
    s = session(1, "", "192.0.2.7", "mx.rcpt.example");
    s->n_rua = 0;
    assert_int_equal(queue_tlsrpt_merge(rec, s), -1);
    json_object_put(rec);
}

static char *gunzip(const unsigned char *in, size_t len)
{
    size_t cap = 1 << 20;
    char *out = calloc(1, cap);
    z_stream z = {0};
    assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap - 1;
    assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
    inflateEnd(&z);
    return out;
}

static void test_report(void **state)
{
    (void)state;
    json_object *rec = queue_tlsrpt_record_new();
    queue_tlsrpt_merge(rec, session(1, "", "192.0.2.7", "mx.rcpt.example"));
    queue_tlsrpt_merge(rec, session(0, "starttls-not-supported", "192.0.2.7", "mx.rcpt.example"));
    struct tlsrpt_meta meta = {
        .organization = "Sender Org", .submitter = "mail.sender.example", .contact = "postmaster@mail.sender.example",
        .report_id = "ABC123.20261202@mail.sender.example", .domain = "rcpt.example",
        .start = 1796169600, .end = 1796169600 + 86399, .now = 1796212800,
    };
    char *js = queue_tlsrpt_json(rec, &meta);
    assert_non_null(js);
    json_object *r = json_tokener_parse(js);
    assert_non_null(r);
    json_object *v, *range, *pol, *p0, *pp;
    assert_true(json_object_object_get_ex(r, "organization-name", &v));
    assert_string_equal(json_object_get_string(v), "Sender Org");
    assert_true(json_object_object_get_ex(r, "date-range", &range));
    assert_true(json_object_object_get_ex(range, "start-datetime", &v));
    assert_string_equal(json_object_get_string(v), "2026-12-02T00:00:00Z");
    assert_true(json_object_object_get_ex(range, "end-datetime", &v));
    assert_string_equal(json_object_get_string(v), "2026-12-02T23:59:59Z");
    assert_true(json_object_object_get_ex(r, "contact-info", &v));
    assert_true(json_object_object_get_ex(r, "report-id", &v));
    assert_true(json_object_object_get_ex(r, "policies", &pol));
    p0 = json_object_array_get_idx(pol, 0);
    assert_true(json_object_object_get_ex(p0, "policy", &pp));
    assert_true(json_object_object_get_ex(pp, "policy-type", &v));
    assert_string_equal(json_object_get_string(v), "tlsa");
    assert_true(json_object_object_get_ex(pp, "policy-domain", &v));
    assert_string_equal(json_object_get_string(v), "rcpt.example");
    assert_true(json_object_object_get_ex(pp, "policy-string", &v));
    assert_int_equal(int_at(p0, "summary", "total-successful-session-count"), 1);
    assert_int_equal(int_at(p0, "summary", "total-failure-session-count"), 1);
    json_object *fd, *d;
    assert_true(json_object_object_get_ex(p0, "failure-details", &fd));
    d = json_object_array_get_idx(fd, 0);
    assert_true(json_object_object_get_ex(d, "result-type", &v));
    assert_string_equal(json_object_get_string(v), "starttls-not-supported");
    assert_true(json_object_object_get_ex(d, "receiving-ip", &v));
    assert_false(json_object_object_get_ex(d, "additional-information", &v)); /* empty: left out */
    json_object_put(r);

    char to[2][256] = {"tlsrpt@rcpt.example", "other@rcpt.example"};
    size_t len;
    char *msg = queue_tlsrpt_message(&meta, js, to, 2, &len);
    assert_non_null(msg);
    assert_int_equal(strlen(msg), len);
    assert_non_null(strstr(msg, "Content-Type: multipart/report; report-type=\"tlsrpt\";\r\n"));
    assert_non_null(strstr(msg, "\r\nTLS-Report-Domain: rcpt.example\r\n"));
    assert_non_null(strstr(msg, "\r\nTLS-Report-Submitter: mail.sender.example\r\n"));
    assert_non_null(strstr(msg, "Subject: Report Domain: rcpt.example\r\n    Submitter: mail.sender.example\r\n"
                                "    Report-ID: <ABC123.20261202@mail.sender.example>\r\n"));
    assert_non_null(strstr(msg, "To: <tlsrpt@rcpt.example>,\r\n    <other@rcpt.example>\r\n"));
    assert_non_null(strstr(msg, "Content-Type: application/tlsrpt+gzip\r\n"));
    assert_non_null(strstr(msg, "filename=\"mail.sender.example!rcpt.example!1796169600!1796255999!ABC12320261202.json.gz\""));
    for (const char *p = msg; *p; p++) /* CRLF only, 7-bit */
        if (*p == '\n')
            assert_true(p > msg && p[-1] == '\r');
    /* the attachment: base64 lines, then gzip of the same JSON */
    const char *b = strstr(msg, ".json.gz\"\r\n\r\n");
    assert_non_null(b);
    b += strlen(".json.gz\"\r\n\r\n");
    const char *e = strstr(b, "\r\n\r\n--");
    assert_non_null(e);
    char *b64 = calloc(1, len);
    size_t n = 0;
    for (; b < e; b++)
        if (*b != '\r' && *b != '\n')
            b64[n++] = *b;
    unsigned char *gz = malloc(n);
    long gzlen = pm_base64_decode(b64, n, gz, n);
    assert_true(gzlen > 10);
    assert_int_equal(gz[0], 0x1f);
    assert_int_equal(gz[1], 0x8b);
    char *back = gunzip(gz, (size_t)gzlen);
    assert_string_equal(back, js);
    free(back);
    free(gz);
    free(b64);
    free(msg);
    free(js);
    json_object_put(rec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mailto), cmocka_unit_test(test_record), cmocka_unit_test(test_key_and_due),
        cmocka_unit_test(test_session_for), cmocka_unit_test(test_merge), cmocka_unit_test(test_report),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
