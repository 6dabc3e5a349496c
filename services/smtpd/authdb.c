#include "authdb.h"

#include <event2/event.h>
#include <stdlib.h>

#include "server.h"
#include "users.h"

struct smtpd_authdb_req {
    struct event *ev;
    int ok;
    smtpd_authdb_cb cb;
    void *arg;
};

static void deliver(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct smtpd_authdb_req *r = arg;
    smtpd_authdb_cb cb = r->cb;
    void *cbarg = r->arg;
    int ok = r->ok;
    event_free(r->ev);
    free(r);
    cb(cbarg, ok);
}

struct smtpd_authdb_req *smtpd_authdb_verify(struct smtpd_server *srv, const char *user, const char *password,
                                             smtpd_authdb_cb cb, void *arg)
{
    struct smtpd_authdb_req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->cb = cb;
    r->arg = arg;
    r->ev = evtimer_new(srv->base, deliver, r);
    if (!r->ev) {
        free(r);
        return NULL;
    }
    smtpd_server_refresh_lists(srv);
    r->ok = srv->users && pm_users_verify(srv->users, user, password) == 1;
    struct timeval now = {0, 0};
    evtimer_add(r->ev, &now);
    return r;
}

void smtpd_authdb_cancel(struct smtpd_authdb_req *r)
{
    if (!r)
        return;
    event_free(r->ev);
    free(r);
}
