/* The TLS report itself (RFC 8460): the JSON of section 4.4 from a day record, gzipped, in
 * the mail of section 5.3 — multipart/report; report-type="tlsrpt", a short text part and
 * the report as application/tlsrpt+gzip (base64), named
 * "<submitter>!<policy-domain>!<begin>!<end>!<unique>.json.gz"; Subject "Report Domain: ...
 * Submitter: ... Report-ID: <...>" and the TLS-Report-Domain / TLS-Report-Submitter fields. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "base64.h"
#include "tlsrpt.h"

static void utc_iso(time_t t, char out[32])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

char *queue_tlsrpt_json(json_object *rec, const struct tlsrpt_meta *meta)
{
    json_object *r = json_object_new_object(), *range = json_object_new_object(), *policies;
    if (!r || !range) {
        json_object_put(r);
        json_object_put(range);
        return NULL;
    }
    char start[32], end[32];
    utc_iso(meta->start, start);
    utc_iso(meta->end, end);
    json_object_object_add(r, "organization-name", json_object_new_string(meta->organization));
    json_object_object_add(range, "start-datetime", json_object_new_string(start));
    json_object_object_add(range, "end-datetime", json_object_new_string(end));
    json_object_object_add(r, "date-range", range);
    json_object_object_add(r, "contact-info", json_object_new_string(meta->contact));
    json_object_object_add(r, "report-id", json_object_new_string(meta->report_id));
    if (json_object_object_get_ex(rec, "policies", &policies) && json_object_is_type(policies, json_type_array))
        json_object_object_add(r, "policies", json_object_get(policies)); /* shared, not copied */
    else
        json_object_object_add(r, "policies", json_object_new_array());
    const char *s = json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    char *out = s ? strdup(s) : NULL;
    json_object_put(r);
    return out;
}

int queue_tlsrpt_gzip(const void *in, size_t len, unsigned char **out, size_t *outlen)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) /* +16: gzip */
        return -1;
    uLong cap = deflateBound(&z, (uLong)len) + 32;
    unsigned char *buf = malloc(cap);
    if (!buf) {
        deflateEnd(&z);
        return -1;
    }
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    z.next_out = buf;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    size_t n = cap - z.avail_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(buf);
        return -1;
    }
    *out = buf;
    *outlen = n;
    return 0;
}

/* A growing buffer for the message. */
struct mbuf {
    char *p;
    size_t len, cap;
    int failed;
};

static void put(struct mbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void putf(struct mbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct mbuf *b, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line)
        b->failed = 1;
    else
        put(b, line, (size_t)n);
}

char *queue_tlsrpt_message(const struct tlsrpt_meta *meta, const char *json, char to[][256], int nto, size_t *len)
{
    unsigned char *gz;
    size_t gzlen;
    if (nto < 1 || queue_tlsrpt_gzip(json, strlen(json), &gz, &gzlen) < 0)
        return NULL;
    size_t b64cap = (gzlen + 2) / 3 * 4 + 1;
    char *b64 = malloc(b64cap);
    if (!b64 || pm_base64_encode(gz, gzlen, b64, b64cap) < 0) {
        free(gz);
        free(b64);
        return NULL;
    }
    free(gz);
    struct mbuf b = {0};
    char date[64], boundary[80];
    struct tm tm;
    gmtime_r(&meta->now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    snprintf(boundary, sizeof boundary, "=_tlsrpt_%s", meta->report_id);
    for (char *p = boundary; *p; p++) /* a report id is ours, but a boundary takes fewer characters */
        if (*p == '@')
            *p = '.';
    putf(&b, "From: TLS reports <%s>\r\n", meta->contact);
    putf(&b, "Date: %s\r\n", date);
    put(&b, "To: ", 4);
    for (int i = 0; i < nto; i++)
        putf(&b, "%s<%s>", i ? ",\r\n    " : "", to[i]);
    put(&b, "\r\n", 2);
    putf(&b, "Subject: Report Domain: %s\r\n    Submitter: %s\r\n    Report-ID: <%s>\r\n", meta->domain,
         meta->submitter, meta->report_id);
    putf(&b, "TLS-Report-Domain: %s\r\n", meta->domain);
    putf(&b, "TLS-Report-Submitter: %s\r\n", meta->submitter);
    putf(&b, "Message-ID: <%s>\r\n", meta->report_id);
    put(&b, "Auto-Submitted: auto-generated\r\n", 32);
    put(&b, "MIME-Version: 1.0\r\n", 19);
    putf(&b, "Content-Type: multipart/report; report-type=\"tlsrpt\";\r\n    boundary=\"%s\"\r\n\r\n", boundary);
    put(&b, "This is a multipart message in MIME format.\r\n\r\n", 47);
    putf(&b, "--%s\r\n", boundary);
    put(&b, "Content-Type: text/plain; charset=\"us-ascii\"\r\nContent-Transfer-Encoding: 7bit\r\n\r\n", 81);
    putf(&b, "This is an aggregate TLS report (RFC 8460) from %s\r\nfor %s.\r\n\r\n", meta->submitter, meta->domain);
    putf(&b, "--%s\r\n", boundary);
    put(&b, "Content-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64\r\n", 74);
    /* RFC 8460 5.3: sender "!" policy-domain "!" begin-timestamp "!" end-timestamp "!" unique-id */
    char unique[64];
    size_t u = 0;
    for (const char *p = meta->report_id; *p && *p != '@' && u + 1 < sizeof unique; p++)
        if ((*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'))
            unique[u++] = *p;
    unique[u] = '\0';
    putf(&b, "Content-Disposition: attachment;\r\n    filename=\"%s!%s!%lld!%lld!%s.json.gz\"\r\n\r\n", meta->submitter,
         meta->domain, (long long)meta->start, (long long)meta->end, unique);
    size_t n = strlen(b64);
    for (size_t i = 0; i < n; i += 76) {
        put(&b, b64 + i, n - i < 76 ? n - i : 76);
        put(&b, "\r\n", 2);
    }
    putf(&b, "\r\n--%s--\r\n", boundary);
    free(b64);
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
