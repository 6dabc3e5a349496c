/* DNS for smtpd's checks (DNSBL, SPF, DKIM keys, DMARC), asked of the resolver service over
 * the bus: never the libc resolver, nothing read from /etc/resolv.conf. Answers are kept in
 * a small per-sandbox cache for their TTL (the resolver caches too; this saves the round
 * trip for the same name asked by many sessions at once, as a DNSBL is at connect).
 *
 * INTERFACE CONTRACT (the DNSBL, authres and milter code is written against it):
 *  - the callback is never called from inside smtpd_dns_lookup(): an answer from the cache,
 *    or a lookup that cannot be sent (resolver not connected), answers from the event loop;
 *  - every lookup ends: with its answer, or with SMTPD_DNS_TEMPFAIL when timeout_ms passes;
 *  - after smtpd_dns_cancel() the callback is never called; the answer's strings live only
 *    during the callback. The query is freed when its callback returns: cancel a query only
 *    while it waits, never in or after its own callback.
 *
 * What the statuses mean, per type (the resolver's replies mapped in dnscache.c):
 *  - NXDOMAIN: the resolver said PERMFAIL 5.1.2 (the name does not exist; for A, either of A
 *    and AAAA said so); NODATA: it answered OK without records (for MX: no MX records, so
 *    the domain is its own implicit MX). Both carry the zone's negative TTL.
 *  - OK for A: the A then the AAAA addresses (DNSBL and SPF `a`/`exists` names too); for MX:
 *    the hosts that have an address, in order, or "." for a null MX (RFC 7505); for PTR: the
 *    names of the address (name is the address text, "192.0.2.1" or "2001:db8::1").
 *  - PERMFAIL: a name that cannot be asked (empty, over 253 octets, spaces or control
 *    characters), or any other final answer (MX: no host with an address).
 *  - OK for TXT: one text per record (at most 4096 octets; NUL, control bytes other than
 *    white space and non-ASCII bytes arrive as '?').
 *  - TEMPFAIL: SERVFAIL, timeout, or the resolver unreachable: a lookup waits at most 500 ms
 *    for a connection, and while the resolver stays unreachable the next ones fail at once.
 *  - ttl: seconds the answer may be kept (0 for TEMPFAIL/PERMFAIL); the sandbox's cache keeps
 *    answers at most SMTPD_DNS_MAX_TTL (dnscache.h). */
#ifndef SMTPD_DNS_H
#define SMTPD_DNS_H
#include <stddef.h>
#include <stdint.h>

struct smtpd_server;
struct smtpd_dns_query;
struct smtpd_dns;

enum smtpd_dns_type {
    SMTPD_DNS_A,   /* A and AAAA: addresses in text form ("127.0.0.2", "2001:db8::1") */
    SMTPD_DNS_TXT, /* one string per TXT record, its character-strings joined */
    SMTPD_DNS_MX,  /* host names in preference order ("." for a null MX) */
    SMTPD_DNS_PTR, /* names for an address given in text form */
};

enum smtpd_dns_status {
    SMTPD_DNS_OK,       /* n >= 1 records */
    SMTPD_DNS_NODATA,   /* the name exists, no record of the type */
    SMTPD_DNS_NXDOMAIN, /* no such name */
    SMTPD_DNS_TEMPFAIL, /* SERVFAIL, timeout, resolver unreachable or overloaded */
    SMTPD_DNS_PERMFAIL, /* anything else final (a name the resolver refuses) */
};

struct smtpd_dns_answer {
    enum smtpd_dns_status status;
    const char *const *records;
    size_t n;
    uint32_t ttl;
};

typedef void (*smtpd_dns_done)(void *arg, const struct smtpd_dns_answer *a);

/* Starts a lookup; NULL only when out of memory (then nothing is called). */
struct smtpd_dns_query *smtpd_dns_lookup(struct smtpd_server *srv, enum smtpd_dns_type type, const char *name,
                                         long timeout_ms, smtpd_dns_done done, void *arg);
void smtpd_dns_cancel(struct smtpd_dns_query *q);

/* The sandbox's DNS state (server.c): NULL only when out of memory. With resolver.endpoint
 * empty every lookup answers TEMPFAIL. The resolver is connected at the first lookup, or
 * by smtpd_dns_connect (when checks at connect will ask at once): 0, or -1 if it cannot be. */
struct smtpd_dns *smtpd_dns_new(struct smtpd_server *srv);
void smtpd_dns_free(struct smtpd_dns *d);
int smtpd_dns_connect(struct smtpd_server *srv);

#endif
