/* The milter protocol codec (milter_proto.h). */
#include "milter_proto.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int why_not(char *why, size_t size, const char *what)
{
    snprintf(why, size, "%s", what);
    return -1;
}

/* One packet from parts (each data + len). */
static int put(struct evbuffer *out, char cmd, const void *const *parts, const size_t *lens, int n)
{
    size_t total = 1;
    for (int i = 0; i < n; i++)
        total += lens[i];
    if (total - 1 > MILTER_MAX_PACKET)
        return -1;
    unsigned char head[5];
    uint32_t be = htonl((uint32_t)total);
    memcpy(head, &be, 4);
    head[4] = (unsigned char)cmd;
    if (evbuffer_expand(out, total + 4) < 0 || evbuffer_add(out, head, 5) < 0)
        return -1;
    for (int i = 0; i < n; i++)
        if (lens[i] && evbuffer_add(out, parts[i], lens[i]) < 0)
            return -1;
    return 0;
}

/* Strings, each with its NUL. */
static int put_strings(struct evbuffer *out, char cmd, const char *prefix, size_t plen, const char *const *s, int n)
{
    const void *parts[64];
    size_t lens[64];
    int k = 0;
    if (n > 62)
        return -1;
    if (plen)
        parts[k] = prefix, lens[k++] = plen;
    for (int i = 0; i < n; i++)
        parts[k] = s[i], lens[k++] = strlen(s[i]) + 1;
    return put(out, cmd, parts, lens, k);
}

int milter_enc_optneg(struct evbuffer *out, uint32_t version, uint32_t actions, uint32_t protocol)
{
    uint32_t v[3] = {htonl(version), htonl(actions), htonl(protocol)};
    const void *parts[1] = {v};
    size_t lens[1] = {sizeof v};
    return put(out, SMFIC_OPTNEG, parts, lens, 1);
}

int milter_enc_macros(struct evbuffer *out, char cmd, const char *const *names, const char *const *values, int n)
{
    const char *s[62];
    int k = 0;
    for (int i = 0; i < n && k + 2 <= 62; i++) {
        if (!values[i])
            continue;
        s[k++] = names[i];
        s[k++] = values[i];
    }
    return put_strings(out, SMFIC_MACRO, &cmd, 1, s, k);
}

int milter_enc_connect(struct evbuffer *out, const char *host, char family, uint16_t port, const char *addr)
{
    unsigned char mid[3] = {(unsigned char)family, (unsigned char)(port >> 8), (unsigned char)(port & 0xff)};
    const void *parts[4] = {host, mid, addr};
    size_t lens[4] = {strlen(host) + 1, family == 'U' ? 1 : 3, family == 'U' ? 0 : strlen(addr) + 1};
    return put(out, SMFIC_CONNECT, parts, lens, 3);
}

int milter_enc_helo(struct evbuffer *out, const char *helo)
{
    return put_strings(out, SMFIC_HELO, NULL, 0, &helo, 1);
}

int milter_enc_envelope(struct evbuffer *out, char cmd, const char *address, const char *const *args, int nargs)
{
    const char *s[62];
    if (nargs > 60)
        return -1;
    char *bracketed = malloc(strlen(address) + 3);
    if (!bracketed)
        return -1;
    sprintf(bracketed, "<%s>", address);
    s[0] = bracketed;
    for (int i = 0; i < nargs; i++)
        s[i + 1] = args[i];
    int rc = put_strings(out, cmd, NULL, 0, s, nargs + 1);
    free(bracketed);
    return rc;
}

int milter_enc_header(struct evbuffer *out, const char *name, const char *value)
{
    const char *s[2] = {name, value};
    return put_strings(out, SMFIC_HEADER, NULL, 0, s, 2);
}

int milter_enc_body(struct evbuffer *out, const void *data, size_t len)
{
    if (len > MILTER_BODY_CHUNK)
        return -1;
    const void *parts[1] = {data};
    size_t lens[1] = {len};
    return put(out, SMFIC_BODY, parts, lens, 1);
}

int milter_enc_simple(struct evbuffer *out, char cmd) { return put(out, cmd, NULL, NULL, 0); }

int milter_frame(struct evbuffer *in, char *cmd, unsigned char **data, size_t *len)
{
    unsigned char head[5];
    if (evbuffer_copyout(in, head, 5) < 5) {
        /* The length alone may already tell a bad packet. */
        if (evbuffer_get_length(in) < 4)
            return 0;
    }
    uint32_t be;
    memcpy(&be, head, 4);
    uint32_t total = ntohl(be);
    if (total == 0 || total - 1 > MILTER_MAX_PACKET)
        return -1;
    if (evbuffer_get_length(in) < (size_t)total + 4)
        return 0;
    unsigned char *d = malloc(total); /* total - 1 data octets and a NUL */
    if (!d)
        return -1;
    evbuffer_drain(in, 5);
    evbuffer_remove(in, d, total - 1);
    d[total - 1] = '\0';
    *cmd = (char)head[4];
    *data = d;
    *len = total - 1;
    return 1;
}

int milter_strings(const unsigned char *data, size_t len, const char **out, int max)
{
    int n = 0;
    size_t i = 0;
    while (i < len) {
        const unsigned char *nul = memchr(data + i, 0, len - i);
        if (!nul)
            return -1;
        if (n < max)
            out[n] = (const char *)data + i;
        n++;
        i = (size_t)(nul - data) + 1;
    }
    return n;
}

static uint32_t get32(const unsigned char *p)
{
    uint32_t be;
    memcpy(&be, p, 4);
    return ntohl(be);
}

/* RFC 5322 2.2: printable ASCII but ':', at most a line. */
static int header_name_ok(const char *n)
{
    size_t len = strlen(n);
    if (len == 0 || len > 998)
        return 0;
    for (const unsigned char *p = (const unsigned char *)n; *p; p++)
        if (*p < 33 || *p > 126 || *p == ':')
            return 0;
    return 1;
}

/* Folded with LF or CRLF (turned into CRLF when applied); a CR not before LF is refused. */
static int header_value_ok(const char *v)
{
    size_t len = strlen(v);
    if (len > 64 * 1024)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (v[i] == '\r' && v[i + 1] != '\n')
            return 0;
    return 1;
}

/* "4xx x.y.z text" / "5xx ...": printable lines, a 4xx or 5xx code. */
static int reply_text_ok(const char *t)
{
    size_t len = strlen(t);
    if (len < 3 || len > MILTER_MAX_REPLY_TEXT)
        return 0;
    if ((t[0] != '4' && t[0] != '5') || t[1] < '0' || t[1] > '9' || t[2] < '0' || t[2] > '9')
        return 0;
    if (t[3] && t[3] != ' ' && t[3] != '-')
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (t[i] == '\r' && t[i + 1] == '\n') { /* smfi_setmlreply's lines: the glue takes the first */
            i++;
            continue;
        }
        if ((unsigned char)t[i] < 0x20 || t[i] == 0x7f)
            return 0;
    }
    return 1;
}

/* Exactly n strings, each ended inside the data. */
static int strings_exactly(const unsigned char *data, size_t len, const char **s, int n)
{
    return milter_strings(data, len, s, n) == n;
}

int milter_decode_reply(char cmd, const unsigned char *data, size_t len, struct milter_reply *r, char *why,
                        size_t whysize)
{
    memset(r, 0, sizeof *r);
    r->code = cmd;
    const char *s[2];
    switch (cmd) {
    case SMFIC_OPTNEG:
        if (len < 12)
            return why_not(why, whysize, "short OPTNEG");
        r->version = get32(data);
        r->actions = get32(data + 4);
        r->protocol = get32(data + 8);
        return 0; /* what follows (macro lists, SETSYMLIST) is ignored: we send our own set */
    case SMFIR_ACCEPT:
    case SMFIR_CONTINUE:
    case SMFIR_DISCARD:
    case SMFIR_REJECT:
    case SMFIR_TEMPFAIL:
    case SMFIR_PROGRESS:
    case SMFIR_SKIP:
    case SMFIR_SHUTDOWN:
    case SMFIR_CONN_FAIL:
        if (len != 0)
            return why_not(why, whysize, "data after a reply that has none");
        return 0;
    case SMFIR_REPLYCODE:
        if (!strings_exactly(data, len, s, 1) || !reply_text_ok(s[0]))
            return why_not(why, whysize, "REPLYCODE is not a 4xx/5xx reply line");
        r->text = s[0];
        return 0;
    case SMFIR_QUARANTINE:
        if (!strings_exactly(data, len, s, 1) || strlen(s[0]) > MILTER_MAX_REPLY_TEXT)
            return why_not(why, whysize, "bad QUARANTINE reason");
        for (const unsigned char *p = (const unsigned char *)s[0]; *p; p++)
            if (*p < 0x20 || *p == 0x7f)
                return why_not(why, whysize, "QUARANTINE reason holds a control character");
        r->text = s[0];
        return 0;
    case SMFIR_ADDHEADER:
        if (!strings_exactly(data, len, s, 2))
            return why_not(why, whysize, "ADDHEADER is not name and value");
        break;
    case SMFIR_CHGHEADER:
    case SMFIR_INSHEADER:
        if (len < 4 || !strings_exactly(data + 4, len - 4, s, 2))
            return why_not(why, whysize, "CHGHEADER/INSHEADER is not index, name and value");
        r->index = get32(data);
        break;
    case SMFIR_REPLBODY:
        r->body = data;
        r->body_len = len;
        return 0;
    case SMFIR_ADDRCPT:
    case SMFIR_DELRCPT:
    case SMFIR_ADDRCPT_PAR:
    case SMFIR_CHGFROM:
    case SMFIR_SETSYMLIST:
        return why_not(why, whysize, "an action we did not offer");
    default:
        return why_not(why, whysize, "unknown reply code");
    }
    if (!header_name_ok(s[0]) || !header_value_ok(s[1]))
        return why_not(why, whysize, "bad header name or value");
    r->name = s[0];
    r->value = s[1];
    return 0;
}
