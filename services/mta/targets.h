/* The MX choice of an outbound job: which addresses it tries, in which order, from the
 * resolver's answer (hosts by preference, each with its addresses) or from an address
 * literal. At most MTA_MAX_TARGETS addresses (Postfix: smtp_mx_address_limit). The address
 * half of loop detection (as Postfix smtp_find_self + smtp_truncate_self): an MX address and
 * port that is one of our own smtpd listeners (self.h) is never tried, nor any host less
 * preferred than it (we are a backup MX). What it does not do: talk to a server (outbound.c)
 * or ask the resolver (resolve.h). */
#ifndef MTA_TARGETS_H
#define MTA_TARGETS_H

#include "postmesh.pb-c.h"

struct mta_self;

#define MTA_MAX_TARGETS 10

struct mta_target {
    char host[256];
    char ip[64];
    int plain; /* retry without STARTTLS after a broken handshake */
    int best;  /* a host of the lowest preference: a loop found here is final (Postfix) */
    int secure; /* the MX answer and every address of this host were DNSSEC-secure (DANE) */
};

struct mta_targets {
    struct mta_target v[MTA_MAX_TARGETS];
    int n;
};

enum mta_targets_result {
    MTA_TARGETS_OK,         /* t->n addresses to try, at least one */
    MTA_TARGETS_LOOP,       /* every host that may take the mail is us: 5.4.6 */
    MTA_TARGETS_NO_PRIMARY, /* we are a backup MX, and no better host has an address: 4.4.4 */
    MTA_TARGETS_EMPTY,      /* the answer has no address to try: 4.4.3 */
};

/* From a successful MX answer. Each listener of ours found is logged (event=mail_loop with
 * log_id as id= and domain). t is filled from empty. */
enum mta_targets_result mta_targets_mx(struct mta_targets *t, const Postmesh__ResolveReply *reply,
                                       struct mta_self *self, int port, const char *log_id, const char *domain);

/* The domain of an address literal "[192.0.2.1]" / "[IPv6:2001:db8::1]" as an IP, or NULL. */
const char *mta_domain_literal(const char *domain, char *ip, size_t size);

/* For an address literal domain whose IP is ip: that one address, unless it is a listener
 * of ours (MTA_TARGETS_LOOP, logged). */
enum mta_targets_result mta_targets_literal(struct mta_targets *t, const char *domain, const char *ip,
                                            struct mta_self *self, int port, const char *log_id);

#endif
