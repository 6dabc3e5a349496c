/* BODY and BODYSTRUCTURE (RFC 9051 §7.5.2) of a parsed part tree, field by field as
 * Dovecot writes them: type and subtype and parameter names as the message spells them,
 * "charset" "us-ascii" added to text parts without one, "7bit" when there is no
 * Content-Transfer-Encoding, sizes and line counts of the bytes in the file, md5 /
 * disposition / language / location only in BODYSTRUCTURE. Recursion follows the tree,
 * whose depth mime.c bounds. */
#include <string.h>

#include <event2/buffer.h>

#include "istring.h"
#include "mime_int.h"

#define EMPTY_BODY "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0"

/* Content-Type's parameters from the field's raw bytes (mime_params.c says why not
 * GMime's decoded list). */
static void write_type_params(struct evbuffer *out, GMimeObject *obj, int default_charset)
{
    char *raw = mime_raw_header(obj, "Content-Type");
    mime_write_params(out, raw, default_charset);
    g_free(raw);
}

static void write_raw_field(struct evbuffer *out, GMimeObject *obj, const char *name)
{
    char *v = mime_raw_header(obj, name);
    imap_write_nstring_nolf(out, v);
    g_free(v);
}

static void write_language(struct evbuffer *out, GMimeObject *obj)
{
    char *v = mime_raw_header(obj, "Content-Language");
    char **tokens = v != NULL ? g_strsplit_set(v, ", \t\r\n", -1) : NULL;
    int written = 0;
    for (char **t = tokens; t != NULL && *t != NULL; t++) {
        if (**t == '\0')
            continue;
        evbuffer_add(out, written++ ? " " : "(", 1);
        imap_write_nstring(out, *t);
    }
    evbuffer_add(out, written ? ")" : "NIL", written ? 1 : 3);
    g_strfreev(tokens);
    g_free(v);
}

/* disposition language location: the extension fields every BODYSTRUCTURE part ends with. */
static void write_common(struct evbuffer *out, GMimeObject *obj)
{
    GMimeContentDisposition *d = obj != NULL ? g_mime_object_get_content_disposition(obj) : NULL;
    evbuffer_add(out, " ", 1);
    if (d == NULL || g_mime_content_disposition_get_disposition(d) == NULL) {
        evbuffer_add(out, "NIL", 3);
    } else {
        evbuffer_add(out, "(", 1);
        imap_write_nstring(out, g_mime_content_disposition_get_disposition(d));
        evbuffer_add(out, " ", 1);
        char *raw = mime_raw_header(obj, "Content-Disposition");
        mime_write_params(out, raw, 0);
        g_free(raw);
        evbuffer_add(out, ")", 1);
    }
    evbuffer_add(out, " ", 1);
    write_language(out, obj);
    evbuffer_add(out, " ", 1);
    write_raw_field(out, obj, "Content-Location");
}

static void write_multipart(struct evbuffer *out, const struct mime_node *n, int extended)
{
    GMimeContentType *ct = g_mime_object_get_content_type(n->obj);
    if (n->child == NULL)
        evbuffer_add_printf(out, "%s%s)", EMPTY_BODY, extended ? " NIL NIL NIL NIL" : "");
    for (const struct mime_node *c = n->child; c != NULL; c = c->next)
        mime_write_body(out, c, extended);
    evbuffer_add(out, " ", 1);
    imap_write_nstring(out, g_mime_content_type_get_media_subtype(ct));
    if (!extended)
        return;
    evbuffer_add(out, " ", 1);
    write_type_params(out, n->obj, 0);
    write_common(out, n->obj);
}

static void write_leaf(struct evbuffer *out, const struct mime_node *n, int extended)
{
    GMimeContentType *ct = n->obj != NULL ? g_mime_object_get_content_type(n->obj) : NULL;
    int text = 1;
    if (n->kind == MN_MESSAGE) {
        evbuffer_add_printf(out, "\"message\" \"rfc822\"");
        text = 0;
    } else if (ct == NULL) {
        evbuffer_add_printf(out, "\"text\" \"plain\"");
    } else {
        const char *type = g_mime_content_type_get_media_type(ct);
        text = g_ascii_strcasecmp(type, "text") == 0;
        imap_write_nstring(out, type);
        evbuffer_add(out, " ", 1);
        imap_write_nstring(out, g_mime_content_type_get_media_subtype(ct));
    }
    evbuffer_add(out, " ", 1);
    write_type_params(out, n->obj, text);
    evbuffer_add(out, " ", 1);
    write_raw_field(out, n->obj, "Content-ID");
    evbuffer_add(out, " ", 1);
    write_raw_field(out, n->obj, "Content-Description");
    evbuffer_add(out, " ", 1);
    char *cte = mime_raw_header(n->obj, "Content-Transfer-Encoding");
    if (cte != NULL) {
        g_strstrip(cte);
        cte[strcspn(cte, " \t\r\n;(")] = '\0';
    }
    if (cte == NULL || *cte == '\0')
        evbuffer_add_printf(out, "\"7bit\"");
    else
        imap_write_nstring(out, cte);
    g_free(cte);
    evbuffer_add_printf(out, " %llu", (unsigned long long)(n->body_end - n->body_begin));
    if (text) {
        evbuffer_add_printf(out, " %llu", (unsigned long long)n->lines);
    } else if (n->kind == MN_MESSAGE) {
        evbuffer_add(out, " ", 1);
        mime_write_envelope(out, n->msg);
        evbuffer_add(out, " ", 1);
        if (n->child != NULL)
            mime_write_body(out, n->child, extended);
        else
            evbuffer_add_printf(out, "%s%s)", EMPTY_BODY, extended ? " NIL NIL NIL NIL" : "");
        evbuffer_add_printf(out, " %llu", (unsigned long long)n->lines);
    }
    if (!extended)
        return;
    evbuffer_add(out, " ", 1);
    write_raw_field(out, n->obj, "Content-MD5");
    write_common(out, n->obj);
}

void mime_write_body(struct evbuffer *out, const struct mime_node *n, int extended)
{
    evbuffer_add(out, "(", 1);
    if (n->kind == MN_MULTI)
        write_multipart(out, n, extended);
    else
        write_leaf(out, n, extended);
    evbuffer_add(out, ")", 1);
}

int imap_msg_bodystructure(struct imap_msg *m, int extended, struct evbuffer *out)
{
    if (mime_need_full(m) < 0)
        return -1;
    mime_write_body(out, m->root, extended);
    return 0;
}
