/* Replies from the server of the shared SMTP client (smtpc.h; SMTP, LMTP and submission
 * alike, RFC 5321 4.2): one or more "ddd-text" lines ended by a "ddd text" line. The server
 * is hostile until proven otherwise: lines, line count and the kept text are bounded, codes
 * must agree, and only printable ASCII is kept. */
#ifndef PM_SMTPC_REPLY_H
#define PM_SMTPC_REPLY_H
#include <stddef.h>

#define PM_SMTPC_REPLY_LINE_MAX 2048 /* RFC 5321 says 512; be lenient, never unbounded */
#define PM_SMTPC_REPLY_MAX_LINES 200 /* an EHLO reply has a dozen */
#define PM_SMTPC_REPLY_TEXT_MAX 8192 /* text kept per reply; the rest is dropped */

struct pm_smtpc_reply {
    int code;   /* 0 until the first line */
    int nlines;
    size_t len; /* bytes used in text */
    char text[PM_SMTPC_REPLY_TEXT_MAX]; /* each line's text after the code, '\n' between lines */
};

enum pm_smtpc_reply_status { PM_SMTPC_REPLY_MORE, PM_SMTPC_REPLY_DONE, PM_SMTPC_REPLY_ERROR };

void pm_smtpc_reply_reset(struct pm_smtpc_reply *r);

/* Feeds one line without its CRLF. On PM_SMTPC_REPLY_ERROR *error says why. */
enum pm_smtpc_reply_status pm_smtpc_reply_feed(struct pm_smtpc_reply *r, const char *line, size_t len,
                                               const char **error);

/* The enhanced status code (RFC 3463) at the start of the text when its class matches the
 * reply code ("5.1.1"), else "". */
void pm_smtpc_reply_enhanced(const struct pm_smtpc_reply *r, char *out, size_t size);

/* "550 5.1.1 first line second line": the reply on one line, for results and logs. */
void pm_smtpc_reply_oneline(const struct pm_smtpc_reply *r, char *out, size_t size);

#endif
