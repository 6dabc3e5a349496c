/* The IMAP command parser (parse.h): RFC 9051 §9's tag, atom, quoted, literal and list,
 * with the bracket rule of args.h, into a tree whose strings are copies (NUL-terminated)
 * in one block. Strict where the grammar is (one SP between arguments, only \" and \\
 * escapes, no control bytes outside literals); the few leniencies are said where they are. */
#include "parse.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ASTRING-CHAR (ATOM-CHAR or ']') without '+': what a tag is made of. */
static int tag_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && !strchr("(){%*\"\\+", c);
}

/* What an atom argument may hold outside brackets. Looser than ATOM-CHAR on purpose: a
 * flag's '\', LIST's wildcards and a sequence set's '*' are atoms to this parser, and each
 * handler reads its own grammar off the atom. */
static int atom_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && !strchr("(){\"", c);
}

int imap_parse_head(const char *line, size_t len, char tag[IMAP_TAG_MAX + 1], char verb[IMAP_VERB_MAX + 1], int *uid,
                    size_t *args_at)
{
    size_t i = 0;
    tag[0] = verb[0] = '\0';
    *uid = 0;
    while (i < len && tag_char((unsigned char)line[i]))
        i++;
    if (i == 0 || i > IMAP_TAG_MAX || i == len || line[i] != ' ')
        return IMAP_HEAD_NO_TAG;
    memcpy(tag, line, i);
    tag[i] = '\0';
    for (int word = 0; word < 2; word++) {
        size_t start = ++i;
        while (i < len && ((line[i] >= 'A' && line[i] <= 'Z') || (line[i] >= 'a' && line[i] <= 'z')))
            i++;
        size_t n = i - start;
        if (n == 0 || n > IMAP_VERB_MAX || (i < len && line[i] != ' '))
            return IMAP_HEAD_NO_VERB;
        for (size_t k = 0; k < n; k++)
            verb[k] = (char)(line[start + k] & ~0x20);
        verb[n] = '\0';
        if (word == 1 || strcmp(verb, "UID") != 0)
            break;
        if (i == len) /* "UID" alone */
            return IMAP_HEAD_NO_VERB;
        *uid = 1;
    }
    *args_at = i < len ? i + 1 : len;
    return IMAP_HEAD_OK;
}

int imap_parse_literal_head(const char *line, size_t len, struct imap_literal_head *lit)
{
    if (len < 3 || line[len - 1] != '}')
        return 0;
    size_t i = len - 1;
    int nonsync = 0;
    if (line[i - 1] == '+') {
        nonsync = 1;
        i--;
    }
    size_t digits_end = i;
    while (i > 0 && line[i - 1] >= '0' && line[i - 1] <= '9')
        i--;
    if (i == 0 || line[i - 1] != '{')
        return 0; /* "...}" that is no literal: an atom or a quoted string's end */
    size_t ndigits = digits_end - i;
    size_t at = i - 1;
    int literal8 = at > 0 && line[at - 1] == '~';
    if (literal8)
        at--;
    /* A literal starts an argument: after a space or a list's '('. */
    if (at == 0 || (line[at - 1] != ' ' && line[at - 1] != '('))
        return 0;
    if (ndigits == 0 || ndigits > 19)
        return -1;
    uint64_t n = 0;
    for (size_t k = i; k < digits_end; k++)
        n = n * 10 + (uint64_t)(line[k] - '0');
    *lit = (struct imap_literal_head){.size = n, .nonsync = nonsync, .literal8 = literal8, .at = at};
    return 1;
}

/* ------------------------------------------------------------------ the tree */

struct parser {
    const char *buf, *p, *end;
    size_t ext_at, ext_size;
    char *out; /* the next free byte of the copies */
    const char *err;
    int depth;
};

static int fail(struct parser *ps, const char *why)
{
    if (!ps->err)
        ps->err = why;
    return -1;
}

static void free_args(struct imap_arg *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].type == IMAP_ARG_LIST)
            free_args(v[i].list, v[i].n);
    free(v);
}

/* A copy of src[0..n) in the block, NUL-terminated. */
static const char *copy(struct parser *ps, const char *src, size_t n)
{
    char *d = ps->out;
    memcpy(d, src, n);
    d[n] = '\0';
    ps->out += n + 1;
    return d;
}

static int parse_quoted(struct parser *ps, struct imap_arg *a)
{
    ps->p++; /* the opening quote */
    char *d = ps->out;
    size_t n = 0;
    for (;;) {
        if (ps->p == ps->end)
            return fail(ps, "unterminated quoted string");
        unsigned char c = (unsigned char)*ps->p++;
        if (c == '"')
            break;
        if (c == '\0' || c == '\r' || c == '\n')
            return fail(ps, "control character in quoted string");
        if (c == '\\') {
            if (ps->p == ps->end || (*ps->p != '"' && *ps->p != '\\'))
                return fail(ps, "bad escape in quoted string");
            c = (unsigned char)*ps->p++;
        }
        d[n++] = (char)c;
    }
    d[n] = '\0';
    ps->out += n + 1;
    *a = (struct imap_arg){.type = IMAP_ARG_QUOTED, .s = d, .len = n};
    return 0;
}

static int parse_literal(struct parser *ps, struct imap_arg *a)
{
    size_t at = (size_t)(ps->p - ps->buf);
    int literal8 = *ps->p == '~';
    ps->p += literal8 ? 2 : 1;
    uint64_t n = 0;
    int ndigits = 0;
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9' && ndigits < 20) {
        n = n * 10 + (uint64_t)(*ps->p++ - '0');
        ndigits++;
    }
    if (ps->p < ps->end && *ps->p == '+')
        ps->p++;
    if (ndigits == 0 || ndigits > 19 || ps->end - ps->p < 3 || memcmp(ps->p, "}\r\n", 3) != 0)
        return fail(ps, "bad literal");
    ps->p += 3;
    if (at == ps->ext_at) { /* APPEND's message: in its file, not here */
        *a = (struct imap_arg){.type = IMAP_ARG_LITERAL, .s = "", .len = ps->ext_size, .literal8 = literal8};
        return 0;
    }
    if (n > (uint64_t)(ps->end - ps->p))
        return fail(ps, "literal shorter than announced");
    if (!literal8 && memchr(ps->p, '\0', (size_t)n))
        return fail(ps, "NUL in literal");
    *a = (struct imap_arg){.type = IMAP_ARG_LITERAL, .s = copy(ps, ps->p, (size_t)n), .len = (size_t)n,
                           .literal8 = literal8};
    ps->p += n;
    return 0;
}

/* An atom; from a '[' to its ']' every byte but CR, LF and NUL belongs to it (args.h). */
static int parse_atom(struct parser *ps, struct imap_arg *a)
{
    const char *start = ps->p;
    int brackets = 0;
    while (ps->p < ps->end) {
        unsigned char c = (unsigned char)*ps->p;
        if (brackets) {
            if (c == '\0' || c == '\r' || c == '\n')
                return fail(ps, "control character in atom");
            brackets += c == '[' ? 1 : c == ']' ? -1 : 0;
        } else if (c == '[') {
            brackets = 1;
        } else if (!atom_char(c)) {
            break;
        }
        ps->p++;
    }
    if (brackets)
        return fail(ps, "unterminated [");
    size_t n = (size_t)(ps->p - start);
    if (n == 0)
        return fail(ps, "bad character in arguments");
    a->s = copy(ps, start, n);
    a->len = n;
    a->type = n == 3 && strncasecmp(start, "NIL", 3) == 0 ? IMAP_ARG_NIL : IMAP_ARG_ATOM;
    return 0;
}

static int parse_list(struct parser *ps, struct imap_arg *a);

static int parse_one(struct parser *ps, struct imap_arg *a)
{
    memset(a, 0, sizeof *a);
    if (ps->p == ps->end)
        return fail(ps, "missing argument");
    char c = *ps->p;
    if (c == '(')
        return parse_list(ps, a);
    if (c == '"')
        return parse_quoted(ps, a);
    if (c == '{' || (c == '~' && ps->end - ps->p > 1 && ps->p[1] == '{'))
        return parse_literal(ps, a);
    return parse_atom(ps, a);
}

/* Arguments separated by one SP until close (')' in a list, the end at the top). */
static int parse_seq(struct parser *ps, struct imap_arg **out, size_t *nout, int in_list)
{
    struct imap_arg *v = NULL;
    size_t n = 0, cap = 0;
    *out = NULL;
    *nout = 0;
    if (in_list && ps->p < ps->end && *ps->p == ')') {
        ps->p++;
        return 0; /* () */
    }
    for (;;) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 4;
            struct imap_arg *nv = realloc(v, ncap * sizeof *nv);
            if (!nv) {
                free_args(v, n);
                return fail(ps, "out of memory");
            }
            v = nv;
            cap = ncap;
        }
        if (parse_one(ps, &v[n]) < 0) {
            free_args(v, n);
            return -1;
        }
        n++;
        if (in_list && ps->p < ps->end && *ps->p == ')') {
            ps->p++;
            break;
        }
        if (!in_list && ps->p == ps->end)
            break;
        if (ps->p == ps->end || *ps->p != ' ') {
            free_args(v, n);
            return fail(ps, ps->p == ps->end ? "unterminated list" : "bad character after argument");
        }
        ps->p++;
        /* Lenient: spaces ending the command (some clients send one). */
        if (!in_list) {
            const char *q = ps->p;
            while (q < ps->end && *q == ' ')
                q++;
            if (q == ps->end) {
                ps->p = q;
                break;
            }
        }
    }
    *out = v;
    *nout = n;
    return 0;
}

static int parse_list(struct parser *ps, struct imap_arg *a)
{
    if (++ps->depth > IMAP_PARSE_DEPTH)
        return fail(ps, "lists nested too deep");
    ps->p++; /* '(' */
    a->type = IMAP_ARG_LIST;
    int rc = parse_seq(ps, &a->list, &a->n, 1);
    ps->depth--;
    return rc;
}

int imap_parse_command(const char *buf, size_t len, size_t ext_at, size_t ext_size, struct imap_command *cmd,
                       const char **err)
{
    memset(cmd, 0, sizeof *cmd);
    cmd->append_fd = -1;
    *err = NULL;
    size_t args_at;
    int head = imap_parse_head(buf, len, cmd->tag, cmd->verb, &cmd->uid, &args_at);
    if (head != IMAP_HEAD_OK) {
        *err = head == IMAP_HEAD_NO_TAG ? "invalid tag" : "invalid command";
        return -1;
    }
    /* Every string is a copy of at most its source bytes, plus a NUL: never more than 2 x len.
     * The block starts with its size, so that it can be wiped (a LOGIN's password). */
    size_t size = sizeof(size_t) + 2 * len + 2;
    cmd->mem = malloc(size);
    if (!cmd->mem) {
        *err = "out of memory";
        return -1;
    }
    memcpy(cmd->mem, &size, sizeof size);
    struct parser ps = {.buf = buf, .p = buf + args_at, .end = buf + len, .ext_at = ext_at, .ext_size = ext_size,
                        .out = (char *)cmd->mem + sizeof size};
    const char *q = ps.p;
    while (q < ps.end && *q == ' ')
        q++;
    if (q == ps.end)
        ps.p = q; /* lenient, as after an argument: spaces ending the command */
    if (ps.p < ps.end && parse_seq(&ps, &cmd->args, &cmd->nargs, 0) < 0) {
        *err = ps.err;
        imap_command_free(cmd);
        return -1;
    }
    return 0;
}

void imap_command_free(struct imap_command *cmd)
{
    if (!cmd)
        return;
    free_args(cmd->args, cmd->nargs);
    if (cmd->mem) {
        size_t size;
        memcpy(&size, cmd->mem, sizeof size);
        explicit_bzero(cmd->mem, size);
    }
    free(cmd->mem);
    cmd->args = NULL;
    cmd->nargs = 0;
    cmd->mem = NULL;
}

int imap_arg_is_string(const struct imap_arg *arg)
{
    return arg && (arg->type == IMAP_ARG_ATOM || arg->type == IMAP_ARG_QUOTED || arg->type == IMAP_ARG_LITERAL);
}

int imap_arg_is_atom(const struct imap_arg *arg, const char *word)
{
    return arg && arg->type == IMAP_ARG_ATOM && strlen(word) == arg->len && strncasecmp(arg->s, word, arg->len) == 0;
}
