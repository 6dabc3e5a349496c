/* The sandbox's side of the users and aliases questions (authdb.h), with a small cache of
 * the recipients found to exist: smtpd.lookup_cache_ttl seconds, per sandbox. Why: every
 * RCPT to a local user is a round trip through the parent to the lookup helper, which
 * answers one question at a time for every sandbox; a mailbox that receives a burst is
 * asked about once per ttl instead. Only "exists" is remembered: a user added is found at
 * once, a user removed may still be accepted for ttl seconds (delivery then decides, as
 * for any message queued just before the removal). Passwords are never cached. */
#include "authdb.h"

#include <ctype.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "privchan.h"
#include "server.h"

#define CACHE_SLOTS 1024 /* direct-mapped: a collision just asks the helper again */
#define CACHE_ADDR 256   /* longer addresses are not cached */

struct cached {
    char addr[CACHE_ADDR]; /* lower-cased */
    time_t until;
};

static struct cached *cache; /* this sandbox's, made on first use */

struct smtpd_authdb_req {
    struct pm_priv_client *priv;
    uint32_t handle;
    smtpd_authdb_cb cb;
    void *arg;
    int sending;     /* inside pm_priv_request: a failure arrives synchronously */
    int send_failed;
    struct event *hit;      /* answered from the cache: the callback runs from the loop */
    char key[CACHE_ADDR];   /* a recipient question: its answer may be cached */
    long ttl;
};

static struct cached *slot(const char *key)
{
    uint32_t h = 2166136261u;
    for (const char *c = key; *c; c++)
        h = (h ^ (unsigned char)*c) * 16777619u;
    return &cache[h % CACHE_SLOTS];
}

/* The lower-cased address in out, 0 if it is too long to cache. */
static int cache_key(const char *address, char *out)
{
    size_t n = strlen(address);
    if (n >= CACHE_ADDR)
        return 0;
    for (size_t i = 0; i <= n; i++)
        out[i] = (char)tolower((unsigned char)address[i]);
    return 1;
}

static void on_answer(int result, void *arg)
{
    struct smtpd_authdb_req *r = arg;
    if (r->sending) {
        r->send_failed = 1;
        return;
    }
    if (result == 1 && r->key[0] && (cache || (cache = calloc(CACHE_SLOTS, sizeof *cache)))) {
        struct cached *c = slot(r->key);
        memcpy(c->addr, r->key, sizeof c->addr);
        c->until = time(NULL) + r->ttl;
    }
    smtpd_authdb_cb cb = r->cb;
    void *cbarg = r->arg;
    free(r);
    cb(cbarg, result);
}

static void on_hit(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct smtpd_authdb_req *r = arg;
    smtpd_authdb_cb cb = r->cb;
    void *cbarg = r->arg;
    event_free(r->hit);
    free(r);
    cb(cbarg, 1);
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
    long ttl = (long)srv->cfg->smtpd.lookup_cache_ttl;
    char key[CACHE_ADDR];
    if (ttl <= 0 || !cache_key(address, key))
        return ask(srv, PM_PRIV_RCPT_EXISTS, address, NULL, cb, arg);
    if (cache) {
        struct cached *c = slot(key);
        if (c->until > time(NULL) && strcmp(c->addr, key) == 0) {
            struct smtpd_authdb_req *r = calloc(1, sizeof *r);
            if (r && (r->hit = event_new(srv->base, -1, 0, on_hit, r)) != NULL) {
                r->cb = cb;
                r->arg = arg;
                event_active(r->hit, EV_TIMEOUT, 1); /* never from inside this call */
                return r;
            }
            free(r);
        }
    }
    struct smtpd_authdb_req *r = ask(srv, PM_PRIV_RCPT_EXISTS, address, NULL, cb, arg);
    if (r) {
        memcpy(r->key, key, sizeof r->key);
        r->ttl = ttl;
    }
    return r;
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
    if (r->hit)
        event_free(r->hit);
    else
        pm_priv_cancel(r->priv, r->handle); /* the late answer is dropped */
    free(r);
}
