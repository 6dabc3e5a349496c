/* Loop detection by address: which MX address and port are our own smtpd listeners, for
 * specific and wildcard listen addresses (the machine's own addresses read from its
 * interfaces, as the mta does). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "mta/self.h"

static struct mta_self *self_for(struct pm_listen *listen, int n)
{
    struct pm_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.smtpd.listen.v = listen;
    cfg.smtpd.listen.n = n;
    struct mta_self *s = mta_self_new(&cfg);
    assert_non_null(s);
    return s;
}

/* A non-loopback address of one of this machine's interfaces, "" if it has none. */
static void own_address(int family, char *out, size_t size)
{
    struct ifaddrs *ifa = NULL;
    out[0] = '\0';
    assert_int_equal(getifaddrs(&ifa), 0);
    for (struct ifaddrs *i = ifa; i && !out[0]; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != family)
            continue;
        if (family == AF_INET) {
            const struct in_addr *a = &((struct sockaddr_in *)i->ifa_addr)->sin_addr;
            if ((ntohl(a->s_addr) >> 24) != 127)
                inet_ntop(AF_INET, a, out, (socklen_t)size);
        } else {
            const struct in6_addr *a = &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
            if (!IN6_IS_ADDR_LOOPBACK(a) && !IN6_IS_ADDR_LINKLOCAL(a))
                inet_ntop(AF_INET6, a, out, (socklen_t)size);
        }
    }
    freeifaddrs(ifa);
}

static void test_specific_listeners_match_their_address_and_port(void **state)
{
    (void)state;
    struct pm_listen l[] = {
        {"127.0.0.1:2525", "smtp", 0}, {"127.0.0.1:2465", "smtps", 0}, {"[::1]:2587", "submission", 0},
        {"not an address", "smtp", 0},
    };
    struct mta_self *s = self_for(l, 4);
    assert_true(mta_self_is_listener(s, "127.0.0.1", 2525));
    assert_true(mta_self_is_listener(s, "127.0.0.1", 2465));
    assert_true(mta_self_is_listener(s, "::ffff:127.0.0.1", 2525)); /* the same socket answers */
    assert_true(mta_self_is_listener(s, "::1", 2587));
    assert_true(mta_self_is_listener(s, "0:0:0:0:0:0:0:1", 2587));
    assert_false(mta_self_is_listener(s, "127.0.0.1", 25));   /* another port */
    assert_false(mta_self_is_listener(s, "127.0.0.2", 2525)); /* another address */
    assert_false(mta_self_is_listener(s, "::1", 2525));
    assert_false(mta_self_is_listener(s, "mx.example.test", 2525));
    assert_false(mta_self_is_listener(s, "", 2525));
    mta_self_free(s);
}

static void test_wildcard_listeners_match_every_local_address_of_their_family(void **state)
{
    (void)state;
    struct pm_listen l[] = {{"0.0.0.0:25", "smtp", 0}, {"[::]:587", "submission", 0}, {"*:26", "smtp", 0}};
    struct mta_self *s = self_for(l, 3);
    assert_true(mta_self_is_listener(s, "127.0.0.1", 25));
    assert_true(mta_self_is_listener(s, "127.3.2.1", 25)); /* all of 127/8 is this host */
    assert_true(mta_self_is_listener(s, "::ffff:127.0.0.1", 25));
    assert_true(mta_self_is_listener(s, "127.0.0.1", 26)); /* "*" binds what getaddrinfo gives first */
    assert_true(mta_self_is_listener(s, "::1", 587));
    assert_false(mta_self_is_listener(s, "::1", 25));        /* 0.0.0.0 does not answer IPv6 */
    assert_false(mta_self_is_listener(s, "127.0.0.1", 587)); /* [::] is IPV6_V6ONLY */
    assert_false(mta_self_is_listener(s, "198.51.100.77", 25));
    assert_false(mta_self_is_listener(s, "2001:db8::77", 587));
    assert_false(mta_self_is_listener(s, "127.0.0.1", 24));
    char own[INET6_ADDRSTRLEN];
    own_address(AF_INET, own, sizeof own);
    if (own[0]) {
        assert_true(mta_self_is_listener(s, own, 25));
        assert_false(mta_self_is_listener(s, own, 587));
    }
    own_address(AF_INET6, own, sizeof own);
    if (own[0])
        assert_true(mta_self_is_listener(s, own, 587));
    mta_self_free(s);
}

static void test_no_listeners_no_loop(void **state)
{
    (void)state;
    struct mta_self *s = self_for(NULL, 0);
    assert_false(mta_self_is_listener(s, "127.0.0.1", 25));
    mta_self_free(s);
    assert_false(mta_self_is_listener(NULL, "127.0.0.1", 25));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_specific_listeners_match_their_address_and_port),
        cmocka_unit_test(test_wildcard_listeners_match_every_local_address_of_their_family),
        cmocka_unit_test(test_no_listeners_no_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
