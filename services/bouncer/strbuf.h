/* A growable byte buffer for composing messages. An allocation failure latches `oom` and
 * turns later appends into no-ops, so callers check once at the end instead of per append. */
#ifndef BOUNCER_STRBUF_H
#define BOUNCER_STRBUF_H
#include <stddef.h>

struct bouncer_buf {
    char *data; /* always NUL-terminated when non-NULL */
    size_t len, cap;
    int oom;
};

void bouncer_buf_init(struct bouncer_buf *b);
void bouncer_buf_free(struct bouncer_buf *b);
void bouncer_buf_add(struct bouncer_buf *b, const void *p, size_t n);
void bouncer_buf_adds(struct bouncer_buf *b, const char *s);
void bouncer_buf_addc(struct bouncer_buf *b, char c);
void bouncer_buf_addf(struct bouncer_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the data over to the caller (who frees it) and resets b. NULL after an oom. */
char *bouncer_buf_take(struct bouncer_buf *b, size_t *len);

#endif
