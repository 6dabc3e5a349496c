/* BDAT (RFC 3030 CHUNKING): "BDAT <size> [LAST]" is followed by exactly <size> octets of the
 * message, raw: no dot-stuffing, no end-of-data line. The chunk may already sit in the input
 * behind its command (clients pipeline chunks back to back). Whatever happens to the
 * command, its octets are read, or the next command would be looked for inside them: a
 * refused BDAT (no transaction, no recipient, over the size, a failed chunk before it)
 * consumes its chunk and is answered after it. Only a size that cannot be read leaves no way
 * to stay in step: 501 and the session ends (as Postfix does).
 *
 * A refused chunk also ends the transaction (RSET): the chunks after it would otherwise be
 * taken as a message that lacks a piece. DATA after BDAT, and STARTTLS inside any transaction,
 * are refused (503).
 *
 * The message is stored and checked as DATA's is (message.c: size limit, the sandbox's body
 * budget, line length, NUL), with CRLF line ends, which the queue and the mta rely on. A bare
 * LF or bare CR in the content is refused with 550 5.5.2 as in DATA (SMTP smuggling: the
 * message may go on to a next hop over DATA); unlike DATA the session goes on, since the
 * chunk's length, not its content, said where it ends. A last line without CRLF gets one.
 *
 * The pure part (parsing and the content checks, unit-tested) and the session's chunk state
 * are here; the handler and the input step are in bdat.c. */
#ifndef SMTPD_BDAT_H
#define SMTPD_BDAT_H
#include <stddef.h>

/* "12345 LAST": 0, or -1 for anything else (sizes over 2^64-1 too). */
int smtpd_bdat_parse(const char *arg, size_t len, unsigned long long *size, int *last);

/* The content rules over the whole message, fed chunk by chunk in any split. */
struct smtpd_bdat_text {
    size_t max_line;  /* longest line allowed, CRLF included (RFC 5321: 1000) */
    size_t line_len;  /* octets of the current line so far */
    int cr;           /* the last octet was a CR (its LF may start the next chunk) */
    int long_line, nul, bare_lf, bare_cr;
};

void smtpd_bdat_text_init(struct smtpd_bdat_text *t, size_t max_line);
void smtpd_bdat_text_feed(struct smtpd_bdat_text *t, const char *p, size_t n);
/* The message ended: a CR left over is bare. Returns 1 if the message (non-empty) lacks its
 * final CRLF. */
int smtpd_bdat_text_end(struct smtpd_bdat_text *t);

/* The chunk being read (session state SMTPD_ST_CHUNK). */
struct smtpd_bdat {
    unsigned long long size, left; /* the chunk's octets, and those still to read */
    int last;
    char refusal[256]; /* not stored: the reply once it is read ("": stored) */
    struct smtpd_bdat_text text;
    /* Monotonic s by which the chunked message must be complete: timeout_data from its first
     * chunk, extended by its octets at DATA's minimum rate. The commands between chunks
     * (NOOP, RSET...) do not extend it: otherwise a client could hold its share of the body
     * budget for ever with a NOOP now and then. */
    long long msg_deadline;
};

struct smtpd_session;
/* Takes the chunk's octets out of the session's input; 1 if it made progress. */
int smtpd_bdat_input(struct smtpd_session *s);
/* A check of the command table refused BDAT (reply): read the chunk, then answer. */
void smtpd_bdat_refused(struct smtpd_session *s, const char *arg, size_t arglen, const char *reply);

#endif
