/* The part tree of a parsed message with exact file offsets (mime_int.h). GMime decides
 * what the structure is; this file only turns GMime's positions (header offsets, content
 * substream bounds) into part ranges. Three positions GMime does not report are found by
 * looking at the bytes around the ones it does: the blank line ending a part's header, the
 * delimiter line before a part that is itself a multipart or message, and a multipart's
 * close delimiter. Where the line break before a delimiter goes follows Dovecot. Also the
 * bound on what GMime is given (mime_parse_limit) and line counts. */
#include <string.h>

#include "mime_int.h"

#define SCAN_CHUNK (64 * 1024)
#define BOUNDARY_SCAN_MAX 256     /* a longer boundary is not searched for (hostile) */
#define DASH_LINES_MAX (IMAP_MIME_PARTS_MAX * 2) /* "--" lines GMime is given to parse */

/* The position after the first blank line at or after the line starting at `from`:
 * a header's end. The file size if there is none. -1 on read error. */
int64_t mime_blank_line_after(struct imap_msg *m, uint64_t from)
{
    static char buf[SCAN_CHUNK];
    int at_line_start = 1;
    for (uint64_t off = from; off < m->size;) {
        long n = mime_pread(m, buf, sizeof buf, off);
        if (n <= 0)
            return -1;  /* a read error, or the file shrank since it was opened */
        for (long i = 0; i < n; i++) {
            if (at_line_start) {
                if (buf[i] == '\n')
                    return (int64_t)(off + (uint64_t)i + 1);
                if (buf[i] == '\r' && (i + 1 < n ? buf[i + 1] == '\n' : 0))
                    return (int64_t)(off + (uint64_t)i + 2);
                if (buf[i] == '\r' && i + 1 == n) {
                    /* CR at the chunk's end: look again from it with the next chunk. */
                    n = i;
                    break;
                }
            }
            at_line_start = buf[i] == '\n';
        }
        off += (uint64_t)n;
        if (n == 0)
            off++;
    }
    return (int64_t)m->size;
}

/* Where GMime may look: the file up to the DASH_LINES_MAX-th line starting "--" (a
 * delimiter candidate), so a message of 100,000 tiny parts costs GMime objects for a few
 * thousand at most. -1 on read error. */
int64_t mime_parse_limit(struct imap_msg *m)
{
    static char buf[SCAN_CHUNK];
    size_t dashes = 0;
    char prev = '\n', prev2 = 0;
    for (uint64_t off = 0; off < m->size;) {
        long n = mime_pread(m, buf, sizeof buf, off);
        if (n <= 0)
            return -1;
        for (long i = 0; i < n; i++) {
            if (buf[i] == '-' && prev == '-' && prev2 == '\n' && ++dashes > DASH_LINES_MAX)
                return (int64_t)(off + (uint64_t)i - 1);
            prev2 = prev;
            prev = buf[i];
        }
        off += (uint64_t)n;
    }
    return (int64_t)m->size;
}

/* Smallest header offset of obj's header list, -1 if it has none. */
int64_t mime_fpos(const struct imap_msg *m, int64_t p)
{
    /* Past a cut top header GMime saw gmime_skip bytes fewer. */
    return p >= 0 && m->gmime_skip > 0 && p >= (int64_t)m->gmime_cut ? p + (int64_t)m->gmime_skip : p;
}

static int64_t first_header(const struct imap_msg *m, GMimeObject *obj)
{
    int64_t best = -1;
    if (obj == NULL)
        return -1;
    GMimeHeaderList *hl = g_mime_object_get_header_list(obj);
    int count = g_mime_header_list_get_count(hl);
    for (int i = 0; i < count; i++) {
        int64_t off = mime_fpos(m, g_mime_header_get_offset(g_mime_header_list_get_header_at(hl, i)));
        if (off >= 0 && (best < 0 || off < best))
            best = off;
    }
    return best;
}

static int64_t last_header(const struct imap_msg *m, GMimeObject *obj)
{
    int64_t best = -1;
    if (obj == NULL)
        return -1;
    GMimeHeaderList *hl = g_mime_object_get_header_list(obj);
    int count = g_mime_header_list_get_count(hl);
    for (int i = 0; i < count; i++) {
        int64_t off = mime_fpos(m, g_mime_header_get_offset(g_mime_header_list_get_header_at(hl, i)));
        if (off > best)
            best = off;
    }
    return best;
}

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* The end of a header block starting at begin whose last field GMime saw at `last`. */
static int64_t header_end(struct imap_msg *m, uint64_t begin, int64_t last)
{
    return mime_blank_line_after(m, last >= (int64_t)begin ? (uint64_t)last : begin);
}

/* The end of a part (a multipart or message: a leaf's end is GMime's) that a delimiter
 * line follows, the line starting at line_start with a line break at lb before it. That
 * line break belongs to the delimiter (RFC 2046) unless it ended the part's own last line
 * of structure, its close delimiter or an embedded header with no body after it
 * (scan_end, where the part's bytes were seen to end, is then the delimiter's line): as
 * Dovecot, it stays with the part then. */
static uint64_t part_end(uint64_t lb, uint64_t line_start, uint64_t scan_end)
{
    if (scan_end >= line_start)
        return line_start;
    return lb > scan_end ? lb : scan_end;
}

/* The end of a part followed by the delimiter line that ends just before `at` (where the
 * next part starts); its bytes were seen up to scan_end. */
static uint64_t end_before(struct imap_msg *m, uint64_t at, uint64_t scan_end)
{
    char buf[1024];
    if (at <= scan_end + 1)
        return scan_end;
    uint64_t start = at - scan_end > sizeof buf ? at - sizeof buf : scan_end;
    long n = mime_pread(m, buf, (size_t)(at - start), start);
    if (n != (long)(at - start) || n < 1 || buf[n - 1] != '\n')
        return at;
    long i = n - 2;
    while (i >= 0 && buf[i] != '\n')
        i--;
    if (i < 0)
        return start == scan_end ? scan_end : at;  /* the delimiter starts at scan_end */
    uint64_t line_start = start + (uint64_t)i + 1;
    if (i > 0 && buf[i - 1] == '\r')
        i--;
    return part_end(start + (uint64_t)i, line_start, scan_end);
}

/* Find "\n--boundary--" at or after from-1 (so a close delimiter at `from` itself is
 * seen, which happens when a part's header scan ran into its CRLF). Sets *line_break to
 * where the line break before it starts, *line_start to where it starts and *after to
 * the end of its line. 1 found, 0 not, -1 read error. */
static int find_close(struct imap_msg *m, const char *boundary, uint64_t from,
                      uint64_t *line_break, uint64_t *line_start, uint64_t *after)
{
    static char buf[SCAN_CHUNK];
    char pat[BOUNDARY_SCAN_MAX + 8];
    size_t blen = boundary != NULL ? strlen(boundary) : 0;
    if (blen == 0 || blen > BOUNDARY_SCAN_MAX)
        return 0;
    size_t plen = (size_t)snprintf(pat, sizeof pat, "\n--%s--", boundary);
    /* From two bytes back: a close delimiter right at `from` and the CR before it. */
    uint64_t off = from >= 2 ? from - 2 : 0;
    while (off < m->parse_end) {
        long n = mime_pread(m, buf, sizeof buf, off);
        if (n < 0)
            return -1;
        if ((size_t)n < plen)
            return 0;
        char *hit = memmem(buf, (size_t)n, pat, plen);
        if (hit != NULL) {
            uint64_t lf = off + (uint64_t)(hit - buf);
            *line_break = (hit > buf && hit[-1] == '\r') ? lf - 1 : lf;
            *line_start = lf + 1;
            /* Its line's end, or (cut by the chunk) a point inside it: either is a
             * right start for the enclosing multipart's own search. */
            char *nl = memchr(hit + 1, '\n', (size_t)n - (size_t)(hit - buf) - 1);
            *after = off + (uint64_t)((nl != NULL ? nl + 1 : hit + plen) - buf);
            return 1;
        }
        off += (uint64_t)n - plen + 1;
    }
    return 0;
}

#define END_UNKNOWN UINT64_MAX

static struct mime_node *build(struct imap_msg *m, GMimeObject *obj, uint64_t hdr_begin,
                               uint64_t body_begin, int depth);

/* A leaf's content range as GMime keeps it: a substream of the file (persist_stream).
 * Past a cut header (a cat stream, mime.c) GMime's content streams carry no file
 * positions: 0, and the range is found like a multipart's then. */
static int content_bounds(const struct imap_msg *m, GMimeObject *obj, int64_t *start, int64_t *end)
{
    GMimeDataWrapper *w = GMIME_IS_PART(obj) ? g_mime_part_get_content((GMimePart *)obj) : NULL;
    GMimeStream *s = w != NULL ? g_mime_data_wrapper_get_stream(w) : NULL;
    if (s == NULL || GMIME_IS_STREAM_CAT(s) || s->bound_start < 0)
        return 0;
    *start = mime_fpos(m, s->bound_start);
    *end = s->bound_end >= 0 ? mime_fpos(m, s->bound_end) : -1;
    return 1;
}

/* Where an embedded message's header starts (its first field), -1 if it has none. */
static int64_t message_first(const struct imap_msg *m, GMimeObject *part)
{
    GMimeMessage *em = g_mime_message_part_get_message((GMimeMessagePart *)part);
    if (em == NULL)
        return -1;
    int64_t a = first_header(m, (GMimeObject *)em);
    int64_t b = first_header(m, g_mime_message_get_mime_part(em));
    return a < 0 ? b : (b < 0 || a < b ? a : b);
}

/* A part without a MIME header: it starts with its blank line, just before cs. */
static uint64_t before_blank(struct imap_msg *m, uint64_t cs, uint64_t lo)
{
    char b[2];
    if (cs < lo + 1 || mime_pread(m, b, 2, cs >= 2 ? cs - 2 : 0) != 2)
        return cs;
    if (b[1] != '\n')
        return cs;
    return (cs >= lo + 2 && b[0] == '\r') ? cs - 2 : cs - 1;
}

static void build_children(struct imap_msg *m, struct mime_node *n)
{
    GMimeMultipart *mp = (GMimeMultipart *)n->obj;
    struct mime_node **tail = &n->child, *prev = NULL;
    int count = g_mime_multipart_get_count(mp);
    for (int i = 0; i < count && m->nnodes < IMAP_MIME_PARTS_MAX; i++) {
        GMimeObject *cobj = g_mime_multipart_get_part(mp, i);
        uint64_t lo = prev != NULL ? prev->scan_end : n->body_begin;
        int64_t first = first_header(m, cobj), cs = -1;
        struct mime_node *c;
        if (first >= 0) {
            c = build(m, cobj, (uint64_t)first, END_UNKNOWN, n->depth + 1);
        } else {
            int64_t ce;
            if (content_bounds(m, cobj, &cs, &ce))
                ;
            else if (GMIME_IS_MESSAGE_PART(cobj))
                cs = message_first(m, cobj);
            if (cs < (int64_t)lo)
                cs = (int64_t)lo;
            c = build(m, cobj, before_blank(m, (uint64_t)cs, lo), (uint64_t)cs, n->depth + 1);
        }
        if (c == NULL)
            break;
        if (prev != NULL && prev->body_end == END_UNKNOWN)
            prev->body_end = end_before(m, c->hdr_begin, prev->scan_end);
        *tail = c;
        tail = &c->next;
        prev = c;
    }
    n->scan_end = prev != NULL ? prev->scan_end : n->body_begin;
    uint64_t lb, ls, after;
    const char *boundary = g_mime_object_get_content_type_parameter(n->obj, "boundary");
    if (find_close(m, boundary, n->scan_end, &lb, &ls, &after) == 1) {
        if (prev != NULL && prev->body_end == END_UNKNOWN)
            prev->body_end = part_end(lb, ls, prev->scan_end);
        n->scan_end = after;
    }
}

/* GMime makes message/news and message/global embedded messages too; IMAP (and Dovecot)
 * describe only message/rfc822 with an envelope. */
static int is_rfc822(GMimeObject *obj)
{
    GMimeContentType *ct = g_mime_object_get_content_type(obj);
    return ct != NULL && g_ascii_strcasecmp(g_mime_content_type_get_media_subtype(ct), "rfc822") == 0;
}

/* body_begin: END_UNKNOWN to find it (the blank line after obj's last field), except
 * that a leaf's content bounds from GMime always win. */
static struct mime_node *build(struct imap_msg *m, GMimeObject *obj, uint64_t hdr_begin,
                               uint64_t body_begin, int depth)
{
    struct mime_node *n = calloc(1, sizeof *n);
    if (n == NULL)
        return NULL;
    m->nnodes++;
    n->obj = obj;
    n->depth = depth;
    n->hdr_begin = hdr_begin;
    n->body_end = END_UNKNOWN;
    int deep = depth >= IMAP_MIME_DEPTH_MAX - 1;
    int64_t cs, ce;
    if (content_bounds(m, obj, &cs, &ce)) {
        n->body_begin = (uint64_t)cs;
        if (ce >= 0)
            n->body_end = (uint64_t)ce;
        /* GMime leaves the CR of the delimiter's CRLF in the content when the close
         * delimiter ends the file without a line end ("x\r\n--b--<EOF>"): take it out. */
        char b[4];
        if (ce > cs && mime_pread(m, b, 4, (uint64_t)ce - 1) == 4 && memcmp(b, "\r\n--", 4) == 0)
            n->body_end--;
    } else if (body_begin != END_UNKNOWN) {
        n->body_begin = body_begin;
    } else {
        int64_t e = header_end(m, hdr_begin, last_header(m, obj));
        n->body_begin = e < 0 ? hdr_begin : (uint64_t)e;
    }
    n->scan_end = n->body_end != END_UNKNOWN ? n->body_end : n->body_begin;
    n->kind = MN_LEAF;
    if (GMIME_IS_MULTIPART(obj) && !deep) {
        n->kind = MN_MULTI;
        build_children(m, n);
    } else if (GMIME_IS_MESSAGE_PART(obj) && !deep && is_rfc822(obj)) {
        n->kind = MN_MESSAGE;
        n->msg = g_mime_message_part_get_message((GMimeMessagePart *)obj);
        GMimeObject *body = n->msg != NULL ? g_mime_message_get_mime_part(n->msg) : NULL;
        if (m->nnodes < IMAP_MIME_PARTS_MAX) {
            /* The embedded header holds the message's own fields and its body part's. */
            int64_t last = max64(last_header(m, (GMimeObject *)n->msg), last_header(m, body));
            int64_t e = header_end(m, n->body_begin, last);
            n->child = build(m, body, n->body_begin, e < 0 ? n->body_begin : (uint64_t)e, depth + 1);
            if (n->child != NULL)
                n->scan_end = n->child->scan_end;
        }
    }
    return n;
}

static int is_text(GMimeObject *obj)
{
    GMimeContentType *ct = obj != NULL ? g_mime_object_get_content_type(obj) : NULL;
    return ct == NULL || g_ascii_strcasecmp(g_mime_content_type_get_media_type(ct), "text") == 0;
}

static int count_lines(struct imap_msg *m, uint64_t from, uint64_t to, uint64_t *lines)
{
    static char buf[SCAN_CHUNK];
    *lines = 0;
    for (uint64_t off = from; off < to;) {
        size_t want = to - off > sizeof buf ? sizeof buf : (size_t)(to - off);
        long n = mime_pread(m, buf, want, off);
        if (n <= 0)
            return -1;
        for (char *p = buf; (p = memchr(p, '\n', (size_t)(buf + n - p))) != NULL; p++)
            (*lines)++;
        off += (uint64_t)n;
    }
    return 0;
}

/* Second pass, top down: ends still unknown are the parent's; line counts. */
static int finish(struct imap_msg *m, struct mime_node *n, uint64_t end)
{
    if (n->body_end == END_UNKNOWN || n->body_end > end)
        n->body_end = end;
    if (n->body_begin > n->body_end)
        n->body_begin = n->body_end;
    if (n->hdr_begin > n->body_begin)
        n->hdr_begin = n->body_begin;
    if (n->kind == MN_MESSAGE || (n->kind == MN_LEAF && is_text(n->obj)))
        if (count_lines(m, n->body_begin, n->body_end, &n->lines) < 0)
            return -1;
    for (struct mime_node *c = n->child; c != NULL; c = c->next)
        if (finish(m, c, n->body_end) < 0)
            return -1;
    return 0;
}

int mime_build_tree(struct imap_msg *m)
{
    GMimeObject *body = m->msg != NULL ? g_mime_message_get_mime_part(m->msg) : NULL;
    /* The top header ends where mime_need_header found its blank line. */
    m->root = build(m, body, 0, m->hdr_len, 0);
    if (m->root == NULL)
        return -1;
    return finish(m, m->root, m->size);
}
