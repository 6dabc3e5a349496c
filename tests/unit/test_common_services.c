/* The list of services (common/services.def as services.c, keys.c and runas.c read it):
 * every row is whole (a role that is its own name, a user with a pinned id of its own, a
 * chroot for whatever drops), the start order is one the supervisor can keep (the core
 * first, the queue before all), names and ids are unique, and the bus key names and the
 * run-as table are exactly the rows they are derived from. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "keys.h"
#include "runas.h"
#include "services.h"

/* The range install-deps pins ids in (its useradd -K SYS_UID_MAX=2999). */
#define PINNED_MIN 2500u
#define PINNED_MAX 2999u

static int nrows(void)
{
    int n = 0;
    while (pm_svc_table[n].name)
        n++;
    return n;
}

static int drops(const struct pm_svc *s) { return s->privsep != PM_SVC_CALLER; }

static void test_every_row_is_whole_and_unique(void **state)
{
    (void)state;
    int n = nrows();
    assert_true(n >= 8);
    for (int i = 0; i < n; i++) {
        const struct pm_svc *s = &pm_svc_table[i];
        assert_true(strlen(s->name) > 0 && strspn(s->name, "abcdefghijklmnopqrstuvwxyz0123456789") == strlen(s->name));
        assert_non_null(s->description);
        assert_true(strlen(s->description) > 10);
        assert_ptr_equal(pm_svc_find(s->name), s);
        assert_string_not_equal(pm_svc_privsep_name(s->privsep), "?");
        /* A role is the service's own name: the key name "smtpd.eu-1" says its role. */
        if (s->role != PM_ROLE_NONE)
            assert_string_equal(pm_role_name(s->role), s->name);
        if (drops(s)) {
            assert_non_null(s->user);
            assert_true(s->uid >= PINNED_MIN && s->uid <= PINNED_MAX);
        } else {
            assert_null(s->user);
            assert_null(s->chroot_rel);
        }
        /* Whatever runs a sandboxed process of its own confines it to a directory. */
        if (drops(s) && s->privsep != PM_SVC_HELPER)
            assert_non_null(s->chroot_rel);
        for (int j = 0; j < i; j++) {
            const struct pm_svc *o = &pm_svc_table[j];
            assert_string_not_equal(o->name, s->name);
            if (s->role != PM_ROLE_NONE)
                assert_int_not_equal(o->role, s->role);
            if (o->user && s->user) {
                assert_string_not_equal(o->user, s->user);
                assert_int_not_equal(o->uid, s->uid);
            }
        }
    }
    assert_null(pm_svc_find("nope"));
}

static void test_groups_are_declared_and_ids_do_not_collide(void **state)
{
    (void)state;
    int found_store = 0;
    for (const struct pm_svc_group *g = pm_svc_groups; g->name; g++) {
        assert_true(g->gid >= PINNED_MIN && g->gid <= PINNED_MAX);
        found_store |= strcmp(g->name, PM_RUNAS_STORE_GROUP) == 0;
        /* A user's own group has the user's id: a shared group's must be another. */
        for (const struct pm_svc *s = pm_svc_table; s->name; s++)
            assert_int_not_equal(s->uid, g->gid);
        for (const struct pm_svc_group *o = pm_svc_groups; o < g; o++) {
            assert_string_not_equal(o->name, g->name);
            assert_int_not_equal(o->gid, g->gid);
        }
    }
    assert_true(found_store);
    int members = 0;
    for (const struct pm_svc *s = pm_svc_table; s->name; s++) {
        if (!s->group)
            continue;
        const struct pm_svc_group *g = pm_svc_groups;
        while (g->name && strcmp(g->name, s->group) != 0)
            g++;
        assert_non_null(g->name); /* a group that install-deps creates */
        members++;
    }
    assert_true(members >= 2); /* the store is shared, or it needs no group */
}

/* What the supervisor does (supervisor.c): starts the CORE rows in order, waits until they
 * are ready, then the AFTER rows in order; it stops them the other way round. */
static void test_start_order_is_one_the_supervisor_keeps(void **state)
{
    (void)state;
    const struct pm_svc *first = NULL;
    int after_seen = 0, ncore = 0, nafter = 0;
    for (const struct pm_svc *s = pm_svc_table; s->name; s++) {
        if (!first && pm_svc_supervised(s))
            first = s;
        if (s->start == PM_SVC_START_CORE) {
            assert_false(after_seen); /* every core row before the others: row order is start order */
            ncore++;
        }
        if (s->start == PM_SVC_START_AFTER) {
            after_seen = 1;
            nafter++;
        }
        /* Started: a binary of its own that drops; never started: a helper or the caller. */
        int never = s->privsep == PM_SVC_HELPER || s->privsep == PM_SVC_CALLER;
        assert_int_equal(!pm_svc_supervised(s), never);
    }
    assert_non_null(first);
    assert_string_equal(first->name, "queue"); /* it binds the bus everyone else connects to */
    assert_true(ncore >= 1 && nafter >= 1);
    /* Front ends never accept mail before the queue can take it. */
    for (const struct pm_svc *s = pm_svc_table; s->name; s++)
        if (s->privsep == PM_SVC_SANDBOXES)
            assert_int_equal(s->start, PM_SVC_START_AFTER);
}

static void test_bus_key_names_are_the_rows_with_a_key(void **state)
{
    (void)state;
    const char *const *k = pm_keys_bus_names;
    int has_cli = 0;
    for (const struct pm_svc *s = pm_svc_table; s->name; s++) {
        if (!s->bus_key)
            continue;
        assert_non_null(*k);
        assert_string_equal(*k, s->name); /* the same names, in the same order */
        assert_int_not_equal(s->role, PM_ROLE_NONE);
        assert_int_equal(pm_role_of_key_name(*k), s->role);
        has_cli |= s->privsep == PM_SVC_CALLER;
        k++;
    }
    assert_null(*k);
    assert_true(has_cli); /* the cli has a key, though `postmesh run` never starts it */
    assert_string_equal(pm_keys_bus_names[0], "queue");
}

static void test_runas_table_is_the_rows_that_drop(void **state)
{
    (void)state;
    const struct pm_runas *r = pm_runas_table;
    for (const struct pm_svc *s = pm_svc_table; s->name; s++) {
        if (!drops(s)) {
            assert_null(pm_runas_find(s->name));
            continue;
        }
        assert_non_null(r->service);
        assert_string_equal(r->service, s->name);
        assert_string_equal(r->user, s->user);
        assert_ptr_equal(pm_runas_find(s->name), r);
        assert_ptr_equal(pm_runas_find_user(s->user), r);
        assert_string_equal(r->seccomp.name, s->name);
        assert_int_equal(r->split, s->privsep == PM_SVC_SANDBOXES || s->privsep == PM_SVC_JOB_WORKERS);
        if (s->group)
            assert_string_equal(r->group, s->group);
        else
            assert_null(r->group);
        if (s->chroot_rel)
            assert_string_equal(r->chroot_rel, s->chroot_rel);
        else
            assert_null(r->chroot_rel);
        r++;
    }
    assert_null(r->service);
    /* The columns that are runas.c's alone, spot-checked against what the services need. */
    assert_int_equal(pm_runas_find("queue")->seccomp.allow, PM_SC_ACCEPT | PM_SC_READ | PM_SC_WRITE);
    assert_int_equal(pm_runas_find("pop3d")->seccomp.allow, PM_SC_ACCEPT | PM_SC_READ | PM_SC_WRITE | PM_SC_NAMES);
    assert_int_equal(pm_runas_find("imapd")->seccomp.allow,
                     PM_SC_ACCEPT | PM_SC_READ | PM_SC_WRITE | PM_SC_NAMES | PM_SC_NOTIFY);
    assert_int_equal(pm_runas_find("auth")->seccomp.allow, PM_SC_READ);
    assert_int_equal(pm_runas_find("mta")->connects, PM_CONNECTS_QUEUE | PM_CONNECTS_RESOLVER);
    assert_int_equal(pm_runas_find("smtpd")->connects, PM_CONNECTS_QUEUE | PM_CONNECTS_RESOLVER); /* DNS checks */
    assert_int_equal(pm_runas_find("queue")->connects, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_row_is_whole_and_unique),
        cmocka_unit_test(test_groups_are_declared_and_ids_do_not_collide),
        cmocka_unit_test(test_start_order_is_one_the_supervisor_keeps),
        cmocka_unit_test(test_bus_key_names_are_the_rows_with_a_key),
        cmocka_unit_test(test_runas_table_is_the_rows_that_drop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
