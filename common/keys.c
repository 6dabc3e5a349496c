#include "keys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "log.h"
#include "privsep.h"

static const char *const role_names[PM_ROLE_COUNT] = {
    [PM_ROLE_NONE] = "none",         [PM_ROLE_SMTPD] = "smtpd",     [PM_ROLE_QUEUE] = "queue",
    [PM_ROLE_RESOLVER] = "resolver", [PM_ROLE_MTA] = "mta",         [PM_ROLE_DELIVERY] = "delivery",
    [PM_ROLE_BOUNCER] = "bouncer",   [PM_ROLE_POP3D] = "pop3d",     [PM_ROLE_IMAPD] = "imapd",
    [PM_ROLE_CLI] = "cli",
};

/* The rows of services.def with a key of their own (the cli's too, which `postmesh run`
 * never starts); pop3d has a role but no key: it does not speak on the bus (yet). */
#define PM_SVC_KEYNAME_KEY(name) name,
#define PM_SVC_KEYNAME_NOKEY(name)
#define PM_SVC(name, role, user, uid, group, chroot, privsep, start, key, seccomp, connects, description) \
    PM_SVC_KEYNAME_##key(name)
const char *const pm_keys_bus_names[] = {
#include "services.def"
    NULL,
};

const char *pm_role_name(enum pm_role r)
{
    return r > PM_ROLE_NONE && r < PM_ROLE_COUNT ? role_names[r] : "none";
}

enum pm_role pm_role_of_key_name(const char *name)
{
    size_t rlen = strcspn(name, ".");
    const char *replica = name[rlen] == '.' ? name + rlen + 1 : NULL;
    if (replica) {
        size_t n = strspn(replica, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-");
        if (n == 0 || n > 40 || replica[n] != '\0')
            return PM_ROLE_NONE;
    }
    for (int r = PM_ROLE_NONE + 1; r < PM_ROLE_COUNT; r++)
        if (strlen(role_names[r]) == rlen && strncmp(role_names[r], name, rlen) == 0)
            return (enum pm_role)r;
    return PM_ROLE_NONE;
}

/* The parents as state (0750); the keys directory itself 0755: public keys, listed by the
 * reader that runs as the service's user. */
static int mkdir_p(const char *path)
{
    char parent[4096];
    snprintf(parent, sizeof parent, "%s", path);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = '\0';
        if (pm_privsep_mkdirs(parent, 0750) < 0)
            return -1;
    }
    return mkdir(path, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

static void sync_dir(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else
        slash[slash == dir ? 1 : 0] = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

static int write_file(const char *path, const char *text, mode_t mode)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return -1;
    size_t len = strlen(text);
    int ok = write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
    close(fd);
    /* Whole or not at all: written and synced under a temporary name (not *.pub, so the
     * allowlist never reads it), then linked in. link() fails if another process created the
     * file first: theirs wins, ours goes. */
    if (ok && link(tmp, path) < 0 && errno != EEXIST)
        ok = 0;
    int e = errno;
    unlink(tmp);
    sync_dir(path); /* the new name survives a crash, as the content does */
    errno = e;
    return ok ? 0 : -1;
}

/* Line lineno (0-based) of path, which must be exactly one Z85 key. Follows symlinks (a
 * Kubernetes Secret volume presents every file as one). */
static int read_line(const char *path, int lineno, char out[PM_KEY_Z85])
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    char line[128];
    int rc = -1;
    for (int i = 0; i <= lineno && fgets(line, sizeof line, f); i++) {
        if (i == lineno && strcspn(line, "\r\n") == PM_KEY_Z85 - 1) {
            memcpy(out, line, PM_KEY_Z85 - 1);
            out[PM_KEY_Z85 - 1] = '\0';
            rc = 0;
        }
    }
    explicit_bzero(line, sizeof line);
    fclose(f);
    return rc;
}

/* A secret key file nobody else may rewrite or read: not group/world writable, not world
 * readable (a Secret mounted 0440 for an fsGroup is fine), owned by root or by us. */
static int secret_file_ok(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return -1;
    if (!S_ISREG(st.st_mode) || (st.st_mode & 0026) || (st.st_uid != 0 && st.st_uid != geteuid())) {
        pm_log(PM_ERR, "event=keys_error path=%s reason=\"secret key must be a file of root or us, mode 0600 or 0640\" "
               "mode=%03o uid=%u", path, (unsigned)(st.st_mode & 0777), (unsigned)st.st_uid);
        errno = EPERM;
        return -1;
    }
    return 0;
}

int pm_keys_load_or_create(const char *dir, const char *name, char pub[PM_KEY_Z85], char sec[PM_KEY_Z85])
{
    char keypath[4096], pubpath[4096];
    snprintf(keypath, sizeof keypath, "%s/%s.key", dir, name);
    snprintf(pubpath, sizeof pubpath, "%s/%s.pub", dir, name);
    if (access(keypath, F_OK) == 0) {
        if (secret_file_ok(keypath) < 0)
            return -1;
        if (read_line(keypath, 0, pub) == 0 && read_line(keypath, 1, sec) == 0)
            return 0;
        pm_log(PM_ERR, "event=keys_error path=%s reason=\"not two Z85 lines (public, secret)\"", keypath);
        return -1; /* never replace a corrupt key: peers may know its public half */
    }
    if (access(pubpath, F_OK) == 0) {
        /* The public half is known here (copied from the host that holds the secret): a new
         * pair would silently replace an identity peers admit. */
        pm_log(PM_ERR, "event=keys_error path=%s reason=\"%s.pub is here but not %s.key: copy the secret key, or "
               "remove the .pub to make a new pair\"", keypath, name, name);
        errno = EEXIST;
        return -1;
    }
    if (mkdir_p(dir) < 0) {
        pm_log(PM_ERR, "event=keys_error path=%s error=\"%s\"", dir, strerror(errno));
        return -1;
    }
    char text[128];
    if (zmq_curve_keypair(pub, sec) < 0) {
        pm_log(PM_ERR, "event=keys_error error=\"no CURVE support in libzmq\"");
        return -1;
    }
    snprintf(text, sizeof text, "%s\n%s\n", pub, sec);
    int rc = write_file(keypath, text, 0600);
    explicit_bzero(text, sizeof text);
    if (rc < 0) {
        pm_log(PM_ERR, "event=keys_error path=%s error=\"%s\"", keypath, strerror(errno));
        return -1;
    }
    /* Re-read: a concurrent creator may have won the race. */
    if (read_line(keypath, 0, pub) < 0 || read_line(keypath, 1, sec) < 0)
        return -1;
    snprintf(text, sizeof text, "%s\n", pub);
    if (write_file(pubpath, text, 0644) < 0 && errno != EEXIST)
        return -1;
    pm_log(PM_INFO, "event=keys_created name=%s path=%s", name, keypath);
    return 0;
}

int pm_keys_public(const char *dir, const char *name, char pub[PM_KEY_Z85])
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.pub", dir, name);
    return read_line(path, 0, pub);
}
