/* A message file parsed with GMime, lazily in two levels (the top header alone; the whole
 * structure, whose part tree mime_tree.c makes), and the file's bytes for the rest of the
 * module (mime_pread, the raw value of a field). Limits (depth, parts, header size):
 * mime.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mime_int.h"

#define HEAD_READ (16 * 1024)  /* the first read of a file: most headers fit */

static int initialized;
static GMimeParserOptions *options;

void imap_mime_init(void)
{
    if (!initialized) {
        g_mime_init();
        /* Strict parameter parsing for what GMime's list still serves (boundary, charset);
         * BODYSTRUCTURE's parameters come from the raw bytes (mime_params.c). */
        options = g_mime_parser_options_new();
        g_mime_parser_options_set_parameter_compliance_mode(options, GMIME_RFC_COMPLIANCE_STRICT);
        initialized = 1;
    }
}

void imap_mime_shutdown(void)
{
    if (initialized) {
        g_mime_parser_options_free(options);
        options = NULL;
        g_mime_shutdown();
        initialized = 0;
    }
}

struct imap_msg *imap_msg_open(int fd)
{
    struct stat st;
    int r = fstat(fd, &st);
    if (r < 0 || !S_ISREG(st.st_mode)) {
        int e = r < 0 ? errno : EINVAL;
        close(fd);
        errno = e;
        return NULL;
    }
    struct imap_msg *m = calloc(1, sizeof *m);
    if (m == NULL) {
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    m->fd = fd;
    m->size = (uint64_t)st.st_size;
    return m;
}

struct imap_msg *imap_msg_open_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    return fd < 0 ? NULL : imap_msg_open(fd);
}

static void free_nodes(struct mime_node *n)
{
    /* Depth is bounded by IMAP_MIME_DEPTH_MAX, so recursion is too. */
    while (n != NULL) {
        struct mime_node *next = n->next;
        free_nodes(n->child);
        free(n);
        n = next;
    }
}

void imap_msg_free(struct imap_msg *m)
{
    if (m == NULL)
        return;
    free_nodes(m->root);
    free(m->head);
    if (m->hmsg != NULL)
        g_object_unref(m->hmsg);
    if (m->msg != NULL)
        g_object_unref(m->msg);
    close(m->fd);
    free(m);
}

uint64_t imap_msg_size(const struct imap_msg *m)
{
    return m->size;
}

long mime_pread(struct imap_msg *m, void *buf, size_t len, uint64_t off)
{
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(m->fd, (char *)buf + got, len - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (long)got;
}

static GMimeStream *file_stream(struct imap_msg *m, uint64_t start, uint64_t end)
{
    GMimeStream *fs = g_mime_stream_fs_new(m->fd);
    g_mime_stream_fs_set_owner((GMimeStreamFs *)fs, FALSE);
    GMimeStream *sub = g_mime_stream_substream(fs, (gint64)start, (gint64)end);
    g_object_unref(fs);
    return sub;
}

static GMimeMessage *parse_stream(GMimeStream *stream)
{
    GMimeParser *p = g_mime_parser_new_with_stream(stream);
    g_mime_parser_set_persist_stream(p, TRUE);
    GMimeMessage *msg = g_mime_parser_construct_message(p, options);
    g_object_unref(p);
    return msg;
}

/* A line end at or before `at` (after the '\n'), or a line start at or after it:
 * where a huge header is cut. */
static int64_t line_edge(struct imap_msg *m, uint64_t at, int forward)
{
    char buf[4096];
    uint64_t from = forward ? at : (at > sizeof buf ? at - sizeof buf : 0);
    long n = mime_pread(m, buf, sizeof buf, from);
    if (n < 0)
        return -1;
    if (forward) {
        char *nl = memchr(buf, '\n', (size_t)n);
        return nl != NULL ? (int64_t)(from + (uint64_t)(nl - buf) + 1) : (int64_t)at;
    }
    for (long i = (long)(at - from) - 1; i >= 0; i--)
        if (buf[i] == '\n')
            return (int64_t)(from + (uint64_t)i + 1);
    return (int64_t)at;
}

/* What GMime reads of [0, end): all of it, or for a header over IMAP_MIME_HEADER_MAX
 * its first and its last half of that (the fields a client wants, Content-Type among
 * them, tend to be at either end), joined (m->gmime_cut / gmime_skip map positions). */
static GMimeStream *gmime_input(struct imap_msg *m, uint64_t end)
{
    if (m->gmime_skip == 0)
        return file_stream(m, 0, end);
    GMimeStream *cat = g_mime_stream_cat_new();
    GMimeStream *head = file_stream(m, 0, m->gmime_cut);
    GMimeStream *tail = file_stream(m, m->gmime_cut + m->gmime_skip, end);
    g_mime_stream_cat_add_source((GMimeStreamCat *)cat, head);
    g_mime_stream_cat_add_source((GMimeStreamCat *)cat, tail);
    g_object_unref(head);
    g_object_unref(tail);
    return cat;
}

/* The end of a blank line (LF or CR LF at a line start) in buf[0, n): the header's end,
 * as mime_blank_line_after finds it; -1 if buf holds none (a CR at its very end may be
 * the start of one). */
static int64_t blank_line_in(const char *buf, size_t n)
{
    for (size_t i = 0; i < n;) {
        /* i is a line start */
        if (buf[i] == '\n')
            return (int64_t)i + 1;
        if (buf[i] == '\r' && i + 1 < n && buf[i + 1] == '\n')
            return (int64_t)i + 2;
        const char *nl = memchr(buf + i, '\n', n - i);
        if (nl == NULL)
            break;
        i = (size_t)(nl - buf) + 1;
    }
    return -1;
}

int mime_need_hdr_len(struct imap_msg *m)
{
    if (m->len_state != 0)
        return m->len_state > 0 ? 0 : -1;
    m->len_state = -1;
    size_t want = m->size < HEAD_READ ? (size_t)m->size : HEAD_READ;
    m->head = malloc(want > 0 ? want : 1);
    if (m->head == NULL)
        return -1;
    long n = mime_pread(m, m->head, want, 0);
    if (n < 0)
        return -1;
    m->head_len = (size_t)n;
    int64_t end = blank_line_in(m->head, m->head_len);
    if (end < 0 && m->head_len < m->size)
        end = mime_blank_line_after(m, 0);  /* a header longer than the first read */
    else if (end < 0)
        end = (int64_t)m->size;
    if (end < 0)
        return -1;
    m->hdr_len = (uint64_t)end;
    m->len_state = 1;
    return 0;
}

int mime_need_header(struct imap_msg *m)
{
    if (m->hdr_state != 0)
        return m->hdr_state > 0 ? 0 : -1;
    m->hdr_state = -1;
    if (mime_need_hdr_len(m) < 0)
        return -1;
    if (m->hdr_len > IMAP_MIME_HEADER_MAX) {
        /* HEADER still sends all hdr_len bytes: they come from the file. */
        int64_t c1 = line_edge(m, IMAP_MIME_HEADER_MAX / 2, 0);
        int64_t c2 = line_edge(m, m->hdr_len - IMAP_MIME_HEADER_MAX / 2, 1);
        if (c1 < 0 || c2 < 0)
            return -1;
        if (c2 > c1) {
            m->gmime_cut = (uint64_t)c1;
            m->gmime_skip = (uint64_t)(c2 - c1);
        }
    }
    GMimeStream *s = gmime_input(m, m->hdr_len);
    m->hmsg = parse_stream(s);
    g_object_unref(s);
    if (m->hmsg == NULL)
        m->hmsg = g_mime_message_new(FALSE);  /* an empty file: no fields */
    m->hdr_state = 1;
    return 0;
}

int mime_need_full(struct imap_msg *m)
{
    if (m->full_state != 0)
        return m->full_state > 0 ? 0 : -1;
    m->full_state = -1;
    if (mime_need_header(m) < 0)
        return -1;
    int64_t limit = mime_parse_limit(m);
    if (limit < 0)
        return -1;
    m->parse_end = (uint64_t)limit;
    GMimeStream *s = gmime_input(m, m->parse_end);
    m->msg = parse_stream(s);
    g_object_unref(s);
    if (mime_build_tree(m) < 0)
        return -1;
    m->full_state = 1;
    return 0;
}

char *mime_raw_header(GMimeObject *obj, const char *name)
{
    if (obj == NULL)
        return NULL;
    GMimeHeaderList *hl = g_mime_object_get_header_list(obj);
    GMimeHeader *h = g_mime_header_list_get_header(hl, name);
    const char *raw = h != NULL ? g_mime_header_get_raw_value(h) : NULL;
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
