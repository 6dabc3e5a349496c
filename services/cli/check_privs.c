/* `postmesh check`: permissions and privileges. The state dir holds the queue, the mail and
 * the bus keys; the users file holds password hashes; the services drop to unprivileged
 * users that must exist. And for each service: what it would run as. */
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "runas.h"
#include "services.h"

#define CAP_NET_BIND_SERVICE_BIT 10


/* Without root the services refuse to start unless the configuration allows it. */
static void check_unprivileged(struct cli_check_report *r, const struct pm_config *cfg)
{
    if (geteuid() == 0)
        return;
    if (cfg->privsep.allow_unprivileged)
        cli_check_line(r, "warn", "privsep",
                       "not root and privsep.allow_unprivileged = true: every process runs as uid %d, no chroot "
                       "(development only)", (int)geteuid());
    else
        cli_check_line(r, "FAIL", "privsep",
                       "not root: the services refuse to start (run as root, or set privsep = { "
                       "allow_unprivileged = true; } for development)");
}

void cli_check_state_dir(struct cli_check_report *r, const struct pm_config *cfg)
{
    struct stat st;
    const char *dir = cfg->state_dir;
    check_unprivileged(r, cfg); /* once, with the state the services would share */
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

/* Every account the services drop to must exist, must not be root, and must be one
 * service's alone; the groups they share (the mail store's) must exist. */
void cli_check_accounts(struct cli_check_report *r)
{
    char found[1024] = "";
    size_t o = 0;
    int root = geteuid() == 0;
    for (const struct pm_runas *ra = pm_runas_table; ra->service; ra++) {
        struct passwd *pw = getpwnam(ra->user);
        if (!pw) {
            cli_check_line(r, root ? "FAIL" : "warn", "accounts",
                           "user %s does not exist%s (scripts/install-deps.sh creates it, as root)", ra->user,
                           root ? ": services that drop to it will not start" : "; needed when started as root");
            continue;
        }
        uid_t uid = pw->pw_uid; /* getpwnam's buffer is reused below */
        gid_t gid = pw->pw_gid;
        const struct pm_runas *other = NULL;
        for (const struct pm_runas *rb = pm_runas_table; rb < ra; rb++) {
            struct passwd *pb = getpwnam(rb->user);
            if (pb && pb->pw_uid == uid)
                other = rb;
        }
        if (uid == 0 || gid == 0)
            cli_check_line(r, "FAIL", "accounts", "user %s has uid/gid 0: dropping to it drops nothing", ra->user);
        else if (other)
            cli_check_line(r, "FAIL", "accounts", "users %s and %s share uid %u: each service needs its own",
                           other->user, ra->user, (unsigned)uid);
        else if (o < sizeof found)
            o += (size_t)snprintf(found + o, sizeof found - o, "%s%s (%u)", o ? ", " : "", ra->user, (unsigned)uid);
    }
    for (const struct pm_svc_group *g = pm_svc_groups; g->name; g++) {
        struct group *gr = getgrnam(g->name);
        if (!gr)
            cli_check_line(r, root ? "FAIL" : "warn", "accounts",
                           "group %s (%s) does not exist (scripts/install-deps.sh creates it, as root)", g->name,
                           g->description);
        else if (gr->gr_gid == 0)
            cli_check_line(r, "FAIL", "accounts", "group %s has gid 0", g->name);
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
    char chroot_dir[4096], who[200];
    pm_runas_chroot(cfg, ra, chroot_dir, sizeof chroot_dir);
    struct passwd *pw = getpwnam(ra->user);
    int n = pw ? snprintf(who, sizeof who, "%s (uid %u)", ra->user, (unsigned)pw->pw_uid)
               : snprintf(who, sizeof who, "%s (no such user)", ra->user);
    if (ra->group && n >= 0 && (size_t)n < sizeof who)
        snprintf(who + n, sizeof who - (size_t)n, " group %s", ra->group);
    const struct pm_svc *svc = pm_svc_find(service);
    const char *children = svc && svc->privsep == PM_SVC_SANDBOXES ? "sandboxes" : "job workers";
    if (geteuid() == 0 && ra->split)
        cli_check_line(r, "ok", service,
                       "runs as: parent root (keeps what needs root, supervises; users file lookups by a helper "
                       "as %s); %s %s, chroot %s, no_new_privs, seccomp profile %s",
                       pm_runas_find("auth")->user, children, who, chroot_dir, ra->seccomp.name);
    else if (geteuid() == 0)
        cli_check_line(r, "ok", service, "runs as: %s, chroot %s, no_new_privs, seccomp profile %s", who, chroot_dir,
                       ra->seccomp.name);
    else {
        pw = getpwuid(geteuid());
        cli_check_line(r, "ok", service,
                       "runs as: uid %d (%s), no chroot (not root), no_new_privs, seccomp profile %s; "
                       "as root: %s in %s",
                       (int)geteuid(), pw ? pw->pw_name : "?", ra->seccomp.name, who, chroot_dir);
    }
    if (!strcmp(service, "smtpd"))
        check_ports(r, service, &cfg->smtpd.listen);
    else if (!strcmp(service, "pop3d"))
        check_ports(r, service, &cfg->pop3d.listen);
    else if (!strcmp(service, "imapd"))
        check_ports(r, service, &cfg->imapd.listen);
}
