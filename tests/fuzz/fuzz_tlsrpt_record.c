/* What a DNS answer can send the mta's TLSRPT code (common/tlsrpt_record.c): the input, cut at
 * NUL bytes, is up to 8 "_smtp._tls" TXT records. Checks: at most max URIs kept, each a
 * mailto: URI (as the record had it, shorter than its buffer) whose address decodes to one
 * plain ASCII local@domain without spaces, controls or the specials that would need quoting
 * in the report's To: field; the whole input as one URI too. */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "fuzz_common.h"
#include "tlsrpt_record.h"

static void check_addr(const char *a)
{
    size_t n = strnlen(a, PM_TLSRPT_ADDR_SIZE);
    FUZZ_CHECK(n > 0 && n < PM_TLSRPT_ADDR_SIZE);
    const char *at = strchr(a, '@');
    FUZZ_CHECK(at && at != a && at[1] && !strchr(at + 1, '@'));
    for (const char *p = a; *p; p++)
        FUZZ_CHECK((unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f && !strchr("<>()[]\\,;:\"", *p));
}

static void check_rua(char rua[][PM_TLSRPT_URI_SIZE], int n, int max)
{
    FUZZ_CHECK(n >= 0 && n <= max);
    for (int i = 0; i < n; i++) {
        size_t len = strnlen(rua[i], PM_TLSRPT_URI_SIZE);
        FUZZ_CHECK(len < PM_TLSRPT_URI_SIZE && strncasecmp(rua[i], "mailto:", 7) == 0);
        char addr[PM_TLSRPT_ADDR_SIZE];
        FUZZ_CHECK(pm_tlsrpt_mailto_addr(rua[i], len, addr, sizeof addr) == 0);
        check_addr(addr);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = fuzz_strndup(data, size);
    const char *texts[8];
    size_t n = 0;
    for (size_t i = 0, start = 0; i <= size && n < 8; i++)
        if (i == size || copy[i] == '\0') {
            texts[n++] = copy + start;
            start = i + 1;
        }
    char rua[PM_TLSRPT_MAX_RUA][PM_TLSRPT_URI_SIZE];
    int max = size ? 1 + data[0] % PM_TLSRPT_MAX_RUA : PM_TLSRPT_MAX_RUA;
    check_rua(rua, pm_tlsrpt_pick_record(texts, n, rua, max), max);
    int k = pm_tlsrpt_parse_record(texts[0], rua, max);
    FUZZ_CHECK(k >= -1);
    if (k > 0)
        check_rua(rua, k, max);
    char addr[PM_TLSRPT_ADDR_SIZE];
    if (pm_tlsrpt_mailto_addr((const char *)data, size, addr, sizeof addr) == 0)
        check_addr(addr);
    free(copy);
    return 0;
}
