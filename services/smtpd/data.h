/* The DATA phase decoder: a byte-level state machine, so the message may arrive in any
 * split. It removes dot-stuffing, finds the end of data and enforces the text rules:
 * only <CRLF>.<CRLF> ends a message, and a bare CR or bare LF anywhere is refused at once
 * (SMTP smuggling, as Postfix's smtpd_forbid_bare_newline = reject). Overlong lines and
 * NUL octets are remembered so the message can be refused when it ends. */
#ifndef SMTPD_DATA_H
#define SMTPD_DATA_H
#include <stddef.h>

enum smtpd_data_status {
    SMTPD_DATA_MORE,    /* all input consumed, message not finished */
    SMTPD_DATA_END,     /* the end-of-data line was consumed */
    SMTPD_DATA_BARE_LF, /* a LF not preceded by CR */
    SMTPD_DATA_BARE_CR, /* a CR not followed by LF */
};

struct smtpd_data {
    int state;
    size_t line_len;  /* wire octets of the current line */
    size_t max_line;  /* longest allowed line, CRLF included (RFC 5321: 1000) */
    int long_line;    /* some line exceeded max_line */
    int nul;          /* a NUL octet was seen */
};

void smtpd_data_init(struct smtpd_data *d, size_t max_line);

/* Decodes in[0..n): writes the unstuffed message octets to out, which must have room for
 * n + 2 octets; *outlen gets their count and *used the input octets consumed. Stops right
 * after the end-of-data line, or at a bare CR/LF. */
enum smtpd_data_status smtpd_data_feed(struct smtpd_data *d, const char *in, size_t n, char *out, size_t *outlen,
                                       size_t *used);

#endif
