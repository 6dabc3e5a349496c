/* Mailbox paths seen from a chroot or not, and the parent's ownership repair: only the
 * mailbox's own directories and files change, they get the store group (vmail) with group
 * read/write, what root owned becomes the worker user's, nothing is created, no symlink is
 * followed. The repair half needs root and the group (skipped otherwise). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mailroot.h"
#include "privsep.h"
#include "runas.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/pmmailrootXXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

static void test_paths(void **state)
{
    (void)state;
    char p[512];
    assert_int_equal(pm_mailroot_maildir(".", "Alice@Example.TEST", p, sizeof p), 0);
    assert_string_equal(p, "./example.test/alice/Maildir");
    assert_int_equal(pm_mailroot_maildir("/srv/pm/mail", "../x@a..b", p, sizeof p), 0);
    assert_string_equal(p, "/srv/pm/mail/a..b/%2e.%2fx/Maildir");
    assert_int_equal(pm_mailroot_maildir(".", "noat", p, sizeof p), -1);
    assert_int_equal(pm_mailroot_maildir(".", "a@", p, sizeof p), -1);
    assert_int_equal(pm_mailroot_maildir(".", "alice@example.test", p, 10), -1);
    struct pm_config cfg = {.state_dir = "/var/lib/pm"};
    pm_mailroot_init(&cfg, 1, p, sizeof p);
    assert_string_equal(p, ".");
    pm_mailroot_init(&cfg, 0, p, sizeof p);
    assert_string_equal(p, "/var/lib/pm/mail");
}

static void mk(const char *rel)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    assert_int_equal(mkdir(p, 0755), 0);
}

static struct stat info(const char *rel)
{
    char p[256];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    assert_int_equal(lstat(p, &st), 0);
    return st;
}

static uid_t owner(const char *rel) { return info(rel).st_uid; }

static void test_repair(void **state)
{
    (void)state;
    unsigned uid, gid;
    struct group *store = getgrnam(PM_RUNAS_STORE_GROUP);
    if (geteuid() != 0 || pm_privsep_lookup("nobody", &uid, &gid) < 0 || !store)
        skip();
    mk("example.test");
    mk("example.test/alice");
    mk("example.test/alice/Maildir");
    mk("example.test/alice/Maildir/new");
    char p[256];
    snprintf(p, sizeof p, "%s/example.test/alice/Maildir/new/1.0.mx", dir);
    close(open(p, O_WRONLY | O_CREAT, 0600));
    mk("other");                                   /* not alice's: stays root's */
    snprintf(p, sizeof p, "%s/example.test/bob", dir);
    assert_int_equal(symlink("../other", p), 0);   /* a planted link */

    /* domain, local part, Maildir, new/ and the file: 5 entries (the store's root is the
     * workers' chroot: root's) */
    assert_int_equal(pm_mailroot_repair(dir, "alice@example.test", "nobody"), 5);
    struct stat f = info("example.test/alice/Maildir/new/1.0.mx"), d = info("example.test/alice");
    assert_int_equal(f.st_uid, uid);
    assert_int_equal(f.st_gid, store->gr_gid);
    assert_int_equal(f.st_mode & 0777, 0660);
    assert_int_equal(d.st_uid, uid);
    assert_int_equal(d.st_gid, store->gr_gid);
    assert_int_equal(d.st_mode & 0777, 0775);
    assert_int_equal(owner("."), 0);
    assert_int_equal(pm_mailroot_repair(dir, "alice@example.test", "nobody"), 0); /* already right */
    assert_int_equal(owner("other"), 0);

    /* bob's "mailbox" is the link: not followed, nothing changes hands, nothing is made */
    assert_int_equal(pm_mailroot_repair(dir, "bob@example.test", "nobody"), 0);
    assert_int_equal(owner("other"), 0);
    assert_int_equal(pm_mailroot_repair(dir, "carol@nowhere.test", "nobody"), 0);
    snprintf(p, sizeof p, "%s/nowhere.test", dir);
    assert_int_not_equal(access(p, F_OK), 0);
    assert_int_equal(pm_mailroot_repair(dir, "noat", "nobody"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths),
        cmocka_unit_test_setup_teardown(test_repair, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
