/* `postmesh check`: permissions and privileges. The state dir holds the queue, the mail and
 * the bus keys; the users file holds password hashes; the services drop to unprivileged
 * users that must exist. And for each service: what it would run as. */
#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "runas.h"

#define CAP_NET_BIND_SERVICE_BIT 10

static int owner_ok(const struct stat *st) { return st->st_uid == 0 || st->st_uid == geteuid(); }

void cli_check_state_dir(struct cli_check_report *r, const struct pm_config *cfg)
{
    struct stat st;
    const char *dir = cfg->state_dir;
    if (stat(dir, &st) < 0) {
        if (errno == ENOENT)
            cli_check_line(r, "ok", "state_dir", "%s (created with mode 750 by `postmesh run`)", dir);
        else
            cli_check_line(r, "FAIL", "state_dir", "%s: %s", dir, strerror(errno));
        return;
    }
    unsigned mode = (unsigned)(st.st_mode & 0777);
    if (!S_ISDIR(st.st_mode))
        cli_check_line(r, "FAIL", "state_dir", "%s is not a directory", dir);
    else if (access(dir, W_OK | X_OK) < 0)
        cli_check_line(r, "FAIL", "state_dir", "%s is not writable by uid %d", dir, (int)geteuid());
    else if (mode & 0022)
        cli_check_line(r, "FAIL", "state_dir", "%s is writable by others (mode %03o): chmod 750", dir, mode);
    else if (!owner_ok(&st))
        cli_check_line(r, "FAIL", "state_dir", "%s is owned by uid %u, which could replace the queue and keys", dir,
                       (unsigned)st.st_uid);
    else if (mode & 0007)
        cli_check_line(r, "warn", "state_dir", "%s: others may look inside (mode %03o): chmod 750", dir, mode);
    else
        cli_check_line(r, "ok", "state_dir", "%s (mode %03o)", dir, mode);
}

void cli_check_users_file_mode(struct cli_check_report *r, const struct pm_config *cfg, int nusers)
{
    const char *path = cfg->users_file;
    struct stat st;
    if (stat(path, &st) < 0) {
        cli_check_line(r, "warn", "users", "%s does not exist: nobody can log in (add users with `postmesh user add`)",
                       path);
        return;
    }
    unsigned mode = (unsigned)(st.st_mode & 0777);
    if (mode & 0002)
        cli_check_line(r, "FAIL", "users", "%s is writable by everyone (mode %03o): chmod 640", path, mode);
    else if ((mode & 0004) && nusers > 0)
        cli_check_line(r, "FAIL", "users", "%s: %d password hashes readable by every local user (mode %03o): chmod 640",
                       path, nusers, mode);
    else if (mode & 0004)
        cli_check_line(r, "warn", "users", "%s: no users yet, but the file is world-readable (mode %03o): chmod 640",
                       path, mode);
    else if ((mode & 0020) || !owner_ok(&st))
        cli_check_line(r, "warn", "users", "%s: %d users; writable by others than root (mode %03o, uid %u)", path,
                       nusers, mode, (unsigned)st.st_uid);
    else
        cli_check_line(r, "ok", "users", "%s: %d users (mode %03o)", path, nusers, mode);
}

/* Every account the services drop to must exist and must not be root. */
void cli_check_accounts(struct cli_check_report *r)
{
    char found[1024] = "";
    size_t o = 0;
    int root = geteuid() == 0;
    for (const char *const *user = pm_runas_users; *user; user++) {
        struct passwd *pw = getpwnam(*user);
        if (!pw)
            cli_check_line(r, root ? "FAIL" : "warn", "accounts",
                           "user %s does not exist%s (scripts/install-deps.sh creates it, as root)", *user,
                           root ? ": services that drop to it will not start" : "; needed when started as root");
        else if (pw->pw_uid == 0 || pw->pw_gid == 0)
            cli_check_line(r, "FAIL", "accounts", "user %s has uid/gid 0: dropping to it drops nothing", *user);
        else if (o < sizeof found)
            o += (size_t)snprintf(found + o, sizeof found - o, "%s%s (%u)", o ? ", " : "", *user,
                                  (unsigned)pw->pw_uid);
    }
    if (*found)
        cli_check_line(r, "ok", "accounts", "%s", found);
}

/* Binding port needs root, CAP_NET_BIND_SERVICE, or a port at or above the unprivileged start. */
static int can_bind(unsigned port)
{
    if (geteuid() == 0)
        return 1;
    unsigned start = 1024;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_unprivileged_port_start", "re");
    if (f) {
        if (fscanf(f, "%u", &start) != 1)
            start = 1024;
        fclose(f);
    }
    if (port >= start)
        return 1;
    int capable = 0;
    char line[256];
    if ((f = fopen("/proc/self/status", "re"))) {
        uint64_t eff;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "CapEff: %" SCNx64, &eff) == 1)
                capable = (eff >> CAP_NET_BIND_SERVICE_BIT) & 1;
        fclose(f);
    }
    return capable;
}

static void check_ports(struct cli_check_report *r, const char *service, const struct pm_listenlist *l)
{
    for (int i = 0; i < l->n; i++) {
        const char *colon = strrchr(l->v[i].address, ':');
        unsigned port = colon ? (unsigned)strtoul(colon + 1, NULL, 10) : 0;
        if (port && !can_bind(port))
            cli_check_line(r, "FAIL", service, "cannot bind %s as uid %d: needs root or CAP_NET_BIND_SERVICE",
                           l->v[i].address, (int)geteuid());
    }
}

void cli_check_runas(struct cli_check_report *r, const struct pm_config *cfg, const char *service)
{
    const struct pm_runas *ra = pm_runas_find(service);
    if (!ra)
        return;
    char chroot_dir[4096], who[160];
    pm_runas_chroot(cfg, ra, chroot_dir, sizeof chroot_dir);
    struct passwd *pw = getpwnam(ra->user);
    if (pw)
        snprintf(who, sizeof who, "%s (uid %u)", ra->user, (unsigned)pw->pw_uid);
    else
        snprintf(who, sizeof who, "%s (no such user)", ra->user);
    if (geteuid() == 0 && ra->split)
        cli_check_line(r, "ok", service,
                       "runs as: parent root (binds ports, reads TLS key and users file); workers %s, chroot %s, "
                       "no_new_privs, seccomp",
                       who, chroot_dir);
    else if (geteuid() == 0)
        cli_check_line(r, "ok", service, "runs as: %s, chroot %s, no_new_privs, seccomp", who, chroot_dir);
    else {
        pw = getpwuid(geteuid());
        cli_check_line(r, "ok", service,
                       "runs as: uid %d (%s), no chroot (not root), no_new_privs, seccomp; as root: %s in %s",
                       (int)geteuid(), pw ? pw->pw_name : "?", who, chroot_dir);
    }
    if (!strcmp(service, "smtpd"))
        check_ports(r, service, &cfg->smtpd.listen);
    else if (!strcmp(service, "pop3d"))
        check_ports(r, service, &cfg->pop3d.listen);
}
