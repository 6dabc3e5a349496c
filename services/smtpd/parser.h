/* SMTP command parsing: pure functions over one command line (line end removed). Errors
 * come back as the complete reply line to send, so the tests check exact replies. The
 * verbs are the command table's (command_table.h). */
#ifndef SMTPD_PARSER_H
#define SMTPD_PARSER_H
#include <stddef.h>

#include "addr.h"
#include "dsn_params.h"

/* RFC 5321 4.5.3.1: command lines up to 512 octets with CRLF, text lines up to 1000;
 * RFC 4954 4: AUTH lines (initial response, continuations) up to 12288. */
#define SMTPD_MAX_COMMAND_LINE 512
#define SMTPD_MAX_AUTH_LINE 12288
#define SMTPD_MAX_TEXT_LINE 1000

enum smtpd_verb {
    SMTPD_CMD_UNKNOWN,
    SMTPD_CMD_HELO,
    SMTPD_CMD_EHLO,
    SMTPD_CMD_MAIL,
    SMTPD_CMD_RCPT,
    SMTPD_CMD_DATA,
    SMTPD_CMD_RSET,
    SMTPD_CMD_NOOP,
    SMTPD_CMD_QUIT,
    SMTPD_CMD_VRFY,
    SMTPD_CMD_EXPN,
    SMTPD_CMD_HELP,
    SMTPD_CMD_STARTTLS,
    SMTPD_CMD_AUTH,
    SMTPD_CMD_ETRN,
    SMTPD_CMD_BDAT,
    SMTPD_CMD_FORBIDDEN, /* an HTTP/proxy request sent to the SMTP port: hang up */
    SMTPD_CMD_BADCHAR,   /* NUL, bare CR or other control octets in the line */
};

struct smtpd_cmd_row;

struct smtpd_command {
    enum smtpd_verb verb;
    const struct smtpd_cmd_row *row; /* the verb's row in the command table, NULL if none */
    const char *arg; /* after the verb and its space, trailing blanks removed */
    size_t arglen;
};

void smtpd_parse_command(const char *line, size_t len, struct smtpd_command *cmd);

/* "MAIL", or "unknown" / "forbidden" / "badchar" (the fuzz harness checks every verb has one). */
const char *smtpd_verb_name(enum smtpd_verb v);

struct smtpd_mail_params {
    int has_size;
    unsigned long long size; /* SIZE=, saturated */
    int body_8bit;           /* BODY=8BITMIME */
    int smtputf8;            /* SMTPUTF8 */
    int requiretls;          /* REQUIRETLS (RFC 8689 2; whether TLS is up is the caller's check) */
    struct smtpd_dsn_mail dsn; /* RET=, ENVID= (dsn_params.h) */
};

/* "FROM:<path> params". 0 on success, else -1 and the reply line in reply. */
int smtpd_parse_mail(const char *arg, size_t len, struct pm_addr *addr, struct smtpd_mail_params *p, char *reply,
                     size_t replysize);

/* "TO:<path>". smtputf8: the transaction announced SMTPUTF8. 0 or -1 and the reply. */
int smtpd_parse_rcpt(const char *arg, size_t len, int smtputf8, struct pm_addr *addr, char *reply, size_t replysize);
/* The same with its parameters (NOTIFY=, ORCPT=) into dsn. */
int smtpd_parse_rcpt_dsn(const char *arg, size_t len, int smtputf8, struct pm_addr *addr, struct smtpd_dsn_rcpt *dsn,
                         char *reply, size_t replysize);

/* The EHLO/HELO argument: one printable word (domain or address literal), <= 255. */
int smtpd_helo_valid(const char *arg, size_t len);

#endif
