/* The kinds of value a configuration key can hold beyond its libconfig type: a row of the
 * schema (config_schema.c) names one of these rules, and the loader applies it to the key's
 * string (or to each string of a list). Each rule says whether one string is a valid value
 * and, if not, why: 0, or -1 with a reason that follows the quoted value in the error
 * ("hostname: 'mx..test' is not a host name: it has an empty label"). Pure functions, no
 * system state, so they are tested alone (tests/unit/test_common_config_rules.c). */
#ifndef PM_CONFIG_RULES_H
#define PM_CONFIG_RULES_H
#include <stddef.h>

typedef int pm_config_rule(const char *value, char *why, size_t size);

/* Our own name (greeting, Received:, DSNs, Message-ID): LDH labels of 1-63, at most 253 in
 * all, no trailing dot, the last label not all digits (so no IP address), no address
 * literal. One label ("localhost") is a name. */
pm_config_rule pm_rule_hostname;
/* A mail domain (domains, smtpd.etrn_domains): the same rules as a host name. */
pm_config_rule pm_rule_domain;
/* A file or directory: at most PATH_MAX - 1 bytes, no control characters. Relative is
 * allowed: relative to the directory the services start in (deploy/local: "var"). */
pm_config_rule pm_rule_path;
/* A bus endpoint as ZeroMQ takes it: tcp://host:port (host a name, an address, [IPv6] or
 * "*"; "tcp://source;host:port" too), ipc://path (at most 107 bytes: a unix socket name), or
 * inproc://name (within one process: the fuzz harnesses). */
pm_config_rule pm_rule_bus_endpoint;
/* Where a listener or metrics server binds, as pm_listen_tcp() takes it: host:port or
 * [IPv6]:port, host an IP address, "*" or empty (all interfaces); port 0 lets the kernel
 * choose. No names: the address is bound, never resolved. */
pm_config_rule pm_rule_listen_address;
/* A network of trusted_networks/proxy_networks: an IP address, or address/bits with bits
 * 0-32 (IPv4) or 0-128 (IPv6), digits only ("10.0.0.0/" would match everyone). */
pm_config_rule pm_rule_network;
/* A name server: an IP address, or IP:port / [IPv6]:port with port 1-65535 (the resolver
 * never resolves a name to find its name servers). */
pm_config_rule pm_rule_nameserver;
/* Our own bus key's name: <role> or <role>.<replica> (keys.h). */
pm_config_rule pm_rule_key_name;
/* A milter: inet:IP:PORT, inet:PORT@IP, inet6:[IPv6]:PORT (milter_addr.h); unix: refused. */
pm_config_rule pm_rule_milter_address;
/* A DKIM selector (RFC 6376 3.1): dot-separated labels of letters, digits and '-' (1-63
 * each, not starting or ending with '-'), at most 63 characters in all (it is put before
 * "._domainkey.<domain>" in a DNS name). */
pm_config_rule pm_rule_dkim_selector;

#endif
