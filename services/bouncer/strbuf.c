#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bouncer_buf_init(struct bouncer_buf *b) { memset(b, 0, sizeof *b); }

void bouncer_buf_free(struct bouncer_buf *b)
{
    free(b->data);
    bouncer_buf_init(b);
}

static int reserve(struct bouncer_buf *b, size_t extra)
{
    if (b->oom)
        return -1;
    if (extra > ((size_t)-1) / 2 - b->len) {
        b->oom = 1;
        return -1;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

void bouncer_buf_add(struct bouncer_buf *b, const void *p, size_t n)
{
    if (reserve(b, n) < 0)
        return;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void bouncer_buf_adds(struct bouncer_buf *b, const char *s) { bouncer_buf_add(b, s, strlen(s)); }

void bouncer_buf_addc(struct bouncer_buf *b, char c) { bouncer_buf_add(b, &c, 1); }

void bouncer_buf_addf(struct bouncer_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || reserve(b, (size_t)n) < 0) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

char *bouncer_buf_take(struct bouncer_buf *b, size_t *len)
{
    char *d = b->oom ? NULL : b->data;
    if (len)
        *len = d ? b->len : 0;
    if (!d)
        free(b->data);
    bouncer_buf_init(b);
    return d;
}
