/* A hostile SMTP server's side of an mta session: the input (after one option byte) is what
 * the server sends. It is cut into lines as common/smtpc_conn.c cuts it (evbuffer CRLF-or-LF
 * search, the same length limit), fed to the reply parser (common/smtpc_reply.c) and every complete
 * reply to the client state machine (common/smtpc.c), which is told at once that TLS came up or
 * the body went out when it asks for that. Checks, after every reply: the reply text and the
 * one-line and enhanced-code renderings are bounded; each recipient's state agrees with its
 * DSN class; nothing is DELIVERED unless the whole body was sent; with tls_required (the
 * null sender with STARTTLS allowed), no envelope command ever leaves before TLS is up.
 * Option byte: recipients, STARTTLS allowed, 8-bit body, SMTPUTF8 needed, loop check name,
 * large body, null sender. */
#include <event2/buffer.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "smtpc_reply.h"
#include "smtpc.h"

static void check_reply(const struct pm_smtpc_reply *r)
{
    FUZZ_CHECK(r->code >= 100 && r->code <= 599);
    FUZZ_CHECK(r->len < sizeof r->text && r->text[r->len] == '\0' && strlen(r->text) == r->len);
    for (size_t i = 0; i < r->len; i++)
        FUZZ_CHECK(r->text[i] == '\n' || (r->text[i] >= 0x20 && r->text[i] < 0x7f));
    char small[16], one[PM_SMTPC_TEXT_MAX];
    for (size_t size = 1; size <= sizeof small; size += 5) {
        pm_smtpc_reply_enhanced(r, small, size);
        FUZZ_CHECK(strlen(small) < size);
        pm_smtpc_reply_oneline(r, small, size);
        FUZZ_CHECK(strlen(small) < size);
    }
    pm_smtpc_reply_enhanced(r, small, sizeof small);
    if (small[0])
        FUZZ_CHECK(small[0] == '0' + r->code / 100 && small[1] == '.');
    pm_smtpc_reply_oneline(r, one, sizeof one);
    FUZZ_CHECK(strlen(one) >= 3 && !strchr(one, '\n') && !strchr(one, '\r'));
}

static void check_state(const struct pm_smtpc *s)
{
    FUZZ_CHECK(strnlen(s->error, sizeof s->error) < sizeof s->error);
    FUZZ_CHECK(strnlen(s->error_dsn, sizeof s->error_dsn) < sizeof s->error_dsn);
    for (int i = 0; i < s->nrcpts; i++) {
        const struct pm_smtpc_rcpt *r = &s->rcpts[i];
        FUZZ_CHECK(strnlen(r->dsn, sizeof r->dsn) < sizeof r->dsn);
        FUZZ_CHECK(strnlen(r->text, sizeof r->text) < sizeof r->text);
        switch (r->state) {
        case PM_SMTPC_RCPT_PENDING:
            break;
        case PM_SMTPC_RCPT_DELIVERED:
            FUZZ_CHECK(s->dot_sent); /* a 250 for a body we never sent is a lie we must not repeat */
            /* fall through */
        case PM_SMTPC_RCPT_ACCEPTED:
            FUZZ_CHECK(r->dsn[0] == '2');
            break;
        case PM_SMTPC_RCPT_TEMPFAIL:
            FUZZ_CHECK(r->dsn[0] == '4');
            break;
        case PM_SMTPC_RCPT_PERMFAIL:
            FUZZ_CHECK(r->dsn[0] == '5');
            break;
        default:
            FUZZ_CHECK(0);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t opt = data[0];
    static const char *addrs[] = {"a@remote.test", "b@remote.test", "c@remote.test", "d@remote.test"};
    struct pm_smtpc_rcpt rcpts[4];
    memset(rcpts, 0, sizeof rcpts);
    struct pm_smtpc s = {0};
    s.helo_name = "mx.example.test";
    s.sender = opt & 0x80 ? "" : "alice@example.test";
    s.rcpts = rcpts;
    s.nrcpts = (opt & 3) + 1;
    for (int i = 0; i < s.nrcpts; i++)
        rcpts[i].address = addrs[i];
    s.tls_allowed = !!(opt & 4);
    s.body_8bit = !!(opt & 8);
    s.need_smtputf8 = !!(opt & 16);
    s.self_name = opt & 32 ? "mx.example.test" : NULL;
    s.body_size = opt & 64 ? 50u * 1024 * 1024 : 1234;
    s.tls_required = (opt & 0x84) == 0x84;
    pm_smtpc_init(&s);

    struct evbuffer *in = evbuffer_new(), *out = evbuffer_new();
    evbuffer_add(in, data + 1, size - 1);
    struct pm_smtpc_reply reply;
    pm_smtpc_reply_reset(&reply);
    char line[PM_SMTPC_REPLY_LINE_MAX + 1];
    int done = 0;
    while (!done) {
        size_t eol_len = 0;
        struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
        if (p.pos < 0 || (size_t)p.pos > PM_SMTPC_REPLY_LINE_MAX)
            break; /* waits for more, or "reply line too long" */
        size_t len = (size_t)p.pos;
        evbuffer_remove(in, line, len);
        evbuffer_drain(in, eol_len);
        line[len] = '\0';
        const char *err = NULL;
        enum pm_smtpc_reply_status st = pm_smtpc_reply_feed(&reply, line, len, &err);
        if (st == PM_SMTPC_REPLY_ERROR) {
            FUZZ_CHECK(err && *err);
            pm_smtpc_fail(&s, "4.5.0", "protocol error: %s (during %s)", err, pm_smtpc_stage(&s));
            break;
        }
        FUZZ_CHECK(reply.nlines >= 1 && reply.nlines <= PM_SMTPC_REPLY_MAX_LINES);
        if (st == PM_SMTPC_REPLY_MORE)
            continue;
        check_reply(&reply);
        enum pm_smtpc_action act = pm_smtpc_on_reply(&s, &reply, out);
        pm_smtpc_reply_reset(&reply);
        switch (act) {
        case PM_SMTPC_WAIT:
            break;
        case PM_SMTPC_STARTTLS:
            FUZZ_CHECK(s.tls_allowed && !s.tls_active);
            pm_smtpc_tls_ready(&s, out); /* the handshake "succeeded" */
            break;
        case PM_SMTPC_BODY:
            FUZZ_CHECK(s.accepted > 0 && !s.dot_sent);
            pm_smtpc_body_sent(&s);
            break;
        case PM_SMTPC_QUIT:
        case PM_SMTPC_ABORT:
            done = 1;
            break;
        default:
            FUZZ_CHECK(0);
        }
        check_state(&s);
        /* What we send is only our own commands, CRLF-terminated. */
        size_t olen = evbuffer_get_length(out);
        if (olen) {
            const char *o = (const char *)evbuffer_pullup(out, -1);
            FUZZ_CHECK(o[olen - 2] == '\r' && o[olen - 1] == '\n');
            if (s.tls_required && !s.tls_active) /* the policy said TLS: nothing in the clear */
                FUZZ_CHECK(!memmem(o, olen, "MAIL FROM", 9) && !memmem(o, olen, "RCPT TO", 7) &&
                           !memmem(o, olen, "AUTH", 4));
            evbuffer_drain(out, olen);
        }
    }
    check_state(&s);
    evbuffer_free(in);
    evbuffer_free(out);
    return 0;
}
