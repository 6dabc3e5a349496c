/* CurveZMQ keypairs (common/keys.c): creation with safe modes, loading, idempotence, a
 * corrupt file or a lone .pub never silently replaced, no pair made up for a peer; roles from
 * key names; the allowlist (common/allowlist.c): roles, revocation, files others may write,
 * symlinks as a Kubernetes Secret volume presents them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "allowlist.h"
#include "keys.h"
#include "log.h"

static char top[64], dir[96];

static int setup(void **state)
{
    (void)state;
    strcpy(top, "/tmp/pmkeysXXXXXX");
    if (!mkdtemp(top))
        return -1;
    snprintf(dir, sizeof dir, "%s/keys", top); /* not there yet: created on demand */
    return 0;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    (void)state;
    nftw(top, remove_one, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static void path_of(char *dst, size_t size, const char *name, const char *ext)
{
    snprintf(dst, size, "%s/%s.%s", dir, name, ext);
}

static unsigned mode_of(const char *name, const char *ext)
{
    char p[160];
    struct stat st;
    path_of(p, sizeof p, name, ext);
    assert_int_equal(stat(p, &st), 0);
    return (unsigned)(st.st_mode & 0777);
}

static void write_file(const char *name, const char *ext, const char *text)
{
    char p[160];
    path_of(p, sizeof p, name, ext);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_create_then_load(void **state)
{
    (void)state;
    char pub[PM_KEY_Z85], sec[PM_KEY_Z85], derived[PM_KEY_Z85];
    assert_int_equal(pm_keys_load_or_create(dir, "queue", pub, sec), 0);
    assert_int_equal(strlen(pub), 40);
    assert_int_equal(strlen(sec), 40);
    /* A real pair: the secret key yields the public one. */
    assert_int_equal(zmq_curve_public(derived, sec), 0);
    assert_string_equal(derived, pub);
    assert_int_equal(mode_of("queue", "key"), 0600);
    assert_int_equal(mode_of("queue", "pub"), 0644);

    char pub2[PM_KEY_Z85], sec2[PM_KEY_Z85], onlypub[PM_KEY_Z85];
    assert_int_equal(pm_keys_load_or_create(dir, "queue", pub2, sec2), 0);
    assert_string_equal(pub2, pub);
    assert_string_equal(sec2, sec);
    assert_int_equal(pm_keys_public(dir, "queue", onlypub), 0);
    assert_string_equal(onlypub, pub);
}

static void test_public_never_creates_a_pair(void **state)
{
    (void)state;
    char pub[PM_KEY_Z85], sec[PM_KEY_Z85], other[PM_KEY_Z85];
    /* A client asking for its server's key must not make one up (the finding: every
     * process that mounted the keys directory ended up holding every secret key). */
    assert_int_equal(pm_keys_public(dir, "resolver", pub), -1);
    assert_int_equal(access(dir, F_OK), -1);
    assert_int_equal(pm_keys_load_or_create(dir, "resolver", pub, sec), 0);
    assert_int_equal(pm_keys_public(dir, "resolver", other), 0);
    assert_string_equal(other, pub);
    /* Only the public half here (copied from the host that has the secret): no new pair. */
    char text[64], p[160];
    snprintf(text, sizeof text, "%s\n", pub);
    write_file("smtpd", "pub", text);
    assert_int_equal(pm_keys_load_or_create(dir, "smtpd", other, sec), -1);
    path_of(p, sizeof p, "smtpd", "key");
    assert_int_equal(access(p, F_OK), -1);
    assert_int_equal(pm_keys_public(dir, "smtpd", other), 0);
    assert_string_equal(other, pub);
}

static void test_secret_key_others_may_read_is_refused(void **state)
{
    (void)state;
    char pub[PM_KEY_Z85], sec[PM_KEY_Z85], p[160];
    assert_int_equal(pm_keys_load_or_create(dir, "mta", pub, sec), 0);
    path_of(p, sizeof p, "mta", "key");
    assert_int_equal(chmod(p, 0644), 0);
    assert_int_equal(pm_keys_load_or_create(dir, "mta", pub, sec), -1);
    assert_int_equal(chmod(p, 0640), 0); /* a Secret mounted for an fsGroup */
    assert_int_equal(pm_keys_load_or_create(dir, "mta", pub, sec), 0);
}

static void test_role_of_key_name(void **state)
{
    (void)state;
    assert_int_equal(pm_role_of_key_name("smtpd"), PM_ROLE_SMTPD);
    assert_int_equal(pm_role_of_key_name("smtpd.eu-1"), PM_ROLE_SMTPD);
    assert_int_equal(pm_role_of_key_name("cli.ops_2"), PM_ROLE_CLI);
    assert_int_equal(pm_role_of_key_name("delivery"), PM_ROLE_DELIVERY);
    assert_int_equal(pm_role_of_key_name("smtpdx"), PM_ROLE_NONE);
    assert_int_equal(pm_role_of_key_name("smtpd."), PM_ROLE_NONE);
    assert_int_equal(pm_role_of_key_name("smtpd.a.b"), PM_ROLE_NONE);
    assert_int_equal(pm_role_of_key_name("smtpd.a b"), PM_ROLE_NONE);
    assert_int_equal(pm_role_of_key_name("none"), PM_ROLE_NONE);
    assert_int_equal(pm_role_of_key_name(""), PM_ROLE_NONE);
    assert_int_equal(pm_role_of_key_name("monitoring"), PM_ROLE_NONE);
    assert_string_equal(pm_role_name(PM_ROLE_BOUNCER), "bouncer");
    assert_string_equal(pm_role_name(PM_ROLE_COUNT), "none");
}

static void test_corrupt_key_is_not_replaced(void **state)
{
    (void)state;
    char pub[PM_KEY_Z85], sec[PM_KEY_Z85], p[160], line[64] = "";
    assert_int_equal(mkdir(dir, 0755), 0);
    write_file("mta", "key", "truncated\n");
    assert_int_equal(pm_keys_load_or_create(dir, "mta", pub, sec), -1);
    path_of(p, sizeof p, "mta", "key");
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    assert_non_null(fgets(line, sizeof line, f));
    fclose(f);
    assert_string_equal(line, "truncated\n");
}

static enum pm_role role_of(const char *z85, char name[PM_KEY_NAME])
{
    enum pm_role role = PM_ROLE_NONE;
    return pm_allowlist_find_z85(z85, &role, name) ? role : PM_ROLE_NONE;
}

static void test_allowlist_roles(void **state)
{
    (void)state;
    assert_int_equal(pm_allowlist_reload(dir), -1); /* no directory yet */
    char pubs[8][PM_KEY_Z85], sec[PM_KEY_Z85];
    int nbus = 0;
    for (const char *const *n = pm_keys_bus_names; *n; n++, nbus++)
        assert_int_equal(pm_keys_load_or_create(dir, *n, pubs[nbus], sec), 0);
    write_file("garbage", "pub", "not a key\n");    /* no role: skipped */
    write_file("cli.bad", "pub", "not a key\n");    /* not a key: skipped */
    write_file("notes", "txt", "not a .pub file\n");
    assert_int_equal(pm_allowlist_reload(dir), nbus);

    char name[PM_KEY_NAME];
    assert_int_equal(role_of(pubs[0], name), PM_ROLE_QUEUE);
    assert_string_equal(name, "queue");
    assert_int_equal(role_of(pubs[nbus - 1], name), PM_ROLE_CLI);

    /* A replica's key: its role from the name before the dot, its name logged whole. */
    char pub[PM_KEY_Z85], text[64], p[160];
    assert_int_equal(zmq_curve_keypair(pub, sec), 0);
    snprintf(text, sizeof text, "%s\n", pub);
    write_file("smtpd.eu-1", "pub", text);
    unsigned gen = pm_allowlist_generation();
    assert_int_equal(pm_allowlist_reload_if_changed(dir), 1);
    assert_true(pm_allowlist_generation() != gen);
    assert_int_equal(role_of(pub, name), PM_ROLE_SMTPD);
    assert_string_equal(name, "smtpd.eu-1");
    assert_int_equal(pm_allowlist_reload_if_changed(dir), 0); /* unchanged: not re-read */

    /* Revoked: its file removed, the key has no role any more. */
    path_of(p, sizeof p, "smtpd.eu-1", "pub");
    assert_int_equal(unlink(p), 0);
    assert_int_equal(pm_allowlist_reload_if_changed(dir), 1);
    assert_int_equal(role_of(pub, name), PM_ROLE_NONE);

    /* A file others may write does not count, nor a secret key posing as a public one. */
    write_file("mta.w", "pub", text);
    path_of(p, sizeof p, "mta.w", "pub");
    assert_int_equal(chmod(p, 0664), 0);
    assert_int_equal(pm_allowlist_reload(dir), nbus);
    assert_int_equal(role_of(pub, name), PM_ROLE_NONE);
    unlink(p);
    assert_int_equal(role_of(sec, name), PM_ROLE_NONE);

    /* The same key under two names keeps the first role only. */
    char dup[64];
    snprintf(dup, sizeof dup, "%.40s\n", pubs[nbus - 1]); /* cli's key, also filed as mta */
    write_file("mta.copy", "pub", dup);
    assert_int_equal(pm_allowlist_reload(dir), nbus);
}

static void test_allowlist_through_symlinks(void **state)
{
    (void)state;
    /* A Kubernetes Secret volume: name -> ..data/name, ..data -> timestamped directory. */
    char real[160], link[200], target[200], pub[PM_KEY_Z85], sec[PM_KEY_Z85], text[64];
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(real, sizeof real, "%s/..2026_12_01", dir);
    assert_int_equal(mkdir(real, 0755), 0);
    assert_int_equal(zmq_curve_keypair(pub, sec), 0);
    snprintf(target, sizeof target, "%s/delivery.pub", real);
    FILE *f = fopen(target, "w");
    assert_non_null(f);
    snprintf(text, sizeof text, "%s\n", pub);
    fputs(text, f);
    fclose(f);
    snprintf(link, sizeof link, "%s/..data", dir);
    assert_int_equal(symlink("..2026_12_01", link), 0);
    snprintf(link, sizeof link, "%s/delivery.pub", dir);
    assert_int_equal(symlink("..data/delivery.pub", link), 0);
    assert_int_equal(pm_allowlist_reload(dir), 1);
    char name[PM_KEY_NAME];
    assert_int_equal(role_of(pub, name), PM_ROLE_DELIVERY);
    /* The file behind the symlink becomes writable by others: no longer counts. */
    assert_int_equal(chmod(target, 0666), 0);
    assert_int_equal(pm_allowlist_reload(dir), 0);
    /* A keys directory others may write (not sticky) is not read at all. */
    assert_int_equal(chmod(target, 0644), 0);
    assert_int_equal(chmod(dir, 0777), 0);
    assert_int_equal(pm_allowlist_reload(dir), -1);
    assert_int_equal(chmod(dir, 01777), 0); /* sticky, as a Secret volume: files are checked one by one */
    assert_int_equal(pm_allowlist_reload(dir), 1);
    chmod(dir, 0755);
}

int main(void)
{
    pm_log_init("test");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_then_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_public_never_creates_a_pair, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_key_others_may_read_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_key_is_not_replaced, setup, teardown),
        cmocka_unit_test(test_role_of_key_name),
        cmocka_unit_test_setup_teardown(test_allowlist_roles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_allowlist_through_symlinks, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
