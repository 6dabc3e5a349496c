/* The allowlist reader against key files caught while they are written (common/allowlist.c,
 * common/allowlist_scan.c): a key file read half-written is read again at the next knock
 * (a ZAP denial is final: libzmq does not reconnect after it), a file created in the same
 * timestamp tick as the last change still counts as a change, a key rewritten in place
 * keeps its previous key while it is being written (but not for ever), and an unchanged
 * directory is still not read again. Each case also through the reader's slot (answered
 * in-process here: outside.c's serve()). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "allowlist.h"
#include "keys.h"
#include "log.h"
#include "outside.h"

static char dir[64];

static int setup(void **state)
{
    strcpy(dir, "/tmp/pmallowXXXXXX");
    if (!mkdtemp(dir) || chmod(dir, 0755) < 0)
        return -1;
    pm_allowlist_set(""); /* nothing kept from the last case's directory */
    /* Some cases go through a reader slot (as the queue and resolver do), others by path. */
    if (*state && pm_outside_add_keys(dir) < 0)
        return -1;
    return 0;
}

/* The directory holds only the key files a case wrote. */
static int teardown(void **state)
{
    (void)state;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));)
        if (e->d_name[0] != '.')
            unlinkat(dirfd(d), e->d_name, 0);
    if (d)
        closedir(d);
    return rmdir(dir);
}

static void path_of(char *dst, size_t size, const char *name)
{
    snprintf(dst, size, "%s/%s.pub", dir, name);
}

/* Writes text to name.pub in place (open, truncate, write): what `echo KEY > f`, Python's
 * write_bytes or an editor writing in place do, never a rename. */
static void write_in_place(const char *name, const char *text, int flags)
{
    char p[128];
    path_of(p, sizeof p, name);
    int fd = open(p, O_WRONLY | O_CREAT | flags, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(close(fd), 0);
}

/* write_in_place, then what a knocking unknown key makes the server ask: it must read again. */
static void write_and_knock(const char *name, const char *text, int flags)
{
    write_in_place(name, text, flags);
    assert_int_equal(pm_allowlist_reload_if_changed(dir), 1);
}

struct key {
    char pub[PM_KEY_Z85];      /* as the allowlist is asked */
    char line[PM_KEY_Z85 + 1]; /* as its file holds it */
};

static struct key new_key(void)
{
    struct key k;
    char sec[PM_KEY_Z85];
    assert_int_equal(zmq_curve_keypair(k.pub, sec), 0);
    snprintf(k.line, sizeof k.line, "%s\n", k.pub);
    return k;
}

static int listed(const char *pub, const char *want_name)
{
    enum pm_role role = PM_ROLE_NONE;
    char name[PM_KEY_NAME] = "";
    return pm_allowlist_find_z85(pub, &role, name) && strcmp(name, want_name) == 0 && role != PM_ROLE_NONE;
}

/* The CI flake: a peer's file created, another key knocks (the reload reads the new file
 * half-written), the file is completed in place (the directory does not change), then the
 * peer knocks: the reload it triggers must read the file again and admit it. */
static void test_a_key_read_half_written_is_admitted_once_whole(void **state)
{
    (void)state;
    struct key other = new_key(), late = new_key();
    write_in_place("delivery.other", other.line, O_TRUNC);
    write_and_knock("smtpd.late", "", O_TRUNC); /* created, not written yet */
    assert_true(listed(other.pub, "delivery.other"));
    assert_false(listed(late.pub, "smtpd.late"));
    write_and_knock("smtpd.late", late.line, O_APPEND); /* now whole */
    assert_true(listed(late.pub, "smtpd.late"));
    assert_int_equal(pm_allowlist_reload_if_changed(dir), 0); /* and then unchanged */
}

/* Half a key (a write in two parts), then the rest: the same. */
static void test_a_key_read_as_a_prefix_is_admitted_once_whole(void **state)
{
    (void)state;
    struct key k = new_key();
    char half[24];
    snprintf(half, sizeof half, "%.20s", k.line);
    write_in_place("mta.half", half, O_TRUNC);
    assert_int_equal(pm_allowlist_reload(dir), 0);
    assert_false(listed(k.pub, "mta.half"));
    write_and_knock("mta.half", k.line + 20, O_APPEND);
    assert_true(listed(k.pub, "mta.half"));
}

/* File timestamps are coarse (a clock tick): a file created right after a reload can leave
 * the directory's mtime as it was. Emulated by putting the old mtime back. */
static void test_a_key_created_in_the_same_tick_is_seen(void **state)
{
    (void)state;
    struct key a = new_key(), b = new_key();
    write_in_place("smtpd.a", a.line, O_TRUNC);
    assert_int_equal(pm_allowlist_reload(dir), 1);
    struct stat before;
    assert_int_equal(stat(dir, &before), 0);
    write_in_place("smtpd.b", b.line, O_TRUNC);
    struct timespec times[2] = {before.st_atim, before.st_mtim};
    assert_int_equal(utimensat(AT_FDCWD, dir, times, 0), 0);
    assert_int_equal(pm_allowlist_reload_if_changed(dir), 1);
    assert_true(listed(b.pub, "smtpd.b"));
}

/* An admitted key whose file is rewritten in place: while the file is being written (not a
 * key yet, modified just now) its previous key stays, so a connected peer and its reconnect
 * stay admitted; the new key replaces it once whole. A file left half-written long ago is no
 * key at all. */
static void test_a_key_rewritten_in_place_keeps_its_previous_key_while_written(void **state)
{
    (void)state;
    struct key k1 = new_key(), k2 = new_key();
    write_in_place("smtpd.r", k1.line, O_TRUNC);
    assert_int_equal(pm_allowlist_reload(dir), 1);
    assert_true(listed(k1.pub, "smtpd.r"));

    write_in_place("smtpd.r", "", O_TRUNC); /* truncated: the new content is on its way */
    assert_int_equal(pm_allowlist_reload(dir), 1);
    assert_true(listed(k1.pub, "smtpd.r"));
    write_and_knock("smtpd.r", k2.line, O_APPEND);
    assert_true(listed(k2.pub, "smtpd.r"));
    assert_false(listed(k1.pub, "smtpd.r"));

    /* Half-written and then left alone for an hour: not being written, so nothing kept. */
    char half[24], p[128];
    snprintf(half, sizeof half, "%.20s", k2.line);
    write_in_place("smtpd.r", half, O_TRUNC);
    path_of(p, sizeof p, "smtpd.r");
    struct timespec old[2] = {{.tv_sec = time(NULL) - 3600}, {.tv_sec = time(NULL) - 3600}};
    assert_int_equal(utimensat(AT_FDCWD, p, old, 0), 0);
    assert_int_equal(pm_allowlist_reload(dir), 0);
    assert_false(listed(k2.pub, "smtpd.r"));
}

/* Nothing changed: not read again (a stream of unknown keys costs no scan), even with a
 * broken file in the directory; a change of a file alone (its mode) is a change. */
static void test_an_unchanged_directory_is_not_read_again(void **state)
{
    (void)state;
    struct key k = new_key();
    char p[128];
    write_in_place("cli.broken", "not a key\n", O_TRUNC);
    write_in_place("cli.w", k.line, O_TRUNC);
    path_of(p, sizeof p, "cli.w");
    assert_int_equal(chmod(p, 0664), 0); /* others may write it: skipped */
    assert_int_equal(pm_allowlist_reload(dir), 0);
    assert_int_equal(pm_allowlist_reload_if_changed(dir), 0);
    assert_int_equal(pm_allowlist_reload_if_changed(dir), 0);
    assert_int_equal(chmod(p, 0644), 0);
    assert_int_equal(pm_allowlist_reload_if_changed(dir), 1);
    assert_true(listed(k.pub, "cli.w"));
    assert_int_equal(pm_allowlist_reload_if_changed(dir), 0);
}

#define BOTH(t)                                                                                                        \
    cmocka_unit_test_prestate_setup_teardown(t, setup, teardown, NULL),                                                \
        cmocka_unit_test_prestate_setup_teardown(t, setup, teardown, (void *)1)

int main(void)
{
    pm_log_init("test");
    const struct CMUnitTest tests[] = {
        BOTH(test_a_key_read_half_written_is_admitted_once_whole),
        BOTH(test_a_key_read_as_a_prefix_is_admitted_once_whole),
        BOTH(test_a_key_created_in_the_same_tick_is_seen),
        BOTH(test_a_key_rewritten_in_place_keeps_its_previous_key_while_written),
        BOTH(test_an_unchanged_directory_is_not_read_again),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
