#include "command.h"

#include <string.h>
#include <strings.h>

static const struct {
    const char *name;
    enum pop3_verb verb;
    int min, max; /* argument counts */
} verbs[] = {
    {"USER", POP3_USER, 1, 1}, {"PASS", POP3_PASS, 1, 1}, {"STAT", POP3_STAT, 0, 0},
    {"LIST", POP3_LIST, 0, 1}, {"RETR", POP3_RETR, 1, 1}, {"DELE", POP3_DELE, 1, 1},
    {"RSET", POP3_RSET, 0, 0}, {"NOOP", POP3_NOOP, 0, 0}, {"QUIT", POP3_QUIT, 0, 0},
    {"TOP", POP3_TOP, 2, 2},   {"UIDL", POP3_UIDL, 0, 1}, {"CAPA", POP3_CAPA, 0, 0},
    {"AUTH", POP3_AUTH, 0, 2}, {"STLS", POP3_STLS, 0, 0}, {"APOP", POP3_APOP, 2, 2},
};

const char *pop3_verb_name(enum pop3_verb v)
{
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (verbs[i].verb == v)
            return verbs[i].name;
    return "UNKNOWN";
}

int pop3_parse_command(const char *line, size_t len, struct pop3_command *cmd)
{
    memset(cmd, 0, sizeof *cmd);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return POP3_PARSE_BAD_BYTES;
    }
    if (len == 0)
        return POP3_PARSE_EMPTY;
    size_t kw = 0;
    while (kw < len && line[kw] != ' ')
        kw++;
    if (kw < 3 || kw > 4)
        return POP3_PARSE_UNKNOWN;
    int found = -1;
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (strlen(verbs[i].name) == kw && strncasecmp(verbs[i].name, line, kw) == 0)
            found = (int)i;
    if (found < 0)
        return POP3_PARSE_UNKNOWN;
    cmd->verb = verbs[found].verb;

    const char *p = line + kw, *end = line + len;
    if (cmd->verb == POP3_PASS) {
        /* RFC 1939: the password is the rest of the line, spaces included. */
        if (p == end || *p != ' ' || p + 1 == end || (size_t)(end - p - 1) > POP3_MAX_PASS)
            return POP3_PARSE_SYNTAX;
        memcpy(cmd->argv[0], p + 1, (size_t)(end - p - 1));
        cmd->argc = 1;
        return POP3_PARSE_OK;
    }
    while (p < end) {
        if (*p != ' ')
            return POP3_PARSE_SYNTAX;
        while (p < end && *p == ' ')
            p++;
        if (p == end)
            break; /* trailing spaces are tolerated */
        const char *a = p;
        while (p < end && *p != ' ')
            p++;
        size_t alen = (size_t)(p - a);
        /* AUTH's initial response and USER's address may be long; everything else is short
         * (RFC 1939: 40 characters). */
        size_t limit = cmd->verb == POP3_AUTH || cmd->verb == POP3_USER ? POP3_MAX_PASS : POP3_MAX_ARG;
        if (cmd->argc == 2 || alen > limit)
            return POP3_PARSE_SYNTAX;
        memcpy(cmd->argv[cmd->argc++], a, alen);
    }
    if (cmd->argc < verbs[found].min || cmd->argc > verbs[found].max)
        return POP3_PARSE_SYNTAX;
    return POP3_PARSE_OK;
}

int pop3_parse_count(const char *s, unsigned long *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 9)
        return -1;
    unsigned long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    *out = v;
    return 0;
}

unsigned long pop3_parse_msgnum(const char *s, unsigned long max)
{
    unsigned long v;
    if (pop3_parse_count(s, &v) < 0 || v == 0 || v > max)
        return 0;
    return v;
}
