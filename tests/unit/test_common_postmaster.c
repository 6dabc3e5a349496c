/* Which addresses are postmaster@ a local domain (RFC 5321 4.5.1: any case, every local
 * domain, nothing else): input address -> expected answer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "postmaster.h"

static void test_table(void **state)
{
    (void)state;
    static char *domains[] = {"example.test", "Other.Test", NULL};
    struct pm_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.domains.v = domains;
    cfg.domains.n = 2;
    static const struct {
        const char *address;
        int want;
    } rows[] = {
        {"postmaster@example.test", 1},
        {"PostMaster@EXAMPLE.test", 1},
        {"postmaster@other.test", 1},      /* domains compare case-insensitively */
        {"postmaster@remote.test", 0},     /* somebody else's postmaster */
        {"postmaster@sub.example.test", 0},
        {"postmasters@example.test", 0},
        {"apostmaster@example.test", 0},
        {"postmaster", 0},                 /* the bare form: smtpd names the domain first */
        {"postmaster@", 0},
        {"", 0},
        {NULL, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (pm_postmaster_is(&cfg, rows[i].address) != rows[i].want)
            fail_msg("%s: want %d", rows[i].address ? rows[i].address : "(null)", rows[i].want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_table)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
