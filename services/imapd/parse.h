/* The IMAP command parser (args.h's tree) and the two questions session.c asks of a line
 * before a command is whole: its tag and verb, and whether it ends by announcing a
 * literal. Pure functions on bytes: no I/O, unit-tested (tests/unit/test_imapd_parse.c). */
#ifndef IMAP_PARSE_H
#define IMAP_PARSE_H
#include <stddef.h>
#include <stdint.h>

#include "args.h"

#define IMAP_PARSE_DEPTH 32 /* nested lists at most */

enum imap_head_result {
    IMAP_HEAD_OK = 0,
    IMAP_HEAD_NO_TAG,   /* no valid tag: answered "* BAD" */
    IMAP_HEAD_NO_VERB,  /* a tag but no valid verb: "tag BAD" */
};

/* The tag and verb at the start of a command's first line (uid: it was UID <verb>; verb
 * is then the one after UID). A tag is 1 to IMAP_TAG_MAX ASTRING-CHARs but '+'; a verb 1
 * to IMAP_VERB_MAX letters (upper-cased). *args_at is where the arguments start (after
 * the space), or len if there are none. tag gets the tag even when the verb is bad. */
int imap_parse_head(const char *line, size_t len, char tag[IMAP_TAG_MAX + 1], char verb[IMAP_VERB_MAX + 1], int *uid,
                    size_t *args_at);

/* A literal announced at the end of line (RFC 9051 "{n}", RFC 7888 "{n+}", literal8
 * "~{n}"), at the start of an argument. */
struct imap_literal_head {
    uint64_t size;
    int nonsync;   /* {n+}: its bytes follow without waiting for "+" */
    int literal8;  /* ~{n} */
    size_t at;     /* offset of its '{' (or '~') in line */
};
/* 1 and *lit filled if line ends with a literal's announcement; 0 if not; -1 if it ends
 * like one that is malformed (no digits, more than 19 digits). */
int imap_parse_literal_head(const char *line, size_t len, struct imap_literal_head *lit);

/* Parses a whole command: its lines joined with CRLF and each literal's bytes after its
 * announcement's CRLF, as they came, the last CRLF left off. The literal announced at
 * offset ext_at (SIZE_MAX: none) has no bytes in buf: they went into a file (APPEND's
 * message, ext_size bytes) and its argument is an IMAP_ARG_LITERAL with s "" and len
 * ext_size. On success 0 and cmd filled (free with imap_command_free; append_fd -1,
 * append_size 0); on failure -1, cmd->tag set when it was readable ("" if not), and *err
 * the reason for the BAD. */
int imap_parse_command(const char *buf, size_t len, size_t ext_at, size_t ext_size, struct imap_command *cmd,
                       const char **err);
void imap_command_free(struct imap_command *cmd);

#endif
