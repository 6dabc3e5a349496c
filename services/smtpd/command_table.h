/* smtpd's command table: one row per SMTP verb, saying in which phases of the dialogue it
 * is allowed, what must hold before its handler runs (and the exact reply when it does
 * not), its EHLO keyword and its HELP name. The parser's verbs, the HELP reply, the EHLO
 * reply and every shared precondition come from the rows; a handler only does its own work
 * and replies. EHLO keywords that name no command (PIPELINING, MAIL parameters such as
 * SIZE) are rows of a second, smaller table.
 *
 * Adding a command: a value in enum smtpd_verb (parser.h), a row in command_table.c, and
 * its handler (declared below, written in the file of its concern). Adding an extension
 * keyword: a row of smtpd_extensions[] in command_table.c.
 *
 * The functions here only read the table and a session; they send nothing (commands.c
 * dispatches and replies). */
#ifndef SMTPD_COMMAND_TABLE_H
#define SMTPD_COMMAND_TABLE_H
#include <stddef.h>

#include "parser.h"

struct smtpd_session;

/* Phases of the dialogue (smtpd_session_phase). */
enum {
    SMTPD_PH_INIT = 1, /* no HELO/EHLO yet (again after STARTTLS) */
    SMTPD_PH_HELO = 2, /* greeted with HELO */
    SMTPD_PH_EHLO = 4, /* greeted with EHLO */
    SMTPD_PH_MAIL = 8, /* MAIL accepted: a transaction is open */
};
#define SMTPD_PH_ANY (SMTPD_PH_INIT | SMTPD_PH_HELO | SMTPD_PH_EHLO | SMTPD_PH_MAIL)
#define SMTPD_PH_GREETED (SMTPD_PH_HELO | SMTPD_PH_EHLO) /* after HELO/EHLO, no open transaction */

/* Why a command is refused before its handler runs, in the order they are checked: the
 * first that applies answers. Each has a default reply (command_table.c); a row may give
 * its own. The first four and AUTHENTICATED say whether the client may use the command at
 * all just now: its EHLO keyword is offered exactly when none of them (nor AUTH_REQUIRED)
 * applies. NEED_EHLO is also a check of its own (AUTH's), before AUTHENTICATED: a client
 * greeted with HELO hears "send EHLO first" whatever else is wrong, inside a transaction
 * too, as before the table. */
enum smtpd_refusal {
    SMTPD_REFUSE_NONE = -1,
    SMTPD_REFUSE_NO_TLS_CONFIG, /* needs a TLS certificate configured */
    SMTPD_REFUSE_UNTRUSTED,     /* needs a client that may relay (trusted_networks or AUTH) */
    SMTPD_REFUSE_TLS_ACTIVE,    /* needs TLS not active yet */
    SMTPD_REFUSE_NEED_TLS,      /* needs TLS active */
    SMTPD_REFUSE_NEED_EHLO,     /* needs a client greeted with EHLO; phase: only after EHLO */
    SMTPD_REFUSE_AUTHENTICATED, /* needs a client not authenticated yet */
    SMTPD_REFUSE_ARG,           /* takes no argument */
    SMTPD_REFUSE_NO_ARG,        /* needs an argument */
    SMTPD_REFUSE_IN_TXN,        /* phase: not while a transaction is open */
    SMTPD_REFUSE_NEED_MAIL,     /* phase: only inside a transaction */
    SMTPD_REFUSE_NEED_HELO,     /* phase: only after HELO or EHLO */
    SMTPD_REFUSE_AUTH_REQUIRED, /* on a submission port, only once authenticated */
    SMTPD_REFUSE_COUNT
};

/* smtpd_cmd_row.needs: the checks that apply (the phase check always does). */
#define SMTPD_NEED(r) (1u << (r))
#define SMTPD_NEEDS_TLS_CONFIG SMTPD_NEED(SMTPD_REFUSE_NO_TLS_CONFIG)
#define SMTPD_NEEDS_TRUST SMTPD_NEED(SMTPD_REFUSE_UNTRUSTED)
#define SMTPD_NEEDS_NO_TLS SMTPD_NEED(SMTPD_REFUSE_TLS_ACTIVE)
#define SMTPD_NEEDS_TLS SMTPD_NEED(SMTPD_REFUSE_NEED_TLS)
#define SMTPD_NEEDS_EHLO SMTPD_NEED(SMTPD_REFUSE_NEED_EHLO) /* s->esmtp, in a transaction too */
#define SMTPD_NEEDS_NO_AUTH SMTPD_NEED(SMTPD_REFUSE_AUTHENTICATED)
#define SMTPD_NEEDS_NO_ARG SMTPD_NEED(SMTPD_REFUSE_ARG)
#define SMTPD_NEEDS_ARG SMTPD_NEED(SMTPD_REFUSE_NO_ARG)
#define SMTPD_NEEDS_AUTH_ON_SUBMISSION SMTPD_NEED(SMTPD_REFUSE_AUTH_REQUIRED)

/* smtpd_cmd_row.flags */
enum {
    SMTPD_CMD_COUNTS_AS_ERROR = 1, /* refused by design whatever its arguments (EXPN): the
                                    * answer counts towards smtpd.max_errors */
    SMTPD_CMD_LOG_REFUSALS = 2,    /* every refusal above is logged (else only the policy
                                    * ones: UNTRUSTED, NEED_TLS, AUTH_REQUIRED) */
    SMTPD_CMD_ENVELOPE = 4,        /* MAIL/RCPT: a logged refusal names the address (none
                                    * yet) and counts in postmesh_smtpd_envelope_rejects */
    SMTPD_CMD_LONG_LINE = 8,       /* may use RFC 4954's 12288-octet line (AUTH) */
    SMTPD_CMD_BODY_FOLLOWS = 16,   /* DATA: refused with input already behind it, the session
                                    * ends (a message sent without waiting for 354 would
                                    * otherwise run as commands) */
    SMTPD_CMD_CHUNK_FOLLOWS = 32,  /* BDAT: its octets follow the line whatever the answer; a
                                    * refusal reads them before it is sent (bdat.h) */
};

#define SMTPD_KEYWORD_SIZE 64 /* one EHLO keyword with its parameters */
#define SMTPD_MAX_KEYWORDS 24

/* An EHLO keyword: name with any fixed parameters ("AUTH PLAIN LOGIN"), and params for
 * the ones that depend on the configuration (SIZE: " 36700160"). */
struct smtpd_keyword {
    const char *name; /* NULL: none */
    void (*params)(const struct smtpd_session *s, char *dst, size_t size);
};

struct smtpd_cmd_row {
    const char *verb; /* as the client sends it, in any case */
    enum smtpd_verb id;
    unsigned phases;  /* SMTPD_PH_* it is allowed in */
    unsigned needs;   /* SMTPD_NEEDS_* */
    unsigned flags;   /* SMTPD_CMD_* */
    const char *syntax;               /* usage in its 501 reply: "VRFY address" */
    const char *help;                 /* its name in the HELP reply; NULL: not listed */
    struct smtpd_keyword ehlo;        /* offered while no availability check refuses it */
    const char *reply[SMTPD_REFUSE_COUNT]; /* its own refusal replies, instead of the defaults */
    void (*handler)(struct smtpd_session *s, const struct smtpd_command *c);
    unsigned line_extra; /* octets its parameters may add to the 512 (RFC 3461 4: MAIL 110, RCPT 530) */
};

/* EHLO keywords that name no command; offered when offered() says so (NULL: always). */
struct smtpd_extension {
    struct smtpd_keyword keyword;
    int (*offered)(const struct smtpd_session *s);
};

extern const struct smtpd_cmd_row smtpd_cmd_table[];
extern const size_t smtpd_cmd_table_size;
extern const struct smtpd_extension smtpd_extensions[];
extern const size_t smtpd_extensions_size;

/* The row of a verb (len octets, any case), NULL if none. */
const struct smtpd_cmd_row *smtpd_cmd_find(const char *verb, size_t len);

unsigned smtpd_session_phase(const struct smtpd_session *s);

/* The first check that refuses c (parsed, c->row set) in s, or SMTPD_REFUSE_NONE. */
enum smtpd_refusal smtpd_cmd_refusal(const struct smtpd_session *s, const struct smtpd_command *c);
/* The reply for refusal r of row, and whether it is logged. */
void smtpd_cmd_refusal_reply(const struct smtpd_cmd_row *row, enum smtpd_refusal r, char *dst, size_t size);
int smtpd_cmd_refusal_logged(const struct smtpd_cmd_row *row, enum smtpd_refusal r);
/* May s use the command now, whatever its arguments and the phase (EHLO offers it)? */
int smtpd_cmd_available(const struct smtpd_session *s, const struct smtpd_cmd_row *row);

/* The EHLO keywords for s, in order (extensions, then the commands' own); returns how many. */
int smtpd_ehlo_keywords(const struct smtpd_session *s, char (*kw)[SMTPD_KEYWORD_SIZE], int max);
/* "Commands: HELO EHLO ...": every row with a HELP name, in table order. */
void smtpd_help_text(char *dst, size_t size);

/* The handlers, one per row. */
void smtpd_cmd_helo(struct smtpd_session *s, const struct smtpd_command *c); /* commands.c */
void smtpd_cmd_ehlo(struct smtpd_session *s, const struct smtpd_command *c);
void smtpd_cmd_data(struct smtpd_session *s, const struct smtpd_command *c);
void smtpd_cmd_rset(struct smtpd_session *s, const struct smtpd_command *c);
void smtpd_cmd_noop(struct smtpd_session *s, const struct smtpd_command *c);
void smtpd_cmd_quit(struct smtpd_session *s, const struct smtpd_command *c);
void smtpd_cmd_vrfy(struct smtpd_session *s, const struct smtpd_command *c);
void smtpd_cmd_expn(struct smtpd_session *s, const struct smtpd_command *c);
void smtpd_cmd_help(struct smtpd_session *s, const struct smtpd_command *c);
void smtpd_cmd_starttls(struct smtpd_session *s, const struct smtpd_command *c);
void smtpd_cmd_mail(struct smtpd_session *s, const struct smtpd_command *c); /* envelope.c */
void smtpd_cmd_rcpt(struct smtpd_session *s, const struct smtpd_command *c);
void smtpd_cmd_auth(struct smtpd_session *s, const struct smtpd_command *c); /* auth.c */
void smtpd_cmd_etrn(struct smtpd_session *s, const struct smtpd_command *c); /* etrn.c */
void smtpd_cmd_bdat(struct smtpd_session *s, const struct smtpd_command *c); /* bdat.c */

#endif
