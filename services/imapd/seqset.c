/* IMAP sequence sets: parsing, membership and ascending walks (seqset.h says the rules).
 *
 * A set keeps the ranges as written (0 stands for '*', never a valid number) and, for the
 * last '*' value asked, the same ranges resolved, sorted and merged: membership is then a
 * binary search and a walk visits each member once in ascending order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seqset.h"

struct seq_range {
    uint32_t lo, hi;
};

struct imap_seqset {
    struct seq_range *raw;    /* as written; 0 = '*' */
    size_t n;
    struct seq_range *merged; /* resolved for `star`: sorted, disjoint, not adjacent */
    size_t nmerged;
    uint32_t star;
    int resolved;
    int has_star;
    uint32_t max_number;      /* the largest number written (not counting '*') */
};

/* One seq-number at s[*i]: nz-number (no leading zero, at most 2^32-1) or '*' (0). */
static int parse_number(const char *s, size_t len, size_t *i, uint32_t *out, const char **err)
{
    if (*i < len && s[*i] == '*') {
        (*i)++;
        *out = 0;
        return 0;
    }
    if (*i < len && s[*i] == '$') {
        *err = "Search results ($) are not supported";
        return -1;
    }
    if (*i >= len || s[*i] < '0' || s[*i] > '9') {
        *err = "Invalid sequence set: number expected";
        return -1;
    }
    if (s[*i] == '0') {
        *err = "Invalid sequence set: numbers start at 1";
        return -1;
    }
    uint64_t v = 0;
    while (*i < len && s[*i] >= '0' && s[*i] <= '9') {
        v = v * 10 + (uint64_t)(s[*i] - '0');
        if (v > UINT32_MAX) {
            *err = "Invalid sequence set: number too large";
            return -1;
        }
        (*i)++;
    }
    *out = (uint32_t)v;
    return 0;
}

struct imap_seqset *imap_seqset_parse(const char *s, size_t len, const char **err)
{
    if (len == 0) {
        *err = "Invalid sequence set: empty";
        return NULL;
    }
    /* Count first so the arrays are allocated once and the bound is checked before any
     * allocation (a comma per element). */
    size_t elements = 1;
    for (size_t i = 0; i < len; i++)
        if (s[i] == ',' && ++elements > IMAP_SEQSET_MAX_RANGES) {
            *err = "Sequence set has too many elements";
            return NULL;
        }
    struct imap_seqset *set = calloc(1, sizeof *set);
    if (set != NULL) {
        set->raw = calloc(elements, sizeof *set->raw);
        set->merged = calloc(elements, sizeof *set->merged);
    }
    if (set == NULL || set->raw == NULL || set->merged == NULL) {
        imap_seqset_free(set);
        *err = "Out of memory";
        return NULL;
    }
    size_t i = 0;
    for (;;) {
        struct seq_range r;
        if (parse_number(s, len, &i, &r.lo, err) < 0)
            goto bad;
        r.hi = r.lo;
        if (i < len && s[i] == ':') {
            i++;
            if (parse_number(s, len, &i, &r.hi, err) < 0)
                goto bad;
        }
        if (r.lo == 0 || r.hi == 0)
            set->has_star = 1;
        if (r.lo > set->max_number)
            set->max_number = r.lo;
        if (r.hi > set->max_number)
            set->max_number = r.hi;
        set->raw[set->n++] = r;
        if (i == len)
            break;
        if (s[i] != ',') {
            *err = "Invalid sequence set: unexpected character";
            goto bad;
        }
        i++;
    }
    return set;
bad:
    imap_seqset_free(set);
    return NULL;
}

struct imap_seqset *imap_seqset_from_arg(const struct imap_arg *arg, const char **err)
{
    if (arg == NULL || arg->type != IMAP_ARG_ATOM) {
        *err = "Invalid sequence set: an atom is expected";
        return NULL;
    }
    return imap_seqset_parse(arg->s, arg->len, err);
}

void imap_seqset_free(struct imap_seqset *set)
{
    if (set == NULL)
        return;
    free(set->raw);
    free(set->merged);
    free(set);
}

int imap_seqset_looks_like(const char *s, size_t len)
{
    return len > 0 && ((s[0] >= '0' && s[0] <= '9') || s[0] == '*' || s[0] == '$');
}

int imap_seqset_seq_valid(const struct imap_seqset *set, uint32_t count)
{
    if (set->has_star && count == 0)
        return 0;
    return set->max_number <= count;
}

int imap_seqset_has_star(const struct imap_seqset *set) { return set->has_star; }

static int range_cmp(const void *a, const void *b)
{
    const struct seq_range *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static void resolve(struct imap_seqset *set, uint32_t star)
{
    if (set->resolved && set->star == star)
        return;
    for (size_t i = 0; i < set->n; i++) {
        uint32_t lo = set->raw[i].lo ? set->raw[i].lo : star;
        uint32_t hi = set->raw[i].hi ? set->raw[i].hi : star;
        set->merged[i].lo = lo < hi ? lo : hi;
        set->merged[i].hi = lo < hi ? hi : lo;
    }
    qsort(set->merged, set->n, sizeof *set->merged, range_cmp);
    size_t m = 0;
    for (size_t i = 0; i < set->n; i++) {
        struct seq_range r = set->merged[i];
        if (m > 0 && (uint64_t)r.lo <= (uint64_t)set->merged[m - 1].hi + 1) {
            if (r.hi > set->merged[m - 1].hi)
                set->merged[m - 1].hi = r.hi;
        } else {
            set->merged[m++] = r;
        }
    }
    set->nmerged = m;
    set->star = star;
    set->resolved = 1;
}

int imap_seqset_contains(struct imap_seqset *set, uint32_t n, uint32_t star)
{
    if (n == 0)
        return 0; /* '*' of an empty folder resolves to 0, which is never a message */
    resolve(set, star);
    /* The last range starting at or below n. */
    size_t lo = 0, hi = set->nmerged;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (set->merged[mid].lo <= n)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo > 0 && n <= set->merged[lo - 1].hi;
}

void imap_seqset_iter_seq(struct imap_seqset_iter *it, struct imap_seqset *set, uint32_t count)
{
    it->set = set;
    it->star = count;
    it->range = 0;
    it->next = 1;
}

int imap_seqset_next_seq(struct imap_seqset_iter *it, uint32_t *seq)
{
    struct imap_seqset *set = it->set;
    resolve(set, it->star); /* a no-op unless someone asked with another '*' meanwhile */
    while (it->range < set->nmerged) {
        const struct seq_range *r = &set->merged[it->range];
        uint64_t n = it->next > r->lo ? it->next : r->lo;
        if (n > it->star)
            return 0; /* ranges ascend: nothing later is within the folder either */
        if (n > r->hi) {
            it->range++;
            continue;
        }
        *seq = (uint32_t)n;
        it->next = n + 1;
        return 1;
    }
    return 0;
}

void imap_seqset_iter_uid(struct imap_seqset_iter *it, struct imap_seqset *set, imap_uid_at_fn *uid_at,
                          const void *ctx, size_t n)
{
    it->set = set;
    it->star = n > 0 ? uid_at(ctx, n - 1) : 0;
    it->range = 0;
    it->next = 0;
}

int imap_seqset_next_uid(struct imap_seqset_iter *it, imap_uid_at_fn *uid_at, const void *ctx, size_t n,
                         uint32_t *seq)
{
    struct imap_seqset *set = it->set;
    resolve(set, it->star);
    while (it->range < set->nmerged && it->next < n) {
        const struct seq_range *r = &set->merged[it->range];
        uint32_t uid = uid_at(ctx, (size_t)it->next);
        if (uid > r->hi) {
            it->range++;
            continue;
        }
        if (uid < r->lo) {
            /* Jump to the first message with a UID >= lo (UIDs ascend with the index). */
            size_t lo = (size_t)it->next + 1, hi = n;
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (uid_at(ctx, mid) < r->lo)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            it->next = lo;
            continue;
        }
        if (it->next + 1 > UINT32_MAX)
            return 0; /* no folder has 2^32 messages; stop rather than wrap */
        *seq = (uint32_t)(it->next + 1);
        it->next++;
        return 1;
    }
    return 0;
}

char *imap_seqset_format(const uint32_t *nums, size_t n)
{
    /* Each number costs at most 10 digits and one separator. */
    if (n > (SIZE_MAX - 1) / 11)
        return NULL;
    char *out = malloc(n * 11 + 1);
    if (out == NULL)
        return NULL;
    size_t len = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j + 1 < n && nums[j] != UINT32_MAX && nums[j + 1] == nums[j] + 1)
            j++;
        if (len > 0)
            out[len++] = ',';
        char buf[24];
        int w = j > i ? snprintf(buf, sizeof buf, "%u:%u", (unsigned)nums[i], (unsigned)nums[j])
                      : snprintf(buf, sizeof buf, "%u", (unsigned)nums[i]);
        memcpy(out + len, buf, (size_t)w);
        len += (size_t)w;
        i = j + 1;
    }
    out[len] = '\0';
    return out;
}
