/* `postmesh queue ...` and `postmesh status`: one ControlRequest to queue.control each.
 * Everything printed comes from the network (senders, headers, remote replies), so it is
 * escaped before it reaches the operator's terminal or a script reading the columns. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "bus.h"
#include "cli.h"
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

/* Sends one request; returns the reply's ControlReply holder (free with
 * postmesh__bus_message__free_unpacked) or NULL after printing why. */
static Postmesh__BusMessage *control_call(const struct pm_config *cfg, command_t command, const char *id)
{
    Postmesh__ControlRequest req = POSTMESH__CONTROL_REQUEST__INIT;
    Postmesh__BusMessage msg = POSTMESH__BUS_MESSAGE__INIT;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    req.command = command;
    req.queue_id = (char *)(id ? id : "");
    msg.request_id = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
    msg.body_case = POSTMESH__BUS_MESSAGE__BODY_CONTROL;
    msg.control = &req;
    pm_bus_security_init(cfg, "cli"); /* our CurveZMQ identity on tcp:// endpoints */
    Postmesh__BusMessage *reply = pm_bus_call(cfg->queue.control, &msg, CONTROL_TIMEOUT_MS);
    pm_bus_context_term();
    if (!reply) {
        cli_error("the queue at %s did not answer within %d s (is postmesh-queue running?)", cfg->queue.control,
                  CONTROL_TIMEOUT_MS / 1000);
        return NULL;
    }
    if (reply->body_case != POSTMESH__BUS_MESSAGE__BODY_CONTROL_REPLY || reply->request_id != msg.request_id) {
        cli_error("unexpected answer from the queue at %s", cfg->queue.control);
        postmesh__bus_message__free_unpacked(reply, NULL);
        return NULL;
    }
    if (!reply->control_reply->ok) {
        const char *t = reply->control_reply->text;
        char v[OUT_VALUE];
        cli_error("%s", t && *t ? pm_logv_mem(v, sizeof v, t, strlen(t), PM_LOGV_TEXT) : "the queue refused the request");
        postmesh__bus_message__free_unpacked(reply, NULL);
        return NULL;
    }
    return reply;
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

/* Queue ids are 16 hex digits; anything else is a typo, not a question for the queue. */
static int valid_id(const char *id)
{
    size_t n = strlen(id);
    if (n != 16)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)id[i]))
            return 0;
    return 1;
}

struct subcommand {
    const char *name;
    command_t command;
    int takes_id;
};

static const struct subcommand subcommands[] = {
    {"list", CMD(LIST), 0},     {"show", CMD(SHOW), 1},   {"flush", CMD(FLUSH), 0}, {"delete", CMD(DELETE), 1},
    {"hold", CMD(HOLD), 1},     {"release", CMD(RELEASE), 1},
};

int cli_cmd_queue(const struct pm_config *cfg, int argc, char **argv)
{
    const struct subcommand *sc = NULL;
    for (size_t i = 0; argc >= 2 && i < sizeof subcommands / sizeof subcommands[0]; i++)
        if (!strcmp(argv[1], subcommands[i].name))
            sc = &subcommands[i];
    int nargs = argc - 2;
    if (!sc || nargs != sc->takes_id) {
        cli_error("usage: postmesh queue list | show ID | flush | hold ID | release ID | delete ID");
        return CLI_USAGE;
    }
    char id[17] = "";
    if (nargs == 1) {
        if (!valid_id(argv[2])) {
            cli_error("'%s' is not a queue id (16 hexadecimal digits)", argv[2]);
            return CLI_USAGE;
        }
        for (int i = 0; i < 16; i++)
            id[i] = (char)toupper((unsigned char)argv[2][i]);
    }
    Postmesh__BusMessage *reply = control_call(cfg, sc->command, id);
    if (!reply)
        return CLI_FAIL;
    const Postmesh__ControlReply *cr = reply->control_reply;
    time_t now = time(NULL);
    int rc = CLI_OK;
    if (sc->command == CMD(LIST)) {
        for (size_t i = 0; i < cr->n_items; i++)
            print_list_line(cr->items[i], now);
    } else if (sc->command == CMD(SHOW)) {
        if (cr->n_items == 1) {
            print_show(cr->items[0], now);
        } else {
            cli_error("no message with id %s in the queue", id);
            rc = CLI_FAIL;
        }
    } else {
        put_text(stdout, cr->text && *cr->text ? cr->text : "ok");
        fputc('\n', stdout);
    }
    postmesh__bus_message__free_unpacked(reply, NULL);
    return rc;
}

int cli_cmd_status(const struct pm_config *cfg, int argc, char **argv)
{
    (void)argv;
    if (argc != 1) {
        cli_error("usage: postmesh status");
        return CLI_USAGE;
    }
    Postmesh__BusMessage *reply = control_call(cfg, CMD(STATUS), NULL);
    if (!reply)
        return CLI_FAIL;
    printf("queue: %s ", cfg->queue.control);
    put_text(stdout, reply->control_reply->text);
    fputc('\n', stdout);
    postmesh__bus_message__free_unpacked(reply, NULL);
    return CLI_OK;
}
