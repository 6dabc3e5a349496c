/* `postmesh keys init|list`: the CurveZMQ keypairs of the bus participants. Servers create
 * missing pairs on their first start too; `keys init` does it ahead of time (and `run` calls
 * it) so the keys exist, owned by whoever installs, before any service drops its privileges. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "keys.h"
#include "log.h"

char *cli_keys_dir(const struct pm_config *cfg, char *dst, size_t size)
{
    if (cfg->bus.keys_dir && *cfg->bus.keys_dir)
        snprintf(dst, size, "%s", cfg->bus.keys_dir);
    else
        pm_config_state_path(cfg, "keys", dst, size);
    return dst;
}

int cli_keys_init(const struct pm_config *cfg, FILE *out)
{
    char dir[4096];
    cli_keys_dir(cfg, dir, sizeof dir);
    /* The default keys dir lives in state_dir: give that the mode `run` would. */
    if (!(cfg->bus.keys_dir && *cfg->bus.keys_dir) && cli_mkdirs(cfg->state_dir, 0750) < 0) {
        cli_error("%s: cannot create: %s", cfg->state_dir, strerror(errno));
        return -1;
    }
    if (cli_mkdirs(dir, 0755) < 0) {
        cli_error("%s: cannot create: %s", dir, strerror(errno));
        return -1;
    }
    int created = 0;
    for (const char *const *name = pm_keys_bus_names; *name; name++) {
        char path[4400], pub[PM_KEY_Z85], sec[PM_KEY_Z85];
        snprintf(path, sizeof path, "%s/%s.key", dir, *name);
        int existed = access(path, F_OK) == 0;
        if (pm_keys_load_or_create(dir, *name, pub, sec) < 0) {
            cli_error("%s: cannot create or read the keypair of %s", path, *name);
            return -1;
        }
        explicit_bzero(sec, sizeof sec);
        created += !existed;
        if (out)
            fprintf(out, "%s %s\n", *name, pub);
    }
    return created;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every *.pub in the keys dir: the services' own and any the operator added (the allowlist). */
static int list_keys(const struct pm_config *cfg)
{
    char dir[4096];
    cli_keys_dir(cfg, dir, sizeof dir);
    DIR *d = opendir(dir);
    if (!d) {
        cli_error("%s: %s (run `postmesh keys init`)", dir, strerror(errno));
        return CLI_FAIL;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".pub") != 0 || e->d_name[0] == '.')
            continue;
        if (n == cap) {
            char **nv = realloc(names, (cap = cap ? cap * 2 : 16) * sizeof *nv);
            if (!nv)
                break;
            names = nv;
        }
        if (!(names[n] = strndup(e->d_name, len - 4)))
            break;
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_names);
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        char path[4400], line[128] = "";
        snprintf(path, sizeof path, "%s/%s.pub", dir, names[i]);
        FILE *f = fopen(path, "re");
        int ok = f && fgets(line, sizeof line, f) && strcspn(line, "\r\n") == PM_KEY_Z85 - 1;
        if (f)
            fclose(f);
        line[strcspn(line, "\r\n")] = '\0';
        if (ok)
            printf("%s %s\n", names[i], line);
        else
            cli_error("%s: not a Z85 public key (40 characters)", path);
        bad += !ok;
        free(names[i]);
    }
    free(names);
    if (n == 0)
        cli_error("no keys in %s (run `postmesh keys init`)", dir);
    return n == 0 || bad ? CLI_FAIL : CLI_OK;
}

int cli_cmd_keys(const struct pm_config *cfg, int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "init"))
        return cli_keys_init(cfg, stdout) < 0 ? CLI_FAIL : CLI_OK;
    if (argc == 2 && !strcmp(argv[1], "list"))
        return list_keys(cfg);
    cli_error("usage: postmesh keys init|list");
    return CLI_USAGE;
}
