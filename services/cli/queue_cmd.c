/* `postmesh queue ...` and `postmesh status`: one ControlRequest to every queue shard's
 * control endpoint (control.h), the answers merged: a listing of every shard, a command on
 * one message done by the shard that holds it. A shard that does not answer is reported
 * and the others are still shown; the exit status is then 1.
 * Everything printed comes from the network (senders, headers, remote replies), so it is
 * escaped before it reaches the operator's terminal or a script reading the columns (or,
 * with --json, a JSON parser: json.h). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "bus.h"
#include "bus_valid.h"
#include "cli.h"
#include "control.h"
#include "json.h"
#include "logvalue.h"

#define CONTROL_TIMEOUT_MS 5000

typedef Postmesh__ControlRequest__Command command_t;
#define CMD(x) POSTMESH__CONTROL_REQUEST__COMMAND__##x

/* Everything printed that came from the queue goes through the log-value escaping
 * (logvalue.h): bare when harmless, else quoted with \xHH for controls, C1 controls, bytes
 * that are not UTF-8 and '='. A listing column also escapes space and ','. Values up to
 * several addresses or a long remote reply are printed whole. */
#define OUT_VALUE 4096

static void put_value(FILE *out, const char *s, unsigned flags)
{
    char v[OUT_VALUE];
    fputs(pm_logv_mem(v, sizeof v, s, s ? strlen(s) : 0, flags), out);
}

static void put_path(FILE *out, const char *address)
{
    char v[OUT_VALUE];
    fputs(pm_logv_path(v, sizeof v, address), out);
}

/* Free text (the header section, the queue's answers): line by line, tab and newline kept. */
static void put_text(FILE *out, const char *s)
{
    char v[OUT_VALUE];
    size_t len = s ? strlen(s) : 0;
    while (len) {
        /* A stored line is at most 1000 octets; a longer run is cut at a character start so
         * a UTF-8 sequence is never split into "invalid" halves. */
        const char *nl = memchr(s, '\n', len);
        size_t n = nl ? (size_t)(nl - s) + 1 : len;
        if (n > 1000) {
            n = 1000;
            while (n > 1 && ((unsigned char)s[n] & 0xc0) == 0x80)
                n--;
        }
        fputs(pm_logv_mem(v, sizeof v, s, n, PM_LOGV_TEXT), out);
        s += n;
        len -= n;
    }
}

static void format_age(char *dst, size_t size, long long secs)
{
    if (secs < 0)
        secs = 0;
    if (secs < 120)
        snprintf(dst, size, "%llds", secs);
    else if (secs < 7200)
        snprintf(dst, size, "%lldm", secs / 60);
    else if (secs < 2 * 86400)
        snprintf(dst, size, "%lldh", secs / 3600);
    else
        snprintf(dst, size, "%lldd", secs / 86400);
}

static void format_time(char *dst, size_t size, unsigned long long t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || !strftime(dst, size, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(dst, size, "%llu", t);
}

static int is_delivered(const Postmesh__QueueRecipient *r)
{
    return r->state && strcasecmp(r->state, "delivered") == 0;
}

/* <id> <age> <size> <sender or <>> <state> <rcpt>[,<rcpt>...] -- recipients still to do,
 * or all of them if none is left (a message waiting for its bounce). */
static void print_list_line(const Postmesh__QueueItem *it, time_t now)
{
    char age[32];
    format_age(age, sizeof age, (long long)now - (long long)it->arrival_time);
    put_value(stdout, it->queue_id, PM_LOGV_TOKEN);
    printf(" %s %llu ", age, (unsigned long long)it->size);
    if (it->sender && *it->sender)
        put_value(stdout, it->sender, PM_LOGV_TOKEN);
    else
        fputs("<>", stdout);
    fputc(' ', stdout);
    put_value(stdout, it->state && *it->state ? it->state : "-", PM_LOGV_TOKEN);
    size_t todo = 0;
    for (size_t i = 0; i < it->n_recipients; i++)
        todo += !is_delivered(it->recipients[i]);
    int first = 1;
    for (size_t i = 0; i < it->n_recipients; i++) {
        if (todo && is_delivered(it->recipients[i]))
            continue;
        fputc(first ? ' ' : ',', stdout);
        put_value(stdout, it->recipients[i]->address, PM_LOGV_TOKEN);
        first = 0;
    }
    if (first)
        fputs(" -", stdout);
    if (it->hold_reason && *it->hold_reason) { /* quarantined by a milter: why */
        fputs(" hold_reason=", stdout);
        put_value(stdout, it->hold_reason, PM_LOGV_TOKEN);
    }
    fputc('\n', stdout);
}

static void print_show(const Postmesh__QueueItem *it, time_t now)
{
    char t[64], age[32];
    format_time(t, sizeof t, it->arrival_time);
    format_age(age, sizeof age, (long long)now - (long long)it->arrival_time);
    printf("id: ");
    put_value(stdout, it->queue_id, 0);
    printf("\narrival: %s (%s ago)\nsize: %llu\nsender: ", t, age, (unsigned long long)it->size);
    put_path(stdout, it->sender);
    printf("\nclient: ");
    put_value(stdout, it->client_address, 0);
    printf("\nhelo: ");
    put_value(stdout, it->helo, 0);
    printf("\nstate: ");
    put_value(stdout, it->state, 0);
    if (it->hold_reason && *it->hold_reason) {
        printf("\nhold_reason: ");
        put_value(stdout, it->hold_reason, 0);
    }
    if (it->requiretls) /* RFC 8689: only over verified TLS, to servers that offer REQUIRETLS */
        printf("\nrequiretls: yes");
    fputc('\n', stdout);
    for (size_t i = 0; i < it->n_recipients; i++) {
        const Postmesh__QueueRecipient *r = it->recipients[i];
        printf("recipient: ");
        put_path(stdout, r->address);
        printf(" state=");
        put_value(stdout, r->state, PM_LOGV_TOKEN);
        printf(" attempts=%u", r->attempts);
        if (r->next_attempt) {
            format_time(t, sizeof t, r->next_attempt);
            printf(" next=%s", t);
        }
        if (r->last_error && *r->last_error) {
            printf(" error=");
            put_value(stdout, r->last_error, 0);
        }
        fputc('\n', stdout);
    }
    /* The header section as stored: CRLF lines, printed with plain newlines. */
    printf("\n");
    size_t hlen = it->headers ? strlen(it->headers) : 0;
    char *h = malloc(hlen + 1);
    size_t o = 0;
    for (size_t i = 0; h && i < hlen; i++)
        if (!(it->headers[i] == '\r' && it->headers[i + 1] == '\n'))
            h[o++] = it->headers[i];
    if (h) {
        h[o] = '\0';
        put_text(stdout, h);
        if (o && h[o - 1] != '\n')
            fputc('\n', stdout);
        free(h);
    }
}

/* arg as a queue id in id (the bus's form, upper case; lower case is typed too), or 0:
 * anything else is a typo, not a question for the queue. */
static int read_id(const char *arg, char id[PM_BUS_QUEUE_ID_LEN + 1])
{
    if (strlen(arg) != PM_BUS_QUEUE_ID_LEN)
        return 0;
    for (size_t i = 0; i <= PM_BUS_QUEUE_ID_LEN; i++) /* with its NUL */
        id[i] = (char)toupper((unsigned char)arg[i]);
    return pm_bus_queue_id_ok(id);
}

struct subcommand {
    const char *name;
    command_t command;
    int takes_id;
};

static const struct subcommand subcommands[] = {
    {"list", CMD(LIST), 0},     {"show", CMD(SHOW), 1},   {"flush", CMD(FLUSH), 0}, {"delete", CMD(DELETE), 1},
    {"hold", CMD(HOLD), 1},     {"release", CMD(RELEASE), 1},
    {"tlsrpt", CMD(TLSRPT), 0}, /* queue the TLS reports (RFC 8460) of every day counted, now */
};

/* Every shard's answer; NULL (printed) if none could be asked. */
static struct cli_answer *ask_all(const struct pm_config *cfg, command_t command, const char *id, int *n)
{
    struct cli_answer *a = NULL;
    *n = cli_control_all(cfg, command, id, CONTROL_TIMEOUT_MS, &a);
    return *n < 0 ? NULL : a;
}

/* Says which shards did not answer; returns how many. */
static int report_silent(const struct cli_answer *a, int n)
{
    int silent = 0;
    for (int i = 0; i < n; i++)
        if (!a[i].reply) {
            cli_error("the queue at %s did not answer within %d s (is postmesh-queue running?)", a[i].control,
                      CONTROL_TIMEOUT_MS / 1000);
            silent++;
        }
    return silent;
}

static void report_refused(const struct cli_answer *a)
{
    const char *t = a->reply->text;
    char v[OUT_VALUE];
    cli_error("%s: %s", a->control,
              t && *t ? pm_logv_mem(v, sizeof v, t, strlen(t), PM_LOGV_TEXT) : "the queue refused the request");
}

/* "key":"value", then after unless it is 0 (',' between members). */
static void json_member(FILE *out, const char *key, const char *value, int after)
{
    cli_json_string(out, key);
    fputc(':', out);
    cli_json_string(out, value);
    if (after)
        fputc(after, out);
}

static void json_item(FILE *out, const Postmesh__QueueItem *it, time_t now)
{
    long long age = (long long)now - (long long)it->arrival_time;
    fputc('{', out);
    json_member(out, "id", it->queue_id, 0);
    fprintf(out, ",\"arrival_time\":%llu,\"age\":%lld,\"size\":%llu,", (unsigned long long)it->arrival_time,
            age < 0 ? 0 : age, (unsigned long long)it->size);
    json_member(out, "sender", it->sender, ',');
    json_member(out, "state", it->state, ',');
    json_member(out, "client_address", it->client_address, ',');
    json_member(out, "helo", it->helo, ',');
    json_member(out, "hold_reason", it->hold_reason, 0);
    fprintf(out, ",\"requiretls\":%s", it->requiretls ? "true" : "false");
    fputs(",\"recipients\":[", out);
    for (size_t i = 0; i < it->n_recipients; i++) {
        const Postmesh__QueueRecipient *r = it->recipients[i];
        fputs(i ? ",{" : "{", out);
        json_member(out, "address", r->address, ',');
        json_member(out, "state", r->state, 0);
        fprintf(out, ",\"attempts\":%u,\"next_attempt\":%llu,", r->attempts, (unsigned long long)r->next_attempt);
        json_member(out, "last_error", r->last_error, 0);
        fputc('}', out);
    }
    fputs("]}", out);
}

/* The queue's counters ("messages=3 workers=2 ...") as JSON members: digits as numbers,
 * anything else as a string. */
static void json_counters(FILE *out, const char *text)
{
    fputc('{', out);
    int first = 1;
    for (const char *p = text ? text : ""; *p;) {
        while (*p == ' ')
            p++;
        const char *end = p + strcspn(p, " ");
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (eq && eq > p) {
            if (!first)
                fputc(',', out);
            first = 0;
            cli_json_mem(out, p, (size_t)(eq - p));
            fputc(':', out);
            const char *v = eq + 1;
            size_t vlen = (size_t)(end - v);
            int number = vlen > 0 && vlen < 20 && strspn(v, "0123456789") >= vlen;
            if (number)
                fwrite(v, 1, vlen, out);
            else
                cli_json_mem(out, v, vlen);
        }
        p = end;
    }
    fputc('}', out);
}

/* {"ok":..., "shards":[{"control":..., "ok":..., <what>}]}: one document, shards named by
 * their control endpoint; a shard without an answer has "ok":false and "error". */
static int print_json(const struct cli_answer *a, int n, int status)
{
    time_t now = time(NULL);
    int all = 1;
    for (int i = 0; i < n; i++)
        all &= a[i].reply && a[i].reply->ok;
    printf("{\"ok\":%s,\"shards\":[", all ? "true" : "false");
    for (int i = 0; i < n; i++) {
        fputs(i ? ",{" : "{", stdout);
        json_member(stdout, "control", a[i].control, 0);
        const Postmesh__ControlReply *r = a[i].reply;
        printf(",\"ok\":%s", r && r->ok ? "true" : "false");
        if (!r) {
            fputs(",\"error\":", stdout);
            cli_json_string(stdout, "did not answer");
        } else if (!r->ok) {
            fputs(",\"error\":", stdout);
            cli_json_string(stdout, r->text);
        } else if (status) {
            fputs(",\"text\":", stdout);
            cli_json_string(stdout, r->text);
            fputs(",\"counters\":", stdout);
            json_counters(stdout, r->text);
        } else {
            fputs(",\"messages\":[", stdout);
            for (size_t k = 0; k < r->n_items; k++) {
                if (k)
                    fputc(',', stdout);
                json_item(stdout, r->items[k], now);
            }
            fputc(']', stdout);
        }
        fputc('}', stdout);
    }
    fputs("]}\n", stdout);
    return all ? CLI_OK : CLI_FAIL;
}

/* `queue list` streamed (control.h): lines, or one JSON document written as pages arrive. */
#define LIST_PAGE 1000

struct list_out {
    int json;
    int shard_open; /* JSON: this shard's object is started */
    int nitems;     /* JSON: items of this shard so far */
    int all_ok;
    time_t now;
};

static void json_shard_open(struct list_out *o, int shard, const char *control)
{
    if (o->shard_open)
        return;
    fputs(shard ? ",{" : "{", stdout);
    json_member(stdout, "control", control, 0);
    fputs(",\"messages\":[", stdout);
    o->shard_open = 1;
    o->nitems = 0;
}

static void on_list_page(int shard, const char *control, const Postmesh__ControlReply *r, void *arg)
{
    struct list_out *o = arg;
    if (o->json)
        json_shard_open(o, shard, control);
    for (size_t k = 0; k < r->n_items; k++) {
        if (!o->json) {
            print_list_line(r->items[k], o->now);
            continue;
        }
        if (o->nitems++)
            fputc(',', stdout);
        json_item(stdout, r->items[k], o->now);
    }
    fflush(stdout);
}

static void on_list_done(int shard, const char *control, int complete, const Postmesh__ControlReply *refusal,
                         void *arg)
{
    struct list_out *o = arg;
    o->all_ok &= complete;
    if (o->json) {
        json_shard_open(o, shard, control);
        printf("],\"ok\":%s", complete ? "true" : "false");
        if (!complete) {
            fputs(",\"error\":", stdout);
            cli_json_string(stdout, refusal ? refusal->text : "did not answer");
        }
        fputc('}', stdout);
        o->shard_open = 0;
    } else if (refusal) {
        const char *t = refusal->text;
        char v[OUT_VALUE];
        cli_error("%s: %s", control,
                  t && *t ? pm_logv_mem(v, sizeof v, t, strlen(t), PM_LOGV_TEXT) : "the queue refused the request");
    } else if (!complete) {
        cli_error("the queue at %s did not answer within %d s (is postmesh-queue running?)", control,
                  CONTROL_TIMEOUT_MS / 1000);
    }
}

static int list_streamed(const struct pm_config *cfg, int json)
{
    struct list_out o = {.json = json, .all_ok = 1, .now = time(NULL)};
    if (json)
        fputs("{\"shards\":[", stdout);
    int n = cli_list_pages(cfg, LIST_PAGE, CONTROL_TIMEOUT_MS, on_list_page, on_list_done, &o);
    if (json)
        printf("],\"ok\":%s}\n", o.all_ok && n >= 0 ? "true" : "false");
    return n >= 0 && o.all_ok ? CLI_OK : CLI_FAIL;
}

/* show, hold, release, delete: the shard holding the id does it (each shard owns its
 * messages, and ids are unique across shards); the others answer "no message". */
static int on_one_message(const struct subcommand *sc, const char *id, const struct cli_answer *a, int n)
{
    const struct cli_answer *holder = NULL, *refusal = NULL;
    for (int i = 0; i < n && !holder; i++) {
        const Postmesh__ControlReply *r = a[i].reply;
        if (r && r->ok && (sc->command != CMD(SHOW) || r->n_items == 1))
            holder = &a[i];
        else if (r && !r->ok && !refusal && r->text && strncmp(r->text, "no message with id", 18) != 0)
            refusal = &a[i]; /* the holder said no for a reason of its own */
    }
    int silent = report_silent(a, n);
    if (!holder) {
        if (refusal)
            report_refused(refusal);
        else if (silent)
            cli_error("no answering queue shard holds %s (%d shard(s) did not answer)", id, silent);
        else
            cli_error("no message with id %s in the queue", id);
        return CLI_FAIL;
    }
    if (sc->command == CMD(SHOW)) {
        print_show(holder->reply->items[0], time(NULL));
    } else {
        put_text(stdout, holder->reply->text && *holder->reply->text ? holder->reply->text : "ok");
        fputc('\n', stdout);
    }
    return silent ? CLI_FAIL : CLI_OK;
}

int cli_cmd_queue(const struct pm_config *cfg, int argc, char **argv)
{
    const struct subcommand *sc = NULL;
    for (size_t i = 0; argc >= 2 && i < sizeof subcommands / sizeof subcommands[0]; i++)
        if (!strcmp(argv[1], subcommands[i].name))
            sc = &subcommands[i];
    int nargs = argc - 2;
    int json = sc && sc->command == CMD(LIST) && nargs == 1 && !strcmp(argv[2], "--json");
    if (!sc || nargs - json != sc->takes_id) {
        cli_error("usage: postmesh queue list [--json] | show ID | flush | hold ID | release ID | delete ID | tlsrpt");
        return CLI_USAGE;
    }
    char id[PM_BUS_QUEUE_ID_LEN + 1] = "";
    if (sc->takes_id && !read_id(argv[2], id)) {
        cli_error("'%s' is not a queue id (16 hexadecimal digits)", argv[2]);
        return CLI_USAGE;
    }
    if (sc->command == CMD(LIST))
        return list_streamed(cfg, json);
    int n;
    struct cli_answer *a = ask_all(cfg, sc->command, id, &n);
    if (!a)
        return CLI_FAIL;
    int rc = CLI_OK;
    if (json) {
        rc = print_json(a, n, 0);
    } else if (sc->takes_id) {
        rc = on_one_message(sc, id, a, n);
    } else {
        /* list, flush and tlsrpt: every shard that answered, then who did not. */
        time_t now = time(NULL);
        for (int i = 0; i < n; i++) {
            const Postmesh__ControlReply *r = a[i].reply;
            if (!r)
                continue;
            if (!r->ok) {
                report_refused(&a[i]);
                rc = CLI_FAIL;
            } else if (sc->command == CMD(LIST)) {
                for (size_t k = 0; k < r->n_items; k++)
                    print_list_line(r->items[k], now);
            } else {
                if (n > 1)
                    printf("%s: ", a[i].control);
                put_text(stdout, r->text && *r->text ? r->text : "ok");
                fputc('\n', stdout);
            }
        }
        if (report_silent(a, n))
            rc = CLI_FAIL;
    }
    cli_answers_free(a, n);
    return rc;
}

int cli_cmd_status(const struct pm_config *cfg, int argc, char **argv)
{
    int json = argc == 2 && !strcmp(argv[1], "--json");
    if (argc != 1 + json) {
        cli_error("usage: postmesh status [--json]");
        return CLI_USAGE;
    }
    int n;
    struct cli_answer *a = ask_all(cfg, CMD(STATUS), NULL, &n);
    if (!a)
        return CLI_FAIL;
    int rc = CLI_OK;
    if (json) {
        rc = print_json(a, n, 1);
    } else {
        for (int i = 0; i < n; i++) {
            if (!a[i].reply)
                continue;
            if (!a[i].reply->ok) {
                report_refused(&a[i]);
                rc = CLI_FAIL;
                continue;
            }
            printf("queue: %s ", a[i].control);
            put_text(stdout, a[i].reply->text);
            fputc('\n', stdout);
        }
        if (report_silent(a, n))
            rc = CLI_FAIL;
    }
    cli_answers_free(a, n);
    return rc;
}
