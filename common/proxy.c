/* PROXY protocol v1/v2 parser (proxy.h). Octets are taken one at a time into a small
 * buffer until the header is known to be complete (v1: its LF; v2: 16 + the length field),
 * then the whole header is decoded at once. Checking the signature octet by octet makes a
 * client that speaks first (an SMTP or TLS client talking straight to a PROXY listener)
 * fail at its first wrong octet, not after a timeout. */
#include "proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1_prefix[] = "PROXY ";
#define V1_PREFIX_LEN (sizeof v1_prefix - 1)

void pm_proxy_init(struct pm_proxy_parser *p) { memset(p, 0, sizeof *p); }

static enum pm_proxy_status fail(struct pm_proxy_parser *p, const char *why)
{
    p->error = why;
    return PM_PROXY_ERROR;
}

/* A v1 port: decimal 0..65535, no sign, no leading zero. -1 if not. */
static int v1_port(const char *s, size_t n)
{
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
        return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v > 65535 ? -1 : (int)v;
}

static int v1_addr(int family, const char *s, size_t n, int port, struct sockaddr_storage *ss)
{
    char text[INET6_ADDRSTRLEN];
    if (n == 0 || n >= sizeof text)
        return -1;
    memcpy(text, s, n);
    text[n] = '\0';
    memset(ss, 0, sizeof *ss);
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        return inet_pton(AF_INET, text, &sin->sin_addr) == 1 ? 0 : -1;
    }
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons((uint16_t)port);
    return inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1 ? 0 : -1;
}

/* "PROXY TCP4 192.0.2.1 198.51.100.1 56324 25\r\n" in p->buf[0..p->len). Fields are
 * separated by exactly one space, as the spec writes them. */
static enum pm_proxy_status v1_decode(struct pm_proxy_parser *p, struct pm_proxy_header *out)
{
    if (p->len < V1_PREFIX_LEN + 2 || p->buf[p->len - 2] != '\r')
        return fail(p, "v1_bare_lf");
    const char *line = (const char *)p->buf + V1_PREFIX_LEN;
    size_t n = p->len - V1_PREFIX_LEN - 2; /* without CRLF */
    memset(out, 0, sizeof *out);
    out->version = 1;
    /* UNKNOWN: the proxy could not tell; the rest of the line is to be ignored. */
    if (n >= 7 && memcmp(line, "UNKNOWN", 7) == 0 && (n == 7 || line[7] == ' ')) {
        out->local = 1;
        return PM_PROXY_DONE;
    }
    const char *f[6];
    size_t fl[6];
    int nf = 0;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && line[i] != ' ')
            continue;
        if (nf == 6)
            return fail(p, "v1_fields");
        f[nf] = line + start;
        fl[nf++] = i - start;
        start = i + 1;
    }
    int family;
    if (fl[0] == 4 && memcmp(f[0], "TCP4", 4) == 0)
        family = AF_INET;
    else if (fl[0] == 4 && memcmp(f[0], "TCP6", 4) == 0)
        family = AF_INET6;
    else
        return fail(p, "v1_protocol");
    if (nf != 5)
        return fail(p, "v1_fields");
    int sport = v1_port(f[3], fl[3]), dport = v1_port(f[4], fl[4]);
    if (sport < 0 || dport < 0)
        return fail(p, "v1_port");
    if (v1_addr(family, f[1], fl[1], sport, &out->src) < 0 || v1_addr(family, f[2], fl[2], dport, &out->dst) < 0)
        return fail(p, "v1_address");
    return PM_PROXY_DONE;
}

/* The fixed part (signature, version/command, family, length) and the address block. */
static enum pm_proxy_status v2_decode(struct pm_proxy_parser *p, struct pm_proxy_header *out)
{
    const unsigned char *b = p->buf;
    size_t alen = p->total - 16;
    memset(out, 0, sizeof *out);
    out->version = 2;
    if ((b[12] & 0x0F) == 0x0) { /* LOCAL: the proxy speaks for itself; the block is ignored */
        out->local = 1;
        return PM_PROXY_DONE;
    }
    unsigned fam = b[13] >> 4, proto = b[13] & 0x0F;
    if (fam > 3 || proto > 2 || (fam == 0) != (proto == 0))
        return fail(p, "v2_family");
    if (fam == 0 || proto != 1 || fam == 3) {
        /* UNSPEC, UDP or AF_UNIX: the spec lets a receiver fall back to UNSPEC for these. */
        out->local = 1;
        return PM_PROXY_DONE;
    }
    const unsigned char *a = b + 16;
    if (fam == 1) {
        if (alen < 12)
            return fail(p, "v2_short_address");
        struct sockaddr_in *s = (struct sockaddr_in *)&out->src, *d = (struct sockaddr_in *)&out->dst;
        s->sin_family = d->sin_family = AF_INET;
        memcpy(&s->sin_addr, a, 4);
        memcpy(&d->sin_addr, a + 4, 4);
        memcpy(&s->sin_port, a + 8, 2); /* network order on the wire and in the struct */
        memcpy(&d->sin_port, a + 10, 2);
    } else {
        if (alen < 36)
            return fail(p, "v2_short_address");
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&out->src, *d = (struct sockaddr_in6 *)&out->dst;
        s->sin6_family = d->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, a, 16);
        memcpy(&d->sin6_addr, a + 16, 16);
        memcpy(&s->sin6_port, a + 32, 2);
        memcpy(&d->sin6_port, a + 34, 2);
    }
    return PM_PROXY_DONE;
}

/* One octet of a header whose version is known. */
static enum pm_proxy_status step(struct pm_proxy_parser *p, unsigned char c, struct pm_proxy_header *out)
{
    size_t i = p->len++;
    if (p->version == 1) {
        if (i < V1_PREFIX_LEN && c != (unsigned char)v1_prefix[i])
            return fail(p, "bad_signature");
        if (i >= PM_PROXY_V1_MAX)
            return fail(p, "v1_too_long");
        /* The line is printable ASCII; a NUL or control octet cannot be part of one. */
        if (c != '\r' && c != '\n' && (c < 0x20 || c > 0x7e))
            return fail(p, "v1_bad_octet");
        p->buf[i] = c;
        return c == '\n' ? v1_decode(p, out) : PM_PROXY_MORE;
    }
    if (i < sizeof v2_sig && c != v2_sig[i])
        return fail(p, "bad_signature");
    if (i == 12 && (c >> 4) != 0x2)
        return fail(p, "v2_version");
    if (i == 12 && (c & 0x0F) > 1)
        return fail(p, "v2_command");
    if (i < sizeof p->buf)
        p->buf[i] = c; /* TLVs beyond the largest address block are counted, not kept */
    if (i == 15) {
        size_t len = (size_t)p->buf[14] << 8 | p->buf[15];
        if (len > PM_PROXY_V2_MAX_LEN)
            return fail(p, "v2_too_long");
        p->total = 16 + len;
    }
    if (p->total && p->len == p->total)
        return v2_decode(p, out);
    return PM_PROXY_MORE;
}

enum pm_proxy_status pm_proxy_feed(struct pm_proxy_parser *p, const void *in, size_t n, size_t *used,
                                   struct pm_proxy_header *out)
{
    const unsigned char *s = in;
    size_t i = 0;
    enum pm_proxy_status st = PM_PROXY_MORE;
    if (p->error) {
        *used = 0;
        return PM_PROXY_ERROR;
    }
    while (i < n && st == PM_PROXY_MORE) {
        if (p->version == 0) {
            if (s[i] == 'P')
                p->version = 1;
            else if (s[i] == v2_sig[0])
                p->version = 2;
            else {
                st = fail(p, "bad_signature");
                i++; /* counted like any other offending octet */
                break;
            }
        }
        st = step(p, s[i++], out);
    }
    *used = i;
    return st;
}
