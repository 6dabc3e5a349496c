/* The SEARCH side of fuzz_imapd_command.c: a fake folder of FAKE_COUNT messages (UIDs
 * with gaps, flags, sizes and dates that differ) behind imapd/search.h's callbacks, and the
 * checks made on a parsed program: callbacks only as imap_search_needs() announced, match
 * results in range, a failing callback seen as -1, and NOT (keys) the exact complement. */
#ifndef FUZZ_IMAPD_SEARCH_H
#define FUZZ_IMAPD_SEARCH_H
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "fuzz_common.h"
#include "imapd/search.h"

#define FAKE_COUNT 6 /* messages of the fake folder */

static const uint32_t fake_uids[FAKE_COUNT] = {3, 4, 9, 10, 11, 4000000000u};

struct fake_msg {
    unsigned needs;
    int fail; /* the callbacks fail (a file vanished) */
};

static const char *const fake_headers[][2] = {
    {"Subject", "Re: Quarterly report =?utf-8?q?caf=C3=A9?="}, {"Subject", "second subject"},
    {"From", "Alice Example <alice@example.org>"}, {"To", "bob@example.net, Carol <carol@example.com>"},
    {"Cc", ""}, {"Message-ID", "<123@example.org>"}, {"X-Spam", "yes \xc3\xa9t\xc3\xa9"},
    {"Date", "Tue, 1 Dec 2026 10:00:00 +0100"},
};
static const char fake_body[] = "Hello Bob,\r\nthe report is attached.\r\n-- \r\nAlice\r\n";

static const char *fake_header(void *ctx, const char *name, size_t i, size_t *len)
{
    struct fake_msg *m = ctx;
    FUZZ_CHECK(m->needs & IMAP_SEARCH_NEED_HEADERS);
    FUZZ_CHECK(name != NULL);
    for (size_t k = 0; k < sizeof fake_headers / sizeof fake_headers[0]; k++)
        if (strcasecmp(fake_headers[k][0], name) == 0 && i-- == 0) {
            *len = strlen(fake_headers[k][1]);
            return fake_headers[k][1];
        }
    return NULL;
}

static int fake_sent_date(void *ctx, int *year, int *month, int *day)
{
    struct fake_msg *m = ctx;
    FUZZ_CHECK(m->needs & IMAP_SEARCH_NEED_HEADERS);
    if (m->fail)
        return -1;
    *year = 2026, *month = 12, *day = 1;
    return 1;
}

static int fake_body_has(void *ctx, const char *needle, size_t len, int text)
{
    struct fake_msg *m = ctx;
    FUZZ_CHECK(m->needs & IMAP_SEARCH_NEED_BODY);
    FUZZ_CHECK(len > 0);
    if (m->fail)
        return -1;
    if (text && imap_search_contains("Subject: second subject", 23, needle, len))
        return 1;
    return imap_search_contains(fake_body, sizeof fake_body - 1, needle, len);
}

static int fake_has_keyword(void *ctx, const char *keyword)
{
    (void)ctx;
    return strcasecmp(keyword, "$Forwarded") == 0 || strcmp(keyword, "Junk") == 0;
}

static struct imap_search *search_parse(const struct imap_arg *args, size_t n, unsigned opts)
{
    struct imap_search *p = NULL;
    const char *err = NULL;
    enum imap_search_status rc = imap_search_parse(args, n, opts, &p, &err);
    FUZZ_CHECK((rc == IMAP_SEARCH_OK) == (p != NULL));
    FUZZ_CHECK(rc == IMAP_SEARCH_OK || err != NULL);
    FUZZ_CHECK(rc >= IMAP_SEARCH_NOMEM && rc <= IMAP_SEARCH_OK);
    return p;
}

/* Matches of p over the fake folder, one bit per message (-1 for a failure). */
static int search_run(struct imap_search *p, int fail, int *bits)
{
    struct fake_msg fm = {.needs = imap_search_needs(p), .fail = fail};
    struct imap_search_env env = {.count = FAKE_COUNT, .max_uid = fake_uids[FAKE_COUNT - 1], .header = fake_header,
                                  .sent_date = fake_sent_date, .body_has = fake_body_has,
                                  .has_keyword = fake_has_keyword};
    *bits = 0;
    int failed = 0;
    for (uint32_t i = 0; i < FAKE_COUNT; i++) {
        struct imap_search_msg m = {.seq = i + 1, .uid = fake_uids[i], .flags = (i * 7) & 31, .recent = i & 1,
                                    .size = 100u << i, .internaldate = (time_t)1764547200 + (time_t)i * 86400 * 40,
                                    .modseq = i + 1, .ctx = &fm};
        int r = imap_search_match(p, &env, &m);
        FUZZ_CHECK(r >= -1 && r <= 1);
        FUZZ_CHECK(r >= 0 || fail);
        failed |= r < 0;
        *bits |= (r == 1) << i;
    }
    return failed ? -1 : 0;
}

static void check_search(const struct imap_arg *args, size_t n, unsigned opts)
{
    struct imap_search *p = search_parse(args, n, opts);
    if (!p)
        return;
    FUZZ_CHECK(!imap_search_is_esearch(p) || imap_search_returns(p) != 0);
    FUZZ_CHECK(!imap_search_is_esearch(p) || (opts & IMAP_SEARCH_OPT_ESEARCH));
    int bits, nbits;
    search_run(p, 0, &bits);
    search_run(p, 1, &nbits);
    imap_search_free(p);
    /* NOT (keys) is the complement, when the keys are only keys. */
    if (n && args[0].type == IMAP_ARG_ATOM && (imap_arg_is_atom(&args[0], "CHARSET") || imap_arg_is_atom(&args[0], "RETURN")))
        return;
    struct imap_arg wrap[2] = {{.type = IMAP_ARG_ATOM, .s = "NOT", .len = 3},
                               {.type = IMAP_ARG_LIST, .list = (struct imap_arg *)args, .n = n}};
    struct imap_search *np = search_parse(wrap, 2, opts);
    if (!np)
        return;
    int notbits;
    search_run(np, 0, &notbits);
    FUZZ_CHECK(notbits == (~bits & ((1 << FAKE_COUNT) - 1)));
    imap_search_free(np);
}

#endif
