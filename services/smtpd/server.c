#include "server.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "aliases.h"
#include "bus.h"
#include "clients.h"
#include "log.h"
#include "net.h"
#include "session.h"
#include "submit.h"
#include "tls.h"
#include "users.h"

#define SWEEP_SECONDS 30
#define ACCEPT_RETRY_MS 500

const char *smtpd_mode_name(enum smtpd_mode m)
{
    return m == SMTPD_MODE_SMTP ? "smtp" : m == SMTPD_MODE_SUBMISSION ? "submission" : "smtps";
}

static enum smtpd_mode parse_mode(const char *m)
{
    return strcmp(m, "submission") == 0 ? SMTPD_MODE_SUBMISSION : strcmp(m, "smtps") == 0 ? SMTPD_MODE_SMTPS : SMTPD_MODE_SMTP;
}

void smtpd_server_refresh_lists(struct smtpd_server *srv)
{
    time_t now = time(NULL);
    if (now == srv->lists_checked)
        return;
    srv->lists_checked = now;
    char err[512], v[PM_LOGV_SIZE];
    int r = pm_users_reload_if_changed(&srv->users, err, sizeof err);
    if (r < 0)
        pm_log(PM_ERR, "event=users_error error=%s", PM_LV(v, err));
    else if (r > 0)
        pm_log(PM_INFO, "event=users_reloaded file=%s", srv->cfg->users_file);
    r = pm_aliases_reload_if_changed(&srv->aliases, err, sizeof err);
    if (r < 0)
        pm_log(PM_ERR, "event=aliases_error error=%s", PM_LV(v, err));
    else if (r > 0)
        pm_log(PM_INFO, "event=aliases_reloaded file=%s", srv->cfg->aliases_file);
}

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa, int socklen, void *arg)
{
    (void)lev;
    (void)socklen;
    struct smtpd_listener *l = arg;
    smtpd_session_new(l->srv, fd, sa, l->mode);
}

static void on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct smtpd_listener *l = arg;
    evconnlistener_enable(l->lev);
}

static void on_accept_error(struct evconnlistener *lev, void *arg)
{
    struct smtpd_listener *l = arg;
    int err = EVUTIL_SOCKET_ERROR();
    /* Out of descriptors or memory: pause this listener instead of spinning on it. */
    pm_log(PM_ERR, "event=accept_error address=%s error=\"%s\"", l->address, evutil_socket_error_to_string(err));
    evconnlistener_disable(lev);
    struct timeval tv = {0, ACCEPT_RETRY_MS * 1000};
    evtimer_add(l->retry, &tv);
}

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct smtpd_server *srv = arg;
    pm_log(PM_INFO, "event=stopping signal=%d sessions=%ld", (int)sig, srv->nsessions);
    event_base_loopbreak(srv->base);
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    struct smtpd_server *srv = arg;
    char err[512], v[PM_LOGV_SIZE];
    if (srv->tls) {
        if (smtpd_tls_reload(srv->tls, err, sizeof err) < 0)
            pm_log(PM_ERR, "event=tls_reload result=fail error=%s", PM_LV(v, err));
        else
            pm_log(PM_INFO, "event=tls_reload result=ok certificate=%s", srv->cfg->tls.certificate);
    }
    srv->lists_checked = 0;
    smtpd_server_refresh_lists(srv);
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct smtpd_server *srv = arg;
    smtpd_clients_sweep(srv->clients, time(NULL));
}

static int open_listeners(struct smtpd_server *srv)
{
    const struct pm_config *cfg = srv->cfg;
    srv->listeners = calloc((size_t)cfg->smtpd.listen.n + 1, sizeof *srv->listeners);
    for (int i = 0; i < cfg->smtpd.listen.n; i++) {
        const struct pm_listen *li = &cfg->smtpd.listen.v[i];
        enum smtpd_mode mode = parse_mode(li->mode);
        if (mode == SMTPD_MODE_SMTPS && !srv->tls) {
            pm_log(PM_WARN, "event=listen_skip address=%s mode=smtps reason=\"no tls.certificate configured\"",
                   li->address);
            continue;
        }
        int fd = pm_listen_tcp(li->address, 1024);
        if (fd < 0)
            return -1;
        struct smtpd_listener *l = &srv->listeners[srv->nlisteners++];
        l->srv = srv;
        l->mode = mode;
        snprintf(l->address, sizeof l->address, "%s", li->address);
        l->lev = evconnlistener_new(srv->base, on_accept, l, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
        if (!l->lev) {
            pm_log(PM_ERR, "event=listen_error address=%s error=evconnlistener", li->address);
            close(fd);
            srv->nlisteners--;
            return -1;
        }
        evconnlistener_set_error_cb(l->lev, on_accept_error);
        l->retry = evtimer_new(srv->base, on_accept_retry, l);
    }
    return 0;
}

int smtpd_server_init(struct smtpd_server *srv, struct pm_config *cfg, struct event_base *base)
{
    memset(srv, 0, sizeof *srv);
    srv->cfg = cfg;
    srv->base = base;
    char err[512], v[PM_LOGV_SIZE];
    srv->users = pm_users_load(cfg->users_file, err, sizeof err);
    if (!srv->users) {
        pm_log(PM_ERR, "event=users_error error=%s", PM_LV(v, err));
        return -1;
    }
    srv->aliases = pm_aliases_load(cfg->aliases_file, err, sizeof err);
    if (!srv->aliases) {
        pm_log(PM_ERR, "event=aliases_error error=%s", PM_LV(v, err));
        return -1;
    }
    srv->lists_checked = time(NULL);
    if (cfg->tls.certificate && cfg->tls.certificate[0]) {
        srv->tls = smtpd_tls_load(cfg->tls.certificate, cfg->tls.key && cfg->tls.key[0] ? cfg->tls.key : cfg->tls.certificate,
                                  err, sizeof err);
        if (!srv->tls) {
            pm_log(PM_ERR, "event=tls_error error=%s", PM_LV(v, err));
            return -1;
        }
    }
    struct smtpd_client_limits lim = {
        .max_per_ip = (long)cfg->smtpd.max_connections_per_ip,
        .rate_per_min = (long)cfg->smtpd.max_connection_rate,
        .auth_failures = (long)cfg->smtpd.auth_failures,
        .auth_lockout = (long)cfg->smtpd.auth_lockout,
    };
    srv->clients = smtpd_clients_new(&lim);
    srv->bus = pm_bus_connect(base, ZMQ_DEALER, cfg->queue.endpoint, smtpd_submit_on_bus, srv);
    if (!srv->clients || !srv->bus)
        return -1;
    if (open_listeners(srv) < 0)
        return -1;
    srv->ev_term = evsignal_new(base, SIGTERM, on_stop, srv);
    srv->ev_int = evsignal_new(base, SIGINT, on_stop, srv);
    srv->ev_hup = evsignal_new(base, SIGHUP, on_hup, srv);
    srv->ev_sweep = event_new(base, -1, EV_PERSIST, on_sweep, srv);
    struct timeval sweep = {SWEEP_SECONDS, 0};
    event_add(srv->ev_term, NULL);
    event_add(srv->ev_int, NULL);
    event_add(srv->ev_hup, NULL);
    event_add(srv->ev_sweep, &sweep);
    return 0;
}

void smtpd_server_free(struct smtpd_server *srv)
{
    while (srv->sessions) {
        if (!srv->sessions->close_reason)
            srv->sessions->close_reason = "shutdown";
        smtpd_session_free(srv->sessions);
    }
    for (int i = 0; i < srv->nlisteners; i++) {
        evconnlistener_free(srv->listeners[i].lev);
        event_free(srv->listeners[i].retry);
    }
    free(srv->listeners);
    struct event *evs[] = {srv->ev_term, srv->ev_int, srv->ev_hup, srv->ev_sweep};
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (evs[i])
            event_free(evs[i]);
    pm_bus_close(srv->bus);
    smtpd_tls_free(srv->tls);
    pm_users_free(srv->users);
    pm_aliases_free(srv->aliases);
    smtpd_clients_free(srv->clients);
    memset(srv, 0, sizeof *srv);
}
