/* The user's UIDVALIDITY counter, Maildir/postmesh-uidvalidity (uidlist.h): one decimal
 * number and LF, at or above every UIDVALIDITY given to any of the user's UID lists. Without it a
 * folder deleted and made again within one second, or a list lost and rebuilt in the
 * second it was made, would get the UIDVALIDITY of the old list while its UIDs start at 1
 * again: a client (mbsync) would take the new messages for the old ones it cached. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mailstore.h"
#include "store_int.h"
#include "uidlist.h"

/* dst = the Maildir holding the folder at dir: Maildir++ folders are Maildir/.name, INBOX
 * is the Maildir itself. 0 or -1. */
static int user_maildir(const char *dir, char *dst, size_t size)
{
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/')
        len--;
    const char *slash = memrchr(dir, '/', len);
    const char *last = slash ? slash + 1 : dir;
    size_t lastlen = len - (size_t)(last - dir);
    int folder = lastlen > 1 && last[0] == '.' && !(lastlen == 2 && last[1] == '.');
    if (!folder)
        return imap_path(dst, size, "%.*s", (int)len, dir);
    if (!slash)
        return imap_path(dst, size, ".");
    return imap_path(dst, size, "%.*s", slash == dir ? 1 : (int)(slash - dir), dir);
}

/* The counter's value; 0 if it is missing or not a number we wrote (a damaged counter
 * leaves "now" and the caller's floor as the only bounds). -1 on a read error. */
static int64_t read_counter(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return errno == ENOENT || errno == ELOOP ? 0 : -1;
    char buf[24];
    ssize_t n;
    do
        n = read(fd, buf, sizeof buf - 1);
    while (n < 0 && errno == EINTR);
    int e = errno;
    close(fd);
    if (n < 0) {
        errno = e;
        return e == EISDIR ? 0 : -1;
    }
    int64_t v = 0;
    ssize_t i = 0;
    for (; i < n && i < 11 && buf[i] >= '0' && buf[i] <= '9'; i++)
        v = v * 10 + (buf[i] - '0');
    if (i == 0 || i == n || buf[i] != '\n' || v > UINT32_MAX)
        return 0;
    return v;
}

static int write_counter(const char *maildir, const char *path, uint32_t value)
{
    char tmp[4096], text[16];
    if (imap_path(tmp, sizeof tmp, "%s/" IMAP_UIDVALIDITY_TMP, maildir) < 0)
        return -1;
    int len = snprintf(text, sizeof text, "%u\n", value);
    /* The tmp name is fixed: only the counter lock's holder writes it. The counter is
     * durable before any list carries the value, so after a crash the next value is still
     * above every UIDVALIDITY in use. */
    return imap_write_whole(maildir, tmp, path, text, (size_t)len);
}

/* Values are reserved in blocks: the file holds the end of the last block reserved, and a
 * process hands out the rest of its own block while the file still ends there (no other
 * process reserved since, so every value it gives stays above all given before). One
 * counter write (two fsyncs) then serves IMAP_UIDVALIDITY_BLOCK new lists: a LIST-STATUS
 * over a thousand never-selected folders does not pay two thousand more fsyncs. */
#define IMAP_UIDVALIDITY_BLOCK 64u

static struct {
    pid_t pid; /* a forked child must not hand out its parent's block again */
    uint32_t next, end;
    char maildir[4096];
} block;

uint32_t imap_uidvalidity_next(const char *dir, uint32_t above)
{
    char maildir[4096], path[4096], lockpath[4096];
    if (user_maildir(dir, maildir, sizeof maildir) < 0 ||
        imap_path(path, sizeof path, "%s/" IMAP_UIDVALIDITY_FILE, maildir) < 0 ||
        imap_path(lockpath, sizeof lockpath, "%s/" IMAP_UIDVALIDITY_LOCK, maildir) < 0)
        return 0;
    int lock = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0660);
    if (lock < 0)
        return 0;
    while (flock(lock, LOCK_EX) < 0) {
        if (errno != EINTR) {
            int e = errno;
            close(lock);
            errno = e;
            return 0;
        }
    }
    uint32_t value = 0;
    int64_t last = read_counter(path);
    if (last > 0 && block.pid == getpid() && last == block.end && block.next <= block.end &&
        block.next > above && strcmp(block.maildir, maildir) == 0) {
        value = block.next++;
    } else if (last >= 0) {
        int64_t v = (int64_t)time(NULL);
        if (v <= last)
            v = last + 1;
        if (v <= (int64_t)above)
            v = (int64_t)above + 1;
        int64_t end = v + IMAP_UIDVALIDITY_BLOCK - 1;
        if (end > UINT32_MAX)
            end = UINT32_MAX;
        if (v > UINT32_MAX) {
            errno = EOVERFLOW; /* the year 2106, or a counter run to the end: no value is safe */
        } else if (write_counter(maildir, path, (uint32_t)end) == 0) {
            value = (uint32_t)v;
            block.pid = getpid();
            block.next = value + 1; /* > end when the block is used up: the next call reserves */
            block.end = (uint32_t)end;
            memcpy(block.maildir, maildir, strlen(maildir) + 1);
        }
    }
    int e = errno;
    close(lock); /* releases the flock */
    errno = e;
    return value;
}
