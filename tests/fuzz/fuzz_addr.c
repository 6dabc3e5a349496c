/* The address parser (common/addr.c) under every flag combination: the first byte picks
 * the flags, the rest is a path "<...>" (and, separately, a bare mailbox and a domain).
 * Beyond memory safety it checks the parser's own promises: a path ends at its '>', the
 * result is bounded and NUL-terminated, 8-bit octets only pass with PM_ADDR_UTF8, and an
 * accepted mailbox parses again to itself (what smtpd stores is what the queue re-reads). */
#include <stdint.h>
#include <string.h>

#include "addr.h"
#include "fuzz_common.h"

static void check_result(const struct pm_addr *a, int flags)
{
    size_t n = strnlen(a->address, sizeof a->address);
    FUZZ_CHECK(n < sizeof a->address);
    FUZZ_CHECK(n <= PM_ADDR_MAX_PATH - 2);
    FUZZ_CHECK(a->domain >= a->address && a->domain <= a->address + n);
    FUZZ_CHECK(a->local_len <= n);
    if (!(flags & PM_ADDR_UTF8))
        FUZZ_CHECK(!a->is_utf8);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK((unsigned char)a->address[i] >= 0x20 && a->address[i] != 0x7f);
}

/* A parsed mailbox, parsed again, is the same mailbox. */
static void reparse(const struct pm_addr *a, int flags)
{
    if (a->is_null || !*a->domain)
        return; /* "<>" and "<Postmaster>" are not mailboxes */
    struct pm_addr b;
    const char *why = NULL;
    size_t n = strlen(a->address);
    FUZZ_CHECK(a->address[a->local_len] == '@' && a->domain == a->address + a->local_len + 1);
    enum pm_addr_status st = pm_addr_parse_mailbox(a->address, n, flags, &b, &why);
    FUZZ_CHECK(st == PM_ADDR_OK);
    FUZZ_CHECK(strcmp(a->address, b.address) == 0 && a->local_len == b.local_len);
    FUZZ_CHECK(a->is_literal == b.is_literal && a->is_quoted == b.is_quoted && a->is_utf8 == b.is_utf8);
    FUZZ_CHECK(pm_addr_check_domain(b.domain, strlen(b.domain), flags & PM_ADDR_UTF8) == PM_ADDR_OK ||
               b.is_literal);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int flags = data[0] & (PM_ADDR_NULL_OK | PM_ADDR_UTF8 | PM_ADDR_STRICT | PM_ADDR_POSTMASTER);
    /* Heap copies of exactly the given length: a read past the end is an ASan report. */
    size_t len = size - 1;
    char *s = malloc(len ? len : 1);
    memcpy(s, data + 1, len);

    struct pm_addr a;
    const char *why = NULL;
    size_t consumed = 0;
    enum pm_addr_status st = pm_addr_parse_path(s, len, flags, &a, &consumed, &why);
    if (st == PM_ADDR_OK) {
        FUZZ_CHECK(consumed >= 2 && consumed <= len && consumed <= PM_ADDR_MAX_PATH);
        FUZZ_CHECK(s[0] == '<' && s[consumed - 1] == '>');
        check_result(&a, flags);
        if (a.is_null)
            FUZZ_CHECK((flags & PM_ADDR_NULL_OK) && consumed == 2);
        if (flags & PM_ADDR_STRICT)
            FUZZ_CHECK(!a.had_route);
        reparse(&a, flags);
    } else {
        FUZZ_CHECK(why != NULL && *why);
    }

    why = NULL;
    st = pm_addr_parse_mailbox(s, len, flags, &a, &why);
    if (st == PM_ADDR_OK) {
        check_result(&a, flags);
        FUZZ_CHECK(strlen(a.address) == len && memcmp(a.address, s, len) == 0);
        reparse(&a, flags);
    } else {
        FUZZ_CHECK(why != NULL && *why);
    }

    st = pm_addr_check_domain(s, len, flags & PM_ADDR_UTF8);
    if (st == PM_ADDR_OK) {
        FUZZ_CHECK(len > 0 && len <= PM_ADDR_MAX_DOMAIN && s[0] != '.' && s[len - 1] != '.' && s[len - 1] != '-');
        for (size_t i = 0; i < len; i++)
            FUZZ_CHECK((unsigned char)s[i] >= 0x80 ? (flags & PM_ADDR_UTF8) != 0 : s[i] != '@' && s[i] != ' ');
    }

    for (size_t i = 0; i < len;) {
        size_t n = pm_addr_utf8_len((const unsigned char *)s + i, len - i);
        FUZZ_CHECK(n <= 4 && n <= len - i);
        i += n ? n : 1;
    }
    free(s);
    return 0;
}
