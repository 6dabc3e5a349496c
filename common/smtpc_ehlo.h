/* What a server offers in its EHLO (or LHLO) reply (RFC 5321 4.1.1.1): the service
 * extensions the shared SMTP client (smtpc.h) acts on, one row each in smtpc_ehlo.c. A
 * keyword nobody acts on is not recorded; adding one is a field here and a row there. */
#ifndef PM_SMTPC_EHLO_H
#define PM_SMTPC_EHLO_H

#include "smtpc_reply.h"

struct pm_smtpc_ext {
    int pipelining;   /* RFC 2920 */
    int starttls;     /* RFC 3207 */
    int size;         /* RFC 1870 */
    unsigned long long size_max; /* SIZE's argument, 0 if none */
    int eightbitmime; /* RFC 6152 */
    int smtputf8;     /* RFC 6531 */
    int dsn;          /* RFC 3461: RET, ENVID, NOTIFY, ORCPT */
    int chunking;     /* RFC 3030: BDAT */
    int auth;         /* RFC 4954, with any mechanism */
    int auth_plain;   /* ... PLAIN among them (RFC 4616) */
    int requiretls;   /* RFC 8689: MAIL FROM ... REQUIRETLS */
};

/* Reads the keywords of every line after the first (the server's name) into ext, which is
 * cleared first. */
void pm_smtpc_ehlo_parse(const struct pm_smtpc_reply *r, struct pm_smtpc_ext *ext);

#endif
