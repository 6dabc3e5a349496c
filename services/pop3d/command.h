/* POP3 command lines (RFC 1939, 2449, 2595, 5034): keyword and arguments, strictly checked
 * before anything acts on them. The keywords and their argument counts are the command
 * table's (command_table.h); this is only the lexical side. */
#ifndef POP3_COMMAND_H
#define POP3_COMMAND_H
#include <stddef.h>

/* RFC 2449: a command line is at most 255 octets with CRLF; we allow a margin. An AUTH
 * continuation line (base64) may be longer. */
#define POP3_MAX_COMMAND_LINE 512
#define POP3_MAX_AUTH_LINE 2048
#define POP3_MAX_ARG 40 /* RFC 1939 */
#define POP3_MAX_PASS 256

enum pop3_verb {
    POP3_UNKNOWN = 0,
    POP3_USER, POP3_PASS, POP3_STAT, POP3_LIST, POP3_RETR, POP3_DELE, POP3_RSET, POP3_NOOP,
    POP3_QUIT, POP3_TOP, POP3_UIDL, POP3_CAPA, POP3_AUTH, POP3_STLS, POP3_APOP,
};

enum pop3_parse_result {
    POP3_PARSE_OK = 0,
    POP3_PARSE_EMPTY,      /* empty line */
    POP3_PARSE_UNKNOWN,    /* not a command we know */
    POP3_PARSE_SYNTAX,     /* known command, wrong arguments */
    POP3_PARSE_BAD_BYTES,  /* NUL or other control characters */
};

struct pop3_command_row;

struct pop3_command {
    enum pop3_verb verb;
    const struct pop3_command_row *row; /* its row in the command table */
    int argc;
    /* PASS keeps the whole rest of the line (spaces included) in argv[0]. */
    char argv[2][POP3_MAX_PASS + 1];
};

/* Parses line[0..len) (without CRLF). Fills cmd; returns a pop3_parse_result. Checks the
 * argument count of each command (not the meaning of the arguments). */
int pop3_parse_command(const char *line, size_t len, struct pop3_command *cmd);

/* A message number: decimal digits only, 1..max. Returns the number or 0 if invalid. */
unsigned long pop3_parse_msgnum(const char *s, unsigned long max);

/* A non-negative decimal (TOP's line count), at most 9 digits. Returns 0 and sets *out, or -1. */
int pop3_parse_count(const char *s, unsigned long *out);

const char *pop3_verb_name(enum pop3_verb v);

#endif
