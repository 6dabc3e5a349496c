/* The unprivileged pop3d worker: forked by the parent (parent.h), already chrooted into
 * the mail store as vmail and under seccomp when this runs. It serves every POP3 session
 * on the sockets the parent opened and asks the parent to check passwords. */
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authfail.h"
#include "log.h"
#include "parent.h"
#include "session.h"
#include "tls.h"
#include "tlspem.h"

struct listener {
    struct pop3_server *srv;
    struct evconnlistener *l;
    int implicit_tls;
};

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    (void)l;
    (void)salen;
    struct listener *li = arg;
    evutil_make_socket_nonblocking(fd);
    evutil_make_socket_closeonexec(fd);
    pop3_session_start(li->srv, fd, sa, li->implicit_tls);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    (void)l;
    (void)arg;
    /* EMFILE and friends: log and keep going; libevent retries on the next readiness. */
    pm_log(PM_WARN, "event=accept_error error=\"%s\"", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

/* A new pair from the parent (SIGHUP): sessions hold their own reference to the old one. */
static void on_push(const struct pm_priv_msg *m, void *arg)
{
    struct pop3_server *srv = arg;
    char err[512], ev[PM_LOGV_SIZE];
    if (m->op != PM_PRIV_TLS_PEM || !m->a || !m->b) {
        pm_log(PM_WARN, "event=parent_push_ignored op=%u", (unsigned)m->op);
        return;
    }
    SSL_CTX *ctx = pop3_tls_context(m->a, m->b, err, sizeof err);
    if (!ctx) {
        pm_log(PM_ERR, "event=tls_error error=%s", PM_LV(ev, err));
        return;
    }
    if (srv->tls)
        SSL_CTX_free(srv->tls);
    srv->tls = ctx;
    pm_log(PM_INFO, "event=tls_reloaded certificate=%s", srv->cfg->tls.certificate);
}

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    pm_log(PM_INFO, "event=stopping signal=%d", (int)sig);
    event_base_loopbreak(arg);
}

int pop3_worker_main(int parent_fd, void *arg)
{
    struct pop3_parent *p = arg; /* this process's copy of the parent's state */
    const struct pm_config *cfg = p->cfg;
    char err[512], ev[PM_LOGV_SIZE];
    signal(SIGHUP, SIG_IGN); /* reloads are the parent's (it pushes the new pair) */
    pm_priv_helper_forget(p->helper);

    struct pop3_server srv = {.cfg = cfg};
    snprintf(srv.mail_root, sizeof srv.mail_root, "%s", p->mail_root);
    if (p->cert_pem) {
        srv.tls = pop3_tls_context(p->cert_pem, p->key_pem, err, sizeof err);
        pm_tls_pem_free(p->key_pem); /* the context has the key; no second copy lying around */
        p->key_pem = NULL;
        if (!srv.tls) {
            pm_log(PM_ERR, "event=tls_error error=%s", PM_LV(ev, err));
            return 1;
        }
    }
    srv.base = event_base_new();
    srv.fails = pop3_authfail_new(cfg->pop3d.auth_failures, cfg->pop3d.auth_lockout);
    srv.priv = srv.base ? pm_priv_client_new(srv.base, parent_fd, on_push, &srv) : NULL;
    struct listener *ls = calloc((size_t)p->nfds + 1, sizeof *ls);
    if (!srv.base || !srv.fails || !srv.priv || !ls)
        return 1;
    for (int i = 0; i < p->nfds; i++) {
        ls[i].srv = &srv;
        ls[i].implicit_tls = p->fds[i].implicit_tls;
        /* No LEV_OPT_CLOSE_ON_FREE: the socket is the parent's; it outlives this worker. */
        ls[i].l = evconnlistener_new(srv.base, on_accept, &ls[i], 0, -1, p->fds[i].fd);
        if (!ls[i].l)
            return 1;
        evconnlistener_set_error_cb(ls[i].l, on_accept_error);
    }
    struct event *sigs[2] = {
        evsignal_new(srv.base, SIGTERM, on_stop, srv.base),
        evsignal_new(srv.base, SIGINT, on_stop, srv.base),
    };
    for (int i = 0; i < 2; i++)
        event_add(sigs[i], NULL);
    pm_log(PM_INFO, "event=started listeners=%d tls=%d", p->nfds, srv.tls != NULL);

    event_base_dispatch(srv.base);

    for (int i = 0; i < p->nfds; i++)
        evconnlistener_free(ls[i].l);
    free(ls);
    pop3_session_close_all(&srv);
    for (int i = 0; i < 2; i++)
        event_free(sigs[i]);
    pm_priv_client_free(srv.priv);
    event_base_free(srv.base);
    pop3_authfail_free(srv.fails);
    if (srv.tls)
        SSL_CTX_free(srv.tls);
    pm_log(PM_INFO, "event=stopped");
    return 0;
}
