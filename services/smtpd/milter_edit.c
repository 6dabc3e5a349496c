/* Applying the milters' header and body changes (milter_edit.h). */
#include "milter_edit.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int push(struct milter_msg *m, int at, char *text, size_t len)
{
    if (m->n == m->cap) {
        int cap = m->cap ? m->cap * 2 : 16;
        struct milter_hdr *v = realloc(m->h, (size_t)cap * sizeof *v);
        if (!v) {
            free(text);
            return -1;
        }
        m->h = v;
        m->cap = cap;
    }
    if (at < 0 || at > m->n)
        at = m->n;
    memmove(&m->h[at + 1], &m->h[at], (size_t)(m->n - at) * sizeof *m->h);
    m->h[at].text = text;
    m->h[at].len = len;
    m->n++;
    return 0;
}

int milter_msg_parse(struct milter_msg *m, struct evbuffer *msg)
{
    memset(m, 0, sizeof *m);
    size_t total = evbuffer_get_length(msg);
    size_t hlen; /* octets of the header fields, with the CRLF of the last one */
    if (total >= 2 && evbuffer_pullup(msg, 2) && memcmp(evbuffer_pullup(msg, 2), "\r\n", 2) == 0) {
        hlen = 0;
        m->has_separator = 1;
    } else {
        struct evbuffer_ptr p = evbuffer_search(msg, "\r\n\r\n", 4, NULL);
        if (p.pos >= 0) {
            hlen = (size_t)p.pos + 2;
            m->has_separator = 1;
        } else {
            hlen = total; /* headers only */
        }
    }
    const char *h = hlen ? (const char *)evbuffer_pullup(msg, (ev_ssize_t)hlen) : "";
    if (hlen && !h)
        goto oom;
    size_t start = 0;
    for (size_t i = 0; i < hlen;) {
        const char *nl = memchr(h + i, '\n', hlen - i);
        size_t next = nl ? (size_t)(nl - h) + 1 : hlen;
        /* A field ends before a line that does not start with white space. */
        if (next >= hlen || (h[next] != ' ' && h[next] != '\t')) {
            char *t = malloc(next - start + 1);
            if (!t)
                goto oom;
            memcpy(t, h + start, next - start);
            t[next - start] = '\0';
            if (push(m, -1, t, next - start) < 0)
                goto oom;
            start = next;
        }
        i = next;
    }
    evbuffer_drain(msg, hlen + (m->has_separator ? 2 : 0));
    m->body = msg;
    return 0;
oom:
    milter_msg_free(m);
    evbuffer_free(msg);
    return -1;
}

void milter_msg_free(struct milter_msg *m)
{
    for (int i = 0; i < m->n; i++)
        free(m->h[i].text);
    free(m->h);
    if (m->body)
        evbuffer_free(m->body);
    if (m->new_body)
        evbuffer_free(m->new_body);
    memset(m, 0, sizeof *m);
}

size_t milter_msg_size(const struct milter_msg *m)
{
    size_t n = m->body ? evbuffer_get_length(m->body) : 0;
    for (int i = 0; i < m->n; i++)
        n += m->h[i].len;
    return n + (m->has_separator ? 2 : 0);
}

struct evbuffer *milter_msg_build(struct milter_msg *m)
{
    struct evbuffer *out = evbuffer_new();
    int ok = out != NULL;
    for (int i = 0; ok && i < m->n; i++)
        ok = evbuffer_add(out, m->h[i].text, m->h[i].len) == 0;
    if (ok && (m->has_separator || (m->body && evbuffer_get_length(m->body))))
        ok = evbuffer_add(out, "\r\n", 2) == 0;
    if (ok && m->body)
        ok = evbuffer_add_buffer(out, m->body) == 0;
    milter_msg_free(m);
    if (!ok && out) {
        evbuffer_free(out);
        out = NULL;
    }
    return out;
}

int milter_msg_header(const struct milter_msg *m, int i, char **name, char **value)
{
    const char *t = m->h[i].text;
    size_t len = m->h[i].len;
    while (len && (t[len - 1] == '\n' || t[len - 1] == '\r'))
        len--;
    const char *colon = memchr(t, ':', len);
    size_t nlen = colon ? (size_t)(colon - t) : len;
    while (colon && nlen && (t[nlen - 1] == ' ' || t[nlen - 1] == '\t'))
        nlen--; /* "Subject : x" (obsolete syntax) */
    *name = strndup(t, nlen);
    const char *v = colon ? colon + 1 : t + len;
    if (colon && v < t + len && (*v == ' ' || *v == '\t'))
        v++;
    size_t vlen = (size_t)(t + len - v);
    *value = malloc(vlen + 1);
    if (!*name || !*value) {
        free(*name);
        free(*value);
        *name = *value = NULL;
        return -1;
    }
    size_t o = 0;
    for (size_t k = 0; k < vlen; k++)
        if (!(v[k] == '\r' && k + 1 < vlen && v[k + 1] == '\n'))
            (*value)[o++] = v[k];
    (*value)[o] = '\0';
    return colon ? 0 : -1;
}

/* "Name: value\r\n", the value's line ends (LF or CRLF) as CRLF. */
static char *format_field(const char *name, const char *value, size_t *len)
{
    size_t nl = 0, vlen = strlen(value);
    for (size_t i = 0; i < vlen; i++)
        nl += value[i] == '\n';
    size_t cap = strlen(name) + 2 + vlen + nl + 3;
    char *t = malloc(cap);
    if (!t)
        return NULL;
    size_t o = (size_t)sprintf(t, "%s: ", name);
    for (size_t i = 0; i < vlen; i++) {
        if (value[i] == '\r')
            continue; /* only before LF (milter_proto checked): the LF brings it back */
        if (value[i] == '\n')
            t[o++] = '\r';
        t[o++] = value[i];
    }
    memcpy(t + o, "\r\n", 3);
    *len = o + 2;
    return t;
}

int milter_msg_insert(struct milter_msg *m, uint32_t index, const char *name, const char *value)
{
    size_t len;
    char *t = format_field(name, value, &len);
    if (!t)
        return -1;
    return push(m, index > (uint32_t)m->n ? m->n : (int)index, t, len);
}

int milter_msg_add(struct milter_msg *m, const char *name, const char *value)
{
    return milter_msg_insert(m, UINT32_MAX, name, value);
}

/* Does field i carry this name? */
static int named(const struct milter_hdr *h, const char *name)
{
    size_t n = strlen(name);
    if (h->len <= n || strncasecmp(h->text, name, n) != 0)
        return 0;
    size_t k = n;
    while (k < h->len && (h->text[k] == ' ' || h->text[k] == '\t'))
        k++;
    return k < h->len && h->text[k] == ':';
}

int milter_msg_change(struct milter_msg *m, const char *name, uint32_t nth, const char *value)
{
    uint32_t seen = 0;
    if (nth == 0)
        nth = 1; /* libmilter sends 1 for the first; a 0 from a sloppy milter means it too */
    for (int i = 0; i < m->n; i++) {
        if (!named(&m->h[i], name) || ++seen != nth)
            continue;
        if (!value[0]) {
            free(m->h[i].text);
            memmove(&m->h[i], &m->h[i + 1], (size_t)(m->n - i - 1) * sizeof *m->h);
            m->n--;
            return 0;
        }
        size_t len;
        char *t = format_field(name, value, &len);
        if (!t)
            return -1;
        free(m->h[i].text);
        m->h[i].text = t;
        m->h[i].len = len;
        return 0;
    }
    return value[0] ? milter_msg_add(m, name, value) : 0;
}

int milter_msg_body_chunk(struct milter_msg *m, const void *data, size_t len, size_t max)
{
    if (!m->new_body && !(m->new_body = evbuffer_new()))
        return -1;
    const char *d = data;
    size_t from = 0;
    for (size_t i = 0; i < len; i++) {
        if (d[i] != '\n' || (i ? d[i - 1] == '\r' : m->new_last_cr))
            continue;
        if (evbuffer_add(m->new_body, d + from, i - from) < 0 || evbuffer_add(m->new_body, "\r", 1) < 0)
            return -1;
        from = i;
    }
    if (evbuffer_add(m->new_body, d + from, len - from) < 0)
        return -1;
    if (len)
        m->new_last_cr = d[len - 1] == '\r';
    return evbuffer_get_length(m->new_body) > max ? -1 : 0;
}

void milter_msg_body_commit(struct milter_msg *m)
{
    if (!m->new_body)
        return;
    size_t n = evbuffer_get_length(m->new_body);
    unsigned char tail[2] = {0, 0};
    if (n >= 2) {
        struct evbuffer_ptr p;
        evbuffer_ptr_set(m->new_body, &p, n - 2, EVBUFFER_PTR_SET);
        evbuffer_copyout_from(m->new_body, &p, tail, 2);
    }
    if (n && memcmp(tail, "\r\n", 2) != 0)
        evbuffer_add(m->new_body, "\r\n", 2);
    if (m->body)
        evbuffer_free(m->body);
    m->body = m->new_body;
    m->new_last_cr = 0;
    m->new_body = NULL;
    m->has_separator = 1;
}

void milter_msg_body_drop(struct milter_msg *m)
{
    if (m->new_body)
        evbuffer_free(m->new_body);
    m->new_body = NULL;
    m->new_last_cr = 0;
}
