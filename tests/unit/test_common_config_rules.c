/* The configuration's value rules (common/config_rules.c), one table per kind of value:
 * what each accepts and refuses, and that a refusal says why. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "config_rules.h"

struct rule_case {
    const char *value;
    const char *why; /* NULL: valid; else a part of the reason */
};

static void run_cases(pm_config_rule *rule, const char *kind, const struct rule_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char why[160] = "";
        int rc = rule(cases[i].value, why, sizeof why);
        if (!cases[i].why && rc != 0)
            fail_msg("%s: '%s' refused: %s", kind, cases[i].value, why);
        if (cases[i].why && rc == 0)
            fail_msg("%s: '%s' accepted", kind, cases[i].value);
        if (cases[i].why && !strstr(why, cases[i].why))
            fail_msg("%s: '%s': reason '%s' does not say '%s'", kind, cases[i].value, why, cases[i].why);
    }
}
#define RUN(rule, cases) run_cases(rule, #rule, cases, sizeof cases / sizeof cases[0])

static char long_label[80], long_name[300];

static void test_hostname(void **state)
{
    (void)state;
    memset(long_label, 'a', 64);
    for (int i = 0; i < 6; i++) /* 6 x 50 characters: 299 */
        snprintf(long_name + strlen(long_name), sizeof long_name - strlen(long_name), "%s%.49s", i ? "." : "",
                 "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghij");
    const struct rule_case cases[] = {
        {"mx.example.test", NULL},
        {"pm-test.local", NULL},
        {"x", NULL},             /* one label: tests and a bare machine name */
        {"localhost", NULL},
        {"MX1.Example.TEST", NULL},
        {"123.example.test", NULL}, /* a numeric label, not the last */
        {"xn--bcher-kva.example", NULL},
        {"a.b-c.d", NULL},
        {"", "is empty"},
        {"mx.example.test.", "ends with a dot"},
        {"mx..example.test", "empty label"},
        {".example.test", "empty label"},
        {"-mx.example.test", "starts or ends with '-'"},
        {"mx-.example.test", "starts or ends with '-'"},
        {"mx_1.example.test", "holds '_'"},
        {"mx example", "holds byte 0x20"},
        {"mx.example.test\r\nX-Injected: 1", "holds byte 0x0d"},
        {"bücher.example", "holds byte 0xc3"},
        {"192.0.2.1", "is an IP address"},
        {"2001:db8::1", "is an IP address"},
        {"[192.0.2.1]", "is an address literal"},
        {"example.123", "last label is all digits"},
        {"12345", "last label is all digits"},
        {long_label, "longer than 63"},
        {long_name, "longer than 253"},
    };
    RUN(pm_rule_hostname, cases);
}

static void test_domain(void **state)
{
    (void)state;
    const struct rule_case cases[] = {
        {"example.test", NULL},
        {"etc", NULL},
        {"a@b", "is not a domain: it holds '@'"},
        {"example.test.", "ends with a dot"},
        {"", "is empty"},
        {"[127.0.0.1]", "address literal"},
        {"*.example.test", "holds '*'"},
    };
    RUN(pm_rule_domain, cases);
}

static void test_path(void **state)
{
    (void)state;
    static char huge[5000];
    memset(huge, 'a', sizeof huge - 1);
    const struct rule_case cases[] = {
        {"/var/lib/postmesh", NULL},
        {"var", NULL}, /* relative: deploy/local */
        {"var/tls/cert.pem", NULL},
        {"/tmp/a b/c", NULL},
        {"", "is empty"},
        {"/var/lib\npostmesh", "control character"},
        {huge, "longer than"},
    };
    RUN(pm_rule_path, cases);
}

static void test_bus_endpoint(void **state)
{
    (void)state;
    char ipc_107[200], ipc_108[200];
    snprintf(ipc_107, sizeof ipc_107, "ipc:///%0106d", 0);
    snprintf(ipc_108, sizeof ipc_108, "ipc:///%0107d", 0);
    const struct rule_case cases[] = {
        {"tcp://127.0.0.1:7701", NULL},
        {"tcp://*:7701", NULL},
        {"tcp://queue:7701", NULL},
        {"tcp://localhost:7702", NULL},
        {"tcp://postmesh-queue-0.postmesh-queue:7701", NULL},
        {"tcp://postmesh_queue_1:7701", NULL},
        {"tcp://[::1]:7701", NULL},
        {"tcp://[fe80::1%eth0]:7701", NULL},
        {"tcp://10.0.0.1;queue:7701", NULL},
        {"ipc:///tmp/postmesh/control.sock", NULL},
        {"ipc://var/queue.sock", NULL},
        {"inproc://fuzz-queue", NULL},
        {"inproc://", "tcp://host:port or ipc://path"},
        {"127.0.0.1:7701", "tcp://host:port or ipc://path"},
        {"udp://127.0.0.1:7701", "tcp://host:port or ipc://path"},
        {"tcp://127.0.0.1", "tcp://host:port"},
        {"tcp://:7701", "tcp://host:port"},
        {"tcp://que ue:7701", "tcp://host:port"},
        {"tcp://[::1:7701", "tcp://host:port"},
        {"tcp://127.0.0.1:0", "port must be 1-65535"},
        {"tcp://127.0.0.1:65536", "port must be 1-65535"},
        {"tcp://127.0.0.1:77o1", "port must be 1-65535"},
        {"tcp://127.0.0.1:*", "port must be 1-65535"},
        {"ipc://", "ipc://path"},
        {ipc_107, NULL}, /* sun_path holds 107 bytes and a NUL */
        {ipc_108, "longer than 107"},
        {"", "tcp://host:port"},
    };
    RUN(pm_rule_bus_endpoint, cases);
}

static void test_listen_address(void **state)
{
    (void)state;
    const struct rule_case cases[] = {
        {"127.0.0.1:2525", NULL},
        {"0.0.0.0:25", NULL},
        {"[::1]:25", NULL},
        {"*:25", NULL},
        {":25", NULL},
        {"127.0.0.1:0", NULL}, /* the kernel chooses */
        {"127.0.0.1", "is not host:port"},
        {"127.0.0.1:", "is not host:port"},
        {"127.0.0.1:65536", "is not host:port"},
        {"127.0.0.1:-1", "is not host:port"},
        {"[::1]25", "is not host:port"},
        {"localhost:25", "no names"},
        {"mx.example.test:25", "no names"},
    };
    RUN(pm_rule_listen_address, cases);
}

static void test_network(void **state)
{
    (void)state;
    const struct rule_case cases[] = {
        {"127.0.0.0/8", NULL},
        {"10.0.0.0/8", NULL},
        {"127.0.0.2/32", NULL},
        {"0.0.0.0/0", NULL},
        {"192.0.2.1", NULL},
        {"::1/128", NULL},
        {"2001:db8::/32", NULL},
        {"::1", NULL},
        {"10.1.2.3/8", NULL}, /* host bits set: matched as 10.0.0.0/8, as before */
        {"127.0.0.1/", "prefix length must be 0-32"},
        {"127.0.0.1/33", "prefix length must be 0-32"},
        {"127.0.0.1/8x", "prefix length must be 0-32"},
        {"127.0.0.1/-1", "prefix length must be 0-32"},
        {"::1/129", "prefix length must be 0-128"},
        {"localhost", "is not a network"},
        {"10.0.0/8", "is not a network"},
        {"256.0.0.0/8", "is not a network"},
        {"/8", "is not a network"},
        {"", "is not a network"},
        {"fe80::1%eth0/64", "is not a network"},
    };
    RUN(pm_rule_network, cases);
}

static void test_nameserver(void **state)
{
    (void)state;
    const struct rule_case cases[] = {
        {"127.0.0.53", NULL},
        {"127.0.0.1:1", NULL},
        {"9.9.9.9", NULL},
        {"::1", NULL},
        {"2001:db8::53", NULL},
        {"[2001:db8::53]:5353", NULL},
        {"dns.example.net", "is not an IP address or IP:port"},
        {"127.0.0.1:0", "port 1-65535"},
        {"127.0.0.1:70000", "port 1-65535"},
        {"127.0.0.1:x", "port 1-65535"},
        {"[::1]", "is not an IP address or IP:port"},
        {"", "is not an IP address or IP:port"},
    };
    RUN(pm_rule_nameserver, cases);
}

static void test_key_name(void **state)
{
    (void)state;
    const struct rule_case cases[] = {
        {"smtpd", NULL},
        {"smtpd.eu-1", NULL},
        {"cli.ops_2", NULL},
        {"monitoring", "is not a key name"},
        {"smtpd.", "is not a key name"},
        {"../queue", "is not a key name"},
        {"smtpd.a/b", "is not a key name"},
    };
    RUN(pm_rule_key_name, cases);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostname),      cmocka_unit_test(test_domain),
        cmocka_unit_test(test_path),          cmocka_unit_test(test_bus_endpoint),
        cmocka_unit_test(test_listen_address), cmocka_unit_test(test_network),
        cmocka_unit_test(test_nameserver),    cmocka_unit_test(test_key_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
