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

static void write_rfc2231(struct evbuffer *out, GMimeParam *p)
{
    /* GMime decoded name*=charset'lang'%XX (and its continuations); Dovecot sends the
     * encoded form, so encode it back: charset as GMime names it, bytes of the value in
     * that charset (UTF-8 when it cannot convert), attribute-chars literally. */
    const char *cs = g_mime_param_get_charset(p);
    const char *lang = g_mime_param_get_lang(p);
    const char *value = g_mime_param_get_value(p);
    char *conv = NULL;
    if (cs != NULL && g_ascii_strcasecmp(cs, "utf-8") != 0)
        conv = g_convert(value, -1, cs, "UTF-8", NULL, NULL, NULL);
    const unsigned char *v = (const unsigned char *)(conv != NULL ? conv : value);
    GString *g = g_string_new(NULL);
    g_string_append_printf(g, "%s'%s'", cs != NULL && (conv != NULL || g_ascii_strcasecmp(cs, "utf-8") == 0) ? cs : "utf-8",
                           lang != NULL ? lang : "");
    for (; *v != '\0'; v++) {
        if (*v > 0x20 && *v < 0x7f && strchr("*'%()<>@,;:\\\"/[]?=", *v) == NULL)
            g_string_append_c(g, (char)*v);
        else
            g_string_append_printf(g, "%%%02X", *v);
    }
    char *name = g_strconcat(g_mime_param_get_name(p), "*", NULL);
    imap_write_nstring(out, name);
    evbuffer_add(out, " ", 1);
    imap_write_string(out, g->str, g->len);
    g_free(name);
    g_string_free(g, TRUE);
    g_free(conv);
}

static void write_params(struct evbuffer *out, GMimeParamList *list, int default_charset)
{
    int n = list != NULL ? g_mime_param_list_length(list) : 0;
    int seen_charset = 0;
    if (n == 0 && !default_charset) {
        evbuffer_add(out, "NIL", 3);
        return;
    }
    evbuffer_add(out, "(", 1);
    for (int i = 0; i < n; i++) {
        GMimeParam *p = g_mime_param_list_get_parameter_at(list, i);
        if (i > 0)
            evbuffer_add(out, " ", 1);
        if (g_ascii_strcasecmp(g_mime_param_get_name(p), "charset") == 0)
            seen_charset = 1;
        if (g_mime_param_get_encoding_method(p) == GMIME_PARAM_ENCODING_METHOD_RFC2231) {
            write_rfc2231(out, p);
            continue;
        }
        const char *value = g_mime_param_get_value(p) != NULL ? g_mime_param_get_value(p) : "";
        imap_write_nstring(out, g_mime_param_get_name(p));
        evbuffer_add(out, " ", 1);
        if (g_mime_param_get_encoding_method(p) == GMIME_PARAM_ENCODING_METHOD_RFC2047 ||
            !imap_quotable(value, strlen(value))) {
            /* GMime decoded name="=?...?=" (Dovecot sends it as it came): encoded words
             * again, so the value stays 7-bit; their spelling may differ from the file's. */
            const char *cs = g_mime_param_get_charset(p);
            char *enc = g_mime_utils_header_encode_text(NULL, value, cs != NULL ? cs : "UTF-8");
            imap_write_nstring(out, enc);
            g_free(enc);
        } else {
            imap_write_nstring(out, value);
        }
    }
    if (default_charset && !seen_charset)
        evbuffer_add_printf(out, "%s\"charset\" \"us-ascii\"", n > 0 ? " " : "");
    evbuffer_add(out, ")", 1);
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
        write_params(out, g_mime_content_disposition_get_parameters(d), 0);
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
    write_params(out, g_mime_content_type_get_parameters(ct), 0);
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
    write_params(out, ct != NULL ? g_mime_content_type_get_parameters(ct) : NULL, text);
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
