/* DANE for SMTP (RFC 7672) on OpenSSL's DANE verifier: the TLSA records of one MX host,
 * copied out of the resolver's answer, judged usable or not, and put on a connection
 * (SSL_dane_enable + SSL_dane_tlsa_add). Only DANE-TA(2) and DANE-EE(3) are usable for SMTP
 * (RFC 7672 3.1.3: PKIX-TA(0)/PKIX-EE(1) are unusable, there is no agreed CA set), with
 * selector 0/1 and matching type 0 (full), 1 (SHA-256, 32 octets), 2 (SHA-512, 64 octets).
 * DANE-EE checks no name and no expiry (RFC 7672 3.1.1: DANE_FLAG_NO_DANE_EE_NAMECHECKS);
 * DANE-TA checks the chain to the record and the MX host name (3.2.2). */
#ifndef MTA_DANE_H
#define MTA_DANE_H
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"
#include "postmesh.pb-c.h"

#define MTA_TLSA_MAX 32
#define MTA_TLSA_MAX_DATA 1024

struct mta_tlsa {
    uint8_t usage, selector, mtype;
    size_t len;
    uint8_t *data;
};

struct mta_tlsa_set {
    int n;                 /* usable records only */
    int total;             /* records in the answer */
    struct mta_tlsa *v;
    char **text;           /* every record as "3 1 1 <hex>" (TLSRPT policy-string) */
};

/* Is this record usable for SMTP (RFC 7672 3.1.3 and the matching types' lengths)? */
int mta_tlsa_usable(uint32_t usage, uint32_t selector, uint32_t mtype, size_t len);

/* The state of a TLSA answer (status OK, dnssec SECURE: NONE/USABLE/UNUSABLE; anything
 * else FAILED with why). Fills set with the usable records when USABLE or UNUSABLE (the
 * texts of all of them); set is emptied first. reply NULL: FAILED with error. */
enum mta_tlsa_state mta_tlsa_from_reply(const Postmesh__ResolveReply *reply, const char *error,
                                        struct mta_tlsa_set *set, char *why, size_t whysize);
void mta_tlsa_set_free(struct mta_tlsa_set *set);

/* The client context can do DANE (once, before any connection). 0, or -1. */
int mta_dane_ctx_enable(SSL_CTX *ctx);

/* Puts the usable records on ssl, with the MX host as the DANE base domain (SNI and the
 * name DANE-TA checks). 0, or -1 (no record took: the caller must not connect in the
 * clear: the handshake is made to fail). */
int mta_dane_apply(SSL *ssl, const char *mx_host, const struct mta_tlsa_set *set);

#endif
