/* The selected-folder view against the other writers of a Maildir: delivery adding to new/,
 * pop3d unlinking, another imapd session renaming (flags) and assigning UIDs. The other
 * process's file operations are done here in the test, between the view's calls. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "imapd/uidlist.h"
#include "imapd/view.h"

static char dir[128], other[160];

static void make_maildir(const char *d)
{
    char p[256];
    assert_true(mkdir(d, 0700) == 0 || errno == EEXIST);
    const char *subs[] = {"new", "cur", "tmp"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", d, subs[i]);
        assert_int_equal(mkdir(p, 0700), 0);
    }
}

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/pmviewXXXXXX");
    assert_non_null(mkdtemp(dir));
    rmdir(dir);
    make_maildir(dir);
    snprintf(other, sizeof other, "%s/.Other", dir);
    make_maildir(other);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

/* Delivery: a file in new/ (written elsewhere, then linked in), with a given mtime. */
static void deliver_to(const char *d, const char *name, const char *body, time_t mtime)
{
    char path[512];
    snprintf(path, sizeof path, "%s/new/%s", d, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(body, f);
    fclose(f);
    struct timeval tv[2] = {{mtime, 0}, {mtime, 0}};
    utimes(path, tv);
}

static void deliver(const char *name, time_t mtime) { deliver_to(dir, name, "Subject: x\r\n\r\nbody\r\n", mtime); }

static int exists_in(const char *sub, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s/%s", dir, sub, name);
    return access(path, F_OK) == 0;
}

/* The file of key in cur/ (name into out), 1 if found. */
static int find_cur(const char *d, const char *key, char *out, size_t size)
{
    char path[512];
    snprintf(path, sizeof path, "%s/cur", d);
    DIR *dd = opendir(path);
    assert_non_null(dd);
    struct dirent *e;
    int found = 0;
    size_t kl = strlen(key);
    while (!found && (e = readdir(dd)))
        if (strncmp(e->d_name, key, kl) == 0 && (e->d_name[kl] == ':' || e->d_name[kl] == '\0')) {
            snprintf(out, size, "%s", e->d_name);
            found = 1;
        }
    closedir(dd);
    return found;
}

/* Another session's STORE: renames key's file in cur/ to info. */
static void other_rename(const char *key, const char *info)
{
    char name[300], from[600], to[600];
    assert_true(find_cur(dir, key, name, sizeof name));
    snprintf(from, sizeof from, "%s/cur/%s", dir, name);
    snprintf(to, sizeof to, "%s/cur/%s%s", dir, key, info);
    assert_int_equal(rename(from, to), 0);
}

/* pop3d's QUIT: unlinks key's file wherever it is. */
static void pop3d_delete(const char *key)
{
    char name[300], path[600];
    snprintf(path, sizeof path, "%s/new/%s", dir, key);
    if (unlink(path) == 0)
        return;
    assert_true(find_cur(dir, key, name, sizeof name));
    snprintf(path, sizeof path, "%s/cur/%s", dir, name);
    assert_int_equal(unlink(path), 0);
}

static void test_open_takes_new_as_recent(void **state)
{
    (void)state;
    deliver("m2", 2000);
    deliver("m1", 1000);
    char info[300];
    struct imap_view *v;
    int recovered = -1;
    assert_int_equal(imap_view_open(dir, 0, &v, &recovered), IMAP_VIEW_OK);
    assert_int_equal(recovered, 0);
    assert_int_equal(imap_view_count(v), 2);
    assert_int_equal(imap_view_recent(v), 2);
    /* UIDs in arrival (mtime) order, not name order. */
    assert_int_equal(imap_view_uid(v, 1), 1);
    assert_int_equal(imap_view_uid(v, 2), 2);
    char path[512];
    assert_int_equal(imap_view_path(v, 1, path, sizeof path), 0);
    assert_non_null(strstr(path, "/cur/m1:2,"));
    assert_int_equal(imap_view_flags(v, 1), IMAP_F_RECENT);
    assert_int_equal(imap_view_uidnext(v), 3);
    assert_int_equal(imap_view_first_unseen(v), 1);
    assert_false(exists_in("new", "m1"));
    assert_true(find_cur(dir, "m1", info, sizeof info));
    assert_string_equal(info, "m1:2,");
    time_t t;
    assert_int_equal(imap_view_internaldate(v, 1, &t), IMAP_VIEW_OK);
    assert_int_equal(t, 1000);
    assert_int_equal(imap_view_size(v, 1), (off_t)strlen("Subject: x\r\n\r\nbody\r\n"));
    uint32_t validity = imap_view_uidvalidity(v);
    imap_view_close(v);

    /* A second session: same UIDs and UIDVALIDITY, nothing \Recent any more. */
    assert_int_equal(imap_view_open(dir, 0, &v, NULL), IMAP_VIEW_OK);
    assert_int_equal(imap_view_count(v), 2);
    assert_int_equal(imap_view_recent(v), 0);
    assert_int_equal(imap_view_uidvalidity(v), validity);
    assert_int_equal(imap_view_uid(v, 2), 2);
    assert_int_equal(imap_view_seq_of_uid(v, 2), 2);
    assert_int_equal(imap_view_seq_of_uid(v, 7), 0);
    imap_view_close(v);
}

static void test_examine_leaves_new(void **state)
{
    (void)state;
    deliver("m1", 1000);
    struct imap_view *v;
    assert_int_equal(imap_view_open(dir, 1, &v, NULL), IMAP_VIEW_OK);
    assert_int_equal(imap_view_recent(v), 1);
    assert_true(exists_in("new", "m1"));
    assert_int_equal(imap_view_store_flags(v, 1, '+', IMAP_F_SEEN), IMAP_VIEW_READONLY);
    struct imap_view_changes ch;
    assert_int_equal(imap_view_expunge(v, NULL, 0, &ch), IMAP_VIEW_READONLY);
    int fd = imap_view_open_msg(v, 1);
    assert_true(fd >= 0);
    close(fd);
    imap_view_close(v);
    assert_int_equal(imap_view_open(dir + 0, 1, &v, NULL), IMAP_VIEW_OK);
    assert_int_equal(imap_view_uid(v, 1), 1); /* the UID was kept though the file stayed in new/ */
    imap_view_close(v);
}

static void test_delivery_while_selected(void **state)
{
    (void)state;
    deliver("m1", 1000);
    struct imap_view *v;
    assert_int_equal(imap_view_open(dir, 0, &v, NULL), IMAP_VIEW_OK);
    struct imap_view_changes ch;
    assert_int_equal(imap_view_sync(v, 1, &ch), IMAP_VIEW_OK);
    assert_false(ch.exists_changed);
    assert_int_equal(ch.nexpunged, 0);
    assert_int_equal(ch.nflags, 0);

    deliver("m2", 2000);
    deliver("m3", 1500);
    assert_int_equal(imap_view_sync(v, 0, &ch), IMAP_VIEW_OK);
    assert_true(ch.exists_changed);
    assert_int_equal(ch.exists, 3);
    assert_int_equal(ch.recent, 3);
    assert_int_equal(imap_view_uid(v, 2), 2);
    assert_int_equal(imap_view_uid(v, 3), 3);
    char path[512];
    imap_view_path(v, 2, path, sizeof path);
    assert_non_null(strstr(path, "/cur/m3:2,")); /* older mtime first */
    assert_int_equal(imap_view_uidnext(v), 4);
    imap_view_close(v);
}

static void test_expunge_by_pop3d(void **state)
{
    (void)state;
    char name[300];
    for (int i = 1; i <= 5; i++) {
        snprintf(name, sizeof name, "m%d", i);
        deliver(name, 1000 + i);
    }
    struct imap_view *v;
    assert_int_equal(imap_view_open(dir, 0, &v, NULL), IMAP_VIEW_OK);
    pop3d_delete("m2");
    pop3d_delete("m4");
    struct imap_view_changes ch;
    /* During FETCH: no EXPUNGE yet, the numbers stay, the vanished ones are "gone". */
    assert_int_equal(imap_view_sync(v, 0, &ch), IMAP_VIEW_OK);
    assert_int_equal(ch.nexpunged, 0);
    assert_int_equal(imap_view_count(v), 5);
    assert_true(imap_view_gone(v, 2));
    assert_false(imap_view_gone(v, 3));
    assert_int_equal(imap_view_open_msg(v, 4), -1);
    assert_int_equal(imap_view_store_flags(v, 4, '+', IMAP_F_SEEN), IMAP_VIEW_GONE);
    /* Then at NOOP: "2 EXPUNGE" and "3 EXPUNGE" (old 4 is 3 once 2 went). */
    assert_int_equal(imap_view_sync(v, 1, &ch), IMAP_VIEW_OK);
    assert_int_equal(ch.nexpunged, 2);
    assert_int_equal(ch.expunged[0], 2);
    assert_int_equal(ch.expunged[1], 3);
    assert_false(ch.exists_changed);
    assert_int_equal(imap_view_count(v), 3);
    assert_int_equal(imap_view_uid(v, 1), 1);
    assert_int_equal(imap_view_uid(v, 2), 3);
    assert_int_equal(imap_view_uid(v, 3), 5);
    imap_view_close(v);
    /* The UIDs of the removed never come back: a new message gets 6. */
    deliver("m6", 2000);
    assert_int_equal(imap_view_open(dir, 0, &v, NULL), IMAP_VIEW_OK);
    assert_int_equal(imap_view_uid(v, 4), 6);
    imap_view_close(v);
}

static void test_flags_other_session(void **state)
{
    (void)state;
    deliver("m1", 1000);
    deliver("m2", 1001);
    struct imap_view *v;
    assert_int_equal(imap_view_open(dir, 0, &v, NULL), IMAP_VIEW_OK);
    other_rename("m2", ":2,FS");
    struct imap_view_changes ch;
    assert_int_equal(imap_view_sync(v, 0, &ch), IMAP_VIEW_OK);
    assert_int_equal(ch.nflags, 1);
    assert_int_equal(ch.flags_seq[0], 2);
    assert_int_equal(imap_view_flags(v, 2), IMAP_F_FLAGGED | IMAP_F_SEEN | IMAP_F_RECENT);
    assert_int_equal(imap_view_sync(v, 0, &ch), IMAP_VIEW_OK);
    assert_int_equal(ch.nflags, 0); /* told once */

    /* Our +FLAGS \Answered applies to the file's flags now: \Flagged \Seen stay. */
    other_rename("m2", ":2,F");
    assert_int_equal(imap_view_store_flags(v, 2, '+', IMAP_F_ANSWERED), IMAP_VIEW_OK);
    assert_int_equal(imap_view_flags(v, 2), IMAP_F_FLAGGED | IMAP_F_ANSWERED | IMAP_F_RECENT);
    char name[300];
    assert_true(find_cur(dir, "m2", name, sizeof name));
    assert_string_equal(name, "m2:2,FR");
    assert_int_equal(imap_view_store_flags(v, 2, '-', IMAP_F_FLAGGED), IMAP_VIEW_OK);
    assert_true(find_cur(dir, "m2", name, sizeof name));
    assert_string_equal(name, "m2:2,R");
    assert_int_equal(imap_view_store_flags(v, 1, '=', IMAP_F_DELETED | IMAP_F_DRAFT), IMAP_VIEW_OK);
    assert_true(find_cur(dir, "m1", name, sizeof name));
    assert_string_equal(name, "m1:2,DT");
    assert_int_equal(imap_view_set_flags(v, 1, 0), IMAP_VIEW_OK);
    assert_true(find_cur(dir, "m1", name, sizeof name));
    assert_string_equal(name, "m1:2,");
    /* Our own changes are not announced back. */
    assert_int_equal(imap_view_sync(v, 1, &ch), IMAP_VIEW_OK);
    assert_int_equal(ch.nflags, 0);
    /* A renamed file is still readable (the view follows the rename). */
    other_rename("m1", ":2,S");
    int fd = imap_view_open_msg(v, 1);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(imap_view_store_flags(v, 1, '+', IMAP_F_FLAGGED), IMAP_VIEW_OK);
    assert_true(find_cur(dir, "m1", name, sizeof name));
    assert_string_equal(name, "m1:2,FS");
    imap_view_close(v);
}

static void test_expunge_and_uid_expunge(void **state)
{
    (void)state;
    char name[300];
    for (int i = 1; i <= 5; i++) {
        snprintf(name, sizeof name, "m%d", i);
        deliver(name, 1000 + i);
    }
    struct imap_view *v;
    assert_int_equal(imap_view_open(dir, 0, &v, NULL), IMAP_VIEW_OK);
    for (uint32_t s = 1; s <= 5; s += 2)
        assert_int_equal(imap_view_store_flags(v, s, '+', IMAP_F_DELETED), IMAP_VIEW_OK);
    /* UID EXPUNGE 1:3 -> only 1 and 3 (5 is deleted but not in the set). */
    uint32_t seqs[] = {1, 2, 3};
    struct imap_view_changes ch;
    assert_int_equal(imap_view_expunge(v, seqs, 3, &ch), IMAP_VIEW_OK);
    assert_int_equal(ch.nexpunged, 2);
    assert_int_equal(ch.expunged[0], 1);
    assert_int_equal(ch.expunged[1], 2);
    assert_int_equal(imap_view_count(v), 3);
    assert_int_equal(imap_view_uid(v, 3), 5);
    assert_int_equal(imap_view_expunge(v, NULL, 0, &ch), IMAP_VIEW_OK);
    assert_int_equal(ch.nexpunged, 1);
    assert_int_equal(ch.expunged[0], 3);
    assert_int_equal(imap_view_count(v), 2);
    assert_false(find_cur(dir, "m5", name, sizeof name));
    /* Nothing more to report to this session. */
    assert_int_equal(imap_view_sync(v, 1, &ch), IMAP_VIEW_OK);
    assert_int_equal(ch.nexpunged, 0);
    imap_view_close(v);
}

static void test_two_sessions(void **state)
{
    (void)state;
    deliver("m1", 1000);
    struct imap_view *a, *b;
    assert_int_equal(imap_view_open(dir, 0, &a, NULL), IMAP_VIEW_OK);
    assert_int_equal(imap_view_open(dir, 0, &b, NULL), IMAP_VIEW_OK);
    assert_int_equal(imap_view_recent(a), 1);
    assert_int_equal(imap_view_recent(b), 0);
    deliver("m2", 2000);
    struct imap_view_changes ch;
    /* b sees it first (takes it: \Recent for b), a then gets the same UID, not \Recent. */
    assert_int_equal(imap_view_sync(b, 1, &ch), IMAP_VIEW_OK);
    assert_int_equal(ch.exists, 2);
    assert_int_equal(ch.recent, 1);
    assert_int_equal(imap_view_sync(a, 1, &ch), IMAP_VIEW_OK);
    assert_int_equal(ch.exists, 2);
    assert_int_equal(ch.recent, 1); /* only m1 */
    assert_int_equal(imap_view_uid(a, 2), imap_view_uid(b, 2));
    /* a stores, b hears of it; b expunges, a hears of it. */
    assert_int_equal(imap_view_store_flags(a, 2, '+', IMAP_F_DELETED), IMAP_VIEW_OK);
    assert_int_equal(imap_view_sync(b, 1, &ch), IMAP_VIEW_OK);
    assert_int_equal(ch.nflags, 1);
    assert_true(imap_view_flags(b, 2) & IMAP_F_DELETED);
    assert_int_equal(imap_view_expunge(b, NULL, 0, &ch), IMAP_VIEW_OK);
    assert_int_equal(ch.nexpunged, 1);
    assert_int_equal(imap_view_sync(a, 1, &ch), IMAP_VIEW_OK);
    assert_int_equal(ch.nexpunged, 1);
    assert_int_equal(ch.expunged[0], 2);
    imap_view_close(a);
    imap_view_close(b);
}

/* Another replica assigned UIDs (under the lock) to files the view has not seen: the view
 * takes those UIDs, it does not invent its own. */
static void test_uids_from_other_replica(void **state)
{
    (void)state;
    deliver("m1", 1000);
    struct imap_view *v;
    assert_int_equal(imap_view_open(dir, 0, &v, NULL), IMAP_VIEW_OK);
    deliver("m2", 2000);
    deliver("m3", 3000);
    int lock = imap_uidlist_lock(dir);
    struct imap_uidlist ul;
    assert_int_equal(imap_uidlist_load(dir, &ul), IMAP_UIDLIST_OK);
    imap_uidlist_add(&ul, "zzz-gone", 8); /* uid 2: a file already removed again */
    assert_int_equal(imap_uidlist_add(&ul, "m3", 2), 3);
    assert_int_equal(imap_uidlist_add(&ul, "m2", 2), 4);
    assert_int_equal(imap_uidlist_write(dir, &ul), 0);
    imap_uidlist_free(&ul);
    imap_uidlist_unlock(lock);
    struct imap_view_changes ch;
    assert_int_equal(imap_view_sync(v, 1, &ch), IMAP_VIEW_OK);
    assert_int_equal(ch.exists, 3);
    assert_int_equal(imap_view_uid(v, 2), 3);
    assert_int_equal(imap_view_uid(v, 3), 4);
    assert_int_equal(imap_view_uidnext(v), 5);
    imap_view_close(v);
    /* The stale entry was pruned from the list; uidnext did not go back. */
    assert_int_equal(imap_uidlist_load(dir, &ul), IMAP_UIDLIST_OK);
    assert_int_equal(imap_uidlist_find(&ul, "zzz-gone", 8), 0);
    assert_int_equal(ul.uidnext, 5);
    imap_uidlist_free(&ul);
}

/* The same, but the file comes back before any refresh dropped its UID: this session was
 * told EXPUNGE for that UID, so it keeps it out of sight; a new SELECT shows it again with
 * its old UID (it never had another). */
static void test_reappearing_key_hidden(void **state)
{
    (void)state;
    deliver("m1", 1000);
    deliver("m2", 1001);
    struct imap_view *v;
    assert_int_equal(imap_view_open(dir, 0, &v, NULL), IMAP_VIEW_OK);
    char name[300], from[600], to[600];
    assert_true(find_cur(dir, "m1", name, sizeof name));
    snprintf(from, sizeof from, "%s/cur/%s", dir, name);
    snprintf(to, sizeof to, "%s/tmp/%s", dir, name);
    assert_int_equal(rename(from, to), 0);
    struct imap_view_changes ch;
    assert_int_equal(imap_view_sync(v, 1, &ch), IMAP_VIEW_OK);
    assert_int_equal(ch.nexpunged, 1);
    assert_int_equal(rename(to, from), 0);
    deliver("m3", 1002);
    assert_int_equal(imap_view_sync(v, 1, &ch), IMAP_VIEW_OK);
    assert_int_equal(ch.exists, 2); /* m2 and m3, not m1 */
    assert_int_equal(imap_view_uid(v, 2), 3);
    assert_int_equal(imap_view_sync(v, 1, &ch), IMAP_VIEW_OK);
    assert_false(ch.exists_changed);
    imap_view_close(v);
    assert_int_equal(imap_view_open(dir, 0, &v, NULL), IMAP_VIEW_OK);
    assert_int_equal(imap_view_count(v), 3);
    assert_int_equal(imap_view_uid(v, 1), 1);
    imap_view_close(v);
}

/* A folder without new/ (some tools make only cur/) still opens and syncs. */
static void test_without_new_dir(void **state)
{
    (void)state;
    char p[512];
    snprintf(p, sizeof p, "%s/cur/only:2,S", dir);
    FILE *f = fopen(p, "w");
    fputs("x\r\n", f);
    fclose(f);
    snprintf(p, sizeof p, "%s/new", dir);
    assert_int_equal(rmdir(p), 0);
    struct imap_view *v;
    assert_int_equal(imap_view_open(dir, 0, &v, NULL), IMAP_VIEW_OK);
    assert_int_equal(imap_view_count(v), 1);
    assert_int_equal(imap_view_flags(v, 1), IMAP_F_SEEN);
    struct imap_view_changes ch;
    assert_int_equal(imap_view_sync(v, 1, &ch), IMAP_VIEW_OK);
    assert_int_equal(ch.nexpunged, 0);
    imap_view_close(v);
}

/* The folder is deleted while selected (its directory renamed away by DELETE elsewhere):
 * every message is expunged, nothing fails. */
static void test_folder_deleted_while_selected(void **state)
{
    (void)state;
    deliver_to(other, "o1", "x\r\n", 1000);
    deliver_to(other, "o2", "x\r\n", 1001);
    struct imap_view *v;
    assert_int_equal(imap_view_open(other, 0, &v, NULL), IMAP_VIEW_OK);
    char gone[256];
    snprintf(gone, sizeof gone, "%s/..deleted.x", dir);
    assert_int_equal(rename(other, gone), 0);
    struct imap_view_changes ch;
    assert_int_equal(imap_view_sync(v, 0, &ch), IMAP_VIEW_OK);
    assert_int_equal(ch.nexpunged, 0);
    assert_true(imap_view_gone(v, 1) && imap_view_gone(v, 2));
    assert_int_equal(imap_view_sync(v, 1, &ch), IMAP_VIEW_OK);
    assert_int_equal(ch.nexpunged, 2);
    assert_int_equal(ch.expunged[0], 1);
    assert_int_equal(ch.expunged[1], 1);
    assert_int_equal(imap_view_count(v), 0);
    imap_view_close(v);
}

/* FETCH over files pop3d removed: one lookup marks them all gone; a file that was only
 * away for a moment (a lookup raced with a rename) is not expunged once it is back. */
static void test_gone_marking(void **state)
{
    (void)state;
    char name[300];
    for (int i = 1; i <= 5; i++) {
        snprintf(name, sizeof name, "m%d", i);
        deliver(name, 1000 + i);
    }
    struct imap_view *v;
    assert_int_equal(imap_view_open(dir, 0, &v, NULL), IMAP_VIEW_OK);
    pop3d_delete("m2");
    pop3d_delete("m3");
    time_t t;
    assert_int_equal(imap_view_internaldate(v, 2, &t), IMAP_VIEW_OK); /* known since open: no I/O */
    assert_true(imap_view_size(v, 2) > 0);
    assert_false(imap_view_gone(v, 2));
    assert_int_equal(imap_view_open_msg(v, 2), -1);
    assert_int_equal(errno, ENOENT);
    assert_true(imap_view_gone(v, 2));
    assert_true(imap_view_gone(v, 3)); /* found gone by the same lookup */
    assert_false(imap_view_gone(v, 4));
    /* m4 away for a moment while a lookup runs, then back. */
    char from[600], to[600];
    assert_true(find_cur(dir, "m4", name, sizeof name));
    snprintf(from, sizeof from, "%s/cur/%s", dir, name);
    snprintf(to, sizeof to, "%s/tmp/%s", dir, name);
    assert_int_equal(rename(from, to), 0);
    assert_int_equal(imap_view_open_msg(v, 4), -1);
    assert_true(imap_view_gone(v, 4));
    assert_int_equal(rename(to, from), 0);
    struct imap_view_changes ch;
    assert_int_equal(imap_view_sync(v, 1, &ch), IMAP_VIEW_OK);
    assert_int_equal(ch.nexpunged, 2);
    assert_int_equal(ch.expunged[0], 2);
    assert_int_equal(ch.expunged[1], 2);
    assert_int_equal(imap_view_count(v), 3);
    assert_false(imap_view_gone(v, 2)); /* m4, back */
    assert_int_equal(imap_view_uid(v, 2), 4);
    imap_view_close(v);
}

/* EXPUNGE while another session takes \Deleted away (renaming the file): the message
 * stays (was: relocated and unlinked anyway). */
static void test_expunge_undeleted_meanwhile(void **state)
{
    (void)state;
    deliver("m1", 1000);
    deliver("m2", 1001);
    struct imap_view *v;
    assert_int_equal(imap_view_open(dir, 0, &v, NULL), IMAP_VIEW_OK);
    assert_int_equal(imap_view_store_flags(v, 1, '+', IMAP_F_DELETED), IMAP_VIEW_OK);
    assert_int_equal(imap_view_store_flags(v, 2, '+', IMAP_F_DELETED), IMAP_VIEW_OK);
    other_rename("m1", ":2,S"); /* \Deleted off, \Seen on */
    other_rename("m2", ":2,ST"); /* still \Deleted, renamed */
    struct imap_view_changes ch;
    assert_int_equal(imap_view_expunge(v, NULL, 0, &ch), IMAP_VIEW_OK);
    assert_int_equal(ch.nexpunged, 1);
    assert_int_equal(ch.expunged[0], 2);
    assert_true(exists_in("cur", "m1:2,S"));
    assert_false(exists_in("cur", "m2:2,ST"));
    assert_int_equal(imap_view_count(v), 1);
    assert_int_equal(imap_view_sync(v, 1, &ch), IMAP_VIEW_OK);
    assert_int_equal(imap_view_flags(v, 1) & (IMAP_F_DELETED | IMAP_F_SEEN), IMAP_F_SEEN);
    imap_view_close(v);
}

static void put_uidlist(const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/" IMAP_UIDLIST_FILE, dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_uidlist_lost_while_selected(void **state)
{
    (void)state;
    deliver("m1", 1000);
    deliver("m2", 1001);
    struct imap_view *v;
    assert_int_equal(imap_view_open(dir, 0, &v, NULL), IMAP_VIEW_OK);
    uint32_t validity = imap_view_uidvalidity(v);
    char path[512];
    snprintf(path, sizeof path, "%s/" IMAP_UIDLIST_FILE, dir);
    unlink(path);
    deliver("m3", 1002);
    struct imap_view_changes ch;
    assert_int_equal(imap_view_sync(v, 1, &ch), IMAP_VIEW_OK);
    assert_false(ch.reselect);
    assert_int_equal(ch.exists, 3);
    assert_int_equal(imap_view_uid(v, 3), 3);
    imap_view_close(v);
    /* The session's knowledge was written back: the same UIDVALIDITY and UIDs. */
    struct imap_uidlist ul;
    assert_int_equal(imap_uidlist_load(dir, &ul), IMAP_UIDLIST_OK);
    assert_int_equal(ul.uidvalidity, validity);
    assert_int_equal(imap_uidlist_find(&ul, "m1", 2), 1);
    assert_int_equal(imap_uidlist_find(&ul, "m3", 2), 3);
    imap_uidlist_free(&ul);
}

/* The list was put back from an older copy (same UIDVALIDITY, lower UIDNEXT): UIDs this
 * session's client has seen are not given again. */
static void test_restored_uidlist(void **state)
{
    (void)state;
    deliver("m1", 1000);
    deliver("m2", 1001);
    struct imap_view *v;
    assert_int_equal(imap_view_open(dir, 0, &v, NULL), IMAP_VIEW_OK);
    char text[128];
    snprintf(text, sizeof text, "postmesh-uidlist 1 %u 2\n1 m1\n", imap_view_uidvalidity(v));
    put_uidlist(text);
    deliver("m3", 1002);
    struct imap_view_changes ch;
    assert_int_equal(imap_view_sync(v, 1, &ch), IMAP_VIEW_OK);
    assert_false(ch.reselect);
    assert_int_equal(ch.exists, 3);
    assert_int_equal(imap_view_uid(v, 2), 2);
    assert_int_equal(imap_view_uid(v, 3), 3);
    imap_view_close(v);
    struct imap_uidlist ul;
    assert_int_equal(imap_uidlist_load(dir, &ul), IMAP_UIDLIST_OK);
    assert_int_equal(imap_uidlist_find(&ul, "m2", 2), 2); /* put back as the client knows it */
    assert_int_equal(imap_uidlist_find(&ul, "m3", 2), 3);
    assert_int_equal(ul.uidnext, 4);
    imap_uidlist_free(&ul);
}

static void test_corrupt_uidlist_at_open(void **state)
{
    (void)state;
    deliver("m1", 1000);
    put_uidlist("postmesh-uidlist 1 100 5\n9 m1\n");
    struct imap_view *v;
    int recovered = 0;
    assert_int_equal(imap_view_open(dir, 0, &v, &recovered), IMAP_VIEW_OK);
    assert_int_equal(recovered, 1);
    assert_true(imap_view_uidvalidity(v) > 100);
    assert_int_equal(imap_view_uid(v, 1), 1);
    imap_view_close(v);
}

static void append_text(const char *target, const char *text, uint32_t *uid);

/* UIDs used up (a hostile or torn "uidnext 4294967295"): the folder is renumbered from 1
 * under a new UIDVALIDITY (RFC 9051 §2.3.1.1) at SELECT, APPEND and sync; no message is
 * left without a UID. */
static void test_exhausted_uids(void **state)
{
    (void)state;
    deliver("m1", 1000);
    deliver("m2", 1001);
    put_uidlist("postmesh-uidlist 1 100 4294967295\n4294967294 m1\n");
    struct imap_view *v;
    int recovered = 0;
    assert_int_equal(imap_view_open(dir, 0, &v, &recovered), IMAP_VIEW_OK);
    assert_int_equal(recovered, 1);
    assert_true(imap_view_uidvalidity(v) > 100);
    assert_int_equal(imap_view_count(v), 2);
    assert_int_equal(imap_view_uid(v, 1), 1);
    assert_int_equal(imap_view_uid(v, 2), 2);
    imap_view_close(v);

    uint32_t validity, uid;
    append_text(other, "Subject: a\r\n\r\na\r\n", &uid);
    assert_int_equal(uid, 1);
    char tmp[512], text[128];
    snprintf(text, sizeof text, "postmesh-uidlist 1 7 4294967295\n");
    snprintf(tmp, sizeof tmp, "%s/tmp/append.y", other);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fclose(f);
    char otherlist[512];
    snprintf(otherlist, sizeof otherlist, "%s/" IMAP_UIDLIST_FILE, other);
    f = fopen(otherlist, "w");
    fputs(text, f);
    fclose(f);
    assert_int_equal(imap_store_append(other, tmp, 0, 0, &validity, &uid), IMAP_VIEW_OK);
    assert_true(validity > 7);
    assert_int_equal(uid, 2); /* the message already there got 1 */

    /* While selected: a list run out is rebuilt from what the session knows (as a lost
     * one), with UIDs above the session's and not the list's. */
    assert_int_equal(imap_view_open(dir, 0, &v, NULL), IMAP_VIEW_OK);
    snprintf(text, sizeof text, "postmesh-uidlist 2 %u 4294967295 4294967295\n1 m1\n2 m2\n",
             imap_view_uidvalidity(v));
    put_uidlist(text);
    deliver("m3", 1002);
    struct imap_view_changes ch;
    assert_int_equal(imap_view_sync(v, 1, &ch), IMAP_VIEW_OK);
    assert_false(ch.reselect);
    assert_int_equal(ch.exists, 3);
    assert_int_equal(imap_view_uid(v, 3), 3);
    imap_view_close(v);
    assert_int_equal(imap_view_open(dir, 0, &v, NULL), IMAP_VIEW_OK);
    assert_int_equal(imap_view_count(v), 3);
    assert_int_equal(imap_view_uid(v, 3), 3);
    imap_view_close(v);
}

/* The folder is deleted and made again while selected: the UIDs of the new list mean
 * nothing to this session. */
static void test_replaced_folder(void **state)
{
    (void)state;
    deliver("m1", 1000);
    struct imap_view *v;
    assert_int_equal(imap_view_open(dir, 0, &v, NULL), IMAP_VIEW_OK);
    put_uidlist("postmesh-uidlist 1 12345 3\n");
    deliver("m2", 1001);
    struct imap_view_changes ch;
    assert_int_equal(imap_view_sync(v, 1, &ch), IMAP_VIEW_OK);
    assert_true(ch.reselect);
    imap_view_close(v);
}

static void test_nonexistent(void **state)
{
    (void)state;
    struct imap_view *v = (void *)1;
    char path[256];
    snprintf(path, sizeof path, "%s/.Nope", dir);
    assert_int_equal(imap_view_open(path, 0, &v, NULL), IMAP_VIEW_NONEXISTENT);
    assert_null(v);
}

/* Only messages: dot files, directories and keys no UID list line could hold are skipped. */
static void test_odd_files_skipped(void **state)
{
    (void)state;
    deliver("m1", 1000);
    deliver(".hidden", 1000);
    deliver("with space", 1000);
    char p[512];
    snprintf(p, sizeof p, "%s/cur/subdir", dir);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/cur/link", dir);
    assert_int_equal(symlink("/etc/passwd", p), 0);
    snprintf(p, sizeof p, "%s/cur/fifo:2,", dir);
    assert_int_equal(mkfifo(p, 0600), 0);
    struct imap_view *v;
    assert_int_equal(imap_view_open(dir, 0, &v, NULL), IMAP_VIEW_OK);
    assert_int_equal(imap_view_count(v), 1);
    /* The message swapped for a FIFO under the same name: refused at once, never waited on. */
    char path[512];
    assert_int_equal(imap_view_path(v, 1, path, sizeof path), 0);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(imap_view_open_msg(v, 1), -1);
    imap_view_close(v);
}

static void test_copy_and_move(void **state)
{
    (void)state;
    deliver("m1", 1000);
    deliver("m2", 2000);
    deliver("m3", 3000);
    struct imap_view *v;
    assert_int_equal(imap_view_open(dir, 0, &v, NULL), IMAP_VIEW_OK);
    assert_int_equal(imap_view_store_flags(v, 2, '+', IMAP_F_FLAGGED | IMAP_F_SEEN), IMAP_VIEW_OK);
    uint32_t seqs[] = {2, 3};
    struct imap_copy_result r;
    assert_int_equal(imap_view_copy(v, seqs, 2, other, &r), IMAP_VIEW_OK);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.src_uids[0], 2);
    assert_int_equal(r.src_uids[1], 3);
    assert_int_equal(r.dst_uids[0], 1);
    assert_int_equal(r.dst_uids[1], 2);
    uint32_t target_validity = r.uidvalidity;
    assert_true(target_validity != 0);
    imap_copy_result_free(&r);
    assert_int_equal(imap_view_count(v), 3); /* COPY leaves the source */

    struct imap_view *t;
    assert_int_equal(imap_view_open(other, 0, &t, NULL), IMAP_VIEW_OK);
    assert_int_equal(imap_view_count(t), 2);
    assert_int_equal(imap_view_uidvalidity(t), target_validity);
    /* Flags kept, and \Recent to the target's first read-write session (RFC 3501 §6.4.7). */
    assert_int_equal(imap_view_flags(t, 1), IMAP_F_FLAGGED | IMAP_F_SEEN | IMAP_F_RECENT);
    assert_int_equal(imap_view_recent(t), 2);
    time_t when;
    assert_int_equal(imap_view_internaldate(t, 2, &when), IMAP_VIEW_OK);
    assert_int_equal(when, 3000); /* INTERNALDATE kept */
    assert_int_equal(imap_view_size(t, 1), (off_t)strlen("Subject: x\r\n\r\nbody\r\n"));

    /* MOVE 1 to Other: COPYUID pairs, then "1 EXPUNGE" here. */
    uint32_t one[] = {1};
    struct imap_view_changes ch;
    assert_int_equal(imap_view_move(v, one, 1, other, &r, &ch), IMAP_VIEW_OK);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.src_uids[0], 1);
    assert_int_equal(r.dst_uids[0], 3);
    imap_copy_result_free(&r);
    assert_int_equal(ch.nexpunged, 1);
    assert_int_equal(ch.expunged[0], 1);
    assert_int_equal(imap_view_count(v), 2);
    assert_int_equal(imap_view_sync(t, 1, &ch), IMAP_VIEW_OK);
    assert_int_equal(ch.exists, 3);
    assert_int_equal(ch.recent, 3); /* moved in while selected: recent to this session */
    assert_int_equal(imap_view_uid(t, 3), 3);

    /* COPY into the selected folder itself: the copies show up at the next sync. */
    uint32_t both[] = {1, 2};
    assert_int_equal(imap_view_copy(v, both, 2, dir, &r), IMAP_VIEW_OK);
    assert_int_equal(r.dst_uids[0], 4);
    imap_copy_result_free(&r);
    assert_int_equal(imap_view_sync(v, 1, &ch), IMAP_VIEW_OK);
    assert_int_equal(ch.exists, 4);
    assert_int_equal(imap_view_uid(v, 4), 5);

    /* A vanished source: nothing copied, EXPUNGEISSUED. */
    pop3d_delete("m3");
    uint32_t all[] = {1, 2, 3};
    assert_int_equal(imap_view_copy(v, all, 3, other, &r), IMAP_VIEW_EXPUNGEISSUED);
    assert_int_equal(r.n, 0);
    assert_int_equal(imap_view_sync(t, 1, &ch), IMAP_VIEW_OK);
    assert_int_equal(ch.exists, 3);
    /* A target that does not exist: TRYCREATE. */
    char nope[256];
    snprintf(nope, sizeof nope, "%s/.Nope", dir);
    assert_int_equal(imap_view_copy(v, one, 1, nope, &r), IMAP_VIEW_NONEXISTENT);
    imap_view_close(t);
    imap_view_close(v);
}

static void test_append(void **state)
{
    (void)state;
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s/tmp/append.1", dir);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs("Subject: appended\r\n\r\nhi\r\n", f);
    fclose(f);
    uint32_t validity, uid;
    assert_int_equal(imap_store_append(other, tmp, IMAP_F_SEEN | IMAP_F_DRAFT | IMAP_F_RECENT, 1234567890,
                                       &validity, &uid), IMAP_VIEW_OK);
    assert_int_equal(uid, 1);
    assert_int_not_equal(access(tmp, F_OK), 0); /* the tmp file is gone */
    struct imap_view *t;
    assert_int_equal(imap_view_open(other, 0, &t, NULL), IMAP_VIEW_OK);
    assert_int_equal(imap_view_uidvalidity(t), validity);
    assert_int_equal(imap_view_count(t), 1);
    assert_int_equal(imap_view_flags(t, 1), IMAP_F_SEEN | IMAP_F_DRAFT | IMAP_F_RECENT); /* RFC 3501 §6.3.11 */
    time_t when;
    assert_int_equal(imap_view_internaldate(t, 1, &when), IMAP_VIEW_OK);
    assert_int_equal(when, 1234567890);
    assert_int_equal(imap_view_size(t, 1), 25);
    char path[512];
    imap_view_path(t, 1, path, sizeof path);
    assert_non_null(strstr(path, ",S=25:2,DS"));
    /* A second APPEND while selected: seen at the next sync with the next UID. */
    f = fopen(tmp, "w");
    fputs("x\r\n", f);
    fclose(f);
    assert_int_equal(imap_store_append(other, tmp, 0, 0, &validity, &uid), IMAP_VIEW_OK);
    assert_int_equal(uid, 2);
    struct imap_view_changes ch;
    assert_int_equal(imap_view_sync(t, 1, &ch), IMAP_VIEW_OK);
    assert_int_equal(ch.exists, 2);
    assert_int_equal(imap_view_uid(t, 2), 2);
    imap_view_close(t);
    char nope[256];
    snprintf(nope, sizeof nope, "%s/.Nope", dir);
    f = fopen(tmp, "w");
    fclose(f);
    assert_int_equal(imap_store_append(nope, tmp, 0, 0, &validity, &uid), IMAP_VIEW_NONEXISTENT);
    assert_int_equal(access(tmp, F_OK), 0); /* left for the caller */
}

static void append_text(const char *target, const char *text, uint32_t *uid)
{
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s/tmp/append.%u", dir, (unsigned)rand());
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    uint32_t validity;
    assert_int_equal(imap_store_append(target, tmp, 0, 0, &validity, uid), IMAP_VIEW_OK);
}

/* APPEND and COPY targets: their messages are \Recent to exactly one read-write session
 * (the first to select or sync the folder); EXAMINE shows them recent without taking them. */
static void test_appended_and_copied_are_recent(void **state)
{
    (void)state;
    uint32_t uid;
    append_text(other, "Subject: a\r\n\r\nx\r\n", &uid);
    struct imap_view *ro, *a, *b;
    for (int i = 0; i < 2; i++) { /* EXAMINE twice: still recent, nothing taken */
        assert_int_equal(imap_view_open(other, 1, &ro, NULL), IMAP_VIEW_OK);
        assert_int_equal(imap_view_recent(ro), 1);
        assert_int_equal(imap_view_flags(ro, 1), IMAP_F_RECENT);
        imap_view_close(ro);
    }
    assert_int_equal(imap_view_open(other, 0, &a, NULL), IMAP_VIEW_OK);
    assert_int_equal(imap_view_recent(a), 1);
    assert_int_equal(imap_view_open(other, 0, &b, NULL), IMAP_VIEW_OK);
    assert_int_equal(imap_view_recent(b), 0); /* a took it */
    /* Appended while both are selected: whichever syncs first gets it. */
    append_text(other, "Subject: b\r\n\r\nx\r\n", &uid);
    struct imap_view_changes ch;
    assert_int_equal(imap_view_sync(b, 1, &ch), IMAP_VIEW_OK);
    assert_int_equal(ch.exists, 2);
    assert_int_equal(ch.recent, 1);
    assert_int_equal(imap_view_flags(b, 2), IMAP_F_RECENT);
    assert_int_equal(imap_view_sync(a, 1, &ch), IMAP_VIEW_OK);
    assert_int_equal(ch.exists, 2);
    assert_int_equal(ch.recent, 1); /* only its first one */
    assert_int_equal(imap_view_flags(a, 2), 0);
    imap_view_close(b);
    imap_view_close(a);
    /* COPY from INBOX: recent in the target, and the source's own recent stays as it was. */
    deliver("m1", 1000);
    struct imap_view *v;
    assert_int_equal(imap_view_open(dir, 0, &v, NULL), IMAP_VIEW_OK);
    assert_int_equal(imap_view_recent(v), 1);
    uint32_t one[] = {1};
    struct imap_copy_result r;
    assert_int_equal(imap_view_copy(v, one, 1, other, &r), IMAP_VIEW_OK);
    imap_copy_result_free(&r);
    imap_view_close(v);
    assert_int_equal(imap_view_open(other, 1, &ro, NULL), IMAP_VIEW_OK);
    assert_int_equal(imap_view_recent(ro), 1);
    assert_int_equal(imap_view_flags(ro, 3), IMAP_F_RECENT);
    imap_view_close(ro);
    assert_int_equal(imap_view_open(other, 0, &a, NULL), IMAP_VIEW_OK);
    assert_int_equal(imap_view_recent(a), 1);
    imap_view_close(a);
    assert_int_equal(imap_view_open(other, 0, &a, NULL), IMAP_VIEW_OK);
    assert_int_equal(imap_view_recent(a), 0);
    imap_view_close(a);
}

/* A version 1 list (before first_recent): only new/ is recent, as then; the list is then
 * written as version 2. */
static void test_version1_list_recent(void **state)
{
    (void)state;
    deliver("m1", 1000);
    deliver("m2", 1001);
    char p[512];
    snprintf(p, sizeof p, "%s/new/m1", dir);
    char q[512];
    snprintf(q, sizeof q, "%s/cur/m1:2,S", dir);
    assert_int_equal(rename(p, q), 0);
    put_uidlist("postmesh-uidlist 1 777 3\n1 m1\n2 m2\n");
    struct imap_view *v;
    assert_int_equal(imap_view_open(dir, 0, &v, NULL), IMAP_VIEW_OK);
    assert_int_equal(imap_view_uidvalidity(v), 777);
    assert_int_equal(imap_view_recent(v), 1);
    assert_int_equal(imap_view_flags(v, 1), IMAP_F_SEEN);
    assert_int_equal(imap_view_flags(v, 2), IMAP_F_RECENT);
    imap_view_close(v);
    struct imap_uidlist ul;
    assert_int_equal(imap_uidlist_load(dir, &ul), IMAP_UIDLIST_OK);
    assert_int_equal(ul.first_recent, 3);
    imap_uidlist_free(&ul);
    assert_int_equal(imap_view_open(dir, 0, &v, NULL), IMAP_VIEW_OK);
    assert_int_equal(imap_view_recent(v), 0);
    imap_view_close(v);
}

/* A message that vanished and came back (same key) after this session was told EXPUNGE
 * stays out of this session (its UID is below what the client has seen); a new SELECT
 * shows it with its old UID. */
static void test_reappearing_key(void **state)
{
    (void)state;
    deliver("m1", 1000);
    deliver("m2", 1001);
    struct imap_view *v;
    assert_int_equal(imap_view_open(dir, 0, &v, NULL), IMAP_VIEW_OK);
    char name[300], from[600], to[600];
    assert_true(find_cur(dir, "m1", name, sizeof name));
    snprintf(from, sizeof from, "%s/cur/%s", dir, name);
    snprintf(to, sizeof to, "%s/tmp/%s", dir, name);
    assert_int_equal(rename(from, to), 0);
    struct imap_view_changes ch;
    assert_int_equal(imap_view_sync(v, 1, &ch), IMAP_VIEW_OK);
    assert_int_equal(ch.nexpunged, 1);
    deliver("m3", 1002);
    assert_int_equal(imap_view_sync(v, 1, &ch), IMAP_VIEW_OK); /* m3 gets UID 3, m1's entry pruned */
    assert_int_equal(rename(to, from), 0);
    assert_int_equal(imap_view_sync(v, 1, &ch), IMAP_VIEW_OK);
    /* m1 comes back unknown to the list: it gets a new UID above all and is shown. */
    assert_int_equal(imap_view_count(v), 3);
    assert_int_equal(imap_view_uid(v, 3), 4);
    assert_int_equal(imap_view_sync(v, 1, &ch), IMAP_VIEW_OK);
    assert_false(ch.exists_changed);
    imap_view_close(v);
}

/* Four processes (two imapd replicas' sessions and more) deliver, sync and STORE on one
 * folder at the same time. Afterwards every key has one UID in every view, no UID has two
 * keys, and a fresh SELECT agrees. */
#define NCHILD 4
#define NPER 40
static void child_run(int c)
{
    struct imap_view *v;
    if (imap_view_open(dir, 0, &v, NULL) != IMAP_VIEW_OK)
        _exit(2);
    char name[64];
    struct imap_view_changes ch;
    for (int i = 0; i < NPER; i++) {
        snprintf(name, sizeof name, "c%d-%02d", c, i);
        deliver(name, 1000 + i);
        if (imap_view_sync(v, i % 3 == 0, &ch) != IMAP_VIEW_OK)
            _exit(3);
        uint32_t n = imap_view_count(v);
        if (n && imap_view_store_flags(v, 1 + (uint32_t)(i * 7 % n), '+', IMAP_F_SEEN) == IMAP_VIEW_ERR)
            _exit(4);
        for (uint32_t s = 2; s <= n; s++)
            if (imap_view_uid(v, s) <= imap_view_uid(v, s - 1))
                _exit(5); /* UIDs must ascend */
    }
    /* Everyone is done delivering once all result files... just sync until all are seen. */
    for (int tries = 0; tries < 2000 && imap_view_count(v) < NCHILD * NPER; tries++) {
        if (imap_view_sync(v, 1, &ch) != IMAP_VIEW_OK)
            _exit(6);
        usleep(1000);
    }
    char path[256];
    snprintf(path, sizeof path, "%s/res%d", dir, c);
    FILE *f = fopen(path, "w");
    for (uint32_t s = 1; s <= imap_view_count(v); s++) {
        char p[512];
        imap_view_path(v, s, p, sizeof p);
        const char *base = strrchr(p, '/') + 1;
        fprintf(f, "%.*s %u\n", (int)strcspn(base, ":"), base, imap_view_uid(v, s));
    }
    fclose(f);
    imap_view_close(v);
    _exit(0);
}

static void test_concurrent_processes(void **state)
{
    (void)state;
    pid_t pids[NCHILD];
    for (int c = 0; c < NCHILD; c++) {
        pids[c] = fork();
        assert_true(pids[c] >= 0);
        if (pids[c] == 0)
            child_run(c);
    }
    for (int c = 0; c < NCHILD; c++) {
        int st;
        assert_int_equal(waitpid(pids[c], &st, 0), pids[c]);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    /* uid_of[key index] from the fresh view, then every child must agree. */
    uint32_t uid_of[NCHILD * NPER] = {0};
    struct imap_view *v;
    assert_int_equal(imap_view_open(dir, 0, &v, NULL), IMAP_VIEW_OK);
    assert_int_equal(imap_view_count(v), NCHILD * NPER);
    for (uint32_t s = 1; s <= imap_view_count(v); s++) {
        char p[512];
        int c, i;
        imap_view_path(v, s, p, sizeof p);
        assert_int_equal(sscanf(strrchr(p, '/') + 1, "c%d-%d", &c, &i), 2);
        uid_of[c * NPER + i] = imap_view_uid(v, s);
    }
    imap_view_close(v);
    for (int c = 0; c < NCHILD; c++) {
        char path[256], line[128];
        snprintf(path, sizeof path, "%s/res%d", dir, c);
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        int lines = 0;
        while (fgets(line, sizeof line, f)) {
            int cc, i;
            unsigned uid;
            assert_int_equal(sscanf(line, "c%d-%d %u", &cc, &i, &uid), 3);
            assert_int_equal(uid, uid_of[cc * NPER + i]);
            lines++;
        }
        fclose(f);
        assert_int_equal(lines, NCHILD * NPER);
    }
}

static void age_dirs(time_t when)
{
    const char *subs[] = {"new", "cur"};
    for (int i = 0; i < 2; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, subs[i]);
        struct timespec ts[2] = {{when, 0}, {when, 0}};
        assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
    }
}

/* An idle folder (directories untouched for a while) is not read again at each sync; any
 * change to new/ or cur/ (their mtime moves) is. */
static void test_idle_sync_skips_readdir(void **state)
{
    (void)state;
    deliver("m1", 1000);
    deliver("m2", 1001);
    struct imap_view *v;
    assert_int_equal(imap_view_open(dir, 0, &v, NULL), IMAP_VIEW_OK);
    age_dirs(time(NULL) - 100);
    struct imap_view_changes ch;
    assert_int_equal(imap_view_sync(v, 1, &ch), IMAP_VIEW_OK); /* a full scan, times recorded */
    /* A file slipped in with the mtime put back: proves the next sync did not read. */
    char p[512];
    snprintf(p, sizeof p, "%s/cur/sneaky:2,", dir);
    FILE *f = fopen(p, "w");
    fclose(f);
    age_dirs(time(NULL) - 100);
    assert_int_equal(imap_view_sync(v, 1, &ch), IMAP_VIEW_OK);
    assert_false(ch.exists_changed);
    /* A real change moves the mtime: seen. */
    other_rename("m1", ":2,S");
    assert_int_equal(imap_view_sync(v, 1, &ch), IMAP_VIEW_OK);
    assert_true(ch.exists_changed);
    assert_int_equal(ch.exists, 3);
    assert_int_equal(ch.nflags, 1);
    /* Pending expunges found by a failed open still go out on a skipped sync. */
    age_dirs(time(NULL) - 50);
    assert_int_equal(imap_view_sync(v, 1, &ch), IMAP_VIEW_OK);
    pop3d_delete("m2");
    age_dirs(time(NULL) - 50);
    assert_int_equal(imap_view_open_msg(v, 2), -1); /* marks it gone */
    assert_int_equal(imap_view_sync(v, 1, &ch), IMAP_VIEW_OK);
    assert_int_equal(ch.nexpunged, 1);
    assert_int_equal(ch.expunged[0], 2);
    /* A scan right after a change is not trusted: the next sync reads again. */
    deliver("m4", 1004); /* new/ mtime = now */
    assert_int_equal(imap_view_sync(v, 1, &ch), IMAP_VIEW_OK);
    assert_int_equal(ch.exists, 3);
    snprintf(p, sizeof p, "%s/cur/late:2,", dir);
    f = fopen(p, "w");
    fclose(f);
    struct stat st;
    snprintf(p, sizeof p, "%s/cur", dir);
    stat(p, &st);
    assert_int_equal(imap_view_sync(v, 1, &ch), IMAP_VIEW_OK);
    assert_int_equal(ch.exists, 4);
    imap_view_close(v);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* 5,000 messages: open, a sync with no change, a sync after 1 delivery, a sync after
 * another session flagged all of them. Prints the times (ASan build: generous bounds). */
static void test_large_folder(void **state)
{
    (void)state;
    char name[64];
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof name, "Q%08d.1.ABCDEF.host", i);
        deliver_to(dir, name, "x\r\n", 1000000 + i);
    }
    double t0 = now_ms();
    struct imap_view *v;
    assert_int_equal(imap_view_open(dir, 0, &v, NULL), IMAP_VIEW_OK);
    double t1 = now_ms();
    assert_int_equal(imap_view_count(v), 5000);
    assert_int_equal(imap_view_uid(v, 5000), 5000);
    imap_view_close(v);
    double t2 = now_ms();
    assert_int_equal(imap_view_open(dir, 0, &v, NULL), IMAP_VIEW_OK);
    double t3 = now_ms();
    struct imap_view_changes ch;
    assert_int_equal(imap_view_sync(v, 1, &ch), IMAP_VIEW_OK);
    double t4 = now_ms();
    deliver("new-one", 2000000);
    assert_int_equal(imap_view_sync(v, 1, &ch), IMAP_VIEW_OK);
    double t5 = now_ms();
    assert_int_equal(ch.exists, 5001);
    struct imap_view *w;
    assert_int_equal(imap_view_open(dir, 0, &w, NULL), IMAP_VIEW_OK);
    for (uint32_t s = 1; s <= 5001; s++)
        assert_int_equal(imap_view_store_flags(w, s, '+', IMAP_F_SEEN), IMAP_VIEW_OK);
    imap_view_close(w);
    double t6 = now_ms();
    assert_int_equal(imap_view_sync(v, 1, &ch), IMAP_VIEW_OK);
    double t7 = now_ms();
    assert_int_equal(ch.nflags, 5001);
    for (uint32_t s = 1; s <= 5001; s += 1000) {
        int fd = imap_view_open_msg(v, s);
        assert_true(fd >= 0);
        close(fd);
    }
    imap_view_close(v);
    fprintf(stderr,
            "  5000 msgs: first open %.1f ms, open %.1f ms, idle sync %.2f ms, sync+1 %.1f ms, "
            "5001 stores %.1f ms, sync after %.1f ms\n",
            t1 - t0, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6);
    assert_true(t3 - t2 < 1000);
    assert_true(t4 - t3 < 500);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_open_takes_new_as_recent), T(test_examine_leaves_new), T(test_delivery_while_selected),
        T(test_expunge_by_pop3d),         T(test_flags_other_session), T(test_expunge_and_uid_expunge),
        T(test_two_sessions),             T(test_uids_from_other_replica), T(test_uidlist_lost_while_selected),
        T(test_corrupt_uidlist_at_open),  T(test_exhausted_uids), T(test_expunge_undeleted_meanwhile), T(test_replaced_folder),      T(test_nonexistent),
        T(test_odd_files_skipped),        T(test_copy_and_move),        T(test_append),
        T(test_reappearing_key),          T(test_large_folder),        T(test_concurrent_processes),
        T(test_idle_sync_skips_readdir), T(test_restored_uidlist),
        T(test_reappearing_key_hidden), T(test_without_new_dir), T(test_folder_deleted_while_selected),
        T(test_gone_marking),             T(test_appended_and_copied_are_recent), T(test_version1_list_recent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
