/* MX ordering: preference order, equal preferences shuffled, null MX, duplicates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "resolver/mx.h"

/* A scripted "random" sequence; each call takes the next value modulo bound. */
struct seq {
    const uint32_t *v;
    int n, i;
};

static uint32_t scripted(uint32_t bound, void *arg)
{
    struct seq *s = arg;
    uint32_t x = s->n ? s->v[s->i++ % s->n] : 0;
    return x % bound;
}

static void test_sorted_by_preference(void **state)
{
    (void)state;
    struct resolver_mx mx[] = {{30, "c.test"}, {10, "a.test"}, {20, "b.test"}};
    int n = 3;
    struct seq s = {0};
    assert_int_equal(resolver_mx_order(mx, &n, scripted, &s), RESOLVER_MX_HOSTS);
    assert_int_equal(n, 3);
    assert_string_equal(mx[0].name, "a.test");
    assert_string_equal(mx[1].name, "b.test");
    assert_string_equal(mx[2].name, "c.test");
}

static void test_equal_preferences_follow_the_random_source(void **state)
{
    (void)state;
    /* Fisher-Yates over the run {x, y, z} (sorted by name first): i=2 swaps with j, i=1
     * swaps with j. With j=0 then j=0: [x y z] -> [z y x] -> [y z x]. */
    const uint32_t v[] = {0, 0};
    struct seq s = {v, 2, 0};
    struct resolver_mx mx[] = {{10, "z.test"}, {5, "first.test"}, {10, "x.test"}, {10, "y.test"}, {50, "last.test"}};
    int n = 5;
    assert_int_equal(resolver_mx_order(mx, &n, scripted, &s), RESOLVER_MX_HOSTS);
    assert_int_equal(n, 5);
    assert_string_equal(mx[0].name, "first.test");
    assert_string_equal(mx[1].name, "y.test");
    assert_string_equal(mx[2].name, "z.test");
    assert_string_equal(mx[3].name, "x.test");
    assert_string_equal(mx[4].name, "last.test");
    assert_int_equal(s.i, 2); /* only the run of three was shuffled */
}

static void test_shuffle_reaches_every_order(void **state)
{
    (void)state;
    int seen[3] = {0};
    for (int round = 0; round < 200; round++) {
        struct resolver_mx mx[] = {{10, "a.test"}, {10, "b.test"}, {10, "c.test"}};
        int n = 3;
        resolver_mx_order(mx, &n, resolver_rng_default, NULL);
        seen[mx[0].name[0] - 'a']++;
    }
    for (int i = 0; i < 3; i++)
        assert_true(seen[i] > 20); /* each first roughly a third of the time */
}

static void test_null_mx(void **state)
{
    (void)state;
    struct resolver_mx only[] = {{0, "."}};
    int n = 1;
    assert_int_equal(resolver_mx_order(only, &n, resolver_rng_default, NULL), RESOLVER_MX_NULL);
    assert_int_equal(n, 0);

    /* A "." mixed with real hosts breaks RFC 7505: ignore the dot, use the hosts. */
    struct resolver_mx mixed[] = {{0, "."}, {10, "mx.test"}};
    n = 2;
    assert_int_equal(resolver_mx_order(mixed, &n, resolver_rng_default, NULL), RESOLVER_MX_HOSTS);
    assert_int_equal(n, 1);
    assert_string_equal(mixed[0].name, "mx.test");
}

static void test_duplicates_and_limit(void **state)
{
    (void)state;
    struct resolver_mx mx[40];
    char names[40][16];
    for (int i = 0; i < 40; i++) {
        snprintf(names[i], sizeof names[i], "h%02d.test", i % 20); /* each host twice */
        mx[i].name = names[i];
        mx[i].pref = (uint16_t)(i < 20 ? 100 - i : i);
    }
    int n = 40;
    assert_int_equal(resolver_mx_order(mx, &n, resolver_rng_default, NULL), RESOLVER_MX_HOSTS);
    assert_int_equal(n, RESOLVER_MAX_MX);
    for (int i = 0; i < n; i++) {
        for (int j = i + 1; j < n; j++)
            assert_string_not_equal(mx[i].name, mx[j].name);
        if (i)
            assert_true(mx[i - 1].pref <= mx[i].pref);
    }
    /* h00 appears with 100 and 20: the more preferred entry (20) is kept. */
    assert_string_equal(mx[0].name, "h00.test");
    assert_int_equal(mx[0].pref, 20);
}

static void test_empty(void **state)
{
    (void)state;
    struct resolver_mx mx[1];
    int n = 0;
    assert_int_equal(resolver_mx_order(mx, &n, resolver_rng_default, NULL), RESOLVER_MX_HOSTS);
    assert_int_equal(n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sorted_by_preference),
        cmocka_unit_test(test_equal_preferences_follow_the_random_source),
        cmocka_unit_test(test_shuffle_reaches_every_order),
        cmocka_unit_test(test_null_mx),
        cmocka_unit_test(test_duplicates_and_limit),
        cmocka_unit_test(test_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
