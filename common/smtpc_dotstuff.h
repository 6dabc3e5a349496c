/* The message body on the wire after DATA (RFC 5321 4.5.2): CRLF line ends, a dot doubled
 * at the start of a line, "." alone to end. Produced in slices so a 35 MB body is never
 * copied whole into the connection's buffer. */
#ifndef PM_SMTPC_DOTSTUFF_H
#define PM_SMTPC_DOTSTUFF_H
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

struct pm_smtpc_dotstuff {
    const uint8_t *p;
    size_t len, off;
    int bol;  /* at the beginning of a line */
    int done; /* the final "." line was written */
};

void pm_smtpc_dotstuff_init(struct pm_smtpc_dotstuff *d, const uint8_t *body, size_t len);

/* Appends about max bytes (at least one line's worth of progress) to out. Bare CR and bare
 * LF become CRLF, so nothing we send can be read as a different end of data by the
 * receiver (SMTP smuggling). Returns 1 once the terminating ".\r\n" is written. */
int pm_smtpc_dotstuff_next(struct pm_smtpc_dotstuff *d, struct evbuffer *out, size_t max);

/* Is every CR and LF of the body part of a CRLF (it may go out as it is, in BDAT)? */
int pm_smtpc_body_is_crlf(const uint8_t *body, size_t len);

/* Does the body have bytes >= 0x80 (BODY=8BITMIME is then worth saying)? */
int pm_smtpc_body_is_8bit(const uint8_t *body, size_t len);

#endif
