/* ENVELOPE (RFC 9051 §7.5.2) of a message's header, as Dovecot writes it: fields raw
 * (RFC 2047 encoded words left for the client to decode), the subject and address names
 * cleaned for humans, the last occurrence of a text field winning and the addresses of
 * all occurrences of an address field listed, sender and reply-to defaulting to from. Addresses are parsed by GMime; it decodes encoded words in display
 * names, which ENVELOPE must not do, so "=?" is hidden from it and put back afterwards. */
#include <string.h>

#include <event2/buffer.h>

#include "istring.h"
#include "mime_int.h"

/* A Unicode private-use character stands for '=' before '?' while GMime parses. */
#define EQ_MARK "\xee\x80\x80"
#define EQ_MARK_LEN 3

/* The raw value of the last field called name (Dovecot keeps the last), as
 * mime_raw_header trims it. g_free it. */
static char *last_raw(GMimeObject *obj, const char *name)
{
    GMimeHeaderList *hl = g_mime_object_get_header_list(obj);
    const char *raw = NULL;
    int count = g_mime_header_list_get_count(hl);
    for (int i = 0; i < count; i++) {
        GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
        if (g_ascii_strcasecmp(g_mime_header_get_name(h), name) == 0)
            raw = g_mime_header_get_raw_value(h);
    }
    if (raw == NULL)
        return NULL;
    while (*raw == ' ' || *raw == '\t')
        raw++;
    size_t len = strlen(raw);
    if (len > 0 && raw[len - 1] == '\n')
        len--;
    if (len > 0 && raw[len - 1] == '\r')
        len--;
    return g_strndup(raw, len);
}

static char *replace_all(const char *s, const char *from, const char *to)
{
    GString *g = g_string_sized_new(strlen(s) + 16);
    size_t flen = strlen(from);
    for (const char *p; (p = strstr(s, from)) != NULL; s = p + flen) {
        g_string_append_len(g, s, p - s);
        g_string_append(g, to);
    }
    g_string_append(g, s);
    return g_string_free(g, FALSE);
}

static void write_name(struct evbuffer *out, const char *name)
{
    if (name == NULL || *name == '\0') {
        evbuffer_add(out, "NIL", 3);
        return;
    }
    char *raw = replace_all(name, EQ_MARK, "=");
    imap_write_string_for_humans(out, raw, strlen(raw));
    g_free(raw);
}

/* The local part without its quotes ("a b"@c is mailbox a b, as Dovecot sends it). */
static void write_local(struct evbuffer *out, const char *s, size_t len)
{
    if (len < 2 || s[0] != '"' || s[len - 1] != '"') {
        imap_write_string(out, s, len);
        return;
    }
    GString *g = g_string_sized_new(len);
    for (size_t i = 1; i + 1 < len; i++) {
        if (s[i] == '\\' && i + 2 < len)
            i++;
        g_string_append_c(g, s[i]);
    }
    imap_write_string(out, g->str, g->len);
    g_string_free(g, TRUE);
}

static void write_mailbox(struct evbuffer *out, InternetAddressMailbox *mb)
{
    const char *addr = internet_address_mailbox_get_addr(mb);
    const char *at = addr != NULL ? strrchr(addr, '@') : NULL;
    evbuffer_add(out, "(", 1);
    write_name(out, internet_address_get_name((InternetAddress *)mb));
    evbuffer_add(out, " NIL ", 5);
    if (addr == NULL) {
        evbuffer_add(out, "NIL NIL", 7);
    } else {
        /* No domain: Dovecot's placeholder, so clients see the same. */
        size_t llen = at != NULL ? (size_t)(at - addr) : strlen(addr);
        write_local(out, addr, llen);
        evbuffer_add(out, " ", 1);
        imap_write_nstring(out, at != NULL ? at + 1 : "MISSING_DOMAIN");
    }
    evbuffer_add(out, ")", 1);
}

static void write_list(struct evbuffer *out, InternetAddressList *list, int in_group)
{
    int n = list != NULL ? internet_address_list_length(list) : 0;
    for (int i = 0; i < n; i++) {
        InternetAddress *a = internet_address_list_get_address(list, i);
        if (INTERNET_ADDRESS_IS_MAILBOX(a)) {
            write_mailbox(out, (InternetAddressMailbox *)a);
        } else if (INTERNET_ADDRESS_IS_GROUP(a) && !in_group) {
            /* RFC 9051: a group is (NIL NIL name NIL), its members, (NIL NIL NIL NIL). */
            const char *name = internet_address_get_name(a);
            char *raw = replace_all(name != NULL ? name : "", EQ_MARK, "=");
            evbuffer_add(out, "(NIL NIL ", 9);
            imap_write_string(out, raw, strlen(raw));
            evbuffer_add(out, " NIL)", 5);
            g_free(raw);
            write_list(out, internet_address_group_get_members((InternetAddressGroup *)a), 1);
            evbuffer_add(out, "(NIL NIL NIL NIL)", 17);
        }
    }
}

/* Every field called name, joined: Dovecot lists the addresses of all of them. */
static char *all_raw(GMimeObject *obj, const char *name)
{
    GMimeHeaderList *hl = g_mime_object_get_header_list(obj);
    GString *g = NULL;
    int count = g_mime_header_list_get_count(hl);
    for (int i = 0; i < count; i++) {
        GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
        const char *raw = g_mime_header_get_raw_value(h);
        if (raw == NULL || g_ascii_strcasecmp(g_mime_header_get_name(h), name) != 0)
            continue;
        if (g == NULL)
            g = g_string_new(raw);
        else
            g_string_append_printf(g, ",%s", raw);
    }
    return g != NULL ? g_string_free(g, FALSE) : NULL;
}

static InternetAddressList *parse_field(GMimeObject *obj, const char *field)
{
    char *raw = all_raw(obj, field);
    if (raw == NULL)
        return NULL;
    char *hidden = replace_all(raw, "=?", EQ_MARK "?");
    InternetAddressList *list = internet_address_list_parse(g_mime_parser_options_get_default(), hidden);
    g_free(hidden);
    g_free(raw);
    if (list != NULL && internet_address_list_length(list) == 0) {
        g_object_unref(list);
        list = NULL;
    }
    return list;
}

/* fallback: the field used when this one is absent or holds no address (Dovecot). */
static void write_addresses(struct evbuffer *out, GMimeObject *obj, const char *field, const char *fallback)
{
    InternetAddressList *list = parse_field(obj, field);
    if (list == NULL && fallback != NULL)
        list = parse_field(obj, fallback);
    if (list == NULL) {
        evbuffer_add(out, "NIL", 3);
    } else {
        evbuffer_add(out, "(", 1);
        write_list(out, list, 0);
        evbuffer_add(out, ")", 1);
    }
    if (list != NULL)
        g_object_unref(list);
}

static void write_raw(struct evbuffer *out, GMimeObject *obj, const char *field)
{
    char *raw = last_raw(obj, field);
    imap_write_nstring_nolf(out, raw);
    g_free(raw);
}

void mime_write_envelope(struct evbuffer *out, GMimeMessage *msg)
{
    GMimeObject *obj = (GMimeObject *)msg;
    if (obj == NULL) {
        evbuffer_add_printf(out, "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
        return;
    }
    evbuffer_add(out, "(", 1);
    write_raw(out, obj, "Date");
    evbuffer_add(out, " ", 1);
    char *subject = last_raw(obj, "Subject");
    if (subject == NULL)
        evbuffer_add(out, "NIL", 3);
    else
        imap_write_string_for_humans(out, subject, strlen(subject));
    g_free(subject);
    evbuffer_add(out, " ", 1);
    write_addresses(out, obj, "From", NULL);
    evbuffer_add(out, " ", 1);
    write_addresses(out, obj, "Sender", "From");
    evbuffer_add(out, " ", 1);
    write_addresses(out, obj, "Reply-To", "From");
    static const char *const rest[] = {"To", "Cc", "Bcc"};
    for (size_t i = 0; i < sizeof rest / sizeof rest[0]; i++) {
        evbuffer_add(out, " ", 1);
        write_addresses(out, obj, rest[i], NULL);
    }
    evbuffer_add(out, " ", 1);
    write_raw(out, obj, "In-Reply-To");
    evbuffer_add(out, " ", 1);
    write_raw(out, obj, "Message-ID");
    evbuffer_add(out, ")", 1);
}

int imap_msg_envelope(struct imap_msg *m, struct evbuffer *out)
{
    if (mime_need_header(m) < 0)
        return -1;
    mime_write_envelope(out, m->hmsg);
    return 0;
}
