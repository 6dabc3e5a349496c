#include "mailstore.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "addr.h"
#include "privsep.h"

int pm_mailstore_component(const char *in, size_t len, char *dst, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (len == 0 || size == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        int keep = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '+' || c == '=' ||
                   c == '-' || (c == '.' && i > 0);
        if (keep) {
            if (o + 1 >= size)
                return -1;
            dst[o++] = (char)c;
        } else {
            if (o + 3 >= size)
                return -1;
            dst[o++] = '%';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 15];
        }
    }
    dst[o] = '\0';
    return 0;
}

int pm_mailstore_split(const char *address, char *local, size_t localsize, char *domain, size_t domainsize)
{
    const char *dom = pm_addr_domain(address);
    if (!*dom) /* no '@', or nothing after it */
        return -1;
    return pm_mailstore_component(address, (size_t)(dom - 1 - address), local, localsize) < 0 ||
                   pm_mailstore_component(dom, strlen(dom), domain, domainsize) < 0
               ? -1
               : 0;
}

int pm_mailstore_maildir(const struct pm_config *cfg, const char *address, char *dst, size_t size)
{
    char local[256], domain[512];
    if (pm_mailstore_split(address, local, sizeof local, domain, sizeof domain) < 0)
        return -1;
    int n = snprintf(dst, size, "%s/mail/%s/%s/Maildir", cfg->state_dir, domain, local);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

int pm_mailstore_fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

/* mkdir that fsyncs the parent when it created something, so the new entry survives a crash.
 * 0770: the store's group (delivery writes, pop3d renames and deletes) needs all of it; the
 * sandboxed writers run with umask 007. */
static int make_dir(char *path)
{
    if (mkdir(path, 0770) == 0) {
        char *slash = strrchr(path, '/');
        if (!slash)
            return pm_mailstore_fsync_dir(".");
        if (slash == path)
            return 0;
        *slash = '\0';
        int rc = pm_mailstore_fsync_dir(path);
        *slash = '/';
        return rc;
    }
    if (errno != EEXIST)
        return -1;
    return pm_privsep_is_dir(path);
}

int pm_mailstore_create(const char *maildir)
{
    char path[4096];
    size_t len = strlen(maildir);
    if (len + 5 >= sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(path, maildir, len + 1);
    struct stat st;
    if (stat(path, &st) < 0) {
        /* Walk down from the top so every missing level is created (and made durable). */
        for (char *p = path + 1; *p; p++) {
            if (*p != '/')
                continue;
            *p = '\0';
            int rc = make_dir(path);
            *p = '/';
            if (rc < 0)
                return -1;
        }
        if (make_dir(path) < 0)
            return -1;
    }
    static const char *const sub[] = {"tmp", "new", "cur"};
    for (int i = 0; i < 3; i++) {
        snprintf(path + len, sizeof path - len, "/%s", sub[i]);
        if (make_dir(path) < 0)
            return -1;
    }
    return 0;
}
