/* The aliases file (common/aliases.c): the input is the file, loaded from a temp path as the
 * queue and the lookup helper load aliases_file; then the words of the input (alias names,
 * targets, anything) are expanded as RCPT addresses are, in a config with two local domains.
 * Checks what the queue relies on: an expansion either fails and leaves the list as it was,
 * or adds bounded, non-empty, distinct addresses. */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "aliases.h"
#include "fuzz_common.h"

#define MAX_WORDS 24 /* expansions per input: each may walk 10,000 lookups */

static char *domains[] = {"example.test", "Other.TEST"};
static struct pm_config cfg = {.domains = {domains, 2}};

static void expand_one(const struct pm_aliases *a, const char *address)
{
    struct pm_strlist out = {NULL, 0};
    char err[512] = "";
    /* One address already in the list, as the queue expands RCPT after RCPT into one list. */
    char **v = malloc(2 * sizeof *v);
    v[0] = strdup("already@example.test");
    v[1] = NULL;
    out.v = v;
    out.n = 1;
    int rc = pm_aliases_expand(a, &cfg, address, &out, err, sizeof err);
    if (rc < 0) {
        FUZZ_CHECK(err[0]);
        FUZZ_CHECK(out.n == 1 && strcmp(out.v[0], "already@example.test") == 0 && out.v[1] == NULL);
    } else {
        FUZZ_CHECK(rc == 0 && out.n >= 1 && out.n <= 1 + 1000);
        FUZZ_CHECK(out.v[out.n] == NULL);
        for (int i = 1; i < out.n; i++) {
            /* What the queue stores as a recipient: a bare local part or local@domain, never
             * "" or "@domain" (the loader refuses those as names and targets). */
            const char *v = out.v[i], *at = strrchr(v, '@');
            if (strcasecmp(v, address) != 0) /* not an alias: itself, whatever it is */
                FUZZ_CHECK(*v && (!at || (at != v && at[1] != '\0')));
            for (int k = 0; k < i && out.n <= 64; k++)
                FUZZ_CHECK(strcasecmp(out.v[i], out.v[k]) != 0);
        }
    }
    for (int i = 0; i < out.n; i++)
        free(out.v[i]);
    free(out.v);
    (void)pm_aliases_is_alias(a, &cfg, address);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write_file(data, size);
    char err[512] = "";
    struct pm_aliases *a = pm_aliases_load(path, err, sizeof err);
    if (!a) {
        FUZZ_CHECK(err[0] && strstr(err, path) == err);
        return 0;
    }
    char *text = fuzz_strndup(data, size);
    char *save = NULL;
    int words = 0;
    for (char *w = strtok_r(text, " \t\r\n,:", &save); w && words < MAX_WORDS; w = strtok_r(NULL, " \t\r\n,:", &save)) {
        expand_one(a, w);
        words++;
    }
    if (words == 0)
        expand_one(a, "alice@example.test");
    free(text);
    pm_aliases_free(a);
    return 0;
}
