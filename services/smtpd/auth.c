/* SMTP AUTH (RFC 4954) with PLAIN and LOGIN, only over TLS (when it may be used is the
 * command table's). The password check goes through authdb.h to the privileged parent;
 * failures are answered after smtpd.auth_fail_delay_ms and counted per client IP, and too
 * many lock that IP out of AUTH for smtpd.auth_lockout seconds. Checks are costly on
 * purpose, so few run at once: SMTPD_AUTH_PER_CLIENT per client address and
 * SMTPD_AUTH_IN_FLIGHT at the parent's password helpers; beyond either, 454 4.7.0 at once
 * (RFC 4954: a temporary failure, the client tries again later). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "authdb.h"
#include "clients.h"
#include "command_table.h"
#include "log.h"
#include "privchan.h"
#include "sasl.h"
#include "session.h"

#define MAX_USER 512
#define MAX_PASS 1024

static void to_command(struct smtpd_session *s)
{
    free(s->login_user);
    s->login_user = NULL;
    if (s->state != SMTPD_ST_CLOSING)
        s->state = SMTPD_ST_COMMAND;
}

/* The check is over (answered or abandoned): its client's turn is free again. */
static void check_over(struct smtpd_session *s)
{
    if (s->auth_running)
        pm_clients_auth_end(s->srv->clients, s->client);
    s->auth_running = 0;
}

static void auth_done(void *arg, int ok)
{
    struct smtpd_session *s = arg;
    struct smtpd_server *srv = s->srv;
    char u[PM_LOGV_SIZE];
    s->authreq = NULL;
    check_over(s);
    if (ok < 0) { /* nobody could check: not the client's fault, not counted */
        if (ok == PM_PRIV_BUSY)
            pm_log(PM_WARN, "event=auth_busy client=%s reason=helpers_in_flight user=%s", s->peer,
                   PM_LV(u, s->auth_pending_user));
        else
            pm_log(PM_WARN, "event=auth client=%s result=tempfail user=%s", s->peer, PM_LV(u, s->auth_pending_user));
        free(s->auth_pending_user);
        s->auth_pending_user = NULL;
        to_command(s);
        smtpd_reply_error(s, "454 4.7.0 Temporary authentication failure");
        smtpd_session_resume(s);
        smtpd_session_settle(s);
        return;
    }
    if (ok) {
        pm_log(PM_INFO, "event=auth client=%s result=ok user=%s", s->peer, PM_LV(u, s->auth_pending_user));
        s->auth_user = s->auth_pending_user;
        s->auth_pending_user = NULL;
        smtpd_reply(s, "235 2.7.0 Authentication successful");
        to_command(s);
        smtpd_session_resume(s);
        smtpd_session_settle(s);
        return;
    }
    int locked = pm_clients_auth_failed(srv->clients, s->client, time(NULL));
    pm_log(PM_WARN, "event=auth client=%s result=fail user=%s%s", s->peer, PM_LV(u, s->auth_pending_user),
           locked ? " lockout=start" : "");
    /* Answer later: slows down password guessing without blocking anybody else. */
    smtpd_session_set_timer(s, SMTPD_TIMER_AUTH, (long)srv->cfg->smtpd.auth_fail_delay_ms);
}

void smtpd_auth_delay_done(struct smtpd_session *s)
{
    free(s->auth_pending_user);
    s->auth_pending_user = NULL;
    to_command(s);
    smtpd_reply_error(s, "535 5.7.8 Error: authentication failed");
    smtpd_session_resume(s);
}

static void check(struct smtpd_session *s, const char *user, const char *pass)
{
    char u[PM_LOGV_SIZE];
    if (!pm_clients_auth_begin(s->srv->clients, s->client)) {
        pm_log(PM_WARN, "event=auth_busy client=%s reason=per_client limit=%d user=%s", s->peer, SMTPD_AUTH_PER_CLIENT,
               PM_LV(u, user));
        to_command(s);
        smtpd_reply_error(s, "454 4.7.0 Temporary authentication failure");
        return;
    }
    s->auth_running = 1;
    s->state = SMTPD_ST_AUTH_CHECK;
    smtpd_session_reading(s, 0);
    free(s->auth_pending_user);
    s->auth_pending_user = strdup(user);
    s->authreq = smtpd_authdb_verify(s->srv, user, pass, auth_done, s);
    if (!s->authreq) {
        check_over(s);
        to_command(s);
        smtpd_session_reading(s, 1);
        smtpd_reply_error(s, "454 4.7.0 Temporary authentication failure");
    }
}

static void check_plain(struct smtpd_session *s, const char *b64, size_t len)
{
    char user[MAX_USER], pass[MAX_PASS];
    if (smtpd_sasl_plain(b64, len, user, sizeof user, pass, sizeof pass) < 0) {
        to_command(s);
        smtpd_reply_error(s, "501 5.5.2 Error: cannot decode response");
        return;
    }
    check(s, user, pass);
    explicit_bzero(pass, sizeof pass);
}

/* Over TLS, after EHLO, not authenticated yet, outside a transaction: the table's. */
void smtpd_cmd_auth(struct smtpd_session *s, const struct smtpd_command *c)
{
    const char *arg = c->arg;
    size_t len = c->arglen;
    if (pm_clients_auth_locked(s->srv->clients, s->client, time(NULL))) {
        const char *err = "454 4.7.0 Error: too many failed authentications, try again later";
        char v[PM_LOGV_SIZE];
        pm_log(PM_INFO, "event=reject client=%s stage=AUTH reply=%s", s->peer, PM_LOGV(v, err));
        smtpd_reply_error(s, "%s", err);
        return;
    }
    size_t m = 0;
    while (m < len && arg[m] != ' ')
        m++;
    const char *ir = m < len ? arg + m + 1 : NULL;
    size_t irlen = ir ? len - m - 1 : 0;
    if (m == 5 && strncasecmp(arg, "PLAIN", 5) == 0) {
        if (!ir) {
            s->state = SMTPD_ST_AUTH_PLAIN;
            smtpd_reply(s, "334 ");
        } else {
            /* RFC 4954 4: "=" is an empty initial response. */
            check_plain(s, ir, irlen == 1 && ir[0] == '=' ? 0 : irlen);
        }
    } else if (m == 5 && strncasecmp(arg, "LOGIN", 5) == 0) {
        if (!ir) {
            s->state = SMTPD_ST_AUTH_USER;
            smtpd_reply(s, "334 VXNlcm5hbWU6"); /* "Username:" */
        } else {
            s->state = SMTPD_ST_AUTH_USER;
            smtpd_auth_response(s, ir, irlen);
        }
    } else {
        smtpd_reply_error(s, "504 5.5.4 Error: unrecognized authentication type");
    }
}

void smtpd_auth_response(struct smtpd_session *s, const char *line, size_t len)
{
    if (len == 1 && line[0] == '*') {
        to_command(s);
        smtpd_reply_error(s, "501 5.0.0 Error: authentication aborted");
        return;
    }
    if (s->state == SMTPD_ST_AUTH_PLAIN) {
        check_plain(s, line, len);
        return;
    }
    char buf[MAX_PASS];
    long n = smtpd_base64_decode(line, len, buf, s->state == SMTPD_ST_AUTH_USER ? MAX_USER : sizeof buf);
    if (n < 0 || memchr(buf, '\0', (size_t)n) || (s->state == SMTPD_ST_AUTH_USER && n == 0)) {
        explicit_bzero(buf, sizeof buf);
        to_command(s);
        smtpd_reply_error(s, "501 5.5.2 Error: cannot decode response");
        return;
    }
    if (s->state == SMTPD_ST_AUTH_USER) {
        free(s->login_user);
        s->login_user = strdup(buf);
        s->state = SMTPD_ST_AUTH_PASS;
        smtpd_reply(s, "334 UGFzc3dvcmQ6"); /* "Password:" */
        return;
    }
    char *user = s->login_user;
    s->login_user = NULL;
    check(s, user ? user : "", buf);
    free(user);
    explicit_bzero(buf, sizeof buf);
}

void smtpd_auth_cancel(struct smtpd_session *s)
{
    smtpd_authdb_cancel(s->authreq);
    s->authreq = NULL;
    check_over(s);
    free(s->auth_pending_user);
    s->auth_pending_user = NULL;
    if (s->state == SMTPD_ST_AUTH_PLAIN || s->state == SMTPD_ST_AUTH_USER || s->state == SMTPD_ST_AUTH_PASS ||
        s->state == SMTPD_ST_AUTH_CHECK)
        to_command(s);
    else {
        free(s->login_user);
        s->login_user = NULL;
    }
}
