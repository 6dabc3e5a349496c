/* What a policy host and a DNS answer can send the mta's MTA-STS code (mta/sts_policy.c). The
 * input (after byte 0) is a policy body, and also, cut at NUL bytes, up to 8 "_mta-sts" TXT
 * records; byte 0 picks a host name to match. Checks: an accepted policy has a known mode, a
 * max_age of at most a year, mx patterns that are lower-case host names (or "*." and one), at
 * least one unless mode none, and each matches itself (the wildcard: one label more) in any
 * case and with an ending dot; written back in canonical form it parses to the same policy.
 * An accepted TXT record's id is 1..32 letters and digits; a refused one leaves it empty. */
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "mta/sts_policy.h"

static int is_name_char(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'; }

static void check_policy(const struct mta_sts_policy *p)
{
    FUZZ_CHECK(p->mode == MTA_STS_MODE_NONE || p->mode == MTA_STS_MODE_TESTING || p->mode == MTA_STS_MODE_ENFORCE);
    FUZZ_CHECK(p->max_age <= MTA_STS_MAX_AGE_LIMIT);
    FUZZ_CHECK(p->nmx >= 0 && p->nmx <= MTA_STS_MAX_MX);
    FUZZ_CHECK(p->mode == MTA_STS_MODE_NONE || p->nmx >= 1);
    for (int i = 0; i < p->nmx; i++) {
        const char *m = p->mx[i];
        size_t n = strnlen(m, sizeof p->mx[i]);
        FUZZ_CHECK(n > 0 && n < sizeof p->mx[i]);
        const char *name = strncmp(m, "*.", 2) == 0 ? m + 2 : m;
        FUZZ_CHECK(*name && name[0] != '.' && name[strlen(name) - 1] != '.' && !strstr(name, ".."));
        for (const char *c = name; *c; c++)
            FUZZ_CHECK(is_name_char(*c));
        char host[300], upper[300];
        snprintf(host, sizeof host, "%s%s", name == m ? "" : "x.", name);
        FUZZ_CHECK(mta_sts_mx_matches(p, host));
        size_t k = 0;
        for (; host[k] && k < sizeof upper - 2; k++)
            upper[k] = host[k] >= 'a' && host[k] <= 'z' ? (char)(host[k] - 32) : host[k];
        upper[k++] = '.';
        upper[k] = '\0';
        FUZZ_CHECK(mta_sts_mx_matches(p, upper));
        if (name != m)
            FUZZ_CHECK(!mta_sts_pattern_matches(m, name)); /* the wildcard is one whole label */
    }
}

static void round_trip(const struct mta_sts_policy *p)
{
    static char text[MTA_STS_MAX_MX * 270 + 200];
    int len = snprintf(text, sizeof text, "version: STSv1\r\nmode: %s\r\nmax_age: %u\r\n", mta_sts_mode_name(p->mode),
                       p->max_age);
    for (int i = 0; i < p->nmx; i++)
        len += snprintf(text + len, sizeof text - (size_t)len, "mx: %s\r\n", p->mx[i]);
    struct mta_sts_policy q;
    memset(&q, 0, sizeof q);
    char why[200];
    FUZZ_CHECK(mta_sts_policy_parse(text, (size_t)len, &q, why, sizeof why) == 0);
    FUZZ_CHECK(q.mode == p->mode && q.max_age == p->max_age && q.nmx == p->nmx);
    for (int i = 0; i < p->nmx; i++)
        FUZZ_CHECK(strcmp(q.mx[i], p->mx[i]) == 0);
}

static void fuzz_txt(const uint8_t *data, size_t size)
{
    char *copy = fuzz_strndup(data, size);
    const char *texts[8];
    size_t n = 0;
    for (size_t i = 0, start = 0; i <= size && n < 8; i++)
        if (i == size || copy[i] == '\0') {
            texts[n++] = copy + start;
            start = i + 1;
        }
    char id[33], why[256];
    memset(id, 'x', sizeof id);
    int rc = mta_sts_txt_parse(texts, n, id, why, sizeof why);
    FUZZ_CHECK(rc >= -1 && rc <= 1);
    FUZZ_CHECK(strnlen(why, sizeof why) < sizeof why);
    if (rc == 1) {
        size_t k = strnlen(id, sizeof id);
        FUZZ_CHECK(k >= 1 && k <= 32);
        for (size_t i = 0; i < k; i++)
            FUZZ_CHECK((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' && id[i] <= 'Z') || (id[i] >= '0' && id[i] <= '9'));
    } else if (rc == -1) {
        FUZZ_CHECK(n == 0 || id[0] == '\0' || strstr(why, "TXT records"));
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const char *hosts[] = {"mx.example.test", "MX1.Example.Net.", "a.b.example.net", "example.net", ""};
    const char *host = hosts[data[0] % 5];
    data++;
    size--;

    struct mta_sts_policy p;
    memset(&p, 0, sizeof p);
    char why[256];
    int rc = mta_sts_policy_parse((const char *)data, size, &p, why, sizeof why);
    FUZZ_CHECK(rc == 0 || rc == -1);
    FUZZ_CHECK(strnlen(why, sizeof why) < sizeof why);
    if (rc == 0) {
        check_policy(&p);
        round_trip(&p);
        (void)mta_sts_mx_matches(&p, host);
    }
    fuzz_txt(data, size);
    /* The input's first line as a pattern against the picked host. */
    char pat[300];
    size_t k = 0;
    while (k < size && k < sizeof pat - 1 && data[k] != '\n') {
        pat[k] = (char)data[k];
        k++;
    }
    pat[k] = '\0';
    (void)mta_sts_pattern_matches(pat, host);
    return 0;
}
