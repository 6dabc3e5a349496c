/* CurveZMQ keypairs (common/keys.c): creation with safe modes, loading, idempotence, a
 * corrupt file never silently replaced, and the allowlist (re-read on a miss). */
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

static void test_public_creates_missing_pair_once(void **state)
{
    (void)state;
    char a[PM_KEY_Z85], b[PM_KEY_Z85], pub[PM_KEY_Z85], sec[PM_KEY_Z85];
    assert_int_equal(pm_keys_public(dir, "resolver", a), 0); /* a client may start first */
    assert_int_equal(pm_keys_public(dir, "resolver", b), 0);
    assert_string_equal(a, b);
    assert_int_equal(pm_keys_load_or_create(dir, "resolver", pub, sec), 0);
    assert_string_equal(pub, a);
    assert_int_equal(mode_of("resolver", "key"), 0600);
    /* Different names, different keys. */
    char other[PM_KEY_Z85];
    assert_int_equal(pm_keys_public(dir, "smtpd", other), 0);
    assert_string_not_equal(other, a);
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

static void decode(const char *z85, unsigned char bin[32])
{
    assert_non_null(zmq_z85_decode(bin, z85));
}

static void test_allowlist(void **state)
{
    (void)state;
    assert_int_equal(pm_keys_load_allowlist(dir), -1); /* no directory yet */
    for (const char *const *n = pm_keys_bus_names; *n; n++) {
        char pub[PM_KEY_Z85];
        assert_int_equal(pm_keys_public(dir, *n, pub), 0);
    }
    int nbus = 0;
    while (pm_keys_bus_names[nbus])
        nbus++;
    write_file("garbage", "pub", "not a key\n"); /* ignored */
    write_file("notes", "txt", "not a .pub file\n");
    assert_int_equal(pm_keys_load_allowlist(dir), nbus);

    char pub[PM_KEY_Z85], sec[PM_KEY_Z85];
    unsigned char bin[32];
    assert_int_equal(pm_keys_public(dir, "cli", pub), 0);
    decode(pub, bin);
    assert_true(pm_keys_is_allowed(dir, bin));

    /* An unknown key is refused; listed later as <name>.pub it is found (re-read on a miss). */
    assert_int_equal(zmq_curve_keypair(pub, sec), 0);
    decode(pub, bin);
    assert_false(pm_keys_is_allowed(dir, bin));
    char text[64];
    snprintf(text, sizeof text, "%s\n", pub);
    write_file("operator", "pub", text);
    assert_true(pm_keys_is_allowed(dir, bin));

    /* Removed and re-read: refused again. */
    char p[160];
    path_of(p, sizeof p, "operator", "pub");
    assert_int_equal(unlink(p), 0);
    assert_int_equal(pm_keys_load_allowlist(dir), nbus);
    assert_false(pm_keys_is_allowed(dir, bin));

    /* A key is not admitted because it equals a secret key (only .pub files count). */
    char qpub[PM_KEY_Z85], qsec[PM_KEY_Z85];
    assert_int_equal(pm_keys_load_or_create(dir, "queue", qpub, qsec), 0);
    decode(qsec, bin);
    assert_false(pm_keys_is_allowed(dir, bin));
}

int main(void)
{
    pm_log_init("test");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_then_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_public_creates_missing_pair_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_key_is_not_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_allowlist, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
