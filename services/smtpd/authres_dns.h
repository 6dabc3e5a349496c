/* One message's DNS answers for the verification libraries (libspf2, libopendkim,
 * libopendmarc). Those libraries ask synchronously and want an answer at once, while smtpd
 * may never block: so they are answered from this table, and what they asked that is not
 * in it yet is noted here as wanted. The authres stage then fetches every wanted name in
 * parallel through the resolver (dns.h) and runs the libraries again ("prefetch and
 * re-run"), until nothing new is wanted.
 *
 * Bounded: at most AR_DNS_MAX_NAMES names per message (past that ar_dns_want fails and the
 * caller gives up with its own error), at most AR_DNS_MAX_RECORDS records of at most
 * AR_DNS_MAX_RECORD octets kept per name, and every lookup ends by the message's deadline. */
#ifndef SMTPD_AUTHRES_DNS_H
#define SMTPD_AUTHRES_DNS_H
#include <stddef.h>
#include <stdint.h>

#include "dns.h"

#define AR_DNS_MAX_NAMES 64
#define AR_DNS_MAX_RECORDS 32
#define AR_DNS_MAX_RECORD 4096
#define AR_DNS_MAX_NAME 255

struct ar_dns_entry {
    enum smtpd_dns_type type;
    char name[AR_DNS_MAX_NAME + 1];   /* lower case, no trailing dot */
    int state;                        /* AR_DNS_WANTED, AR_DNS_ASKED, AR_DNS_DONE */
    enum smtpd_dns_status status;     /* once DONE */
    char **records;
    size_t n;
    struct smtpd_dns_query *query;    /* while ASKED */
    struct ar_dns *owner;
};

enum { AR_DNS_WANTED, AR_DNS_ASKED, AR_DNS_DONE };

struct ar_dns {
    struct smtpd_server *srv;
    uint64_t deadline_ms;             /* monotonic (clock.h): no lookup runs past it */
    struct ar_dns_entry *v[AR_DNS_MAX_NAMES];
    size_t n;
    size_t asked;                     /* lookups sent in all (for the log) */
    size_t in_flight;
    void (*done)(void *arg);          /* every lookup started by ar_dns_fetch has ended */
    void *arg;
};

void ar_dns_init(struct ar_dns *d, struct smtpd_server *srv, uint64_t deadline_ms);
/* The entry for (type, name), or NULL if nobody asked for it yet. */
const struct ar_dns_entry *ar_dns_find(const struct ar_dns *d, enum smtpd_dns_type type, const char *name);
/* Notes (type, name) as wanted unless it is known or wanted already. 0, or -1: the name is
 * not one to look up (empty, too long) or the table is full. */
int ar_dns_want(struct ar_dns *d, enum smtpd_dns_type type, const char *name);
/* Starts every wanted lookup, all at once. Returns how many were started: done(arg) is then
 * called from the event loop once all have ended. 0: nothing to wait for (nothing wanted, or
 * the deadline has passed and the wanted names were answered SMTPD_DNS_TEMPFAIL at once). */
size_t ar_dns_fetch(struct ar_dns *d, void (*done)(void *arg), void *arg);
/* Stops the lookups in flight (done is not called) and frees the table. */
void ar_dns_free(struct ar_dns *d);

#endif
