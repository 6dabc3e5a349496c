/* The POP3 command parser (command.h): keyword, arguments and their counts as the command
 * table's row for the keyword says. */
#include "command.h"

#include <string.h>

#include "command_table.h"

const char *pop3_verb_name(enum pop3_verb v)
{
    for (size_t i = 0; i < pop3_ncommands; i++)
        if (pop3_commands[i].verb == v)
            return pop3_commands[i].name;
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
    const struct pop3_command_row *row = pop3_command_find(line, kw);
    if (!row)
        return POP3_PARSE_UNKNOWN;
    cmd->verb = row->verb;
    cmd->row = row;

    const char *p = line + kw, *end = line + len;
    if (row->flags & POP3_F_ARG_REST) {
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
        size_t limit = row->flags & POP3_F_ARG_LONG ? POP3_MAX_PASS : POP3_MAX_ARG;
        if (cmd->argc == 2 || alen > limit)
            return POP3_PARSE_SYNTAX;
        memcpy(cmd->argv[cmd->argc++], a, alen);
    }
    if (cmd->argc < row->min_args || cmd->argc > row->max_args)
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
