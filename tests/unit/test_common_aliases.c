/* Aliases file: syntax, errors with file:line, recursive expansion, loops, limits, reload;
 * the expansion of a whole message: de-duplication across RCPTs, linear cost, the cap. */
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
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

#include "aliases.h"
#include "table_file.h"

static char dir[64], path[128];
static struct pm_config cfg;
static char *domains[] = {"example.test", "Other.Test", NULL};

static int setup(void **state)
{
    (void)state;
    if (tf_open(dir, "/tmp/pmaliasesXXXXXX", path, sizeof path, "aliases") < 0)
        return -1;
    memset(&cfg, 0, sizeof cfg);
    cfg.domains.v = domains;
    cfg.domains.n = 2;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tf_close(dir, path);
    return 0;
}

static struct pm_aliases *load(const char *text)
{
    tf_replace(path, text);
    char err[256] = "";
    struct pm_aliases *a = pm_aliases_load(path, err, sizeof err);
    if (!a)
        fail_msg("load failed: %s", err);
    return a;
}

static void free_list(struct pm_strlist *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* Expands address and compares with the expected addresses joined by spaces, in order. */
static void expect_expansion(struct pm_aliases *a, const char *address, const char *want)
{
    struct pm_strlist out = {0};
    char err[256] = "", got[2048] = "";
    if (pm_aliases_expand(a, &cfg, address, &out, err, sizeof err) != 0)
        fail_msg("expanding %s failed: %s", address, err);
    for (int i = 0; i < out.n; i++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", i ? " " : "", out.v[i]);
    assert_null(out.v[out.n]);
    if (strcmp(got, want) != 0)
        fail_msg("%s expanded to '%s', want '%s'", address, got, want);
    free_list(&out);
}

static void expect_expand_error(struct pm_aliases *a, const char *address, const char *needle)
{
    struct pm_strlist out = {0};
    char err[256] = "";
    assert_int_equal(pm_aliases_expand(a, &cfg, address, &out, err, sizeof err), -1);
    assert_int_equal(out.n, 0);
    if (!strstr(err, needle))
        fail_msg("error '%s' lacks '%s'", err, needle);
    free_list(&out);
}

static void test_syntax_and_expansion(void **state)
{
    (void)state;
    struct pm_aliases *a = load("# team aliases\n"
                                "team@example.test: alice@example.test, Bob@Remote.test\n"
                                "\n"
                                "postmaster: alice@example.test   # every local domain\n"
                                "staff@example.test: team@example.test,\n"
                                "    carol,\tdave@example.test\n"
                                "  # a comment between continuation lines\n"
                                "\tBOB@remote.test\n"
                                "keep@example.test: keep@example.test archive@example.test\n"
                                "angle@example.test: <alice@example.test>\n"
                                "hash#tag@example.test: alice@example.test\n");
    assert_true(pm_aliases_is_alias(a, &cfg, "TEAM@example.test"));
    assert_true(pm_aliases_is_alias(a, &cfg, "postmaster@example.test"));
    assert_true(pm_aliases_is_alias(a, &cfg, "Postmaster@other.test"));
    assert_false(pm_aliases_is_alias(a, &cfg, "postmaster@remote.test")); /* not a local domain */
    assert_false(pm_aliases_is_alias(a, NULL, "postmaster@example.test"));
    assert_false(pm_aliases_is_alias(a, &cfg, "alice@example.test"));
    assert_false(pm_aliases_is_alias(a, &cfg, "team@other.test"));

    expect_expansion(a, "alice@example.test", "alice@example.test");
    expect_expansion(a, "team@example.test", "alice@example.test Bob@Remote.test");
    expect_expansion(a, "postmaster@other.test", "alice@example.test");
    /* Recursive, deduplicated (Bob twice in other case), bare target in the alias's domain. */
    expect_expansion(a, "Staff@Example.test",
                     "alice@example.test Bob@Remote.test carol@example.test dave@example.test");
    /* An alias that names itself keeps a copy in its own mailbox. */
    expect_expansion(a, "keep@example.test", "keep@example.test archive@example.test");
    expect_expansion(a, "angle@example.test", "alice@example.test");
    expect_expansion(a, "hash#tag@example.test", "alice@example.test");

    /* Results are appended to what the list already holds, without duplicates. */
    struct pm_strlist out = {0};
    char err[256];
    assert_int_equal(pm_aliases_expand(a, &cfg, "team@example.test", &out, err, sizeof err), 0);
    assert_int_equal(pm_aliases_expand(a, &cfg, "staff@example.test", &out, err, sizeof err), 0);
    assert_int_equal(out.n, 4);
    assert_string_equal(out.v[3], "dave@example.test");
    free_list(&out);
    pm_aliases_free(a);
}

static void test_loops_and_limits(void **state)
{
    (void)state;
    struct pm_aliases *a = load("a@example.test: b@example.test\n"
                                "b@example.test: c@example.test, ok@example.test\n"
                                "c@example.test: a@example.test\n"
                                "x@example.test: ok@example.test, a@example.test\n");
    expect_expand_error(a, "a@example.test",
                        "alias loop: a@example.test -> b@example.test -> c@example.test -> a@example.test");
    /* A failed expansion leaves the list as it was. */
    struct pm_strlist out = {0};
    char err[256];
    assert_int_equal(pm_aliases_expand(a, &cfg, "ok@example.test", &out, err, sizeof err), 0);
    assert_int_equal(pm_aliases_expand(a, &cfg, "x@example.test", &out, err, sizeof err), -1);
    assert_int_equal(out.n, 1);
    assert_string_equal(out.v[0], "ok@example.test");
    free_list(&out);
    pm_aliases_free(a);

    /* 1200 targets are more than the 1000 allowed. */
    size_t cap = 64 * 1024;
    char *text = malloc(cap);
    assert_non_null(text);
    strcpy(text, "big@example.test: ");
    for (int i = 0; i < 1200; i++)
        snprintf(text + strlen(text), cap - strlen(text), "u%d@remote.test,\n ", i);
    strcat(text, "last@remote.test\n");
    a = load(text);
    expect_expand_error(a, "big@example.test", "more than 1000");
    pm_aliases_free(a);

    /* 15 two-way diamonds in a row: 2^15 paths, more than the lookup budget, but each alias
     * is walked once. Deeper than 32 levels is refused. */
    text[0] = '\0';
    for (int i = 0; i < 20; i++)
        snprintf(text + strlen(text), cap - strlen(text), "d%d@example.test: l%d@example.test, r%d@example.test\n"
                 "l%d@example.test: d%d@example.test\nr%d@example.test: d%d@example.test\n", i, i, i, i, i + 1, i, i + 1);
    a = load(text);
    expect_expansion(a, "d5@example.test", "d20@example.test");
    expect_expand_error(a, "d0@example.test", "nested more than 32 deep");
    pm_aliases_free(a);
    free(text);
}

static void expect_load_error(const char *text, const char *needle)
{
    tf_replace(path, text);
    char err[256] = "", want[300];
    assert_null(pm_aliases_load(path, err, sizeof err));
    snprintf(want, sizeof want, "%s:%s", path, needle);
    if (!strstr(err, want))
        fail_msg("error '%s' lacks '%s'", err, want);
}

static void test_load_errors(void **state)
{
    (void)state;
    char err[256];
    struct pm_aliases *a = pm_aliases_load(path, err, sizeof err); /* missing file: empty */
    assert_non_null(a);
    assert_false(pm_aliases_is_alias(a, &cfg, "postmaster@example.test"));
    expect_expansion(a, "x@example.test", "x@example.test");
    pm_aliases_free(a);
    tf_replace(path, "# nothing yet\n");
    a = pm_aliases_load(path, err, sizeof err);
    assert_non_null(a);
    expect_expansion(a, "x@example.test", "x@example.test");
    pm_aliases_free(a);
    a = pm_aliases_load("", err, sizeof err); /* no aliases_file configured */
    assert_non_null(a);
    assert_int_equal(pm_aliases_reload_if_changed(&a, err, sizeof err), 0);
    pm_aliases_free(a);

    expect_load_error("a@example.test: b@example.test\n  \n# c\nbroken line\n",
                      "4: expected 'alias: address");
    expect_load_error("   x@example.test\n", "1: continuation line without an alias");
    expect_load_error("a@example.test:\n", "1: alias has no targets");
    expect_load_error("a@example.test: b@example.test\nc@example.test: |/bin/sh\n", "2: only addresses");
    expect_load_error("a@example.test: /var/mail/x\n", "1: only addresses");
    expect_load_error("a@example.test: :include:/etc/list\n", "1: only addresses");
    expect_load_error("a b@example.test: c@example.test\n", "1: alias name contains white space");
    expect_load_error("x: @example.test\n", "1: target '@example.test' must be");
    expect_load_error(": c@example.test\n", "1: empty alias name");
    /* Found by fuzzing: `<>` is an empty target, which the queue would store as "". */
    expect_load_error("list@example.test: <>\n", "1: target '' must be");
    expect_load_error("a@example.test: b@x.test\n\nc@x.test: d@x.test,\n   e@x.test\nA@Example.test: z@x.test\n",
                      "5: duplicate alias a@example.test (also on line 1)");
    char *big = malloc(9000);
    memset(big, 'a', 8999);
    big[8999] = '\0';
    expect_load_error(big, "1: line too long");
    free(big);
}

static void test_reload_if_changed(void **state)
{
    (void)state;
    char err[256];
    struct pm_aliases *a = load("a@example.test: one@example.test\n");
    assert_int_equal(pm_aliases_reload_if_changed(&a, err, sizeof err), 0);
    tf_replace(path, "a@example.test: two@example.test\n");
    assert_int_equal(pm_aliases_reload_if_changed(&a, err, sizeof err), 1);
    expect_expansion(a, "a@example.test", "two@example.test");
    tf_replace(path, "a@example.test two@example.test\n");
    assert_int_equal(pm_aliases_reload_if_changed(&a, err, sizeof err), -1);
    assert_non_null(strstr(err, ":1: expected"));
    expect_expansion(a, "a@example.test", "two@example.test"); /* the old table stays */
    assert_int_equal(pm_aliases_reload_if_changed(&a, err, sizeof err), 0);
    unlink(path);
    assert_int_equal(pm_aliases_reload_if_changed(&a, err, sizeof err), 1);
    assert_false(pm_aliases_is_alias(a, &cfg, "a@example.test"));
    pm_aliases_free(a);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A generous bound for work that is linear: the quadratic scans it replaces take seconds
 * natively. The unit tests also run under ASan (some 5 times slower) and valgrind (30). */
static double bound_s(double native)
{
#ifdef __SANITIZE_ADDRESS__
    native *= 5;
#endif
    return RUNNING_ON_VALGRIND ? native * 30 : native;
}

/* "name@example.test: PREFIX0@DOMAIN, ... PREFIX<n-1>@DOMAIN" lines appended to text. */
static void add_alias(char *text, size_t cap, const char *name, const char *prefix, int n)
{
    snprintf(text + strlen(text), cap - strlen(text), "%s@example.test: ", name);
    for (int i = 0; i < n; i++)
        snprintf(text + strlen(text), cap - strlen(text), "%s%d@remote.test%s", prefix, i, i + 1 < n ? ",\n " : "\n");
}

/* Loads aliases of 1000 members each, given as name, prefix pairs ending in NULL (name's
 * members are prefix0@remote.test ...), then the lines extra (or nothing). */
static struct pm_aliases *load_big(const char *const *pairs, const char *extra)
{
    size_t cap = 256 * 1024;
    char *text = calloc(1, cap);
    assert_non_null(text);
    for (; pairs[0]; pairs += 2)
        add_alias(text, cap, pairs[0], pairs[1], 1000);
    if (extra)
        snprintf(text + strlen(text), cap - strlen(text), "%s", extra);
    struct pm_aliases *a = load(text);
    free(text);
    return a;
}

/* The one-address call appends to a list that already holds addresses, without repeats. */
static void test_one_list_many_calls(void **state)
{
    (void)state;
    struct pm_aliases *a = load_big((const char *const[]){"big", "m", NULL}, NULL);
    struct pm_strlist out = {0};
    char err[256];
    assert_int_equal(pm_aliases_expand(a, &cfg, "M5@remote.test", &out, err, sizeof err), 0);
    for (int i = 0; i < 20; i++)
        assert_int_equal(pm_aliases_expand(a, &cfg, "big@example.test", &out, err, sizeof err), 0);
    assert_int_equal(out.n, 1000);
    assert_string_equal(out.v[0], "M5@remote.test");
    assert_string_equal(out.v[1], "m0@remote.test");
    free_list(&out);
    pm_aliases_free(a);
}

/* The reported stall: one 1,000-member alias named in 1,000 RCPTs cost the queue 5.2 s per
 * message, each address compared with every one before it. Through the message-wide
 * expansion the queue uses now, plus 1,000 more RCPTs naming members again in other case:
 * 1,000 addresses, each alias walked once. */
static void test_message_expansion_is_linear(void **state)
{
    (void)state;
    /* sub has the same members as big, written in capitals */
    struct pm_aliases *a = load_big((const char *const[]){"big", "m", "sub", "M", NULL},
                                    "outer@example.test: big@example.test, sub@example.test\n");
    struct pm_alias_expansion *x = pm_alias_expansion_new(a, &cfg, 10000);
    assert_non_null(x);
    struct pm_strlist out = {0};
    char err[256], addr[64];
    double t0 = now_s();
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(pm_alias_expansion_add(x, i % 2 ? "big@example.test" : "Outer@Example.Test", &out, err,
                                                sizeof err), 0);
        snprintf(addr, sizeof addr, "M%d@REMOTE.test", i);
        assert_int_equal(pm_alias_expansion_add(x, addr, &out, err, sizeof err), 0);
    }
    double took = now_s() - t0;
    assert_int_equal(out.n, 1000);
    assert_int_equal(pm_alias_expansion_count(x), 1000);
    assert_string_equal(out.v[0], "m0@remote.test"); /* the first spelling given stays */
    assert_string_equal(out.v[999], "m999@remote.test");
    if (took > bound_s(0.5))
        fail_msg("1000 RCPTs of a 1000-member alias took %.2f s", took);
    free_list(&out);
    pm_alias_expansion_free(x);
    pm_aliases_free(a);
}

/* max_total bounds the whole message: the RCPT whose addresses would pass it fails as a
 * whole (PM_ALIAS_TOO_MANY), those that still fit after it are kept. */
static void test_message_cap(void **state)
{
    (void)state;
    struct pm_aliases *a = load_big((const char *const[]){"one", "a", "two", "b", "three", "c", NULL}, NULL);
    struct pm_alias_expansion *x = pm_alias_expansion_new(a, &cfg, 2500);
    struct pm_strlist out = {0};
    char err[256] = "";
    assert_int_equal(pm_alias_expansion_add(x, "one@example.test", &out, err, sizeof err), 0);
    assert_int_equal(pm_alias_expansion_add(x, "two@example.test", &out, err, sizeof err), 0);
    assert_int_equal(pm_alias_expansion_add(x, "three@example.test", &out, err, sizeof err), PM_ALIAS_TOO_MANY);
    assert_non_null(strstr(err, "too many recipients"));
    assert_int_equal(out.n, 2000);
    assert_null(out.v[2000]);
    assert_int_equal(pm_alias_expansion_count(x), 2000);
    /* Addresses given already cost nothing; new ones still fit up to the cap. */
    assert_int_equal(pm_alias_expansion_add(x, "A7@remote.test", &out, err, sizeof err), 0);
    assert_int_equal(out.n, 2000);
    assert_int_equal(pm_alias_expansion_add(x, "c7@remote.test", &out, err, sizeof err), 0);
    assert_int_equal(out.n, 2001);
    assert_string_equal(out.v[2000], "c7@remote.test");
    free_list(&out);
    pm_alias_expansion_free(x);
    pm_aliases_free(a);
}

/* A failed RCPT leaves nothing behind: the addresses and aliases it had reached before the
 * loop are not "seen", so a later RCPT naming them still gets them. */
static void test_failed_rcpt_rolls_back(void **state)
{
    (void)state;
    struct pm_aliases *a = load("bad@example.test: sub@example.test, loop@example.test\n"
                                "loop@example.test: bad@example.test\n"
                                "sub@example.test: alice@example.test, bob@example.test\n");
    struct pm_alias_expansion *x = pm_alias_expansion_new(a, &cfg, 100);
    struct pm_strlist out = {0};
    char err[256] = "";
    assert_int_equal(pm_alias_expansion_add(x, "bad@example.test", &out, err, sizeof err), PM_ALIAS_ERROR);
    assert_non_null(strstr(err, "alias loop"));
    assert_int_equal(out.n, 0);
    assert_int_equal(pm_alias_expansion_count(x), 0);
    assert_int_equal(pm_alias_expansion_add(x, "sub@example.test", &out, err, sizeof err), 0);
    assert_int_equal(out.n, 2);
    assert_int_equal(pm_alias_expansion_add(x, "alice@example.test", &out, err, sizeof err), 0);
    assert_int_equal(pm_alias_expansion_add(x, "sub@example.test", &out, err, sizeof err), 0);
    assert_int_equal(out.n, 2);
    free_list(&out);
    pm_alias_expansion_free(x);
    pm_aliases_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_syntax_and_expansion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loops_and_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_if_changed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_list_many_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_message_expansion_is_linear, setup, teardown),
        cmocka_unit_test_setup_teardown(test_message_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_rcpt_rolls_back, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
