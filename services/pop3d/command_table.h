/* pop3d's command table: one row per POP3 verb with its argument counts, the states it is
 * allowed in, its flags, its CAPA line and its handler. The parser (command.c) reads names
 * and argument counts from it, the dispatcher refuses what the state mask and the flags
 * refuse (with the exact -ERR, counted as an error), and CAPA is made from it; a handler
 * only does its own work and replies. The shape is smtpd's (services/smtpd/command_table.h):
 * verb, allowed states, flags, advertised keyword, handler, and a short list of the
 * capabilities that name no verb.
 *
 * Adding a command: a value in enum pop3_verb (command.h), a row in command_table.c, and
 * its handler (declared in session_int.h, written in session_auth.c before login or
 * session_trans.c after it). Adding a capability that names no verb: server_capa[] in
 * command_table.c. */
#ifndef POP3_COMMAND_TABLE_H
#define POP3_COMMAND_TABLE_H
#include <stddef.h>

#include "command.h"

/* Where a session is (RFC 1939 states, AUTHORIZATION split at USER), one bit each, in the
 * order a session goes through them; a row's states is a mask of them. */
enum pop3_state_bit {
    POP3_S_AUTH = 1u << 0,  /* AUTHORIZATION, no USER given */
    POP3_S_USER = 1u << 1,  /* AUTHORIZATION after USER: PASS may follow */
    POP3_S_TRANS = 1u << 2, /* TRANSACTION (logged in; QUIT enters UPDATE) */
};
#define POP3_S_AUTHORIZATION (POP3_S_AUTH | POP3_S_USER)
#define POP3_S_ANY (POP3_S_AUTHORIZATION | POP3_S_TRANS)

enum pop3_command_flag {
    /* The rules: refused, and left out of CAPA, when they do not hold. */
    POP3_F_SECURE = 1u << 0,    /* a password may be sent: TLS, or loopback when allowed */
    POP3_F_CLEAR = 1u << 1,     /* the session is not TLS yet */
    POP3_F_TLS_PAIR = 1u << 2,  /* the server has a TLS pair */
    /* In CAPA only where a password may be sent; the handler refuses what needs one (AUTH:
     * listing the mechanisms is fine in the clear, and an unknown one is said so first). */
    POP3_F_CAPA_SECURE = 1u << 3,
    /* The parser's: the argument is the rest of the line, spaces included (RFC 1939 PASS). */
    POP3_F_ARG_REST = 1u << 4,
    /* The parser's: arguments up to POP3_MAX_PASS, not 40 (an address, a SASL response). */
    POP3_F_ARG_LONG = 1u << 5,
};

struct pop3_session;
typedef void pop3_handler(struct pop3_session *s, const struct pop3_command *cmd);

struct pop3_command_row {
    const char *name;
    enum pop3_verb verb;
    int min_args, max_args;
    unsigned states;     /* POP3_S_* where it is allowed */
    unsigned flags;      /* POP3_F_* */
    const char *capa;    /* its CAPA line (RFC 2449), NULL: none */
    pop3_handler *handler;
};

extern const struct pop3_command_row pop3_commands[];
extern const size_t pop3_ncommands;

/* The row of a keyword (case-insensitive), NULL if none. */
const struct pop3_command_row *pop3_command_find(const char *name, size_t len);

/* What the rules look at in a session (command_table.c makes it from one). */
struct pop3_view {
    unsigned state; /* one POP3_S_* */
    int tls;        /* the session is TLS */
    int tls_pair;   /* the server has a TLS pair */
    int secure;     /* a password may be sent now (pop3_auth_allowed) */
};

/* NULL if row may run in v, else the -ERR line the client gets (it counts as an error). */
const char *pop3_command_refusal(const struct pop3_command_row *row, const struct pop3_view *v);

/* The CAPA lines for v, between "+OK ..." and ".": every row's capa that the session can
 * still use (allowed now or in a state to come, its rules holding), then the server's. */
void pop3_capa_lines(const struct pop3_view *v, void (*line)(void *arg, const char *text), void *arg);

/* Runs a parsed command in s: refused by the table, or its handler. */
void pop3_dispatch(struct pop3_session *s, const struct pop3_command *cmd);

#endif
