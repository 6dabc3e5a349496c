#include "data.h"

#include <string.h>

enum { S_BOL, S_MID, S_CR, S_DOT, S_DOT_CR };

void smtpd_data_init(struct smtpd_data *d, size_t max_line)
{
    d->state = S_BOL;
    d->line_len = 0;
    d->max_line = max_line;
    d->long_line = 0;
    d->nul = 0;
}

enum smtpd_data_status smtpd_data_feed(struct smtpd_data *d, const char *in, size_t n, char *out, size_t *outlen,
                                       size_t *used)
{
    size_t o = 0, i = 0;
    enum smtpd_data_status st = SMTPD_DATA_MORE;
    while (i < n) {
        if (d->state == S_MID) {
            /* Fast path: copy the run of ordinary octets up to the next CR, LF or NUL. */
            const char *p = in + i, *end = in + n;
            const char *cr = memchr(p, '\r', (size_t)(end - p));
            const char *stop = cr ? cr : end;
            const char *lf = memchr(p, '\n', (size_t)(stop - p));
            if (lf)
                stop = lf;
            const char *nul = memchr(p, '\0', (size_t)(stop - p));
            if (nul)
                stop = nul;
            size_t run = (size_t)(stop - p);
            if (run) {
                if (d->line_len + run > d->max_line)
                    d->long_line = 1;
                d->line_len += run;
                memcpy(out + o, p, run);
                o += run;
                i += run;
                continue;
            }
        }
        char c = in[i++];
        if (++d->line_len > d->max_line)
            d->long_line = 1;
        switch (d->state) {
        case S_DOT:
            if (c == '\r') {
                d->state = S_DOT_CR;
                continue;
            }
            /* A leading dot followed by anything else was stuffing: drop it. */
            d->state = S_MID;
            break;
        case S_DOT_CR:
            if (c == '\n') {
                st = SMTPD_DATA_END;
                goto out;
            }
            st = SMTPD_DATA_BARE_CR;
            goto out;
        case S_CR:
            if (c != '\n') {
                st = SMTPD_DATA_BARE_CR;
                goto out;
            }
            out[o++] = '\r';
            out[o++] = '\n';
            d->state = S_BOL;
            d->line_len = 0;
            continue;
        case S_BOL:
            if (c == '.') {
                d->state = S_DOT;
                continue;
            }
            d->state = S_MID;
            break;
        default:
            break;
        }
        /* S_MID: an ordinary octet of a line. */
        if (c == '\r') {
            d->state = S_CR;
        } else if (c == '\n') {
            st = SMTPD_DATA_BARE_LF;
            goto out;
        } else {
            if (c == '\0')
                d->nul = 1;
            out[o++] = c;
        }
    }
out:
    *outlen = o;
    *used = i;
    return st;
}
