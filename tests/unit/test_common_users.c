/* Users file: line parser, lookups, password hashing and verification, reload on change. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "users.h"
#include "table_file.h"

static char dir[64], path[128];

static int setup(void **state)
{
    (void)state;
    return tf_open(dir, "/tmp/pmusersXXXXXX", path, sizeof path, "users");
}

static int teardown(void **state)
{
    (void)state;
    tf_close(dir, path);
    return 0;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void expect_parse_error(const char *line, const char *needle)
{
    char *a = (char *)"x", *h = (char *)"x";
    const char *reason = NULL;
    assert_int_equal(pm_users_parse_line(line, &a, &h, &reason), -1);
    assert_null(a);
    assert_non_null(reason);
    if (!strstr(reason, needle))
        fail_msg("reason '%s' for '%s' lacks '%s'", reason, line, needle);
}

static void test_parse_line(void **state)
{
    (void)state;
    char *a, *h;
    const char *reason;
    assert_int_equal(pm_users_parse_line("alice@example.test:{YESCRYPT}$y$j9T$abc$def\n", &a, &h, &reason), 1);
    assert_string_equal(a, "alice@example.test");
    assert_string_equal(h, "{YESCRYPT}$y$j9T$abc$def");
    free(a);
    assert_int_equal(pm_users_parse_line("  Bob@Example.TEST:{sha512-crypt}$6$salt$hash\r\n", &a, &h, &reason), 1);
    assert_string_equal(a, "Bob@Example.TEST");
    assert_string_equal(h, "{sha512-crypt}$6$salt$hash");
    free(a);
    assert_int_equal(pm_users_parse_line("# a comment\n", &a, &h, &reason), 0);
    assert_int_equal(pm_users_parse_line("   \n", &a, &h, &reason), 0);
    assert_int_equal(pm_users_parse_line("", &a, &h, &reason), 0);

    expect_parse_error("alice@example.test\n", "expected address:{SCHEME}hash");
    expect_parse_error("alice:{YESCRYPT}$y$j9T$abc$def", "local-part@domain");
    expect_parse_error("@example.test:{YESCRYPT}$y$j9T$abc$def", "local-part@domain");
    expect_parse_error("alice@:{YESCRYPT}$y$j9T$abc$def", "local-part@domain");
    expect_parse_error("al ice@example.test:{YESCRYPT}$y$j9T$abc$def", "white space");
    expect_parse_error("alice@example.test:{MD5}$1$abc$def", "unknown password scheme");
    expect_parse_error("alice@example.test:$y$j9T$abc$def", "unknown password scheme");
    expect_parse_error("alice@example.test:{YESCRYPT}$6$abc$def", "does not match");
    expect_parse_error("alice@example.test:{SHA512-CRYPT}$6$abc", "malformed hash");
    expect_parse_error("alice@example.test:{SHA512-CRYPT}$6$a bc$def", "malformed hash");
}

static void test_hash_and_verify(void **state)
{
    (void)state;
    char *y = pm_users_hash_password("correct horse", NULL);
    char *s = pm_users_hash_password("battery staple", "SHA512-CRYPT");
    char *s2 = pm_users_hash_password("battery staple", "{SHA512-CRYPT}");
    assert_non_null(y);
    assert_non_null(s);
    assert_non_null(s2);
    assert_memory_equal(y, "{YESCRYPT}$y$", 13);
    assert_memory_equal(s, "{SHA512-CRYPT}$6$", 17);
    assert_string_not_equal(s, s2); /* fresh salt every time */
    assert_null(pm_users_hash_password("x", "MD5"));
    char big[600];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_null(pm_users_hash_password(big, NULL));

    char text[1024];
    char *y2 = pm_users_hash_password("other", "YESCRYPT");
    /* aaron (first in order) is SHA512-CRYPT, most users are YESCRYPT. */
    snprintf(text, sizeof text, "# users\nalice@example.test:%s\n\nBob@Example.Test:%s\naaron@example.test:%s\n"
             "zoe@example.test:%s\n", y, s, s2, y2);
    tf_replace(path, text);
    char err[256] = "";
    struct pm_users *u = pm_users_load(path, err, sizeof err);
    assert_non_null(u);
    assert_true(pm_users_exists(u, "ALICE@example.test"));
    assert_true(pm_users_exists(u, "bob@example.test"));
    assert_false(pm_users_exists(u, "carol@example.test"));
    assert_false(pm_users_exists(u, "alice"));
    assert_true(pm_users_verify(u, "alice@EXAMPLE.test", "correct horse"));
    assert_false(pm_users_verify(u, "alice@example.test", "correct horsf"));
    assert_false(pm_users_verify(u, "alice@example.test", ""));
    assert_false(pm_users_verify(u, "alice@example.test", NULL));
    assert_true(pm_users_verify(u, "bob@example.test", "battery staple"));
    assert_false(pm_users_verify(u, "bob@example.test", "correct horse"));
    /* alice's password must not open an unknown account although its hash is the dummy. */
    assert_false(pm_users_verify(u, "carol@example.test", "correct horse"));
    assert_false(pm_users_verify(u, "alice@example.test", big));

    /* An unknown user costs a hash computation of the prevailing method like a known one
     * (not an early return, not the cheaper SHA512 of the first user). Best of 3 each. */
    double known = 1e9, unknown = 1e9, t0;
    for (int i = 0; i < 3; i++) {
        t0 = now();
        pm_users_verify(u, "alice@example.test", "wrong");
        if (now() - t0 < known)
            known = now() - t0;
        t0 = now();
        pm_users_verify(u, "nobody@example.test", "wrong");
        if (now() - t0 < unknown)
            unknown = now() - t0;
    }
    if (unknown < known / 4)
        fail_msg("unknown user took %.6fs, known %.6fs", unknown, known);
    pm_users_free(u);

    /* The same with an empty database (the built-in dummy hash). */
    unlink(path);
    u = pm_users_load(path, err, sizeof err);
    assert_non_null(u);
    t0 = now();
    assert_false(pm_users_verify(u, "nobody@example.test", "wrong"));
    if (now() - t0 < known / 10)
        fail_msg("unknown user in an empty database took %.6fs, known %.6fs", now() - t0, known);
    pm_users_free(u);
    free(y);
    free(s);
    free(s2);
    free(y2);
}

static void expect_load_error(const char *text, const char *needle)
{
    tf_replace(path, text);
    char err[256] = "";
    assert_null(pm_users_load(path, err, sizeof err));
    char want[300];
    snprintf(want, sizeof want, "%s:%s", path, needle);
    if (!strstr(err, want))
        fail_msg("error '%s' lacks '%s'", err, want);
}

static void test_load_errors(void **state)
{
    (void)state;
    char err[256] = "";
    struct pm_users *u = pm_users_load(path, err, sizeof err); /* missing: empty, not an error */
    assert_non_null(u);
    assert_false(pm_users_exists(u, "a@b"));
    assert_false(pm_users_verify(u, "a@b", "x"));
    pm_users_free(u);
    tf_replace(path, "# only a comment\n\n"); /* an existing file without entries */
    u = pm_users_load(path, err, sizeof err);
    assert_non_null(u);
    assert_false(pm_users_exists(u, "a@b"));
    pm_users_free(u);

    expect_load_error("# ok\na@b.test:{SHA512-CRYPT}$6$s$h\nbroken line\n", "3: expected address");
    expect_load_error("a@b.test:{SHA512-CRYPT}$6$s$h\nx@y.test:{SHA512-CRYPT}$6$s$h\nA@B.test:{YESCRYPT}$y$j$s$h\n",
                      "3: duplicate user a@b.test (also on line 1)");
    expect_load_error("a@b.test:{SHA512-CRYPT}$6$s$h\n\nb@b.test:{PLAIN}secret\n", "3: unknown password scheme");
    char big[5000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    expect_load_error(big, "1: line too long");
}

static void test_reload_if_changed(void **state)
{
    (void)state;
    char *h1 = pm_users_hash_password("one", "SHA512-CRYPT");
    char *h2 = pm_users_hash_password("two", "SHA512-CRYPT");
    char text[512], err[256] = "";
    snprintf(text, sizeof text, "a@example.test:%s\n", h1);
    tf_replace(path, text);
    struct pm_users *u = pm_users_load(path, err, sizeof err);
    assert_non_null(u);
    assert_int_equal(pm_users_reload_if_changed(&u, err, sizeof err), 0);

    snprintf(text, sizeof text, "a@example.test:%s\nb@example.test:%s\n", h2, h1);
    tf_replace(path, text);
    assert_int_equal(pm_users_reload_if_changed(&u, err, sizeof err), 1);
    assert_true(pm_users_exists(u, "b@example.test"));
    assert_true(pm_users_verify(u, "a@example.test", "two"));
    assert_false(pm_users_verify(u, "a@example.test", "one"));
    assert_int_equal(pm_users_reload_if_changed(&u, err, sizeof err), 0);

    /* A bad new version is refused, the old data stays, the error is reported once. */
    tf_replace(path, "a@example.test:{NOPE}x\n");
    assert_int_equal(pm_users_reload_if_changed(&u, err, sizeof err), -1);
    assert_non_null(strstr(err, ":1: unknown password scheme"));
    assert_true(pm_users_verify(u, "a@example.test", "two"));
    assert_int_equal(pm_users_reload_if_changed(&u, err, sizeof err), 0);

    /* Removing the file empties the database. */
    unlink(path);
    assert_int_equal(pm_users_reload_if_changed(&u, err, sizeof err), 1);
    assert_false(pm_users_exists(u, "a@example.test"));
    pm_users_free(u);
    free(h1);
    free(h2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_line),
        cmocka_unit_test_setup_teardown(test_hash_and_verify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_if_changed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
