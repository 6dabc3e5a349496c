#include "smtpc_dotstuff.h"

#include <event2/buffer.h>
#include <string.h>

#define STAGE 16384

void pm_smtpc_dotstuff_init(struct pm_smtpc_dotstuff *d, const uint8_t *body, size_t len)
{
    d->p = body;
    d->len = len;
    d->off = 0;
    d->bol = 1;
    d->done = 0;
}

int pm_smtpc_dotstuff_next(struct pm_smtpc_dotstuff *d, struct evbuffer *out, size_t max)
{
    if (d->done)
        return 1;
    uint8_t stage[STAGE + 8];
    size_t n = 0, written = 0;
    while (d->off < d->len && written + n < max) {
        uint8_t c = d->p[d->off];
        if (d->bol && c == '.')
            stage[n++] = '.';
        if (c == '\r' || c == '\n') {
            /* CRLF, bare LF and bare CR all end a line as CRLF. */
            d->off += (c == '\r' && d->off + 1 < d->len && d->p[d->off + 1] == '\n') ? 2 : 1;
            stage[n++] = '\r';
            stage[n++] = '\n';
            d->bol = 1;
        } else {
            stage[n++] = c;
            d->off++;
            d->bol = 0;
        }
        if (n >= STAGE) {
            evbuffer_add(out, stage, n);
            written += n;
            n = 0;
        }
    }
    if (d->off >= d->len) {
        if (!d->bol) {
            stage[n++] = '\r';
            stage[n++] = '\n';
        }
        memcpy(stage + n, ".\r\n", 3);
        n += 3;
        d->done = 1;
    }
    if (n)
        evbuffer_add(out, stage, n);
    return d->done;
}

int pm_smtpc_body_is_crlf(const uint8_t *body, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (body[i] == '\r' && (i + 1 == len || body[i + 1] != '\n'))
            return 0;
        if (body[i] == '\n' && (i == 0 || body[i - 1] != '\r'))
            return 0;
    }
    return 1;
}

int pm_smtpc_body_is_8bit(const uint8_t *body, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (body[i] & 0x80)
            return 1;
    return 0;
}
