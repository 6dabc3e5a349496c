/* BDAT's chunk reader (services/smtpd/bdat.c) without a network: the argument ("size
 * [LAST]", sizes that do not fit), the content rules over a message fed in any split (bare
 * CR/LF, a CRLF split between chunks, long lines, NUL, the final CRLF), and a session's
 * chunk state over a bufferevent pair: a chunk in pieces, chunks back to back in one
 * write, a refused chunk still read, memory given back to the budget. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd/bdat.h"
#include "smtpd/command_table.h"
#include "smtpd/session.h"

static void parses(const char *arg, unsigned long long size, int last)
{
    unsigned long long got = 12345;
    int l = -1;
    if (smtpd_bdat_parse(arg, strlen(arg), &got, &l) != 0)
        fail_msg("\"%s\" refused", arg);
    assert_true(got == size);
    assert_int_equal(l, last);
}

static void refused(const char *arg)
{
    unsigned long long got;
    int l;
    if (smtpd_bdat_parse(arg, strlen(arg), &got, &l) != -1)
        fail_msg("\"%s\" accepted", arg);
}

static void test_parse(void **state)
{
    (void)state;
    parses("0", 0, 0);
    parses("0 LAST", 0, 1);
    parses("100 last", 100, 1);
    parses("100  LaSt", 100, 1);
    parses("007", 7, 0);
    parses("18446744073709551615", 18446744073709551615ULL, 0); /* 2^64-1: the largest */
    refused("");
    refused("LAST");
    refused(" 100");
    refused("-1");
    refused("+1");
    refused("1e3");
    refused("0x10");
    refused("100 LASTX");
    refused("100 LAS");
    refused("100 LAST LAST");
    refused("100 FIRST");
    refused("100\tLAST");
    refused("100 ");
    refused("18446744073709551616"); /* 2^64 */
    refused("99999999999999999999");
    refused("99999999999999999999999999999999999999999 LAST");
}

struct text_case {
    const char *msg;
    int bare_lf, bare_cr, long_line, nul, lacks_crlf;
};

/* Every split of the message into two chunks, and one octet at a time, gives the verdict. */
static void check_text(const struct text_case *c, size_t len, size_t max_line)
{
    for (size_t cut = 0; cut <= len + 1; cut++) {
        struct smtpd_bdat_text t;
        smtpd_bdat_text_init(&t, max_line);
        if (cut <= len) {
            smtpd_bdat_text_feed(&t, c->msg, cut);
            smtpd_bdat_text_feed(&t, c->msg + cut, len - cut);
        } else {
            for (size_t i = 0; i < len; i++)
                smtpd_bdat_text_feed(&t, c->msg + i, 1);
        }
        int lacks = smtpd_bdat_text_end(&t);
        if (t.bare_lf != c->bare_lf || t.bare_cr != c->bare_cr || t.long_line != c->long_line || t.nul != c->nul ||
            lacks != c->lacks_crlf)
            fail_msg("case %zu-octet \"%.20s...\" cut %zu: lf=%d cr=%d long=%d nul=%d lacks=%d", len, c->msg, cut,
                     t.bare_lf, t.bare_cr, t.long_line, t.nul, lacks);
    }
}

static void test_text_rules(void **state)
{
    (void)state;
    static const struct text_case cases[] = {
        {"Subject: x\r\n\r\nbody\r\n", 0, 0, 0, 0, 0},
        {"", 0, 0, 0, 0, 0},
        {"no final line end", 0, 0, 0, 0, 1},
        {"a\r\n.\r\nb\r\n", 0, 0, 0, 0, 0}, /* a lone dot is content here */
        {"a\nb\r\n", 1, 0, 0, 0, 0},
        {"a\rb\r\n", 0, 1, 0, 0, 0},
        {"a\r\r\n", 0, 1, 0, 0, 0},
        {"ends with CR\r", 0, 1, 0, 0, 1},
        {"\n", 1, 0, 0, 0, 0},
        {"a\0b\r\n", 0, 0, 0, 1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = strlen(cases[i].msg);
        if (i == sizeof cases / sizeof cases[0] - 1)
            len = 5; /* the one with a NUL */
        check_text(&cases[i], len, 1000);
    }
    /* Line length counts the CRLF, as DATA's: 8 + CRLF fits in 10, 9 + CRLF does not. */
    struct text_case fits = {"12345678\r\nx\r\n", 0, 0, 0, 0, 0}, over = {"123456789\r\nx\r\n", 0, 0, 1, 0, 0};
    check_text(&fits, strlen(fits.msg), 10);
    check_text(&over, strlen(over.msg), 10);
    struct text_case tail = {"x\r\n12345678901", 0, 0, 1, 0, 1};
    check_text(&tail, strlen(tail.msg), 10);
}

/* A session over a bufferevent pair: what the test writes on `peer` is the session's input,
 * its replies come out on `peer`. */
struct world {
    struct event_base *base;
    struct bufferevent *pair[2];
    struct pm_config cfg;
    struct smtpd_server srv;
    struct smtpd_session s;
};

static char sender[] = "a@example.test";

static void world_open(struct world *w, long long max_size)
{
    memset(w, 0, sizeof *w);
    w->base = event_base_new();
    assert_int_equal(bufferevent_pair_new(w->base, 0, w->pair), 0);
    bufferevent_enable(w->pair[1], EV_READ | EV_WRITE);
    w->cfg.hostname = "mx.example.test";
    w->cfg.smtpd.max_message_size = max_size;
    w->cfg.smtpd.max_errors = 100;
    w->cfg.smtpd.timeout_command = 300;
    w->cfg.smtpd.timeout_data = 300;
    w->srv.cfg = &w->cfg;
    w->srv.base = w->base;
    w->srv.body_budget = 1 << 20;
    w->s.srv = &w->srv;
    w->s.bev = w->pair[0];
    w->s.state = SMTPD_ST_COMMAND;
    snprintf(w->s.peer, sizeof w->s.peer, "192.0.2.7:4000");
}

/* A transaction with one recipient, as MAIL and RCPT leave it. */
static void world_txn(struct world *w)
{
    w->s.txn.active = 1;
    w->s.txn.sender = strdup(sender);
    w->s.txn.rcpt = calloc(1, sizeof *w->s.txn.rcpt);
    w->s.txn.rcpt[0] = strdup("b@example.test");
    w->s.txn.nrcpt = w->s.txn.cap = 1;
}

static void world_close(struct world *w)
{
    smtpd_message_discard(&w->s);
    smtpd_txn_reset(&w->s.txn);
    assert_true(w->srv.body_used == 0);
    if (w->s.timer)
        event_free(w->s.timer);
    bufferevent_free(w->pair[0]);
    bufferevent_free(w->pair[1]);
    event_base_free(w->base);
}

/* The client sends n octets; the session takes what its state allows. */
static void client_sends(struct world *w, const char *p, size_t n)
{
    bufferevent_write(w->pair[1], p, n);
    while (smtpd_session_wants_input(&w->s) && w->s.state != SMTPD_ST_COMMAND &&
           evbuffer_get_length(bufferevent_get_input(w->s.bev)) + (w->s.bdat.left == 0))
        smtpd_bdat_input(&w->s);
}

/* A BDAT command line as the dispatcher would run it (its row's checks included). */
static void bdat(struct world *w, const char *arg)
{
    struct smtpd_command c = {.verb = SMTPD_CMD_BDAT, .arg = arg, .arglen = strlen(arg)};
    if (w->s.txn.active)
        smtpd_cmd_bdat(&w->s, &c);
    else
        smtpd_bdat_refused(&w->s, arg, strlen(arg), "503 5.5.1 Error: need MAIL command");
    client_sends(w, "", 0);
}

static const char *replies(struct world *w, char *buf, size_t size)
{
    event_base_loop(w->base, EVLOOP_NONBLOCK);
    struct evbuffer *in = bufferevent_get_input(w->pair[1]);
    size_t n = evbuffer_remove(in, buf, size - 1);
    buf[n] = '\0';
    return buf;
}

static void test_chunk_in_pieces_and_back_to_back(void **state)
{
    (void)state;
    struct world w;
    char r[512];
    world_open(&w, 1000);
    world_txn(&w);
    bdat(&w, "12");
    assert_int_equal(w.s.state, SMTPD_ST_CHUNK);
    client_sends(&w, "Subj", 4);
    assert_int_equal(w.s.state, SMTPD_ST_CHUNK);
    assert_true(w.s.bdat.left == 8);
    assert_string_equal(replies(&w, r, sizeof r), "");
    /* The rest of the chunk and the next command in one write: the command stays unread. */
    client_sends(&w, "ect: x\r\nNOOP\r\n", 14);
    assert_int_equal(w.s.state, SMTPD_ST_COMMAND);
    assert_string_equal(replies(&w, r, sizeof r), "250 2.0.0 12 octets received\r\n");
    assert_int_equal(evbuffer_get_length(bufferevent_get_input(w.s.bev)), 6);
    evbuffer_drain(bufferevent_get_input(w.s.bev), 6);
    /* An empty chunk is answered at once; the body holds what came, counted in the budget. */
    bdat(&w, "0");
    assert_string_equal(replies(&w, r, sizeof r), "250 2.0.0 0 octets received\r\n");
    assert_int_equal(evbuffer_get_length(w.s.body), 12);
    assert_true(w.srv.body_used == 12);
    assert_true(w.s.txn.chunked);
    /* RSET's discard gives it all back. */
    smtpd_message_discard(&w.s);
    assert_null(w.s.body);
    assert_true(w.srv.body_used == 0);
    world_close(&w);
}

static void test_refused_chunks_are_read(void **state)
{
    (void)state;
    struct world w;
    char r[512];
    world_open(&w, 1000);
    /* No transaction: the chunk is read, then 503; the line after it is a command again. */
    bdat(&w, "5 LAST");
    client_sends(&w, "a\r\n.\r", 5);
    assert_int_equal(w.s.state, SMTPD_ST_COMMAND);
    assert_string_equal(replies(&w, r, sizeof r), "503 5.5.1 Error: need MAIL command\r\n");
    assert_int_equal(evbuffer_get_length(bufferevent_get_input(w.s.bev)), 0);
    /* Over the size: read and counted, not kept; 552 and the transaction is over. */
    world_txn(&w);
    bdat(&w, "600");
    char big[600];
    memset(big, 'x', sizeof big);
    client_sends(&w, big, 600);
    assert_string_equal(replies(&w, r, sizeof r), "250 2.0.0 600 octets received\r\n");
    bdat(&w, "600");
    client_sends(&w, big, 450);
    assert_true(w.srv.body_used == 0); /* dropped as soon as it went over */
    assert_int_equal(w.s.state, SMTPD_ST_CHUNK);
    client_sends(&w, big, 150);
    assert_string_equal(replies(&w, r, sizeof r), "552 5.3.4 Error: message file too big\r\n");
    assert_false(w.s.txn.active);
    assert_null(w.s.body);
    /* The next chunk of that transaction finds none. */
    bdat(&w, "3 LAST");
    client_sends(&w, "abc", 3);
    assert_string_equal(replies(&w, r, sizeof r), "503 5.5.1 Error: need MAIL command\r\n");
    /* A bare LF: the chunk is read to its end, 550, and the session goes on. */
    world_txn(&w);
    bdat(&w, "4");
    client_sends(&w, "a\nb\r", 4);
    assert_string_equal(replies(&w, r, sizeof r), "550 5.5.2 Error: bare <LF> received\r\n");
    assert_int_equal(w.s.state, SMTPD_ST_COMMAND);
    assert_false(w.s.txn.active);
    assert_true(w.srv.body_used == 0);
    /* A size nobody can read: 501 and the session ends. */
    world_txn(&w);
    bdat(&w, "99999999999999999999 LAST");
    assert_string_equal(replies(&w, r, sizeof r), "501 5.5.4 Syntax: BDAT size [LAST]\r\n");
    assert_int_equal(w.s.state, SMTPD_ST_CLOSING);
    world_close(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_text_rules),
        cmocka_unit_test(test_chunk_in_pieces_and_back_to_back),
        cmocka_unit_test(test_refused_chunks_are_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
