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
 *    during the callback. */
#ifndef SMTPD_DNS_H
#define SMTPD_DNS_H
#include <stddef.h>
#include <stdint.h>

struct smtpd_server;
struct smtpd_dns_query;

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

#endif
