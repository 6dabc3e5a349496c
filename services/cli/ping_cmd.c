/* `postmesh ping SERVICE`: the health check of containers and probes. Asks GET /health on
 * the service's metrics address (where a wildcard bind address is reached on loopback), so
 * the answer comes from the process that serves: its bus connected and its listeners open.
 * Without a metrics address only the queue can be asked, with a bus Ping to each
 * queue.control (the cli key may send it there). Exit 0 when it answers ready, 1 when not
 * (one line says why), 2 for usage and for a service that cannot be asked. */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdio.h>
#include <string.h>

#include "bus.h"
#include "cli.h"
#include "control.h"
#include "metrics.h"
#include "net.h"
#include "services.h"

#define PING_TIMEOUT_S 3

struct health {
    struct event_base *base;
    int status;            /* HTTP status, 0 without an answer */
    char error[64];
    char body[200];
};

static void on_error(enum evhttp_request_error e, void *arg)
{
    struct health *h = arg;
    snprintf(h->error, sizeof h->error, "%s",
             e == EVREQ_HTTP_TIMEOUT ? "timed out"
             : e == EVREQ_HTTP_EOF   ? "connection closed"
                                     : "connection failed");
}

static void on_response(struct evhttp_request *req, void *arg)
{
    struct health *h = arg;
    event_base_loopexit(h->base, NULL);
    if (!req || evhttp_request_get_response_code(req) == 0)
        return;
    h->status = evhttp_request_get_response_code(req);
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_copyout(in, h->body, sizeof h->body - 1);
    h->body[n == (size_t)-1 ? 0 : n] = '\0';
    h->body[strcspn(h->body, "\r\n")] = '\0';
    for (char *c = h->body; *c; c++) /* it goes to a terminal */
        if ((unsigned char)*c < 0x20 || (unsigned char)*c == 0x7f)
            *c = '?';
}

/* A bind address as a client reaches it: 0.0.0.0 and * on 127.0.0.1, :: on ::1. */
static void reachable_host(char *host, size_t size)
{
    if (!host[0] || strcmp(host, "*") == 0 || strcmp(host, "0.0.0.0") == 0)
        snprintf(host, size, "127.0.0.1");
    else if (strcmp(host, "::") == 0)
        snprintf(host, size, "::1");
}

static int ping_http(const char *service, const char *address, const char *path)
{
    char host[256];
    int port;
    if (pm_split_hostport(address, host, sizeof host, &port) < 0) {
        cli_error("%s.metrics = \"%s\" is not host:port", service, address);
        return CLI_USAGE;
    }
    reachable_host(host, sizeof host);
    struct health h = {0};
    struct event_base *base = h.base = event_base_new();
    struct evhttp_connection *conn = base ? evhttp_connection_base_new(base, NULL, host, (unsigned short)port) : NULL;
    struct evhttp_request *req = conn ? evhttp_request_new(on_response, &h) : NULL;
    if (req) {
        evhttp_connection_set_timeout(conn, PING_TIMEOUT_S);
        evhttp_connection_set_retries(conn, 0);
        evhttp_request_set_error_cb(req, on_error);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Host", host);
        if (evhttp_make_request(conn, req, EVHTTP_REQ_GET, path) == 0) /* req is conn's now */
            event_base_dispatch(base);
        else
            snprintf(h.error, sizeof h.error, "cannot send the request");
    } else {
        snprintf(h.error, sizeof h.error, "out of memory");
    }
    if (conn)
        evhttp_connection_free(conn);
    if (base)
        event_base_free(base);
    const char *shown = strchr(host, ':') ? "[%s]:%d" : "%s:%d";
    char where[300];
    snprintf(where, sizeof where, shown, host, port);
    if (h.status == 200) {
        printf("%s ok (%s)\n", service, where);
        return CLI_OK;
    }
    if (h.status)
        cli_error("%s at %s is not ready: %d %s", service, where, h.status, h.body[0] ? h.body : "-");
    else
        cli_error("%s at %s did not answer: %s", service, where, h.error[0] ? h.error : "no answer");
    return CLI_FAIL;
}

/* Each shard's queue.control, all at once: a Ping, answered after everything before it. */
static int ping_queue_bus(const struct pm_config *cfg)
{
    Postmesh__Ping ping = POSTMESH__PING__INIT;
    Postmesh__BusMessage msg = POSTMESH__BUS_MESSAGE__INIT;
    msg.body_case = POSTMESH__BUS_MESSAGE__BODY_PING;
    msg.ping = &ping;
    struct cli_answer *a;
    int n = cli_ask_shards(cfg, &msg, POSTMESH__BUS_MESSAGE__BODY_PING, PING_TIMEOUT_S * 1000, &a);
    if (n < 0)
        return CLI_FAIL;
    int failed = 0;
    for (int i = 0; i < n; i++) {
        if (a[i].msg) {
            printf("queue ok (%s)\n", a[i].control);
        } else {
            cli_error("the queue at %s did not answer a ping within %d s", a[i].control, PING_TIMEOUT_S);
            failed = 1;
        }
    }
    cli_answers_free(a, n);
    return failed ? CLI_FAIL : CLI_OK;
}

/* "queue, resolver, ...": the services `postmesh run` starts (common/services.def). */
static const char *service_names(char *dst, size_t size)
{
    size_t o = 0;
    dst[0] = '\0';
    for (const struct pm_svc *s = pm_svc_table; s->name && o < size; s++)
        if (pm_svc_supervised(s))
            o += (size_t)snprintf(dst + o, size - o, "%s%s", o ? ", " : "", s->name);
    return dst;
}

int cli_cmd_ping(const struct pm_config *cfg, int argc, char **argv)
{
    char names[256];
    /* --live: is the process alive (its loop answers), whatever its peers do: what a
     * liveness probe asks; without it, readiness (/health). */
    int live = argc == 3 && strcmp(argv[1], "--live") == 0;
    if (argc != 2 && !live) {
        cli_error("usage: postmesh ping [--live] SERVICE (%s)", service_names(names, sizeof names));
        return CLI_USAGE;
    }
    const char *service = argv[argc - 1];
    const char *address = pm_metrics_address(cfg, service);
    if (!address) {
        cli_error("unknown service '%s' (%s)", service, service_names(names, sizeof names));
        return CLI_USAGE;
    }
    if (address[0])
        return ping_http(service, address, live ? "/live" : "/health");
    if (strcmp(service, "queue") == 0)
        return ping_queue_bus(cfg);
    cli_error("set %s.metrics to check %s", service, service);
    return CLI_USAGE;
}
