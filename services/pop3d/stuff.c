#include "stuff.h"

void pop3_stuff_init(struct pop3_stuffer *s, long body_lines)
{
    *s = (struct pop3_stuffer){.at_line_start = 1, .body_lines = body_lines};
}

/* A line has ended (its CRLF is written): count it for TOP. */
static void line_ended(struct pop3_stuffer *s)
{
    if (!s->in_body) {
        if (s->line_len == 0) {
            s->in_body = 1;
            if (s->body_lines == 0)
                s->done = 1;
        }
    } else if (s->body_lines > 0 && --s->body_lines == 0) {
        s->done = 1;
    }
    s->line_len = 0;
    s->at_line_start = 1;
}

/* One content byte (not the LF of a line end). */
static size_t put(struct pop3_stuffer *s, char c, char *out)
{
    size_t o = 0;
    if (s->at_line_start && c == '.')
        out[o++] = '.';
    out[o++] = c;
    s->at_line_start = 0;
    s->line_len++;
    return o;
}

size_t pop3_stuff(struct pop3_stuffer *s, const char *in, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len && !s->done; i++) {
        char c = in[i];
        if (s->pending_cr) {
            s->pending_cr = 0;
            if (c == '\n') {
                out[o++] = '\r';
                out[o++] = '\n';
                line_ended(s);
                continue;
            }
            o += put(s, '\r', out + o); /* a bare CR is content */
        }
        if (c == '\r') {
            s->pending_cr = 1;
        } else if (c == '\n') {
            out[o++] = '\r';
            out[o++] = '\n';
            line_ended(s);
        } else {
            o += put(s, c, out + o);
        }
    }
    return o;
}

size_t pop3_stuff_finish(struct pop3_stuffer *s, char *out)
{
    size_t o = 0;
    if (!s->done) {
        if (s->pending_cr)
            o += put(s, '\r', out + o);
        if (!s->at_line_start) {
            out[o++] = '\r';
            out[o++] = '\n';
        }
    }
    s->pending_cr = 0;
    out[o++] = '.';
    out[o++] = '\r';
    out[o++] = '\n';
    return o;
}
