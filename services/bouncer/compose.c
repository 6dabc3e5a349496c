#include "compose.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"
#include "text.h"

#define MAX_BOUNDARY_TRIES 64

/* dst = s made 7-bit, without spaces (for host names and ids), truncated to fit. */
static void clean_token(char *dst, size_t size, const char *s)
{
    struct bouncer_buf b;
    bouncer_buf_init(&b);
    bouncer_text_ascii(&b, s);
    size_t o = 0;
    for (size_t i = 0; b.data && i < b.len && o + 1 < size; i++)
        if (b.data[i] != ' ')
            dst[o++] = b.data[i];
    dst[o] = '\0';
    bouncer_buf_free(&b);
}

/* RFC 3463: class "." subject "." detail, class 2, 4 or 5, at most 3 digits each. */
static int valid_status(const char *s)
{
    if (!s || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
        return 0;
    s += 2;
    for (int part = 0; part < 2; part++) {
        int digits = 0;
        while (*s >= '0' && *s <= '9' && digits < 4)
            s++, digits++;
        if (digits < 1 || digits > 3)
            return 0;
        if (part == 0 && *s++ != '.')
            return 0;
    }
    return *s == '\0';
}

const char *bouncer_rcpt_action(const struct bouncer_rcpt *r, int delay_notice)
{
    static const char *const actions[] = {"failed", "delayed", "delivered", "relayed"};
    for (size_t i = 0; r->action && i < sizeof actions / sizeof actions[0]; i++)
        if (strcmp(r->action, actions[i]) == 0)
            return actions[i];
    return delay_notice ? "delayed" : "failed";
}

static int is_success(const char *action)
{
    return strcmp(action, "delivered") == 0 || strcmp(action, "relayed") == 0;
}

static const char *rcpt_status(const struct bouncer_rcpt *r, const char *action)
{
    if (valid_status(r->status))
        return r->status;
    return strcmp(action, "delayed") == 0 ? "4.0.0" : is_success(action) ? "2.0.0" : "5.0.0";
}

/* Every recipient delivered or relayed: a success notice (RFC 3461 5.2.2). */
static int success_notice(const struct bouncer_dsn_in *in)
{
    for (size_t i = 0; i < in->nrcpts; i++)
        if (!is_success(bouncer_rcpt_action(&in->rcpts[i], in->delay_notice)))
            return 0;
    return in->nrcpts > 0;
}

/* Does the text start like an SMTP reply ("550 ...", "451-...")? Then its type is "smtp". */
static int is_smtp_reply(const char *s)
{
    return s && s[0] >= '2' && s[0] <= '5' && s[1] >= '0' && s[1] <= '9' && s[2] >= '0' && s[2] <= '9' &&
           (s[3] == '\0' || s[3] == ' ' || s[3] == '-');
}

static int has_text(const char *s) { return s && *s; }

/* ------------------------------------------------------------------ part 1: for people */

static void human_recipient(struct bouncer_buf *b, const struct bouncer_rcpt *r)
{
    struct bouncer_buf line;
    bouncer_buf_init(&line);
    bouncer_buf_addc(&line, '<');
    bouncer_text_ascii(&line, r->address);
    bouncer_buf_addc(&line, '>');
    if (has_text(r->original) && strcmp(r->original, r->address ? r->address : "") != 0) {
        bouncer_buf_adds(&line, " (expanded from <");
        bouncer_text_ascii(&line, r->original);
        bouncer_buf_adds(&line, ">)");
    }
    bouncer_buf_adds(&line, ": ");
    if (has_text(r->remote_mta)) {
        bouncer_buf_adds(&line, "host ");
        bouncer_text_ascii(&line, r->remote_mta);
        bouncer_buf_adds(&line, " said: ");
    }
    if (has_text(r->diagnostic))
        bouncer_text_ascii(&line, r->diagnostic);
    else
        bouncer_buf_addf(&line, "no further details (status %s)", valid_status(r->status) ? r->status : "unknown");
    if (line.oom)
        b->oom = 1;
    else
        bouncer_text_fold(b, 0, line.data, "    ");
    bouncer_buf_adds(b, "\r\n");
    bouncer_buf_free(&line);
}

static void human_success(struct bouncer_buf *b, const struct bouncer_rcpt *r)
{
    bouncer_buf_addc(b, '<');
    bouncer_text_ascii(b, r->address);
    bouncer_buf_adds(b, strcmp(bouncer_rcpt_action(r, 0), "relayed") == 0
                            ? ">: relayed to a system that does not send delivery notices\r\n"
                            : ">: delivered to mailbox\r\n");
}

static void human_part(struct bouncer_buf *b, const struct bouncer_dsn_in *in, const char *host)
{
    bouncer_buf_addf(b, "This is the mail system at host %s.\r\n\r\n", host);
    if (success_notice(in)) {
        bouncer_buf_adds(b, "Your message was successfully delivered to the destination(s)\r\n"
                            "listed below. If the message was delivered to mailbox you will\r\n"
                            "receive no further notifications. Otherwise you may still receive\r\n"
                            "notifications of mail delivery errors from other systems.\r\n\r\n"
                            "                   The mail system\r\n\r\n");
        for (size_t i = 0; i < in->nrcpts; i++) {
            if (i)
                bouncer_buf_adds(b, "\r\n");
            human_success(b, &in->rcpts[i]);
        }
        return;
    }
    if (in->delay_notice) {
        char waited[64], until[64];
        long long elapsed = in->arrival_time && in->now > in->arrival_time ? (long long)(in->now - in->arrival_time)
                                                                           : in->delay_warning;
        bouncer_text_duration(waited, sizeof waited, elapsed, 0);
        bouncer_text_duration(until, sizeof until, in->max_lifetime, 1);
        bouncer_buf_adds(b, "####################################################################\r\n"
                            "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\r\n"
                            "####################################################################\r\n\r\n");
        bouncer_buf_addf(b, "Your message could not be delivered for more than %s.\r\n", waited);
        if (in->max_lifetime > 0)
            bouncer_buf_addf(b, "It will be retried until it is %s old.\r\n", until);
    } else {
        bouncer_buf_addf(b, "I'm sorry to have to inform you that your message could not\r\n"
                            "be delivered to one or more recipients. %s attached below.\r\n",
                         in->return_full ? "It is" : "Its headers are");
    }
    if (in->requiretls)
        bouncer_buf_adds(b, "\r\nThe message was sent with REQUIRETLS (RFC 8689): this report returns\r\n"
                            "only its headers, and goes back with REQUIRETLS wherever the path\r\n"
                            "offers it.\r\n");
    bouncer_buf_adds(b, "\r\nFor further assistance, please send mail to postmaster.\r\n\r\n"
                        "If you do so, please include this problem report. You can\r\n"
                        "delete your own text from the attached returned message.\r\n\r\n"
                        "                   The mail system\r\n\r\n");
    for (size_t i = 0; i < in->nrcpts; i++) {
        if (i)
            bouncer_buf_adds(b, "\r\n");
        if (!in->delay_notice && is_success(bouncer_rcpt_action(&in->rcpts[i], 0)))
            human_success(b, &in->rcpts[i]); /* a success notice owed, sent with a failure */
        else
            human_recipient(b, &in->rcpts[i]);
    }
}

/* ------------------------------------------------------------------ part 2: for programs */

static void field_address(struct bouncer_buf *b, const char *name, const char *addr)
{
    struct bouncer_buf v;
    bouncer_buf_init(&v);
    bouncer_text_dsn_address(&v, addr);
    bouncer_text_field(b, name, v.data ? v.data : "");
    if (v.oom)
        b->oom = 1;
    bouncer_buf_free(&v);
}

static void field_date(struct bouncer_buf *b, const char *name, uint64_t t)
{
    char date[64];
    bouncer_text_date(date, sizeof date, t);
    bouncer_text_field(b, name, date);
}

static void report_recipient(struct bouncer_buf *b, const struct bouncer_dsn_in *in, const struct bouncer_rcpt *r)
{
    const char *action = bouncer_rcpt_action(r, in->delay_notice);
    char value[1200];
    const char *semi = has_text(r->orcpt) ? strchr(r->orcpt, ';') : NULL;
    if (semi && semi != r->orcpt && semi[1]) {
        /* RFC 3461 6.3: Original-Recipient is ORCPT as given: "addr-type; address" (decoded;
         * smtpd kept it printable ASCII, the field is folded like the others). */
        struct bouncer_buf v;
        bouncer_buf_init(&v);
        /* The whole ORCPT made 7-bit, then "; " for its first ';' (no cut addr-type). */
        bouncer_text_ascii(&v, r->orcpt);
        char *vsemi = v.data ? strchr(v.data, ';') : NULL;
        if (vsemi) {
            struct bouncer_buf t;
            bouncer_buf_init(&t);
            bouncer_buf_add(&t, v.data, (size_t)(vsemi - v.data));
            bouncer_buf_adds(&t, "; ");
            bouncer_buf_adds(&t, vsemi + 1);
            t.oom |= v.oom;
            bouncer_buf_free(&v);
            v = t;
        }
        bouncer_text_field(b, "Original-Recipient", v.data ? v.data : "");
        if (v.oom)
            b->oom = 1;
        bouncer_buf_free(&v);
    }
    field_address(b, "Final-Recipient", r->address);
    if (!semi && has_text(r->original) && strcmp(r->original, r->address ? r->address : "") != 0)
        field_address(b, "Original-Recipient", r->original);
    bouncer_text_field(b, "Action", action);
    bouncer_text_field(b, "Status", rcpt_status(r, action));
    if (has_text(r->remote_mta)) {
        /* "mx.example[192.0.2.1]" -> "mx.example": the field names a host (RFC 3464 2.3.5). */
        char host[256];
        clean_token(host, sizeof host, r->remote_mta);
        char *bracket = strchr(host, '[');
        if (bracket && bracket != host)
            *bracket = '\0';
        snprintf(value, sizeof value, "dns; %s", host);
        bouncer_text_field(b, "Remote-MTA", value);
    }
    if (has_text(r->diagnostic)) {
        struct bouncer_buf v;
        bouncer_buf_init(&v);
        bouncer_buf_adds(&v, is_smtp_reply(r->diagnostic) ? "smtp; " : "X-Postmesh; ");
        bouncer_buf_adds(&v, r->diagnostic);
        bouncer_text_field(b, "Diagnostic-Code", v.data ? v.data : "");
        if (v.oom)
            b->oom = 1;
        bouncer_buf_free(&v);
    }
    if (r->last_attempt)
        field_date(b, "Last-Attempt-Date", r->last_attempt);
    if (strcmp(action, "delayed") == 0 && in->arrival_time && in->max_lifetime > 0)
        field_date(b, "Will-Retry-Until", in->arrival_time + (uint64_t)in->max_lifetime);
}

static void report_part(struct bouncer_buf *b, const struct bouncer_dsn_in *in, const char *host)
{
    char value[300];
    if (has_text(in->envid)) {
        struct bouncer_buf v; /* RFC 3464 2.2.1: the ENVID as given (decoded; printable ASCII) */
        bouncer_buf_init(&v);
        bouncer_text_ascii(&v, in->envid);
        bouncer_text_field(b, "Original-Envelope-Id", v.data ? v.data : "");
        if (v.oom)
            b->oom = 1;
        bouncer_buf_free(&v);
    }
    snprintf(value, sizeof value, "dns; %s", host);
    bouncer_text_field(b, "Reporting-MTA", value);
    if (has_text(in->queue_id))
        bouncer_text_field(b, "X-Postmesh-Queue-ID", in->queue_id);
    if (has_text(in->sender))
        field_address(b, "X-Postmesh-Sender", in->sender);
    if (in->arrival_time)
        field_date(b, "Arrival-Date", in->arrival_time);
    /* RFC 3464 2.1: per-message fields, then each recipient's block after an empty line
     * (none after the last: a parser would see one more, empty, block). */
    for (size_t i = 0; i < in->nrcpts; i++) {
        bouncer_buf_adds(b, "\r\n");
        report_recipient(b, in, &in->rcpts[i]);
    }
}

/* ------------------------------------------------------------------ assembly */

static int occurs(const struct bouncer_buf *b, const char *needle)
{
    return b->data && memmem(b->data, b->len, needle, strlen(needle)) != NULL;
}

/* A boundary (RFC 2046 5.1.1: at most 70 characters) that none of the parts contains. */
static int pick_boundary(char *dst, size_t size, const char *unique, const struct bouncer_buf *parts, int nparts)
{
    for (int attempt = 0; attempt < MAX_BOUNDARY_TRIES; attempt++) {
        if (attempt == 0)
            snprintf(dst, size, "pm-dsn.%.40s", unique);
        else
            snprintf(dst, size, "pm-dsn.%.40s.%d", unique, attempt);
        int clash = 0;
        for (int i = 0; i < nparts && !clash; i++)
            clash = occurs(&parts[i], dst);
        if (!clash)
            return 0;
    }
    return -1;
}

/* RET=FULL: the whole message into b, line ends made CRLF. 1 if it holds 8-bit bytes. */
static int whole_message(struct bouncer_buf *b, const uint8_t *p, size_t n)
{
    int eight = 0;
    for (size_t i = 0; i < n; i++) {
        eight |= p[i] >= 0x80;
        if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
            bouncer_buf_addc(b, '\r');
        bouncer_buf_addc(b, (char)p[i]);
    }
    if (n && p[n - 1] != '\n')
        bouncer_buf_adds(b, "\r\n");
    return eight;
}

int bouncer_compose(const struct bouncer_dsn_in *in, struct bouncer_dsn *out)
{
    memset(out, 0, sizeof *out);
    char host[256], unique[64], date[64];
    clean_token(host, sizeof host, has_text(in->hostname) ? in->hostname : "localhost");
    /* The token goes into Message-ID and the boundary: keep characters safe in both. */
    size_t u = 0;
    for (const char *p = in->unique ? in->unique : ""; *p && u + 1 < sizeof unique; p++)
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '-')
            unique[u++] = *p;
    unique[u] = '\0';
    if (!u)
        snprintf(unique, sizeof unique, "0");

    struct bouncer_buf parts[3];
    for (int i = 0; i < 3; i++)
        bouncer_buf_init(&parts[i]);
    human_part(&parts[0], in, host);
    report_part(&parts[1], in, host);
    if (in->return_full)
        out->eightbit = whole_message(&parts[2], in->headers, in->headers ? in->headers_len : 0);
    else
        out->eightbit =
            bouncer_text_headers(&parts[2], in->headers, in->headers ? in->headers_len : 0, BOUNCER_MAX_HEADERS);
    int success = success_notice(in);
    const char *subject = in->delay_notice ? "Delayed Mail (still being retried)"
                          : success        ? "Successful Mail Delivery Report"
                                           : "Undelivered Mail Returned to Sender";

    struct bouncer_buf m;
    bouncer_buf_init(&m);
    int rc = -1;
    if (parts[0].oom || parts[1].oom || parts[2].oom)
        goto out;
    if (pick_boundary(out->boundary, sizeof out->boundary, unique, parts, 3) < 0)
        goto out;
    const char *cte = out->eightbit ? "8bit" : "7bit";

    bouncer_text_date(date, sizeof date, in->now);
    bouncer_buf_addf(&m, "Date: %s\r\n", date);
    bouncer_buf_addf(&m, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", host);
    bouncer_buf_addf(&m, "Subject: %s\r\n", subject);
    if (bouncer_text_is_printable(in->sender) && strlen(in->sender) < BOUNCER_LINE_MAX - 10) {
        bouncer_buf_addf(&m, "To: <%s>\r\n", in->sender);
    } else {
        bouncer_buf_adds(&m, "To: undisclosed-recipients:;\r\n");
        out->to_undisclosed = 1;
    }
    bouncer_buf_addf(&m, "Message-ID: <%s@%s>\r\n", unique, host);
    bouncer_buf_adds(&m, "Auto-Submitted: auto-replied\r\n");
    bouncer_buf_adds(&m, "MIME-Version: 1.0\r\n");
    bouncer_buf_addf(&m, "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n",
                     out->boundary);
    bouncer_buf_addf(&m, "Content-Transfer-Encoding: %s\r\n\r\n", cte);
    bouncer_buf_adds(&m, "This is a MIME-encapsulated message.\r\n\r\n");

    /* Each part's text ends with CRLF; the CRLF before "--boundary" belongs to the delimiter. */
    bouncer_buf_addf(&m, "--%s\r\nContent-Description: Notification\r\n"
                         "Content-Type: text/plain; charset=us-ascii\r\n\r\n", out->boundary);
    bouncer_buf_add(&m, parts[0].data, parts[0].len);
    bouncer_buf_addf(&m, "\r\n--%s\r\nContent-Description: %s\r\nContent-Type: message/delivery-status\r\n\r\n",
                     out->boundary, in->delay_notice ? "Delivery report (delay warning)" : "Delivery report");
    bouncer_buf_add(&m, parts[1].data, parts[1].len);
    bouncer_buf_addf(&m, "\r\n--%s\r\nContent-Description: %s\r\nContent-Type: %s\r\n", out->boundary,
                     in->return_full ? "Undelivered Message"
                     : in->delay_notice ? "Delayed Message Headers"
                     : success ? "Message Headers"
                               : "Undelivered Message Headers",
                     in->return_full ? "message/rfc822" : "text/rfc822-headers");
    if (out->eightbit)
        bouncer_buf_adds(&m, "Content-Transfer-Encoding: 8bit\r\n");
    bouncer_buf_adds(&m, "\r\n");
    if (parts[2].len)
        bouncer_buf_add(&m, parts[2].data, parts[2].len);
    bouncer_buf_addf(&m, "\r\n--%s--\r\n", out->boundary);

    out->data = bouncer_buf_take(&m, &out->len);
    rc = out->data ? 0 : -1;
out:
    bouncer_buf_free(&m);
    for (int i = 0; i < 3; i++)
        bouncer_buf_free(&parts[i]);
    return rc;
}

void bouncer_dsn_free(struct bouncer_dsn *out)
{
    free(out->data);
    out->data = NULL;
    out->len = 0;
}
