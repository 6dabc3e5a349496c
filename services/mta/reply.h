/* SMTP replies from a remote server (RFC 5321 4.2): one or more "ddd-text" lines ended by a
 * "ddd text" line. The server is hostile until proven otherwise: lines, line count and the
 * kept text are bounded, codes must agree, and only printable ASCII is kept. */
#ifndef MTA_REPLY_H
#define MTA_REPLY_H
#include <stddef.h>

#define MTA_REPLY_LINE_MAX 2048   /* RFC 5321 says 512; be lenient, never unbounded */
#define MTA_REPLY_MAX_LINES 200   /* an EHLO reply has a dozen */
#define MTA_REPLY_TEXT_MAX 8192   /* text kept per reply; the rest is dropped */

struct mta_reply {
    int code;   /* 0 until the first line */
    int nlines;
    size_t len; /* bytes used in text */
    char text[MTA_REPLY_TEXT_MAX]; /* each line's text after the code, '\n' between lines */
};

enum mta_reply_status { MTA_REPLY_MORE, MTA_REPLY_DONE, MTA_REPLY_ERROR };

void mta_reply_reset(struct mta_reply *r);

/* Feeds one line without its CRLF. On MTA_REPLY_ERROR *error says why. */
enum mta_reply_status mta_reply_feed(struct mta_reply *r, const char *line, size_t len, const char **error);

/* The enhanced status code (RFC 3463) at the start of the text when its class matches the
 * reply code ("5.1.1"), else "". */
void mta_reply_enhanced(const struct mta_reply *r, char *out, size_t size);

/* "550 5.1.1 first line second line": the reply on one line, for results and logs. */
void mta_reply_oneline(const struct mta_reply *r, char *out, size_t size);

#endif
