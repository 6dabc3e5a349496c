/* TLSRPT (RFC 8460), the mta's half: one job's TLS session attempts, counted the way the
 * report counts them, put into the JobResult (TlsSession) for the queue, which adds them up
 * per policy domain and day and sends the reports (services/queue/tlsrpt_*.c).
 *
 * The outbound job (outbound.c) creates one per job, tells it the policy that applied to
 * the domain (DANE's TLSA records, an MTA-STS policy, or none), the domain's TLSRPT record
 * ("_smtp._tls.<domain>" TXT, looked up with the MX), and one line per session tried. A
 * domain without a usable rua (mailto:) gets nothing sent to the queue. */
#ifndef MTA_TLSRPT_H
#define MTA_TLSRPT_H
#include <stddef.h>

#include "bus.h"

#define MTA_TLSRPT_MAX_SESSIONS 16 /* per job; more are not counted (a job tries few MX) */

struct mta_tlsrpt;

struct mta_tlsrpt *mta_tlsrpt_new(const char *policy_domain); /* NULL: out of memory */
void mta_tlsrpt_free(struct mta_tlsrpt *r);

/* The TXT records of _smtp._tls.<domain>: the one starting "v=TLSRPTv1" gives the rua
 * (its mailto: URIs kept; https: ones dropped: we send by mail only). */
void mta_tlsrpt_set_record(struct mta_tlsrpt *r, const char *const *texts, size_t n);

/* The policy that applied: TLSA (strings: each record as "3 1 1 <hex>"), STS (strings: the
 * policy's lines; mx: its patterns) or NO_POLICY_FOUND (nothing). Replaces any earlier one. */
void mta_tlsrpt_set_policy(struct mta_tlsrpt *r, Postmesh__TlsSession__PolicyType type, const char *const *strings,
                           size_t nstrings, const char *const *mx, size_t nmx);

/* One session attempt: success, or failure with its RFC 8460 result type
 * ("starttls-not-supported", "certificate-host-mismatch", "certificate-expired",
 * "certificate-not-trusted", "validation-failure", "tlsa-invalid", "dnssec-invalid",
 * "dane-required", "sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid").
 * Strings may be NULL. */
void mta_tlsrpt_session(struct mta_tlsrpt *r, int success, const char *result_type, const char *mx_host,
                        const char *receiving_ip, const char *sending_ip, const char *helo, const char *additional);

/* Moves the sessions into res->tls_sessions (nothing without rua, or without a session):
 * allocated here, freed by mta_tlsrpt_release (mta_result_free calls it). */
void mta_tlsrpt_attach(struct mta_tlsrpt *r, Postmesh__JobResult *res);

/* Frees res->tls_sessions as attach made them (none: nothing). */
void mta_tlsrpt_release(Postmesh__JobResult *res);

#endif
