/* The PROXY protocol parser (common/proxy.c), fed what a peer of a proxy_protocol listener
 * sends, cut at places the input chooses. Properties beyond memory safety:
 *  - split invariance: any cut gives the same status, consumed count, error token and
 *    header as one call (proxywait.c peeks whatever the socket holds);
 *  - bounds: a v1 header is at most 107 octets, a v2 one at most 16 + PM_PROXY_V2_MAX_LEN,
 *    and never is an octet after the header consumed (a v1 header ends at its first LF, a
 *    v2 one exactly at 16 + its length field);
 *  - a header that is not LOCAL has src and dst of one family, AF_INET or AF_INET6;
 *  - a v1 header accepted re-renders (TCP4/TCP6 from its addresses) to the same octets.
 * Input: byte 0 = number of cut sizes (mod 8), those cut sizes, then the wire data. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fuzz_common.h"
#include "proxy.h"

struct result {
    enum pm_proxy_status st;
    size_t used;
    const char *error;
    struct pm_proxy_header h;
};

static void parse(const uint8_t *in, size_t n, const uint8_t *cuts, size_t ncuts, struct result *r)
{
    struct pm_proxy_parser p;
    pm_proxy_init(&p);
    memset(r, 0, sizeof *r);
    r->st = PM_PROXY_MORE;
    size_t k = 0;
    while (r->used < n && r->st == PM_PROXY_MORE) {
        size_t chunk = fuzz_chunk(n - r->used, cuts, ncuts, &k);
        size_t used = 0;
        r->st = pm_proxy_feed(&p, in + r->used, chunk, &used, &r->h);
        FUZZ_CHECK(used <= chunk);
        if (r->st == PM_PROXY_MORE)
            FUZZ_CHECK(used == chunk);
        r->used += used;
    }
    r->error = p.error;
    FUZZ_CHECK((r->st == PM_PROXY_ERROR) == (r->error != NULL));
}

static void render_addr(const struct sockaddr_storage *ss, char *ip, size_t size, unsigned *port)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &s->sin_addr, ip, (socklen_t)size);
        *port = ntohs(s->sin_port);
    } else {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &s->sin6_addr, ip, (socklen_t)size);
        *port = ntohs(s->sin6_port);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t ncuts = data[0] % 8;
    if (size < 1 + ncuts)
        return 0;
    const uint8_t *cuts = data + 1, *in = data + 1 + ncuts;
    size_t n = size - 1 - ncuts;

    struct result whole, split;
    parse(in, n, NULL, 0, &whole);
    parse(in, n, cuts, ncuts, &split);
    FUZZ_CHECK(split.st == whole.st && split.used == whole.used);
    if (whole.st == PM_PROXY_ERROR)
        FUZZ_CHECK(strcmp(split.error, whole.error) == 0);
    if (whole.st != PM_PROXY_DONE)
        return 0;
    FUZZ_CHECK(memcmp(&split.h, &whole.h, sizeof whole.h) == 0);

    const struct pm_proxy_header *h = &whole.h;
    if (h->version == 1) {
        FUZZ_CHECK(whole.used <= PM_PROXY_V1_MAX);
        FUZZ_CHECK(in[whole.used - 1] == '\n' && memchr(in, '\n', whole.used - 1) == NULL);
    } else {
        FUZZ_CHECK(h->version == 2 && whole.used >= 16);
        FUZZ_CHECK(whole.used == 16 + ((size_t)in[14] << 8 | in[15]));
        FUZZ_CHECK(whole.used <= 16 + PM_PROXY_V2_MAX_LEN);
    }
    if (h->local)
        return 0;
    FUZZ_CHECK(h->src.ss_family == h->dst.ss_family);
    FUZZ_CHECK(h->src.ss_family == AF_INET || h->src.ss_family == AF_INET6);
    if (h->version == 1) {
        char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN], line[PM_PROXY_V1_MAX + 16];
        unsigned sp, dp;
        render_addr(&h->src, s, sizeof s, &sp);
        render_addr(&h->dst, d, sizeof d, &dp);
        int len = snprintf(line, sizeof line, "PROXY %s %s %s %u %u\r\n", h->src.ss_family == AF_INET ? "TCP4" : "TCP6",
                           s, d, sp, dp);
        /* IPv6 text has several spellings; the canonical one must parse to the same header. */
        FUZZ_CHECK(len > 0 && (size_t)len < sizeof line);
        struct result again;
        parse((const uint8_t *)line, (size_t)len, NULL, 0, &again);
        FUZZ_CHECK(again.st == PM_PROXY_DONE && again.used == (size_t)len);
        FUZZ_CHECK(memcmp(&again.h, h, sizeof *h) == 0);
        if (h->src.ss_family == AF_INET) /* dotted quads have one spelling (no leading zeros) */
            FUZZ_CHECK((size_t)len == whole.used && memcmp(line, in, whole.used) == 0);
    }
    return 0;
}
