/* One DKIM-Signature field, rsa-sha256 (RFC 6376, RFC 8301) or ed25519-sha256 (RFC 8463),
 * relaxed/relaxed (RFC 6376 3.4.2, 3.4.4), the header fields chosen as RFC 6376 5.4.2 says,
 * signed by OpenSSL with the key parsed once at start. Not libopendkim's signer, for two
 * reasons measured here (docs/dkim.md): its 2.11.0~beta2 ed25519 signing leaks the loaded
 * key, about 1.3 KB per signature (LeakSanitizer; dkim_free() frees only an rsa key), which a
 * queue signing every message for months cannot afford; and it parses the PEM key and sets
 * up a new RSA key for every message, 2.1 ms per rsa-2048 signature on the test machine
 * against 0.29 ms here, seven times the cost at intake. libopendkim stays the independent
 * check: tests/unit/test_queue_dkim_sign.c verifies every kind of signature with it, and
 * tests/integration/test_dkim_sign.py with dkimpy. */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base64.h"
#include "dkim_sign.h"
#include "dkim_sign_int.h"

#define MAX_FIELDS 1000 /* header fields looked at; a message with more is not signed */

struct buf {
    char *d;
    size_t n, cap;
    int failed;
};

static void put(struct buf *b, const void *p, size_t n)
{
    if (b->failed)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->n + n + 1) * 2;
        char *d = realloc(b->d, cap);
        if (!d) {
            b->failed = 1;
            return;
        }
        b->d = d;
        b->cap = cap;
    }
    memcpy(b->d + b->n, p, n);
    b->n += n;
    b->d[b->n] = '\0';
}

static void puts_(struct buf *b, const char *s) { put(b, s, strlen(s)); }

static int wsp(int c) { return c == ' ' || c == '\t'; }

struct hfield {
    const uint8_t *p;
    size_t len, namelen; /* without the final CRLF; the name without trailing WSP */
    int used;
};

/* The header fields and where the body starts. -1: more than MAX_FIELDS; -2: a field without
 * a name or a colon, or with a tab before the colon (RFC 5322 4.5's obsolete "Subject\t:"):
 * libopendkim keeps the tab in the name and fails the signature (dkimpy refuses any white
 * space there), so such a message goes unsigned. */
static int split(const uint8_t *msg, size_t len, struct hfield *f, size_t *nf, size_t *body)
{
    size_t i = 0;
    *nf = 0;
    while (i < len && msg[i] != '\r' && msg[i] != '\n') {
        size_t start = i, end;
        for (;;) {
            while (i < len && msg[i] != '\n')
                i++;
            end = i > start && msg[i - 1] == '\r' ? i - 1 : i;
            if (i < len)
                i++;
            if (i >= len || !wsp(msg[i]))
                break;
        }
        if (*nf == MAX_FIELDS)
            return -1;
        size_t colon = start;
        while (colon < end && msg[colon] != ':')
            colon++;
        size_t nl = colon - start;
        while (nl > 0 && wsp(msg[start + nl - 1]))
            if (msg[start + --nl] == '\t')
                return -2;
        if (colon == end || nl == 0)
            return -2;
        f[(*nf)++] = (struct hfield){.p = msg + start, .len = end - start, .namelen = nl};
    }
    if (i < len)
        i += msg[i] == '\r' && i + 1 < len && msg[i + 1] == '\n' ? 2 : 1;
    *body = i;
    return 0;
}

/* RFC 6376 3.4.2: name lower-cased, unfolded, WSP runs one SP, none at the end or around
 * the colon. crlf: end with CRLF (not for the signature field itself). */
static void canon_header(struct buf *b, const uint8_t *p, size_t len, size_t namelen, int crlf)
{
    for (size_t i = 0; i < namelen; i++) {
        char c = (char)(p[i] >= 'A' && p[i] <= 'Z' ? p[i] + 32 : p[i]);
        put(b, &c, 1);
    }
    put(b, ":", 1);
    size_t i = namelen;
    while (i < len && p[i] != ':')
        i++;
    i++;
    int pending_space = 0, started = 0;
    for (; i < len; i++) {
        uint8_t c = p[i];
        if (c == '\r' || c == '\n')
            continue;
        if (wsp(c)) {
            pending_space = started;
            continue;
        }
        if (pending_space)
            put(b, " ", 1);
        pending_space = 0;
        started = 1;
        put(b, &c, 1);
    }
    if (crlf)
        put(b, "\r\n", 2);
}

/* RFC 6376 3.4.4 into the digest: WSP runs one SP, none at line ends, no empty lines at the
 * end, CRLF after the last line (an empty body stays empty). */
static int hash_body(const uint8_t *p, size_t len, unsigned char out[32])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    size_t empty = 0, i = 0;
    static const char crlf[] = "\r\n";
    char line[1024];
    while (ok && i < len) {
        size_t end = i;
        while (end < len && p[end] != '\n')
            end++;
        size_t next = end < len ? end + 1 : end;
        if (end > i && p[end - 1] == '\r')
            end--;
        size_t o = 0;
        int space = 0, any = 0;
        for (size_t k = i; ok && k < end; k++) {
            if (wsp(p[k])) {
                space = 1;
                continue;
            }
            if (space)
                line[o++] = ' '; /* a run, leading ones too, is one SP */
            space = 0;
            any = 1;
            line[o++] = (char)p[k];
            if (o >= sizeof line - 2) {
                for (; empty; empty--)
                    ok = ok && EVP_DigestUpdate(ctx, crlf, 2);
                ok = ok && EVP_DigestUpdate(ctx, line, o);
                o = 0;
            }
        }
        if (!any) {
            empty++;
        } else {
            for (; empty; empty--)
                ok = ok && EVP_DigestUpdate(ctx, crlf, 2);
            ok = ok && EVP_DigestUpdate(ctx, line, o) && EVP_DigestUpdate(ctx, crlf, 2);
        }
        i = next;
    }
    unsigned int n = 0;
    ok = ok && EVP_DigestFinal_ex(ctx, out, &n) && n == 32;
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : -1;
}

static int in_list(const char *const *list, const uint8_t *name, size_t n)
{
    for (; *list; list++)
        if (strlen(*list) == n && strncasecmp(*list, (const char *)name, n) == 0)
            return 1;
    return 0;
}

int queue_dkim_sign_one(const struct dkim_key *k, const char *const *signed_headers, const uint8_t *msg,
                        size_t len, struct dkim_field *out, const char **why)
{
    struct hfield *f = malloc(MAX_FIELDS * sizeof *f);
    size_t nf, body;
    int split_rc = f ? split(msg, len, f, &nf, &body) : 0;
    if (!f || split_rc < 0) {
        free(f);
        *why = !f ? "out_of_memory" : split_rc == -2 ? "bad_header_syntax" : "too_many_header_fields";
        return -1;
    }
    unsigned char bh[32], hash[32], sig[1024];
    char bh64[64], sig64[1400];
    struct buf h = {0}, data = {0}, field = {0};
    /* h=: every signed field present, once per instance, then From once more (oversigned) */
    int rc = -1;
    for (size_t i = 0; i < nf; i++)
        if (in_list(signed_headers, f[i].p, f[i].namelen)) {
            if (h.n)
                puts_(&h, h.n % 60 > 50 ? ":\r\n\t" : ":");
            for (size_t c = 0; c < f[i].namelen; c++) {
                char ch = (char)(f[i].p[c] >= 'A' && f[i].p[c] <= 'Z' ? f[i].p[c] + 32 : f[i].p[c]);
                put(&h, &ch, 1);
            }
        }
    puts_(&h, h.n ? ":from" : "from");
    if (hash_body(msg + body, len - body, bh) < 0 || pm_base64_encode(bh, 32, bh64, sizeof bh64) < 0) {
        *why = "digest_failed";
        goto out;
    }
    char head[600];
    snprintf(head, sizeof head, "DKIM-Signature: v=1; a=%s; c=relaxed/relaxed; d=%s; s=%s;\r\n\tt=%lld; h=",
             queue_dkim_alg_name(k->alg), k->domain, k->selector, (long long)time(NULL));
    puts_(&field, head);
    put(&field, h.d, h.n);
    puts_(&field, ";\r\n\tbh=");
    puts_(&field, bh64);
    puts_(&field, ";\r\n\tb=");
    /* RFC 6376 5.4.2: each name of h= takes the last instance not taken yet, from the bottom;
     * a name with none left (the oversigned From) adds nothing. */
    for (const char *name = h.d; name && *name;) {
        const char *end = name;
        while (*end && *end != ':')
            end++;
        const char *s = name;
        while (s < end && (wsp(*s) || *s == '\r' || *s == '\n'))
            s++;
        for (size_t i = nf; i-- > 0;)
            if (!f[i].used && f[i].namelen == (size_t)(end - s) &&
                !strncasecmp((const char *)f[i].p, s, f[i].namelen)) {
                f[i].used = 1;
                canon_header(&data, f[i].p, f[i].len, f[i].namelen, 1);
                break;
            }
        name = *end ? end + 1 : NULL;
    }
    canon_header(&data, (const uint8_t *)field.d, field.n, strlen("DKIM-Signature"), 0);
    /* rsa-sha256: PKCS#1 v1.5 over the SHA-256 of the data; ed25519-sha256: PureEdDSA over
     * that SHA-256 (RFC 8463 3). */
    size_t siglen = sizeof sig;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int hl = 0;
    int ok = !data.failed && !field.failed && !h.failed && ctx;
    if (ok && k->alg == DKIM_ALG_RSA)
        ok = EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k->pkey) == 1 &&
             EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)data.d, data.n) == 1;
    else if (ok)
        ok = EVP_Digest(data.d, data.n, hash, &hl, EVP_sha256(), NULL) &&
             EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) == 1 &&
             EVP_DigestSign(ctx, sig, &siglen, hash, sizeof hash) == 1;
    ok = ok && pm_base64_encode(sig, siglen, sig64, sizeof sig64) > 0;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        *why = "sign_failed";
        goto out;
    }
    size_t n = strlen(sig64);
    for (size_t i = 0; i < n; i += 64) {
        put(&field, sig64 + i, n - i < 64 ? n - i : 64);
        if (i + 64 < n)
            puts_(&field, "\r\n\t ");
    }
    puts_(&field, "\r\n");
    if (field.failed) {
        *why = "out_of_memory";
        goto out;
    }
    out->d = field.d;
    out->n = field.n;
    field.d = NULL;
    rc = 0;
out:
    free(f);
    free(h.d);
    free(data.d);
    free(field.d);
    return rc;
}
