/* The maildrop: scan order, sizes, UIDLs from file names, the exclusive lock, UPDATE. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "pop3d/maildrop.h"

static char dir[128];

static void put(const char *sub, const char *name, const char *content, time_t mtime)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s/%s", dir, sub, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
    struct timeval tv[2] = {{mtime, 0}, {mtime, 0}};
    utimes(path, tv);
}

static int exists(const char *sub, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s/%s", dir, sub, name);
    return access(path, F_OK) == 0;
}

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/pmdropXXXXXX");
    assert_non_null(mkdtemp(dir));
    char p[256];
    const char *subs[] = {"new", "cur", "tmp"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, subs[i]);
        mkdir(p, 0700);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

static void test_uidl_from_name(void **state)
{
    (void)state;
    char u[POP3_UIDL_MAX + 1];
    pop3_uidl_from_name("661403C3C5AC3000.0.mx.example.test", u);
    assert_string_equal(u, "661403C3C5AC3000.0.mx.example.test");
    pop3_uidl_from_name("661403C3C5AC3000.0.mx.example.test:2,S", u);
    assert_string_equal(u, "661403C3C5AC3000.0.mx.example.test");
    char longname[200];
    memset(longname, 'a', 150);
    longname[150] = '\0';
    pop3_uidl_from_name(longname, u);
    assert_true(strlen(u) <= POP3_UIDL_MAX && u[0] == 'h');
    char again[POP3_UIDL_MAX + 1];
    pop3_uidl_from_name(longname, again);
    assert_string_equal(u, again); /* stable */
    pop3_uidl_from_name("with space", u);
    assert_null(strchr(u, ' '));
}

static void test_scan_order_sizes_and_update(void **state)
{
    (void)state;
    put("new", "B.0.host", "second\r\n", 2000);
    put("new", "A.0.host", "first!\r\n", 1000);
    put("cur", "C.0.host:2,S", "third message\r\n", 3000);
    put("new", ".hidden", "x", 500);
    put("tmp", "T.0.host", "in flight", time(NULL));
    put("tmp", "STALE.0.host", "left by a dead writer", 1000);
    struct pop3_maildrop *d;
    assert_int_equal(pop3_maildrop_open(dir, &d), POP3_DROP_OK);
    assert_int_equal(d->n, 3);
    assert_string_equal(pop3_maildrop_get(d, 1)->uidl, "A.0.host");
    assert_string_equal(pop3_maildrop_get(d, 2)->uidl, "B.0.host");
    assert_string_equal(pop3_maildrop_get(d, 3)->uidl, "C.0.host");
    assert_true(exists("tmp", "T.0.host"));      /* a delivery in progress is left alone */
    assert_false(exists("tmp", "STALE.0.host")); /* older than 36 hours: swept */
    assert_null(pop3_maildrop_get(d, 0));
    assert_null(pop3_maildrop_get(d, 4));
    size_t count;
    unsigned long long octets;
    pop3_maildrop_stat(d, &count, &octets);
    assert_int_equal(count, 3);
    assert_int_equal(octets, 8 + 8 + 15);

    /* a second session is refused while the first holds the lock */
    struct pop3_maildrop *d2;
    assert_int_equal(pop3_maildrop_open(dir, &d2), POP3_DROP_LOCKED);

    pop3_maildrop_get(d, 1)->deleted = 1;
    pop3_maildrop_get(d, 3)->deleted = 1;
    pop3_maildrop_stat(d, &count, &octets);
    assert_int_equal(count, 1);
    pop3_maildrop_undelete_all(d);
    pop3_maildrop_get(d, 3)->deleted = 1;
    size_t removed;
    assert_int_equal(pop3_maildrop_update(d, &removed), 0);
    assert_int_equal(removed, 1);
    pop3_maildrop_close(d);
    assert_true(exists("new", "A.0.host"));
    assert_true(exists("new", "B.0.host"));
    assert_false(exists("cur", "C.0.host:2,S"));

    /* the lock is gone with the session */
    assert_int_equal(pop3_maildrop_open(dir, &d2), POP3_DROP_OK);
    assert_int_equal(d2->n, 2);
    pop3_maildrop_close(d2);
}

static void test_closing_without_update_deletes_nothing(void **state)
{
    (void)state;
    put("new", "K.0.host", "keep\r\n", 1000);
    struct pop3_maildrop *d;
    assert_int_equal(pop3_maildrop_open(dir, &d), POP3_DROP_OK);
    pop3_maildrop_get(d, 1)->deleted = 1;
    pop3_maildrop_close(d); /* connection lost: no UPDATE */
    assert_true(exists("new", "K.0.host"));
}

/* An IMAP session renames files while pop3d holds the maildrop (new/ -> cur/ with ":2,",
 * then flags): RETR's relocate and UPDATE follow the rename by the name before ':'. */
static void test_follows_imap_renames(void **state)
{
    (void)state;
    put("new", "R.0.host", "renamed\r\n", 1000);
    put("new", "S.0.host", "stays\r\n", 2000);
    struct pop3_maildrop *d;
    assert_int_equal(pop3_maildrop_open(dir, &d), POP3_DROP_OK);
    char from[512], to[512];
    snprintf(from, sizeof from, "%s/new/R.0.host", dir);
    snprintf(to, sizeof to, "%s/cur/R.0.host:2,S", dir);
    assert_int_equal(rename(from, to), 0);
    struct pop3_msg *m = pop3_maildrop_get(d, 1);
    assert_int_equal(pop3_maildrop_relocate(d, m), 0);
    assert_string_equal(m->path, to);
    snprintf(from, sizeof from, "%s/cur/R.0.host:2,FS", dir);
    assert_int_equal(rename(to, from), 0);
    m->deleted = 1;
    size_t removed;
    assert_int_equal(pop3_maildrop_update(d, &removed), 0);
    assert_int_equal(removed, 1);
    assert_false(exists("cur", "R.0.host:2,FS"));
    assert_true(exists("new", "S.0.host"));
    assert_int_equal(pop3_maildrop_relocate(d, m), -1); /* gone now */
    pop3_maildrop_close(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uidl_from_name),
        cmocka_unit_test_setup_teardown(test_scan_order_sizes_and_update, setup, teardown),
        cmocka_unit_test_setup_teardown(test_closing_without_update_deletes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_follows_imap_renames, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
