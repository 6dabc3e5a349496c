/* BODY[section]<partial> and BINARY[section] (RFC 9051 §6.4.5, RFC 3516): which part a
 * section (fetch_atts.h parses it) names (as Dovecot resolves it: a message/rfc822 part is
 * entered before its number is applied, a non-multipart body is its own part 1), and the
 * bytes: one range of the file for everything but HEADER.FIELDS(.NOT), which is put
 * together from the header's fields (GMime's offsets, bytes from the file) and a blank
 * line. A section that names nothing is empty ({0}, as Dovecot). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "fetch_atts.h"
#include "istring.h"
#include "mime_int.h"

#define COPY_MAX (64 * 1024)  /* larger ranges go out with evbuffer_add_file */

/* ---- which bytes ---- */

struct sec_data {
    uint64_t off, len;          /* a range of the file ... */
    struct evbuffer *buf;       /* ... or these bytes (HEADER.FIELDS) */
};

static const struct mime_node *find_part(const struct imap_msg *m, const struct imap_section *sec)
{
    const struct mime_node *n = m->root;
    int own_part = 0;  /* n is a non-multipart that a "1" already named */
    for (size_t i = 0; i < sec->nparts && n != NULL; i++) {
        /* A message/rfc822 part reached by a number is entered; the top message's own
         * message/rfc822 body is its part 1 (and 1.1 the embedded body), as Dovecot. */
        if (n->kind == MN_MESSAGE && i > 0) {
            n = n->child;
            own_part = 0;
        }
        if (n != NULL && n->kind == MN_MULTI) {
            const struct mime_node *c = n->child;
            for (unsigned k = 1; c != NULL && k < sec->part[i]; k++)
                c = c->next;
            n = c;
        } else if (sec->part[i] != 1 || own_part) {
            n = NULL;  /* a leaf has only itself as part 1, and no 1.1 */
        } else {
            own_part = 1;
        }
    }
    return n;
}

struct field { int64_t off; GMimeHeader *h; };

static int field_cmp(const void *a, const void *b)
{
    const struct field *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

static int wanted_n(const struct imap_section *sec, const char *name, size_t len)
{
    for (size_t i = 0; i < sec->nfields; i++)
        if (strlen(sec->fields[i]) == len && g_ascii_strncasecmp(sec->fields[i], name, len) == 0)
            return sec->text == IMAP_SECTION_HEADER_FIELDS;
    return sec->text == IMAP_SECTION_HEADER_FIELDS_NOT;
}

static int wanted(const struct imap_section *sec, const char *name)
{
    return wanted_n(sec, name, strlen(name));
}

/* The end of the line starting at i in buf[0, len), after its '\n' (or len). */
static size_t line_end(const char *buf, size_t len, size_t i)
{
    const char *nl = memchr(buf + i, '\n', len - i);
    return nl != NULL ? (size_t)(nl - buf) + 1 : len;
}

/* HEADER.FIELDS(.NOT) of the top header when it is all in the first read (m->head): a
 * scan of its lines, no GMime (parsing a header with GMime per message made FETCH 1:*
 * BODY.PEEK[HEADER.FIELDS (...)] run at a tenth of BODY.PEEK[HEADER]'s speed). A field is
 * a line "name:" and the lines after it that start with SP or HT (folds kept); the name
 * matches without ASCII case and without blanks before the colon. Lines that are no field
 * (no colon, a fold with no field before it) are left out, as GMime leaves them out. */
static void scan_fields(const struct imap_section *sec, const char *buf, size_t len, struct evbuffer *out)
{
    for (size_t i = 0; i < len;) {
        size_t start = i, first_end = line_end(buf, len, i), end = first_end;
        if (buf[start] == '\n' || (buf[start] == '\r' && first_end == start + 2 && buf[start + 1] == '\n'))
            break;  /* the blank line */
        while (end < len && (buf[end] == ' ' || buf[end] == '\t'))
            end = line_end(buf, len, end);
        i = end;
        const char *colon = memchr(buf + start, ':', first_end - start);
        if (buf[start] == ' ' || buf[start] == '\t' || colon == NULL)
            continue;
        size_t nlen = (size_t)(colon - (buf + start));
        while (nlen > 0 && (buf[start + nlen - 1] == ' ' || buf[start + nlen - 1] == '\t'))
            nlen--;
        if (!wanted_n(sec, buf + start, nlen))
            continue;
        evbuffer_add(out, buf + start, end - start);
        if (buf[end - 1] != '\n')
            evbuffer_add(out, "\r\n", 2);
    }
    evbuffer_add(out, "\r\n", 2);
}

/* The fields of a header (GMime splits them over the message and its body part) that
 * the section selects, in file order, then the blank line. */
static int select_fields(struct imap_msg *m, const struct imap_section *sec, GMimeObject *a,
                         GMimeObject *b, struct evbuffer *out)
{
    GMimeObject *objs[2] = {a, b};
    GArray *fields = g_array_new(FALSE, FALSE, sizeof(struct field));
    for (int k = 0; k < 2; k++) {
        if (objs[k] == NULL)
            continue;
        GMimeHeaderList *hl = g_mime_object_get_header_list(objs[k]);
        int count = g_mime_header_list_get_count(hl);
        for (int i = 0; i < count; i++) {
            struct field f = {0, g_mime_header_list_get_header_at(hl, i)};
            f.off = mime_fpos(m, g_mime_header_get_offset(f.h));
            if (f.off >= 0 && wanted(sec, g_mime_header_get_name(f.h)))
                g_array_append_val(fields, f);
        }
    }
    g_array_sort(fields, field_cmp);
    int rc = 0;
    for (guint i = 0; i < fields->len && rc == 0; i++) {
        struct field *f = &g_array_index(fields, struct field, i);
        const char *raw_name = g_mime_header_get_raw_name(f->h);
        const char *raw_value = g_mime_header_get_raw_value(f->h);
        /* name ':' raw value: the field's bytes as they are in the file. */
        size_t len = strlen(raw_name) + 1 + (raw_value != NULL ? strlen(raw_value) : 0);
        if (len > IMAP_MIME_HEADER_MAX)
            continue;
        char *bytes = malloc(len + 2);
        long got = bytes != NULL ? mime_pread(m, bytes, len, (uint64_t)f->off) : -1;
        if (got < 0) {
            rc = -1;
        } else {
            if (got == 0 || bytes[got - 1] != '\n') {
                memcpy(bytes + got, "\r\n", 2);
                got += 2;
            }
            evbuffer_add(out, bytes, (size_t)got);
        }
        free(bytes);
    }
    g_array_free(fields, TRUE);
    evbuffer_add(out, "\r\n", 2);
    return rc;
}

static int resolve(struct imap_msg *m, const struct imap_section *sec, struct sec_data *d)
{
    memset(d, 0, sizeof *d);
    int top = sec->nparts == 0;
    if (top && (sec->text == IMAP_SECTION_ALL || sec->text == IMAP_SECTION_HEADER || sec->text == IMAP_SECTION_TEXT)) {
        /* The top level needs no structure, and no GMime: the header's end is a byte
         * scan (FETCH 1:* BODY.PEEK[HEADER] of a big folder is exactly this). */
        if (mime_need_hdr_len(m) < 0)
            return -1;
        d->off = sec->text == IMAP_SECTION_TEXT ? m->hdr_len : 0;
        d->len = sec->text == IMAP_SECTION_HEADER ? m->hdr_len : m->size - d->off;
        if (sec->text == IMAP_SECTION_ALL)
            d->len = m->size;
        return 0;
    }
    if (top) {
        if (mime_need_hdr_len(m) < 0)
            return -1;
        if (m->hdr_len <= m->head_len) {
            d->buf = evbuffer_new();
            if (d->buf == NULL)
                return -1;
            scan_fields(sec, m->head, (size_t)m->hdr_len, d->buf);
            return 0;
        }
    }
    if (mime_need_header(m) < 0)
        return -1;
    if (top) {
        /* A header longer than the first read: GMime's fields (it sees a bounded part of
         * a huge header, mime.h). */
        GMimeObject *body = g_mime_message_get_mime_part(m->hmsg);
        d->buf = evbuffer_new();
        return d->buf == NULL ? -1 : select_fields(m, sec, (GMimeObject *)m->hmsg, body, d->buf);
    }
    if (mime_need_full(m) < 0)
        return -1;
    const struct mime_node *n = find_part(m, sec);
    if (n == NULL)
        return 0;
    const struct mime_node *e = n->kind == MN_MESSAGE ? n->child : NULL;
    switch (sec->text) {
    case IMAP_SECTION_ALL:
        d->off = n->body_begin;
        d->len = n->body_end - n->body_begin;
        break;
    case IMAP_SECTION_MIME:
        d->off = n->hdr_begin;
        d->len = n->body_begin - n->hdr_begin;
        break;
    case IMAP_SECTION_HEADER:
    case IMAP_SECTION_TEXT:
        if (e != NULL) {
            /* HEADER then TEXT are the part's body whole: TEXT runs to the part's end,
             * even where the embedded body's own size (BODYSTRUCTURE) stops short of it. */
            d->off = sec->text == IMAP_SECTION_HEADER ? e->hdr_begin : e->body_begin;
            d->len = sec->text == IMAP_SECTION_HEADER ? e->body_begin - e->hdr_begin
                                                      : (n->body_end > e->body_begin ? n->body_end - e->body_begin : 0);
        }
        break;
    case IMAP_SECTION_HEADER_FIELDS:
    case IMAP_SECTION_HEADER_FIELDS_NOT:
        if (e == NULL)
            break;
        d->buf = evbuffer_new();
        return d->buf == NULL ? -1 : select_fields(m, sec, (GMimeObject *)n->msg, e->obj, d->buf);
    }
    return 0;
}

static int add_range(struct imap_msg *m, uint64_t off, uint64_t len, struct evbuffer *out)
{
    if (off + len <= m->head_len)
        return evbuffer_add(out, m->head + off, (size_t)len);  /* read already */
    if (len > COPY_MAX) {
        int fd = dup(m->fd);
        /* evbuffer_add_file owns (and closes) the dup: the bytes leave without a copy. */
        if (fd >= 0 && evbuffer_add_file(out, fd, (ev_off_t)off, (ev_off_t)len) == 0)
            return 0;
        if (fd >= 0)
            close(fd);
    }
    while (len > 0) {
        struct evbuffer_iovec v;
        size_t want = len > COPY_MAX ? COPY_MAX : (size_t)len;
        if (evbuffer_reserve_space(out, (ev_ssize_t)want, &v, 1) < 1)
            return -1;
        long got = mime_pread(m, v.iov_base, want, off);
        if (got != (long)want)
            return -1;  /* the file shrank under us */
        v.iov_len = want;
        evbuffer_commit_space(out, &v, 1);
        off += want;
        len -= want;
    }
    return 0;
}

static void clip(uint64_t total, int partial, uint64_t origin, uint64_t count, uint64_t *from, uint64_t *n)
{
    *from = 0;
    *n = total;
    if (!partial)
        return;
    *from = origin < total ? origin : total;
    *n = total - *from < count ? total - *from : count;
}

int imap_msg_section_write(struct imap_msg *m, const struct imap_section *sec, int partial,
                           uint64_t origin, uint64_t count, struct evbuffer *out)
{
    struct sec_data d;
    if (resolve(m, sec, &d) < 0) {
        if (d.buf != NULL)
            evbuffer_free(d.buf);
        return -1;
    }
    uint64_t total = d.buf != NULL ? evbuffer_get_length(d.buf) : d.len, from, n;
    clip(total, partial, origin, count, &from, &n);
    /* Into a scratch buffer first: a read error half way must not leave a literal with
     * fewer bytes than it announced in out (moving a file segment on does not copy it). */
    struct evbuffer *tmp = evbuffer_new();
    int rc = tmp != NULL ? 0 : -1;
    if (rc == 0) {
        imap_write_literal_head(tmp, (size_t)n, 0);
        if (d.buf != NULL) {
            evbuffer_drain(d.buf, (size_t)from);
            evbuffer_remove_buffer(d.buf, tmp, (size_t)n);
        } else if (n > 0) {
            rc = add_range(m, d.off + from, n, tmp);
        }
        if (rc == 0)
            rc = evbuffer_add_buffer(out, tmp);
        evbuffer_free(tmp);
    }
    if (d.buf != NULL)
        evbuffer_free(d.buf);
    return rc;
}

int64_t imap_msg_section_size(struct imap_msg *m, const struct imap_section *sec)
{
    struct sec_data d;
    int rc = resolve(m, sec, &d);
    int64_t size = d.buf != NULL ? (int64_t)evbuffer_get_length(d.buf) : (int64_t)d.len;
    if (d.buf != NULL)
        evbuffer_free(d.buf);
    return rc < 0 ? -1 : size;
}

/* ---- BINARY ---- */

/* The section's bytes with the transfer encoding of a leaf part undone, into *dec. */
static int binary_bytes(struct imap_msg *m, const struct imap_section *sec, GByteArray **dec)
{
    struct sec_data d;
    *dec = NULL;
    if (resolve(m, sec, &d) < 0)
        return -1;
    GByteArray *raw = g_byte_array_sized_new((guint)d.len);
    g_byte_array_set_size(raw, (guint)d.len);
    if (d.len > 0 && mime_pread(m, raw->data, (size_t)d.len, d.off) != (long)d.len) {
        g_byte_array_unref(raw);
        return -1;
    }
    const struct mime_node *n = sec->nparts > 0 ? find_part(m, sec) : NULL;
    GMimeContentEncoding enc = GMIME_CONTENT_ENCODING_DEFAULT;
    if (n != NULL && n->kind == MN_LEAF && GMIME_IS_PART(n->obj)) {
        char *cte = mime_raw_header(n->obj, "Content-Transfer-Encoding");
        if (cte != NULL) {
            g_strstrip(cte);
            enc = g_mime_content_encoding_from_string(cte);
            int unknown = enc == GMIME_CONTENT_ENCODING_DEFAULT;
            g_free(cte);
            if (unknown) {
                g_byte_array_unref(raw);
                return -2;
            }
        }
    }
    if (enc != GMIME_CONTENT_ENCODING_BASE64 && enc != GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE &&
        enc != GMIME_CONTENT_ENCODING_UUENCODE) {
        *dec = raw;
        return 0;
    }
    GMimeStream *src = g_mime_stream_mem_new_with_byte_array(raw);  /* owns raw */
    GMimeStream *dst = g_mime_stream_mem_new();
    GMimeStream *filt = g_mime_stream_filter_new(dst);
    GMimeFilter *f = g_mime_filter_basic_new(enc, FALSE);
    g_mime_stream_filter_add((GMimeStreamFilter *)filt, f);
    g_object_unref(f);
    g_mime_stream_write_to_stream(src, filt);
    g_mime_stream_flush(filt);
    /* Take dst's array: it must not free it (g_byte_array_free ignores other refs). */
    g_mime_stream_mem_set_owner((GMimeStreamMem *)dst, FALSE);
    *dec = g_mime_stream_mem_get_byte_array((GMimeStreamMem *)dst);
    g_object_unref(filt);
    g_object_unref(dst);
    g_object_unref(src);
    return 0;
}

int imap_msg_binary_write(struct imap_msg *m, const struct imap_section *sec, int partial,
                          uint64_t origin, uint64_t count, struct evbuffer *out)
{
    GByteArray *dec;
    int rc = binary_bytes(m, sec, &dec);
    if (rc < 0)
        return rc;
    uint64_t from, n;
    clip(dec->len, partial, origin, count, &from, &n);
    /* An empty part's array may have no data at all (NULL): no arithmetic on it. */
    const char *bytes = n > 0 ? (const char *)dec->data + from : "";
    imap_write_literal(out, bytes, (size_t)n, n > 0 && memchr(bytes, 0, (size_t)n) != NULL);
    g_byte_array_unref(dec);
    return 0;
}

int64_t imap_msg_binary_size(struct imap_msg *m, const struct imap_section *sec)
{
    GByteArray *dec;
    int rc = binary_bytes(m, sec, &dec);
    if (rc < 0)
        return rc;
    int64_t size = dec->len;
    g_byte_array_unref(dec);
    return size;
}
