/* A parsed IMAP command (RFC 9051 §2.2, §4): tag, verb and a tree of arguments, made by
 * parse.c from one command's bytes (lines and literals, already read whole by session.c)
 * and read by every handler. The parser knows nothing of any verb's grammar: it makes the
 * generic tree and the handlers (and fetch_atts.c, search.c, seqset.c) read their grammar
 * off it.
 *
 * Atoms keep IMAP's bracket rule: inside '[' ... ']' every byte but CR, LF and NUL belongs
 * to the atom, spaces and parentheses included, so BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.512>
 * is one ATOM whose text is exactly that. */
#ifndef IMAP_ARGS_H
#define IMAP_ARGS_H
#include <stddef.h>

enum imap_arg_type {
    IMAP_ARG_ATOM,    /* also numbers, sequence sets, flags (\Seen), NIL is IMAP_ARG_NIL */
    IMAP_ARG_QUOTED,  /* "..." with its escapes undone */
    IMAP_ARG_LITERAL, /* {n} / {n+} / ~{n}: n bytes, may hold NUL (literal8 == 1 for ~{n}) */
    IMAP_ARG_LIST,    /* ( ... ) */
    IMAP_ARG_NIL,     /* the atom NIL, any case */
};

struct imap_arg {
    enum imap_arg_type type;
    const char *s;          /* ATOM, QUOTED, LITERAL: the bytes, NUL-terminated after len */
    size_t len;
    struct imap_arg *list;  /* LIST: its elements */
    size_t n;               /* LIST: how many */
    int literal8;           /* LITERAL given as ~{n} (RFC 3516 / 9051 literal8) */
};

/* A string argument (atom, quoted or literal: RFC 9051 "astring"): 1 if arg is one. */
int imap_arg_is_string(const struct imap_arg *arg);
/* An atom equal (ASCII case-insensitive) to word. */
int imap_arg_is_atom(const struct imap_arg *arg, const char *word);

#define IMAP_TAG_MAX 64     /* longer tags are answered "* BAD" */
#define IMAP_VERB_MAX 32

struct imap_command {
    char tag[IMAP_TAG_MAX + 1];
    char verb[IMAP_VERB_MAX + 1]; /* upper-cased; "UID FETCH" is verb "FETCH" with uid = 1 */
    int uid;
    struct imap_arg *args;        /* the arguments after the verb */
    size_t nargs;
    /* APPEND: the message literal is not in args but in a file session.c streamed it into
     * (bounded by imapd.max_message_size): append_fd >= 0 with append_size bytes, and the
     * args hold everything else of the command (mailbox, flags, date) with the place of
     * the literal marked by an IMAP_ARG_LITERAL whose s is "" and len is append_size. A
     * MULTIAPPEND (RFC 3502) is not offered, so there is at most one. */
    int append_fd;
    size_t append_size;
    /* Its path (in the user's Maildir/tmp, a Maildir unique name): the handler renames or
     * links it into the folder; whatever is still there when the command ends is unlinked
     * by session.c. NULL when there is no message literal. */
    const char *append_path;
    void *mem; /* parse.c's: the bytes the arguments point into */
};

#endif
