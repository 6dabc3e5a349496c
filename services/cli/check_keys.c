/* `postmesh check`: the CurveZMQ keys. Whoever can write the keys directory decides who may
 * speak on the bus, and whoever can read a .key file can impersonate that service, so the
 * modes matter as much as the contents. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "check.h"
#include "cli.h"
#include "keys.h"

#define KEY_LEN (PM_KEY_Z85 - 1)

/* The first two lines of path, each exactly one Z85 key. Returns how many were read. */
static int read_keys(const char *path, char first[PM_KEY_Z85], char second[PM_KEY_Z85])
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    char line[128];
    int n = 0;
    char *dst[2] = {first, second};
    while (n < 2 && fgets(line, sizeof line, f)) {
        if (strcspn(line, "\r\n") != KEY_LEN)
            break;
        memcpy(dst[n], line, KEY_LEN);
        dst[n][KEY_LEN] = '\0';
        n++;
    }
    fclose(f);
    explicit_bzero(line, sizeof line);
    return n;
}


/* One service's pair: <name>.key (public, secret; 0600) and <name>.pub matching it. */
static int check_pair(struct cli_check_report *r, const char *dir, const char *name)
{
    char keypath[4400], pubpath[4400], pub[PM_KEY_Z85], sec[PM_KEY_Z85], derived[PM_KEY_Z85], pubfile[PM_KEY_Z85];
    snprintf(keypath, sizeof keypath, "%s/%s.key", dir, name);
    snprintf(pubpath, sizeof pubpath, "%s/%s.pub", dir, name);
    struct stat st;
    if (stat(keypath, &st) < 0) {
        cli_check_line(r, errno == ENOENT ? "warn" : "FAIL", "keys", "%s: %s (`postmesh keys init` creates it)",
                       keypath, strerror(errno));
        return -1;
    }
    if (st.st_mode & 0077) {
        cli_check_line(r, "FAIL", "keys", "%s: secret key readable by others (mode %03o): chmod 600", keypath,
                       (unsigned)(st.st_mode & 0777));
        return -1;
    }
    if (!owner_ok(&st)) {
        cli_check_line(r, "FAIL", "keys", "%s: owned by uid %u, not root or us", keypath, (unsigned)st.st_uid);
        return -1;
    }
    int n = read_keys(keypath, pub, sec);
    if (n < 0) {
        cli_check_line(r, "FAIL", "keys", "%s: cannot read as uid %d: %s", keypath, (int)geteuid(), strerror(errno));
        return -1;
    }
    int ok = n == 2 && zmq_curve_public(derived, sec) == 0 && strcmp(derived, pub) == 0;
    explicit_bzero(sec, sizeof sec);
    if (!ok) {
        cli_check_line(r, "FAIL", "keys", "%s: not a CurveZMQ keypair (public and secret Z85 lines that belong together)",
                       keypath);
        return -1;
    }
    if (stat(pubpath, &st) < 0 || read_keys(pubpath, pubfile, derived) < 1 || strcmp(pubfile, pub) != 0) {
        cli_check_line(r, "FAIL", "keys", "%s: missing or does not match %s.key (peers would expect another key)",
                       pubpath, name);
        return -1;
    }
    if ((st.st_mode & 0022) || !owner_ok(&st)) {
        cli_check_line(r, "FAIL", "keys", "%s: writable by others (mode %03o, uid %u)", pubpath,
                       (unsigned)(st.st_mode & 0777), (unsigned)st.st_uid);
        return -1;
    }
    return 0;
}

static int is_bus_name(const char *name, size_t len)
{
    for (const char *const *n = pm_keys_bus_names; *n; n++)
        if (strlen(*n) == len && strncmp(*n, name, len) == 0)
            return 1;
    return 0;
}

/* *.pub files that are no service's own: clients the operator admitted. Each is printed, so
 * the operator sees exactly who may connect. Returns how many usable keys there are. */
static int check_extra_keys(struct cli_check_report *r, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".pub") != 0 || is_bus_name(e->d_name, len - 4))
            continue;
        char path[4400], pub[PM_KEY_Z85], unused[PM_KEY_Z85];
        uint8_t bin[32];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        char name[PM_KEY_NAME];
        snprintf(name, sizeof name, "%.*s", (int)(len - 4), e->d_name);
        if (pm_role_of_key_name(name) == PM_ROLE_NONE) {
            cli_check_line(r, "warn", "keys", "%s: name is not <role>.pub or <role>.<replica>.pub: not admitted", path);
        } else if (read_keys(path, pub, unused) < 1 || !zmq_z85_decode(bin, pub)) {
            cli_check_line(r, "warn", "keys", "%s: not a Z85 public key: ignored by the allowlist", path);
        } else if (stat(path, &st) == 0 && ((st.st_mode & 0022) || !owner_ok(&st))) {
            cli_check_line(r, "FAIL", "keys", "%s: writable by others (mode %03o, uid %u)", path,
                           (unsigned)(st.st_mode & 0777), (unsigned)st.st_uid);
        } else {
            cli_check_line(r, "ok", "keys", "%s: also admitted on the bus as %s (%s)", path,
                           pm_role_name(pm_role_of_key_name(name)), pub);
            n++;
        }
    }
    closedir(d);
    return n;
}

static int has_tcp_endpoint(const struct pm_config *cfg)
{
    /* Every shard, and the binds too: a bind on all interfaces is reachable however clients name it. */
    const struct pm_strlist *lists[] = {&cfg->queue.endpoints, &cfg->queue.controls};
    for (size_t l = 0; l < 2; l++)
        for (int i = 0; i < lists[l]->n; i++)
            if (strncmp(lists[l]->v[i], "tcp://", 6) == 0)
                return 1;
    const char *eps[] = {cfg->queue.listen, cfg->queue.control_listen, cfg->resolver.endpoint, cfg->resolver.listen};
    for (size_t i = 0; i < sizeof eps / sizeof eps[0]; i++)
        if (eps[i] && strncmp(eps[i], "tcp://", 6) == 0)
            return 1;
    return 0;
}

void cli_check_keys(struct cli_check_report *r, const struct pm_config *cfg)
{
    char dir[4096];
    cli_keys_dir(cfg, dir, sizeof dir);
    if (!cfg->bus.curve) {
        cli_check_line(r, has_tcp_endpoint(cfg) ? "warn" : "ok", "keys",
                       "bus.curve = false: whoever reaches a tcp:// bus endpoint can submit mail and take jobs");
        return;
    }
    struct stat st;
    if (stat(dir, &st) < 0) {
        cli_check_line(r, errno == ENOENT ? "ok" : "FAIL", "keys", "%s: %s", dir,
                       errno == ENOENT ? "none yet (created by `postmesh keys init`, `run` or a first start)"
                                       : strerror(errno));
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        cli_check_line(r, "FAIL", "keys", "%s is not a directory", dir);
        return;
    }
    if ((st.st_mode & 0022) || !owner_ok(&st)) {
        cli_check_line(r, "FAIL", "keys", "%s: writable by others (mode %03o, uid %u): they could admit any key", dir,
                       (unsigned)(st.st_mode & 0777), (unsigned)st.st_uid);
        return;
    }
    int good = 0, total = 0;
    for (const char *const *n = pm_keys_bus_names; *n; n++, total++)
        good += check_pair(r, dir, *n) == 0;
    int extra = check_extra_keys(r, dir);
    if (good == total)
        cli_check_line(r, "ok", "keys", "%s: %d service keypairs (secret keys 0600), %d more admitted", dir, good,
                       extra);
}
