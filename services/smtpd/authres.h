/* The "authres" end-of-message stage (eom.h): for mail from the internet (port 25, a client
 * neither authenticated nor in trusted_networks) it removes Authentication-Results: fields
 * that claim our hostname, then (smtpd.verify_inbound) checks SPF (spf_check.h), DKIM
 * (dkim_verify.h) and DMARC (dmarc_check.h), all their DNS fetched in parallel through the
 * resolver within smtpd.auth_dns_timeout, and prepends our Authentication-Results: (RFC 8601)
 * with the results. Policy:
 *  - SPF fail and smtpd.spf_fail_action = "reject": 550 5.7.23 at the end of DATA;
 *  - DMARC fail under p=reject: smtpd.dmarc_action "reject" (550 5.7.1), "quarantine" (the
 *    message is held in the queue with a hold reason) or "none"; under p=quarantine it is held
 *    unless dmarc_action is "none"; p=none only records the fail.
 * One log line per message: event=authres client= spf= dkim= dmarc= from_domain= action=. */
#ifndef SMTPD_AUTHRES_H
#define SMTPD_AUTHRES_H

struct pm_config;
struct smtpd_session;

#define SMTPD_AUTHRES_PSL "/usr/share/publicsuffix/public_suffix_list.dat"

/* The libraries' set-up, once, before the sandboxes chroot (they read files). 0, or -1. */
int smtpd_authres_init(const struct pm_config *cfg);

int smtpd_authres_wanted(const struct smtpd_session *s);
void smtpd_authres_start(struct smtpd_session *s);
void smtpd_authres_cancel(struct smtpd_session *s);

#endif
