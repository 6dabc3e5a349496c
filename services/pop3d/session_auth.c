/* The AUTHORIZATION handlers (STLS, USER/PASS, AUTH PLAIN, APOP refused), and the login
 * itself with its uniform failure answer, delay, per-IP lockout, the cap on password checks
 * in flight (per address here, for the whole sandbox in the parent) and the exclusive
 * mailbox lock. Which of them may run when is command_table.c's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clients.h"
#include "log.h"
#include "mailroot.h"
#include "mailstore.h"
#include "passdb.h"
#include "privchan.h"
#include "sasl.h"
#include "session_int.h"

#define AUTH_FAILED "-ERR [AUTH] invalid user name or password"

static void ignore_answer(int result, void *arg)
{
    (void)result;
    (void)arg;
}

/* The password is right: take the mailbox (exclusively) and enter TRANSACTION. */
static void open_mailbox(struct pop3_session *s, const char *user)
{
    char maildir[4096], uv[PM_LOGV_SIZE];
    struct pop3_maildrop *drop = NULL;
    int rc = POP3_DROP_ERROR;
    if (pm_mailroot_maildir(s->srv->mail_root, user, maildir, sizeof maildir) == 0 && pm_mailstore_create(maildir) == 0)
        rc = pop3_maildrop_open(maildir, &drop);
    if (rc == POP3_DROP_LOCKED) {
        pm_log(PM_INFO, "event=login_in_use session=%llu client=%s user=%s", s->id, s->client, PM_LV(uv, user));
        pop3_reply(s, "-ERR [IN-USE] mailbox is locked by another session");
        return;
    }
    if (rc != POP3_DROP_OK) {
        int err = errno;
        pm_log(PM_ERR, "event=mailbox_error session=%llu user=%s error=\"%s\"", s->id, PM_LV(uv, user), strerror(err));
        /* Made by someone else (root, by hand)? The parent hands it back to the store's users for next time. */
        if (err == EACCES || err == EPERM)
            pm_priv_request(s->srv->priv, PM_PRIV_MAILBOX_REPAIR, user, NULL, ignore_answer, NULL);
        pop3_reply(s, "-ERR [SYS/TEMP] cannot open the mailbox, try again later");
        return;
    }
    size_t count;
    unsigned long long octets;
    pop3_maildrop_stat(drop, &count, &octets);
    s->drop = drop;
    s->state = ST_TRANSACTION;
    snprintf(s->login, sizeof s->login, "%s", user);
    pm_log(PM_INFO, "event=login session=%llu client=%s user=%s tls=%d messages=%zu octets=%llu", s->id, s->client,
           PM_LV(uv, user), s->tls, count, octets);
    pop3_reply(s, "+OK %zu messages (%llu octets)", count, octets);
}

/* The parent answered (or could not): finish the login and go on with pipelined input. */
static void login_answered(void *arg, int ok)
{
    struct pop3_session *s = arg;
    char uv[PM_LOGV_SIZE];
    char *user = s->checking_user;
    s->checking_user = NULL;
    s->authreq = NULL; /* answered: nothing to cancel */
    pop3_auth_over(s);
    s->wait = WAIT_NONE;
    if (ok == PM_PRIV_BUSY) {
        pm_log(PM_WARN, "event=auth_busy session=%llu client=%s reason=helpers_in_flight user=%s", s->id, s->client,
               PM_LV(uv, user));
        pop3_reply(s, "-ERR [SYS/TEMP] too many logins in progress, try again later");
    } else if (ok < 0) {
        pop3_reply(s, "-ERR [SYS/TEMP] authentication is unavailable, try again later");
    } else if (!ok) {
        s->auth_failures++;
        int locked = pm_clients_auth_failed(s->srv->clients, s->peer, time(NULL));
        pm_log(PM_WARN, "event=auth_failed session=%llu client=%s user=%s failures=%d%s", s->id, s->client,
               PM_LV(uv, user), s->auth_failures, locked ? " locked_out=1" : "");
        pop3_delay_reply(s, AUTH_FAILED, locked || s->auth_failures >= POP3_MAX_AUTH_FAILURES);
        free(user);
        return; /* the delay timer resumes reading */
    } else {
        open_mailbox(s, user);
    }
    free(user);
    pop3_resume_input(s);
}

static void login(struct pop3_session *s, const char *user, const char *password)
{
    char uv[PM_LOGV_SIZE];
    if (pm_clients_auth_locked(s->srv->clients, s->peer, time(NULL))) {
        pm_log(PM_WARN, "event=auth_locked_out session=%llu client=%s user=%s", s->id, s->client, PM_LV(uv, user));
        pop3_delay_reply(s, "-ERR [SYS/TEMP] too many failed logins from your address, try again later", 1);
        return;
    }
    if (!pm_clients_auth_begin(s->srv->clients, s->peer)) {
        pm_log(PM_WARN, "event=auth_busy session=%llu client=%s reason=per_client limit=%d user=%s", s->id, s->client,
               POP3_AUTH_PER_CLIENT, PM_LV(uv, user));
        pop3_reply(s, "-ERR [SYS/TEMP] too many logins in progress from your address, try again later");
        return;
    }
    s->auth_running = 1;
    /* The hash is the privileged parent's: wait for its answer, reading paused. */
    s->checking_user = strdup(user);
    s->authreq = s->checking_user ? pm_passdb_verify(s->srv->priv, user, password, login_answered, s) : NULL;
    if (!s->authreq) {
        pop3_auth_over(s);
        free(s->checking_user);
        s->checking_user = NULL;
        pop3_reply(s, "-ERR [SYS/TEMP] authentication is unavailable, try again later");
        return;
    }
    s->wait = WAIT_AUTH_CHECK;
    bufferevent_disable(s->bev, EV_READ);
}

static void auth_plain(struct pop3_session *s, const char *b64, size_t len)
{
    char user[POP3_MAX_PASS + 1], pass[POP3_MAX_PASS + 1];
    if (len == 1 && b64[0] == '=')
        len = 0; /* RFC 5034: "=" is an empty initial response */
    if (pop3_sasl_plain(b64, len, user, sizeof user, pass, sizeof pass) < 0) {
        pop3_bad_command(s, "-ERR [AUTH] malformed AUTH PLAIN response");
        return;
    }
    login(s, user, pass);
    explicit_bzero(pass, sizeof pass);
}

void pop3_auth_response(struct pop3_session *s, const char *line, size_t len)
{
    s->wait = WAIT_NONE;
    if (len == 1 && line[0] == '*') {
        pop3_bad_command(s, "-ERR authentication cancelled");
        return;
    }
    auth_plain(s, line, len);
}

void pop3_cmd_auth(struct pop3_session *s, const struct pop3_command *cmd)
{
    if (cmd->argc == 0) {
        /* Not in RFC 5034, but widely used by clients to list mechanisms. */
        pop3_reply(s, "+OK");
        if (pop3_auth_allowed(s))
            pop3_reply(s, POP3_SASL_MECHANISMS);
        pop3_reply(s, ".");
        return;
    }
    if (strcasecmp(cmd->argv[0], "PLAIN") != 0) {
        pop3_bad_command(s, "-ERR unsupported authentication mechanism");
        return;
    }
    if (!pop3_auth_allowed(s)) {
        pop3_bad_command(s, "-ERR [AUTH] authentication requires TLS (use STLS)");
        return;
    }
    if (cmd->argc == 2) {
        auth_plain(s, cmd->argv[1], strlen(cmd->argv[1]));
    } else {
        pop3_reply(s, "+ ");
        s->wait = WAIT_AUTH_RESPONSE;
    }
}

void pop3_cmd_stls(struct pop3_session *s, const struct pop3_command *cmd)
{
    (void)cmd;
    pop3_start_tls(s);
}

void pop3_cmd_user(struct pop3_session *s, const struct pop3_command *cmd)
{
    snprintf(s->user, sizeof s->user, "%s", cmd->argv[0]);
    s->have_user = 1;
    pop3_reply(s, "+OK send PASS"); /* the same for every name: USER reveals nothing */
}

void pop3_cmd_pass(struct pop3_session *s, const struct pop3_command *cmd)
{
    s->have_user = 0;
    login(s, s->user, cmd->argv[0]);
}

void pop3_cmd_apop(struct pop3_session *s, const struct pop3_command *cmd)
{
    (void)cmd;
    pop3_bad_command(s, "-ERR APOP is not supported");
}
