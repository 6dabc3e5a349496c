/* SMTP command lines as a client sends them: the input is a stream, cut into lines by the
 * session's own line scanner (smtpd/lines.c), and each line goes where session.c sends it:
 * the verb parser, then MAIL/RCPT/HELO/BDAT argument parsing (smtpd/parser.c, bdat.c), and a HELO name
 * and a single recipient into the Received: header (smtpd/received.c). Checks the parser's
 * promises: the argument lies inside the line, every refusal is one reply line with a code,
 * a parsed address is bounded and consistent. */
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "smtpd/bdat.h"
#include "smtpd/lines.h"
#include "smtpd/parser.h"
#include "smtpd/received.h"

struct session {
    int smtputf8; /* the last MAIL announced SMTPUTF8 */
    char helo[256];
    char rcpt[PM_ADDR_MAX_PATH + 1];
    int nrcpt;
};

static void check_reply(const char *reply)
{
    size_t n = strlen(reply);
    FUZZ_CHECK(n >= 4 && n < 256);
    FUZZ_CHECK(reply[0] >= '4' && reply[0] <= '5' && reply[1] >= '0' && reply[1] <= '9' && reply[2] >= '0' &&
               reply[2] <= '9' && reply[3] == ' ');
    /* A reply must not carry a line break the client could read as a second reply. */
    FUZZ_CHECK(!strchr(reply, '\r') && !strchr(reply, '\n'));
}

static void check_addr(const struct pm_addr *a, int flags)
{
    size_t n = strnlen(a->address, sizeof a->address);
    FUZZ_CHECK(n < sizeof a->address);
    FUZZ_CHECK(a->domain >= a->address && a->domain <= a->address + n);
    FUZZ_CHECK(a->local_len <= n);
    if (a->is_null)
        FUZZ_CHECK(n == 0);
    if (!(flags & PM_ADDR_UTF8))
        FUZZ_CHECK(!a->is_utf8);
}

static void one_line(struct session *s, const char *line, size_t len, size_t total)
{
    /* session.c: only AUTH may be longer than a command line. */
    if (total > SMTPD_MAX_COMMAND_LINE && !(len >= 5 && strncasecmp(line, "AUTH ", 5) == 0))
        return;
    struct smtpd_command cmd;
    smtpd_parse_command(line, len, &cmd);
    FUZZ_CHECK(cmd.arg >= line && cmd.arg + cmd.arglen <= line + len);
    FUZZ_CHECK(smtpd_verb_name(cmd.verb) != NULL);
    char reply[512];
    struct pm_addr addr;
    switch (cmd.verb) {
    case SMTPD_CMD_HELO:
    case SMTPD_CMD_EHLO:
        if (smtpd_helo_valid(cmd.arg, cmd.arglen)) {
            FUZZ_CHECK(cmd.arglen < sizeof s->helo);
            memcpy(s->helo, cmd.arg, cmd.arglen);
            s->helo[cmd.arglen] = '\0';
        }
        break;
    case SMTPD_CMD_MAIL: {
        struct smtpd_mail_params p;
        reply[0] = '\0';
        if (smtpd_parse_mail(cmd.arg, cmd.arglen, &addr, &p, reply, sizeof reply) == 0) {
            check_addr(&addr, p.smtputf8 ? PM_ADDR_UTF8 : 0);
            s->smtputf8 = p.smtputf8;
            s->nrcpt = 0;
        } else {
            check_reply(reply);
        }
        break;
    }
    case SMTPD_CMD_RCPT:
        reply[0] = '\0';
        if (smtpd_parse_rcpt(cmd.arg, cmd.arglen, s->smtputf8, &addr, reply, sizeof reply) == 0) {
            check_addr(&addr, s->smtputf8 ? PM_ADDR_UTF8 : 0);
            FUZZ_CHECK(!addr.is_null);
            /* STRICT: no relay tricks survive a RCPT. */
            FUZZ_CHECK(!addr.had_route);
            memcpy(s->rcpt, addr.address, sizeof s->rcpt);
            s->nrcpt++;
        } else {
            check_reply(reply);
        }
        break;
    case SMTPD_CMD_BDAT: {
        /* A size is all digits and LAST the only word after it: printing it back gives the
         * argument (up to case and spaces), so no two readings of one line exist. */
        unsigned long long size;
        int last;
        if (smtpd_bdat_parse(cmd.arg, cmd.arglen, &size, &last) == 0) {
            char back[64];
            size_t n = (size_t)snprintf(back, sizeof back, "%llu", size);
            FUZZ_CHECK(cmd.arglen >= n && (last ? cmd.arglen >= n + 5 : 1));
            size_t lead = 0;
            while (lead + 1 < cmd.arglen && cmd.arg[lead] == '0' && cmd.arg[lead + 1] >= '0' && cmd.arg[lead + 1] <= '9')
                lead++;
            FUZZ_CHECK(memcmp(cmd.arg + lead, back, n) == 0);
            FUZZ_CHECK(last ? strncasecmp(cmd.arg + cmd.arglen - 4, "LAST", 4) == 0 : lead + n == cmd.arglen);
        }
        break;
    }
    default:
        break;
    }
}

static void received(const struct session *s)
{
    char hdr[2048];
    struct smtpd_received r = {
        .helo = s->helo, .ip = "192.0.2.1", .hostname = "mx.example.test", .esmtp = 1,
        .smtputf8 = s->smtputf8, .tls_version = "", .tls_cipher = "",
        .rcpt = s->nrcpt == 1 ? s->rcpt : NULL, .when = 1700000000,
    };
    size_t n = smtpd_received_format(&r, hdr, sizeof hdr);
    FUZZ_CHECK(n > 0 && n < sizeof hdr);
    /* Header injection: every line break is a CRLF followed by a TAB (one folded field),
     * except the last. */
    for (size_t i = 0; i < n; i++) {
        if (hdr[i] == '\n')
            FUZZ_CHECK(i > 0 && hdr[i - 1] == '\r' && (i + 1 == n || hdr[i + 1] == '\t'));
        if (hdr[i] == '\r')
            FUZZ_CHECK(i + 1 < n && hdr[i + 1] == '\n');
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct session s = {.helo = ""};
    struct smtpd_linescan scan;
    smtpd_linescan_reset(&scan);
    size_t off = 0, start = 0;
    while (off < size) {
        size_t used;
        enum smtpd_line_status st =
            smtpd_linescan_feed(&scan, (const char *)data + off, size - off, SMTPD_MAX_AUTH_LINE, &used);
        FUZZ_CHECK(used > 0 && used <= size - off);
        off += used;
        if (st == SMTPD_LINE_MORE)
            break; /* no LF: session.c waits for more */
        size_t total = off - start;
        FUZZ_CHECK(total == scan.seen && data[off - 1] == '\n');
        if (st == SMTPD_LINE_DONE) {
            FUZZ_CHECK(total <= SMTPD_MAX_AUTH_LINE);
            /* A private copy: the parser must not read past the line. */
            char *line = malloc(total);
            memcpy(line, data + start, total);
            size_t len = smtpd_line_strip(line, total);
            FUZZ_CHECK(len <= total && len + 2 >= total);
            one_line(&s, line, len, total);
            free(line);
        }
        smtpd_linescan_reset(&scan);
        start = off;
    }
    received(&s);
    return 0;
}
