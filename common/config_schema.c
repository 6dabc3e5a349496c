/* The schema: every key of the configuration file, one row each, with its type, its place in
 * struct pm_config, its default and the rule its value follows (a range, the strings allowed,
 * or a kind of value from config_rules.h). Adding a setting is one row here, a field in
 * config.h and a line in deploy/local/postmesh.conf (a unit test holds the file to this
 * table). What is about several keys together is in config.c's cross-key list. */
#include "config_schema.h"

#include "config.h"

#define O(f) offsetof(struct pm_config, f)
#define STR(p, f, d, r) {.path = p, .type = PM_CFG_STR, .off = O(f), .def_str = d, .rule = r}
/* "" allowed: the key is off, or takes its value from another (said in config.h). */
#define STR_OPT(p, f, d, r)                                                                                            \
    {.path = p, .type = PM_CFG_STR, .off = O(f), .def_str = d, .rule = r, .flags = PM_CFG_EMPTY_OK}
#define INT(p, f, d, lo, hi) {.path = p, .type = PM_CFG_INT, .off = O(f), .def_int = d, .min = lo, .max = hi}
#define BOOL(p, f, d) {.path = p, .type = PM_CFG_BOOL, .off = O(f), .def_int = d, .max = 1}
#define LIST(p, f, r) {.path = p, .type = PM_CFG_STRLIST, .off = O(f), .rule = r}
#define STRS(p, f, d, r) {.path = p, .type = PM_CFG_STRS, .off = O(f), .def_str = d, .rule = r}
#define LISTEN(p, f, ...)                                                                                              \
    {.path = p, .type = PM_CFG_LISTEN, .off = O(f), .rule = pm_rule_listen_address,                                   \
     .choices = (const char *const[]){__VA_ARGS__, NULL}}
#define MILTERS(p, f) {.path = p, .type = PM_CFG_MILTERS, .off = O(f), .rule = pm_rule_milter_address}
#define DAY 86400LL

const struct pm_config_key pm_config_schema[] = {
    STR("hostname", hostname, NULL, pm_rule_hostname), /* default: gethostname(), held to the same rule */
    STR("state_dir", state_dir, "/var/lib/postmesh", pm_rule_path),
    LIST("domains", domains, pm_rule_domain),
    STR_OPT("users_file", users_file, "/etc/postmesh/users", pm_rule_path),
    STR_OPT("aliases_file", aliases_file, "", pm_rule_path),
    LIST("trusted_networks", trusted_networks, pm_rule_network),
    LIST("proxy_networks", proxy_networks, pm_rule_network),
    {.path = "dkim", .type = PM_CFG_DKIM, .off = O(dkim)},
    BOOL("debug", debug, 0),
    BOOL("privsep.allow_unprivileged", privsep.allow_unprivileged, 0),
    BOOL("bus.curve", bus.curve, 1),
    STR_OPT("bus.keys_dir", bus.keys_dir, "", pm_rule_path),
    STR_OPT("bus.key_name", bus.key_name, "", pm_rule_key_name),
    STR_OPT("tls.certificate", tls.certificate, "", pm_rule_path),
    STR_OPT("tls.key", tls.key, "", pm_rule_path),
    STRS("queue.endpoint", queue.endpoints, "tcp://127.0.0.1:7701", pm_rule_bus_endpoint),
    STRS("queue.control", queue.controls, "tcp://127.0.0.1:7702", pm_rule_bus_endpoint),
    STR_OPT("queue.listen", queue.listen, "", pm_rule_bus_endpoint),
    STR_OPT("queue.control_listen", queue.control_listen, "", pm_rule_bus_endpoint),
    STR_OPT("queue.metrics", queue.metrics, "", pm_rule_listen_address),
    INT("queue.map_size_mb", queue.map_size_mb, 4096, 1, 1LL << 24),
    INT("queue.retry_min", queue.retry_min, 300, 1, 365 * DAY),
    INT("queue.retry_max", queue.retry_max, 3600, 1, 365 * DAY),
    INT("queue.max_lifetime", queue.max_lifetime, 5 * DAY, 0, 365 * DAY),
    INT("queue.delay_warning", queue.delay_warning, 14400, 0, 365 * DAY),
    INT("queue.job_lease", queue.job_lease, 600, 1, DAY),
    INT("queue.max_batch", queue.max_batch, 256, 1, 100000),
    INT("queue.active_limit", queue.active_limit, 20000, 16, 10000000),
    STR_OPT("queue.tlsrpt_organization", queue.tlsrpt_organization, "", NULL),
    INT("queue.tlsrpt_hour", queue.tlsrpt_hour, 1, 0, 23),
    STR("resolver.endpoint", resolver.endpoint, "tcp://127.0.0.1:7703", pm_rule_bus_endpoint),
    STR_OPT("resolver.listen", resolver.listen, "", pm_rule_bus_endpoint),
    STR_OPT("resolver.metrics", resolver.metrics, "", pm_rule_listen_address),
    LIST("resolver.nameservers", resolver.nameservers, pm_rule_nameserver),
    INT("resolver.timeout", resolver.timeout, 5, 1, 120),
    INT("resolver.negative_ttl", resolver.negative_ttl, 60, 0, DAY),
    BOOL("resolver.dnssec", resolver.dnssec, 1),
    LIST("resolver.trust_anchors", resolver.trust_anchors, pm_rule_path),
    LISTEN("smtpd.listen", smtpd.listen, "smtp", "submission", "smtps"),
    STR_OPT("smtpd.metrics", smtpd.metrics, "", pm_rule_listen_address),
    INT("smtpd.drain_timeout", smtpd.drain_timeout, 30, 0, 3600),
    INT("smtpd.sandboxes", smtpd.sandboxes, 0, 0, 64),
    LIST("smtpd.etrn_domains", smtpd.etrn_domains, pm_rule_domain),
    INT("smtpd.lookup_cache_ttl", smtpd.lookup_cache_ttl, 5, 0, 3600),
    INT("smtpd.max_message_size", smtpd.max_message_size, 36700160, 1024, 1LL << 31),
    INT("smtpd.max_recipients", smtpd.max_recipients, 1000, 1, 100000),
    INT("smtpd.max_connections", smtpd.max_connections, 10000, 1, 1000000),
    INT("smtpd.max_connections_per_ip", smtpd.max_connections_per_ip, 100, 1, 1000000),
    INT("smtpd.body_memory_mb", smtpd.body_memory_mb, 0, 0, 1 << 20),
    INT("smtpd.timeout_command", smtpd.timeout_command, 300, 1, DAY),
    INT("smtpd.timeout_data", smtpd.timeout_data, 180, 1, DAY),
    INT("smtpd.submit_timeout", smtpd.submit_timeout, 60, 1, 3600),
    INT("smtpd.max_errors", smtpd.max_errors, 10, 1, 1000),
    INT("smtpd.auth_failures", smtpd.auth_failures, 10, 1, 100000),
    INT("smtpd.auth_lockout", smtpd.auth_lockout, 600, 0, DAY),
    INT("smtpd.greet_pause_ms", smtpd.greet_pause_ms, 0, 0, 60000),
    INT("smtpd.auth_fail_delay_ms", smtpd.auth_fail_delay_ms, 1000, 0, 60000),
    INT("smtpd.max_connection_rate", smtpd.max_connection_rate, 0, 0, 1000000),
    MILTERS("smtpd.milters", smtpd.milters),
    INT("smtpd.milter_timeout", smtpd.milter_timeout, 30, 1, 3600),
    {.path = "smtpd.dnsbl", .type = PM_CFG_DNSBL, .off = O(smtpd.dnsbl)},
    INT("smtpd.dnsbl_threshold", smtpd.dnsbl_threshold, 1, 1, 1000),
    INT("smtpd.dnsbl_timeout", smtpd.dnsbl_timeout, 2000, 100, 30000),
    {.path = "smtpd.milter_default_action", .type = PM_CFG_STR, .off = O(smtpd.milter_default_action),
     .def_str = "tempfail", .choices = (const char *const[]){"tempfail", "accept", NULL}},
    BOOL("smtpd.verify_inbound", smtpd.verify_inbound, 1),
    {.path = "smtpd.spf_fail_action", .type = PM_CFG_STR, .off = O(smtpd.spf_fail_action), .def_str = "header",
     .choices = (const char *const[]){"reject", "header", "none", NULL}},
    {.path = "smtpd.dmarc_action", .type = PM_CFG_STR, .off = O(smtpd.dmarc_action), .def_str = "reject",
     .choices = (const char *const[]){"reject", "quarantine", "none", NULL}},
    INT("smtpd.auth_dns_timeout", smtpd.auth_dns_timeout, 10, 1, 120),
    STR_OPT("mta.metrics", mta.metrics, "", pm_rule_listen_address),
    INT("mta.remote_port", mta.remote_port, 25, 1, 65535),
    INT("mta.max_concurrency", mta.max_concurrency, 100, 1, 100000),
    INT("mta.max_per_domain", mta.max_per_domain, 20, 1, 100000),
    INT("mta.connect_timeout", mta.connect_timeout, 30, 1, 3600),
    INT("mta.command_timeout", mta.command_timeout, 300, 1, 3600),
    BOOL("mta.tls_verify", mta.tls_verify, 0),
    {.path = "mta.tls_level", .type = PM_CFG_STR, .off = O(mta.tls_level), .def_str = "",
     .flags = PM_CFG_EMPTY_OK,
     .choices = (const char *const[]){"", "none", "may", "encrypt", "verify", "secure", "dane", "dane-only", NULL}},
    {.path = "mta.tls_policy", .type = PM_CFG_TLS_POLICY, .off = O(mta.tls_policy)},
    STR_OPT("mta.ca_file", mta.ca_file, "", pm_rule_path),
    STR_OPT("mta.ca_path", mta.ca_path, "/etc/ssl/certs", pm_rule_path),
    BOOL("mta.mta_sts", mta.mta_sts, 1),
    INT("mta.mta_sts_port", mta.mta_sts_port, 443, 1, 65535),
    BOOL("mta.tlsrpt", mta.tlsrpt, 1),
    STR_OPT("delivery.metrics", delivery.metrics, "", pm_rule_listen_address),
    INT("delivery.concurrency", delivery.concurrency, 8, 1, 1000),
    STR_OPT("bouncer.metrics", bouncer.metrics, "", pm_rule_listen_address),
    INT("bouncer.concurrency", bouncer.concurrency, 4, 1, 1000),
    INT("bouncer.submit_timeout", bouncer.submit_timeout, 30, 1, 3600),
    LISTEN("pop3d.listen", pop3d.listen, "pop3", "pop3s"),
    STR_OPT("pop3d.metrics", pop3d.metrics, "", pm_rule_listen_address),
    INT("pop3d.drain_timeout", pop3d.drain_timeout, 30, 0, 3600),
    INT("pop3d.max_connections", pop3d.max_connections, 10000, 1, 1000000),
    INT("pop3d.timeout", pop3d.timeout, 600, 1, DAY),
    INT("pop3d.max_connections_per_ip", pop3d.max_connections_per_ip, 20, 1, 1000000),
    INT("pop3d.session_timeout", pop3d.session_timeout, 0, 0, DAY),
    INT("pop3d.auth_delay", pop3d.auth_delay, 2, 0, 60),
    INT("pop3d.auth_failures", pop3d.auth_failures, 10, 1, 100000),
    INT("pop3d.auth_lockout", pop3d.auth_lockout, 600, 0, DAY),
    BOOL("pop3d.plaintext_auth_loopback", pop3d.plaintext_auth_loopback, 1),
    LISTEN("imapd.listen", imapd.listen, "imap", "imaps"),
    STR_OPT("imapd.metrics", imapd.metrics, "", pm_rule_listen_address),
    INT("imapd.drain_timeout", imapd.drain_timeout, 30, 0, 3600),
    INT("imapd.max_connections", imapd.max_connections, 10000, 1, 1000000),
    INT("imapd.timeout", imapd.timeout, 60, 1, DAY),
    INT("imapd.idle_timeout", imapd.idle_timeout, 1800, 1, DAY),
    INT("imapd.max_connections_per_ip", imapd.max_connections_per_ip, 20, 1, 1000000),
    INT("imapd.session_timeout", imapd.session_timeout, 0, 0, 30 * DAY),
    INT("imapd.auth_delay", imapd.auth_delay, 2, 0, 60),
    INT("imapd.auth_failures", imapd.auth_failures, 10, 1, 100000),
    INT("imapd.auth_lockout", imapd.auth_lockout, 600, 0, DAY),
    BOOL("imapd.plaintext_auth_loopback", imapd.plaintext_auth_loopback, 1),
    INT("imapd.max_message_size", imapd.max_message_size, 36700160, 1024, 1LL << 31),
    INT("imapd.max_line", imapd.max_line, 8192, 1024, 1 << 20),
    INT("imapd.max_command", imapd.max_command, 65536, 4096, 1 << 24),
};
const size_t pm_config_nkeys = sizeof pm_config_schema / sizeof pm_config_schema[0];

size_t pm_config_key_count(void) { return pm_config_nkeys; }

const char *pm_config_key_path(size_t i) { return i < pm_config_nkeys ? pm_config_schema[i].path : NULL; }
