#include "keys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "log.h"

static int mkdir_p(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(buf, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

const char *const pm_keys_bus_names[] = {"queue", "resolver", "smtpd", "mta", "delivery",
                                         "bouncer", "pop3d", "cli", NULL};

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
    /* link() fails if another process created the file first: theirs wins, ours goes. */
    if (ok && link(tmp, path) < 0 && errno != EEXIST)
        ok = 0;
    unlink(tmp);
    return ok ? 0 : -1;
}

static int read_line(const char *path, int lineno, char out[PM_KEY_Z85])
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    char line[128];
    int rc = -1;
    for (int i = 0; i <= lineno && fgets(line, sizeof line, f); i++) {
        if (i == lineno && strlen(line) >= 40) {
            memcpy(out, line, 40);
            out[40] = '\0';
            rc = 0;
        }
    }
    fclose(f);
    return rc;
}

int pm_keys_load_or_create(const char *dir, const char *name, char pub[PM_KEY_Z85], char sec[PM_KEY_Z85])
{
    char keypath[4096], pubpath[4096];
    snprintf(keypath, sizeof keypath, "%s/%s.key", dir, name);
    snprintf(pubpath, sizeof pubpath, "%s/%s.pub", dir, name);
    if (read_line(keypath, 0, pub) == 0 && read_line(keypath, 1, sec) == 0)
        return 0;
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
    if (write_file(keypath, text, 0600) < 0) {
        pm_log(PM_ERR, "event=keys_error path=%s error=\"%s\"", keypath, strerror(errno));
        return -1;
    }
    /* Re-read: a concurrent creator may have won the race. */
    if (read_line(keypath, 0, pub) < 0 || read_line(keypath, 1, sec) < 0)
        return -1;
    snprintf(text, sizeof text, "%s\n", pub);
    unlink(pubpath);
    if (write_file(pubpath, text, 0644) < 0 && errno != EEXIST)
        return -1;
    pm_log(PM_INFO, "event=keys_created name=%s path=%s", name, keypath);
    return 0;
}

int pm_keys_public(const char *dir, const char *name, char pub[PM_KEY_Z85])
{
    char path[4096], sec[PM_KEY_Z85];
    snprintf(path, sizeof path, "%s/%s.pub", dir, name);
    if (read_line(path, 0, pub) == 0)
        return 0;
    return pm_keys_load_or_create(dir, name, pub, sec);
}

/* The allowlist is read once (before a chroot hides the directory) and re-read on demand
 * through a descriptor of the directory kept from the first read, so a key added later is
 * found even from inside the queue's chroot. */
static unsigned char (*allowed)[32];
static size_t nallowed;
static int allow_dirfd = -1;
static char allow_dir[4096];
static struct timespec allow_mtime; /* of the directory when last read */

static int read_line_at(int dirfd, const char *name, char out[PM_KEY_Z85])
{
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    char line[64];
    ssize_t n = read(fd, line, sizeof line);
    close(fd);
    if (n < 40)
        return -1;
    memcpy(out, line, 40);
    out[40] = '\0';
    return 0;
}

int pm_keys_load_allowlist(const char *dir)
{
    if (allow_dirfd < 0 || strcmp(allow_dir, dir) != 0) {
        int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            return -1;
        if (allow_dirfd >= 0)
            close(allow_dirfd);
        allow_dirfd = fd;
        snprintf(allow_dir, sizeof allow_dir, "%s", dir);
    }
    struct stat st;
    if (fstat(allow_dirfd, &st) == 0)
        allow_mtime = st.st_mtim;
    int lfd = openat(allow_dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = lfd >= 0 ? fdopendir(lfd) : NULL;
    if (!d) {
        if (lfd >= 0)
            close(lfd);
        return -1;
    }
    size_t n = 0, cap = 16;
    unsigned char (*list)[32] = malloc(cap * 32);
    struct dirent *e;
    while (list && (e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".pub") != 0)
            continue;
        char z85[PM_KEY_Z85];
        if (n == cap) {
            unsigned char (*nl)[32] = realloc(list, (cap *= 2) * 32);
            if (!nl)
                break;
            list = nl;
        }
        if (read_line_at(dirfd(d), e->d_name, z85) == 0 && zmq_z85_decode(list[n], z85))
            n++;
    }
    closedir(d);
    if (!list)
        return -1;
    free(allowed);
    allowed = list;
    nallowed = n;
    return (int)n;
}

int pm_keys_is_allowed(const char *dir, const unsigned char key[32])
{
    for (size_t i = 0; i < nallowed; i++)
        if (memcmp(allowed[i], key, 32) == 0)
            return 1;
    /* Unknown: the operator may have added a key since; look again, but only if the directory
     * changed (a stream of bad handshakes must not turn into a stream of directory reads). */
    struct stat st;
    if (allow_dirfd >= 0 && strcmp(allow_dir, dir) == 0 && fstat(allow_dirfd, &st) == 0 &&
        st.st_mtim.tv_sec == allow_mtime.tv_sec && st.st_mtim.tv_nsec == allow_mtime.tv_nsec)
        return 0;
    if (pm_keys_load_allowlist(dir) < 0)
        return 0;
    for (size_t i = 0; i < nallowed; i++)
        if (memcmp(allowed[i], key, 32) == 0)
            return 1;
    return 0;
}
