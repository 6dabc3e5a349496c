/* The packets of each step (milter_int.h): the macros the common milters expect, and each
 * part of MAIL, RCPT and the end of the message as the milter negotiated it (SMFIP_NO*
 * parts left out, SMFIP_NR_* parts not waited for). */
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "milter_conn.h"
#include "milter_int.h"
#include "milter_proto.h"
#include "session.h"

const char *const milter_part_names[] = {"abort", "connect", "helo", "mail", "rcpt", "data",
                                         "header", "eoh", "body", "eom", "done"};

/* Splits args (copied) at spaces into v; returns the count. */
static int split_args(const char *args, char *copy, size_t csize, const char **v, int max)
{
    int n = 0;
    if (!args || snprintf(copy, csize, "%s", args) >= (int)csize)
        return 0;
    for (char *save, *t = strtok_r(copy, " ", &save); t && n < max; t = strtok_r(NULL, " ", &save))
        v[n++] = t;
    return n;
}

/* SMFIC_MACRO before the command cmd: what rspamd, clamav-milter and opendkim look at. */
static void send_macros(struct smtpd_milters *ms, struct slot *sl, char cmd)
{
    struct smtpd_session *s = ms->s;
    struct evbuffer *out = milter_conn_output(sl->mc);
    char port[8], ver[32] = "", cipher[128] = "", brackets[72], underscore[160];
    switch (cmd) {
    case SMFIC_CONNECT: {
        snprintf(port, sizeof port, "%d", s->port);
        snprintf(brackets, sizeof brackets, "[%s]", s->ip);
        snprintf(underscore, sizeof underscore, "%s [%s]", brackets, s->ip);
        const char *names[] = {"j", "{daemon_name}", "v", "{client_addr}", "{client_port}", "{client_name}", "_"};
        const char *values[] = {s->srv->cfg->hostname, "postmesh-smtpd", "Postmesh", s->ip, port, brackets, underscore};
        milter_enc_macros(out, cmd, names, values, 7);
        break;
    }
    case SMFIC_HELO: {
        if (s->tls_up)
            smtpd_session_tls_info(s, ver, sizeof ver, cipher, sizeof cipher);
        const char *names[] = {"{tls_version}", "{cipher}"};
        const char *values[] = {ver[0] ? ver : NULL, cipher[0] ? cipher : NULL};
        milter_enc_macros(out, cmd, names, values, 2);
        break;
    }
    case SMFIC_MAIL: {
        const char *names[] = {"i", "{auth_type}", "{auth_authen}", "{mail_addr}"};
        const char *values[] = {ms->id, s->auth_user ? "PLAIN" : NULL, s->auth_user, s->txn.sender};
        milter_enc_macros(out, cmd, names, values, 4);
        break;
    }
    case SMFIC_RCPT: {
        const char *names[] = {"i", "{rcpt_addr}"};
        const char *values[] = {ms->id, ms->rcpt};
        milter_enc_macros(out, cmd, names, values, 2);
        break;
    }
    default: {
        const char *names[] = {"i"};
        const char *values[] = {ms->id};
        milter_enc_macros(out, cmd, names, values, 1);
        break;
    }
    }
}

int milter_send_part(struct smtpd_milters *ms, struct slot *sl, enum part p)
{
    struct smtpd_session *s = ms->s;
    struct evbuffer *out = milter_conn_output(sl->mc);
    uint32_t proto = milter_conn_protocol(sl->mc);
    switch (p) {
    case P_ABORT:
        if (sl->in_txn)
            milter_enc_simple(out, SMFIC_ABORT);
        sl->in_txn = 0;
        return 0;
    case P_CONNECT: {
        if (sl->connect_sent)
            return 0;
        sl->connect_sent = 1;
        if (proto & SMFIP_NOCONNECT)
            return 0;
        send_macros(ms, sl, SMFIC_CONNECT);
        char brackets[72];
        snprintf(brackets, sizeof brackets, "[%s]", s->ip);
        milter_enc_connect(out, brackets, strchr(s->ip, ':') ? '6' : '4', (uint16_t)s->port, s->ip);
        return !(proto & SMFIP_NR_CONN);
    }
    case P_HELO: {
        /* Every HELO/EHLO, and the one after STARTTLS with its macros (as Postfix). */
        if ((proto & SMFIP_NOHELO) || !s->helo)
            return 0;
        send_macros(ms, sl, SMFIC_HELO);
        milter_enc_helo(out, s->helo);
        return !(proto & SMFIP_NR_HELO);
    }
    case P_MAIL: {
        sl->in_txn = 1;
        sl->txn_accepted = 0;
        sl->skip_body = 0;
        if (proto & SMFIP_NOMAIL)
            return 0;
        char copy[1024];
        const char *args[32];
        int n = split_args(ms->mail_args, copy, sizeof copy, args, 32);
        send_macros(ms, sl, SMFIC_MAIL);
        milter_enc_envelope(out, SMFIC_MAIL, s->txn.sender, args, n);
        return !(proto & SMFIP_NR_MAIL);
    }
    case P_RCPT: {
        if (proto & SMFIP_NORCPT)
            return 0;
        char copy[1024];
        const char *args[32];
        int n = split_args(ms->rcpt_args, copy, sizeof copy, args, 32);
        send_macros(ms, sl, SMFIC_RCPT);
        milter_enc_envelope(out, SMFIC_RCPT, ms->rcpt, args, n);
        return !(proto & SMFIP_NR_RCPT);
    }
    case P_DATA:
        if (proto & SMFIP_NODATA)
            return 0;
        send_macros(ms, sl, SMFIC_DATA);
        milter_enc_simple(out, SMFIC_DATA);
        return !(proto & SMFIP_NR_DATA);
    case P_HEADERS:
        if (proto & SMFIP_NOHDRS)
            return 0;
        while (ms->hidx < ms->msg.n) {
            char *name, *value;
            if (milter_msg_header(&ms->msg, ms->hidx++, &name, &value) < 0 && !name)
                continue;
            milter_enc_header(out, name, value);
            free(name);
            free(value);
            if (!(proto & SMFIP_NR_HDR))
                return 1;
        }
        return 0;
    case P_EOH:
        if (proto & SMFIP_NOEOH)
            return 0;
        milter_enc_simple(out, SMFIC_EOH);
        return !(proto & SMFIP_NR_EOH);
    case P_BODY: {
        if ((proto & SMFIP_NOBODY) || sl->skip_body)
            return 0;
        static unsigned char chunk[MILTER_BODY_CHUNK];
        struct evbuffer *body = ms->msg.body;
        size_t total = body ? evbuffer_get_length(body) : 0;
        while (ms->body_off < total) {
            if ((proto & SMFIP_NR_BODY) && milter_conn_pending_output(sl->mc) > MILTER_BODY_OUT_HIGH) {
                milter_conn_want_drained(sl->mc, MILTER_BODY_OUT_HIGH / 4);
                return 2;
            }
            size_t n = total - ms->body_off < sizeof chunk ? total - ms->body_off : sizeof chunk;
            struct evbuffer_ptr pos;
            evbuffer_ptr_set(body, &pos, ms->body_off, EVBUFFER_PTR_SET);
            evbuffer_copyout_from(body, &pos, chunk, n);
            ms->body_off += n;
            milter_enc_body(out, chunk, n);
            if (!(proto & SMFIP_NR_BODY))
                return 1;
        }
        return 0;
    }
    case P_EOM:
        send_macros(ms, sl, SMFIC_BODYEOB);
        milter_enc_simple(out, SMFIC_BODYEOB);
        return 1;
    case P_DONE:
        return 0;
    }
    return 0;
}
