/* imapd sequence sets: the grammar (table of accepted and refused sets), '*' against a
 * count and against UIDs, reversed ranges, ascending walks, bounds and formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imapd/seqset.h"

static struct imap_seqset *parse(const char *s)
{
    const char *err = NULL;
    struct imap_seqset *set = imap_seqset_parse(s, strlen(s), &err);
    if (set == NULL)
        assert_non_null(err);
    return set;
}

/* The members in 1..count (seq walk) as a string "1 2 3". */
static void walk_seq(const char *text, uint32_t count, char *out, size_t size)
{
    struct imap_seqset *set = parse(text);
    assert_non_null(set);
    struct imap_seqset_iter it;
    uint32_t seq;
    size_t n = 0;
    out[0] = '\0';
    imap_seqset_iter_seq(&it, set, count);
    while (imap_seqset_next_seq(&it, &seq))
        n += (size_t)snprintf(out + n, size - n, n ? " %u" : "%u", (unsigned)seq);
    imap_seqset_free(set);
}

static void test_grammar_table(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int ok;
    } rows[] = {
        {"1", 1}, {"2:4", 1}, {"*", 1}, {"5:*", 1}, {"*:5", 1}, {"1,3,5:7", 1}, {"4:2", 1}, {"*:*", 1},
        {"4294967295", 1}, {"1:4294967295", 1}, {"1,1,1", 1},
        {"", 0}, {"0", 0}, {"0:5", 0}, {"5:0", 0}, {"01", 0}, {"4294967296", 0}, {"99999999999999999999", 0},
        {"1,", 0}, {",1", 0}, {"1,,2", 0}, {"1:", 0}, {":2", 0}, {"1:2:3", 0}, {"1::2", 0}, {"a", 0},
        {"1 2", 0}, {"-1", 0}, {"+1", 0}, {"$", 0}, {"1,$", 0}, {"**", 0}, {"1:*x", 0}, {"1\n", 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct imap_seqset *set = parse(rows[i].text);
        if ((set != NULL) != rows[i].ok)
            fail_msg("sequence set \"%s\": expected %s", rows[i].text, rows[i].ok ? "ok" : "refused");
        imap_seqset_free(set);
    }
}

static void test_embedded_nul_refused(void **state)
{
    (void)state;
    const char *err;
    assert_null(imap_seqset_parse("1\0" "2", 3, &err));
}

static void test_walks(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint32_t count;
        const char *members;
    } rows[] = {
        {"1", 5, "1"},
        {"2:4", 5, "2 3 4"},
        {"4:2", 5, "2 3 4"},
        {"*", 5, "5"},
        {"5:*", 5, "5"},
        {"3:*", 5, "3 4 5"},
        {"*:3", 5, "3 4 5"},
        {"1,3,5:7", 10, "1 3 5 6 7"},
        {"7:5,3,1", 10, "1 3 5 6 7"},
        {"1:3,2:5,4", 10, "1 2 3 4 5"},   /* overlaps given once */
        {"1,2,3,4", 10, "1 2 3 4"},       /* adjacent */
        {"1:4294967295", 3, "1 2 3"},     /* clipped to the count */
        {"6:9", 5, ""},
        {"*", 0, ""},
        {"1:*", 0, ""},
        {"10:*", 3, "3"},                  /* '*' = 3: 3:10 clipped */
    };
    char got[256];
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        walk_seq(rows[i].text, rows[i].count, got, sizeof got);
        if (strcmp(got, rows[i].members) != 0)
            fail_msg("\"%s\" count %u: got \"%s\", want \"%s\"", rows[i].text, (unsigned)rows[i].count, got,
                     rows[i].members);
    }
}

static void test_seq_valid(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint32_t count;
        int valid;
    } rows[] = {
        {"1:5", 5, 1}, {"1:6", 5, 0}, {"*", 5, 1}, {"*", 0, 0}, {"1", 0, 0}, {"5:*", 3, 0}, {"1:*", 3, 1},
        {"4294967295", 5, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct imap_seqset *set = parse(rows[i].text);
        assert_non_null(set);
        if (imap_seqset_seq_valid(set, rows[i].count) != rows[i].valid)
            fail_msg("seq_valid(\"%s\", %u) != %d", rows[i].text, (unsigned)rows[i].count, rows[i].valid);
        imap_seqset_free(set);
    }
    struct imap_seqset *set = parse("3,*");
    assert_true(imap_seqset_has_star(set));
    imap_seqset_free(set);
    set = parse("3:4");
    assert_false(imap_seqset_has_star(set));
    imap_seqset_free(set);
}

static void test_contains_star_changes(void **state)
{
    (void)state;
    struct imap_seqset *set = parse("2,5:*");
    assert_false(imap_seqset_contains(set, 0, 10));
    assert_false(imap_seqset_contains(set, 1, 10));
    assert_true(imap_seqset_contains(set, 2, 10));
    assert_false(imap_seqset_contains(set, 3, 10));
    assert_true(imap_seqset_contains(set, 5, 10));
    assert_true(imap_seqset_contains(set, 10, 10));
    assert_false(imap_seqset_contains(set, 11, 10));
    /* '*' = 3: 5:* is 3:5 */
    assert_true(imap_seqset_contains(set, 3, 3));
    assert_true(imap_seqset_contains(set, 5, 3));
    assert_false(imap_seqset_contains(set, 6, 3));
    assert_false(imap_seqset_contains(set, 4294967295u, 3));
    imap_seqset_free(set);
    set = parse("4294967295");
    assert_true(imap_seqset_contains(set, 4294967295u, 1));
    imap_seqset_free(set);
}

/* A folder's UIDs for the uid walk. */
struct uids {
    const uint32_t *v;
    size_t calls;
};
static uint32_t uid_at(const void *ctx, size_t i)
{
    struct uids *u = (struct uids *)ctx;
    u->calls++;
    return u->v[i];
}

static void walk_uid(const char *text, const uint32_t *v, size_t n, char *out, size_t size, size_t *calls)
{
    struct imap_seqset *set = parse(text);
    assert_non_null(set);
    struct uids u = {v, 0};
    struct imap_seqset_iter it;
    uint32_t seq, prev = 0;
    size_t len = 0;
    out[0] = '\0';
    imap_seqset_iter_uid(&it, set, uid_at, &u, n);
    while (imap_seqset_next_uid(&it, uid_at, &u, n, &seq)) {
        assert_true(seq > prev);
        prev = seq;
        len += (size_t)snprintf(out + len, size - len, len ? " %u" : "%u", (unsigned)seq);
    }
    if (calls)
        *calls = u.calls;
    imap_seqset_free(set);
}

static void test_uid_walks(void **state)
{
    (void)state;
    static const uint32_t uids[] = {3, 4, 7, 10, 11, 20};
    static const struct {
        const char *text;
        const char *seqs;
    } rows[] = {
        {"1:*", "1 2 3 4 5 6"},
        {"*", "6"},
        {"*:1", "1 2 3 4 5 6"},
        {"4", "2"},
        {"5:6", ""},          /* a range matching nothing is not an error */
        {"100:*", "6"},       /* RFC 9051: 100:* includes the last message */
        {"100:200", ""},
        {"1:3,10:11", "1 4 5"},
        {"11:10,3", "1 4 5"},
        {"20,3,7", "1 3 6"},
        {"1,2,5,6,8,9", ""},
    };
    char got[256];
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        walk_uid(rows[i].text, uids, 6, got, sizeof got, NULL);
        if (strcmp(got, rows[i].seqs) != 0)
            fail_msg("uid \"%s\": got \"%s\", want \"%s\"", rows[i].text, got, rows[i].seqs);
    }
    walk_uid("1:*", uids, 0, got, sizeof got, NULL);
    assert_string_equal(got, "");
}

static void test_uid_walk_skips_by_search(void **state)
{
    (void)state;
    enum { N = 5000 };
    uint32_t *uids = malloc(N * sizeof *uids);
    assert_non_null(uids);
    for (uint32_t i = 0; i < N; i++)
        uids[i] = 2 * i + 1;
    char *got = malloc(64 * 1024);
    size_t calls;
    walk_uid("9981:*", uids, N, got, 64 * 1024, &calls);
    assert_string_equal(got, "4991 4992 4993 4994 4995 4996 4997 4998 4999 5000");
    assert_true(calls < 100); /* a binary search, not a walk over 4,990 messages */
    free(got);
    free(uids);
}

static void test_bounds(void **state)
{
    (void)state;
    /* IMAP_SEQSET_MAX_RANGES elements pass, one more is refused before any allocation. */
    size_t cap = IMAP_SEQSET_MAX_RANGES * 12 + 16, len = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    for (size_t i = 0; i < IMAP_SEQSET_MAX_RANGES; i++)
        len += (size_t)snprintf(s + len, cap - len, i ? ",%zu" : "%zu", 2 * i + 1);
    const char *err = NULL;
    struct imap_seqset *set = imap_seqset_parse(s, len, &err);
    assert_non_null(set);
    assert_true(imap_seqset_contains(set, 2 * (IMAP_SEQSET_MAX_RANGES - 1) + 1, 5));
    assert_false(imap_seqset_contains(set, 2, 5));
    imap_seqset_free(set);
    len += (size_t)snprintf(s + len, cap - len, ",7");
    assert_null(imap_seqset_parse(s, len, &err));
    assert_string_equal(err, "Sequence set has too many elements");
    free(s);

    /* 100,000 commas: refused at once. */
    s = malloc(200001);
    for (size_t i = 0; i < 100000; i++)
        memcpy(s + 2 * i, "1,", 2);
    s[199999] = '1';
    assert_null(imap_seqset_parse(s, 200000, &err));
    free(s);
}

static void test_from_arg(void **state)
{
    (void)state;
    const char *err;
    struct imap_arg atom = {.type = IMAP_ARG_ATOM, .s = "1:3", .len = 3};
    struct imap_arg quoted = {.type = IMAP_ARG_QUOTED, .s = "1:3", .len = 3};
    struct imap_arg list = {.type = IMAP_ARG_LIST};
    struct imap_seqset *set = imap_seqset_from_arg(&atom, &err);
    assert_non_null(set);
    imap_seqset_free(set);
    assert_null(imap_seqset_from_arg(&quoted, &err));
    assert_null(imap_seqset_from_arg(&list, &err));
    assert_null(imap_seqset_from_arg(NULL, &err));
    assert_true(imap_seqset_looks_like("1", 1));
    assert_true(imap_seqset_looks_like("*", 1));
    assert_false(imap_seqset_looks_like("ALL", 3));
    assert_false(imap_seqset_looks_like("", 0));
}

static void test_format(void **state)
{
    (void)state;
    static const uint32_t a[] = {1, 2, 3, 7, 9, 10};
    static const uint32_t b[] = {5, 4, 3};
    static const uint32_t c[] = {4294967294u, 4294967295u, 1};
    char *s = imap_seqset_format(a, 6);
    assert_string_equal(s, "1:3,7,9:10");
    free(s);
    s = imap_seqset_format(b, 3);
    assert_string_equal(s, "5,4,3");
    free(s);
    s = imap_seqset_format(c, 3);
    assert_string_equal(s, "4294967294:4294967295,1");
    free(s);
    s = imap_seqset_format(a, 0);
    assert_string_equal(s, "");
    free(s);
    s = imap_seqset_format(a, 1);
    assert_string_equal(s, "1");
    free(s);
}

/* The walk resumes from the iterator value alone (as across imap_yield). */
static void test_resume(void **state)
{
    (void)state;
    struct imap_seqset *set = parse("1:3,8");
    struct imap_seqset_iter it, copy;
    uint32_t seq;
    imap_seqset_iter_seq(&it, set, 10);
    assert_true(imap_seqset_next_seq(&it, &seq));
    assert_int_equal(seq, 1);
    copy = it;
    assert_true(imap_seqset_contains(set, 2, 99)); /* another '*' meanwhile */
    assert_true(imap_seqset_next_seq(&copy, &seq));
    assert_int_equal(seq, 2);
    assert_true(imap_seqset_next_seq(&copy, &seq));
    assert_int_equal(seq, 3);
    assert_true(imap_seqset_next_seq(&copy, &seq));
    assert_int_equal(seq, 8);
    assert_false(imap_seqset_next_seq(&copy, &seq));
    assert_false(imap_seqset_next_seq(&copy, &seq));
    imap_seqset_free(set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grammar_table),  cmocka_unit_test(test_embedded_nul_refused),
        cmocka_unit_test(test_walks),          cmocka_unit_test(test_seq_valid),
        cmocka_unit_test(test_contains_star_changes), cmocka_unit_test(test_uid_walks),
        cmocka_unit_test(test_uid_walk_skips_by_search), cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_from_arg),       cmocka_unit_test(test_format),
        cmocka_unit_test(test_resume),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
