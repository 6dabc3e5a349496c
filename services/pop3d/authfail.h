/* Failed logins per client IP: after `limit` failures within `window` seconds the IP is
 * locked out for `window` seconds. Bounded: the table holds at most POP3_AUTHFAIL_MAX IPs,
 * replacing the stalest entry when full. */
#ifndef POP3_AUTHFAIL_H
#define POP3_AUTHFAIL_H
#include <time.h>

#define POP3_AUTHFAIL_MAX 4096

struct pop3_authfail;

struct pop3_authfail *pop3_authfail_new(long long limit, long long window);
void pop3_authfail_free(struct pop3_authfail *t);

/* Is ip locked out at now? */
int pop3_authfail_locked(struct pop3_authfail *t, const char *ip, time_t now);

/* Records one failure; returns 1 if ip is now locked out. */
int pop3_authfail_record(struct pop3_authfail *t, const char *ip, time_t now);

#endif
