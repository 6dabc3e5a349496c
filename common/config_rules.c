/* The value rules of the configuration schema (config_rules.h): host names and domains,
 * paths, bus endpoints, bind addresses, networks, name servers and key names. Each checks
 * the text the way the code that later uses it reads it (pm_listen_tcp, pm_ip_in_networks,
 * the resolver's name server parser, ZeroMQ), so a value that passes here is one those
 * accept, and one they would refuse is refused at load with file:line. */
#include "config_rules.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "milter_addr.h"
#include "net.h"

static int why_not(char *why, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, size, fmt, ap);
    va_end(ap);
    return -1;
}

static int is_ipv4(const char *s)
{
    unsigned char buf[4];
    return inet_pton(AF_INET, s, buf) == 1;
}

/* IPv6 text, with a zone ("fe80::1%eth0") as getaddrinfo and ZeroMQ take it. */
static int is_ipv6(const char *s)
{
    char copy[INET6_ADDRSTRLEN + 32];
    unsigned char buf[16];
    snprintf(copy, sizeof copy, "%s", s);
    char *zone = strchr(copy, '%');
    if (zone)
        *zone = '\0';
    return strlen(s) < sizeof copy && inet_pton(AF_INET6, copy, buf) == 1;
}

static int all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return 0;
    return n > 0;
}

/* RFC 1035 2.3.1 / RFC 1123 2.1 labels, RFC 3696 2 (a top-level domain is not all-numeric),
 * Postfix's valid_hostname() in all but '_', which an SMTP Domain (RFC 5321 4.1.2) has not. */
static int dns_name(const char *v, const char *kind, char *why, size_t size)
{
    size_t len = strlen(v);
    if (v[0] == '[')
        return why_not(why, size, "is an address literal: %s must be a name", kind);
    if (is_ipv4(v) || is_ipv6(v))
        return why_not(why, size, "is an IP address: %s must be a name", kind);
    if (len == 0)
        return why_not(why, size, "is empty");
    if (len > 253)
        return why_not(why, size, "is not %s: longer than 253 characters", kind);
    if (v[len - 1] == '.')
        return why_not(why, size, "is not %s: it ends with a dot (write it without)", kind);
    const char *label = v;
    for (;;) {
        size_t n = strcspn(label, ".");
        if (n == 0)
            return why_not(why, size, "is not %s: it has an empty label", kind);
        if (n > 63)
            return why_not(why, size, "is not %s: a label is longer than 63 characters", kind);
        for (size_t i = 0; i < n; i++) {
            unsigned char ch = (unsigned char)label[i];
            if (isalnum(ch) || ch == '-')
                continue;
            char shown[16];
            snprintf(shown, sizeof shown, isgraph(ch) ? "'%c'" : "byte 0x%02x", ch);
            return why_not(why, size, "is not %s: it holds %s (letters, digits, '-' and '.' only)", kind, shown);
        }
        if (label[0] == '-' || label[n - 1] == '-')
            return why_not(why, size, "is not %s: a label starts or ends with '-'", kind);
        if (label[n] == '\0') {
            if (all_digits(label, n))
                return why_not(why, size, "is not %s: its last label is all digits", kind);
            return 0;
        }
        label += n + 1;
    }
}

int pm_rule_hostname(const char *v, char *why, size_t size) { return dns_name(v, "a host name", why, size); }

int pm_rule_domain(const char *v, char *why, size_t size) { return dns_name(v, "a domain", why, size); }

static int has_control(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return 1;
    return 0;
}

int pm_rule_path(const char *v, char *why, size_t size)
{
    if (!v[0])
        return why_not(why, size, "is empty");
    if (strlen(v) >= PATH_MAX)
        return why_not(why, size, "is not a path: longer than %d bytes", PATH_MAX - 1);
    if (has_control(v))
        return why_not(why, size, "is not a path: it holds a control character");
    return 0;
}

/* "name" of tcp://name:port: what getaddrinfo may resolve (a container's service name may
 * hold '_'), an address, "[IPv6]", or "*" (all interfaces, on bind). */
static int endpoint_host(const char *h, size_t n)
{
    char host[256];
    if (n == 0 || n >= sizeof host)
        return 0;
    memcpy(host, h, n);
    host[n] = '\0';
    if (strcmp(host, "*") == 0)
        return 1;
    if (host[0] == '[') {
        if (host[n - 1] != ']')
            return 0;
        host[n - 1] = '\0';
        return is_ipv6(host + 1);
    }
    if (strchr(host, ':'))
        return is_ipv6(host);
    return strspn(host, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-_") == n;
}

static int port_number(const char *p, int lo)
{
    char *end;
    long v = strtol(p, &end, 10);
    return isdigit((unsigned char)*p) && !*end && v >= lo && v <= 65535;
}

int pm_rule_bus_endpoint(const char *v, char *why, size_t size)
{
    const char *form = "is not a bus endpoint (tcp://host:port or ipc://path)";
    if (strncmp(v, "inproc://", 9) == 0) /* one process's own: the fuzz harnesses */
        return v[9] && !has_control(v) ? 0 : why_not(why, size, "%s", form);
    if (strncmp(v, "ipc://", 6) == 0) {
        size_t n = strlen(v + 6);
        if (n == 0 || has_control(v))
            return why_not(why, size, "%s", form);
        if (n > 107) /* sizeof sun_path - 1: ZeroMQ's bind and connect refuse longer */
            return why_not(why, size, "is not a bus endpoint: the ipc path is longer than 107 bytes");
        return 0;
    }
    if (strncmp(v, "tcp://", 6) != 0)
        return why_not(why, size, "%s", form);
    const char *addr = v + 6, *semi = strrchr(addr, ';'); /* tcp://source;host:port */
    if (semi) {
        if (semi == addr)
            return why_not(why, size, "%s", form);
        addr = semi + 1;
    }
    const char *colon = strrchr(addr, ':');
    if (!colon || !endpoint_host(addr, (size_t)(colon - addr)))
        return why_not(why, size, "%s", form);
    if (!port_number(colon + 1, 1))
        return why_not(why, size, "is not a bus endpoint: the port must be 1-65535");
    return 0;
}

int pm_rule_listen_address(const char *v, char *why, size_t size)
{
    char host[256];
    int port;
    if (pm_split_hostport(v, host, sizeof host, &port) < 0)
        return why_not(why, size, "is not host:port (or [IPv6]:port, port 0-65535)");
    if (host[0] && strcmp(host, "*") != 0 && !is_ipv4(host) && !is_ipv6(host))
        return why_not(why, size, "is not an address to bind: the host must be an IP address or * (no names)");
    return 0;
}

int pm_rule_network(const char *v, char *why, size_t size)
{
    const char *form = "is not a network (an IP address or address/bits, e.g. 10.0.0.0/8)";
    char addr[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(v, '/');
    size_t n = slash ? (size_t)(slash - v) : strlen(v);
    if (n == 0 || n >= sizeof addr)
        return why_not(why, size, "%s", form);
    memcpy(addr, v, n);
    addr[n] = '\0';
    int v6 = strchr(addr, ':') != NULL; /* pm_ip_in_networks() picks the family so too */
    if (v6 ? !is_ipv6(addr) || strchr(addr, '%') : !is_ipv4(addr))
        return why_not(why, size, "%s", form);
    if (slash) {
        size_t digits = strspn(slash + 1, "0123456789");
        if (digits == 0 || digits > 3 || slash[1 + digits] != '\0' || atoi(slash + 1) > (v6 ? 128 : 32))
            return why_not(why, size, "is not a network: the prefix length must be 0-%d", v6 ? 128 : 32);
    }
    return 0;
}

int pm_rule_nameserver(const char *v, char *why, size_t size)
{
    const char *form = "is not an IP address or IP:port";
    char host[INET6_ADDRSTRLEN + 1];
    int colons = 0, port = 53;
    for (const char *p = v; *p; p++)
        colons += *p == ':';
    /* As the resolver reads it: [v6]:port or v4:port; else the whole text is the address. */
    if (v[0] == '[' || colons == 1) {
        if (pm_split_hostport(v, host, sizeof host, &port) < 0 || port == 0)
            return why_not(why, size, "%s (port 1-65535)", form);
    } else if (snprintf(host, sizeof host, "%s", v) >= (int)sizeof host) {
        return why_not(why, size, "%s", form);
    }
    unsigned char buf[16];
    if (inet_pton(AF_INET, host, buf) != 1 && inet_pton(AF_INET6, host, buf) != 1)
        return why_not(why, size, "%s", form);
    return 0;
}

int pm_rule_milter_address(const char *v, char *why, size_t size)
{
    struct sockaddr_storage ss;
    socklen_t len;
    return pm_milter_addr_parse(v, &ss, &len, why, size);
}

int pm_rule_key_name(const char *v, char *why, size_t size)
{
    if (pm_role_of_key_name(v) == PM_ROLE_NONE)
        return why_not(why, size, "is not a key name (<role> or <role>.<replica>, e.g. smtpd.eu-1)");
    return 0;
}

int pm_rule_dkim_selector(const char *v, char *why, size_t size)
{
    size_t len = strlen(v);
    if (len == 0)
        return why_not(why, size, "is empty");
    if (len > 63)
        return why_not(why, size, "is not a DKIM selector: longer than 63 characters");
    for (const char *label = v;;) {
        size_t n = strcspn(label, ".");
        if (n == 0)
            return why_not(why, size, "is not a DKIM selector: it has an empty label");
        if (label[0] == '-' || label[n - 1] == '-')
            return why_not(why, size, "is not a DKIM selector: a label starts or ends with '-'");
        for (size_t i = 0; i < n; i++)
            if (!isalnum((unsigned char)label[i]) && label[i] != '-')
                return why_not(why, size, "is not a DKIM selector: only letters, digits, '-' and '.'");
        if (!label[n])
            return 0;
        label += n + 1;
    }
}
