/* A message file (imapd/mime.h: GMime's parse, envelope.c, bodystructure.c, section.c,
 * mime_search.c, istring.c's output): the input is the file, served as FETCH and SEARCH
 * would: ENVELOPE, BODY and BODYSTRUCTURE, then every section of every part down to depth 3
 * (BODY[p], p.HEADER, p.TEXT, p.MIME, p.HEADER.FIELDS(.NOT), a partial of each, BINARY[p]
 * and BINARY.SIZE[p]) and the SEARCH helpers. The items go in either order (the lazy
 * header-only parse first, or the whole one), as a FETCH may ask them.
 *
 * Checked beyond memory safety: every value is well-formed IMAP (strings quoted only when
 * 7-bit without CR LF NUL, literals exactly as long as announced, without NUL in ENVELOPE
 * and BODYSTRUCTURE and in BINARY unless literal8, lists balanced), ENVELOPE has its ten fields; BODY[] is the file, HEADER then
 * TEXT is the file (or the embedded message), a part's MIME header is followed in the file
 * by its body; a section's size is the length it is sent with; a partial is the slice of
 * the whole section it names. */
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include <event2/buffer.h>

#include "fuzz_common.h"
#include "imapd/fetch_atts.h"
#include "imapd/istring.h"
#include "imapd/mime.h"

#define DEPTH 3 /* part numbers 1.2.3 visited */
#define WIDTH 3 /* parts per level visited */

/* ---------------------------------------------------------------- response grammar */

struct rd {
    const unsigned char *p, *end;
};

/* One value (RFC 9051 §9: nstring, number, list); its list's element count in *n. */
static void value(struct rd *r, int depth, size_t *n)
{
    FUZZ_CHECK(depth < IMAP_MIME_DEPTH_MAX * 3 + 8 && r->p < r->end);
    unsigned char c = *r->p;
    if (c == '(') {
        size_t count = 0, sub;
        r->p++;
        while (r->p < r->end && *r->p != ')') {
            if (count) {
                /* Elements are separated by one SP; body parts of a multipart follow each
                 * other without one: ")(". */
                if (*r->p == ' ')
                    r->p++;
                else
                    FUZZ_CHECK(*r->p == '(' && r->p[-1] == ')');
            }
            value(r, depth + 1, &sub);
            count++;
        }
        FUZZ_CHECK(r->p < r->end);
        r->p++;
        if (n)
            *n = count;
    } else if (c == '"') {
        for (r->p++;; r->p++) {
            FUZZ_CHECK(r->p < r->end);
            c = *r->p;
            if (c == '"')
                break;
            FUZZ_CHECK(c != '\0' && c != '\r' && c != '\n' && c < 0x80);
            if (c == '\\') {
                r->p++;
                FUZZ_CHECK(r->p < r->end && (*r->p == '"' || *r->p == '\\'));
            }
        }
        r->p++;
    } else if (c == '{') {
        uint64_t len = 0;
        for (r->p++; r->p < r->end && *r->p >= '0' && *r->p <= '9'; r->p++)
            len = len * 10 + (uint64_t)(*r->p - '0');
        FUZZ_CHECK(r->end - r->p >= 3 && memcmp(r->p, "}\r\n", 3) == 0);
        r->p += 3;
        FUZZ_CHECK(len <= (uint64_t)(r->end - r->p));
        FUZZ_CHECK(!memchr(r->p, '\0', (size_t)len));
        r->p += len;
    } else {
        const unsigned char *s = r->p;
        while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
            r->p++;
        if (r->p == s) {
            FUZZ_CHECK(r->end - r->p >= 3 && memcmp(r->p, "NIL", 3) == 0);
            r->p += 3;
        }
    }
}

/* out holds exactly one value; its list's element count. */
static size_t check_value(struct evbuffer *out)
{
    size_t len = evbuffer_get_length(out), n = 0;
    struct rd r = {evbuffer_pullup(out, -1), NULL};
    r.end = r.p + len;
    value(&r, 0, &n);
    FUZZ_CHECK(r.p == r.end);
    return n;
}

/* A literal value {n}CRLF / ~{n}CRLF: its bytes in *bytes, their count returned. */
static size_t literal(struct evbuffer *out, int allow8, const unsigned char **bytes)
{
    size_t len = evbuffer_get_length(out), i = 0;
    const unsigned char *s = evbuffer_pullup(out, -1);
    FUZZ_CHECK(len >= 5);
    int lit8 = s[0] == '~';
    FUZZ_CHECK(!lit8 || allow8);
    i += lit8;
    FUZZ_CHECK(s[i++] == '{');
    uint64_t n = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9')
        n = n * 10 + (uint64_t)(s[i++] - '0');
    FUZZ_CHECK(len - i >= 3 && memcmp(s + i, "}\r\n", 3) == 0);
    i += 3;
    FUZZ_CHECK(n == len - i);
    /* A section is the file's bytes as stored, NULs included (mime.h): only BINARY's are
     * checked (~{n} when it holds one). */
    if (!lit8 && allow8)
        FUZZ_CHECK(!memchr(s + i, '\0', (size_t)n));
    *bytes = s + i;
    return (size_t)n;
}

/* ---------------------------------------------------------------- sections */

struct ctx {
    const uint8_t *file;
    size_t size;
    struct imap_msg *m;
    uint32_t seed; /* from the input: partial ranges */
};

static struct imap_section *section(const char *text)
{
    static struct imap_section sec;
    const char *err;
    FUZZ_CHECK(imap_section_parse(text, strlen(text), 0, &sec, &err) == 0);
    return &sec;
}

/* BODY[text]'s bytes (malloc'd, *len), checked against its size and a partial of it. */
static unsigned char *section_bytes(struct ctx *c, const char *text, size_t *len)
{
    struct imap_section *sec = section(text);
    struct evbuffer *out = evbuffer_new();
    FUZZ_CHECK(imap_msg_section_write(c->m, sec, 0, 0, 0, out) == 0);
    const unsigned char *b;
    *len = literal(out, 0, &b);
    FUZZ_CHECK(imap_msg_section_size(c->m, sec) == (int64_t)*len);
    unsigned char *copy = malloc(*len + 1);
    memcpy(copy, b, *len);
    evbuffer_free(out);
    /* <origin.count>: the slice. */
    uint64_t origin = c->seed % (*len + 2), count = 1 + (c->seed >> 8) % (*len + 1);
    out = evbuffer_new();
    FUZZ_CHECK(imap_msg_section_write(c->m, sec, 1, origin, count, out) == 0);
    size_t plen = literal(out, 0, &b);
    size_t from = origin < *len ? (size_t)origin : *len;
    size_t want = *len - from < count ? *len - from : (size_t)count;
    FUZZ_CHECK(plen == want && memcmp(b, copy + from, plen) == 0);
    evbuffer_free(out);
    imap_section_free(sec);
    return copy;
}

/* a then b, as one run of the file's bytes. */
static void contiguous(const struct ctx *c, const unsigned char *a, size_t alen, const unsigned char *b, size_t blen)
{
    if (alen + blen == 0)
        return;
    unsigned char *ab = malloc(alen + blen);
    memcpy(ab, a, alen);
    memcpy(ab + alen, b, blen);
    FUZZ_CHECK(memmem(c->file, c->size, ab, alen + blen) != NULL);
    free(ab);
}

static void binary(struct ctx *c, const char *part)
{
    const char *err;
    struct imap_section sec;
    FUZZ_CHECK(imap_section_parse(part, strlen(part), 1, &sec, &err) == 0);
    int64_t size = imap_msg_binary_size(c->m, &sec);
    struct evbuffer *out = evbuffer_new();
    int rc = imap_msg_binary_write(c->m, &sec, 0, 0, 0, out);
    FUZZ_CHECK(rc >= -2 && rc <= 0 && rc != -1);
    FUZZ_CHECK(rc == 0 ? size >= 0 : size == -2);
    if (rc == 0) {
        const unsigned char *b;
        FUZZ_CHECK(literal(out, 1, &b) == (size_t)size);
    }
    evbuffer_free(out);
    imap_section_free(&sec);
}

/* Every section of part p ("" for the message), then its children. */
static void part(struct ctx *c, const char *p, int depth)
{
    char text[128];
    const char *dot = *p ? "." : "";
    size_t all_len, hdr_len, txt_len, len;
    unsigned char *all = section_bytes(c, p[0] ? p : "", &all_len);
    snprintf(text, sizeof text, "%s%sHEADER", p, dot);
    unsigned char *hdr = section_bytes(c, text, &hdr_len);
    snprintf(text, sizeof text, "%s%sTEXT", p, dot);
    unsigned char *txt = section_bytes(c, text, &txt_len);
    snprintf(text, sizeof text, "%s%sHEADER.FIELDS (From Subject Content-Type X-Nope)", p, dot);
    free(section_bytes(c, text, &len));
    snprintf(text, sizeof text, "%s%sHEADER.FIELDS.NOT (Received Content-Type)", p, dot);
    free(section_bytes(c, text, &len));
    if (!*p) {
        FUZZ_CHECK(all_len == c->size && memcmp(all, c->file, c->size) == 0);
        FUZZ_CHECK(hdr_len + txt_len == c->size && memcmp(hdr, c->file, hdr_len) == 0);
    } else if (hdr_len) { /* a message/rfc822 part: its header and text are the message */
        FUZZ_CHECK(hdr_len + txt_len == all_len && memcmp(hdr, all, hdr_len) == 0);
        FUZZ_CHECK(memcmp(txt, all + hdr_len, txt_len) == 0);
    }
    size_t mime_len = 0;
    if (*p) {
        snprintf(text, sizeof text, "%s.MIME", p);
        unsigned char *mime = section_bytes(c, text, &mime_len);
        contiguous(c, mime, mime_len, all, all_len);
        free(mime);
        binary(c, p);
    }
    free(all);
    free(hdr);
    free(txt);
    /* A part that does not exist has no MIME header (the message's own "1" always does). */
    if (depth == DEPTH || (*p && mime_len == 0 && depth > 1))
        return;
    for (int k = 1; k <= WIDTH; k++) {
        snprintf(text, sizeof text, "%s%s%d", p, dot, k);
        part(c, text, depth + 1);
    }
}

/* ---------------------------------------------------------------- structure, search */

static void structure(struct ctx *c, int order)
{
    for (int i = 0; i < 3; i++) {
        int what = (i + order) % 3;
        struct evbuffer *out = evbuffer_new();
        int rc = what == 0 ? imap_msg_envelope(c->m, out) : imap_msg_bodystructure(c->m, what == 1, out);
        FUZZ_CHECK(rc == 0);
        size_t n = check_value(out);
        FUZZ_CHECK(what != 0 || n == 10);
        FUZZ_CHECK(n >= 2);
        evbuffer_free(out);
    }
}

static int count_field(const char *name, const char *value, void *arg)
{
    FUZZ_CHECK(name != NULL && value != NULL);
    (*(size_t *)arg)++;
    return 0;
}

static int count_bytes(const char *s, size_t len, void *arg)
{
    FUZZ_CHECK(s != NULL || len == 0);
    *(size_t *)arg += len;
    return 0;
}

static void search(struct ctx *c)
{
    size_t fields = 0, subjects = 0, body = 0;
    FUZZ_CHECK(imap_msg_headers_each(c->m, NULL, count_field, &fields) == 0);
    FUZZ_CHECK(imap_msg_headers_each(c->m, "subject", count_field, &subjects) == 0);
    FUZZ_CHECK(subjects <= fields);
    FUZZ_CHECK(imap_msg_body_each(c->m, count_bytes, &body) == 0);
    static const char *const needles[] = {"", "a", "Subject", "caf\xc3\xa9", "\xc3\x89T\xc3\x89", "--", "=?"};
    for (size_t i = 0; i < sizeof needles / sizeof needles[0]; i++) {
        int h = imap_msg_header_contains(c->m, "Subject", needles[i]);
        FUZZ_CHECK(h == 0 || h == 1);
        FUZZ_CHECK(!h || subjects > 0);
        int b = imap_msg_body_contains(c->m, needles[i]);
        int t = imap_msg_text_contains(c->m, needles[i]);
        FUZZ_CHECK((b == 0 || b == 1) && (t == 0 || t == 1));
        FUZZ_CHECK(!b || t); /* TEXT is the header and the body */
    }
    int y, mo, d;
    if (imap_msg_sent_date(c->m, &y, &mo, &d) == 0)
        FUZZ_CHECK(mo >= 1 && mo <= 12 && d >= 1 && d <= 31);
}

/* istring.c's writers on the input's first bytes as one header value: each writes one
 * well-formed string (NUL only through for_humans, which makes it 0x80). */
static void strings(const uint8_t *data, size_t size)
{
    size_t len = size < 1024 ? size : 1024;
    char *s = fuzz_strndup(data, len);
    int nul = memchr(data, '\0', len) != NULL;
    for (int w = 0; w < 3; w++) {
        if (nul && w < 2)
            continue;
        struct evbuffer *out = evbuffer_new();
        if (w == 0)
            imap_write_string(out, s, len);
        else if (w == 1)
            imap_write_nstring_nolf(out, s);
        else
            imap_write_string_for_humans(out, s, len);
        check_value(out);
        const char *v = (const char *)evbuffer_pullup(out, -1), *end = v + evbuffer_get_length(out);
        if (*v == '{')
            v = strchr(v, '\n') + 1; /* past the literal's announcement */
        if (w >= 1) /* an unfolded value: no line break left */
            FUZZ_CHECK(!memchr(v, '\n', (size_t)(end - v)) && !memchr(v, '\r', (size_t)(end - v)));
        evbuffer_free(out);
    }
    free(s);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    imap_mime_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 32768)
        return 0; /* the walk below is per part and per section: keep an input fast */
    int fd = memfd_create("fuzz-msg", MFD_CLOEXEC);
    FUZZ_CHECK(fd >= 0);
    FUZZ_CHECK(write(fd, data, size) == (ssize_t)size);
    struct ctx c = {.file = data, .size = size, .m = imap_msg_open(fd)};
    FUZZ_CHECK(c.m != NULL);
    FUZZ_CHECK(imap_msg_size(c.m) == size);
    for (size_t i = 0; i < size; i++)
        c.seed = c.seed * 31 + data[i];
    /* Half the inputs: the header-only parse (ENVELOPE) before the whole one. */
    structure(&c, (int)(c.seed & 1) * 2);
    part(&c, "", 0);
    search(&c);
    imap_msg_free(c.m);
    strings(data, size);
    return 0;
}
