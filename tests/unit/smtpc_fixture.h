/* The shared SMTP client's state machine (common/smtpc.h) fed server replies as strings, for
 * its unit tests: a client for up to four recipients, a reply given as lines separated by
 * '\n', and what the client wrote since the last look. Header-only, `static inline`, as
 * fake_queue.h. */
#ifndef SMTPC_FIXTURE_H
#define SMTPC_FIXTURE_H
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#include "smtpc.h"

struct fixture {
    struct pm_smtpc s;
    struct pm_smtpc_rcpt rcpts[4];
    struct evbuffer *out;
    char sent[4096];
};

/* a@remote.test, b@..., sending as alice@example.test a body of 1234 bytes. */
static inline struct fixture *fixture_new(const struct pm_smtpc_dialect *dialect, int nrcpts, int tls)
{
    static const char *addrs[] = {"a@remote.test", "b@remote.test", "c@remote.test", "d@remote.test"};
    struct fixture *f = calloc(1, sizeof *f);
    f->out = evbuffer_new();
    for (int i = 0; i < nrcpts; i++)
        f->rcpts[i].address = addrs[i];
    f->s.dialect = dialect;
    f->s.helo_name = "mx.example.test";
    f->s.sender = "alice@example.test";
    f->s.rcpts = f->rcpts;
    f->s.nrcpts = nrcpts;
    f->s.body_size = 1234;
    f->s.tls_allowed = tls;
    pm_smtpc_init(&f->s);
    return f;
}

static inline void teardown(struct fixture *f)
{
    evbuffer_free(f->out);
    free(f);
}

/* Feeds a reply given as lines separated by '\n'; returns the action. */
static inline enum pm_smtpc_action reply(struct fixture *f, const char *text)
{
    struct pm_smtpc_reply r;
    pm_smtpc_reply_reset(&r);
    const char *err = NULL;
    enum pm_smtpc_reply_status st = PM_SMTPC_REPLY_MORE;
    while (*text) {
        const char *nl = strchr(text, '\n');
        size_t len = nl ? (size_t)(nl - text) : strlen(text);
        st = pm_smtpc_reply_feed(&r, text, len, &err);
        assert_int_not_equal(st, PM_SMTPC_REPLY_ERROR);
        text += len + (nl ? 1 : 0);
    }
    assert_int_equal(st, PM_SMTPC_REPLY_DONE);
    return pm_smtpc_on_reply(&f->s, &r, f->out);
}

/* What the client wrote since the last call. */
static inline const char *sent(struct fixture *f)
{
    size_t n = evbuffer_get_length(f->out);
    assert_true(n < sizeof f->sent);
    evbuffer_remove(f->out, f->sent, n);
    f->sent[n] = '\0';
    return f->sent;
}

#endif
