/* Config loader: defaults, unknown keys and bad values name file:line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "config_file.h"

static void test_defaults_and_values(void **state)
{
    (void)state;
    write_conf("hostname = \"mx.test\";\ndomains = [ \"a.test\", \"B.test\" ];\n"
               "queue = { retry_min = 10; retry_max = 20; };\n"
               "smtpd = { listen = ( { address = \"127.0.0.1:2525\"; mode = \"smtp\"; } ); };\n");
    struct pm_config cfg;
    char err[256];
    assert_int_equal(pm_config_load(path, &cfg, err, sizeof err), 0);
    assert_string_equal(cfg.hostname, "mx.test");
    assert_int_equal(cfg.queue.retry_min, 10);
    assert_int_equal(cfg.queue.max_lifetime, 432000);
    assert_int_equal(cfg.smtpd.max_message_size, 36700160);
    assert_int_equal(cfg.smtpd.listen.n, 1);
    assert_string_equal(cfg.smtpd.listen.v[0].mode, "smtp");
    assert_true(pm_config_is_local_domain(&cfg, "b.TEST"));
    assert_false(pm_config_is_local_domain(&cfg, "c.test"));
    pm_config_free(&cfg);
    unlink(path);
}

static void test_errors_name_file_and_line(void **state)
{
    (void)state;
    expect_error("hostname = \"x\";\nbogus = 1;\n", 2, "unknown key 'bogus'");
    expect_error("hostname = \"x\";\nqueue = { nope = 1; };\n", 2, "unknown key 'queue.nope'");
    expect_error("queue = {\n retry_min = \"x\"; };\n", 2, "queue.retry_min must be an integer");
    expect_error("\nqueue = {\n\n retry_max = 99999999999; };\n", 4, "queue.retry_max = 99999999999 is out of range");
    expect_error("smtpd = {\n listen = (\n { address = \"1.2.3.4:25\"; mode = \"pop3\"; } ); };\n", 3, "mode 'pop3'");
    expect_error("hostname = ;\n", 1, "syntax error");
    expect_error("\n\nqueue = { retry_min = 100; retry_max = 10; };\n", 3, "must not exceed");
    expect_error("hostname = \"x\";\ndomains = \"x\";\n", 2, "list of strings");
    expect_error("hostname = \"x\";\n\ndomains = [ \"a@b\" ];\n", 3, "is not a domain");
    expect_error("hostname = \"x\";\nqueue = 5;\n", 2, "queue must be a group");
    /* libconfig 1.5 keeps only the low 32 bits of a literal without L: 4294967297 must not
     * pass as 1, nor a huge number as -1. */
    expect_error("queue = {\n max_lifetime = 4294967297; };\n", 2, "queue.max_lifetime = 4294967297 is out of range");
    expect_error("queue = { retry_min = 1; map_size_mb = 0x100000001; };\n", 1, "queue.map_size_mb = 4294967297 is out of range");
    expect_error("queue = { map_size_mb = 99999999999999999999; };\n", 1, "queue.map_size_mb is too large");
}

/* Containers: where a service binds and where the others connect are separate; several
 * queue shards are a list, with their control endpoints in the same order. */
static void test_bind_and_connect_endpoints(void **state)
{
    (void)state;
    struct pm_config cfg;
    char err[256];
    write_conf("queue = { endpoint = \"tcp://queue:7701\"; control = \"tcp://queue:7702\"; };\n");
    assert_int_equal(pm_config_load(path, &cfg, err, sizeof err), 0);
    assert_int_equal(cfg.queue.endpoints.n, 1);
    assert_string_equal(cfg.queue.endpoint, "tcp://queue:7701");
    assert_string_equal(cfg.queue.listen, "tcp://queue:7701"); /* one shard: binds where others connect */
    assert_string_equal(cfg.resolver.listen, "tcp://127.0.0.1:7703");
    pm_config_free(&cfg);
    unlink(path);

    write_conf("queue = { listen = \"tcp://*:7701\"; control_listen = \"tcp://*:7702\";\n"
               "  endpoint = [ \"tcp://q0:7701\", \"tcp://q1:7701\" ];\n"
               "  control = [ \"tcp://q0:7702\", \"tcp://q1:7702\" ]; };\n"
               "resolver = { listen = \"tcp://*:7703\"; endpoint = \"tcp://resolver:7703\"; };\n"
               "proxy_networks = [ \"10.0.0.0/8\" ];\n"
               "smtpd = { metrics = \"0.0.0.0:9025\"; drain_timeout = 5;\n"
               "  listen = ( { address = \"0.0.0.0:25\"; mode = \"smtp\"; proxy_protocol = true; } ); };\n");
    assert_int_equal(pm_config_load(path, &cfg, err, sizeof err), 0);
    assert_int_equal(cfg.queue.endpoints.n, 2);
    assert_string_equal(cfg.queue.endpoints.v[1], "tcp://q1:7701");
    assert_string_equal(cfg.queue.controls.v[1], "tcp://q1:7702");
    assert_string_equal(cfg.queue.endpoint, "tcp://q0:7701");
    assert_string_equal(cfg.queue.listen, "tcp://*:7701");
    assert_string_equal(cfg.resolver.listen, "tcp://*:7703");
    assert_string_equal(cfg.resolver.endpoint, "tcp://resolver:7703");
    assert_string_equal(cfg.smtpd.metrics, "0.0.0.0:9025");
    assert_int_equal(cfg.smtpd.drain_timeout, 5);
    assert_int_equal(cfg.smtpd.listen.v[0].proxy_protocol, 1);
    assert_int_equal(cfg.proxy_networks.n, 1);
    pm_config_free(&cfg);
    unlink(path);

    write_conf("queue = { listen = \"tcp://*:7701\"; endpoint = [ \"tcp://q0:7701\", \"tcp://q1:7701\" ]; };\n");
    assert_int_equal(pm_config_load(path, &cfg, err, sizeof err), 0 - 1);
    assert_non_null(strstr(err, "one control endpoint per queue.endpoint"));
    unlink(path);
    expect_error("queue = {\n endpoint = [ ];\n};\n", 2, "at least one endpoint");
    expect_error("smtpd = { listen = (\n { address = \"0.0.0.0:25\"; mode = \"smtp\"; proxy_protocol = \"yes\"; } ); };\n", 2,
                 "proxy_protocol must be true or false");
}

/* Each row carries its rule: the error names the file, the line of the value (of the list
 * element, when a list spans lines) and the key. */
static void test_rows_carry_their_rules(void **state)
{
    (void)state;
    static const struct error_case {
        const char *text;
        int line;
        const char *needle;
    } refused[] = {
        /* host name */
        {"\nhostname = \"mx..example.test\";\n", 2, "hostname: 'mx..example.test' is not a host name"},
        {"hostname = \"mx.example.test.\";\n", 1, "hostname: 'mx.example.test.' is not a host name: it ends"},
        {"hostname = \"[192.0.2.1]\";\n", 1, "hostname: '[192.0.2.1]' is an address literal"},
        {"hostname = \"192.0.2.1\";\n", 1, "hostname: '192.0.2.1' is an IP address"},
        {"hostname = \"\";\n", 1, "hostname: '' is empty"},
        {"hostname = \"mx\\r\\nX-Injected: 1\";\n", 1, "hostname: 'mx??X-Injected: 1' is not a host name"},
        /* domain lists: the element's own line */
        {"domains = [ \"example.test\",\n  \"bad_domain.test\" ];\n", 2, "domains: 'bad_domain.test' is not a domain"},
        {"smtpd = {\n etrn_domains = [ \"example.net.\" ]; };\n", 2,
         "smtpd.etrn_domains: 'example.net.' is not a domain"},
        /* paths */
        {"\nstate_dir = \"\";\n", 2, "state_dir: '' is empty"},
        {"tls = {\n certificate = \"/etc/cert\\n.pem\"; };\n", 2, "tls.certificate: '/etc/cert?.pem' is not a path"},
        /* bus endpoints, single and in lists */
        {"queue = {\n endpoint = \"127.0.0.1:7701\"; };\n", 2,
         "queue.endpoint: '127.0.0.1:7701' is not a bus endpoint"},
        {"queue = { endpoint = [ \"tcp://q0:7701\",\n \"tcp://q1:0\" ]; };\n", 2,
         "queue.endpoint: 'tcp://q1:0' is not a bus endpoint"},
        {"resolver = {\n listen = \"tcp://*\"; };\n", 2, "resolver.listen: 'tcp://*' is not a bus endpoint"},
        {"queue = {\n control_listen = \"tcp:/*:7702\"; };\n", 2, "queue.control_listen: 'tcp:/*:7702'"},
        /* bind addresses: listeners and metrics */
        {"smtpd = { listen = (\n { address = \"localhost:25\"; mode = \"smtp\"; } ); };\n", 2,
         "smtpd.listen address: 'localhost:25' is not an address to bind"},
        {"pop3d = { listen = (\n { mode = \"pop3\";\n address = \"127.0.0.1\"; } ); };\n", 3,
         "pop3d.listen address: '127.0.0.1' is not host:port"},
        {"mta = {\n metrics = \"127.0.0.1\"; };\n", 2, "mta.metrics: '127.0.0.1' is not host:port"},
        /* enums: the row lists its strings, and the error all of them */
        {"smtpd = { listen = (\n { address = \"1.2.3.4:25\"; mode = \"pop3\"; } ); };\n", 2,
         "smtpd.listen mode 'pop3' is not one of smtp, submission, smtps"},
        {"pop3d = { listen = (\n { address = \"1.2.3.4:110\"; mode = \"imap\"; } ); };\n", 2,
         "pop3d.listen mode 'imap' is not one of pop3, pop3s"},
        /* networks */
        {"trusted_networks = [ \"127.0.0.0/8\",\n \"10.0.0.0/\" ];\n", 2,
         "trusted_networks: '10.0.0.0/' is not a network: the prefix length must be 0-32"},
        {"\nproxy_networks = [ \"haproxy\" ];\n", 2, "proxy_networks: 'haproxy' is not a network"},
        /* name servers */
        {"resolver = {\n nameservers = [ \"dns.example.net\" ]; };\n", 2,
         "resolver.nameservers: 'dns.example.net' is not an IP address or IP:port"},
        /* key name */
        {"bus = {\n key_name = \"../queue\"; };\n", 2, "bus.key_name: '../queue' is not a key name"},
        /* ranges (as before) */
        {"mta = {\n remote_port = 0; };\n", 2, "mta.remote_port = 0 is out of range [1, 65535]"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        expect_error(refused[i].text, refused[i].line, refused[i].needle);

    /* Values each rule accepts, as the tests, deploy/ and make run write them. */
    write_conf("hostname = \"pm-test.local\";\nstate_dir = \"var\";\nusers_file = \"\";\naliases_file = \"aliases\";\n"
               "domains = [ \"example.test\", \"etc\" ];\n"
               "trusted_networks = [ \"127.0.0.0/8\", \"::1\", \"10.1.2.3/8\" ];\n"
               "bus = { keys_dir = \"/etc/postmesh/keys\"; key_name = \"smtpd.eu-1\"; };\n"
               "queue = { control = \"ipc:///tmp/pm/control\"; metrics = \"0.0.0.0:9701\"; };\n"
               "resolver = { endpoint = \"tcp://localhost:7703\"; nameservers = [ \"127.0.0.1:1\", \"[::1]:53\" ]; };\n"
               "smtpd = { etrn_domains = [ \"example.net\" ];\n"
               "  listen = ( { address = \"[::1]:0\"; mode = \"submission\"; },\n"
               "             { address = \"*:25\"; mode = \"smtp\"; } ); };\n");
    struct pm_config cfg;
    char err[256];
    if (pm_config_load(path, &cfg, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_string_equal(cfg.hostname, "pm-test.local");
    assert_string_equal(cfg.users_file, "");
    assert_string_equal(cfg.smtpd.listen.v[0].address, "[::1]:0");
    assert_string_equal(cfg.queue.control_listen, "ipc:///tmp/pm/control");
    pm_config_free(&cfg);
    unlink(path);
}

/* What is about several keys together: the short cross-key list, pointing at a key's line. */
static void test_cross_key_rules(void **state)
{
    (void)state;
    expect_error("queue = {\n retry_max = 10;\n retry_min = 11; };\n", 3,
                 "queue.retry_min must not exceed queue.retry_max");
    expect_error("queue = { endpoint = [ \"tcp://a:1\", \"tcp://b:1\" ];\n control = \"tcp://a:2\"; };\n", 2,
                 "queue.control must name one control endpoint per queue.endpoint (2 shards, 1 control)");
    /* the key a rule points at left out: line 0, still naming it */
    expect_error("queue = { retry_max = 100; };\n", 0, "queue.retry_min must not exceed");
}

/* A 64-bit value in range is taken as written, with or without the L suffix. */
static void test_large_values_in_range(void **state)
{
    (void)state;
    write_conf("smtpd = { max_message_size = 2147483648; };\nqueue = { map_size_mb = 16777216L; retry_min = 7; };\n");
    struct pm_config cfg;
    char err[256];
    if (pm_config_load(path, &cfg, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_true(cfg.smtpd.max_message_size == 2147483648LL);
    assert_true(cfg.queue.map_size_mb == 16777216LL);
    assert_int_equal(cfg.queue.retry_min, 7);
    pm_config_free(&cfg);
    unlink(path);
}

/* smtpd.dnsbl (common/config_dnsbl.c): the entries, their defaults and every bad value with
 * the line of the offending setting. */
static void test_dnsbl_lists(void **state)
{
    (void)state;
    write_conf("smtpd = { dnsbl = ( { zone = \"zen.example.test\"; weight = 2; },\n"
               "  { zone = \"list.dnswl.test\"; weight = -5; }, { zone = \"bl.test\"; match = \"127.0.0.2\"; } );\n"
               "  dnsbl_threshold = 3; };\n");
    struct pm_config cfg;
    char err[256];
    assert_int_equal(pm_config_load(path, &cfg, err, sizeof err), 0);
    assert_int_equal(cfg.smtpd.dnsbl.n, 3);
    assert_string_equal(cfg.smtpd.dnsbl.v[0].zone, "zen.example.test");
    assert_int_equal(cfg.smtpd.dnsbl.v[0].weight, 2);
    assert_int_equal(cfg.smtpd.dnsbl.v[1].weight, -5);
    assert_int_equal(cfg.smtpd.dnsbl.v[2].weight, 1); /* the default */
    assert_string_equal(cfg.smtpd.dnsbl.v[2].match, "127.0.0.2");
    assert_null(cfg.smtpd.dnsbl.v[0].match);
    assert_int_equal(cfg.smtpd.dnsbl_threshold, 3);
    assert_int_equal(cfg.smtpd.dnsbl_timeout, 2000);
    pm_config_free(&cfg);
    unlink(path);

    expect_error("smtpd = {\n dnsbl = [ \"zen.test\" ]; };\n", 2, "must be a group");
    expect_error("smtpd = {\n dnsbl = \"zen.test\"; };\n", 2, "smtpd.dnsbl must be a list of groups");
    expect_error("smtpd = { dnsbl = (\n \"zen.test\" ); };\n", 2, "must be a group");
    expect_error("smtpd = { dnsbl = (\n { weight = 2; } ); };\n", 2, "needs zone");
    expect_error("smtpd = { dnsbl = ( { zone = \"a.test\";\n weight = 0; } ); };\n", 2, "not 0");
    expect_error("smtpd = { dnsbl = ( { zone = \"a.test\";\n weight = 101; } ); };\n", 2, "must be in [-100, 100]");
    expect_error("smtpd = { dnsbl = ( { zone = \"a.test\";\n weight = \"2\"; } ); };\n", 2, "must be an integer");
    expect_error("smtpd = { dnsbl = ( {\n zone = \"bad zone\"; } ); };\n", 2, "smtpd.dnsbl.zone: 'bad zone'");
    expect_error("smtpd = { dnsbl = ( { zone = \"a.test\";\n match = \"127.0.0\"; } ); };\n", 2, "not an IPv4");
    expect_error("smtpd = { dnsbl = ( { zone = \"a.test\";\n list = 1; } ); };\n", 2, "unknown key 'list'");
    expect_error("smtpd = { dnsbl = ( { zone = \"a.test\"; },\n { zone = \"A.test\"; } ); };\n", 2, "listed twice");
    expect_error("smtpd = {\n dnsbl_threshold = 0; };\n", 2, "smtpd.dnsbl_threshold = 0 is out of range");
    expect_error("smtpd = {\n dnsbl_timeout = 50; };\n", 2, "smtpd.dnsbl_timeout = 50 is out of range");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_values),
        cmocka_unit_test(test_errors_name_file_and_line),
        cmocka_unit_test(test_large_values_in_range),
        cmocka_unit_test(test_bind_and_connect_endpoints),
        cmocka_unit_test(test_rows_carry_their_rules),
        cmocka_unit_test(test_cross_key_rules),
        cmocka_unit_test(test_dnsbl_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
