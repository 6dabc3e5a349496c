/* The case-insensitive address set (common/addrset.c): add/has/remove against a plain list
 * as the reference, through growth and removals that shift probe runs across the wrap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addrset.h"

static void test_basics(void **state)
{
    (void)state;
    struct pm_addrset *s = pm_addrset_new();
    assert_non_null(s);
    assert_int_equal(pm_addrset_add(s, "Alice@Example.test"), 1);
    assert_int_equal(pm_addrset_add(s, "alice@example.TEST"), 0);
    assert_true(pm_addrset_has(s, "ALICE@EXAMPLE.TEST"));
    assert_false(pm_addrset_has(s, "alice@example.tes"));
    assert_false(pm_addrset_has(s, "alice@example.test2"));
    /* Only ASCII folds, as strcasecmp in the C locale: UTF-8 bytes compare as they are. */
    assert_int_equal(pm_addrset_add(s, "j\xc3\xb6rg@example.test"), 1);
    assert_int_equal(pm_addrset_add(s, "j\xc3\x96rg@example.test"), 1);
    assert_int_equal(pm_addrset_add(s, ""), 1);
    assert_int_equal(pm_addrset_count(s), 4);
    assert_int_equal(pm_addrset_remove(s, "ALICE@example.test"), 1);
    assert_int_equal(pm_addrset_remove(s, "alice@example.test"), 0);
    assert_false(pm_addrset_has(s, "alice@example.test"));
    assert_int_equal(pm_addrset_count(s), 3);
    pm_addrset_free(s);
    pm_addrset_free(NULL);
}

static uint32_t rnd_state = 12345;
static uint32_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 17;
    rnd_state ^= rnd_state << 5;
    return rnd_state;
}

/* Random adds and removes over a small key space (so removals hit), checked after every step
 * against a reference array, and every key checked now and then. */
static void random_ops(int nkeys, int steps)
{
    enum { KEYS = 300 };
    static char keys[KEYS][32];
    int in[KEYS] = {0};
    size_t n = 0;
    assert_true(nkeys <= KEYS);
    for (int i = 0; i < nkeys; i++)
        snprintf(keys[i], sizeof keys[i], "%s%d@Host%d.test", i % 2 ? "U" : "u", i, i % 7);
    struct pm_addrset *s = pm_addrset_new();
    for (int step = 0; step < steps; step++) {
        int k = (int)(rnd() % (uint32_t)nkeys);
        char probe[32];
        snprintf(probe, sizeof probe, "%s", keys[k]);
        if (rnd() % 2) /* the other case of the first letter: the same address */
            probe[0] = probe[0] == 'u' ? 'U' : 'u';
        if (rnd() % 3) {
            assert_int_equal(pm_addrset_add(s, probe), !in[k]);
            n += !in[k];
            in[k] = 1;
        } else {
            assert_int_equal(pm_addrset_remove(s, probe), in[k]);
            n -= in[k];
            in[k] = 0;
        }
        assert_int_equal(pm_addrset_count(s), n);
        if (step % 97 == 0)
            for (int i = 0; i < nkeys; i++)
                assert_int_equal(pm_addrset_has(s, keys[i]), in[i]);
    }
    for (int i = 0; i < nkeys; i++)
        assert_int_equal(pm_addrset_has(s, keys[i]), in[i]);
    pm_addrset_free(s);
}

static void test_against_reference(void **state)
{
    (void)state;
    random_ops(300, 20000);
    /* At most 7 keys: the table stays at its first 16 slots, where runs often cross the end. */
    for (int round = 0; round < 50; round++)
        random_ops(7, 400);
}

/* Filling to 100,000 and emptying again stays correct (no tombstones left to trip on). */
static void test_fill_and_empty(void **state)
{
    (void)state;
    enum { N = 100000 };
    struct pm_addrset *s = pm_addrset_new();
    char a[32];
    for (int i = 0; i < N; i++) {
        snprintf(a, sizeof a, "r%d@example.test", i);
        assert_int_equal(pm_addrset_add(s, a), 1);
    }
    assert_int_equal(pm_addrset_count(s), N);
    for (int i = 0; i < N; i += 2) {
        snprintf(a, sizeof a, "R%d@EXAMPLE.test", i);
        assert_int_equal(pm_addrset_remove(s, a), 1);
    }
    for (int i = 0; i < N; i++) {
        snprintf(a, sizeof a, "r%d@example.test", i);
        assert_int_equal(pm_addrset_has(s, a), i % 2);
    }
    for (int i = 1; i < N; i += 2) {
        snprintf(a, sizeof a, "r%d@example.test", i);
        assert_int_equal(pm_addrset_remove(s, a), 1);
    }
    assert_int_equal(pm_addrset_count(s), 0);
    assert_int_equal(pm_addrset_add(s, "again@example.test"), 1);
    pm_addrset_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basics),
        cmocka_unit_test(test_against_reference),
        cmocka_unit_test(test_fill_and_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
