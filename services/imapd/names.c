/* New unique message names and placing a message file under one (store_int.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "mailstore.h"
#include "store_int.h"

int imap_path(char *dst, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(dst, size, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

/* The host part of a Maildir name: '/' and ':' may not appear (Maildir spec: \057 \072);
 * we keep [A-Za-z0-9-] only, which every reader accepts, and cut at 64. */
static void host_part(char *dst, size_t size)
{
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) < 0 || !host[0])
        strcpy(host, "localhost");
    size_t o = 0;
    for (const char *h = host; *h && o + 1 < size && o < 64; h++) {
        char c = *h;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-')
            dst[o++] = c;
    }
    dst[o] = '\0';
    if (!o)
        snprintf(dst, size, "localhost");
}

int imap_unique_key(const struct imap_uidlist *ul, int64_t size, char *dst, size_t dstsize)
{
    static unsigned counter;
    char host[72];
    host_part(host, sizeof host);
    for (int attempt = 0; attempt < 8; attempt++) {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        /* Time, pid and a counter make it unique on this host (Maildir's rule); the random
         * part keeps two replicas with the same pid (pid 1 in containers) apart. */
        uint32_t r = 0;
        if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
            r = (uint32_t)tv.tv_usec ^ (counter * 2654435761u);
        char sz[32] = "";
        if (size >= 0)
            snprintf(sz, sizeof sz, ",S=%lld", (long long)size);
        if (imap_path(dst, dstsize, "%lld.M%06ldP%dQ%uR%08x.%s%s", (long long)tv.tv_sec, (long)tv.tv_usec,
                      (int)getpid(), ++counter, r, host, sz) < 0)
            return -1;
        if (!ul || !imap_uidlist_find(ul, dst, strlen(dst)))
            return 0;
    }
    errno = EEXIST;
    return -1;
}

static int copy_bytes(int in, int out)
{
    char buf[65536];
    for (;;) {
        ssize_t r = read(in, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            return 0;
        for (ssize_t o = 0; o < r;) {
            ssize_t w = write(out, buf + o, (size_t)(r - o));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                return -1;
            o += w;
        }
    }
}

int imap_link_or_copy(const char *src, const char *dst)
{
    if (link(src, dst) == 0)
        return 0;
    if (errno != EXDEV && errno != EPERM && errno != ENOTSUP && errno != EMLINK)
        return -1;
    int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (in < 0)
        return -1;
    struct stat st;
    if (fstat(in, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(in);
        errno = ENOENT; /* only regular files are messages */
        return -1;
    }
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0660);
    if (out < 0) {
        int e = errno;
        close(in);
        errno = e;
        return -1;
    }
    /* The copy keeps INTERNALDATE (the mtime) as a link would. */
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    int err = 0;
    if (copy_bytes(in, out) < 0 || futimens(out, times) < 0 || fsync(out) < 0)
        err = errno ? errno : EIO;
    if (close(out) < 0 && !err)
        err = errno ? errno : EIO;
    close(in);
    if (err) {
        unlink(dst);
        errno = err;
        return -1;
    }
    return 0;
}

int imap_write_whole(const char *dir, const char *tmp, const char *path, const char *buf, size_t len)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0660);
    if (fd < 0)
        return -1;
    int err = 0;
    for (size_t o = 0; o < len && !err;) {
        ssize_t w = write(fd, buf + o, len - o);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            err = w < 0 ? errno : EIO;
        else
            o += (size_t)w;
    }
    if (!err && fsync(fd) < 0)
        err = errno;
    if (close(fd) < 0 && !err)
        err = errno;
    if (!err && rename(tmp, path) < 0)
        err = errno;
    if (err) {
        unlink(tmp);
        errno = err;
        return -1;
    }
    return pm_mailstore_fsync_dir(dir);
}

int imap_names_push(char ***names, size_t *n, size_t *cap, const char *name)
{
    if (*n == *cap) {
        size_t grown = *cap ? *cap * 2 : 16;
        char **nv = realloc(*names, grown * sizeof *nv);
        if (!nv)
            return -1;
        *names = nv;
        *cap = grown;
    }
    if (!((*names)[*n] = strdup(name)))
        return -1;
    (*n)++;
    return 0;
}
