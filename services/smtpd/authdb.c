#include "authdb.h"

#include <stdlib.h>

#include "privchan.h"
#include "server.h"

struct smtpd_authdb_req {
    struct pm_priv_client *priv;
    uint32_t handle;
    smtpd_authdb_cb cb;
    void *arg;
    int sending;     /* inside pm_priv_request: a failure arrives synchronously */
    int send_failed;
};

static void on_answer(int result, void *arg)
{
    struct smtpd_authdb_req *r = arg;
    if (r->sending) {
        r->send_failed = 1;
        return;
    }
    smtpd_authdb_cb cb = r->cb;
    void *cbarg = r->arg;
    free(r);
    cb(cbarg, result);
}

static struct smtpd_authdb_req *ask(struct smtpd_server *srv, enum pm_priv_op op, const char *a, const char *b,
                                    smtpd_authdb_cb cb, void *arg)
{
    if (!srv->priv)
        return NULL;
    struct smtpd_authdb_req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->priv = srv->priv;
    r->cb = cb;
    r->arg = arg;
    r->sending = 1;
    r->handle = pm_priv_request(srv->priv, op, a, b, on_answer, r);
    r->sending = 0;
    if (r->send_failed) {
        free(r);
        return NULL;
    }
    return r;
}

struct smtpd_authdb_req *smtpd_authdb_verify(struct smtpd_server *srv, const char *user, const char *password,
                                             smtpd_authdb_cb cb, void *arg)
{
    return ask(srv, PM_PRIV_AUTH, user, password, cb, arg);
}

struct smtpd_authdb_req *smtpd_authdb_rcpt_exists(struct smtpd_server *srv, const char *address, smtpd_authdb_cb cb,
                                                  void *arg)
{
    return ask(srv, PM_PRIV_RCPT_EXISTS, address, NULL, cb, arg);
}

struct smtpd_authdb_req *smtpd_authdb_sender_ok(struct smtpd_server *srv, const char *user, const char *sender,
                                                smtpd_authdb_cb cb, void *arg)
{
    return ask(srv, PM_PRIV_SENDER_OK, user, sender, cb, arg);
}

void smtpd_authdb_cancel(struct smtpd_authdb_req *r)
{
    if (!r)
        return;
    pm_priv_cancel(r->priv, r->handle); /* the late answer is dropped */
    free(r);
}
