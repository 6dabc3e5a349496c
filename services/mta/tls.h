/* Outbound TLS: the client context (CA certificates read in full before the job worker's
 * chroot: mta.ca_file, else every certificate file of mta.ca_path; and each mta.tls_policy
 * row's own ca_file), and the connection object the shared SMTP client's STARTTLS hook gets
 * (outbound.c), built from the policy decision (policy.h): no verification (may, encrypt),
 * PKIX with the names the level wants (verify, secure, MTA-STS enforce), or DANE (dane.h). */
#ifndef MTA_TLS_H
#define MTA_TLS_H
#include <openssl/ssl.h>

#include "dane.h"
#include "policy.h"

struct pm_config;
struct mta_tls;

/* NULL when OpenSSL cannot make a context (STARTTLS is then never used, and every level
 * that requires TLS defers). A CA file that cannot be loaded is logged. */
struct mta_tls *mta_tls_new_context(const struct pm_config *cfg);
void mta_tls_free(struct mta_tls *t);

/* A connection object for one session to host (SNI unless host is an IP address) for the
 * destination domain, as decision d says; tlsa: the host's usable records (DANE). NULL when
 * it cannot be made as asked (then the handshake "fails": never the clear instead). */
SSL *mta_tls_session(struct mta_tls *t, const char *host, const char *domain, const struct mta_policy_decision *d,
                     const struct mta_tlsa_set *tlsa);

/* After the handshake: did the peer authenticate as d asked (verified chain and name, or a
 * DANE match)? And the DANE usage that matched (-1 none). */
int mta_tls_verified(SSL *ssl);
int mta_tls_dane_usage(SSL *ssl);

#endif
