/* `postmesh keys init|add|list|where`: the CurveZMQ keypairs of the bus participants. A key's
 * file name is its role (<role>.pub, or <role>.<replica>.pub for a replica with a key of its
 * own). `keys init` makes one pair per role for a single machine (and `run` calls it); `keys
 * add` makes one for a replica; `keys where` says which files each host needs, because each
 * process must hold only its own secret key. A service creates only its own pair if missing. */
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
    if (cli_mkdirs(dir, 0755) < 0) { /* public keys: readable, so a reader as the service user can list them */
        cli_error("%s: cannot create: %s", dir, strerror(errno));
        return -1;
    }
    int created = 0;
    for (const char *const *name = pm_keys_bus_names; *name; name++) {
        char path[4400], pub[PM_KEY_Z85], sec[PM_KEY_Z85];
        snprintf(path, sizeof path, "%s/%s.key", dir, *name);
        int existed = access(path, F_OK) == 0;
        if (!existed && pm_keys_public(dir, *name, pub) == 0) {
            /* Only the public key is here: its secret lives with that service elsewhere. */
            if (out)
                fprintf(out, "%s %s (public key only)\n", *name, pub);
            continue;
        }
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
            printf("%s %s %s\n", names[i], line, pm_role_of_key_name(names[i]) == PM_ROLE_NONE ? "(no role: not admitted)"
                                                                                           : pm_role_name(pm_role_of_key_name(names[i])));
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

/* The public keys a process of this role needs besides its own pair: the servers it
 * connects to; for a server, the keys of the roles it admits (its allowlist). */
static const char *needs(enum pm_role role)
{
    switch (role) {
    case PM_ROLE_QUEUE: return "smtpd*.pub mta*.pub delivery*.pub bouncer*.pub cli*.pub (who may connect)";
    case PM_ROLE_RESOLVER: return "smtpd*.pub mta*.pub (who may connect)";
    case PM_ROLE_SMTPD:
    case PM_ROLE_MTA: return "queue.pub resolver.pub";
    case PM_ROLE_DELIVERY:
    case PM_ROLE_BOUNCER:
    case PM_ROLE_CLI: return "queue.pub";
    default: return "nothing (does not speak on the bus)";
    }
}

static void print_where(FILE *out, const char *dir, const char *name)
{
    enum pm_role role = pm_role_of_key_name(name);
    fprintf(out, "%-18s %s/%s.key (its only secret key; 0600) + %s%s\n", name, dir, name, needs(role),
            strchr(name, '.') ? "; set bus.key_name" : "");
}

static int cmd_where(const char *dir)
{
    printf("each process's keys directory (bus.keys_dir) holds:\n");
    for (const char *const *n = pm_keys_bus_names; *n; n++)
        print_where(stdout, dir, *n);
    printf("a replica with its own key (`postmesh keys add smtpd.NAME`): its NAME.key, the same public keys,\n"
           "and its .pub on the queue and resolver hosts; deleting that .pub there revokes it within seconds\n");
    return CLI_OK;
}

static int cmd_add(const struct pm_config *cfg, const char *name)
{
    if (pm_role_of_key_name(name) == PM_ROLE_NONE || !strchr(name, '.')) {
        cli_error("%s: a replica key is named <role>.<replica> (replica: letters, digits, _ or -), e.g. smtpd.eu-1",
                  name);
        return CLI_USAGE;
    }
    char dir[4096], pub[PM_KEY_Z85], sec[PM_KEY_Z85];
    cli_keys_dir(cfg, dir, sizeof dir);
    if (cli_mkdirs(dir, 0755) < 0 || pm_keys_load_or_create(dir, name, pub, sec) < 0) {
        cli_error("%s/%s.key: cannot create or read", dir, name);
        return CLI_FAIL;
    }
    explicit_bzero(sec, sizeof sec);
    printf("%s %s\n", name, pub);
    print_where(stdout, dir, name);
    return CLI_OK;
}

int cli_cmd_keys(const struct pm_config *cfg, int argc, char **argv)
{
    char dir[4096];
    cli_keys_dir(cfg, dir, sizeof dir);
    if (argc == 2 && !strcmp(argv[1], "init"))
        return cli_keys_init(cfg, stdout) < 0 ? CLI_FAIL : CLI_OK;
    if (argc == 2 && !strcmp(argv[1], "list"))
        return list_keys(cfg);
    if (argc == 2 && !strcmp(argv[1], "where"))
        return cmd_where(dir);
    if (argc == 3 && !strcmp(argv[1], "add"))
        return cmd_add(cfg, argv[2]);
    cli_error("usage: postmesh keys init|list|where|add ROLE.REPLICA");
    return CLI_USAGE;
}
