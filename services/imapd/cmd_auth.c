/* The commands of any state and of Not Authenticated (RFC 9051 §6.1, §6.2): CAPABILITY,
 * NOOP, LOGOUT, ID, ENABLE, NAMESPACE, STARTTLS, LOGIN and AUTHENTICATE PLAIN (SASL-IR,
 * RFC 4959) and LOGIN; and the login itself with pop3d's rules: one uniform failure answer
 * after imapd.auth_delay, a per-address lockout, a cap on password checks in flight (per
 * address here, for the sandbox in the parent), the check done by the privileged parent's
 * helper (passdb.h). Which of them may run when is command_table.c's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base64.h"
#include "clients.h"
#include "folder.h"
#include "log.h"
#include "mailroot.h"
#include "mailstore.h"
#include "metrics.h"
#include "passdb.h"
#include "privchan.h"
#include "sasl_plain.h"
#include "session_int.h"

#define AUTH_FAILED "[AUTHENTICATIONFAILED] Authentication failed."
#define MECH_PLAIN 1
#define MECH_LOGIN 2

void imap_cmd_capability(struct imap_session *s, const struct imap_command *cmd)
{
    char caps[IMAP_CAPABILITY_MAX];
    imap_session_capabilities(s, caps, sizeof caps);
    imap_untagged(s, "CAPABILITY %s", caps);
    imap_tagged(s, cmd, "OK", "Capability completed");
}

/* The folder's news go out in imap_tagged (imap_announce). */
void imap_cmd_noop(struct imap_session *s, const struct imap_command *cmd)
{
    imap_tagged(s, cmd, "OK", "NOOP completed");
}

void imap_cmd_logout(struct imap_session *s, const struct imap_command *cmd)
{
    imap_untagged(s, "BYE Logging out");
    imap_tagged(s, cmd, "OK", "Logout completed");
    imap_close_after_reply(s);
}

/* RFC 2971: NIL or a list of at most 30 string/nstring pairs; what the client says is
 * only checked, never kept. */
void imap_cmd_id(struct imap_session *s, const struct imap_command *cmd)
{
    const struct imap_arg *a = cmd->nargs == 1 ? &cmd->args[0] : NULL;
    int ok = a && (a->type == IMAP_ARG_NIL || (a->type == IMAP_ARG_LIST && a->n % 2 == 0 && a->n <= 60));
    for (size_t i = 0; ok && a->type == IMAP_ARG_LIST && i < a->n; i++)
        ok = a->list[i].type == IMAP_ARG_QUOTED || a->list[i].type == IMAP_ARG_LITERAL ||
             (i % 2 == 1 && a->list[i].type == IMAP_ARG_NIL);
    if (!ok) {
        imap_bad(s, cmd, "Invalid ID arguments");
        return;
    }
    imap_untagged(s, "ID (\"name\" \"Postmesh\")");
    imap_tagged(s, cmd, "OK", "ID completed");
}

/* RFC 5161: none of the extensions ENABLE knows (CONDSTORE, QRESYNC, UTF8=ACCEPT,
 * IMAP4rev2) is offered, so nothing is enabled; an unknown name is ignored, as it says. */
void imap_cmd_enable(struct imap_session *s, const struct imap_command *cmd)
{
    if (cmd->nargs == 0) {
        imap_bad(s, cmd, "ENABLE needs a capability");
        return;
    }
    for (size_t i = 0; i < cmd->nargs; i++)
        if (cmd->args[i].type != IMAP_ARG_ATOM) {
            imap_bad(s, cmd, "Invalid ENABLE arguments");
            return;
        }
    imap_untagged(s, "ENABLED");
    imap_tagged(s, cmd, "OK", "ENABLE completed");
}

void imap_cmd_namespace(struct imap_session *s, const struct imap_command *cmd)
{
    if (cmd->nargs) {
        imap_bad(s, cmd, "NAMESPACE takes no arguments");
        return;
    }
    imap_untagged(s, "NAMESPACE ((\"\" \"/\")) NIL NIL");
    imap_tagged(s, cmd, "OK", "NAMESPACE completed");
}

void imap_cmd_starttls(struct imap_session *s, const struct imap_command *cmd)
{
    if (cmd->nargs) {
        imap_bad(s, cmd, "STARTTLS takes no arguments");
        return;
    }
    imap_start_tls(s, cmd);
}

/* ------------------------------------------------------------------ the login */

static void ignore_answer(int result, void *arg)
{
    (void)result;
    (void)arg;
}

int imap_login_done(struct imap_session *s, const char *user)
{
    char maildir[4096], uv[PM_LOGV_SIZE];
    if (pm_mailroot_maildir(s->srv->mail_root, user, maildir, sizeof maildir) < 0 || pm_mailstore_create(maildir) < 0) {
        int err = errno;
        pm_log(PM_ERR, "event=mailbox_error session=%llu user=%s error=\"%s\"", s->id, PM_LV(uv, user), strerror(err));
        /* Made by someone else (root, by hand)? The parent hands it back to the store's users for next time. */
        if (err == EACCES || err == EPERM)
            pm_priv_request(s->srv->priv, PM_PRIV_MAILBOX_REPAIR, user, NULL, ignore_answer, NULL);
        return -1;
    }
    s->login = strdup(user);
    s->maildir = strdup(maildir);
    if (!s->login || !s->maildir) {
        free(s->login);
        free(s->maildir);
        s->login = s->maildir = NULL;
        return -1;
    }
    if (imap_folders_init(maildir) < 0)
        pm_log(PM_WARN, "event=folders_init_failed session=%llu user=%s error=\"%s\"", s->id, PM_LV(uv, user),
               strerror(errno));
    imap_set_timeouts(s); /* imapd.idle_timeout from now on */
    pm_log(PM_INFO, "event=login session=%llu client=%s user=%s tls=%d", s->id, s->client, PM_LV(uv, user), s->tls);
    return 0;
}

static void login_result(const char *result)
{
    pm_metric_add(PM_M_IMAPD_LOGINS, 1, result, NULL);
}

/* The parent answered (or could not): finish the login; input goes on after it. */
static void login_answered(void *arg, int ok)
{
    struct imap_session *s = arg;
    char uv[PM_LOGV_SIZE];
    char *user = s->checking_user;
    s->checking_user = NULL;
    s->authreq = NULL; /* answered: nothing to cancel */
    imap_auth_over(s);
    if (ok == PM_PRIV_BUSY || ok < 0) {
        if (ok == PM_PRIV_BUSY)
            pm_log(PM_WARN, "event=auth_busy session=%llu client=%s reason=helpers_in_flight user=%s", s->id,
                   s->client, PM_LV(uv, user));
        login_result("unavailable");
        imap_tagged(s, s->cmd, "NO", "%s",
                    ok == PM_PRIV_BUSY ? "[UNAVAILABLE] Too many logins in progress, try again later"
                                       : "[UNAVAILABLE] Authentication is unavailable, try again later");
    } else if (!ok) {
        s->auth_failures++;
        int locked = pm_clients_auth_failed(s->srv->clients, s->peer, time(NULL));
        pm_log(PM_WARN, "event=auth_failed session=%llu client=%s user=%s failures=%d%s", s->id, s->client,
               PM_LV(uv, user), s->auth_failures, locked ? " locked_out=1" : "");
        login_result("failed");
        imap_delay_tagged(s, AUTH_FAILED, locked || s->auth_failures >= IMAP_MAX_AUTH_FAILURES);
    } else if (imap_login_done(s, user) < 0) {
        login_result("unavailable");
        imap_tagged(s, s->cmd, "NO", "[UNAVAILABLE] Cannot open the mailbox, try again later");
    } else {
        char caps[IMAP_CAPABILITY_MAX];
        imap_session_capabilities(s, caps, sizeof caps);
        login_result("ok");
        imap_tagged(s, s->cmd, "OK", "[CAPABILITY %s] Logged in", caps);
    }
    free(user);
}

static void login(struct imap_session *s, const struct imap_command *cmd, const char *user, const char *password)
{
    char uv[PM_LOGV_SIZE];
    if (pm_clients_auth_locked(s->srv->clients, s->peer, time(NULL))) {
        pm_log(PM_WARN, "event=auth_locked_out session=%llu client=%s user=%s", s->id, s->client, PM_LV(uv, user));
        login_result("locked_out");
        imap_delay_tagged(s, "[UNAVAILABLE] Too many failed logins from your address, try again later", 1);
        return;
    }
    if (!pm_clients_auth_begin(s->srv->clients, s->peer)) {
        pm_log(PM_WARN, "event=auth_busy session=%llu client=%s reason=per_client limit=%d user=%s", s->id, s->client,
               IMAP_AUTH_PER_CLIENT, PM_LV(uv, user));
        imap_tagged(s, cmd, "NO", "[UNAVAILABLE] Too many logins in progress from your address, try again later");
        return;
    }
    s->auth_running = 1;
    /* The hash is the privileged parent's: the command waits for its answer. */
    s->checking_user = strdup(user);
    s->authreq = s->checking_user ? pm_passdb_verify(s->srv->priv, user, password, login_answered, s) : NULL;
    if (!s->authreq) {
        imap_auth_over(s);
        free(s->checking_user);
        s->checking_user = NULL;
        login_result("unavailable");
        imap_tagged(s, cmd, "NO", "[UNAVAILABLE] Authentication is unavailable, try again later");
    }
}

/* A user name or password argument: a string of 1..IMAP_MAX_USER bytes without NUL. */
static int credential(const struct imap_arg *a)
{
    return (imap_arg_is_string(a) || a->type == IMAP_ARG_NIL) && a->len <= IMAP_MAX_USER &&
           strlen(a->s) == a->len;
}

void imap_cmd_login(struct imap_session *s, const struct imap_command *cmd)
{
    if (cmd->nargs != 2 || !credential(&cmd->args[0]) || !credential(&cmd->args[1]) || cmd->args[0].len == 0) {
        imap_bad(s, cmd, "Invalid LOGIN arguments");
        return;
    }
    login(s, cmd, cmd->args[0].s, cmd->args[1].s);
}

/* base64 of at most IMAP_MAX_USER bytes, NUL-free, into dst (IMAP_MAX_USER + 1). */
static int decode_word(const char *b64, size_t len, char *dst)
{
    long n = pm_base64_decode(b64, len, (unsigned char *)dst, IMAP_MAX_USER);
    if (n < 0 || memchr(dst, '\0', (size_t)n))
        return -1;
    dst[n] = '\0';
    return 0;
}

static void auth_plain(struct imap_session *s, const char *b64, size_t len)
{
    char user[IMAP_MAX_USER + 1], pass[IMAP_MAX_USER + 1];
    if (len == 1 && b64[0] == '=')
        len = 0; /* RFC 4959: "=" is an empty initial response */
    if (pm_sasl_plain(b64, len, user, sizeof user, pass, sizeof pass) < 0 || !user[0]) {
        imap_bad(s, s->cmd, "Invalid AUTHENTICATE PLAIN response");
        return;
    }
    login(s, s->cmd, user, pass);
    explicit_bzero(pass, sizeof pass);
}

/* AUTHENTICATE LOGIN (the draft every client knows): the user name, then the password,
 * each asked for with its base64 prompt. */
static void auth_login(struct imap_session *s, const char *b64, size_t len)
{
    char word[IMAP_MAX_USER + 1];
    if (decode_word(b64, len, word) < 0 || (!s->auth_user && !word[0])) {
        imap_bad(s, s->cmd, "Invalid AUTHENTICATE LOGIN response");
        return;
    }
    if (!s->auth_user) {
        if (!(s->auth_user = strdup(word))) {
            imap_tagged(s, s->cmd, "NO", "[UNAVAILABLE] Out of memory");
            return;
        }
        imap_continue(s, PH_CONTINUE, "UGFzc3dvcmQ6"); /* "Password:" */
        return;
    }
    char *user = s->auth_user;
    s->auth_user = NULL;
    login(s, s->cmd, user, word);
    explicit_bzero(word, sizeof word);
    free(user);
}

void imap_auth_continue(struct imap_session *s, const char *line, size_t len)
{
    s->phase = PH_RUNNING;
    if (len == 1 && line[0] == '*') {
        free(s->auth_user);
        s->auth_user = NULL;
        imap_bad(s, s->cmd, "Authentication cancelled");
        return;
    }
    if (s->auth_mech == MECH_PLAIN)
        auth_plain(s, line, len);
    else
        auth_login(s, line, len);
}

void imap_cmd_authenticate(struct imap_session *s, const struct imap_command *cmd)
{
    const struct imap_arg *ir = cmd->nargs == 2 ? &cmd->args[1] : NULL;
    if (cmd->nargs < 1 || cmd->nargs > 2 || cmd->args[0].type != IMAP_ARG_ATOM || (ir && ir->type != IMAP_ARG_ATOM)) {
        imap_bad(s, cmd, "Invalid AUTHENTICATE arguments");
        return;
    }
    if (imap_arg_is_atom(&cmd->args[0], "PLAIN"))
        s->auth_mech = MECH_PLAIN;
    else if (imap_arg_is_atom(&cmd->args[0], "LOGIN"))
        s->auth_mech = MECH_LOGIN;
    else {
        imap_tagged(s, cmd, "NO", "Unsupported authentication mechanism");
        return;
    }
    free(s->auth_user);
    s->auth_user = NULL;
    if (!ir) {
        imap_continue(s, PH_CONTINUE, s->auth_mech == MECH_PLAIN ? "" : "VXNlcm5hbWU6"); /* "Username:" */
        return;
    }
    if (s->auth_mech == MECH_PLAIN)
        auth_plain(s, ir->s, ir->len);
    else if (ir->len == 1 && ir->s[0] == '=')
        imap_bad(s, cmd, "Invalid AUTHENTICATE LOGIN response");
    else
        auth_login(s, ir->s, ir->len);
}
