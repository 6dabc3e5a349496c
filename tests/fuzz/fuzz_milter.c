/* What a hostile milter sends smtpd (services/smtpd/milter_proto.c, milter_edit.c): the
 * input, after its cut sizes, is the byte stream of the milter's replies. It arrives in the
 * pieces the cuts choose and is framed and decoded as milter_conn.c does; every header edit
 * and body chunk decoded is applied to a message, as the end-of-message stage does.
 * Properties beyond memory safety:
 *  - split invariance: any cut gives the same packets (codes, lengths) and the same error;
 *  - a framed packet is at most MILTER_MAX_PACKET octets, and a bad length ends the stream;
 *  - a decoded reply holds what the glue relies on: REPLYCODE a 4xx/5xx line, header names
 *    without ':' or white space, strings inside the packet;
 *  - the message built after the edits is exactly milter_msg_size() octets, ends its header
 *    fields with CRLF, and its body stays within the bound given.
 * Input: byte 0 = number of cut sizes (mod 8), those cut sizes, then the stream. */
#include <event2/buffer.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "smtpd/milter_edit.h"
#include "smtpd/milter_proto.h"

#define MAX_PACKETS 64
#define BODY_MAX 4096

struct run {
    int n, error;
    char codes[MAX_PACKETS];
    size_t lens[MAX_PACKETS];
};

static const char MESSAGE[] = "Received: from x\r\n\tby y\r\nSubject: one\r\nX-A: 1\r\nsubject: two\r\n\r\nbody\r\n";

static void check_reply(const struct milter_reply *r, size_t len)
{
    if (r->code == SMFIR_REPLYCODE) {
        FUZZ_CHECK(r->text && (r->text[0] == '4' || r->text[0] == '5'));
        FUZZ_CHECK(strlen(r->text) < len);
    }
    if (r->name) {
        FUZZ_CHECK(r->value && r->name[0]);
        FUZZ_CHECK(!strpbrk(r->name, ": \t\r\n"));
        FUZZ_CHECK(strlen(r->name) + strlen(r->value) < len);
    }
    if (r->code == SMFIR_REPLBODY)
        FUZZ_CHECK(r->body_len == len);
}

static void apply(struct milter_msg *m, const struct milter_reply *r)
{
    if (milter_msg_size(m) > 64 * 1024)
        return; /* the glue's bound is max_message_size: keep the run small */
    switch (r->code) {
    case SMFIR_ADDHEADER:
        milter_msg_add(m, r->name, r->value);
        break;
    case SMFIR_INSHEADER:
        milter_msg_insert(m, r->index, r->name, r->value);
        break;
    case SMFIR_CHGHEADER:
        milter_msg_change(m, r->name, r->index, r->value);
        break;
    case SMFIR_REPLBODY:
        if (milter_msg_body_chunk(m, r->body, r->body_len, BODY_MAX) < 0)
            milter_msg_body_drop(m);
        break;
    case SMFIR_CONTINUE:
        milter_msg_body_commit(m);
        break;
    }
}

static void run(const uint8_t *in, size_t n, const uint8_t *cuts, size_t ncuts, struct run *out, int edits)
{
    struct evbuffer *b = evbuffer_new();
    struct evbuffer *msgbuf = evbuffer_new();
    evbuffer_add(msgbuf, MESSAGE, sizeof MESSAGE - 1);
    struct milter_msg m;
    FUZZ_CHECK(milter_msg_parse(&m, msgbuf) == 0);
    memset(out, 0, sizeof *out);
    size_t off = 0, k = 0;
    while (off < n && !out->error && out->n < MAX_PACKETS) {
        size_t chunk = fuzz_chunk(n - off, cuts, ncuts, &k);
        evbuffer_add(b, in + off, chunk);
        off += chunk;
        for (;;) {
            char cmd;
            unsigned char *data;
            size_t len;
            int rc = milter_frame(b, &cmd, &data, &len);
            if (rc < 0)
                out->error = 1;
            if (rc <= 0)
                break;
            FUZZ_CHECK(len <= MILTER_MAX_PACKET && data[len] == '\0');
            struct milter_reply r;
            char why[128];
            if (milter_decode_reply(cmd, data, len, &r, why, sizeof why) == 0) {
                check_reply(&r, len);
                if (edits)
                    apply(&m, &r);
            } else {
                FUZZ_CHECK(why[0]);
            }
            if (out->n < MAX_PACKETS) {
                out->codes[out->n] = cmd;
                out->lens[out->n++] = len;
            }
            free(data);
            if (out->n >= MAX_PACKETS)
                break;
        }
    }
    evbuffer_free(b);
    milter_msg_body_commit(&m);
    size_t want = milter_msg_size(&m);
    FUZZ_CHECK(!m.body || evbuffer_get_length(m.body) <= BODY_MAX + sizeof MESSAGE + 2);
    for (int i = 0; i < m.n; i++)
        FUZZ_CHECK(m.h[i].len >= 2 && memcmp(m.h[i].text + m.h[i].len - 2, "\r\n", 2) == 0);
    struct evbuffer *built = milter_msg_build(&m);
    FUZZ_CHECK(built && evbuffer_get_length(built) == want);
    evbuffer_free(built);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t ncuts = data[0] % 8;
    if (size < 1 + ncuts)
        return 0;
    const uint8_t *cuts = data + 1, *in = data + 1 + ncuts;
    size_t n = size - 1 - ncuts;
    struct run a, b;
    run(in, n, cuts, ncuts, &a, 1);
    run(in, n, NULL, 0, &b, 0);
    FUZZ_CHECK(a.n == b.n && a.error == b.error);
    for (int i = 0; i < a.n; i++)
        FUZZ_CHECK(a.codes[i] == b.codes[i] && a.lens[i] == b.lens[i]);
    return 0;
}
