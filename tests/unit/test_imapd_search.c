/* imapd SEARCH: every key against a small folder of fake messages (a table of criteria
 * and the sequence numbers they match), NOT/OR nesting, dates, CHARSET, RETURN, the
 * cheap-keys-first promise (callback counts), and hostile input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "imapd/search.h"
#include "imapd/parse.h"
#include "imapd_args_fixture.h"

struct fake {
    const char *from, *to, *cc, *subject, *xlist; /* NULL: no such field */
    const char *body;
    int sent_y, sent_m, sent_d; /* 0: no Date: */
    unsigned flags;
    int recent;
    uint64_t size;
    time_t internaldate;
    const char *keyword;
};

/* 2026-02-01 00:00:00 UTC = 1769904000 */
#define FEB1 ((time_t)1769904000)
#define DAY 86400

static const struct fake folder[] = {
    /* 1 */ {"Alice <alice@example.org>", "bob@example.net", NULL, "Hello world", NULL, "first body TEXT", 2026, 1, 31,
             IMAP_SEARCH_F_SEEN, 0, 1000, FEB1 - 1, NULL},
    /* 2 */ {"Bob <bob@example.net>", "alice@example.org", "carol@example.com", "Re: Hello", "list-a",
             "second body with Zebra", 2026, 2, 1, IMAP_SEARCH_F_SEEN | IMAP_SEARCH_F_ANSWERED, 0, 5000, FEB1, "$Work"},
    /* 3 */ {"Carol <carol@example.com>", "bob@example.net", NULL, "Caf\xc3\xa9 menu", NULL, "", 2026, 2, 2,
             IMAP_SEARCH_F_FLAGGED, 1, 20000, FEB1 + DAY + 5, NULL},
    /* 4 */ {"dave@example.org", "list@example.org", NULL, NULL, "list-b", "draft body", 0, 0, 0,
             IMAP_SEARCH_F_DRAFT | IMAP_SEARCH_F_DELETED, 1, 10, FEB1 + 3 * DAY, NULL},
    /* 5 */ {"Eve <eve@example.org>", "bob@example.net", "bob@example.net", "Spam", NULL, "buy now", 2025, 12, 25,
             IMAP_SEARCH_F_SEEN, 0, 300000, FEB1 - 40 * DAY, NULL},
};
#define NMSG (sizeof folder / sizeof folder[0])
static const uint32_t folder_uids[NMSG] = {3, 4, 7, 10, 20};

static int header_calls, body_calls, date_calls;

static const char *fake_header(void *ctx, const char *name, size_t i, size_t *len)
{
    const struct fake *f = ctx;
    header_calls++;
    const char *v = NULL;
    if (strcasecmp(name, "From") == 0)
        v = f->from;
    else if (strcasecmp(name, "To") == 0)
        v = f->to;
    else if (strcasecmp(name, "Cc") == 0)
        v = f->cc;
    else if (strcasecmp(name, "Subject") == 0)
        v = f->subject;
    else if (strcasecmp(name, "List-Id") == 0)
        v = f->xlist;
    if (i > 0 || v == NULL)
        return NULL;
    *len = strlen(v);
    return v;
}

static int fake_sent(void *ctx, int *y, int *m, int *d)
{
    const struct fake *f = ctx;
    date_calls++;
    if (f->sent_y == 0)
        return 0;
    *y = f->sent_y, *m = f->sent_m, *d = f->sent_d;
    return 1;
}

static int fake_body(void *ctx, const char *needle, size_t len, int text)
{
    const struct fake *f = ctx;
    body_calls++;
    if (imap_search_contains(f->body, strlen(f->body), needle, len))
        return 1;
    if (!text)
        return 0;
    const char *h[] = {f->from, f->to, f->cc, f->subject, f->xlist};
    for (size_t i = 0; i < 5; i++)
        if (h[i] && imap_search_contains(h[i], strlen(h[i]), needle, len))
            return 1;
    return 0;
}

static int fake_keyword(void *ctx, const char *kw)
{
    const struct fake *f = ctx;
    return f->keyword != NULL && strcasecmp(f->keyword, kw) == 0;
}

static const struct imap_search_env env = {NMSG, 20, fake_header, fake_sent, fake_body, fake_keyword};

static struct imap_search_msg msg_of(size_t i)
{
    struct imap_search_msg m = {
        .seq = (uint32_t)(i + 1),
        .uid = folder_uids[i],
        .flags = folder[i].flags,
        .recent = folder[i].recent,
        .size = folder[i].size,
        .internaldate = folder[i].internaldate,
        .modseq = 100 + i,
        .ctx = (void *)&folder[i],
    };
    return m;
}

/* Parses criteria and returns the status; on OK the matching sequence numbers "1 3". */
static enum imap_search_status run(const char *criteria, unsigned opts, char *out, size_t size, const char **err)
{
    struct targs t = targs_make(criteria);
    struct imap_search *p;
    enum imap_search_status st = imap_search_parse(t.args, t.n, opts, &p, err);
    targs_free(&t);
    out[0] = '\0';
    if (st != IMAP_SEARCH_OK) {
        assert_null(p);
        return st;
    }
    size_t n = 0;
    for (size_t i = 0; i < NMSG; i++) {
        struct imap_search_msg m = msg_of(i);
        int rc = imap_search_match(p, &env, &m);
        assert_true(rc == 0 || rc == 1);
        if (rc)
            n += (size_t)snprintf(out + n, size - n, n ? " %zu" : "%zu", i + 1);
    }
    imap_search_free(p);
    return st;
}

static void test_keys_table(void **state)
{
    (void)state;
    static const struct {
        const char *criteria;
        const char *seqs;
    } rows[] = {
        {"ALL", "1 2 3 4 5"},
        {"SEEN", "1 2 5"},
        {"UNSEEN", "3 4"},
        {"FLAGGED", "3"},
        {"UNFLAGGED", "1 2 4 5"},
        {"ANSWERED", "2"},
        {"UNANSWERED", "1 3 4 5"},
        {"DELETED", "4"},
        {"UNDELETED", "1 2 3 5"},
        {"DRAFT", "4"},
        {"UNDRAFT", "1 2 3 5"},
        {"RECENT", "3 4"},
        {"OLD", "1 2 5"},
        {"NEW", "3 4"},
        {"seen", "1 2 5"},
        {"FROM alice", "1"},
        {"FROM \"EXAMPLE.ORG\"", "1 4 5"},
        {"TO bob", "1 3 5"},
        {"CC bob", "5"},
        {"CC \"\"", "2 5"}, /* the field exists */
        {"BCC bob", ""},
        {"SUBJECT hello", "1 2"},
        {"SUBJECT {5}HELLO", "1 2"},
        {"SUBJECT \"caf\xc3\xa9\"", "3"},
        {"SUBJECT \"CAF\xc3\x89\"", ""}, /* no Unicode case folding */
        {"SUBJECT NIL", ""},
        {"HEADER List-Id list", "2 4"},
        {"HEADER list-id \"\"", "2 4"},
        {"HEADER X-None \"\"", ""},
        {"BODY zebra", "2"},
        {"BODY text", "1"},
        {"BODY \"\"", "1 2 3 4 5"},
        {"BODY alice", ""},
        {"TEXT alice", "1 2"},
        {"TEXT spam", "5"},
        {"SINCE 1-Feb-2026", "2 3 4"},
        {"SINCE 01-feb-2026", "2 3 4"},
        {"SINCE \"2-FEB-2026\"", "3 4"},
        {"BEFORE 1-Feb-2026", "1 5"},
        {"ON 1-Feb-2026", "2"},
        {"ON 2-Feb-2026", "3"},
        {"SENTSINCE 1-Feb-2026", "2 3"},
        {"SENTBEFORE 1-Feb-2026", "1 5"},
        {"SENTON 25-Dec-2025", "5"},
        {"NOT SENTON 25-Dec-2025", "1 2 3 4"}, /* 4 has no Date: */
        {"LARGER 5000", "3 5"},
        {"SMALLER 1000", "4"},
        {"LARGER 0", "1 2 3 4 5"},
        {"SMALLER 0", ""},
        {"LARGER 18446744073709551", ""},
        {"UID 4", "2"},
        {"UID 5:9", "3"},
        {"UID *", "5"},
        {"UID 100:*", "5"},
        {"UID 1:3,10", "1 4"},
        {"UID 200:300", ""},
        {"1", "1"},
        {"2:3", "2 3"},
        {"4:2", "2 3 4"},
        {"*", "5"},
        {"3:*", "3 4 5"},
        {"1,5", "1 5"},
        {"9", ""},
        {"KEYWORD $Work", "2"},
        {"UNKEYWORD $work", "1 3 4 5"},
        {"NOT SEEN", "3 4"},
        {"NOT NOT SEEN", "1 2 5"},
        {"OR FLAGGED ANSWERED", "2 3"},
        {"OR (SEEN LARGER 2000) DRAFT", "2 4 5"},
        {"SEEN LARGER 2000", "2 5"},
        {"(SEEN) (LARGER 2000)", "2 5"},
        {"((SEEN))", "1 2 5"},
        {"OR OR FLAGGED DRAFT ANSWERED", "2 3 4"},
        {"NOT OR SEEN DELETED", "3"},
        {"OR NOT SEEN FROM alice", "1 3 4"},
        {"UNSEEN NOT DELETED", "3"},
        {"CHARSET UTF-8 SUBJECT hello", "1 2"},
        {"charset us-ascii ALL", "1 2 3 4 5"},
        {"CHARSET \"UTF-8\" SEEN", "1 2 5"},
        {"SINCE 1-Feb-2026 BEFORE 3-Feb-2026", "2 3"},
        {"NOT BEFORE 3-Feb-2026", "4"},
    };
    char got[128];
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const char *err = NULL;
        enum imap_search_status st = run(rows[i].criteria, 0, got, sizeof got, &err);
        if (st != IMAP_SEARCH_OK)
            fail_msg("\"%s\": status %d (%s)", rows[i].criteria, st, err);
        if (strcmp(got, rows[i].seqs) != 0)
            fail_msg("\"%s\": got \"%s\", want \"%s\"", rows[i].criteria, got, rows[i].seqs);
    }
}

static void test_refused_table(void **state)
{
    (void)state;
    static const struct {
        const char *criteria;
        enum imap_search_status st;
    } rows[] = {
        {"", IMAP_SEARCH_BAD},
        {"XYZZY", IMAP_SEARCH_BAD},
        {"FROM", IMAP_SEARCH_BAD},
        {"FROM (a)", IMAP_SEARCH_BAD},
        {"HEADER", IMAP_SEARCH_BAD},
        {"HEADER X", IMAP_SEARCH_BAD},
        {"HEADER \"\" x", IMAP_SEARCH_BAD},
        {"HEADER \"A:B\" x", IMAP_SEARCH_BAD},
        {"SINCE", IMAP_SEARCH_BAD},
        {"SINCE 2026-02-01", IMAP_SEARCH_BAD},
        {"SINCE 1-Foo-2026", IMAP_SEARCH_BAD},
        {"SINCE 32-Jan-2026", IMAP_SEARCH_BAD},
        {"SINCE 29-Feb-2026", IMAP_SEARCH_BAD},
        {"SINCE 0-Feb-2026", IMAP_SEARCH_BAD},
        {"SINCE 1-Feb-26", IMAP_SEARCH_BAD},
        {"SINCE 1-Feb-20266", IMAP_SEARCH_BAD},
        {"SINCE 001-Feb-2026", IMAP_SEARCH_BAD},
        {"SINCE {10}1-Feb-2026", IMAP_SEARCH_BAD},
        {"SINCE (1-Feb-2026)", IMAP_SEARCH_BAD},
        {"LARGER", IMAP_SEARCH_BAD},
        {"LARGER x", IMAP_SEARCH_BAD},
        {"LARGER -1", IMAP_SEARCH_BAD},
        {"LARGER \"5\"", IMAP_SEARCH_BAD},
        {"LARGER 9223372036854775808", IMAP_SEARCH_BAD},
        {"SMALLER 99999999999999999999999", IMAP_SEARCH_BAD},
        {"UID", IMAP_SEARCH_BAD},
        {"UID 0", IMAP_SEARCH_BAD},
        {"UID 4294967296", IMAP_SEARCH_BAD},
        {"UID x", IMAP_SEARCH_BAD},
        {"UID \"1\"", IMAP_SEARCH_BAD},
        {"0", IMAP_SEARCH_BAD},
        {"1:0", IMAP_SEARCH_BAD},
        {"4294967296", IMAP_SEARCH_BAD},
        {"1,,2", IMAP_SEARCH_BAD},
        {"$", IMAP_SEARCH_BAD},
        {"NOT", IMAP_SEARCH_BAD},
        {"OR SEEN", IMAP_SEARCH_BAD},
        {"OR", IMAP_SEARCH_BAD},
        {"()", IMAP_SEARCH_BAD},
        {"(SEEN ())", IMAP_SEARCH_BAD},
        {"SEEN \"x\"", IMAP_SEARCH_BAD},
        {"NIL", IMAP_SEARCH_BAD},
        {"KEYWORD", IMAP_SEARCH_BAD},
        {"KEYWORD \"x\"", IMAP_SEARCH_BAD},
        {"CHARSET", IMAP_SEARCH_BAD},
        {"CHARSET UTF-8", IMAP_SEARCH_BAD},
        {"CHARSET (UTF-8) ALL", IMAP_SEARCH_BAD},
        {"CHARSET ISO-8859-1 ALL", IMAP_SEARCH_BADCHARSET},
        {"CHARSET UTF-16 SUBJECT x", IMAP_SEARCH_BADCHARSET},
        {"CHARSET UTF-8X ALL", IMAP_SEARCH_BADCHARSET},
        {"ALL CHARSET UTF-8", IMAP_SEARCH_BAD},
        {"RETURN (ALL) ALL", IMAP_SEARCH_BAD}, /* not offered without the option */
        {"MODSEQ 5", IMAP_SEARCH_BAD},
    };
    char got[128];
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const char *err = NULL;
        enum imap_search_status st = run(rows[i].criteria, 0, got, sizeof got, &err);
        if (st != rows[i].st)
            fail_msg("\"%s\": status %d, want %d", rows[i].criteria, st, rows[i].st);
        assert_non_null(err);
        assert_int_not_equal(err[0], '['); /* the caller adds the response code */
    }
}

static void test_return_and_modseq(void **state)
{
    (void)state;
    static const struct {
        const char *criteria;
        enum imap_search_status st;
        int esearch;
        unsigned returns;
    } rows[] = {
        {"RETURN (MIN MAX) ALL", IMAP_SEARCH_OK, 1, IMAP_SEARCH_RET_MIN | IMAP_SEARCH_RET_MAX},
        {"RETURN (count all) SEEN", IMAP_SEARCH_OK, 1, IMAP_SEARCH_RET_COUNT | IMAP_SEARCH_RET_ALL},
        {"RETURN () SEEN", IMAP_SEARCH_OK, 1, IMAP_SEARCH_RET_ALL},
        {"RETURN (MIN) CHARSET UTF-8 SEEN", IMAP_SEARCH_OK, 1, IMAP_SEARCH_RET_MIN},
        {"SEEN", IMAP_SEARCH_OK, 0, 0},
        {"RETURN (SAVE) ALL", IMAP_SEARCH_BAD, 0, 0},
        {"RETURN (FOO) ALL", IMAP_SEARCH_BAD, 0, 0},
        {"RETURN ALL", IMAP_SEARCH_BAD, 0, 0},
        {"RETURN (MIN)", IMAP_SEARCH_BAD, 0, 0},
        {"CHARSET UTF-8 RETURN (MIN) ALL", IMAP_SEARCH_BAD, 0, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct targs t = targs_make(rows[i].criteria);
        struct imap_search *p;
        const char *err;
        enum imap_search_status st = imap_search_parse(t.args, t.n, IMAP_SEARCH_OPT_ESEARCH, &p, &err);
        targs_free(&t);
        if (st != rows[i].st)
            fail_msg("\"%s\": status %d", rows[i].criteria, st);
        if (st == IMAP_SEARCH_OK) {
            assert_int_equal(imap_search_is_esearch(p), rows[i].esearch);
            assert_int_equal(imap_search_returns(p), rows[i].returns);
            imap_search_free(p);
        }
    }
    char got[128];
    const char *err;
    assert_int_equal(run("MODSEQ 102", IMAP_SEARCH_OPT_CONDSTORE, got, sizeof got, &err), IMAP_SEARCH_OK);
    assert_string_equal(got, "3 4 5");
    assert_int_equal(run("MODSEQ \"/flags/\\\\draft\" all 103", IMAP_SEARCH_OPT_CONDSTORE, got, sizeof got, &err),
                     IMAP_SEARCH_OK);
    assert_string_equal(got, "4 5");
    assert_int_equal(run("MODSEQ \"/flags/\\\\draft\" bogus 103", IMAP_SEARCH_OPT_CONDSTORE, got, sizeof got, &err),
                     IMAP_SEARCH_BAD);
}

static unsigned needs_of(const char *criteria)
{
    struct targs t = targs_make(criteria);
    struct imap_search *p;
    const char *err;
    assert_int_equal(imap_search_parse(t.args, t.n, IMAP_SEARCH_OPT_CONDSTORE, &p, &err), IMAP_SEARCH_OK);
    targs_free(&t);
    unsigned needs = imap_search_needs(p);
    imap_search_free(p);
    return needs;
}

static void test_needs(void **state)
{
    (void)state;
    assert_int_equal(needs_of("SEEN UID 1:* 1:3 LARGER 5 SINCE 1-Jan-2020 NOT OR DRAFT KEYWORD x"), 0);
    assert_int_equal(needs_of("FROM a"), IMAP_SEARCH_NEED_HEADERS);
    assert_int_equal(needs_of("SENTON 1-Jan-2020"), IMAP_SEARCH_NEED_HEADERS);
    assert_int_equal(needs_of("NOT (SEEN OR BODY x SEEN)"), IMAP_SEARCH_NEED_BODY);
    assert_int_equal(needs_of("TEXT x HEADER a b"), IMAP_SEARCH_NEED_BODY | IMAP_SEARCH_NEED_HEADERS);
    assert_int_equal(needs_of("MODSEQ 1"), IMAP_SEARCH_NEED_MODSEQ);
}

/* Cheap keys first: a body key written first is still not read for messages that the
 * flags already decided, and a decided OR does not read its costly side. */
static void test_cheap_first(void **state)
{
    (void)state;
    char got[128];
    const char *err;
    header_calls = body_calls = date_calls = 0;
    assert_int_equal(run("BODY zebra FROM bob FLAGGED", 0, got, sizeof got, &err), IMAP_SEARCH_OK);
    assert_string_equal(got, "");
    assert_int_equal(header_calls, 2); /* only message 3 is flagged: its one From is read... */
    assert_int_equal(body_calls, 0);   /* ...and does not match, so no body is read */
    header_calls = body_calls = 0;
    assert_int_equal(run("OR BODY zebra ANSWERED", 0, got, sizeof got, &err), IMAP_SEARCH_OK);
    assert_string_equal(got, "2");
    assert_int_equal(body_calls, 4); /* message 2 was answered: its body is not read */
    header_calls = body_calls = date_calls = 0;
    assert_int_equal(run("SENTON 1-Feb-2026 UID 4", 0, got, sizeof got, &err), IMAP_SEARCH_OK);
    assert_string_equal(got, "2");
    assert_int_equal(date_calls, 1);
    body_calls = 0;
    assert_int_equal(run("BODY \"\" TEXT \"\"", 0, got, sizeof got, &err), IMAP_SEARCH_OK);
    assert_int_equal(body_calls, 0); /* an empty needle matches without reading */
}

static int failing_body(void *ctx, const char *needle, size_t len, int text)
{
    (void)ctx, (void)needle, (void)len, (void)text;
    return -1;
}

static void test_callback_error(void **state)
{
    (void)state;
    struct targs t = targs_make("NOT BODY x");
    struct imap_search *p;
    const char *err;
    assert_int_equal(imap_search_parse(t.args, t.n, 0, &p, &err), IMAP_SEARCH_OK);
    targs_free(&t);
    struct imap_search_env e = env;
    e.body_has = failing_body;
    struct imap_search_msg m = msg_of(0);
    assert_int_equal(imap_search_match(p, &e, &m), -1);
    e.body_has = NULL; /* no callback: the key does not match */
    assert_int_equal(imap_search_match(p, &e, &m), 1);
    imap_search_free(p);
}

static void test_dates(void **state)
{
    (void)state;
    int32_t d;
    assert_int_equal(imap_days_from_civil(1970, 1, 1), 0);
    assert_int_equal(imap_days_from_civil(2026, 2, 1), 1769904000 / 86400);
    assert_int_equal(imap_days_from_civil(1969, 12, 31), -1);
    assert_int_equal(imap_days_from_civil(2000, 3, 1) - imap_days_from_civil(2000, 2, 28), 2);
    assert_int_equal(imap_date_parse("1-Feb-2026", 10, &d), 0);
    assert_int_equal(d, imap_days_from_civil(2026, 2, 1));
    assert_int_equal(imap_date_parse("29-feb-2024", 11, &d), 0);
    assert_int_equal(imap_date_parse("29-Feb-1900", 11, &d), -1);
    assert_int_equal(imap_date_parse("29-Feb-2000", 11, &d), 0);
    assert_int_equal(imap_date_parse("31-DEC-9999", 11, &d), 0);
    assert_int_equal(imap_date_parse("1-Jan-0000", 10, &d), 0);
    assert_int_equal(imap_date_parse("31-Apr-2026", 11, &d), -1);
    assert_int_equal(imap_date_parse("1 Feb 2026", 10, &d), -1);
    assert_int_equal(imap_date_parse("1-Feb-2026 ", 11, &d), -1);
    assert_int_equal(imap_date_parse("", 0, &d), -1);
    assert_int_equal(imap_date_parse("-Feb-2026", 9, &d), -1);

    /* INTERNALDATE's day in UTC, before 1970 too. */
    struct targs t = targs_make("ON 31-Dec-1969");
    struct imap_search *p;
    const char *err;
    assert_int_equal(imap_search_parse(t.args, t.n, 0, &p, &err), IMAP_SEARCH_OK);
    targs_free(&t);
    struct imap_search_msg m = msg_of(0);
    m.internaldate = -1;
    assert_int_equal(imap_search_match(p, &env, &m), 1);
    m.internaldate = -86401;
    assert_int_equal(imap_search_match(p, &env, &m), 0);
    m.internaldate = 0;
    assert_int_equal(imap_search_match(p, &env, &m), 0);
    imap_search_free(p);
}

static void test_contains(void **state)
{
    (void)state;
    assert_true(imap_search_contains("Hello World", 11, "o w", 3));
    assert_true(imap_search_contains("Hello World", 11, "", 0));
    assert_true(imap_search_contains("", 0, "", 0));
    assert_false(imap_search_contains("", 0, "a", 1));
    assert_false(imap_search_contains("abc", 3, "abcd", 4));
    assert_true(imap_search_contains("a\0b", 3, "\0B", 2));
    assert_false(imap_search_contains("\xc3\xa9", 2, "\xc3\x89", 2));
    /* Across the 64 KiB windows, and a hostile needle against a large haystack. */
    enum { BIG = 300 * 1024 };
    char *hay = malloc(BIG);
    assert_non_null(hay);
    memset(hay, 'a', BIG);
    memcpy(hay + 64 * 1024 - 2, "XyZ", 3);
    assert_true(imap_search_contains(hay, BIG, "xyz", 3));
    memcpy(hay + BIG - 3, "END", 3);
    assert_true(imap_search_contains(hay, BIG, "aend", 4));
    char *needle = malloc(60000);
    memset(needle, 'a', 60000);
    needle[59999] = 'b';
    assert_false(imap_search_contains(hay, BIG, needle, 60000));
    memcpy(needle + 59997, "EDN", 3);
    assert_false(imap_search_contains(hay, BIG, needle, 60000));
    memcpy(needle + 59997, "END", 3);
    assert_true(imap_search_contains(hay, BIG, needle, 60000));
    free(needle);
    free(hay);
}

static void test_hostile(void **state)
{
    (void)state;
    char *text = malloc(64 * 1024);
    char got[128];
    const char *err;
    size_t n;
    /* Depth: IMAP_SEARCH_DEPTH_MAX - 1 NOTs pass, more are refused; the same for lists. */
    n = 0;
    for (int i = 0; i < IMAP_SEARCH_DEPTH_MAX - 1; i++)
        n += (size_t)sprintf(text + n, "NOT ");
    sprintf(text + n, "SEEN");
    assert_int_equal(run(text, 0, got, sizeof got, &err), IMAP_SEARCH_OK);
    assert_string_equal(got, "3 4");
    n = 0;
    for (int i = 0; i < 1000; i++)
        n += (size_t)sprintf(text + n, "NOT ");
    sprintf(text + n, "SEEN");
    assert_int_equal(run(text, 0, got, sizeof got, &err), IMAP_SEARCH_BAD);
    assert_string_equal(err, "Search nested too deep");
    n = 0;
    for (int i = 0; i < 200; i++)
        text[n++] = '(';
    n += (size_t)sprintf(text + n, "SEEN");
    for (int i = 0; i < 200; i++)
        text[n++] = ')';
    text[n] = '\0';
    assert_int_equal(run(text, 0, got, sizeof got, &err), IMAP_SEARCH_BAD);
    n = 0;
    for (int i = 0; i < 500; i++)
        n += (size_t)sprintf(text + n, "OR SEEN ");
    sprintf(text + n, "SEEN");
    assert_int_equal(run(text, 0, got, sizeof got, &err), IMAP_SEARCH_BAD);
    /* Many keys at one level: IMAP_SEARCH_KEYS_MAX bounds the program. */
    n = 0;
    for (int i = 0; i < 2000; i++)
        n += (size_t)sprintf(text + n, "SEEN ");
    assert_int_equal(run(text, 0, got, sizeof got, &err), IMAP_SEARCH_BAD);
    assert_string_equal(err, "Too many search keys");
    n = 0;
    for (int i = 0; i < 900; i++)
        n += (size_t)sprintf(text + n, "SEEN ");
    assert_int_equal(run(text, 0, got, sizeof got, &err), IMAP_SEARCH_OK);
    assert_string_equal(got, "1 2 5");
    free(text);

    /* A literal holding NUL: a string needle may (it is matched as bytes), a header name
     * may not. */
    struct imap_arg args[3] = {
        {.type = IMAP_ARG_ATOM, .s = "HEADER", .len = 6},
        {.type = IMAP_ARG_LITERAL, .s = "Fr\0om", .len = 5},
        {.type = IMAP_ARG_QUOTED, .s = "x", .len = 1},
    };
    struct imap_search *p;
    assert_int_equal(imap_search_parse(args, 3, 0, &p, &err), IMAP_SEARCH_BAD);
    struct imap_arg args2[2] = {
        {.type = IMAP_ARG_ATOM, .s = "BODY", .len = 4},
        {.type = IMAP_ARG_LITERAL, .s = "a\0b", .len = 3},
    };
    assert_int_equal(imap_search_parse(args2, 2, 0, &p, &err), IMAP_SEARCH_OK);
    imap_search_free(p);
    assert_int_equal(imap_search_parse(NULL, 0, 0, &p, &err), IMAP_SEARCH_BAD);
    assert_null(p);
}

/* An empty folder: '*' of either kind names no message; ALL on nothing is nothing. */
static void test_star_and_empty_folder(void **state)
{
    (void)state;
    static const char *const rows[] = {"*", "1:*", "UID *", "UID 1:*", "NOT NOT *"};
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        struct targs t = targs_make(rows[r]);
        struct imap_search *p;
        const char *err;
        assert_int_equal(imap_search_parse(t.args, t.n, 0, &p, &err), IMAP_SEARCH_OK);
        targs_free(&t);
        struct imap_search_env e = env;
        e.count = 0, e.max_uid = 0;
        struct imap_search_msg m = msg_of(0);
        m.seq = 0, m.uid = 0; /* nothing real: a fake message outside the folder */
        assert_int_equal(imap_search_match(p, &e, &m), 0);
        /* and the same program, asked with another '*' afterwards, re-resolves */
        e.count = 1, e.max_uid = 3;
        m = msg_of(0);
        assert_int_equal(imap_search_match(p, &e, &m), 1);
        imap_search_free(p);
    }
}

/* Through the real parser (parse.c), literals included. */
static void test_with_parser(void **state)
{
    (void)state;
    static const struct {
        const char *cmd;
        const char *seqs;
    } rows[] = {
        {"a SEARCH CHARSET UTF-8 SUBJECT {5}\r\nhello", "1 2"},
        {"a SEARCH OR (FROM alice) (TO alice) UNDELETED", "1 2"},
        {"a UID SEARCH UID 4:* NOT DELETED", "2 3 5"},
        {"a SEARCH HEADER \"List-Id\" \"list-\"", "2 4"},
        {"a SEARCH SINCE \"1-Feb-2026\" NOT FLAGGED", "2 4"},
    };
    char got[128];
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        struct imap_command cmd;
        const char *err = NULL;
        if (imap_parse_command(rows[r].cmd, strlen(rows[r].cmd), SIZE_MAX, 0, &cmd, &err) != 0)
            fail_msg("parse.c refused \"%s\": %s", rows[r].cmd, err);
        struct imap_search *p;
        if (imap_search_parse(cmd.args, cmd.nargs, 0, &p, &err) != IMAP_SEARCH_OK)
            fail_msg("\"%s\": %s", rows[r].cmd, err);
        size_t n = 0;
        got[0] = '\0';
        for (size_t i = 0; i < NMSG; i++) {
            struct imap_search_msg m = msg_of(i);
            if (imap_search_match(p, &env, &m) == 1)
                n += (size_t)snprintf(got + n, sizeof got - n, n ? " %zu" : "%zu", i + 1);
        }
        if (strcmp(got, rows[r].seqs) != 0)
            fail_msg("\"%s\": got \"%s\", want \"%s\"", rows[r].cmd, got, rows[r].seqs);
        imap_search_free(p);
        imap_command_free(&cmd);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_table),   cmocka_unit_test(test_refused_table),
        cmocka_unit_test(test_return_and_modseq), cmocka_unit_test(test_needs),
        cmocka_unit_test(test_cheap_first),  cmocka_unit_test(test_callback_error),
        cmocka_unit_test(test_dates),        cmocka_unit_test(test_contains),
        cmocka_unit_test(test_hostile),      cmocka_unit_test(test_star_and_empty_folder),
        cmocka_unit_test(test_with_parser),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
