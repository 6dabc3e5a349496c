/* The Received: header smtpd prepends (RFC 5321 4.4), with the protocol keyword of
 * RFC 3848/6531 (ESMTPSA, UTF8SMTPS, ...) and the TLS version and cipher in a comment. */
#ifndef SMTPD_RECEIVED_H
#define SMTPD_RECEIVED_H
#include <stddef.h>
#include <time.h>

struct smtpd_received {
    const char *helo;       /* as the client said it (already validated printable) */
    const char *ip;
    const char *hostname;   /* ours */
    int esmtp, tls, auth, smtputf8;
    const char *tls_version, *tls_cipher; /* "" if unknown */
    const char *rcpt;       /* the single recipient, or NULL */
    time_t when;
};

/* "SMTP", "ESMTP", "ESMTPS", "ESMTPA", "ESMTPSA", "UTF8SMTP", "UTF8SMTPSA", ... */
const char *smtpd_received_protocol(int esmtp, int tls, int auth, int smtputf8);

/* Writes the complete header (folded, CRLF-terminated) into dst. Returns its length, or
 * 0 if dst is too small. */
size_t smtpd_received_format(const struct smtpd_received *r, char *dst, size_t size);

#endif
