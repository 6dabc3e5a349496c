/* Command-line assembly without copying: a scanner fed with whatever chunks the socket
 * delivered counts octets up to the LF, so a line split across reads is found no matter
 * where the split falls, and an endless line costs no memory (the caller discards it). */
#ifndef SMTPD_LINES_H
#define SMTPD_LINES_H
#include <stddef.h>

struct smtpd_linescan {
    size_t seen;  /* octets of the current line so far (LF included once found) */
    int overflow; /* the current line went past the limit */
};

enum smtpd_line_status {
    SMTPD_LINE_MORE,     /* no LF yet: feed more */
    SMTPD_LINE_DONE,     /* a complete line of st->seen octets (LF included) */
    SMTPD_LINE_TOO_LONG, /* the LF ending an overlong line was consumed */
};

void smtpd_linescan_reset(struct smtpd_linescan *st);

/* Consumes p[0..n) up to and including the first LF; *used = octets consumed. max is
 * the longest acceptable line including its CRLF. After DONE or TOO_LONG, reset before
 * scanning the next line. */
enum smtpd_line_status smtpd_linescan_feed(struct smtpd_linescan *st, const char *p, size_t n, size_t max,
                                           size_t *used);

/* Length of line without its line end (CRLF or bare LF). */
size_t smtpd_line_strip(const char *line, size_t len);

#endif
