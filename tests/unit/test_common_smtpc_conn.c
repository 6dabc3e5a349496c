/* The shared SMTP client's connection (common/smtpc_conn.c) against a scripted peer on
 * loopback, in the same event loop: an LMTP session end to end (LHLO, pipelined envelope,
 * the dot-stuffed body, one reply per accepted recipient, QUIT), a peer that hangs up
 * between those replies, a submission session (SMTP with AUTH PLAIN), and BDAT to a peer
 * that offers CHUNKING (the exact octets; DATA for a body with a bare LF). What the client
 * decided is read from its recipients; what it sent, from the peer's record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtpc.h"
#include "smtpc_conn.h"

/* The peer: an LMTP or SMTP server that answers from the address ("nobody@" is refused at
 * RCPT, "full@" after the dot) and records every command line and body line it reads. */
struct peer {
    struct event_base *base;
    struct evconnlistener *listener;
    struct bufferevent *bev;
    int port;
    int lmtp;
    int hang_up_after_first_reply; /* close after the first reply to the dot */
    int in_data, quit_seen, closed;
    int chunking;              /* offers CHUNKING */
    const char *bdat_reply;    /* its answer to a BDAT chunk (NULL: 250) */
    size_t chunk_left;         /* octets of the BDAT chunk still to come */
    char raw[4096];            /* every BDAT chunk's octets, as they came */
    size_t raw_len;
    char accepted[4][64];
    int naccepted;
    char commands[4096];
    char body[4096];
};

static void append(char *dst, size_t size, const char *line)
{
    size_t n = strlen(dst);
    snprintf(dst + n, size - n, "%s\n", line);
}

static void peer_close(struct peer *p)
{
    bufferevent_free(p->bev);
    p->bev = NULL;
    p->closed = 1;
}

static void peer_hang_up(struct bufferevent *bev, void *arg)
{
    (void)bev;
    peer_close(arg);
}

static void after_dot(struct peer *p, struct evbuffer *out)
{
    if (!p->lmtp) {
        evbuffer_add_printf(out, "250 2.0.0 queued\r\n");
        return;
    }
    for (int i = 0; i < p->naccepted; i++) {
        if (strncmp(p->accepted[i], "full@", 5) == 0)
            evbuffer_add_printf(out, "452 4.2.2 <%s> mailbox full\r\n", p->accepted[i]);
        else
            evbuffer_add_printf(out, "250 2.0.0 <%s> delivered\r\n", p->accepted[i]);
        if (p->hang_up_after_first_reply)
            return;
    }
}

static void peer_command(struct peer *p, const char *line, struct evbuffer *out)
{
    append(p->commands, sizeof p->commands, line);
    if (!strncmp(line, "LHLO ", 5) || !strncmp(line, "EHLO ", 5))
        evbuffer_add_printf(out, "250-peer.test\r\n250-PIPELINING\r\n%s250 AUTH PLAIN\r\n",
                            p->chunking ? "250-CHUNKING\r\n" : "");
    else if (p->chunking && !strncmp(line, "BDAT ", 5))
        p->chunk_left = strtoul(line + 5, NULL, 10); /* "LAST" and the reply: peer_read */
    else if (!strncmp(line, "AUTH PLAIN ", 11))
        evbuffer_add_printf(out, "235 2.7.0 ok\r\n");
    else if (!strncmp(line, "MAIL FROM:", 10))
        evbuffer_add_printf(out, "250 2.1.0 ok\r\n");
    else if (!strncmp(line, "RCPT TO:<", 9)) {
        const char *a = line + 9;
        if (!strncmp(a, "nobody@", 7) || p->naccepted == 4) {
            evbuffer_add_printf(out, "550 5.1.1 no such user\r\n");
        } else {
            snprintf(p->accepted[p->naccepted], sizeof p->accepted[0], "%.*s", (int)strcspn(a, ">"), a);
            p->naccepted++;
            evbuffer_add_printf(out, "250 2.1.5 ok\r\n");
        }
    } else if (!strcmp(line, "DATA")) {
        p->in_data = p->naccepted > 0;
        evbuffer_add_printf(out, p->in_data ? "354 go\r\n" : "554 5.5.1 no valid recipients\r\n");
    } else if (!strcmp(line, "QUIT")) {
        p->quit_seen = 1;
        evbuffer_add_printf(out, "221 2.0.0 bye\r\n");
    } else {
        evbuffer_add_printf(out, "500 5.5.2 what?\r\n");
    }
}

static void peer_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct peer *p = arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        peer_close(p);
}

static void peer_read(struct bufferevent *bev, void *arg)
{
    struct peer *p = arg;
    struct evbuffer *in = bufferevent_get_input(bev), *out = bufferevent_get_output(bev);
    char *line;
    size_t len;
    for (;;) {
        if (p->bev && p->chunk_left) {
            size_t n = evbuffer_get_length(in) < p->chunk_left ? evbuffer_get_length(in) : p->chunk_left;
            assert_true(p->raw_len + n <= sizeof p->raw);
            evbuffer_remove(in, p->raw + p->raw_len, n);
            p->raw_len += n;
            p->chunk_left -= n;
            if (p->chunk_left)
                return;
            evbuffer_add_printf(out, "%s\r\n", p->bdat_reply ? p->bdat_reply : "250 2.0.0 chunked and queued");
        }
        if (!p->bev || !(line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF_STRICT)))
            return;
        if (p->in_data && strcmp(line, ".") != 0) {
            append(p->body, sizeof p->body, line);
        } else if (p->in_data) {
            p->in_data = 0;
            after_dot(p, out);
            if (p->hang_up_after_first_reply) /* once the reply is out */
                bufferevent_setcb(bev, NULL, peer_hang_up, peer_event, p);
        } else {
            peer_command(p, line, out);
        }
        free(line);
    }
}

static void peer_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
    (void)l, (void)sa, (void)len;
    struct peer *p = arg;
    assert_null(p->bev); /* one connection per test */
    p->bev = bufferevent_socket_new(p->base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(p->bev, peer_read, NULL, peer_event, p);
    bufferevent_enable(p->bev, EV_READ | EV_WRITE);
    evbuffer_add_printf(bufferevent_get_output(p->bev), "220 peer.test %s\r\n", p->lmtp ? "LMTP" : "ESMTP");
}

static void peer_start(struct peer *p, struct event_base *base, int lmtp)
{
    memset(p, 0, sizeof *p);
    p->base = base;
    p->lmtp = lmtp;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    p->listener = evconnlistener_new_bind(base, peer_accept, p, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
                                          (struct sockaddr *)&sin, sizeof sin);
    assert_non_null(p->listener);
    socklen_t sl = sizeof sin;
    assert_int_equal(getsockname(evconnlistener_get_fd(p->listener), (struct sockaddr *)&sin, &sl), 0);
    p->port = ntohs(sin.sin_port);
}

static void peer_stop(struct peer *p)
{
    if (p->bev)
        bufferevent_free(p->bev);
    evconnlistener_free(p->listener);
}

/* The client side: one connection, run until it is done and the peer has hung up (or the
 * safety timeout fails the test). */
struct run {
    int done;
};

static void on_done(struct pm_smtpc_conn *c, void *arg)
{
    (void)c;
    struct run *r = arg;
    r->done = 1;
}

/* Wakes the loop below now and then, so it can count its turns against the time limit. */
static void on_tick(evutil_socket_t fd, short what, void *arg) { (void)fd, (void)what, (void)arg; }

static const uint8_t BODY[] = "Subject: test\n\n.a line that starts with a dot\r\nlast line, no newline";
/* CRLF throughout: BDAT sends it as it is, a line "." and all. */
static const uint8_t CRLF_BODY[] = "Subject: chunked\r\n\r\n.\r\n..dots\r\n\r\nlast line, no newline";
static const uint8_t *body = BODY;
static size_t body_len = sizeof BODY - 1;

static struct pm_smtpc_conn *run_session(struct event_base *base, struct peer *peer, struct pm_smtpc *s)
{
    struct run r = {0};
    struct pm_smtpc_conn_params p = {
        .base = base,
        .log_id = "TESTID",
        .host = "peer.test",
        .ip = "127.0.0.1",
        .port = peer->port,
        .connect_timeout = 5,
        .command_timeout = 5,
        .smtp = s,
        .body = body,
        .body_len = body_len,
        .done = on_done,
        .arg = &r,
    };
    struct pm_smtpc_conn *c = pm_smtpc_conn_start(&p);
    assert_non_null(c);
    struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
    struct timeval ms10 = {0, 10000};
    event_add(tick, &ms10);
    int turns = 0; /* at least one tick each: 10 s at most */
    while (!(r.done && (peer->quit_seen || peer->closed)) && turns++ < 1000)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(tick);
    assert_true(r.done);
    return c;
}

static void client_init(struct pm_smtpc *s, struct pm_smtpc_rcpt *rcpts, const char *const *addrs, int n,
                        const struct pm_smtpc_dialect *dialect)
{
    memset(s, 0, sizeof *s);
    memset(rcpts, 0, sizeof *rcpts * (size_t)n);
    for (int i = 0; i < n; i++)
        rcpts[i].address = addrs[i];
    s->dialect = dialect;
    s->helo_name = "mx.example.test";
    s->sender = "alice@example.test";
    s->rcpts = rcpts;
    s->nrcpts = n;
    s->body_size = body_len;
    pm_smtpc_init(s);
}

static void test_lmtp_session_against_a_scripted_peer(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    struct peer peer;
    peer_start(&peer, base, 1);
    static const char *const addrs[] = {"a@local.test", "nobody@local.test", "full@local.test"};
    struct pm_smtpc s;
    struct pm_smtpc_rcpt rcpts[3];
    client_init(&s, rcpts, addrs, 3, &pm_smtpc_lmtp);
    struct pm_smtpc_conn *c = run_session(base, &peer, &s);

    assert_true(pm_smtpc_conn_connected(c));
    char relay[64];
    snprintf(relay, sizeof relay, "peer.test[127.0.0.1]:%d", peer.port);
    assert_string_equal(pm_smtpc_conn_relay(c), relay);
    assert_string_equal(s.error, "");
    assert_int_equal(rcpts[0].state, PM_SMTPC_RCPT_DELIVERED);
    assert_string_equal(rcpts[0].text, "250 2.0.0 <a@local.test> delivered");
    assert_int_equal(rcpts[1].state, PM_SMTPC_RCPT_PERMFAIL);
    assert_string_equal(rcpts[1].dsn, "5.1.1");
    assert_int_equal(rcpts[2].state, PM_SMTPC_RCPT_TEMPFAIL);
    assert_string_equal(rcpts[2].text, "452 4.2.2 <full@local.test> mailbox full");
    assert_string_equal(peer.commands, "LHLO mx.example.test\n"
                                       "MAIL FROM:<alice@example.test>\n"
                                       "RCPT TO:<a@local.test>\n"
                                       "RCPT TO:<nobody@local.test>\n"
                                       "RCPT TO:<full@local.test>\n"
                                       "DATA\n"
                                       "QUIT\n");
    /* CRLF line ends whatever the body had, the leading dot doubled, a last CRLF added. */
    assert_string_equal(peer.body, "Subject: test\n\n..a line that starts with a dot\nlast line, no newline\n");
    pm_smtpc_conn_free(c);
    peer_stop(&peer);
    event_base_free(base);
}

/* The peer answers the first recipient and hangs up: that verdict stands, the other is left
 * ACCEPTED after the dot with the lost connection as the reason. */
static void test_lmtp_peer_hangs_up_between_replies(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    struct peer peer;
    peer_start(&peer, base, 1);
    peer.hang_up_after_first_reply = 1;
    static const char *const addrs[] = {"a@local.test", "b@local.test"};
    struct pm_smtpc s;
    struct pm_smtpc_rcpt rcpts[2];
    client_init(&s, rcpts, addrs, 2, &pm_smtpc_lmtp);
    struct pm_smtpc_conn *c = run_session(base, &peer, &s);
    assert_int_equal(rcpts[0].state, PM_SMTPC_RCPT_DELIVERED);
    assert_int_equal(rcpts[1].state, PM_SMTPC_RCPT_ACCEPTED);
    assert_true(s.dot_sent);
    assert_string_equal(s.error_dsn, "4.4.2");
    assert_non_null(strstr(s.error, "while waiting for the reply to end of DATA"));
    pm_smtpc_conn_free(c);
    peer_stop(&peer);
    event_base_free(base);
}

/* Submission: SMTP with AUTH PLAIN before MAIL; one reply after the dot for everyone. */
static void test_submission_session_with_auth(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    struct peer peer;
    peer_start(&peer, base, 0);
    static const char *const addrs[] = {"bob@remote.test", "carol@remote.test"};
    struct pm_smtpc s;
    struct pm_smtpc_rcpt rcpts[2];
    client_init(&s, rcpts, addrs, 2, &pm_smtpc_smtp);
    s.auth_user = "alice";
    s.auth_pass = "secret";
    struct pm_smtpc_conn *c = run_session(base, &peer, &s);

    assert_int_equal(rcpts[0].state, PM_SMTPC_RCPT_DELIVERED);
    assert_int_equal(rcpts[1].state, PM_SMTPC_RCPT_DELIVERED);
    assert_string_equal(rcpts[1].text, "250 2.0.0 queued");
    assert_string_equal(peer.commands, "EHLO mx.example.test\n"
                                       "AUTH PLAIN AGFsaWNlAHNlY3JldA==\n"
                                       "MAIL FROM:<alice@example.test>\n"
                                       "RCPT TO:<bob@remote.test>\n"
                                       "RCPT TO:<carol@remote.test>\n"
                                       "DATA\n"
                                       "QUIT\n");
    pm_smtpc_conn_free(c);
    peer_stop(&peer);
    event_base_free(base);
}

/* A peer offering CHUNKING gets BDAT with the body's exact octets, once the RCPT replies
 * are in; its refusal is every accepted recipient's. A body with a bare LF goes over DATA. */
static void bdat_session(int refuse, int crlf)
{
    struct event_base *base = event_base_new();
    struct peer peer;
    peer_start(&peer, base, 0);
    peer.chunking = 1;
    peer.bdat_reply = refuse ? "554 5.6.0 content refused" : NULL;
    body = crlf ? CRLF_BODY : BODY;
    body_len = crlf ? sizeof CRLF_BODY - 1 : sizeof BODY - 1;
    static const char *const addrs[] = {"bob@remote.test", "nobody@remote.test", "carol@remote.test"};
    struct pm_smtpc s;
    struct pm_smtpc_rcpt rcpts[3];
    client_init(&s, rcpts, addrs, 3, &pm_smtpc_smtp);
    struct pm_smtpc_conn *c = run_session(base, &peer, &s);
    char want[512];
    snprintf(want, sizeof want,
             "EHLO mx.example.test\nMAIL FROM:<alice@example.test>\nRCPT TO:<bob@remote.test>\n"
             "RCPT TO:<nobody@remote.test>\nRCPT TO:<carol@remote.test>\n%s\nQUIT\n",
             crlf ? "BDAT 54 LAST" : "DATA");
    assert_string_equal(peer.commands, want);
    if (crlf) {
        assert_int_equal(body_len, 54);
        assert_int_equal(peer.raw_len, body_len);
        assert_memory_equal(peer.raw, CRLF_BODY, body_len);
        assert_string_equal(peer.body, "");
    } else {
        assert_int_equal(peer.raw_len, 0);
    }
    assert_int_equal(rcpts[0].state, refuse ? PM_SMTPC_RCPT_PERMFAIL : PM_SMTPC_RCPT_DELIVERED);
    assert_int_equal(rcpts[1].state, PM_SMTPC_RCPT_PERMFAIL);
    assert_int_equal(rcpts[2].state, rcpts[0].state);
    assert_string_equal(rcpts[0].stage, crlf ? "BDAT" : "end of DATA");
    if (refuse)
        assert_string_equal(rcpts[2].text, "554 5.6.0 content refused");
    pm_smtpc_conn_free(c);
    peer_stop(&peer);
    event_base_free(base);
    body = BODY;
    body_len = sizeof BODY - 1;
}

static void test_bdat_to_a_chunking_peer(void **state)
{
    (void)state;
    bdat_session(0, 1);
    bdat_session(1, 1);
    bdat_session(0, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lmtp_session_against_a_scripted_peer),
        cmocka_unit_test(test_lmtp_peer_hangs_up_between_replies),
        cmocka_unit_test(test_submission_session_with_auth),
        cmocka_unit_test(test_bdat_to_a_chunking_peer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
