/* The DSN parameters of MAIL and RCPT (RFC 3461 section 4): RET, ENVID, NOTIFY, ORCPT. A pure
 * parser: no session, no allocation. Values are xtext-decoded; a decoded value must be
 * printable ASCII (it ends up in a report's header fields), and the encoded lengths are the
 * RFC's (ENVID 100, ORCPT 500). Every refusal is "501 5.5.4 ...". */
#ifndef SMTPD_DSN_PARAMS_H
#define SMTPD_DSN_PARAMS_H

#include <stddef.h>

#define SMTPD_DSN_ENVID_MAX 100
#define SMTPD_DSN_ORCPT_MAX 500

/* The values of proto's DsnRet and DsnNotify (checked in dsn_params.c). */
enum { SMTPD_DSN_RET_UNSET = 0, SMTPD_DSN_RET_FULL = 1, SMTPD_DSN_RET_HDRS = 2 };
enum { SMTPD_NOTIFY_SUCCESS = 1, SMTPD_NOTIFY_FAILURE = 2, SMTPD_NOTIFY_DELAY = 4, SMTPD_NOTIFY_NEVER = 8 };

struct smtpd_dsn_mail {
    int ret;       /* SMTPD_DSN_RET_* */
    int has_envid;
    char envid[SMTPD_DSN_ENVID_MAX + 1]; /* decoded */
};

struct smtpd_dsn_rcpt {
    unsigned notify; /* SMTPD_NOTIFY_* bits, 0: not given */
    int has_orcpt;
    char orcpt[SMTPD_DSN_ORCPT_MAX + 1]; /* "addr-type;decoded address" */
};

/* One "KEY[=VALUE]" parameter. 1: a DSN parameter, taken into m / r; 0: not a DSN parameter;
 * -1: a bad or repeated DSN parameter, the reply line in reply. */
int smtpd_dsn_mail_param(struct smtpd_dsn_mail *m, const char *key, size_t klen, const char *val, size_t vlen,
                         char *reply, size_t size);
int smtpd_dsn_rcpt_param(struct smtpd_dsn_rcpt *r, const char *key, size_t klen, const char *val, size_t vlen,
                         char *reply, size_t size);

/* xtext (RFC 3461 4): in[0..n) decoded into out (NUL-terminated). The decoded length, or -1
 * for bad syntax, a decoded control or non-ASCII character, or no room. */
int smtpd_xtext_decode(const char *in, size_t n, char *out, size_t outsize);

#endif
