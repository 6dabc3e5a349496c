/* Folders on disk: name rules (table), Maildir++ paths, LIST attributes, CREATE / DELETE /
 * RENAME (INBOX included), subscriptions (ours and Dovecot's file), the first-login folders
 * and STATUS. */
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
#include <unistd.h>

#include "imapd/folder.h"
#include "imapd/uidlist.h"
#include "imapd/view.h"

static char md[128];

static int setup(void **state)
{
    (void)state;
    strcpy(md, "/tmp/pmfoldXXXXXX");
    assert_non_null(mkdtemp(md));
    char p[256];
    const char *subs[] = {"new", "cur", "tmp"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", md, subs[i]);
        assert_int_equal(mkdir(p, 0700), 0);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", md);
    return system(cmd);
}

static int has(const char *rel)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", md, rel);
    return access(p, F_OK) == 0;
}

static void put(const char *rel, const char *content)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", md, rel);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

static int C(const char *name) { return imap_folder_create(md, name, strlen(name)); }

static void test_name_rules(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int ok;
    } table[] = {
        {"INBOX", 1},  {"inbox", 1},   {"Sent", 1},      {"a/b/c", 1},   {"&AOQ-rger", 1}, {"x y", 1},
        {"", 0},       {"/a", 0},      {"a/", 0},        {"a//b", 0},    {"a.b", 0},       {".a", 0},
        {"..", 0},     {"a/../b", 0},  {"~user", 0},     {"a/~b", 0},    {"a%", 0},        {"a*b", 0},
        {"a\tb", 0},   {"a\rb", 0},    {"a\x7f", 0},     {"\xc3\xa4", 0}, {"a/./b", 0},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        assert_int_equal(imap_folder_name_ok(table[i].name, strlen(table[i].name)), table[i].ok);
    assert_false(imap_folder_name_ok("a\0b", 3));
    char longname[IMAP_FOLDER_NAME_MAX + 2];
    memset(longname, 'x', sizeof longname);
    assert_true(imap_folder_name_ok(longname, IMAP_FOLDER_NAME_MAX));
    assert_false(imap_folder_name_ok(longname, IMAP_FOLDER_NAME_MAX + 1));
    char deep[64] = "a";
    for (int i = 1; i < IMAP_FOLDER_DEPTH_MAX; i++)
        strcat(deep, "/a");
    assert_true(imap_folder_name_ok(deep, strlen(deep)));
    strcat(deep, "/a");
    assert_false(imap_folder_name_ok(deep, strlen(deep)));
    assert_true(imap_folder_is_inbox("InBoX", 5));
    assert_false(imap_folder_is_inbox("INBOX/", 6));
}

static void test_paths(void **state)
{
    (void)state;
    char p[512], want[512];
    assert_int_equal(imap_folder_path(md, "inbox", 5, p, sizeof p), 0);
    assert_string_equal(p, md);
    assert_int_equal(imap_folder_path(md, "a/b", 3, p, sizeof p), 0);
    snprintf(want, sizeof want, "%s/.a.b", md);
    assert_string_equal(p, want);
    assert_int_equal(imap_folder_path(md, "inbox/x", 7, p, sizeof p), 0);
    snprintf(want, sizeof want, "%s/.INBOX.x", md);
    assert_string_equal(p, want);
    assert_int_equal(imap_folder_path(md, "a.b", 3, p, sizeof p), -1);
    char tiny[8];
    assert_int_equal(imap_folder_path(md, "Sent", 4, tiny, sizeof tiny), -1);
}

static void test_create(void **state)
{
    (void)state;
    assert_int_equal(C("a/b/c"), IMAP_FOLDER_OK);
    assert_true(has(".a/cur") && has(".a/new") && has(".a/tmp") && has(".a/maildirfolder"));
    assert_true(has(".a.b/cur") && has(".a.b.c/maildirfolder"));
    assert_int_equal(C("a/b/c"), IMAP_FOLDER_EXISTS);
    assert_int_equal(C("a/b"), IMAP_FOLDER_EXISTS);
    assert_int_equal(C("Trash/"), IMAP_FOLDER_OK); /* trailing separator dropped */
    assert_true(has(".Trash/cur"));
    assert_int_equal(C("INBOX"), IMAP_FOLDER_EXISTS);
    assert_int_equal(C("inbox"), IMAP_FOLDER_EXISTS);
    assert_int_equal(C("inbox/sub"), IMAP_FOLDER_OK);
    assert_true(has(".INBOX.sub/cur"));
    assert_int_equal(C("a.b"), IMAP_FOLDER_INVALID);
    assert_int_equal(C("../x"), IMAP_FOLDER_INVALID);
    assert_int_equal(C(""), IMAP_FOLDER_INVALID);
    assert_int_equal(C("/"), IMAP_FOLDER_INVALID);
    assert_true(imap_folder_exists(md, "a/b", 3));
    assert_false(imap_folder_exists(md, "zz", 2));
    /* No temporary directories left behind. */
    DIR *d = opendir(md);
    struct dirent *e;
    while ((e = readdir(d)))
        assert_null(strstr(e->d_name, "..new."));
    closedir(d);
    /* A directory without cur/ (a crash of some other tool): CREATE completes it. */
    char p[512];
    snprintf(p, sizeof p, "%s/.half", md);
    mkdir(p, 0700);
    assert_false(imap_folder_exists(md, "half", 4));
    assert_int_equal(C("half"), IMAP_FOLDER_EXISTS);
    assert_true(imap_folder_exists(md, "half", 4));
}

static const struct imap_folder *entry(const struct imap_folder_list *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].name, name) == 0)
            return &l->v[i];
    return NULL;
}

static void test_list_attributes(void **state)
{
    (void)state;
    assert_int_equal(C("Sent"), IMAP_FOLDER_OK);
    assert_int_equal(C("work/2024"), IMAP_FOLDER_OK);
    assert_int_equal(C("INBOX/child"), IMAP_FOLDER_OK);
    /* A hole: .x.y without .x (another Maildir++ tool made it). */
    char p[512];
    snprintf(p, sizeof p, "%s/.x.y", md);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/.x.y/cur", md);
    mkdir(p, 0700);
    /* Not folders: dot files, "..", a file, a bad name, our delete leftovers. */
    put(".notadir", "");
    snprintf(p, sizeof p, "%s/..deleted.1", md);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/.a..b", md);
    mkdir(p, 0700);
    assert_int_equal(imap_folder_subscribe(md, "Sent", 4, 1), IMAP_FOLDER_OK);
    assert_int_equal(imap_folder_subscribe(md, "gone/away", 9, 1), IMAP_FOLDER_OK);

    struct imap_folder_list l;
    assert_int_equal(imap_folder_list(md, &l), 0);
    assert_string_equal(l.v[0].name, "INBOX");
    for (size_t i = 2; i < l.n; i++)
        assert_true(strcmp(l.v[i - 1].name, l.v[i].name) < 0);
    assert_int_equal(l.n, 8); /* INBOX INBOX/child Sent gone/away work work/2024 x x/y */
    assert_int_equal(entry(&l, "INBOX")->attrs, IMAP_FA_HASCHILDREN);
    assert_int_equal(entry(&l, "Sent")->attrs, IMAP_FA_HASNOCHILDREN | IMAP_FA_SUBSCRIBED | IMAP_FA_SENT);
    assert_int_equal(entry(&l, "work")->attrs, IMAP_FA_HASCHILDREN);
    assert_int_equal(entry(&l, "work/2024")->attrs, IMAP_FA_HASNOCHILDREN);
    assert_int_equal(entry(&l, "x")->attrs,
                     IMAP_FA_HOLE | IMAP_FA_NOSELECT | IMAP_FA_NONEXISTENT | IMAP_FA_HASCHILDREN);
    assert_int_equal(entry(&l, "gone/away")->attrs,
                     IMAP_FA_SUBSCRIBED_ONLY | IMAP_FA_NOSELECT | IMAP_FA_NONEXISTENT | IMAP_FA_SUBSCRIBED);
    char text[IMAP_FA_TEXT_MAX];
    imap_folder_attrs_text(entry(&l, "Sent")->attrs, ~0u, text, sizeof text);
    assert_string_equal(text, "\\HasNoChildren \\Subscribed \\Sent");
    imap_folder_attrs_text(entry(&l, "x")->attrs, ~0u & ~IMAP_FA_NONEXISTENT, text, sizeof text);
    assert_string_equal(text, "\\Noselect \\HasChildren");
    imap_folder_attrs_text(0, ~0u, text, sizeof text);
    assert_string_equal(text, "");
    char small[12];
    size_t n = imap_folder_attrs_text(entry(&l, "Sent")->attrs, ~0u, small, sizeof small);
    assert_true(n < sizeof small);
    imap_folder_list_free(&l);
}

static void test_subscriptions(void **state)
{
    (void)state;
    assert_int_equal(imap_folder_subscribe(md, "inbox", 5, 1), IMAP_FOLDER_OK);
    assert_int_equal(imap_folder_subscribe(md, "a/b", 3, 1), IMAP_FOLDER_OK);
    assert_int_equal(imap_folder_subscribe(md, "a/b", 3, 1), IMAP_FOLDER_OK); /* once */
    assert_int_equal(imap_folder_subscribe(md, "a.b", 3, 1), IMAP_FOLDER_INVALID);
    assert_int_equal(imap_folder_subscribed(md, "INBOX", 5), 1);
    assert_int_equal(imap_folder_subscribed(md, "a/b", 3), 1);
    assert_int_equal(imap_folder_subscribed(md, "a", 1), 0);
    char p[512], buf[256] = "";
    snprintf(p, sizeof p, "%s/subscriptions", md);
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    assert_string_equal(buf, "INBOX\na/b\n");
    assert_int_equal(imap_folder_subscribe(md, "a/b", 3, 0), IMAP_FOLDER_OK);
    assert_int_equal(imap_folder_subscribe(md, "never", 5, 0), IMAP_FOLDER_OK);
    assert_int_equal(imap_folder_subscribed(md, "a/b", 3), 0);
    assert_false(has("subscriptions.tmp"));

    /* Dovecot's version 2 file: hierarchy as tabs. Junk lines are skipped. */
    put("subscriptions", "V\t2\n\nINBOX\nwork\t2024\nbad.name\n\n");
    assert_int_equal(imap_folder_subscribed(md, "work/2024", 9), 1);
    assert_int_equal(imap_folder_subscribed(md, "INBOX", 5), 1);
    assert_int_equal(imap_folder_subscribed(md, "bad.name", 8), 0);
    /* Our old-style lines with CRLF. */
    put("subscriptions", "Sent\r\nDrafts\r\n");
    assert_int_equal(imap_folder_subscribed(md, "Drafts", 6), 1);
}

static void test_subscription_limit(void **state)
{
    (void)state;
    char p[512];
    snprintf(p, sizeof p, "%s/subscriptions", md);
    FILE *f = fopen(p, "w");
    for (int i = 0; i < IMAP_SUBSCRIPTIONS_MAX + 50; i++)
        fprintf(f, "f%d\n", i);
    fclose(f);
    assert_int_equal(imap_folder_subscribe(md, "one-more", 8, 1), IMAP_FOLDER_LIMIT);
    assert_int_equal(imap_folder_subscribed(md, "f999", 4), 1);
    assert_int_equal(imap_folder_subscribed(md, "f1000", 5), 0); /* read up to the bound */
}

static void test_delete(void **state)
{
    (void)state;
    assert_int_equal(C("a/b"), IMAP_FOLDER_OK);
    put(".a.b/cur/msg1:2,S", "x");
    put(".a.b/new/msg2", "y");
    put(".a/cur/msg0:2,", "z");
    /* RFC 3501 §6.3.4: a folder with children goes, messages and all; the children stay and
     * it is a hole (\Noselect \HasChildren) above them. Only the hole is refused. */
    assert_int_equal(imap_folder_delete(md, "a", 1), IMAP_FOLDER_OK);
    assert_false(has(".a"));
    assert_true(has(".a.b/cur/msg1:2,S") && has(".a.b/new/msg2"));
    struct imap_folder_list l;
    assert_int_equal(imap_folder_list(md, &l), 0);
    assert_int_equal(entry(&l, "a")->attrs, IMAP_FA_HOLE | IMAP_FA_NOSELECT | IMAP_FA_NONEXISTENT | IMAP_FA_HASCHILDREN);
    assert_int_equal(entry(&l, "a/b")->attrs, IMAP_FA_HASNOCHILDREN);
    imap_folder_list_free(&l);
    assert_int_equal(imap_folder_delete(md, "a", 1), IMAP_FOLDER_HASCHILDREN);
    assert_non_null(strstr(imap_folder_rc_text(IMAP_FOLDER_HASCHILDREN), "[HASCHILDREN]"));
    assert_int_equal(imap_folder_delete(md, "INBOX", 5), IMAP_FOLDER_INBOX);
    assert_int_equal(imap_folder_delete(md, "inbox", 5), IMAP_FOLDER_INBOX);
    assert_int_equal(imap_folder_delete(md, "nope", 4), IMAP_FOLDER_NONEXISTENT);
    assert_int_equal(imap_folder_delete(md, "a.b", 3), IMAP_FOLDER_INVALID);
    assert_int_equal(imap_folder_subscribe(md, "a/b", 3, 1), IMAP_FOLDER_OK);
    assert_int_equal(imap_folder_delete(md, "a/b", 3), IMAP_FOLDER_OK);
    assert_false(has(".a.b"));
    assert_int_equal(imap_folder_subscribed(md, "a/b", 3), 1); /* RFC 9051: subscriptions stay */
    assert_int_equal(imap_folder_delete(md, "a", 1), IMAP_FOLDER_NONEXISTENT); /* no hole now */
    /* INBOX's children are no reason to refuse anything either. */
    assert_int_equal(C("c/d/e"), IMAP_FOLDER_OK);
    assert_int_equal(imap_folder_delete(md, "c/d", 3), IMAP_FOLDER_OK);
    assert_true(has(".c/cur") && !has(".c.d") && has(".c.d.e/cur"));
    DIR *d = opendir(md);
    struct dirent *e;
    while ((e = readdir(d)))
        assert_null(strstr(e->d_name, "deleted"));
    closedir(d);
}

static void test_rename(void **state)
{
    (void)state;
    assert_int_equal(C("a/b"), IMAP_FOLDER_OK);
    assert_int_equal(C("other"), IMAP_FOLDER_OK);
    put(".a.b/cur/m1:2,S", "x");
    put(".a/postmesh-uidlist", "postmesh-uidlist 1 4242 2\n1 m0\n");
    assert_int_equal(imap_folder_subscribe(md, "a", 1, 1), IMAP_FOLDER_OK);
    assert_int_equal(imap_folder_subscribe(md, "a/b", 3, 1), IMAP_FOLDER_OK);
    assert_int_equal(imap_folder_subscribe(md, "ab", 2, 1), IMAP_FOLDER_OK);
    assert_int_equal(imap_folder_rename(md, "a", 1, "other", 5), IMAP_FOLDER_EXISTS);
    assert_int_equal(imap_folder_rename(md, "a", 1, "a/b/c", 5), IMAP_FOLDER_INVALID);
    assert_int_equal(imap_folder_rename(md, "a", 1, "a", 1), IMAP_FOLDER_EXISTS);
    assert_int_equal(imap_folder_rename(md, "nope", 4, "z", 1), IMAP_FOLDER_NONEXISTENT);
    assert_int_equal(imap_folder_rename(md, "a", 1, "INBOX", 5), IMAP_FOLDER_EXISTS);
    assert_int_equal(imap_folder_rename(md, "a", 1, "z.z", 3), IMAP_FOLDER_INVALID);
    assert_int_equal(imap_folder_rename(md, "a", 1, "z/y", 3), IMAP_FOLDER_OK);
    assert_false(has(".a") || has(".a.b"));
    assert_true(has(".z.y/postmesh-uidlist") && has(".z.y.b/cur/m1:2,S"));
    assert_int_equal(imap_folder_subscribed(md, "z/y", 3), 1);
    assert_int_equal(imap_folder_subscribed(md, "z/y/b", 5), 1);
    assert_int_equal(imap_folder_subscribed(md, "ab", 2), 1); /* not a child of "a" */
    assert_int_equal(imap_folder_subscribed(md, "a", 1), 0);
    /* A child's target taken (w is a hole above an existing w/b): nothing moves. */
    assert_int_equal(C("q/b"), IMAP_FOLDER_OK);
    char p[512];
    snprintf(p, sizeof p, "%s/.w.b", md);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/.w.b/cur", md);
    mkdir(p, 0700);
    assert_int_equal(imap_folder_rename(md, "q", 1, "w", 1), IMAP_FOLDER_EXISTS);
    assert_true(has(".q/cur") && has(".q.b/cur") && !has(".w"));
    /* Into a hole without conflicts: fine. */
    assert_int_equal(imap_folder_delete(md, "q/b", 3), IMAP_FOLDER_OK);
    assert_int_equal(imap_folder_rename(md, "q", 1, "w", 1), IMAP_FOLDER_OK);
    assert_true(has(".w/cur") && has(".w.b/cur") && !has(".q"));
}

static void deliver(const char *rel, time_t mtime)
{
    put(rel, "Subject: x\r\n\r\nbody\r\n");
    char p[512];
    snprintf(p, sizeof p, "%s/%s", md, rel);
    struct timespec ts[2] = {{mtime, 0}, {mtime, 0}};
    utimensat(AT_FDCWD, p, ts, 0);
}

static void test_rename_inbox(void **state)
{
    (void)state;
    deliver("new/m3", 3000);
    deliver("cur/m1:2,S", 1000);
    deliver("cur/m2:2,", 2000);
    assert_int_equal(C("INBOX/keep"), IMAP_FOLDER_OK);
    assert_int_equal(imap_folder_rename(md, "INBOX", 5, "Old", 3), IMAP_FOLDER_OK);
    assert_true(has(".INBOX.keep/cur")); /* INBOX's children stay */
    assert_true(has("cur") && !has("cur/m1:2,S") && !has("new/m3"));
    assert_true(has(".Old/cur/m1:2,S") && has(".Old/new/m3"));
    struct imap_view *v;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/.Old", md);
    assert_int_equal(imap_view_open(dir, 0, &v, NULL), IMAP_VIEW_OK);
    assert_int_equal(imap_view_count(v), 3);
    assert_int_equal(imap_view_flags(v, 1), IMAP_F_SEEN);
    assert_int_equal(imap_view_uid(v, 3), 3);
    assert_int_equal(imap_view_recent(v), 1); /* m3 was never taken from new/ */
    imap_view_close(v);
    assert_int_equal(imap_folder_rename(md, "INBOX", 5, "Old", 3), IMAP_FOLDER_EXISTS);
}

static void test_first_login(void **state)
{
    (void)state;
    assert_int_equal(imap_folders_init(md), 0);
    const char *special[] = {"Sent", "Drafts", "Trash", "Junk", "Archive", "INBOX"};
    for (int i = 0; i < 6; i++) {
        assert_true(imap_folder_exists(md, special[i], strlen(special[i])));
        assert_int_equal(imap_folder_subscribed(md, special[i], strlen(special[i])), 1);
    }
    struct imap_folder_list l;
    assert_int_equal(imap_folder_list(md, &l), 0);
    assert_true(entry(&l, "Junk")->attrs & IMAP_FA_JUNK);
    assert_true(entry(&l, "Archive")->attrs & IMAP_FA_ARCHIVE);
    assert_true(entry(&l, "Drafts")->attrs & IMAP_FA_DRAFTS);
    assert_true(entry(&l, "Trash")->attrs & IMAP_FA_TRASH);
    imap_folder_list_free(&l);
    /* The user deletes Junk: the next login leaves it deleted. */
    assert_int_equal(imap_folder_delete(md, "Junk", 4), IMAP_FOLDER_OK);
    assert_int_equal(imap_folders_init(md), 0);
    assert_false(imap_folder_exists(md, "Junk", 4));
}

static void test_status(void **state)
{
    (void)state;
    deliver("new/m3", 3000);
    deliver("cur/m1:2,S", 1000);
    deliver("cur/m2,S=99:2,F", 2000);
    struct imap_status st;
    int recovered = -1;
    assert_int_equal(imap_folder_status(md, ~0u, &st, &recovered), IMAP_FOLDER_OK);
    assert_int_equal(recovered, 0);
    assert_int_equal(st.messages, 3);
    assert_int_equal(st.recent, 1);
    assert_int_equal(st.unseen, 2);
    assert_int_equal(st.uidnext, 4);
    assert_int_equal(st.size, 99 + 2 * strlen("Subject: x\r\n\r\nbody\r\n"));
    uint32_t validity = st.uidvalidity;
    /* STATUS numbered them; a SELECT sees the same UIDs and takes m3 as \Recent. */
    struct imap_view *v;
    assert_int_equal(imap_view_open(md, 0, &v, NULL), IMAP_VIEW_OK);
    assert_int_equal(imap_view_uidvalidity(v), validity);
    assert_int_equal(imap_view_uid(v, 3), 3);
    assert_int_equal(imap_view_recent(v), 1);
    imap_view_close(v);
    assert_int_equal(imap_folder_status(md, IMAP_ST_MESSAGES, &st, NULL), IMAP_FOLDER_OK);
    assert_int_equal(st.recent, 0);
    assert_int_equal(st.uidvalidity, validity);
    char p[512];
    snprintf(p, sizeof p, "%s/.nope", md);
    assert_int_equal(imap_folder_status(p, ~0u, &st, NULL), IMAP_FOLDER_NONEXISTENT);
    /* An empty folder keeps one UIDVALIDITY between two STATUS. */
    assert_int_equal(C("Empty"), IMAP_FOLDER_OK);
    snprintf(p, sizeof p, "%s/.Empty", md);
    assert_int_equal(imap_folder_status(p, ~0u, &st, NULL), IMAP_FOLDER_OK);
    validity = st.uidvalidity;
    assert_int_equal(st.uidnext, 1);
    assert_true(has(".Empty/postmesh-uidlist")); /* written, so the value is kept */
    struct imap_uidlist ul;
    assert_int_equal(imap_uidlist_load(p, &ul), IMAP_UIDLIST_OK);
    assert_int_equal(ul.uidvalidity, validity);
    imap_uidlist_free(&ul);
    /* An unreadable list: recovered, with a new UIDVALIDITY. */
    put("postmesh-uidlist", "junk");
    assert_int_equal(imap_folder_status(md, ~0u, &st, &recovered), IMAP_FOLDER_OK);
    assert_int_equal(recovered, 1);
    assert_int_equal(st.messages, 3);
}

/* RFC 3501 §2.3.1.1: CREATE, APPEND, DELETE, CREATE, APPEND within one second must not give
 * the same UIDVALIDITY with UID 1 again. */
static void test_delete_create_new_uidvalidity(void **state)
{
    (void)state;
    char dir[512], tmp[512];
    snprintf(dir, sizeof dir, "%s/.Again", md);
    snprintf(tmp, sizeof tmp, "%s/tmp/append", md);
    uint32_t last = 0;
    for (int round = 0; round < 3; round++) {
        assert_int_equal(C("Again"), IMAP_FOLDER_OK);
        put("tmp/append", "Subject: x\r\n\r\nx\r\n");
        uint32_t validity, uid;
        assert_int_equal(imap_store_append(dir, tmp, 0, 0, &validity, &uid), IMAP_VIEW_OK);
        assert_int_equal(uid, 1);
        assert_true(validity > last);
        last = validity;
        assert_int_equal(imap_folder_delete(md, "Again", 5), IMAP_FOLDER_OK);
    }
    /* A lost INBOX list, rebuilt in the same second: a new UIDVALIDITY too. */
    deliver("new/m1", 1000);
    struct imap_status st;
    assert_int_equal(imap_folder_status(md, ~0u, &st, NULL), IMAP_FOLDER_OK);
    uint32_t inbox = st.uidvalidity;
    assert_true(inbox > last);
    snprintf(dir, sizeof dir, "%s/" IMAP_UIDLIST_FILE, md);
    assert_int_equal(unlink(dir), 0);
    assert_int_equal(imap_folder_status(md, ~0u, &st, NULL), IMAP_FOLDER_OK);
    assert_true(st.uidvalidity > inbox);
}

/* Every login sweeps INBOX's tmp/ of files untouched for 36 hours (an APPEND whose session
 * died left its literal there); younger files and dot files stay. */
static void test_login_sweeps_tmp(void **state)
{
    (void)state;
    time_t old = time(NULL) - 37 * 3600;
    deliver("tmp/1700000000.M1P2Q3.host", old);
    deliver("tmp/.dot", old);
    put("tmp/fresh", "x");
    char p[512];
    snprintf(p, sizeof p, "%s/tmp/olddir", md);
    assert_int_equal(mkdir(p, 0700), 0);
    struct timespec ts[2] = {{old, 0}, {old, 0}};
    assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
    assert_int_equal(imap_folders_init(md), 0);
    assert_false(has("tmp/1700000000.M1P2Q3.host"));
    assert_true(has("tmp/.dot") && has("tmp/fresh") && has("tmp/olddir"));
    deliver("tmp/second", old); /* not only at the first login */
    assert_int_equal(imap_folders_init(md), 0);
    assert_false(has("tmp/second"));
}

static void test_folder_limit(void **state)
{
    (void)state;
    char p[512];
    for (int i = 0; i < IMAP_FOLDER_MAX - 1; i++) { /* made by hand: CREATE's fsyncs are slow */
        snprintf(p, sizeof p, "%s/.f%d", md, i);
        assert_int_equal(mkdir(p, 0700), 0);
        snprintf(p, sizeof p, "%s/.f%d/cur", md, i);
        assert_int_equal(mkdir(p, 0700), 0);
    }
    assert_int_equal(C("last"), IMAP_FOLDER_OK);
    assert_int_equal(C("one-more"), IMAP_FOLDER_LIMIT);
    struct imap_folder_list l;
    assert_int_equal(imap_folder_list(md, &l), 0);
    assert_int_equal(l.n, IMAP_FOLDER_MAX + 1);
    imap_folder_list_free(&l);
}

static void test_rc_text(void **state)
{
    (void)state;
    assert_string_equal(imap_folder_rc_text(IMAP_FOLDER_EXISTS), "[ALREADYEXISTS] Mailbox already exists");
    assert_non_null(strstr(imap_folder_rc_text(IMAP_FOLDER_ERR), "[SERVERBUG]"));
    assert_non_null(strstr(imap_folder_rc_text(-99), "[SERVERBUG]"));
}

/* A folder directory, or its cur/ new/ tmp/, that is a symlink (to another user's Maildir
 * here) is no folder: not listed, not selectable, no STATUS, no APPEND into it. */
static void test_symlinked_folders(void **state)
{
    (void)state;
    char bob[160], p[512], q[512];
    snprintf(bob, sizeof bob, "%s-bob", md);
    assert_int_equal(mkdir(bob, 0700), 0);
    const char *subs[] = {"new", "cur", "tmp"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", bob, subs[i]);
        assert_int_equal(mkdir(p, 0700), 0);
    }
    snprintf(p, sizeof p, "%s/cur/secret:2,", bob);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs("Subject: bob's\r\n\r\nx\r\n", f);
    fclose(f);
    snprintf(p, sizeof p, "%s/.Evil", md);
    assert_int_equal(symlink(bob, p), 0);
    assert_int_equal(imap_folder_create(md, "Half", 4), IMAP_FOLDER_OK);
    snprintf(p, sizeof p, "%s/.Half/cur", md);
    snprintf(q, sizeof q, "%s/cur", bob);
    assert_int_equal(rmdir(p), 0);
    assert_int_equal(symlink(q, p), 0);

    assert_false(imap_folder_exists(md, "Evil", 4));
    assert_false(imap_folder_exists(md, "Half", 4));
    struct imap_folder_list list;
    assert_int_equal(imap_folder_list(md, &list), 0);
    for (size_t i = 0; i < list.n; i++)
        assert_true(strcmp(list.v[i].name, "Evil") != 0 && strcmp(list.v[i].name, "Half") != 0);
    imap_folder_list_free(&list);
    const char *dirs[] = {".Evil", ".Half"};
    for (int i = 0; i < 2; i++) {
        char dir[256];
        snprintf(dir, sizeof dir, "%s/%s", md, dirs[i]);
        struct imap_view *v = NULL;
        assert_int_equal(imap_view_open(dir, 0, &v, NULL), IMAP_VIEW_NONEXISTENT);
        struct imap_status st;
        assert_int_equal(imap_folder_status(dir, ~0u, &st, NULL), IMAP_FOLDER_NONEXISTENT);
        snprintf(p, sizeof p, "%s/tmp/append.%d", md, i);
        f = fopen(p, "w");
        assert_non_null(f);
        fclose(f);
        uint32_t validity, uid;
        assert_int_equal(imap_store_append(dir, p, 0, 0, &validity, &uid), IMAP_VIEW_NONEXISTENT);
        unlink(p);
    }
    /* INBOX's own tmp/ a symlink: the Maildir is refused as a whole. */
    snprintf(p, sizeof p, "%s/tmp", md);
    snprintf(q, sizeof q, "%s/tmp", bob);
    assert_int_equal(rmdir(p), 0);
    assert_int_equal(symlink(q, p), 0);
    struct imap_view *v = NULL;
    assert_int_equal(imap_view_open(md, 0, &v, NULL), IMAP_VIEW_NONEXISTENT);
    /* Nothing of bob's was touched: no list, no new files. */
    snprintf(p, sizeof p, "%s/" IMAP_UIDLIST_FILE, bob);
    assert_int_not_equal(access(p, F_OK), 0);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", bob);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_rules), T(test_paths),          T(test_create),
        T(test_list_attributes),           T(test_subscriptions),  T(test_subscription_limit),
        T(test_delete),                    T(test_rename),         T(test_rename_inbox),
        T(test_first_login),               T(test_status),         T(test_folder_limit),
        cmocka_unit_test(test_rc_text),    T(test_delete_create_new_uidvalidity), T(test_login_sweeps_tmp),
        T(test_symlinked_folders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
