/* Loop detection, the address half (Postfix smtp_find_self): is an MX address and port one
 * of our own smtpd listeners (smtpd.listen in the shared config)? A listener on a specific
 * address matches that address; a wildcard one ("0.0.0.0", "::", "*" or "") matches every
 * local address of its family: loopback (127.0.0.0/8, ::1) and the addresses of this
 * machine's interfaces, re-read now and then because interfaces come and go.
 * The name half (a server greeting us with our own hostname) is the shared SMTP client's
 * (common/smtpc.c, self_name); the list it cuts short is targets.c's.
 * What this file does not know: smtpd instances on other hosts with other addresses. */
#ifndef MTA_SELF_H
#define MTA_SELF_H

struct pm_config;
struct mta_self;

/* NULL only when out of memory. Reads only cfg->smtpd.listen (copied). */
struct mta_self *mta_self_new(const struct pm_config *cfg);
void mta_self_free(struct mta_self *s);

/* ip: numeric text (IPv4, IPv6, IPv4-mapped IPv6). 0 for anything that does not parse. */
int mta_self_is_listener(struct mta_self *s, const char *ip, int port);

#endif
