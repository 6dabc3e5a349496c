/* Inside the MIME module (mime.c, mime_tree.c, envelope.c, bodystructure.c, section.c,
 * mime_search.c): the parsed message and its part tree with file offsets. Nobody else
 * includes this. */
#ifndef IMAP_MIME_INT_H
#define IMAP_MIME_INT_H
#include <stdint.h>

#include <gmime/gmime.h>

#include "mime.h"

enum mime_kind { MN_LEAF, MN_MULTI, MN_MESSAGE };

/* One MIME part. Offsets are of the file: [hdr_begin, body_begin) is the part's MIME
 * header with its blank line, [body_begin, body_end) its body (for a multipart: preamble,
 * parts, delimiters, epilogue; for message/rfc822: the embedded message). */
struct mime_node {
    GMimeObject *obj;           /* the part (headers, content type); owned by the tree root */
    GMimeMessage *msg;          /* MN_MESSAGE: the embedded message (its envelope) */
    enum mime_kind kind;
    int depth;
    uint64_t hdr_begin, body_begin, body_end;
    uint64_t lines;             /* LF bytes in the body: text/ and message/rfc822 only */
    struct mime_node *child;    /* MN_MULTI: first part; MN_MESSAGE: the embedded message's body */
    struct mime_node *next;
    uint64_t scan_end;          /* where this part's own bytes were seen to end (building) */
};

struct imap_msg {
    int fd;
    uint64_t size;
    /* The file's first bytes, read once (mime_need_hdr_len): a plain BODY[HEADER] or a
     * small BODY[] is sent from here, with no second read. */
    char *head;
    size_t head_len;
    /* The top header: [0, hdr_len) with its blank line (hdr_len == size if it has none). */
    int len_state;              /* hdr_len: 0 not yet, 1 known, -1 failed */
    int hdr_state;              /* hmsg: 0 not yet, 1 parsed, -1 failed */
    uint64_t hdr_len;
    GMimeMessage *hmsg;         /* parsed from the header block alone */
    /* The whole structure. */
    int full_state;
    GMimeMessage *msg;
    struct mime_node *root;     /* the top message's body part: hdr_begin 0, body_begin hdr_len */
    size_t nnodes;
    uint64_t parse_end;         /* GMime saw the file up to here (parts cap), size normally */
    /* A top header over IMAP_MIME_HEADER_MAX: GMime is not given the gmime_skip bytes at
     * gmime_cut (the header's middle), so its positions past gmime_cut are that short. */
    uint64_t gmime_cut, gmime_skip;
};

/* m->hdr_len (and m->head) by a byte scan for the blank line, no GMime: all that the
 * top-level HEADER, TEXT and whole-message sections need. 0 or -1 (read error). */
int mime_need_hdr_len(struct imap_msg *m);
/* m->hmsg: the top header parsed by GMime (and hdr_len). 0 or -1. */
int mime_need_header(struct imap_msg *m);
/* mime_tree.c: m->root from m->msg (mime_need_full calls it); the end of the blank line
 * at or after the line starting at from (the file size if none, -1 read error or the
 * file shrank); how much of the file GMime may parse. */
int mime_build_tree(struct imap_msg *m);
int64_t mime_blank_line_after(struct imap_msg *m, uint64_t from);
int64_t mime_parse_limit(struct imap_msg *m);
/* A position GMime reported (header offset, content bound), in the file. */
int64_t mime_fpos(const struct imap_msg *m, int64_t p);
int mime_need_full(struct imap_msg *m);
/* pread all of len bytes at off (short only at end of file): bytes read or -1. */
long mime_pread(struct imap_msg *m, void *buf, size_t len, uint64_t off);

/* envelope.c: "(...)" of the message whose header list is msg's (and part's for nothing:
 * ENVELOPE takes only message fields). */
void mime_write_envelope(struct evbuffer *out, GMimeMessage *msg);
/* mime_params.c: "(name value ...)" or NIL of a Content-Type / Content-Disposition raw
 * value (NULL: none), values as sent, RFC 2231 pieces joined as Dovecot; default_charset:
 * add "charset" "us-ascii" when there is no charset. */
void mime_write_params(struct evbuffer *out, const char *raw, int default_charset);
/* bodystructure.c */
void mime_write_body(struct evbuffer *out, const struct mime_node *n, int extended);

/* The header value as Dovecot keeps it: raw bytes after the colon, leading blanks of the
 * first line and the final line break removed (folds kept). NULL if absent. g_free it. */
char *mime_raw_header(GMimeObject *obj, const char *name);

#endif
