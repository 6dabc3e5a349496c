#include "maildir.h"

#include <openssl/evp.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "mailstore.h"

static unsigned stall_seconds;
static int stall_at_new;
static atomic_uint tmp_counter;

void delivery_maildir_set_stall(unsigned seconds, int at_new)
{
    stall_seconds = seconds;
    stall_at_new = at_new;
}

void delivery_body_digest(const uint8_t *body, size_t len, char dst[DELIVERY_DIGEST_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(body, len, md, &mdlen, EVP_sha256(), NULL) || mdlen < DELIVERY_DIGEST_LEN / 2)
        memset(md, 0, sizeof md);
    for (int i = 0; i < DELIVERY_DIGEST_LEN / 2; i++)
        snprintf(dst + 2 * i, 3, "%02X", md[i]);
}

int delivery_file_name(const char *queue_id, uint32_t index, const char *digest, const char *hostname, char *dst,
                       size_t size)
{
    size_t qlen = strlen(queue_id);
    if (qlen == 0 || qlen > 64)
        return -1;
    for (size_t i = 0; i < qlen; i++) {
        char c = queue_id[i];
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
            return -1;
    }
    int n = snprintf(dst, size, "%s.%u.%s.", queue_id, index, digest);
    if (n < 0 || (size_t)n >= size)
        return -1;
    size_t o = (size_t)n;
    for (const char *h = hostname; *h; h++) {
        const char *rep = *h == '/' ? "\\057" : *h == ':' ? "\\072" : NULL;
        size_t add = rep ? 4 : 1;
        if (o + add >= size)
            return -1;
        if (rep)
            memcpy(dst + o, rep, 4);
        else
            dst[o] = *h;
        o += add;
    }
    dst[o] = '\0';
    return 0;
}

static void copy_clean(char *dst, const char *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = (src[i] == '\r' || src[i] == '\n') ? '?' : src[i];
}

char *delivery_trace_headers(const char *sender, const char *address, size_t *len)
{
    size_t sl = strlen(sender), al = strlen(address);
    static const char a[] = "Return-Path: <", b[] = ">\r\nDelivered-To: ", c[] = "\r\n";
    size_t total = sizeof a - 1 + sl + sizeof b - 1 + al + sizeof c - 1;
    char *h = malloc(total + 1), *p = h;
    if (!h)
        return NULL;
    memcpy(p, a, sizeof a - 1), p += sizeof a - 1;
    copy_clean(p, sender, sl), p += sl;
    memcpy(p, b, sizeof b - 1), p += sizeof b - 1;
    copy_clean(p, address, al), p += al;
    memcpy(p, c, sizeof c - 1), p += sizeof c - 1;
    *p = '\0';
    *len = total;
    return h;
}

/* -errno, never 0: a failure must not read as DELIVERY_WRITTEN. */
static int neg_errno(void) { return errno ? -errno : -EIO; }

/* Is name already in new/, or in cur/ as name or name:2,<flags>? Returns the directory it
 * is in ("new" or "cur") or NULL. */
static const char *already_delivered(const char *maildir, const char *name)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/new/%s", maildir, name);
    if (stat(path, &st) == 0)
        return "new";
    snprintf(path, sizeof path, "%s/cur", maildir);
    DIR *d = opendir(path);
    if (!d)
        return NULL;
    size_t nl = strlen(name);
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir(d)))
        found = strncmp(e->d_name, name, nl) == 0 && (e->d_name[nl] == '\0' || e->d_name[nl] == ':');
    closedir(d);
    return found ? "cur" : NULL;
}

/* A copy that is already there may be one a killed worker linked but never synced: its
 * directory entry is only durable once the directory is synced, so sync it before the
 * queue hears "delivered" and deletes its own copy. */
static int duplicate_synced(const char *maildir, const char *where)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", maildir, where);
    return pm_mailstore_fsync_dir(dir) < 0 ? neg_errno() : DELIVERY_DUPLICATE;
}

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len > (1u << 20) ? (1u << 20) : len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (w == 0) {
            errno = EIO;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static void stall(int at_new)
{
    if (stall_seconds && stall_at_new == at_new)
        sleep(stall_seconds);
}

int delivery_maildir_write(const char *maildir, const char *name, const char *head, size_t headlen,
                           const uint8_t *body, size_t bodylen)
{
    if (pm_mailstore_create(maildir) < 0)
        return neg_errno();
    const char *where = already_delivered(maildir, name);
    if (where)
        return duplicate_synced(maildir, where);

    /* A tmp name no other writer uses, even another worker on the same job right now. */
    char tmp[4096], dst[4096], dir[4096];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    snprintf(tmp, sizeof tmp, "%s/tmp/%s.%ld.%06ld.%d.%u", maildir, name, (long)tv.tv_sec, (long)tv.tv_usec,
             (int)getpid(), atomic_fetch_add(&tmp_counter, 1));
    snprintf(dst, sizeof dst, "%s/new/%s", maildir, name);
    snprintf(dir, sizeof dir, "%s/new", maildir);

    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0660); /* the store group's too */
    if (fd < 0)
        return neg_errno();
    int err = 0;
    if (write_all(fd, head, headlen) < 0 || write_all(fd, body, bodylen) < 0 || fsync(fd) < 0)
        err = errno ? errno : EIO;
    if (close(fd) < 0 && !err)
        err = errno ? errno : EIO; /* NFS and quotas may report the failed write only here */
    if (err) {
        unlink(tmp);
        return -err;
    }
    stall(0);
    int dup = 0;
    if (link(tmp, dst) < 0) {
        if (errno == EEXIST) {
            dup = 1;
        } else if (errno == EPERM || errno == ENOTSUP || errno == ENOSYS) {
            /* A file system without hard links: rename, refusing to replace a copy. */
            if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dst, RENAME_NOREPLACE) < 0) {
                err = errno;
                unlink(tmp);
                return err == EEXIST ? duplicate_synced(maildir, "new") : -err;
            }
        } else {
            err = errno;
            unlink(tmp);
            return -err;
        }
    }
    unlink(tmp);
    if (dup)
        return duplicate_synced(maildir, "new");
    if (pm_mailstore_fsync_dir(dir) < 0) {
        /* The copy may not survive a crash: report a temporary failure; a retry finds the file
         * (if it survived) and reports it delivered. */
        return neg_errno();
    }
    stall(1);
    return DELIVERY_WRITTEN;
}
