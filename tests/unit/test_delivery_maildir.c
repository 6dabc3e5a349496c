/* Local delivery's Maildir writer: mailbox paths, file names, trace headers, one copy per
 * (queue id, recipient) even when the job repeats or the reader moved the file to cur/. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "delivery/maildir.h"
#include "mailstore.h"

static char root[128];

/* This program's fsync replaces libc's for everything linked into it: it records the path of
 * every file or directory synced, so a test can see that a sync happened, not just that the
 * call returned. */
static char synced[32][512];
static int nsynced;

int fsync(int fd)
{
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    char *dst = synced[nsynced % 32];
    ssize_t n = readlink(link, dst, sizeof synced[0] - 1);
    dst[n > 0 ? n : 0] = '\0';
    nsynced++;
    return (int)syscall(SYS_fsync, fd);
}

static int was_synced(const char *path)
{
    for (int i = 0; i < nsynced && i < 32; i++)
        if (strcmp(synced[i], path) == 0)
            return 1;
    return 0;
}

static int setup(void **state)
{
    (void)state;
    strcpy(root, "/tmp/pmdelivXXXXXX");
    assert_non_null(mkdtemp(root));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    return system(cmd);
}

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void test_mailbox_paths(void **state)
{
    (void)state;
    struct pm_config cfg = {.state_dir = "/srv/pm"};
    char p[512];
    assert_int_equal(pm_mailstore_maildir(&cfg, "Alice@Example.TEST", p, sizeof p), 0);
    assert_string_equal(p, "/srv/pm/mail/example.test/alice/Maildir");
    assert_int_equal(pm_mailstore_maildir(&cfg, "first.last+tag@example.test", p, sizeof p), 0);
    assert_string_equal(p, "/srv/pm/mail/example.test/first.last+tag/Maildir");
    /* nothing can climb out of the store or hide a '/' */
    assert_int_equal(pm_mailstore_maildir(&cfg, "../../etc@example.test", p, sizeof p), 0);
    assert_string_equal(p, "/srv/pm/mail/example.test/%2e.%2f..%2fetc/Maildir");
    assert_int_equal(pm_mailstore_maildir(&cfg, "a@..", p, sizeof p), 0);
    assert_string_equal(p, "/srv/pm/mail/%2e./a/Maildir");
    assert_int_equal(pm_mailstore_maildir(&cfg, "\"a b\"@example.test", p, sizeof p), 0);
    assert_string_equal(p, "/srv/pm/mail/example.test/%22a%20b%22/Maildir");
    /* '%' itself is encoded, so encodings never collide with real names */
    assert_int_equal(pm_mailstore_maildir(&cfg, "%2e@example.test", p, sizeof p), 0);
    assert_string_equal(p, "/srv/pm/mail/example.test/%252e/Maildir");
    assert_int_equal(pm_mailstore_maildir(&cfg, "noat", p, sizeof p), -1);
    assert_int_equal(pm_mailstore_maildir(&cfg, "@example.test", p, sizeof p), -1);
    assert_int_equal(pm_mailstore_maildir(&cfg, "a@", p, sizeof p), -1);
}

static void test_file_name_and_headers(void **state)
{
    (void)state;
    char n[256];
    char d[DELIVERY_DIGEST_LEN + 1];
    delivery_body_digest((const uint8_t *)"abc", 3, d);
    assert_string_equal(d, "BA7816BF"); /* SHA-256("abc") begins ba7816bf */
    assert_int_equal(delivery_file_name("661403C3C5AC3000", 2, d, "mx.example.test", n, sizeof n), 0);
    assert_string_equal(n, "661403C3C5AC3000.2.BA7816BF.mx.example.test");
    assert_int_equal(delivery_file_name("ABC", 0, d, "a/b:c", n, sizeof n), 0);
    assert_string_equal(n, "ABC.0.BA7816BF.a\\057b\\072c");
    assert_int_equal(delivery_file_name("../x", 0, d, "h", n, sizeof n), -1);
    assert_int_equal(delivery_file_name("", 0, d, "h", n, sizeof n), -1);
    size_t len;
    char *h = delivery_trace_headers("bob@remote.test", "alice@example.test", &len);
    assert_string_equal(h, "Return-Path: <bob@remote.test>\r\nDelivered-To: alice@example.test\r\n");
    assert_int_equal(len, strlen(h));
    free(h);
    h = delivery_trace_headers("", "x@y\r\nBcc: evil", &len);
    assert_string_equal(h, "Return-Path: <>\r\nDelivered-To: x@y??Bcc: evil\r\n");
    free(h);
}

static void test_write_once(void **state)
{
    (void)state;
    char md[256], dir[300], path[600];
    snprintf(md, sizeof md, "%s/mail/example.test/alice/Maildir", root);
    const char *head = "Return-Path: <>\r\n";
    const char *body = "Subject: t\r\n\r\n\xe9t\xe9\r\n.\r\n";
    assert_int_equal(delivery_maildir_write(md, "Q1.0.h", head, strlen(head), (const uint8_t *)body, strlen(body)),
                     DELIVERY_WRITTEN);
    snprintf(path, sizeof path, "%s/new/Q1.0.h", md);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char got[256];
    size_t n = fread(got, 1, sizeof got, f);
    fclose(f);
    assert_int_equal(n, strlen(head) + strlen(body));
    assert_memory_equal(got, head, strlen(head));
    assert_memory_equal(got + strlen(head), body, strlen(body));

    /* the same job again: no second copy, no leftovers in tmp/; and the copy found is made
     * durable (new/ synced) before it is reported, since a killed worker may have linked it
     * without syncing the directory */
    nsynced = 0;
    assert_int_equal(delivery_maildir_write(md, "Q1.0.h", head, strlen(head), (const uint8_t *)body, strlen(body)),
                     DELIVERY_DUPLICATE);
    snprintf(dir, sizeof dir, "%s/new", md);
    assert_true(was_synced(dir));
    assert_int_equal(count_files(dir), 1);
    snprintf(dir, sizeof dir, "%s/tmp", md);
    assert_int_equal(count_files(dir), 0);

    /* a reader moved it to cur/ and flagged it: still a duplicate */
    char cur[600];
    snprintf(cur, sizeof cur, "%s/cur/Q1.0.h:2,S", md);
    assert_int_equal(rename(path, cur), 0);
    nsynced = 0;
    assert_int_equal(delivery_maildir_write(md, "Q1.0.h", head, strlen(head), (const uint8_t *)body, strlen(body)),
                     DELIVERY_DUPLICATE);
    snprintf(dir, sizeof dir, "%s/cur", md);
    assert_true(was_synced(dir));
    snprintf(dir, sizeof dir, "%s/new", md);
    assert_int_equal(count_files(dir), 0);
    /* another recipient index is another copy */
    assert_int_equal(delivery_maildir_write(md, "Q1.1.h", head, strlen(head), (const uint8_t *)body, strlen(body)),
                     DELIVERY_WRITTEN);
    assert_int_equal(count_files(dir), 1);
}

static void test_write_error_is_reported(void **state)
{
    (void)state;
    /* The mailbox path runs into a regular file: an error, never a silent success. */
    char blocker[256], md[300];
    snprintf(blocker, sizeof blocker, "%s/blocker", root);
    FILE *f = fopen(blocker, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(md, sizeof md, "%s/Maildir", blocker);
    int rc = delivery_maildir_write(md, "Q2.0.h", "x", 1, (const uint8_t *)"y", 1);
    assert_true(rc < 0);
    assert_int_equal(-rc, ENOTDIR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mailbox_paths),
        cmocka_unit_test(test_file_name_and_headers),
        cmocka_unit_test_setup_teardown(test_write_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_error_is_reported, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
