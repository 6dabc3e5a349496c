/* What SEARCH reads of a message (mime.h "SEARCH"): decoded header values (GMime's
 * unfolded, RFC 2047 decoded values), body text (each text/ part's transfer encoding
 * undone and charset converted to UTF-8 by GMime filters, other leaves raw), and
 * case-insensitive substring tests over them with Unicode case folding. The body is read
 * in chunks, so memory stays bounded whatever the part's size. */
#include <string.h>

#include "mime_int.h"

#define CHUNK (64 * 1024)

struct field { int64_t off; GMimeHeader *h; };

static int field_cmp(const void *a, const void *b)
{
    const struct field *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

int imap_msg_headers_each(struct imap_msg *m, const char *name,
                          int (*fn)(const char *name, const char *value, void *arg), void *arg)
{
    if (mime_need_header(m) < 0)
        return -1;
    GMimeObject *objs[2] = {(GMimeObject *)m->hmsg, g_mime_message_get_mime_part(m->hmsg)};
    GArray *fields = g_array_new(FALSE, FALSE, sizeof(struct field));
    for (int k = 0; k < 2; k++) {
        if (objs[k] == NULL)
            continue;
        GMimeHeaderList *hl = g_mime_object_get_header_list(objs[k]);
        int count = g_mime_header_list_get_count(hl);
        for (int i = 0; i < count; i++) {
            struct field f = {0, g_mime_header_list_get_header_at(hl, i)};
            f.off = g_mime_header_get_offset(f.h);
            if (name == NULL || g_ascii_strcasecmp(g_mime_header_get_name(f.h), name) == 0)
                g_array_append_val(fields, f);
        }
    }
    g_array_sort(fields, field_cmp);
    int rc = 0;
    for (guint i = 0; i < fields->len && rc == 0; i++) {
        GMimeHeader *h = g_array_index(fields, struct field, i).h;
        const char *v = g_mime_header_get_value(h);
        rc = fn(g_mime_header_get_name(h), v != NULL ? v : "", arg);
    }
    g_array_free(fields, TRUE);
    return rc;
}

/* Feed bytes through the filters (may be none) and on to fn in chunks. */
static int filter_out(GMimeFilter **filters, int nf, char *in, size_t len, int complete,
                      int (*fn)(const char *, size_t, void *), void *arg)
{
    char *data = in;
    size_t n = len, prespace = 0;
    for (int i = 0; i < nf; i++) {
        char *o;
        size_t olen, opre;
        if (complete)
            g_mime_filter_complete(filters[i], data, n, prespace, &o, &olen, &opre);
        else
            g_mime_filter_filter(filters[i], data, n, prespace, &o, &olen, &opre);
        data = o;
        n = olen;
        prespace = opre;
    }
    return n > 0 ? fn(data, n, arg) : 0;
}

static int leaf_text(struct imap_msg *m, const struct mime_node *n,
                     int (*fn)(const char *, size_t, void *), void *arg)
{
    static char buf[CHUNK];
    GMimeFilter *filters[2];
    int nf = 0;
    GMimeContentType *ct = n->obj != NULL ? g_mime_object_get_content_type(n->obj) : NULL;
    int text = ct == NULL || g_ascii_strcasecmp(g_mime_content_type_get_media_type(ct), "text") == 0;
    if (text && n->obj != NULL && GMIME_IS_PART(n->obj)) {
        GMimeContentEncoding enc = g_mime_part_get_content_encoding((GMimePart *)n->obj);
        if (enc == GMIME_CONTENT_ENCODING_BASE64 || enc == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE ||
            enc == GMIME_CONTENT_ENCODING_UUENCODE)
            filters[nf++] = g_mime_filter_basic_new(enc, FALSE);
        const char *cs = ct != NULL ? g_mime_content_type_get_parameter(ct, "charset") : NULL;
        if (cs != NULL && g_ascii_strcasecmp(cs, "utf-8") != 0 && g_ascii_strcasecmp(cs, "us-ascii") != 0) {
            GMimeFilter *f = g_mime_filter_charset_new(cs, "UTF-8");
            if (f != NULL)
                filters[nf++] = f;
        }
    }
    int rc = 0;
    for (uint64_t off = n->body_begin; off < n->body_end && rc == 0;) {
        size_t want = n->body_end - off > CHUNK ? CHUNK : (size_t)(n->body_end - off);
        long got = mime_pread(m, buf, want, off);
        if (got <= 0) {
            rc = got < 0 ? -1 : 0;
            break;
        }
        off += (uint64_t)got;
        rc = filter_out(filters, nf, buf, (size_t)got, off >= n->body_end, fn, arg);
    }
    for (int i = 0; i < nf; i++)
        g_object_unref(filters[i]);
    return rc;
}

static int walk(struct imap_msg *m, const struct mime_node *n,
                int (*fn)(const char *, size_t, void *), void *arg)
{
    int rc = 0;
    if (n->kind == MN_LEAF)
        return leaf_text(m, n, fn, arg);
    for (const struct mime_node *c = n->child; c != NULL && rc == 0; c = c->next)
        rc = walk(m, c, fn, arg);
    return rc;
}

int imap_msg_body_each(struct imap_msg *m, int (*fn)(const char *s, size_t len, void *arg), void *arg)
{
    if (mime_need_full(m) < 0)
        return -1;
    return walk(m, m->root, fn, arg);
}

/* ---- substring tests ---- */

struct finder {
    char *needle;       /* case folded */
    size_t nlen;
    GString *tail;      /* the end of the previous chunk, so a match across chunks counts */
};

static int find_in(struct finder *f, const char *s, size_t len)
{
    g_string_append_len(f->tail, s, (gssize)len);
    char *valid = g_utf8_make_valid(f->tail->str, (gssize)f->tail->len);
    char *folded = g_utf8_casefold(valid, -1);
    int hit = strstr(folded, f->needle) != NULL;
    g_free(folded);
    g_free(valid);
    /* Keep enough bytes to hold the needle again (folding changes lengths a little),
     * starting at a UTF-8 character boundary. */
    size_t keep = f->nlen * 4 + 8;
    if (f->tail->len > keep) {
        size_t cut = f->tail->len - keep;
        while (cut < f->tail->len && ((unsigned char)f->tail->str[cut] & 0xc0) == 0x80)
            cut++;
        g_string_erase(f->tail, 0, (gssize)cut);
    }
    return hit;
}

static int body_chunk(const char *s, size_t len, void *arg)
{
    return find_in(arg, s, len);
}

static int header_value(const char *name, const char *value, void *arg)
{
    struct finder *f = arg;
    (void)name;
    g_string_truncate(f->tail, 0);  /* each value alone */
    return find_in(f, value, strlen(value)) ? 1 : 0;
}

static int header_line(const char *name, const char *value, void *arg)
{
    struct finder *f = arg;
    g_string_truncate(f->tail, 0);
    char *line = g_strconcat(name, ": ", value, NULL);
    int hit = find_in(f, line, strlen(line));
    g_free(line);
    return hit;
}

static void finder_init(struct finder *f, const char *needle)
{
    char *valid = g_utf8_make_valid(needle, -1);
    f->needle = g_utf8_casefold(valid, -1);
    f->nlen = strlen(f->needle);
    f->tail = g_string_new(NULL);
    g_free(valid);
}

static void finder_free(struct finder *f)
{
    g_free(f->needle);
    g_string_free(f->tail, TRUE);
}

static int any_field(const char *name, const char *value, void *arg)
{
    (void)name, (void)value, (void)arg;
    return 1;
}

int imap_msg_header_contains(struct imap_msg *m, const char *name, const char *needle)
{
    if (*needle == '\0')
        return imap_msg_headers_each(m, name, any_field, NULL);
    struct finder f;
    finder_init(&f, needle);
    int rc = imap_msg_headers_each(m, name, header_value, &f);
    finder_free(&f);
    return rc;
}

int imap_msg_body_contains(struct imap_msg *m, const char *needle)
{
    if (*needle == '\0')
        return mime_need_full(m) < 0 ? -1 : 1;
    struct finder f;
    finder_init(&f, needle);
    int rc = imap_msg_body_each(m, body_chunk, &f);
    finder_free(&f);
    return rc;
}

int imap_msg_text_contains(struct imap_msg *m, const char *needle)
{
    if (*needle == '\0')
        return mime_need_header(m) < 0 ? -1 : 1;
    struct finder f;
    finder_init(&f, needle);
    int rc = imap_msg_headers_each(m, NULL, header_line, &f);
    finder_free(&f);
    return rc != 0 ? rc : imap_msg_body_contains(m, needle);
}

int imap_msg_sent_date(struct imap_msg *m, int *year, int *month, int *day)
{
    if (mime_need_header(m) < 0 || g_mime_object_get_header((GMimeObject *)m->hmsg, "Date") == NULL)
        return -1;
    GDateTime *dt = g_mime_message_get_date(m->hmsg);
    if (dt == NULL)
        return -1;
    g_date_time_get_ymd(dt, year, month, day);
    return 0;
}
