/* postmesh-pop3d: POP3 (RFC 1939) with CAPA, STLS, AUTH PLAIN and implicit TLS over the
 * Maildir store that postmesh-delivery writes. */
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "authfail.h"
#include "config.h"
#include "log.h"
#include "net.h"
#include "passdb.h"
#include "session.h"
#include "tls.h"

struct listener {
    struct evconnlistener *l;
    int implicit_tls;
};

static struct pop3_server srv;
static struct pm_config cfg;

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    (void)l;
    (void)salen;
    struct listener *li = arg;
    evutil_make_socket_nonblocking(fd);
    evutil_make_socket_closeonexec(fd);
    pop3_session_start(&srv, fd, sa, li->implicit_tls);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    (void)l;
    (void)arg;
    /* EMFILE and friends: log and keep going; libevent retries on the next readiness. */
    pm_log(PM_WARN, "event=accept_error error=\"%s\"", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

/* TLS is optional: without tls.certificate there is no STLS and pop3s listeners are skipped. */
static int load_tls(int required)
{
    if (!cfg.tls.certificate[0] || !cfg.tls.key[0]) {
        if (required)
            pm_log(PM_ERR, "event=tls_unconfigured reason=\"pop3s listener without tls.certificate/tls.key\"");
        return 0;
    }
    char err[512], ev[PM_LOGV_SIZE];
    SSL_CTX *ctx = pop3_tls_context(cfg.tls.certificate, cfg.tls.key, err, sizeof err);
    if (!ctx) {
        pm_log(PM_ERR, "event=tls_error error=%s", PM_LV(ev, err));
        return -1;
    }
    /* Sessions hold their own reference: replacing the context never drops a session. */
    if (srv.tls)
        SSL_CTX_free(srv.tls);
    srv.tls = ctx;
    return 0;
}

static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    (void)arg;
    if (load_tls(0) == 0 && srv.tls)
        pm_log(PM_INFO, "event=tls_reloaded certificate=%s", cfg.tls.certificate);
}

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    pm_log(PM_INFO, "event=stopping signal=%d", (int)sig);
    event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
    const char *path = pm_config_default_path();
    int opt;
    while ((opt = getopt(argc, argv, "c:")) != -1) {
        if (opt != 'c') {
            fprintf(stderr, "usage: %s [-c config]\n", argv[0]);
            return 2;
        }
        path = optarg;
    }
    pm_log_init("pop3d");
    char err[1024];
    if (pm_config_load(path, &cfg, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    pm_log_set_debug(cfg.debug);
    signal(SIGPIPE, SIG_IGN);

    int want_pop3s = 0;
    for (int i = 0; i < cfg.pop3d.listen.n; i++)
        want_pop3s |= strcmp(cfg.pop3d.listen.v[i].mode, "pop3s") == 0;
    if (load_tls(want_pop3s) < 0)
        return 1;

    srv.cfg = &cfg;
    srv.base = event_base_new();
    srv.passdb = pop3_passdb_open(cfg.users_file);
    srv.fails = pop3_authfail_new(cfg.pop3d.auth_failures, cfg.pop3d.auth_lockout);
    if (!srv.base || !srv.passdb || !srv.fails)
        return 1;

    struct listener *ls = calloc((size_t)cfg.pop3d.listen.n + 1, sizeof *ls);
    int nl = 0;
    for (int i = 0; i < cfg.pop3d.listen.n; i++) {
        const struct pm_listen *li = &cfg.pop3d.listen.v[i];
        int implicit = strcmp(li->mode, "pop3s") == 0;
        if (implicit && !srv.tls) {
            pm_log(PM_ERR, "event=listen_skipped address=%s mode=pop3s reason=\"no TLS certificate\"", li->address);
            continue;
        }
        int fd = pm_listen_tcp(li->address, 128);
        if (fd < 0)
            return 1;
        ls[nl].implicit_tls = implicit;
        ls[nl].l = evconnlistener_new(srv.base, on_accept, &ls[nl], LEV_OPT_CLOSE_ON_FREE, -1, fd);
        evconnlistener_set_error_cb(ls[nl].l, on_accept_error);
        pm_log(PM_INFO, "event=listening address=%s mode=%s", li->address, li->mode);
        nl++;
    }
    if (nl == 0) {
        pm_log(PM_ERR, "event=startup_failed reason=\"no listener\"");
        return 1;
    }
    struct event *sigs[3] = {
        evsignal_new(srv.base, SIGTERM, on_stop, srv.base),
        evsignal_new(srv.base, SIGINT, on_stop, srv.base),
        evsignal_new(srv.base, SIGHUP, on_sighup, NULL),
    };
    for (int i = 0; i < 3; i++)
        event_add(sigs[i], NULL);
    pm_log(PM_INFO, "event=started listeners=%d tls=%d", nl, srv.tls != NULL);

    event_base_dispatch(srv.base);

    for (int i = 0; i < nl; i++)
        evconnlistener_free(ls[i].l);
    free(ls);
    pop3_session_close_all(&srv);
    for (int i = 0; i < 3; i++)
        event_free(sigs[i]);
    event_base_free(srv.base);
    pop3_authfail_free(srv.fails);
    pop3_passdb_free(srv.passdb);
    if (srv.tls)
        SSL_CTX_free(srv.tls);
    pm_config_free(&cfg);
    pm_log(PM_INFO, "event=stopped");
    return 0;
}
