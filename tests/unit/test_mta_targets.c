/* The MX choice of an outbound job (mta/targets.c): addresses in preference order, at most
 * MTA_MAX_TARGETS, and the address half of loop detection (a listener of ours ends the list
 * at its preference), as Postfix smtp_find_self + smtp_truncate_self. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "mta/self.h"
#include "mta/targets.h"

static struct mta_self *ours(void)
{
    static struct pm_listen l[] = {{"127.0.0.1:25", "smtp", 0}};
    struct pm_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.smtpd.listen.v = l;
    cfg.smtpd.listen.n = 1;
    struct mta_self *s = mta_self_new(&cfg);
    assert_non_null(s);
    return s;
}

/* A reply of up to 6 hosts; each host's addresses separated by ',' ("" for none). */
struct answer {
    Postmesh__ResolveReply reply;
    Postmesh__MxHost hosts[6], *hp[6];
    char *addrs[6][12];
    char buf[6][256];
};

static void answer(struct answer *a, int n, const char *const *names, const uint32_t *prefs, const char *const *addrs)
{
    memset(a, 0, sizeof *a);
    postmesh__resolve_reply__init(&a->reply);
    a->reply.status = POSTMESH__RESOLVE_REPLY__STATUS__OK;
    for (int h = 0; h < n; h++) {
        postmesh__mx_host__init(&a->hosts[h]);
        a->hosts[h].name = (char *)names[h];
        a->hosts[h].preference = prefs[h];
        snprintf(a->buf[h], sizeof a->buf[h], "%s", addrs[h]);
        size_t k = 0;
        for (char *save = NULL, *t = strtok_r(a->buf[h], ",", &save); t && k < 12; t = strtok_r(NULL, ",", &save))
            a->addrs[h][k++] = t;
        a->hosts[h].addresses = a->addrs[h];
        a->hosts[h].n_addresses = k;
        a->hp[h] = &a->hosts[h];
    }
    a->reply.hosts = a->hp;
    a->reply.n_hosts = (size_t)n;
}

static void test_preference_order_and_best(void **state)
{
    (void)state;
    struct mta_self *self = ours();
    struct answer a;
    answer(&a, 2, (const char *[]){"mx1.test", "mx2.test"}, (uint32_t[]){10, 20},
           (const char *[]){"192.0.2.1,192.0.2.2", "192.0.2.3"});
    struct mta_targets t;
    assert_int_equal(mta_targets_mx(&t, &a.reply, self, 25, "ID", "remote.test"), MTA_TARGETS_OK);
    assert_int_equal(t.n, 3);
    assert_string_equal(t.v[0].ip, "192.0.2.1");
    assert_string_equal(t.v[1].ip, "192.0.2.2");
    assert_string_equal(t.v[2].host, "mx2.test");
    assert_true(t.v[0].best && t.v[1].best);
    assert_false(t.v[2].best);

    /* At most MTA_MAX_TARGETS addresses. */
    answer(&a, 1, (const char *[]){"mx.test"}, (uint32_t[]){0},
           (const char *[]){"192.0.2.1,192.0.2.2,192.0.2.3,192.0.2.4,192.0.2.5,192.0.2.6,192.0.2.7,192.0.2.8,"
                            "192.0.2.9,192.0.2.10,192.0.2.11,192.0.2.12"});
    assert_int_equal(mta_targets_mx(&t, &a.reply, self, 25, "ID", "remote.test"), MTA_TARGETS_OK);
    assert_int_equal(t.n, MTA_MAX_TARGETS);
    mta_self_free(self);
}

/* A listener of ours at preference 20: it and every host at 20 or worse are dropped. */
static void test_our_listener_truncates_the_list(void **state)
{
    (void)state;
    struct mta_self *self = ours();
    struct answer a;
    struct mta_targets t;
    answer(&a, 4, (const char *[]){"mx1.test", "backup.test", "other.test", "worse.test"},
           (uint32_t[]){10, 20, 20, 30}, (const char *[]){"192.0.2.1", "127.0.0.1", "192.0.2.3", "192.0.2.4"});
    assert_int_equal(mta_targets_mx(&t, &a.reply, self, 25, "ID", "remote.test"), MTA_TARGETS_OK);
    assert_int_equal(t.n, 1);
    assert_string_equal(t.v[0].host, "mx1.test");
    /* the same address on another port is not us */
    assert_int_equal(mta_targets_mx(&t, &a.reply, self, 2525, "ID", "remote.test"), MTA_TARGETS_OK);
    assert_int_equal(t.n, 4);

    /* Ours is the best: nowhere to go. */
    answer(&a, 2, (const char *[]){"us.test", "worse.test"}, (uint32_t[]){10, 20},
           (const char *[]){"192.0.2.9,127.0.0.1", "192.0.2.4"});
    assert_int_equal(mta_targets_mx(&t, &a.reply, self, 25, "ID", "remote.test"), MTA_TARGETS_LOOP);

    /* We are the backup and the better host has no address. */
    answer(&a, 2, (const char *[]){"mx1.test", "us.test"}, (uint32_t[]){10, 20}, (const char *[]){"", "127.0.0.1"});
    assert_int_equal(mta_targets_mx(&t, &a.reply, self, 25, "ID", "remote.test"), MTA_TARGETS_NO_PRIMARY);

    /* No address anywhere, no listener of ours. */
    answer(&a, 1, (const char *[]){"mx1.test"}, (uint32_t[]){10}, (const char *[]){""});
    assert_int_equal(mta_targets_mx(&t, &a.reply, self, 25, "ID", "remote.test"), MTA_TARGETS_EMPTY);
    mta_self_free(self);
}

static void test_address_literals(void **state)
{
    (void)state;
    char ip[64];
    assert_string_equal(mta_domain_literal("[192.0.2.1]", ip, sizeof ip), "192.0.2.1");
    assert_string_equal(mta_domain_literal("[IPv6:2001:db8::1]", ip, sizeof ip), "2001:db8::1");
    assert_null(mta_domain_literal("[2001:db8::1]", ip, sizeof ip)); /* IPv6 needs its tag */
    assert_null(mta_domain_literal("[mx.test]", ip, sizeof ip));
    assert_null(mta_domain_literal("192.0.2.1", ip, sizeof ip));

    struct mta_self *self = ours();
    struct mta_targets t;
    assert_int_equal(mta_targets_literal(&t, "[192.0.2.1]", "192.0.2.1", self, 25, "ID"), MTA_TARGETS_OK);
    assert_int_equal(t.n, 1);
    assert_string_equal(t.v[0].host, "[192.0.2.1]");
    assert_true(t.v[0].best);
    assert_int_equal(mta_targets_literal(&t, "[127.0.0.1]", "127.0.0.1", self, 25, "ID"), MTA_TARGETS_LOOP);
    assert_int_equal(t.n, 0);
    mta_self_free(self);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_preference_order_and_best),
        cmocka_unit_test(test_our_listener_truncates_the_list),
        cmocka_unit_test(test_address_literals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
