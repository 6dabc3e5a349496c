/* SMTP command lines (parser.h): the verb by the command table, MAIL and RCPT arguments,
 * the HELO name. */
#include "parser.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "command_table.h"

/* Not SMTP: browsers and proxies abused as SMTP clients (cross-protocol attacks). */
static const char *const forbidden[] = {"GET", "POST", "CONNECT", "PUT", "HEAD"};

const char *smtpd_verb_name(enum smtpd_verb v)
{
    for (size_t i = 0; i < smtpd_cmd_table_size; i++)
        if (smtpd_cmd_table[i].id == v)
            return smtpd_cmd_table[i].verb;
    return v == SMTPD_CMD_FORBIDDEN ? "forbidden" : v == SMTPD_CMD_BADCHAR ? "badchar" : "unknown";
}

void smtpd_parse_command(const char *line, size_t len, struct smtpd_command *cmd)
{
    cmd->verb = SMTPD_CMD_UNKNOWN;
    cmd->row = NULL;
    cmd->arg = line + len;
    cmd->arglen = 0;
    /* A command line is text: controls other than TAB (NUL, CR, ESC...) are refused, never
     * silently cut, so "RCPT TO:<a>\0<b>" cannot mean two different things. */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if ((c < 32 && c != '\t') || c == 127) {
            cmd->verb = SMTPD_CMD_BADCHAR;
            return;
        }
    }
    size_t v = 0;
    while (v < len && line[v] != ' ')
        v++;
    if ((cmd->row = smtpd_cmd_find(line, v)) != NULL)
        cmd->verb = cmd->row->id;
    for (size_t i = 0; i < sizeof forbidden / sizeof forbidden[0]; i++)
        if (strlen(forbidden[i]) == v && strncasecmp(line, forbidden[i], v) == 0)
            cmd->verb = SMTPD_CMD_FORBIDDEN;
    if (cmd->verb == SMTPD_CMD_UNKNOWN)
        return;
    size_t a = v < len ? v + 1 : v;
    size_t end = len;
    while (end > a && (line[end - 1] == ' ' || line[end - 1] == '\t'))
        end--;
    cmd->arg = line + a;
    cmd->arglen = end - a;
}

/* "FROM:" / "TO:" then optional blanks (RFC 5321 has none; many clients send one). */
static int skip_keyword(const char *arg, size_t len, const char *kw, size_t *pos)
{
    size_t k = strlen(kw);
    if (len < k || strncasecmp(arg, kw, k) != 0)
        return -1;
    while (k < len && arg[k] == ' ')
        k++;
    *pos = k;
    return 0;
}

static void addr_reply(enum pm_addr_status st, const char *why, int is_rcpt, char *reply, size_t size)
{
    switch (st) {
    case PM_ADDR_NON_ASCII:
        snprintf(reply, size, "553 5.6.7 Non-ASCII address requires SMTPUTF8 (%s)", why);
        break;
    case PM_ADDR_TRICK:
        snprintf(reply, size, "553 5.7.1 Address form not accepted: %s", why);
        break;
    default:
        snprintf(reply, size, "501 %s Bad %s address syntax: %s", is_rcpt ? "5.1.3" : "5.1.7",
                 is_rcpt ? "recipient" : "sender", why);
        break;
    }
}

static int all_digits(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* One MAIL parameter "KEY[=VALUE]". */
static int mail_param(const char *s, size_t n, struct smtpd_mail_params *p, char *reply, size_t size)
{
    const char *eq = memchr(s, '=', n);
    size_t klen = eq ? (size_t)(eq - s) : n;
    const char *val = eq ? eq + 1 : NULL;
    size_t vlen = eq ? n - klen - 1 : 0;
    if (klen == 4 && strncasecmp(s, "SIZE", 4) == 0) {
        if (!val || !all_digits(val, vlen) || p->has_size) {
            snprintf(reply, size, "501 5.5.4 Bad SIZE parameter");
            return -1;
        }
        unsigned long long v = 0;
        for (size_t i = 0; i < vlen; i++)
            v = v > (~0ULL - 9) / 10 ? ~0ULL : v * 10 + (unsigned)(val[i] - '0');
        p->has_size = 1;
        p->size = v;
        return 0;
    }
    if (klen == 4 && strncasecmp(s, "BODY", 4) == 0 && val) {
        if (vlen == 4 && strncasecmp(val, "7BIT", 4) == 0)
            return 0;
        if (vlen == 8 && strncasecmp(val, "8BITMIME", 8) == 0) {
            p->body_8bit = 1;
            return 0;
        }
        /* RFC 3030 3: BINARYMIME is not offered (the queue and the mta keep text, CRLF). */
        if (vlen == 10 && strncasecmp(val, "BINARYMIME", 10) == 0) {
            snprintf(reply, size, "555 5.5.4 BODY=BINARYMIME not supported");
            return -1;
        }
        snprintf(reply, size, "501 5.5.4 Bad BODY parameter");
        return -1;
    }
    if (klen == 8 && strncasecmp(s, "SMTPUTF8", 8) == 0 && !val) {
        p->smtputf8 = 1;
        return 0;
    }
    if (klen == 10 && strncasecmp(s, "REQUIRETLS", 10) == 0) {
        /* RFC 8689 2: a keyword without a value, once. */
        if (val || p->requiretls) {
            snprintf(reply, size, "501 5.5.4 Bad REQUIRETLS parameter");
            return -1;
        }
        p->requiretls = 1;
        return 0;
    }
    if (klen == 4 && strncasecmp(s, "AUTH", 4) == 0 && val)
        return 0; /* RFC 4954 5: we may ignore the AUTH= of a relaying client */
    int dsn = smtpd_dsn_mail_param(&p->dsn, s, klen, val, vlen, reply, size);
    if (dsn)
        return dsn < 0 ? -1 : 0;
    snprintf(reply, size, "555 5.5.4 Unsupported MAIL parameter");
    return -1;
}

int smtpd_parse_mail(const char *arg, size_t len, struct pm_addr *addr, struct smtpd_mail_params *p, char *reply,
                     size_t replysize)
{
    memset(p, 0, sizeof *p);
    size_t pos, used = 0;
    if (skip_keyword(arg, len, "FROM:", &pos) < 0 || pos >= len || arg[pos] != '<') {
        snprintf(reply, replysize, "501 5.5.4 Syntax: MAIL FROM:<address>");
        return -1;
    }
    const char *why = "";
    /* UTF-8 is checked against SMTPUTF8 below, once the parameters are known. */
    enum pm_addr_status st = pm_addr_parse_path(arg + pos, len - pos, PM_ADDR_NULL_OK | PM_ADDR_UTF8, addr, &used, &why);
    if (st != PM_ADDR_OK) {
        addr_reply(st, why, 0, reply, replysize);
        return -1;
    }
    pos += used;
    while (pos < len) {
        if (arg[pos] != ' ') {
            snprintf(reply, replysize, "501 5.5.4 Syntax: MAIL FROM:<address> [parameters]");
            return -1;
        }
        while (pos < len && arg[pos] == ' ')
            pos++;
        size_t start = pos;
        while (pos < len && arg[pos] != ' ')
            pos++;
        if (pos > start && mail_param(arg + start, pos - start, p, reply, replysize) < 0)
            return -1;
    }
    if (addr->is_utf8 && !p->smtputf8) {
        addr_reply(PM_ADDR_NON_ASCII, "sender", 0, reply, replysize);
        return -1;
    }
    return 0;
}

int smtpd_parse_rcpt(const char *arg, size_t len, int smtputf8, struct pm_addr *addr, char *reply, size_t replysize)
{
    struct smtpd_dsn_rcpt dsn;
    return smtpd_parse_rcpt_dsn(arg, len, smtputf8, addr, &dsn, reply, replysize);
}

int smtpd_parse_rcpt_dsn(const char *arg, size_t len, int smtputf8, struct pm_addr *addr, struct smtpd_dsn_rcpt *dsn,
                         char *reply, size_t replysize)
{
    memset(dsn, 0, sizeof *dsn);
    size_t pos, used = 0;
    if (skip_keyword(arg, len, "TO:", &pos) < 0 || pos >= len || arg[pos] != '<') {
        snprintf(reply, replysize, "501 5.5.4 Syntax: RCPT TO:<address>");
        return -1;
    }
    const char *why = "";
    int flags = PM_ADDR_STRICT | PM_ADDR_POSTMASTER | (smtputf8 ? PM_ADDR_UTF8 : 0);
    enum pm_addr_status st = pm_addr_parse_path(arg + pos, len - pos, flags, addr, &used, &why);
    if (st != PM_ADDR_OK) {
        addr_reply(st, why, 1, reply, replysize);
        return -1;
    }
    pos += used;
    while (pos < len) {
        if (arg[pos] != ' ') {
            snprintf(reply, replysize, "501 5.5.4 Syntax: RCPT TO:<address> [parameters]");
            return -1;
        }
        while (pos < len && arg[pos] == ' ')
            pos++;
        size_t start = pos;
        while (pos < len && arg[pos] != ' ')
            pos++;
        if (pos == start)
            continue;
        const char *eq = memchr(arg + start, '=', pos - start);
        size_t klen = eq ? (size_t)(eq - (arg + start)) : pos - start;
        int rc = smtpd_dsn_rcpt_param(dsn, arg + start, klen, eq ? eq + 1 : NULL, eq ? pos - start - klen - 1 : 0,
                                      reply, replysize);
        if (rc < 0)
            return -1;
        if (rc == 0) {
            snprintf(reply, replysize, "555 5.5.4 Unsupported RCPT parameter");
            return -1;
        }
    }
    return 0;
}

int smtpd_helo_valid(const char *arg, size_t len)
{
    if (len == 0 || len > 255)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)arg[i];
        if (c <= ' ' || c >= 127)
            return 0;
    }
    return 1;
}
