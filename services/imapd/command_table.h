/* imapd's command table: one row per IMAP verb with the states it is allowed in, its flags
 * and its handler. The dispatcher refuses what the state mask and the flags refuse (a
 * tagged BAD or NO, counted as an error), CAPABILITY is made from the session's view of
 * the rules, and a handler only does its own work and replies (imap_tagged or imap_yield,
 * session_int.h). The shape is pop3d's (services/pop3d/command_table.h).
 *
 * Adding a command: a row in command_table.c and its handler, declared here and written in
 * the file the comment beside it names. UID FETCH and the other UID forms run the row of
 * the verb after UID (it must have IMAP_F_UID) with cmd->uid = 1. */
#ifndef IMAP_COMMAND_TABLE_H
#define IMAP_COMMAND_TABLE_H
#include <stddef.h>

#include "args.h"

/* RFC 9051 §3 states, one bit each, in the order a session goes through them. */
enum imap_state_bit {
    IMAP_S_NOTAUTH = 1u << 0,  /* Not Authenticated */
    IMAP_S_AUTH = 1u << 1,     /* Authenticated, no folder selected */
    IMAP_S_SELECTED = 1u << 2, /* a folder is selected (SELECT or EXAMINE) */
};
#define IMAP_S_LOGGED_IN (IMAP_S_AUTH | IMAP_S_SELECTED)
#define IMAP_S_ANY (IMAP_S_NOTAUTH | IMAP_S_LOGGED_IN)

enum imap_command_flag {
    /* The rules: refused when they do not hold. */
    IMAP_F_CLEAR = 1u << 0,     /* the session is not TLS yet (STARTTLS) */
    IMAP_F_TLS_PAIR = 1u << 1,  /* the server has a TLS pair (STARTTLS) */
    IMAP_F_SECURE = 1u << 2,    /* a password may be sent: TLS, or loopback when allowed */
    /* May be prefixed by UID (the handler sees cmd->uid = 1). */
    IMAP_F_UID = 1u << 3,
    /* RFC 9051 §7.5.1: no untagged EXPUNGE at the end of this command unless it is the UID
     * form (FETCH, STORE, SEARCH): a client counting sequence numbers would be misled. */
    IMAP_F_NO_EXPUNGE = 1u << 4,
    /* The session streams the message literal into a file (APPEND; args.h append_fd). */
    IMAP_F_APPEND = 1u << 5,
    /* No folder updates before its tagged reply (LOGOUT: they would follow the BYE). */
    IMAP_F_NO_UPDATES = 1u << 6,
};

struct imap_session;
typedef void imap_handler(struct imap_session *s, const struct imap_command *cmd);

struct imap_command_row {
    const char *name;
    unsigned states; /* IMAP_S_* where it is allowed */
    unsigned flags;  /* IMAP_F_* */
    imap_handler *handler;
};

extern const struct imap_command_row imap_commands[];
extern const size_t imap_ncommands;

/* The row of a verb (case-insensitive), NULL if none. "UID" has no row. */
const struct imap_command_row *imap_command_find(const char *name, size_t len);

/* What the rules look at in a session (command_table.c makes it from one). */
struct imap_rules_view {
    unsigned state; /* one IMAP_S_* */
    int tls;        /* the session is TLS */
    int tls_pair;   /* the server has a TLS pair */
    int secure;     /* a password may be sent now (imap_auth_allowed) */
};

/* NULL if row may run in v (uid: the command came as UID <verb>), else the tagged reply's
 * status and text ("BAD", "NO") for the refusal; it counts as an error. */
const char *imap_command_refusal(const struct imap_command_row *row, int uid, const struct imap_rules_view *v,
                                 const char **status);

/* The CAPABILITY list for v (no leading or trailing space), into dst; "" if it does not
 * fit (it always does in IMAP_CAPABILITY_MAX). */
#define IMAP_CAPABILITY_MAX 512
void imap_capability_list(const struct imap_rules_view *v, char *dst, size_t size);

/* Runs a parsed command in s: refused by the table, or its handler. */
void imap_dispatch(struct imap_session *s, const struct imap_command *cmd);

/* The handlers of the rows, each with the file that writes it. A handler runs only where
 * its row allows it and ends with imap_tagged (or imap_bad), or imap_yield. */
imap_handler imap_cmd_capability, imap_cmd_noop, imap_cmd_logout, imap_cmd_starttls, imap_cmd_login,
    imap_cmd_authenticate, imap_cmd_id, imap_cmd_enable, imap_cmd_namespace; /* cmd_auth.c (core) */
imap_handler imap_cmd_idle;                                                /* idle.c (core) */
imap_handler imap_cmd_select, imap_cmd_examine, imap_cmd_close, imap_cmd_unselect,
    imap_cmd_check;                                                        /* cmd_select.c (boxcmds) */
imap_handler imap_cmd_create, imap_cmd_delete, imap_cmd_rename, imap_cmd_subscribe, imap_cmd_unsubscribe,
    imap_cmd_list, imap_cmd_lsub, imap_cmd_status; /* cmd_mailbox.c, LIST and LSUB cmd_list.c (boxcmds) */
imap_handler imap_cmd_append;                                              /* cmd_append.c (boxcmds) */
imap_handler imap_cmd_fetch;                                               /* cmd_fetch.c (msgcmds) */
imap_handler imap_cmd_store;                                               /* cmd_store.c (msgcmds) */
imap_handler imap_cmd_search;                                              /* cmd_search.c (msgcmds) */
imap_handler imap_cmd_copy, imap_cmd_move;                                 /* cmd_copy.c (msgcmds) */
imap_handler imap_cmd_expunge;                                             /* cmd_expunge.c (msgcmds) */

#endif
