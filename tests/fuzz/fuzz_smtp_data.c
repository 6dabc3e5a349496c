/* The DATA phase: smtpd's decoder (smtpd/data.c) fed the client's bytes as session.c and
 * message.c feed it, cut at places the input chooses. Three properties beyond memory safety:
 *  - split invariance: any cut of the input gives the same status, output, flags and
 *    consumed count as one call (data.h promises it; SMTP smuggling lives in such gaps);
 *  - a reference decoder written plainly from RFC 5321 4.5.2 (dot-unstuffing, only
 *    CRLF.CRLF ends, bare CR/LF refused, lines over 1000 octets flagged) agrees;
 *  - round trip with the other side: what the mta's encoder (common/smtpc_dotstuff.c) sends for a
 *    body decodes back to that body with its line ends made CRLF, ending exactly at ".".
 * The decoded header section then goes through the queue's hop counter (queue/submit.c).
 * The same octets as BDAT content (smtpd/bdat.c's checks, cut the same way) agree with a
 * plain reference, and with the mta's test for sending a body as it is (pm_smtpc_body_is_crlf).
 * Input: byte 0 chooses the cut sizes, the rest is the wire data. */
#include <event2/buffer.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "smtpc_dotstuff.h"
#include "queue/queue.h"
#include "smtpd/bdat.h"
#include "smtpd/data.h"

#define MAX_LINE 1000

struct result {
    enum smtpd_data_status st;
    char *out;
    size_t outlen, used;
    int long_line, nul;
};

/* Feeds in[0..n) in pieces of the sizes cycled from cuts (message.c slices the same way). */
static void decode(const uint8_t *in, size_t n, const uint8_t *cuts, size_t ncuts, struct result *r)
{
    struct smtpd_data d;
    smtpd_data_init(&d, MAX_LINE);
    r->out = malloc(n + 2);
    r->outlen = r->used = 0;
    r->st = SMTPD_DATA_MORE;
    size_t k = 0;
    while (r->used < n && r->st == SMTPD_DATA_MORE) {
        size_t chunk = fuzz_chunk(n - r->used, cuts, ncuts, &k);
        /* Exactly the room data.h asks for, on the heap: an overrun is an ASan report. */
        char *out = malloc(chunk + 2);
        size_t o = 0, used = 0;
        r->st = smtpd_data_feed(&d, (const char *)in + r->used, chunk, out, &o, &used);
        FUZZ_CHECK(used <= chunk && o <= chunk + 2);
        if (r->st == SMTPD_DATA_MORE)
            FUZZ_CHECK(used == chunk);
        memcpy(r->out + r->outlen, out, o);
        free(out);
        r->outlen += o;
        r->used += used;
    }
    r->long_line = d.long_line;
    r->nul = d.nul;
}

/* The reference: one pass over whole lines, written for clarity, not speed. */
static void reference(const uint8_t *in, size_t n, struct result *r)
{
    r->out = malloc(n + 2);
    r->outlen = r->used = 0;
    r->long_line = r->nul = 0;
    r->st = SMTPD_DATA_MORE;
    size_t i = 0;
    while (i < n) {
        /* The line: up to CRLF; a CR not followed by LF or a LF not after CR is fatal. */
        size_t start = i, end = i;
        while (end < n && in[end] != '\r' && in[end] != '\n')
            end++;
        size_t wire = end - start; /* octets of the line without its line end */
        int stuffed = wire > 0 && in[start] == '.';
        if (end - start > MAX_LINE)
            r->long_line = 1;
        if (memchr(in + start, 0, end - start))
            r->nul = 1;
        /* Output the line's text (dot removed) before deciding how it ends, as the decoder
         * writes octets as they come. A lone "." is written only if it is not the end. */
        const uint8_t *text = in + start + (stuffed ? 1 : 0);
        size_t tlen = wire - (stuffed ? 1 : 0);
        if (end >= n) { /* no line end yet */
            memcpy(r->out + r->outlen, text, tlen);
            r->outlen += tlen;
            r->used = n;
            return;
        }
        if (in[end] == '\n') {
            if (wire + 1 > MAX_LINE)
                r->long_line = 1;
            memcpy(r->out + r->outlen, text, tlen);
            r->outlen += tlen;
            r->used = end + 1;
            r->st = SMTPD_DATA_BARE_LF;
            return;
        }
        /* CR */
        if (wire + 1 > MAX_LINE)
            r->long_line = 1;
        if (end + 1 >= n) {
            if (!(wire == 1 && stuffed)) {
                memcpy(r->out + r->outlen, text, tlen);
                r->outlen += tlen;
            }
            r->used = n;
            return;
        }
        if (in[end + 1] != '\n') {
            if (wire + 2 > MAX_LINE)
                r->long_line = 1;
            if (!(wire == 1 && stuffed)) {
                memcpy(r->out + r->outlen, text, tlen);
                r->outlen += tlen;
            }
            r->used = end + 2;
            r->st = SMTPD_DATA_BARE_CR;
            return;
        }
        if (wire + 2 > MAX_LINE)
            r->long_line = 1;
        if (wire == 1 && stuffed) {
            r->used = end + 2;
            r->st = SMTPD_DATA_END;
            return;
        }
        memcpy(r->out + r->outlen, text, tlen);
        r->outlen += tlen;
        memcpy(r->out + r->outlen, "\r\n", 2);
        r->outlen += 2;
        i = end + 2;
    }
    r->used = n;
}

static void same(const struct result *a, const struct result *b)
{
    FUZZ_CHECK(a->st == b->st);
    FUZZ_CHECK(a->used == b->used);
    FUZZ_CHECK(a->outlen == b->outlen && memcmp(a->out, b->out, a->outlen) == 0);
    FUZZ_CHECK(a->long_line == b->long_line);
    FUZZ_CHECK(a->nul == b->nul);
}

/* mta encodes body; smtpd must decode exactly the body with CRLF line ends. */
static void round_trip(const uint8_t *body, size_t n)
{
    struct evbuffer *wire = evbuffer_new();
    struct pm_smtpc_dotstuff ds;
    pm_smtpc_dotstuff_init(&ds, body, n);
    int rounds = 0;
    while (!pm_smtpc_dotstuff_next(&ds, wire, 4096))
        FUZZ_CHECK(++rounds <= (int)n + 2); /* progress in every call */
    size_t wlen = evbuffer_get_length(wire);
    const uint8_t *w = evbuffer_pullup(wire, -1);

    /* The expected body: every CRLF, bare CR and bare LF becomes CRLF; a last line without
     * an end gets one. */
    char *want = malloc(2 * n + 2);
    size_t wl = 0;
    for (size_t i = 0; i < n; i++) {
        if (body[i] == '\r' || body[i] == '\n') {
            if (body[i] == '\r' && i + 1 < n && body[i + 1] == '\n')
                i++;
            want[wl++] = '\r';
            want[wl++] = '\n';
        } else {
            want[wl++] = (char)body[i];
        }
    }
    if (wl && !(wl >= 2 && want[wl - 2] == '\r' && want[wl - 1] == '\n')) {
        want[wl++] = '\r';
        want[wl++] = '\n';
    }

    struct result r;
    decode(w, wlen, NULL, 0, &r);
    FUZZ_CHECK(r.st == SMTPD_DATA_END);
    FUZZ_CHECK(r.used == wlen); /* the end is the "." the encoder wrote last, not earlier */
    FUZZ_CHECK(r.outlen == wl && memcmp(r.out, want, wl) == 0);
    free(r.out);
    free(want);
    evbuffer_free(wire);
}

/* BDAT: content checks in any cut equal one plain pass over the lines. */
static void bdat_text(const uint8_t *in, size_t n, const uint8_t *cuts, size_t ncuts)
{
    struct smtpd_bdat_text whole, split;
    smtpd_bdat_text_init(&whole, MAX_LINE);
    smtpd_bdat_text_feed(&whole, (const char *)in, n);
    int lacks = smtpd_bdat_text_end(&whole);
    smtpd_bdat_text_init(&split, MAX_LINE);
    size_t k = 0;
    for (size_t used = 0; used < n;) {
        size_t chunk = fuzz_chunk(n - used, cuts, ncuts, &k);
        smtpd_bdat_text_feed(&split, (const char *)in + used, chunk);
        used += chunk;
    }
    FUZZ_CHECK(smtpd_bdat_text_end(&split) == lacks);
    FUZZ_CHECK(split.bare_lf == whole.bare_lf && split.bare_cr == whole.bare_cr);
    FUZZ_CHECK(split.long_line == whole.long_line && split.nul == whole.nul);
    int bare_lf = 0, bare_cr = 0, long_line = 0;
    size_t line = 0;
    for (size_t i = 0; i < n; i++) {
        line++;
        if (in[i] == '\n') {
            bare_lf |= i == 0 || in[i - 1] != '\r';
            long_line |= line > MAX_LINE;
            line = 0;
        } else if (in[i] == '\r' && (i + 1 == n || in[i + 1] != '\n')) {
            bare_cr = 1;
        }
        long_line |= line > MAX_LINE;
    }
    FUZZ_CHECK(whole.bare_lf == bare_lf && whole.bare_cr == bare_cr && whole.long_line == long_line);
    FUZZ_CHECK(whole.nul == (memchr(in, 0, n) != NULL));
    FUZZ_CHECK(lacks == (n > 0 && in[n - 1] != '\n'));
    FUZZ_CHECK(pm_smtpc_body_is_crlf(in, n) == (!bare_lf && !bare_cr));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    /* Cut sizes: a few bytes from the front, so most of the input stays message data. */
    size_t ncuts = data[0] & 7;
    if (ncuts + 1 > size)
        ncuts = size - 1;
    const uint8_t *cuts = data + 1;
    const uint8_t *in = data + 1 + ncuts;
    size_t n = size - 1 - ncuts;

    static const uint8_t one_byte[1] = {0};
    struct result whole, split, ref;
    decode(in, n, NULL, 0, &whole);
    decode(in, n, ncuts ? cuts : one_byte, ncuts ? ncuts : 1, &split); /* ncuts 0: one byte at a time */
    reference(in, n, &ref);
    same(&whole, &split);
    same(&whole, &ref);

    if (whole.st == SMTPD_DATA_END) {
        /* What the queue does with the decoded message: count hops in the header. */
        int hops = queue_count_received((const uint8_t *)whole.out, whole.outlen);
        FUZZ_CHECK(hops >= 0 && (size_t)hops <= whole.outlen / 9);
    }
    free(whole.out);
    free(split.out);
    free(ref.out);

    round_trip(in, n);
    bdat_text(in, n, ncuts ? cuts : one_byte, ncuts ? ncuts : 1);
    return 0;
}
