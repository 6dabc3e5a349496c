/* FETCH data items (RFC 9051 §6.4.5, RFC 3501 §6.4.5): the item argument of FETCH / UID
 * FETCH (one atom or a parenthesised list) parsed into what to send: simple items as bits,
 * body sections (BODY[...], BODY.PEEK[...], RFC822*, BINARY* when allowed) as a list in the
 * order asked, each with its section, partial range, \Seen effect and the exact name to
 * echo in the response.
 *
 * What this file owns (with fetch_section.c, the grammar between the brackets): the grammar
 * and its bounds. Not the bytes: section.c (mime) finds a section's bytes from struct
 * imap_section, cmd_fetch.c writes the response.
 *
 * Macros ALL, FAST and FULL are accepted only alone, not inside a list (RFC 9051 §9:
 * fetch = ... ("ALL" / "FULL" / "FAST" / fetch-att / "(" fetch-att *(SP fetch-att) ")")).
 * UID FETCH always includes UID (RFC 9051 §6.4.9). */
#ifndef IMAP_FETCH_ATTS_H
#define IMAP_FETCH_ATTS_H
#include <stddef.h>
#include <stdint.h>

#include "args.h"

/* Simple items, one bit each (struct imap_fetch_atts.items). */
enum imap_fetch_item {
    IMAP_FETCH_FLAGS = 1u << 0,
    IMAP_FETCH_UID = 1u << 1,
    IMAP_FETCH_INTERNALDATE = 1u << 2,
    IMAP_FETCH_RFC822_SIZE = 1u << 3,
    IMAP_FETCH_ENVELOPE = 1u << 4,
    IMAP_FETCH_BODY = 1u << 5,          /* BODY without [ ]: non-extensible BODYSTRUCTURE */
    IMAP_FETCH_BODYSTRUCTURE = 1u << 6,
    IMAP_FETCH_MODSEQ = 1u << 7,        /* RFC 7162, only with IMAP_FETCH_OPT_CONDSTORE */
};

/* Options of imap_fetch_atts_parse: what the server offers beyond the base grammar. */
enum imap_fetch_opt {
    IMAP_FETCH_OPT_BINARY = 1u << 0,    /* BINARY[...], BINARY.PEEK[...], BINARY.SIZE[...] */
    IMAP_FETCH_OPT_CONDSTORE = 1u << 1, /* MODSEQ */
};

/* What part of the (sub)message a section names (RFC 9051 §6.4.5 section-text). */
enum imap_section_text {
    IMAP_SECTION_ALL = 0,          /* BODY[] (whole message) or BODY[1.2] (that part's body) */
    IMAP_SECTION_HEADER,           /* [HEADER], [1.2.HEADER] (a message/rfc822 part) */
    IMAP_SECTION_TEXT,             /* [TEXT], [1.2.TEXT] */
    IMAP_SECTION_MIME,             /* [1.2.MIME]: only after a part number */
    IMAP_SECTION_HEADER_FIELDS,    /* [HEADER.FIELDS (A B)] */
    IMAP_SECTION_HEADER_FIELDS_NOT /* [HEADER.FIELDS.NOT (A B)] */
};

#define IMAP_SECTION_DEPTH_MAX 32     /* part numbers in 1.2.3...: deeper is refused */
#define IMAP_SECTION_FIELDS_MAX 128   /* names in one HEADER.FIELDS list */
#define IMAP_SECTION_FIELD_LEN_MAX 256 /* bytes of one field name */
#define IMAP_FETCH_BODIES_MAX 64      /* section items in one FETCH */

struct imap_section {
    uint32_t part[IMAP_SECTION_DEPTH_MAX]; /* 1.2.3 -> {1, 2, 3}; each >= 1 */
    size_t nparts;                         /* 0: the top-level message */
    enum imap_section_text text;
    /* HEADER.FIELDS(.NOT): the names as the client gave them (astring: atom or quoted,
     * unescaped; NUL-terminated; compare case-insensitively). nfields >= 1. */
    char **fields;
    size_t nfields;
};

/* One section item. */
enum imap_fetch_body_kind {
    IMAP_FETCH_SECTION,     /* BODY[...], BODY.PEEK[...], RFC822, RFC822.HEADER, RFC822.TEXT */
    IMAP_FETCH_BINARY,      /* BINARY[...] / BINARY.PEEK[...]: decoded content (RFC 3516) */
    IMAP_FETCH_BINARY_SIZE, /* BINARY.SIZE[...]: the decoded size (no partial) */
};

struct imap_fetch_body {
    enum imap_fetch_body_kind kind;
    struct imap_section section;
    /* 1 if fetching it sets \Seen: BODY[...], BINARY[...], RFC822, RFC822.TEXT without
     * .PEEK (RFC822.HEADER is BODY.PEEK[HEADER]). The caller applies it only in a folder
     * selected read-write (SELECT, not EXAMINE), and answers FLAGS too when it changed. */
    int sets_seen;
    int partial;            /* <offset.count> given */
    uint32_t offset, count; /* with partial: count >= 1 */
    /* The name for the response, e.g. "BODY[HEADER.FIELDS (FROM TO)]<0>" for
     * BODY.PEEK[header.fields (from to)]<0.512>: .PEEK dropped, keywords and field names
     * upper-cased, only the origin of a partial kept (RFC 9051 §7.5.2); "RFC822.HEADER"
     * for RFC822.HEADER. NUL-terminated; a string literal output can use as it is (the
     * client reads it as an atom up to the following SP or literal). */
    char *name;
};

struct imap_fetch_atts {
    unsigned items; /* IMAP_FETCH_* */
    struct imap_fetch_body *bodies; /* in the order asked, duplicates kept */
    size_t nbodies;
    int sets_seen;  /* some body item sets \Seen */
};

/* Parses arg (the item argument: an atom or a list) into *fa (zeroed first). uid: the
 * command is UID FETCH (adds IMAP_FETCH_UID). opts: IMAP_FETCH_OPT_*. Returns 0, or -1 with
 * *err a static text for a tagged BAD ("Out of memory" on ENOMEM) and *fa left empty
 * (imap_fetch_atts_free is still safe). */
int imap_fetch_atts_parse(const struct imap_arg *arg, int uid, unsigned opts, struct imap_fetch_atts *fa,
                          const char **err);
void imap_fetch_atts_free(struct imap_fetch_atts *fa);

/* 1 if some item needs the message's bytes or structure (anything but FLAGS, UID,
 * INTERNALDATE, MODSEQ and RFC822.SIZE, which come from the folder's listing): the
 * caller opens / parses the file only then. */
int imap_fetch_atts_need_message(const struct imap_fetch_atts *fa);

/* Parses a section's text as it appears between '[' and ']' (e.g. "1.2.HEADER.FIELDS
 * (FROM)"), for callers other than FETCH. binary: the BINARY grammar (part numbers only).
 * Returns 0 or -1 with *err as above; imap_section_free releases the field names. */
int imap_section_parse(const char *s, size_t len, int binary, struct imap_section *sec, const char **err);
void imap_section_free(struct imap_section *sec);
/* prefix "[" section "]" ["<" origin ">"] as the response names the item (upper-cased
 * keywords and field names, as in struct imap_fetch_body.name): a malloc'd string, NULL on
 * out of memory. */
char *imap_section_name(const char *prefix, const struct imap_section *sec, int partial, uint32_t origin);

#endif
