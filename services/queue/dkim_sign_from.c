/* The From: domain a DKIM signature is made for (dkim_sign.h): exactly one From: header
 * field holding exactly one mailbox (RFC 5322 3.6.2, 3.4), whose domain is a DNS name.
 * Anything else (no From:, two, a group, a list, a domain literal) is not signed: a
 * verifier or DMARC would not know which domain the signature speaks for. Quoted strings,
 * comments and encoded words (RFC 2047) are skipped whole, so a comma, colon or '<' inside
 * a display name does not count. */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "dkim_sign_int.h"

#define MAX_FROM 2048 /* an unfolded From: value longer than this is not signed */

/* Next header field of the header section from *pos: its start and length (folded lines
 * included, final CRLF not). 0 at the end of the header section. */
static int next_field(const uint8_t *msg, size_t len, size_t *pos, size_t *start, size_t *flen)
{
    size_t i = *pos;
    if (i >= len || msg[i] == '\r' || msg[i] == '\n')
        return 0;
    *start = i;
    for (;;) {
        while (i < len && msg[i] != '\n')
            i++;
        size_t end = i > *start && msg[i - 1] == '\r' ? i - 1 : i;
        if (i < len)
            i++;
        if (i >= len || (msg[i] != ' ' && msg[i] != '\t')) {
            *flen = end - *start;
            *pos = i;
            return 1;
        }
    }
}

/* Skips an encoded word "=?charset?enc?text?=" at v[i]; returns the index after it, or i. */
static size_t skip_encoded_word(const char *v, size_t i)
{
    if (v[i] != '=' || v[i + 1] != '?')
        return i;
    size_t j = i + 2;
    int q = 0;
    while (v[j] && q < 3) {
        if (v[j] == '?')
            q++;
        if (v[j] == ' ')
            return i; /* an encoded word has no spaces */
        j++;
    }
    return q == 3 && v[j] == '=' ? j + 1 : i;
}

/* addr-spec from the one mailbox of value v: in angle brackets, else the text without
 * comments. 0 or -1 with why. */
static int one_mailbox(const char *v, char *spec, size_t size, const char **why)
{
    size_t o = 0, i = 0;
    int depth = 0, in_angle = 0, had_angle = 0, closed = 0, bare_at = 0;
    while (v[i]) {
        char ch = v[i];
        if (depth > 0) { /* a comment, nested */
            if (ch == '\\' && v[i + 1])
                i++;
            else if (ch == '(')
                depth++;
            else if (ch == ')')
                depth--;
            i++;
            continue;
        }
        if (ch == '"' && closed) {
            *why = "several_addresses";
            return -1;
        }
        if (ch == '"') { /* a quoted string: part of the address only inside <> or bare */
            size_t j = i + 1;
            while (v[j] && v[j] != '"')
                j += v[j] == '\\' && v[j + 1] ? 2 : 1;
            if (!v[j]) {
                *why = "unbalanced_quote";
                return -1;
            }
            if ((in_angle || !had_angle) && o + (j + 1 - i) < size) {
                memcpy(spec + o, v + i, j + 1 - i);
                o += j + 1 - i;
            }
            i = j + 1;
            continue;
        }
        size_t after = in_angle || closed ? i : skip_encoded_word(v, i);
        if (after != i) {
            i = after;
            continue;
        }
        if (ch == '(') {
            depth = 1;
        } else if (ch == '<') {
            if (had_angle || bare_at) { /* "a@x <b@y>": which one a reader takes is anyone's guess */
                *why = "several_addresses";
                return -1;
            }
            in_angle = had_angle = 1;
            o = 0; /* what came before was the display name */
        } else if (ch == '>') {
            in_angle = 0;
            closed = 1;
        } else if (closed && !isspace((unsigned char)ch)) {
            *why = "several_addresses"; /* "<a@x> b@y": only comments may follow the angle-addr */
            return -1;
        } else if (ch == ',' && !in_angle) {
            *why = "several_addresses";
            return -1;
        } else if ((ch == ':' || ch == ';') && !in_angle) {
            *why = "group";
            return -1;
        } else if ((in_angle || !had_angle) && !isspace((unsigned char)ch)) {
            bare_at |= ch == '@' && !in_angle;
            if (o + 1 >= size) {
                *why = "too_long";
                return -1;
            }
            spec[o++] = ch;
        }
        i++;
    }
    spec[o] = '\0';
    if (depth > 0 || in_angle) {
        *why = "unbalanced";
        return -1;
    }
    return 0;
}

int queue_dkim_from_domain(const uint8_t *msg, size_t len, char *domain, size_t dsize, const char **why)
{
    size_t pos = 0, start, flen, from_start = 0, from_len = 0;
    int nfrom = 0;
    while (next_field(msg, len, &pos, &start, &flen)) {
        size_t n = 0; /* the name, and the obsolete "From :" too (RFC 5322 4.5) */
        while (n < flen && msg[start + n] != ':' && msg[start + n] != ' ' && msg[start + n] != '\t')
            n++;
        size_t colon = n;
        while (colon < flen && (msg[start + colon] == ' ' || msg[start + colon] == '\t'))
            colon++;
        int is_from = n == 4 && colon < flen && msg[start + colon] == ':' &&
                      strncasecmp((const char *)msg + start, "from", 4) == 0;
        if (is_from && nfrom++ == 0) {
            from_start = start + colon + 1;
            from_len = flen - colon - 1;
        }
    }
    if (nfrom == 0 || nfrom > 1) {
        *why = nfrom ? "several_from" : "no_from";
        return -1;
    }
    char value[MAX_FROM + 1], spec[MAX_FROM + 1];
    if (from_len > MAX_FROM) {
        *why = "too_long";
        return -1;
    }
    size_t o = 0;
    for (size_t i = 0; i < from_len; i++) { /* unfold; a NUL would end the text early */
        char ch = (char)msg[from_start + i];
        if (ch == '\r' || ch == '\n')
            continue;
        value[o++] = ch == '\0' ? ' ' : ch;
    }
    value[o] = '\0';
    if (one_mailbox(value, spec, sizeof spec, why) < 0)
        return -1;
    const char *at = strrchr(spec, '@');
    if (!at || !at[1] || at == spec) {
        *why = spec[0] ? "no_domain" : "no_address";
        return -1;
    }
    const char *d = at + 1;
    size_t n = strlen(d);
    if (n >= dsize || n > 253) {
        *why = "too_long";
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)d[i];
        if (ch < 0x80 && !isalnum(ch) && ch != '-' && ch != '.') {
            *why = "bad_domain"; /* a domain literal, or not a DNS name */
            return -1;
        }
    }
    /* u-labels (an SMTPUTF8 message) become the a-labels that d= and the key's name use */
    if (queue_dkim_to_alabels(d, domain, dsize) < 0) {
        *why = "bad_domain";
        return -1;
    }
    n = strlen(domain);
    if (n == 0 || n > 253) {
        *why = n ? "too_long" : "bad_domain";
        return -1;
    }
    if (domain[0] == '.' || domain[n - 1] == '.' || strstr(domain, "..")) {
        *why = "bad_domain";
        return -1;
    }
    return 0;
}
