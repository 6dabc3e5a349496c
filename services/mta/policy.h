/* The outbound TLS policy: what TLS one connection to one MX host of a destination must
 * have, decided from
 *  - the destination's level: its mta.tls_policy row, else mta.tls_level ("" = mta.tls_verify
 *    ? verify : dane), with Postfix's meanings (none, may, encrypt, verify, secure, dane,
 *    dane-only);
 *  - DANE (RFC 7672): the MX host's TLSA records, asked only when the MX answer and the host's
 *    addresses were DNSSEC-secure;
 *  - MTA-STS (RFC 8461, sts.h), which applies under may and dane only where DANE does not;
 *  - the message: REQUIRETLS (RFC 8689: only authenticated TLS, else the recipients fail) and
 *    "TLS-Required: No" (DANE and MTA-STS ignored; local levels still apply).
 * Pure: no DNS, no sockets, no OpenSSL (tls.c builds the connection from the decision,
 * outbound.c gathers the inputs), so every row of the table is a unit test
 * (tests/unit/test_mta_policy.c). */
#ifndef MTA_POLICY_H
#define MTA_POLICY_H
#include <stddef.h>
#include <stdint.h>

struct pm_tls_policy;
struct pm_strlist;
struct mta_sts_policy;

enum mta_tls_level {
    MTA_TLS_LEVEL_NONE,      /* never STARTTLS */
    MTA_TLS_LEVEL_MAY,       /* opportunistic; a broken handshake is retried in the clear */
    MTA_TLS_LEVEL_ENCRYPT,   /* TLS mandatory, any certificate */
    MTA_TLS_LEVEL_VERIFY,    /* mandatory, PKIX, the MX host name (or the row's match) */
    MTA_TLS_LEVEL_SECURE,    /* mandatory, PKIX, the domain and its subdomains (or match) */
    MTA_TLS_LEVEL_DANE,      /* DANE where published, else MTA-STS, else may */
    MTA_TLS_LEVEL_DANE_ONLY, /* DANE or nothing: no usable TLSA defers (4.7.5) */
};

/* "none" ... "dane-only"; "" is the default: verify when tls_verify (the old switch), else
 * dane. -1 for anything else (the configuration refuses it before). */
int mta_tls_level_parse(const char *name, int tls_verify);
const char *mta_tls_level_name(enum mta_tls_level l);

/* The TLSA lookup of one MX host, as far as it got. */
enum mta_tlsa_state {
    MTA_TLSA_NOT_ASKED, /* not asked: the MX answer or the host's addresses were not secure
                         * (or the level does not use DANE) */
    MTA_TLSA_NONE,      /* secure answer: no TLSA records (a proven denial) */
    MTA_TLSA_USABLE,    /* secure, at least one usable record (DANE-TA(2)/DANE-EE(3)) */
    MTA_TLSA_UNUSABLE,  /* secure records, none usable (RFC 7672 3.1.3: mandatory TLS, no auth) */
    MTA_TLSA_FAILED,    /* the lookup failed or was bogus: this MX is not used now */
};

/* What a destination's job knows once the MX (and MTA-STS) answers are in. */
struct mta_policy_in {
    const char *domain;                /* lower case */
    enum mta_tls_level level;          /* mta_policy_level() */
    const struct pm_tls_policy *row;   /* the mta.tls_policy row, or NULL */
    const struct mta_sts_policy *sts;  /* a valid testing/enforce policy, or NULL */
    int sts_failed;                    /* an MTA-STS TXT record, but no policy could be fetched
                                        * and none is cached (MTA_STS_FAILED) */
    int requiretls;                    /* Job.requiretls */
    int tls_required_no;               /* the message says "TLS-Required: No" */
};

struct mta_policy_mx {
    const char *host;       /* the MX host name (lower case), or the address literal */
    int secure;             /* the MX answer and every address of this host were secure */
    enum mta_tlsa_state tlsa;
    const char *tlsa_why;   /* FAILED: why ("DNSSEC validation failed: ...") */
};

enum mta_tls_mode {
    MTA_TLS_MODE_SKIP,    /* do not connect to this MX now: dsn/why say why */
    MTA_TLS_MODE_NONE,    /* no STARTTLS */
    MTA_TLS_MODE_MAY,     /* STARTTLS when offered, any certificate, plaintext retry allowed */
    MTA_TLS_MODE_ENCRYPT, /* STARTTLS mandatory, any certificate */
    MTA_TLS_MODE_VERIFY,  /* STARTTLS mandatory, PKIX chain and names */
    MTA_TLS_MODE_DANE,    /* STARTTLS mandatory, the TLSA records (OpenSSL DANE) */
};

/* Which names the certificate must carry (MTA_TLS_MODE_VERIFY). */
enum mta_tls_names {
    MTA_TLS_NAMES_MX,     /* the MX host name */
    MTA_TLS_NAMES_MATCH,  /* the row's match list */
    MTA_TLS_NAMES_DOMAIN, /* the destination domain and its subdomains ("secure") */
};

enum mta_sts_applied { MTA_STS_APPLIED_NO, MTA_STS_APPLIED_TESTING, MTA_STS_APPLIED_ENFORCE };

struct mta_policy_decision {
    enum mta_tls_mode mode;
    enum mta_tls_level level;     /* the level that applied (for the log's policy=) */
    int tls_required;             /* never in the clear: no STARTTLS → 4.7.4, refused → 4.7.5 */
    int plaintext_retry;          /* a broken handshake may be retried without STARTTLS */
    int dane;                     /* DANE authenticates the peer (dane=yes) */
    enum mta_tls_names names;
    const struct pm_strlist *match; /* NAMES_MATCH */
    const char *ca_file;          /* the row's CA bundle, "" or NULL: mta.ca_file / ca_path */
    enum mta_sts_applied sts;     /* the MTA-STS policy that applied (sts=) */
    int authenticated;            /* the peer will be authenticated (DANE, MTA-STS enforce,
                                   * verify, secure): what REQUIRETLS needs */
    int tlsa_unusable;            /* secure TLSA records, none usable (TLSRPT "tlsa-invalid") */
    /* SKIP: the verdict for the recipients if no other MX takes them. */
    int perm;                     /* REQUIRETLS that cannot be met: a permanent failure */
    char dsn[16];
    char why[320];
    const char *result_type;      /* SKIP: the RFC 8460 result type ("dane-required", ...);
                                   * MTA-STS testing: what enforce would have refused this MX
                                   * for (the session is reported as that failure) */
};

/* The level of a destination: the row of mta.tls_policy (NULL: none) or the default. */
enum mta_tls_level mta_policy_level(const struct pm_tls_policy *row, const char *tls_level, int tls_verify);

/* Does this MX's TLSA record matter (ask for it)? Only under dane/dane-only (or any level
 * that tries TLS, for a REQUIRETLS message: DANE may authenticate what the level does not),
 * with a secure MX answer and host, and when the message does not opt out ("TLS-Required: No"). */
int mta_policy_wants_tlsa(const struct mta_policy_in *in, int mx_secure);

/* Does the MTA-STS policy matter for the destination (ask for it)? Under may and dane, and
 * at every level that tries TLS for a REQUIRETLS message. */
int mta_policy_wants_sts(const struct mta_policy_in *in);
/* Are its TLS sessions reported (TLSRPT: ask for "_smtp._tls.<domain>")? Every level that
 * tries TLS, unless the message opted out. */
int mta_policy_wants_tlsrpt(const struct mta_policy_in *in);

void mta_policy_decide(const struct mta_policy_in *in, const struct mta_policy_mx *mx, struct mta_policy_decision *d);

/* The RFC 8689 status for a REQUIRETLS message that cannot be sent as it requires. */
#define MTA_REQUIRETLS_DSN "5.7.10"

/* Does the header section of the message carry "TLS-Required: No" (RFC 8689 5)? Reads only
 * the header (up to the first empty line, at most len octets); unfolds; case-insensitive. */
int mta_tls_required_no(const uint8_t *msg, size_t len);

/* The log's sts= and tls= words. */
const char *mta_sts_applied_name(enum mta_sts_applied s);

#endif
