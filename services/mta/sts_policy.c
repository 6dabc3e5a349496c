/* RFC 8461 3.1 (TXT), 3.2 (policy) and 4.1 (MX matching). Written to the ABNF, lenient only
 * where real policies differ harmlessly: blank lines, white space at a line's end, CRLF or
 * LF. Everything else malformed makes the record or policy unusable as a whole. */
#include "sts_policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int fail(char *why, size_t whysize, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *why, size_t whysize, const char *fmt, ...)
{
    if (why && whysize) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whysize, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_alnum(int c) { return is_alpha(c) || is_digit(c); }
static int is_wsp(int c) { return c == ' ' || c == '\t'; }
static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

const char *mta_sts_mode_name(enum mta_sts_mode m)
{
    return m == MTA_STS_MODE_ENFORCE ? "enforce" : m == MTA_STS_MODE_TESTING ? "testing" : "none";
}

/* sts-ext-name / sts-policy-ext-name: (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / "."). */
static int valid_field_name(const char *s, size_t n)
{
    if (n < 1 || n > 32 || !is_alnum((unsigned char)s[0]))
        return 0;
    for (size_t i = 1; i < n; i++) {
        int c = (unsigned char)s[i];
        if (!is_alnum(c) && c != '_' && c != '-' && c != '.')
            return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------ TXT (3.1) */
/* "v=STSv1" then *WSP ";": the start that makes a record ours. */
static int txt_is_ours(const char *t)
{
    if (strncmp(t, "v=STSv1", 7) != 0)
        return 0;
    t += 7;
    while (is_wsp((unsigned char)*t))
        t++;
    return *t == ';';
}

/* sts-text-record = sts-version 1*(*WSP field-delim *WSP sts-field) [field-delim], with white
 * space allowed at the end. */
static int txt_fields(const char *t, char id[33], char *why, size_t whysize)
{
    size_t i = 7, n = strlen(t);
    int fields = 0, have_id = 0;
    for (;;) {
        while (i < n && is_wsp((unsigned char)t[i]))
            i++;
        if (i == n)
            break;
        if (t[i] != ';')
            return fail(why, whysize, "TXT record: ';' expected at offset %zu", i);
        i++;
        while (i < n && is_wsp((unsigned char)t[i]))
            i++;
        if (i == n)
            break; /* the optional trailing field-delim */
        size_t name = i;
        while (i < n && t[i] != '=' && t[i] != ';' && !is_wsp((unsigned char)t[i]))
            i++;
        if (i == n || t[i] != '=' || !valid_field_name(t + name, i - name))
            return fail(why, whysize, "TXT record: malformed field at offset %zu", name);
        size_t name_len = i - name;
        size_t value = ++i;
        while (i < n && t[i] > 0x20 && t[i] < 0x7f && t[i] != '=' && t[i] != ';')
            i++;
        size_t value_len = i - value;
        if (value_len == 0)
            return fail(why, whysize, "TXT record: empty value at offset %zu", value);
        if (i < n && t[i] != ';' && !is_wsp((unsigned char)t[i]))
            return fail(why, whysize, "TXT record: bad character at offset %zu", i);
        fields++;
        if (name_len == 2 && memcmp(t + name, "id", 2) == 0) {
            if (have_id)
                continue; /* the first instance counts */
            if (value_len > 32)
                return fail(why, whysize, "TXT record: id longer than 32");
            for (size_t k = 0; k < value_len; k++)
                if (!is_alnum((unsigned char)t[value + k]))
                    return fail(why, whysize, "TXT record: id not alphanumeric");
            memcpy(id, t + value, value_len);
            id[value_len] = '\0';
            have_id = 1;
        }
    }
    if (!fields)
        return fail(why, whysize, "TXT record: no fields after v=STSv1");
    if (!have_id)
        return fail(why, whysize, "TXT record: no id");
    return 1;
}

int mta_sts_txt_parse(const char *const *texts, size_t ntexts, char id[33], char *why, size_t whysize)
{
    const char *ours = NULL;
    size_t count = 0;
    for (size_t i = 0; i < ntexts; i++)
        if (texts[i] && txt_is_ours(texts[i])) {
            ours = texts[i];
            count++;
        }
    if (count == 0) {
        fail(why, whysize, "no v=STSv1 TXT record");
        return 0;
    }
    if (count > 1)
        return fail(why, whysize, "%zu v=STSv1 TXT records (one expected)", count);
    id[0] = '\0';
    int rc = txt_fields(ours, id, why, whysize);
    if (rc < 0)
        id[0] = '\0';
    return rc;
}

/* ------------------------------------------------------------------ policy (3.2) */
/* Domain (RFC 5321): labels of letters, digits and inner hyphens, 1..63 each, 253 in all;
 * one ending dot dropped. Written lower case to out (254 octets). */
static int copy_domain(const char *s, size_t n, char *out)
{
    if (n && s[n - 1] == '.')
        n--;
    if (n == 0 || n > 253)
        return 0;
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return 0;
            label = 0;
        } else if (is_alnum(c) || c == '-') {
            if (c == '-' && label == 0)
                return 0;
            if (++label > 63)
                return 0;
        } else {
            return 0;
        }
        out[i] = (char)lower(c);
    }
    if (label == 0 || s[n - 1] == '-')
        return 0;
    out[n] = '\0';
    return 1;
}

/* sts-policy-ext-value and the rest: printable ASCII, inner spaces, UTF-8 octets; no controls. */
static int valid_value(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return 0;
    }
    return 1;
}

static int value_is(const char *v, size_t n, const char *word)
{
    return strlen(word) == n && memcmp(v, word, n) == 0; /* %s"...": case-sensitive */
}

struct seen {
    int version, mode, max_age;
};

static int policy_field(struct mta_sts_policy *p, struct seen *seen, const char *key, size_t klen, const char *v,
                        size_t vlen, size_t line, char *why, size_t whysize)
{
    if (klen == 7 && memcmp(key, "version", 7) == 0) {
        if (seen->version++)
            return 0;
        if (!value_is(v, vlen, "STSv1"))
            return fail(why, whysize, "policy line %zu: version is not STSv1", line);
    } else if (klen == 4 && memcmp(key, "mode", 4) == 0) {
        if (seen->mode++)
            return 0;
        if (value_is(v, vlen, "enforce"))
            p->mode = MTA_STS_MODE_ENFORCE;
        else if (value_is(v, vlen, "testing"))
            p->mode = MTA_STS_MODE_TESTING;
        else if (value_is(v, vlen, "none"))
            p->mode = MTA_STS_MODE_NONE;
        else
            return fail(why, whysize, "policy line %zu: unknown mode", line);
    } else if (klen == 7 && memcmp(key, "max_age", 7) == 0) {
        if (seen->max_age++)
            return 0;
        if (vlen < 1 || vlen > 10)
            return fail(why, whysize, "policy line %zu: max_age is not 1 to 10 digits", line);
        unsigned long long age = 0;
        for (size_t i = 0; i < vlen; i++) {
            if (!is_digit((unsigned char)v[i]))
                return fail(why, whysize, "policy line %zu: max_age is not a number", line);
            age = age * 10 + (unsigned)(v[i] - '0');
        }
        p->max_age = age > MTA_STS_MAX_AGE_LIMIT ? MTA_STS_MAX_AGE_LIMIT : (uint32_t)age;
    } else if (klen == 2 && memcmp(key, "mx", 2) == 0) {
        if (p->nmx == MTA_STS_MAX_MX)
            return fail(why, whysize, "policy: more than %d mx patterns", MTA_STS_MAX_MX);
        char *out = p->mx[p->nmx]; /* 256: "*." and a name of at most 253 */
        int wild = vlen > 2 && v[0] == '*' && v[1] == '.';
        if (wild)
            memcpy(out, "*.", 2);
        if (!copy_domain(v + (wild ? 2 : 0), vlen - (wild ? 2 : 0), out + (wild ? 2 : 0)))
            return fail(why, whysize, "policy line %zu: mx is not a host name or *.domain", line);
        p->nmx++;
    }
    /* any other field: an extension, ignored */
    return 0;
}

int mta_sts_policy_parse(const char *body, size_t len, struct mta_sts_policy *p, char *why, size_t whysize)
{
    if (len > MTA_STS_MAX_POLICY)
        return fail(why, whysize, "policy larger than %d octets", MTA_STS_MAX_POLICY);
    p->mode = MTA_STS_MODE_NONE;
    p->max_age = 0;
    p->nmx = 0;
    struct seen seen = {0, 0, 0};
    size_t i = 0, line = 0;
    while (i < len) {
        line++;
        const char *nl = memchr(body + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - body) : len;
        size_t next = nl ? end + 1 : len;
        if (end > i && body[end - 1] == '\r')
            end--;
        while (end > i && is_wsp((unsigned char)body[end - 1]))
            end--;
        if (end == i) { /* a blank line */
            i = next;
            continue;
        }
        const char *s = body + i;
        size_t n = end - i;
        const char *colon = memchr(s, ':', n);
        if (!colon || !valid_field_name(s, (size_t)(colon - s)))
            return fail(why, whysize, "policy line %zu: not \"key: value\"", line);
        size_t klen = (size_t)(colon - s), v = klen + 1;
        while (v < n && is_wsp((unsigned char)s[v]))
            v++;
        if (!valid_value(s + v, n - v))
            return fail(why, whysize, "policy line %zu: control character", line);
        if (policy_field(p, &seen, s, klen, s + v, n - v, line, why, whysize) < 0)
            return -1;
        i = next;
    }
    if (!seen.version)
        return fail(why, whysize, "policy: no version");
    if (!seen.mode)
        return fail(why, whysize, "policy: no mode");
    if (!seen.max_age)
        return fail(why, whysize, "policy: no max_age");
    if (p->mode != MTA_STS_MODE_NONE && p->nmx == 0)
        return fail(why, whysize, "policy: mode %s without mx", mta_sts_mode_name(p->mode));
    return 0;
}

/* ------------------------------------------------------------------ MX matching (4.1) */
static int equal_names(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return 0;
    for (size_t i = 0; i < alen; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return 0;
    return 1;
}

int mta_sts_pattern_matches(const char *pattern, const char *host)
{
    if (!pattern || !host)
        return 0;
    size_t plen = strlen(pattern), hlen = strlen(host);
    if (plen && pattern[plen - 1] == '.')
        plen--;
    if (hlen && host[hlen - 1] == '.')
        hlen--;
    if (plen == 0 || hlen == 0)
        return 0;
    if (plen > 2 && pattern[0] == '*' && pattern[1] == '.') {
        const char *dot = memchr(host, '.', hlen);
        if (!dot || dot == host)
            return 0; /* the wildcard stands for one whole, non-empty label */
        size_t rest = hlen - (size_t)(dot + 1 - host);
        return equal_names(dot + 1, rest, pattern + 2, plen - 2);
    }
    return equal_names(pattern, plen, host, hlen);
}

int mta_sts_mx_matches(const struct mta_sts_policy *p, const char *mx_host)
{
    if (!p)
        return 0;
    for (int i = 0; i < p->nmx && i < MTA_STS_MAX_MX; i++)
        if (mta_sts_pattern_matches(p->mx[i], mx_host))
            return 1;
    return 0;
}
