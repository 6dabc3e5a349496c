/* The _smtp._tls TXT record (RFC 8460 3) and mailto: URIs (RFC 6068), kept strict: a report
 * is mail we send on our own, so an address we cannot read plainly gets none. */
#include "tlsrpt_record.h"

#include <string.h>
#include <strings.h>

#include "hex.h"

/* Octets an address may hold here: printable ASCII without the specials that would need
 * quoting in a header or split a list. */
static int addr_octet(unsigned char c)
{
    return c > 0x20 && c < 0x7f && !strchr("<>()[]\\,;:\"", c);
}

static int domain_ok(const char *d)
{
    size_t n = strlen(d);
    if (n == 0 || n > 253 || d[0] == '.' || d[n - 1] == '.' || d[0] == '-')
        return 0;
    for (const char *p = d; *p; p++) {
        int alnum = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9');
        if (!alnum && *p != '-' && *p != '.')
            return 0;
        if (*p == '.' && p[1] == '.')
            return 0;
    }
    return 1;
}

int pm_tlsrpt_mailto_addr(const char *uri, size_t len, char *out, size_t size)
{
    if (size == 0 || len < 7 || strncasecmp(uri, "mailto:", 7) != 0)
        return -1;
    size_t o = 0;
    int ats = 0;
    for (size_t i = 7; i < len && uri[i] != '?'; i++) {
        unsigned char c = (unsigned char)uri[i];
        if (c == '%') {
            int hi = i + 2 < len ? pm_hex_digit(uri[i + 1]) : -1, lo = i + 2 < len ? pm_hex_digit(uri[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return -1;
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        }
        if (!addr_octet(c) || o + 1 >= size)
            return -1;
        ats += c == '@';
        out[o++] = (char)c;
    }
    out[o] = '\0';
    char *at = strchr(out, '@');
    if (ats != 1 || at == out || !domain_ok(at + 1))
        return -1;
    return 0;
}

static int is_wsp(char c) { return c == ' ' || c == '\t'; }

int pm_tlsrpt_parse_record(const char *txt, char rua[][PM_TLSRPT_URI_SIZE], int max)
{
    static const char version[] = "v=TLSRPTv1";
    if (strncmp(txt, version, sizeof version - 1) != 0)
        return -1;
    const char *p = txt + sizeof version - 1;
    while (is_wsp(*p))
        p++;
    if (*p != ';') /* 1*(field-delim tlsrpt-field): "v=TLSRPTv1x" is another version */
        return -1;
    int n = 0;
    while (*p) {
        while (*p == ';' || is_wsp(*p))
            p++;
        const char *field = p, *end = strchr(p, ';');
        if (!end)
            end = p + strlen(p);
        p = end;
        if (end - field < 4 || strncmp(field, "rua=", 4) != 0)
            continue; /* tlsrpt-ext: not ours */
        for (const char *u = field + 4; u < end;) {
            while (u < end && (is_wsp(*u) || *u == ','))
                u++;
            const char *ue = u;
            while (ue < end && *ue != ',' && !is_wsp(*ue))
                ue++;
            char addr[PM_TLSRPT_ADDR_SIZE];
            size_t ulen = (size_t)(ue - u);
            if (ulen && ulen < PM_TLSRPT_URI_SIZE && n < max && pm_tlsrpt_mailto_addr(u, ulen, addr, sizeof addr) == 0) {
                memcpy(rua[n], u, ulen);
                rua[n][ulen] = '\0';
                n++;
            }
            u = ue;
        }
    }
    return n;
}

int pm_tlsrpt_pick_record(const char *const *texts, size_t n, char rua[][PM_TLSRPT_URI_SIZE], int max)
{
    static const char version[] = "v=TLSRPTv1";
    const char *found = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!texts[i] || strncmp(texts[i], version, sizeof version - 1) != 0)
            continue;
        const char *p = texts[i] + sizeof version - 1;
        while (is_wsp(*p))
            p++;
        if (*p != ';')
            continue;
        if (found)
            return 0; /* two records: the domain has none (RFC 8460 3) */
        found = texts[i];
    }
    if (!found)
        return 0;
    int k = pm_tlsrpt_parse_record(found, rua, max);
    return k > 0 ? k : 0;
}
