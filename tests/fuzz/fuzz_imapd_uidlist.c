/* A folder's postmesh-uidlist file (imapd/uidlist.c imap_uidlist_load): the input is the
 * file, in a directory of this process's own (the loader takes the folder's directory).
 *
 * Checked beyond memory safety: a list read as it was has ascending UIDs below UIDNEXT and
 * valid, distinct keys, each found again under its UID; an unreadable one is replaced by an
 * empty list (never a half-read one), or refused only when its UIDVALIDITY was the last; what is written back reads back the same; a UID given
 * after the load is UIDNEXT's, and a pruned list keeps exactly the entries kept. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_common.h"
#include "imapd/uidlist.h"

static char dir[256];

static void unlink_in_dir(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
}

/* The user's UIDVALIDITY counter lives in the same directory (an INBOX): each input starts
 * as a fresh user, so one input's counter never decides another's result. */
static void forget_counter(void)
{
    unlink_in_dir(IMAP_UIDVALIDITY_FILE);
    unlink_in_dir(IMAP_UIDVALIDITY_TMP);
    unlink_in_dir(IMAP_UIDVALIDITY_LOCK);
}

static void remove_dir(void)
{
    forget_counter();
    unlink_in_dir(IMAP_UIDLIST_FILE);
    unlink_in_dir(IMAP_UIDLIST_TMP);
    unlink_in_dir(IMAP_UIDLIST_LOCK);
    rmdir(dir);
}

static void write_list(const uint8_t *data, size_t size)
{
    char path[512];
    snprintf(path, sizeof path, "%s/" IMAP_UIDLIST_FILE, dir);
    FILE *f = fopen(path, "w");
    FUZZ_CHECK(f != NULL);
    FUZZ_CHECK(fwrite(data, 1, size, f) == size);
    FUZZ_CHECK(fclose(f) == 0);
}

static void check_list(const struct imap_uidlist *ul)
{
    FUZZ_CHECK(ul->n <= IMAP_UIDLIST_MAX && ul->uidnext >= 1);
    for (size_t i = 0; i < ul->n; i++) {
        const struct imap_uident *e = &ul->v[i];
        FUZZ_CHECK(e->uid >= 1 && e->uid < ul->uidnext);
        FUZZ_CHECK(i == 0 || e->uid > ul->v[i - 1].uid);
        size_t len = strlen(e->key);
        FUZZ_CHECK(imap_uidlist_key_ok(e->key, len));
        FUZZ_CHECK(imap_uidlist_find(ul, e->key, len) == e->uid); /* so keys are distinct */
    }
}

static int keep_odd(void *arg, const char *key)
{
    (void)arg;
    return strlen(key) & 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s/pm-fuzz-uidlist-%d", fuzz_tmpdir(), (int)getpid());
        FUZZ_CHECK(mkdir(dir, 0700) == 0 || errno == EEXIST);
        atexit(remove_dir);
    }
    forget_counter();
    write_list(data, size);
    struct imap_uidlist ul;
    errno = 0;
    int rc = imap_uidlist_load(dir, &ul);
    if (rc == IMAP_UIDLIST_ERR) {
        /* Only a list unreadable past UIDVALIDITY 4294967295: no higher one exists. */
        FUZZ_CHECK(errno == EOVERFLOW);
        imap_uidlist_free(&ul);
        return 0;
    }
    FUZZ_CHECK(rc == IMAP_UIDLIST_OK || rc == IMAP_UIDLIST_RESET);
    check_list(&ul);
    if (rc == IMAP_UIDLIST_RESET)
        FUZZ_CHECK(ul.n == 0 && ul.uidnext == 1 && ul.uidvalidity > 0);
    /* Written back, it reads back the same. */
    FUZZ_CHECK(imap_uidlist_write(dir, &ul) == 0);
    struct imap_uidlist again;
    FUZZ_CHECK(imap_uidlist_load(dir, &again) == IMAP_UIDLIST_OK);
    FUZZ_CHECK(again.uidvalidity == ul.uidvalidity && again.uidnext == ul.uidnext && again.n == ul.n);
    for (size_t i = 0; i < ul.n; i++)
        FUZZ_CHECK(again.v[i].uid == ul.v[i].uid && strcmp(again.v[i].key, ul.v[i].key) == 0);
    imap_uidlist_free(&again);
    /* A new message gets UIDNEXT; a pruned list keeps the entries kept. */
    uint32_t next = ul.uidnext;
    if (!imap_uidlist_find(&ul, "1764640000.M1P2Q3.fuzz", 22)) {
        uint32_t uid = imap_uidlist_add(&ul, "1764640000.M1P2Q3.fuzz", 22);
        FUZZ_CHECK(uid == 0 || (uid == next && ul.uidnext == next + 1));
        FUZZ_CHECK(!uid || imap_uidlist_find(&ul, "1764640000.M1P2Q3.fuzz", 22) == uid);
    }
    size_t odd = 0;
    for (size_t i = 0; i < ul.n; i++)
        odd += strlen(ul.v[i].key) & 1;
    imap_uidlist_prune(&ul, keep_odd, NULL);
    FUZZ_CHECK(ul.n == odd);
    check_list(&ul);
    imap_uidlist_free(&ul);
    return 0;
}
