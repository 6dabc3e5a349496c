/* The users file (common/users.c): the input is the file, loaded from a temp path as the
 * lookup helper loads users_file, and each line through pm_users_parse_line. When the whole
 * file loads, every address the line parser accepted must be found again (case-insensitively),
 * since that is what AUTH and RCPT checks ask. Password checks are left out: they cost a
 * yescrypt each and test libcrypt, not our parser. */
#include <ctype.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "users.h"

struct lines {
    struct pm_users *u; /* NULL: the file did not load */
    int entries;
};

static void one_line(const char *line, size_t len, void *arg)
{
    struct lines *l = arg;
    if (len > 4096 || memchr(line, '\0', len))
        return; /* the loader refuses these before the line parser sees them */
    char *copy = malloc(len + 2);
    memcpy(copy, line, len);
    copy[len] = '\n'; /* as getline() hands it over */
    copy[len + 1] = '\0';
    char *address = NULL, *hash = NULL;
    const char *reason = NULL;
    int r = pm_users_parse_line(copy, &address, &hash, &reason);
    FUZZ_CHECK(r >= -1 && r <= 1);
    if (r < 0)
        FUZZ_CHECK(reason && *reason && !address);
    if (r > 0) {
        FUZZ_CHECK(address && hash && strchr(address, '@') && hash[0] == '{');
        l->entries++;
        if (l->u) {
            FUZZ_CHECK(pm_users_exists(l->u, address));
            /* Lookups ignore case. */
            for (char *p = address; *p; p++)
                *p = (char)toupper((unsigned char)*p);
            FUZZ_CHECK(pm_users_exists(l->u, address));
        }
        free(address);
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write_file(data, size);
    char err[512] = "";
    struct lines l = {pm_users_load(path, err, sizeof err), 0};
    if (!l.u)
        FUZZ_CHECK(err[0] && strstr(err, path) == err);
    fuzz_lines(data, size, one_line, &l);
    if (l.u) {
        FUZZ_CHECK(!pm_users_exists(l.u, "nobody-at-all@nowhere.invalid") || memmem(data, size, "nobody", 6));
        FUZZ_CHECK(!pm_users_exists(l.u, NULL));
    }
    pm_users_free(l.u);
    return 0;
}
