/* A message as a POP3 multi-line response (RFC 1939 §3): lines end in CRLF (a bare LF from
 * a foreign Maildir file becomes CRLF), a line starting with '.' gets one more '.', and the
 * response ends with ".\r\n". Fed in chunks of any size; TOP stops after the header and n
 * body lines. */
#ifndef POP3_STUFF_H
#define POP3_STUFF_H
#include <stddef.h>

struct pop3_stuffer {
    int at_line_start;
    int pending_cr;    /* a CR whose next byte is not known yet */
    int in_body;       /* the empty line ending the header was sent */
    size_t line_len;   /* bytes of the current line, CR/LF excluded */
    long body_lines;   /* TOP: body lines still to send; -1: the whole message */
    int done;          /* TOP's limit reached: ignore further input */
};

/* body_lines: -1 for RETR, n for TOP n. */
void pop3_stuff_init(struct pop3_stuffer *s, long body_lines);

/* Worst-case output of pop3_stuff for len input bytes. */
#define POP3_STUFF_OUT_MAX(len) (2 * (len) + 2)

/* Converts in[0..len) into out (at least POP3_STUFF_OUT_MAX(len) bytes). Returns the bytes
 * written. After s->done is set, the rest of the input is ignored. */
size_t pop3_stuff(struct pop3_stuffer *s, const char *in, size_t len, char *out);

/* The end of the response: a pending CR, a CRLF if the message did not end with one, and
 * ".\r\n". out needs 8 bytes. Returns the bytes written. */
size_t pop3_stuff_finish(struct pop3_stuffer *s, char *out);

#endif
