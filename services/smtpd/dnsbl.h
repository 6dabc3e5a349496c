/* DNS lists at connect (smtpd.dnsbl, like Postfix's postscreen and reject_rbl_client): on
 * port 25, for a client outside trusted_networks, the A record of <reversed ip>.<zone> is
 * asked of every list at once (IPv6 in nibble form), while the greet pause runs if there is
 * one. Each list that lists the client adds its weight (negative: an allowlist, DNSWL); a
 * score at smtpd.dnsbl_threshold refuses the client: its TXT reason is fetched (a short
 * bounded wait) and the greeting is "554 5.7.1 Service unavailable; client [ip] blocked
 * using ZONE: REASON". After a 554 greeting a server must wait for QUIT (RFC 5321 3.1): every
 * other command gets 503 5.5.0 (each one an error, so smtpd.max_errors still ends a bot).
 * A list that does not answer within smtpd.dnsbl_timeout does not count. One log line per
 * verdict: event=dnsbl client= zone= weight= score= listed=. */
#ifndef SMTPD_DNSBL_H
#define SMTPD_DNSBL_H
#include <stddef.h>

#include "config.h"

struct smtpd_session;
struct smtpd_dnsbl;

/* At connect: 1 if the lists are being asked (the greeting then waits for the verdict: see
 * smtpd_dnsbl_pending), 0 if there is nothing to ask (no lists, not port 25, trusted). */
int smtpd_dnsbl_start(struct smtpd_session *s);
/* The lists are still being asked. */
int smtpd_dnsbl_pending(const struct smtpd_session *s);
/* The greeting: 220, or the 554 of a listed client (s->dnsbl_refused from then on). */
void smtpd_dnsbl_greet(struct smtpd_session *s);
void smtpd_dnsbl_cancel(struct smtpd_session *s);
/* For a refused client: 1 if this command line may go on (QUIT), else it was answered 503. */
int smtpd_dnsbl_command(struct smtpd_session *s, const char *line, size_t len);

/* Called by the check when the verdict is in (session.c): greets if the greeting waits. */
void smtpd_session_dnsbl_done(struct smtpd_session *s);

/* The pure parts, for the unit test. */
/* "<reversed ip>.<zone>": 4.3.2.1.zone, IPv6 as 32 nibbles; ::ffff:a.b.c.d as IPv4.
 * 0, or -1 (not an address, too long). */
int smtpd_dnsbl_name(const char *ip, const char *zone, char *out, size_t size);
/* Does this A answer list the client for z: its match address if it has one, else any
 * 127.0.0.0/8 address but 127.255.255.0/24 (what lists answer for their own errors). */
int smtpd_dnsbl_listed(const struct pm_dnsbl *z, const char *const *addrs, size_t n);
/* A TXT reason as it may go into a reply line: printable ASCII, at most max octets. */
void smtpd_dnsbl_reason(const char *txt, char *out, size_t max);

#endif
