/* SEARCH matching: a parsed program (search.c) against one message, plus the date and
 * substring helpers the grammar and the callbacks share. search.h says the rules. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "search_int.h"

int32_t imap_days_from_civil(int year, int month, int day)
{
    /* H. Hinnant's days_from_civil: exact for the proleptic Gregorian calendar. */
    long y = (long)year - (month <= 2);
    long era = (y >= 0 ? y : y - 399) / 400;
    long yoe = y - era * 400;
    long mp = month > 2 ? month - 3 : month + 9;
    long doy = (153 * mp + 2) / 5 + day - 1;
    long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return (int32_t)(era * 146097 + doe - 719468);
}

static int leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int imap_date_parse(const char *s, size_t len, int32_t *days)
{
    static const char months[12][4] = {"jan", "feb", "mar", "apr", "may", "jun",
                                       "jul", "aug", "sep", "oct", "nov", "dec"};
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    size_t i = 0;
    int day = 0, year = 0, month = -1;
    while (i < len && i < 2 && s[i] >= '0' && s[i] <= '9')
        day = day * 10 + (s[i++] - '0');
    if (i == 0 || i + 9 != len || s[i] != '-' || s[i + 4] != '-')
        return -1;
    for (int m = 0; m < 12; m++)
        if (strncasecmp(s + i + 1, months[m], 3) == 0)
            month = m;
    if (month < 0)
        return -1;
    for (size_t k = i + 5; k < len; k++) {
        if (s[k] < '0' || s[k] > '9')
            return -1;
        year = year * 10 + (s[k] - '0');
    }
    if (day < 1 || day > mdays[month] + (month == 1 && leap(year)))
        return -1;
    *days = imap_days_from_civil(year, month + 1, day);
    return 0;
}

/* Lower-cases ASCII letters only: bytes >= 0x80 stay as they are (UTF-8 is not folded). */
static void fold(char *dst, const char *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = (src[i] >= 'A' && src[i] <= 'Z') ? (char)(src[i] - 'A' + 'a') : src[i];
}

int imap_search_contains(const char *hay, size_t haylen, const char *needle, size_t nlen)
{
    if (nlen == 0)
        return 1;
    if (nlen > haylen)
        return 0;
    /* Fold a window of the haystack at a time and let memmem (linear: two-way) search it:
     * a hostile needle against a large body costs O(haylen), never O(haylen * nlen).
     * Windows overlap by nlen - 1 so no match is lost at a border. */
    enum { CHUNK = 64 * 1024, SMALL = 2048 };
    char nbuf_small[SMALL], hbuf_small[SMALL * 2];
    size_t window = haylen < CHUNK + nlen - 1 ? haylen : CHUNK + nlen - 1;
    char *nbuf = nlen <= SMALL ? nbuf_small : malloc(nlen);
    char *hbuf = window <= sizeof hbuf_small ? hbuf_small : malloc(window);
    int found = -1;
    if (nbuf == NULL || hbuf == NULL)
        goto out; /* no memory: reported as an error by the caller's -1 below */
    fold(nbuf, needle, nlen);
    found = 0;
    for (size_t off = 0; off + nlen <= haylen; off += CHUNK) {
        size_t end = haylen - off < window ? haylen : off + window;
        fold(hbuf, hay + off, end - off);
        if (memmem(hbuf, end - off, nbuf, nlen) != NULL) {
            found = 1;
            break;
        }
        if (end == haylen)
            break;
    }
out:
    if (nbuf != nbuf_small)
        free(nbuf);
    if (hbuf != hbuf_small)
        free(hbuf);
    return found;
}

/* floor(t / 86400): the UTC day of an instant, also before 1970. */
static int32_t utc_day(time_t t)
{
    long long d = (long long)t / 86400;
    if ((long long)t % 86400 < 0)
        d--;
    return (int32_t)d;
}

static int date_key(const struct search_node *n, const struct imap_search_env *env,
                    const struct imap_search_msg *m)
{
    int32_t day;
    if (n->sent) {
        int y, mo, d;
        if (env->sent_date == NULL)
            return 0;
        int rc = env->sent_date(m->ctx, &y, &mo, &d);
        if (rc <= 0)
            return rc;
        if (mo < 1 || mo > 12 || d < 1 || d > 31)
            return 0;
        day = imap_days_from_civil(y, mo, d);
    } else {
        day = utc_day(m->internaldate);
    }
    if (n->kind == SN_BEFORE)
        return day < n->days;
    if (n->kind == SN_ON)
        return day == n->days;
    return day >= n->days;
}

static int header_key(const struct search_node *n, const struct imap_search_env *env,
                      const struct imap_search_msg *m)
{
    if (env->header == NULL)
        return 0;
    for (size_t i = 0;; i++) {
        size_t len = 0;
        const char *v = env->header(m->ctx, n->name, i, &len);
        if (v == NULL)
            return 0;
        int rc = imap_search_contains(v, len, n->str, n->len);
        if (rc != 0)
            return rc; /* found, or -1 (no memory) */
    }
}

static int match(struct search_node *n, const struct imap_search_env *env, const struct imap_search_msg *m)
{
    int rc;
    switch (n->kind) {
    case SN_AND:
        for (size_t i = 0; i < n->nkids; i++)
            if ((rc = match(n->kids[i], env, m)) != 1)
                return rc;
        return 1;
    case SN_OR:
        if ((rc = match(n->kids[0], env, m)) != 0)
            return rc;
        return match(n->kids[1], env, m);
    case SN_NOT:
        rc = match(n->kids[0], env, m);
        return rc < 0 ? rc : !rc;
    case SN_ALL:
        return 1;
    case SN_FLAG:
        return ((m->flags & n->flag) != 0) == n->want;
    case SN_RECENT:
        return (m->recent != 0) == n->want;
    case SN_NEW:
        return m->recent && !(m->flags & IMAP_SEARCH_F_SEEN);
    case SN_SEQ:
        return imap_seqset_contains(n->set, m->seq, env->count);
    case SN_UID:
        return imap_seqset_contains(n->set, m->uid, env->max_uid);
    case SN_LARGER:
        return m->size > n->number;
    case SN_SMALLER:
        return m->size < n->number;
    case SN_BEFORE:
    case SN_ON:
    case SN_SINCE:
        return date_key(n, env, m);
    case SN_MODSEQ:
        return m->modseq >= n->number;
    case SN_KEYWORD:
        rc = env->has_keyword != NULL ? env->has_keyword(m->ctx, n->str) : 0;
        return rc < 0 ? rc : (rc != 0) == n->want;
    case SN_HEADER:
        return header_key(n, env, m);
    case SN_BODY:
    case SN_TEXT:
        if (n->len == 0)
            return 1;
        if (env->body_has == NULL)
            return 0;
        rc = env->body_has(m->ctx, n->str, n->len, n->kind == SN_TEXT);
        return rc < 0 ? -1 : rc != 0;
    }
    return 0;
}

int imap_search_match(struct imap_search *p, const struct imap_search_env *env, const struct imap_search_msg *m)
{
    return match(p->root, env, m);
}
