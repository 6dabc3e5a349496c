/* One message file's MIME view for FETCH and SEARCH (RFC 9051 §6.4.4, §6.4.5, §7.5.2):
 * ENVELOPE, BODY / BODYSTRUCTURE, BODY[section]<partial> and BINARY[section], and decoded
 * header / body text for SEARCH. Parsing is GMime's (never by hand); this module keeps
 * GMime's offsets so every section is a byte range of the file as stored (CRLF lines, as
 * delivery and APPEND write them; a file with bare LF lines is served as it is, its sizes
 * and line counts are those of its bytes).
 *
 * Cost: imap_msg_open only fstat()s. The first call that needs the top header parses the
 * header block alone (ENVELOPE, HEADER, HEADER.FIELDS, header SEARCH); the first call that
 * needs the structure parses the whole file once (BODYSTRUCTURE, parts, TEXT, body SEARCH).
 * Both results are kept until imap_msg_free, so a FETCH with several items of one message
 * parses it once: keep the struct imap_msg for the message being answered.
 *
 * Bounds against hostile files: MIME nesting (multipart and message/rfc822 together)
 * deeper than IMAP_MIME_DEPTH_MAX is not descended: a part at that depth is described as
 * an opaque leaf (its content type kept, its body one range), at most IMAP_MIME_PARTS_MAX
 * parts are described per message (the rest of a multipart's children are left out of
 * BODYSTRUCTURE and have no section number), and of a top header larger than
 * IMAP_MIME_HEADER_MAX only the first and the last half of that are parsed (fields in
 * the middle are not seen by ENVELOPE, HEADER.FIELDS and SEARCH; HEADER still returns
 * all its bytes). GMime is given the file only up to its 2 * IMAP_MIME_PARTS_MAX-th line
 * starting "--", so its own allocations stay bounded too.
 *
 * Not here: the FETCH item and section grammar (fetch_atts.c: struct imap_section), the response framing "* n FETCH (...)"
 * and item names (cmd_fetch.c), flags, sizes from file names, INTERNALDATE. */
#ifndef IMAP_MIME_H
#define IMAP_MIME_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct evbuffer;
struct imap_msg;
struct imap_section;

#define IMAP_MIME_DEPTH_MAX 32            /* nested multipart / message levels described */
#define IMAP_MIME_PARTS_MAX 2000          /* parts described in one message */
#define IMAP_MIME_HEADER_MAX (1024 * 1024) /* top header bytes parsed */

/* GMime's global state: call once at process start (before any imap_msg_open) and once at
 * the end (valgrind / LSan cleanliness). Both are idempotent. */
void imap_mime_init(void);
void imap_mime_shutdown(void);

/* ---- a message ---- */

/* Takes ownership of fd (closed by imap_msg_free, also when this fails). NULL with errno
 * set if fstat fails or fd is not a regular file. */
struct imap_msg *imap_msg_open(int fd);
/* open(path, O_RDONLY | O_CLOEXEC) then imap_msg_open. NULL with errno (ENOENT: the
 * message was expunged meanwhile). */
struct imap_msg *imap_msg_open_path(const char *path);
void imap_msg_free(struct imap_msg *m);
/* The file's size in octets (RFC822.SIZE when the name has no ,S=). */
uint64_t imap_msg_size(const struct imap_msg *m);

/* Each writer below appends to out and returns 0, or -1 on a read error of the file
 * (nothing usable was written then: the caller answers NO for that message). */

/* ENVELOPE's value: "(date subject from sender reply-to to cc bcc in-reply-to
 * message-id)", header values raw as in the file (RFC 2047 encoded words kept, CR LF
 * dropped), addresses as (name adl mailbox host) with RFC groups, sender and reply-to
 * defaulting to from, as Dovecot writes it. */
int imap_msg_envelope(struct imap_msg *m, struct evbuffer *out);

/* BODYSTRUCTURE's value (extended != 0) or BODY's (extended == 0). */
int imap_msg_bodystructure(struct imap_msg *m, int extended, struct evbuffer *out);

/* ---- sections: BODY[section]<origin.count> ---- */

/* The section (its grammar and struct imap_section: fetch_atts.h, the query helper's):
 * which part and which of its bytes. Resolved as Dovecot does: a message/rfc822 part is
 * entered before the next number applies, a non-multipart body is its own part 1 (and
 * has no 1.1). */
/* BODY[sec]<origin.count>'s value: a literal {n}CRLF<bytes> (big file ranges are added with
 * evbuffer_add_file on a dup of the fd, so they are not copied into memory). partial == 0:
 * the whole section (origin and count ignored); else the bytes from origin (0 based), at
 * most count of them. A section that does not exist (no such part, HEADER of a part that
 * is not message/rfc822, origin past the end) gives an empty value, written {0}CRLF as
 * Dovecot does. The caller writes the item name ("BODY[...]" and "<origin>") before. */
int imap_msg_section_write(struct imap_msg *m, const struct imap_section *sec, int partial,
                           uint64_t origin, uint64_t count, struct evbuffer *out);
/* The section's size in octets (what imap_msg_section_write would send with partial 0);
 * -1 on read error. */
int64_t imap_msg_section_size(struct imap_msg *m, const struct imap_section *sec);

/* BINARY[sec]<origin.count> (RFC 3516): the part's content with its Content-Transfer-
 * Encoding undone, as a literal8 ~{n} when it holds NUL, else {n}. Returns 0, -1 on read
 * error, -2 if the part's encoding is unknown (the caller answers NO [UNKNOWN-CTE]). The
 * decoded bytes are held in memory (bounded by the message size). */
int imap_msg_binary_write(struct imap_msg *m, const struct imap_section *sec, int partial,
                          uint64_t origin, uint64_t count, struct evbuffer *out);
/* BINARY.SIZE[sec]: the decoded size; -1 read error, -2 unknown encoding. */
int64_t imap_msg_binary_size(struct imap_msg *m, const struct imap_section *sec);

/* ---- SEARCH ---- */

/* Calls fn(name, value, arg) for every field of the top header whose name equals name
 * (ASCII case-insensitive; name NULL: every field), value unfolded and RFC 2047 decoded
 * to UTF-8 (addresses as GMime formats them, "Name <a@b>"). Stops at the first nonzero
 * fn return and returns it; 0 when all were seen; -1 on read error. */
int imap_msg_headers_each(struct imap_msg *m, const char *name,
                          int (*fn)(const char *name, const char *value, void *arg), void *arg);
/* Calls fn(bytes, len, arg) over the message's body text: each text/ part's content with
 * its transfer encoding undone and converted to UTF-8 from its charset, other leaf parts
 * raw as in the file (RFC 9051 leaves it to the server), in chunks of at most about 64 KiB
 * cut anywhere (a needle may straddle two: imap_msg_body_contains handles that). Same
 * returns as imap_msg_headers_each. */
int imap_msg_body_each(struct imap_msg *m, int (*fn)(const char *s, size_t len, void *arg), void *arg);

/* Case-insensitive (Unicode case folding) substring tests, needle UTF-8 (US-ASCII is
 * UTF-8). An empty needle matches when the field exists / always. 1 match, 0 not, -1 read
 * error. header: SEARCH FROM/TO/CC/BCC/SUBJECT/HEADER <name> (field name as above).
 * body: SEARCH BODY. text: SEARCH TEXT (the whole header, then the body). */
int imap_msg_header_contains(struct imap_msg *m, const char *name, const char *needle);
int imap_msg_body_contains(struct imap_msg *m, const char *needle);
int imap_msg_text_contains(struct imap_msg *m, const char *needle);

/* The Date: field's calendar day as written (its own time zone, RFC 9051 SENTBEFORE /
 * SENTON / SENTSINCE disregard time and zone). 0, or -1 if there is none or it does not
 * parse (such messages match no SENT* key, as Dovecot: it uses INTERNALDATE then; the
 * caller may do the same). */
int imap_msg_sent_date(struct imap_msg *m, int *year, int *month, int *day);

#endif
