/* IMAP commands (imapd/parse.c) and the grammar readers on top of the tree: a client's byte
 * stream cut into commands as input.c does (CRLF or LF lines, {n} {n+} ~{n} literals inline,
 * APPEND's message literal left out of the buffer as if streamed to its file), each parsed,
 * then handed to what its verb's handler calls (seqset, FETCH items, SEARCH, flag lists,
 * APPEND's date) and every argument to the generic readers (sequence sets, sections, dates,
 * flags, mailbox names, LIST patterns, modified UTF-7).
 *
 * Checked beyond memory safety: the tree keeps the parser's promises (strings NUL-terminated
 * at len, no control bytes outside literals, nesting bounded); a sequence set's walks give
 * each member once, ascending, as membership says, and its formatting parses back to the
 * same members; a FETCH item's response name names the same section; a flag list's text
 * reads back to the same bits; an astring written by istring.c parses back to itself;
 * modified UTF-7 round-trips; a SEARCH program never calls a callback imap_search_needs()
 * did not announce, and NOT (program) matches exactly the messages the program does not
 * (fuzz_imapd_search.h: the fake folder it is matched against). */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "fuzz_common.h"
#include "fuzz_imapd_search.h"
#include "imapd/datetime.h"
#include "imapd/fetch_atts.h"
#include "imapd/folder.h"
#include "imapd/istring.h"
#include "imapd/list_match.h"
#include "imapd/mflags.h"
#include "imapd/parse.h"
#include "imapd/seqset.h"

#define MAX_LINE 8192     /* imapd.max_line's default */
#define MAX_COMMAND 65536 /* imapd.max_command's default */

/* ---------------------------------------------------------------- the tree */

/* The parser's block of copies (imap_command.mem: its size first), where every string but
 * APPEND's file stand-in lives. */
struct block {
    const char *mem;
    size_t size, ext_size;
};

static void check_arg(const struct imap_arg *a, int depth, const struct block *b)
{
    FUZZ_CHECK(depth <= IMAP_PARSE_DEPTH);
    if (a->type != IMAP_ARG_LIST && (a->s < b->mem || a->s >= b->mem + b->size)) {
        FUZZ_CHECK(a->type == IMAP_ARG_LITERAL && a->s[0] == '\0' && a->len == b->ext_size);
        return;
    }
    if (a->type != IMAP_ARG_LIST)
        FUZZ_CHECK(a->s + a->len < b->mem + b->size);
    switch (a->type) {
    case IMAP_ARG_LIST:
        FUZZ_CHECK(a->n == 0 || a->list != NULL);
        for (size_t i = 0; i < a->n; i++)
            check_arg(&a->list[i], depth + 1, b);
        return;
    case IMAP_ARG_ATOM:
    case IMAP_ARG_NIL:
        FUZZ_CHECK(a->len > 0 && a->s[a->len] == '\0');
        FUZZ_CHECK(!memchr(a->s, '\r', a->len) && !memchr(a->s, '\n', a->len) && !memchr(a->s, '\0', a->len));
        if (!memchr(a->s, '[', a->len))
            FUZZ_CHECK(!memchr(a->s, ' ', a->len) && !memchr(a->s, '(', a->len) && !memchr(a->s, ')', a->len));
        FUZZ_CHECK((a->type == IMAP_ARG_NIL) == (a->len == 3 && strncasecmp(a->s, "NIL", 3) == 0));
        return;
    case IMAP_ARG_QUOTED:
        FUZZ_CHECK(a->s[a->len] == '\0');
        FUZZ_CHECK(!memchr(a->s, '\r', a->len) && !memchr(a->s, '\n', a->len) && !memchr(a->s, '\0', a->len));
        return;
    case IMAP_ARG_LITERAL:
        FUZZ_CHECK(a->s[a->len] == '\0');
        if (!a->literal8)
            FUZZ_CHECK(!memchr(a->s, '\0', a->len));
        return;
    }
    FUZZ_CHECK(!"unknown argument type");
}

/* Parses "x VERB " + text as a command (the oracle for what the server writes). */
static int reparse(const char *verb, const char *text, size_t len, struct imap_command *cmd)
{
    size_t vlen = strlen(verb);
    char *buf = malloc(vlen + len + 3);
    memcpy(buf, "x ", 2);
    memcpy(buf + 2, verb, vlen);
    buf[2 + vlen] = ' ';
    memcpy(buf + 3 + vlen, text, len);
    const char *err;
    int rc = imap_parse_command(buf, vlen + len + 3, SIZE_MAX, 0, cmd, &err);
    free(buf);
    return rc;
}

/* ---------------------------------------------------------------- sequence sets */

static uint32_t uid_at(const void *ctx, size_t i)
{
    (void)ctx;
    return fake_uids[i];
}

static void check_seqset(const struct imap_arg *arg)
{
    const char *err = NULL;
    struct imap_seqset *set = imap_seqset_from_arg(arg, &err);
    if (!set) {
        FUZZ_CHECK(err != NULL);
        return;
    }
    FUZZ_CHECK(arg->type == IMAP_ARG_ATOM && imap_seqset_looks_like(arg->s, arg->len));
    static const uint32_t counts[] = {0, 1, 7, 100};
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        uint32_t count = counts[c], seq, prev = 0, members[100];
        size_t n = 0;
        struct imap_seqset_iter it;
        imap_seqset_iter_seq(&it, set, count);
        while (imap_seqset_next_seq(&it, &seq)) {
            FUZZ_CHECK(seq > prev && seq <= count && n < count);
            FUZZ_CHECK(imap_seqset_contains(set, seq, count));
            members[n++] = prev = seq;
        }
        size_t expect = 0;
        for (uint32_t i = 1; i <= count; i++)
            expect += imap_seqset_contains(set, i, count) != 0;
        FUZZ_CHECK(n == expect);
        if (imap_seqset_seq_valid(set, count) && count)
            FUZZ_CHECK(!imap_seqset_has_star(set) || n > 0);
        /* The formatted members are a set with exactly those members. */
        if (n) {
            char *text = imap_seqset_format(members, n);
            FUZZ_CHECK(text != NULL);
            struct imap_seqset *again = imap_seqset_parse(text, strlen(text), &err);
            FUZZ_CHECK(again != NULL);
            for (uint32_t i = 1; i <= count; i++)
                FUZZ_CHECK(!imap_seqset_contains(again, i, count) == !imap_seqset_contains(set, i, count));
            imap_seqset_free(again);
            free(text);
        }
    }
    /* UIDs: ascending sequence numbers whose UID is a member ('*' = the last UID). */
    for (size_t n = 0; n <= FAKE_COUNT; n += 3) {
        struct imap_seqset_iter it;
        uint32_t seq, prev = 0;
        size_t got = 0, expect = 0;
        imap_seqset_iter_uid(&it, set, uid_at, NULL, n);
        while (imap_seqset_next_uid(&it, uid_at, NULL, n, &seq)) {
            FUZZ_CHECK(seq > prev && seq <= n);
            FUZZ_CHECK(imap_seqset_contains(set, fake_uids[seq - 1], n ? fake_uids[n - 1] : 1));
            prev = seq;
            got++;
        }
        for (size_t i = 0; i < n; i++)
            expect += imap_seqset_contains(set, fake_uids[i], fake_uids[n - 1]) != 0;
        FUZZ_CHECK(got == expect);
    }
    imap_seqset_free(set);
}

/* ---------------------------------------------------------------- FETCH items, sections */

static void check_same_section(const struct imap_section *a, const struct imap_section *b)
{
    FUZZ_CHECK(a->nparts == b->nparts && a->text == b->text && a->nfields == b->nfields);
    for (size_t i = 0; i < a->nparts; i++)
        FUZZ_CHECK(a->part[i] == b->part[i] && a->part[i] >= 1);
    for (size_t i = 0; i < a->nfields; i++)
        FUZZ_CHECK(strcasecmp(a->fields[i], b->fields[i]) == 0);
}

static void check_section(const struct imap_section *sec, int binary)
{
    FUZZ_CHECK(sec->nparts <= IMAP_SECTION_DEPTH_MAX && sec->nfields <= IMAP_SECTION_FIELDS_MAX);
    int fields = sec->text == IMAP_SECTION_HEADER_FIELDS || sec->text == IMAP_SECTION_HEADER_FIELDS_NOT;
    FUZZ_CHECK(fields ? sec->nfields >= 1 : sec->nfields == 0);
    FUZZ_CHECK(sec->text != IMAP_SECTION_MIME || sec->nparts > 0);
    char *name = imap_section_name("BODY", sec, 1, 7);
    FUZZ_CHECK(name && strncmp(name, "BODY[", 5) == 0);
    char *close = strrchr(name, ']');
    FUZZ_CHECK(close && strcmp(close, "]<7>") == 0);
    struct imap_section again;
    const char *err;
    FUZZ_CHECK(imap_section_parse(name + 5, (size_t)(close - name - 5), binary, &again, &err) == 0);
    check_same_section(sec, &again);
    imap_section_free(&again);
    free(name);
}

static void check_fetch(const struct imap_arg *arg, int uid, unsigned opts)
{
    struct imap_fetch_atts fa;
    const char *err = NULL;
    if (imap_fetch_atts_parse(arg, uid, opts, &fa, &err) < 0) {
        FUZZ_CHECK(err != NULL && fa.nbodies == 0);
        imap_fetch_atts_free(&fa);
        return;
    }
    FUZZ_CHECK(!uid || (fa.items & IMAP_FETCH_UID));
    FUZZ_CHECK(fa.nbodies <= IMAP_FETCH_BODIES_MAX);
    FUZZ_CHECK((opts & IMAP_FETCH_OPT_CONDSTORE) || !(fa.items & IMAP_FETCH_MODSEQ));
    int seen = 0;
    for (size_t i = 0; i < fa.nbodies; i++) {
        const struct imap_fetch_body *b = &fa.bodies[i];
        FUZZ_CHECK(b->name != NULL);
        FUZZ_CHECK(b->kind == IMAP_FETCH_SECTION || (opts & IMAP_FETCH_OPT_BINARY));
        FUZZ_CHECK(!b->partial || b->count >= 1);
        FUZZ_CHECK(b->kind != IMAP_FETCH_BINARY_SIZE || !b->partial);
        seen |= b->sets_seen;
        check_section(&b->section, b->kind != IMAP_FETCH_SECTION);
    }
    FUZZ_CHECK(fa.sets_seen == seen);
    if (fa.nbodies || (fa.items & (IMAP_FETCH_ENVELOPE | IMAP_FETCH_BODY | IMAP_FETCH_BODYSTRUCTURE)))
        FUZZ_CHECK(imap_fetch_atts_need_message(&fa));
    imap_fetch_atts_free(&fa);
}

/* ---------------------------------------------------------------- flags */

static void check_flags(const struct imap_arg *args, size_t n)
{
    unsigned flags = 0;
    if (imap_mflags_parse(args, n, &flags) < 0)
        return;
    FUZZ_CHECK((flags & ~IMAP_F_PERMANENT) == 0);
    char text[IMAP_MFLAGS_TEXT_MAX];
    size_t len = imap_mflags_text(flags, text, sizeof text);
    FUZZ_CHECK(len < sizeof text && text[len] == '\0');
    struct imap_command cmd;
    unsigned again = 0;
    FUZZ_CHECK(reparse("STORE", text, len, &cmd) == 0 && cmd.nargs == 1);
    FUZZ_CHECK(imap_mflags_parse(cmd.args, 1, &again) == 0 && again == flags);
    imap_command_free(&cmd);
}

/* A string as a Maildir file name: flag letters in and out. */
static void check_file_name(const char *s, size_t len, unsigned bits)
{
    if (len > IMAP_NAME_MAX || memchr(s, '\0', len))
        return;
    char dst[IMAP_NAME_MAX + 1];
    unsigned flags = imap_mflags_from_name(s) ^ bits;
    FUZZ_CHECK(imap_mflags_keylen(s) <= len);
    if (imap_mflags_name(s, flags, dst, sizeof dst) == 0) {
        FUZZ_CHECK(strlen(dst) <= IMAP_NAME_MAX);
        FUZZ_CHECK(imap_mflags_from_name(dst) == (flags & IMAP_F_PERMANENT));
        FUZZ_CHECK(imap_mflags_keylen(dst) == imap_mflags_keylen(s));
    }
}

/* ---------------------------------------------------------------- strings */

/* FUZZ_IMAPD_OPEN_BUGS=mutf7 (or 1): also round-trip long non-ASCII runs (README, "Open"). */
static int open_mutf7 = -1;

static void check_string(const struct imap_arg *a, unsigned bits)
{
    if (memchr(a->s, '\0', a->len) || !a->s[0])
        return;
    /* The astring istring.c writes reads back as the same bytes. */
    struct evbuffer *out = evbuffer_new();
    imap_write_astring(out, a->s, a->len);
    size_t n = evbuffer_get_length(out);
    const char *text = (const char *)evbuffer_pullup(out, -1);
    /* A name with '[' is quoted (parse.c's bracket rule would read a bare a[b on to a ']'),
     * so every astring reads back. */
    FUZZ_CHECK(text[0] == '"' || text[0] == '{' || !memchr(text, '[', n));
    {
        struct imap_command cmd;
        FUZZ_CHECK(reparse("SELECT", text, n, &cmd) == 0 && cmd.nargs == 1);
        FUZZ_CHECK(imap_arg_is_string(&cmd.args[0]) || cmd.args[0].type == IMAP_ARG_NIL);
        FUZZ_CHECK(cmd.args[0].len == a->len && memcmp(cmd.args[0].s, a->s, a->len) == 0);
        imap_command_free(&cmd);
    }
    evbuffer_free(out);
    /* Modified UTF-7: valid exactly when it decodes, and the encoding is the only one. */
    char utf8[4 * MAX_LINE], back[4 * MAX_LINE];
    long u = imap_mutf7_to_utf8(a->s, a->len, utf8, sizeof utf8);
    FUZZ_CHECK((u >= 0) == imap_mutf7_valid(a->s, a->len) || a->len * 4 >= sizeof utf8);
    /* Not encoded back, by design: "&AAM-" (U+0003: controls are never encoded from UTF-8);
     * and, an open limit (README), a run of more than 62 UTF-16 units: the encoder's buffer. */
    int controls = 0;
    size_t units = 0, longest = 0;
    for (long i = 0; i < u; i++) {
        unsigned char b = (unsigned char)utf8[i];
        controls |= b < 0x20 || b == 0x7f;
        units = b < 0x80 ? 0 : b >= 0xf0 ? units + 2 : b >= 0xc0 ? units + 1 : units;
        longest = units > longest ? units : longest;
    }
    if (u >= 0 && !controls && (longest <= 62 || open_mutf7)) {
        long m = imap_utf8_to_mutf7(utf8, (size_t)u, back, sizeof back);
        FUZZ_CHECK(m == (long)a->len && memcmp(back, a->s, a->len) == 0);
    }
    if (imap_utf8_to_mutf7(a->s, a->len, back, sizeof back) >= 0)
        FUZZ_CHECK(imap_mutf7_valid(back, strlen(back)));
    imap_folder_name_ok(a->s, a->len);
    imap_folder_is_inbox(a->s, a->len);
    int32_t days;
    if (imap_date_parse(a->s, a->len, &days) == 0)
        FUZZ_CHECK(days > -800000 && days < 3000000);
    time_t t;
    imap_parse_datetime(a->s, a->len, &t);
    check_file_name(a->s, a->len, bits);
    unsigned bit;
    if (imap_mflags_parse_flag(a->s, a->len, &bit) == 0)
        FUZZ_CHECK((bit & ~IMAP_F_PERMANENT) == 0);
}

static void check_list_pattern(const struct imap_arg *ref, const struct imap_arg *pat)
{
    char p[IMAP_LIST_PATTERN_MAX], root[64];
    if (imap_list_pattern(ref->s, ref->len, pat->s, pat->len, p, sizeof p) < 0)
        return;
    FUZZ_CHECK(strlen(p) < sizeof p);
    static const char *const names[] = {"INBOX", "Sent", "a/b/c", "Archive/2026", "&AOk-t&AOk-", ""};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        imap_list_match(p, names[i]);
    if (!memchr(p, '*', strlen(p)) && !memchr(p, '%', strlen(p)))
        FUZZ_CHECK(imap_list_match(p, p)); /* no wildcard: a name matches itself */
    imap_list_root(ref->s, ref->len, root, sizeof root);
}

/* APPEND's message literal: its bytes are in the file, s is "" (no reader but APPEND's
 * takes it). */
static const struct block *cur_block;

static int is_file_literal(const struct imap_arg *a)
{
    return a->type == IMAP_ARG_LITERAL && (a->s < cur_block->mem || a->s >= cur_block->mem + cur_block->size);
}

/* Every argument to every reader that takes that kind. */
static void each_arg(const struct imap_arg *args, size_t n, unsigned bits)
{
    for (size_t i = 0; i < n; i++) {
        const struct imap_arg *a = &args[i];
        if (is_file_literal(a) || (i + 1 < n && is_file_literal(&args[i + 1])))
            continue;
        if (a->type == IMAP_ARG_LIST) {
            check_flags(a, 1);
            each_arg(a->list, a->n, bits);
            continue;
        }
        if (a->type == IMAP_ARG_ATOM)
            check_seqset(a);
        if (imap_arg_is_string(a))
            check_string(a, bits);
        if (i + 1 < n && imap_arg_is_string(a) && imap_arg_is_string(&args[i + 1]))
            check_list_pattern(a, &args[i + 1]);
    }
}

/* ---------------------------------------------------------------- one command */

static void one_command(const char *buf, size_t len, size_t ext_at, size_t ext_size, unsigned bits)
{
    struct imap_command cmd;
    const char *err = NULL;
    if (imap_parse_command(buf, len, ext_at, ext_size, &cmd, &err) < 0) {
        FUZZ_CHECK(err != NULL && cmd.args == NULL && cmd.mem == NULL);
        return;
    }
    FUZZ_CHECK(cmd.tag[0] && strlen(cmd.tag) <= IMAP_TAG_MAX && !strchr(cmd.tag, '+'));
    FUZZ_CHECK(cmd.verb[0] && strlen(cmd.verb) <= IMAP_VERB_MAX);
    for (const char *v = cmd.verb; *v; v++)
        FUZZ_CHECK(*v >= 'A' && *v <= 'Z');
    FUZZ_CHECK(cmd.append_fd == -1 && (cmd.nargs == 0 || cmd.args != NULL));
    struct block b = {.mem = cmd.mem, .ext_size = ext_size};
    memcpy(&b.size, cmd.mem, sizeof b.size);
    for (size_t i = 0; i < cmd.nargs; i++)
        check_arg(&cmd.args[i], 0, &b);
    cur_block = &b;
    const struct imap_arg *a = cmd.args;
    size_t n = cmd.nargs;
    /* What the verb's handler gives each reader (bits stand for the capabilities offered). */
    if (strcmp(cmd.verb, "FETCH") == 0 && n >= 2)
        check_fetch(&a[1], cmd.uid, bits & 3);
    else if (strcmp(cmd.verb, "STORE") == 0 && n >= 3)
        check_flags(&a[2], n - 2);
    else if (strcmp(cmd.verb, "APPEND") == 0 && n >= 2 && a[1].type == IMAP_ARG_LIST)
        check_flags(&a[1], 1);
    if (strcmp(cmd.verb, "SEARCH") == 0)
        check_search(a, n, bits & 3);
    else if (n && ext_at == SIZE_MAX) /* any arguments as criteria: more shapes to the grammar */
        check_search(a + 1, n - 1, bits & 3);
    if (n && ext_at == SIZE_MAX && strcmp(cmd.verb, "FETCH") != 0)
        check_fetch(&a[n - 1], cmd.uid, 3);
    each_arg(a, n, bits);
    imap_command_free(&cmd);
}

/* Lines as input.c reads them: up to LF (a CR before it dropped), literals' bytes inline;
 * APPEND's message literal (not the first argument) goes "to its file": not into buf. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (open_mutf7 < 0) {
        const char *e = getenv("FUZZ_IMAPD_OPEN_BUGS");
        open_mutf7 = e && (strcmp(e, "1") == 0 || strstr(e, "mutf7"));
    }
    const char *p = (const char *)data, *end = p + size;
    unsigned bits = size ? data[size - 1] : 0;
    char *buf = malloc(MAX_COMMAND + MAX_LINE + 2);
    size_t have = 0, ext_at = SIZE_MAX, ext_size = 0;
    int first = 1;
    char cur_verb[IMAP_VERB_MAX + 1] = "", tag[IMAP_TAG_MAX + 1];
    size_t args_at = 0;
    int uid = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            break; /* a line never ended: the session waits */
        size_t len = (size_t)(nl - p);
        if (len && p[len - 1] == '\r')
            len--;
        const char *line = p;
        p = nl + 1;
        if (len > MAX_LINE)
            break; /* "BYE Line too long" */
        if (first && len == 0)
            continue;
        if (first && imap_parse_head(line, len, tag, cur_verb, &uid, &args_at) != IMAP_HEAD_OK)
            cur_verb[0] = '\0';
        struct imap_literal_head lit;
        int rc = imap_parse_literal_head(line, len, &lit);
        if (rc == 1) {
            FUZZ_CHECK(lit.at < len && (line[lit.at] == '{' || line[lit.at] == '~'));
            int msg = !uid && strcmp(cur_verb, "APPEND") == 0 && !(first && lit.at == args_at) && ext_at == SIZE_MAX;
            uint64_t max = msg ? (uint64_t)16 << 20 : MAX_COMMAND;
            if (lit.size + (msg ? 0 : have + len + 2) > max) {
                if (lit.nonsync)
                    break; /* BAD [TOOBIG] and the connection closes */
                have = 0, first = 1, ext_at = SIZE_MAX; /* NO [TOOBIG]: the client sends nothing */
                continue;
            }
            memcpy(buf + have, line, len);
            memcpy(buf + have + len, "\r\n", 2);
            if (msg) {
                ext_at = have + lit.at;
                ext_size = (size_t)lit.size;
            }
            have += len + 2;
            size_t take = (size_t)lit.size < (size_t)(end - p) ? (size_t)lit.size : (size_t)(end - p);
            if (!msg) {
                memcpy(buf + have, p, take);
                have += take;
            }
            p += take;
            first = 0;
            continue;
        }
        if (have + len <= MAX_COMMAND && rc == 0) {
            memcpy(buf + have, line, len);
            char *exact = malloc(have + len ? have + len : 1); /* exact size: an over-read is a report */
            memcpy(exact, buf, have + len);
            one_command(exact, have + len, ext_at, ext_size, bits);
            free(exact);
        }
        have = 0, first = 1, ext_at = SIZE_MAX, ext_size = 0;
    }
    free(buf);
    return 0;
}
