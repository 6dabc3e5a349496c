/* The message as the milters see and change it: the header fields one by one and the body
 * as it was (never copied unless a milter replaces it). Parsed from the end-of-message
 * buffer (CRLF, unstuffed, our Received: on top), built back into one after the milters.
 * The header edits follow libmilter's smfi_* semantics (milter_proto.h's replies). */
#ifndef SMTPD_MILTER_EDIT_H
#define SMTPD_MILTER_EDIT_H
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

struct milter_hdr {
    char *text;    /* the whole field: "Name: value\r\n" with its continuation lines */
    size_t len;
};

struct milter_msg {
    struct milter_hdr *h;
    int n, cap;
    int has_separator;        /* the empty line between headers and body was there */
    struct evbuffer *body;    /* after the empty line */
    struct evbuffer *new_body; /* REPLBODY chunks of the running milter, or NULL */
    int new_last_cr;           /* its last octet was CR (a CRLF split over two chunks) */
};

/* Takes msg. 0, or -1 (out of memory: msg freed, m empty). */
int milter_msg_parse(struct milter_msg *m, struct evbuffer *msg);
/* The message again (m is emptied); NULL when out of memory. */
struct evbuffer *milter_msg_build(struct milter_msg *m);
void milter_msg_free(struct milter_msg *m);

/* Header i as a milter gets it: the name and the value (the space after the colon left out,
 * the line ends inside a folded value as LF, the last one removed). malloc'd; -1 if a
 * malformed field has no colon (sent with an empty value, name the whole line). */
int milter_msg_header(const struct milter_msg *m, int i, char **name, char **value);

/* SMFIR_ADDHEADER: at the end of the header. */
int milter_msg_add(struct milter_msg *m, const char *name, const char *value);
/* SMFIR_INSHEADER: before field index (0: the top; past the end: at the end). */
int milter_msg_insert(struct milter_msg *m, uint32_t index, const char *name, const char *value);
/* SMFIR_CHGHEADER: the nth (1-based) field called name (case-insensitive) gets value; ""
 * deletes it; no nth such field: it is added (as Sendmail does). */
int milter_msg_change(struct milter_msg *m, const char *name, uint32_t nth, const char *value);
/* SMFIR_REPLBODY: one more chunk of the new body (max: its total size), bare LFs made CRLF.
 * 0, -1 if over max. */
int milter_msg_body_chunk(struct milter_msg *m, const void *data, size_t len, size_t max);
/* The running milter's eom is done: its new body (if any, ended with CRLF) takes the old
 * one's place. */
void milter_msg_body_commit(struct milter_msg *m);
/* ... or it failed: its chunks are dropped. */
void milter_msg_body_drop(struct milter_msg *m);

/* Octets of the whole message as it would be built now. */
size_t milter_msg_size(const struct milter_msg *m);

#endif
