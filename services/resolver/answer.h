/* One DNS answer reduced to what the resolver needs: a class (data, NXDOMAIN, no data,
 * temporary failure), the records of the asked type as text, and the TTL to cache it. */
#ifndef RESOLVER_ANSWER_H
#define RESOLVER_ANSWER_H
#include <ldns/ldns.h>
#include <stdint.h>

enum resolver_rcode {
    RESOLVER_OK,       /* at least one record of the asked type */
    RESOLVER_NXDOMAIN, /* the name does not exist */
    RESOLVER_NODATA,   /* the name exists, no record of that type */
    RESOLVER_TEMPFAIL, /* SERVFAIL, REFUSED, timeout, garbage: try again later */
};

/* DNSSEC (RFC 4035) of one answer as our validator judged it; INSECURE also when validation
 * is off (resolver.dnssec) and for names no trust anchor covers. */
enum resolver_security {
    RESOLVER_INSECURE,
    RESOLVER_SECURE, /* the RRset (or the proof there is none) chains to a trust anchor */
    RESOLVER_BOGUS,  /* it should have, and did not: never used, always TEMPFAIL */
};

#define RESOLVER_MAX_RECORDS 64 /* per answer; more are ignored (hostile or silly zones) */
#define RESOLVER_MAX_TTL 86400  /* cache nothing longer than a day */
#define RESOLVER_MAX_TXT 4096   /* one TXT record's strings joined (PM_BUS_MAX_TXT); longer: skipped */
#define RESOLVER_MAX_TLSA_DATA 1024 /* one TLSA record's association data; longer: skipped */

struct resolver_record {
    uint16_t pref; /* MX preference; 0 for other types */
    char *text;    /* MX/PTR: normalized name ("." for a null MX); A/AAAA: address text;
                    * TXT: the record's character-strings joined;
                    * TLSA: "usage selector matching-type hex" (RESOLVER_MAX_TLSA_DATA octets) */
};

struct resolver_answer {
    enum resolver_rcode rcode;
    uint32_t ttl; /* seconds this answer may be cached */
    enum resolver_security security;
    int n;
    struct resolver_record *rr;
    char why[256]; /* TEMPFAIL reason for logs and replies, e.g. "SERVFAIL", "timeout",
                    * "DNSSEC validation failed: ..." (security BOGUS) */
};

/* Reduces a response to an answer for qname/qtype, following CNAME chains inside the
 * answer section. Negative answers get their SOA's negative TTL, at most negative_ttl. Returns 0 (out filled), -1 on
 * allocation failure. */
int resolver_answer_from_pkt(const ldns_pkt *pkt, const char *qname, ldns_rr_type qtype, uint32_t negative_ttl,
                             struct resolver_answer *out);

/* The TTL of a negative answer in pkt (RFC 2308: from its SOA), at most negative_ttl. */
uint32_t resolver_negative_ttl(const ldns_pkt *pkt, uint32_t negative_ttl);

/* A TEMPFAIL answer with the given reason. */
void resolver_answer_tempfail(struct resolver_answer *out, const char *why);

int resolver_answer_copy(struct resolver_answer *dst, const struct resolver_answer *src);
void resolver_answer_free(struct resolver_answer *a);

const char *resolver_rcode_name(enum resolver_rcode rc);
const char *resolver_security_name(enum resolver_security s);

#endif
