/* The resolver as a compromised peer meets it: every frame a role can send, through the
 * resolver's real bus endpoint (resolver/server.c: its policy and on_message, common/bus.c
 * under it) into the real lookup, query, cache and answer code, with the network replaced
 * by fake_transport.h. Records as in fuzz_bus.h (one endpoint); after each record is read,
 * the op says how the nameserver answers every question waiting: 0 not yet, 1 timeout,
 * 2 an answer made for the question (MX 10 mx1.<name>, A 127.0.0.1, AAAA ::1, PTR
 * host.example.test), 3 NXDOMAIN. At the end everything left times out.
 * What must hold: only mta and smtpd get ResolveReplies (nobody else may ask), each reply
 * answers a request that role sent, at most once, well formed and packable; and no crash,
 * leak or UB. */
#include <errno.h>
#include <ldns/ldns.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>
#include <string.h>

#include "config.h"
#include "fake_transport.h"
#include "fuzz_bus.h"
#include "log.h"
#include "resolver/cache.h"
#include "resolver/lookup.h"
#include "resolver/query.h"
#include "resolver/server.h"

#define MAX_REQ 256

static struct pm_config cfg;
static struct event_base *base;
static struct resolver_cache *cache;
static struct resolver_queries *queries;
static struct resolver_server *server;
static struct pm_bus *server_bus; /* the server's bus, found through pm_bus_bind's wrapper */
static struct fb_clients clients;

/* Requests sent in this input: (role, request_id), and how often each was answered. */
static struct {
    enum pm_role role;
    uint64_t id;
    int answered;
    int valid; /* a Resolve the policy lets through: version 1, within the size cap, from mta or smtpd */
} sent[MAX_REQ];
static int nsent;

struct pm_bus *__real_pm_bus_bind(struct event_base *b, int type, const char *endpoint,
                                  const struct pm_bus_policy *policy, pm_bus_handler h, void *arg);
struct pm_bus *__wrap_pm_bus_bind(struct event_base *b, int type, const char *endpoint,
                                  const struct pm_bus_policy *policy, pm_bus_handler h, void *arg)
{
    server_bus = __real_pm_bus_bind(b, type, endpoint, policy, h, arg);
    return server_bus;
}

static void on_reply(int endpoint, enum pm_role role, const Postmesh__BusMessage *m, void *arg)
{
    (void)endpoint;
    (void)arg;
    FUZZ_CHECK(role == PM_ROLE_MTA || role == PM_ROLE_SMTPD);
    FUZZ_CHECK(m->body_case == POSTMESH__BUS_MESSAGE__BODY_RESOLVE_REPLY && m->resolve_reply);
    const Postmesh__ResolveReply *r = m->resolve_reply;
    FUZZ_CHECK(r->dsn_status && r->text);
    FUZZ_CHECK(r->status == POSTMESH__RESOLVE_REPLY__STATUS__OK ? r->dsn_status[0] == '\0'
                                                                : r->dsn_status[0] == '4' || r->dsn_status[0] == '5');
    FUZZ_CHECK(r->n_hosts <= 16);
    int found = 0;
    for (int i = 0; i < nsent && !found; i++)
        if (sent[i].valid && sent[i].role == role && sent[i].id == m->request_id && !sent[i].answered) {
            sent[i].answered = 1;
            found = 1;
        }
    FUZZ_CHECK(found); /* a reply to a request this role made, not answered before */
}

/* The answer a nameserver would give to q, as wire bytes (op 2 and 3). */
static void answer(const struct ft_query *q, int nxdomain)
{
    ldns_pkt *p = ldns_pkt_new();
    ldns_pkt_set_qr(p, true);
    ldns_pkt_set_rcode(p, nxdomain ? LDNS_RCODE_NXDOMAIN : LDNS_RCODE_NOERROR);
    if (!nxdomain) {
        char text[600];
        switch (q->type) {
        case LDNS_RR_TYPE_MX:
            snprintf(text, sizeof text, "%s. 0 IN MX 10 mx1.%s.", q->name, q->name);
            break;
        case LDNS_RR_TYPE_A:
            snprintf(text, sizeof text, "%s. 0 IN A 127.0.0.1", q->name);
            break;
        case LDNS_RR_TYPE_AAAA:
            snprintf(text, sizeof text, "%s. 0 IN AAAA ::1", q->name);
            break;
        default:
            snprintf(text, sizeof text, "%s. 0 IN PTR host.example.test.", q->name);
            break;
        }
        ldns_rr *rr = NULL;
        if (ldns_rr_new_frm_str(&rr, text, 0, NULL, NULL) == LDNS_STATUS_OK)
            ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, rr);
    }
    uint8_t *wire = NULL;
    size_t n = 0;
    FUZZ_CHECK(ldns_pkt2wire(&wire, p, &n) == LDNS_STATUS_OK);
    ldns_pkt_free(p);
    uint8_t *framed = malloc(n + 2);
    framed[0] = (uint8_t)(n >> 8);
    framed[1] = (uint8_t)n;
    memcpy(framed + 2, wire, n);
    free(wire);
    struct ft_packets src = {framed, n + 2};
    ft_answer(q, &src);
    free(framed);
}

/* Answers every waiting question as op says; answers may ask new questions (A after MX). */
static void nameserver(int op)
{
    if (op == 0)
        return;
    struct ft_query q;
    for (int i = 0; i < 200 && ft_pop(&q); i++) {
        if (op == 1) {
            q.cb(NULL, RESOLVER_INSECURE, "timeout", q.arg);
        } else {
            answer(&q, op == 3);
        }
    }
}

static void settle(enum pm_role role)
{
    fb_kick(base, server_bus, role);
    fb_kick(base, server_bus, role);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ft_reset();
    nsent = 0;
    const uint8_t *p = data;
    size_t left = size;
    struct fb_record r;
    int records = 0;
    while (records++ < 64 && fb_next(&p, &left, &r)) {
        r.endpoint = 0;
        Postmesh__BusMessage *m = postmesh__bus_message__unpack(NULL, r.len, r.payload);
        if (m && nsent < MAX_REQ) {
            sent[nsent].role = r.role;
            sent[nsent].id = m->request_id;
            sent[nsent].answered = 0;
            /* The size cap of server.c's rule (2048) and the version bus.c wants. */
            sent[nsent].valid = m->version == PM_PROTOCOL_VERSION && m->body_case == POSTMESH__BUS_MESSAGE__BODY_RESOLVE &&
                                r.len <= 2048 && (r.role == PM_ROLE_MTA || r.role == PM_ROLE_SMTPD);
            nsent++;
        }
        if (m)
            postmesh__bus_message__free_unpacked(m, NULL);
        fb_send(&clients, &r, r.payload, r.len);
        settle(r.role);
        nameserver(r.op);
        fb_collect(&clients, on_reply, NULL);
    }
    nameserver(1);
    fb_collect(&clients, on_reply, NULL);
    /* Every question was answered (timeouts at last), so every lookup is finished, and
     * every request an allowed role made was answered exactly once. */
    FUZZ_CHECK(ft_head == ft_tail);
    for (int i = 0; i < nsent; i++)
        if (!sent[i].answered)
            FUZZ_CHECK(!sent[i].valid);
    FUZZ_CHECK(resolver_cache_count(cache) == 0); /* TTL 0 everywhere: inputs stay independent */
    return 0;
}

static char state[256];

static void cleanup(void)
{
    static const char *const files[] = {"postmesh.conf", "keys/resolver.key", "keys/resolver.pub", NULL};
    fb_state_remove(state, files);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fb_state_make(state, sizeof state, "resolver");
    atexit(cleanup);
    char path[400], text[1024], err[512];
    snprintf(text, sizeof text,
             "hostname = \"mx.example.test\";\nstate_dir = \"%s\";\n"
             "bus = { curve = true; keys_dir = \"%s/keys\"; };\n"
             "resolver = { endpoint = \"inproc://fuzz-resolver\"; nameservers = [ \"127.0.0.1:1\" ]; };\n",
             state, state);
    snprintf(path, sizeof path, "%s/postmesh.conf", state);
    fb_write_text(path, text);
    if (pm_config_load(path, &cfg, err, sizeof err) < 0) {
        fprintf(stderr, "fuzz_resolver_bus: %s\n", err);
        abort();
    }
    pm_log_init("resolver");
    pm_bus_security_init(&cfg, "resolver");
    FUZZ_CHECK(pm_bus_roles_known());
    fb_roles_init();
    base = event_base_new();
    cache = resolver_cache_new(1000);
    /* Negative answers are not cached (negative_ttl 0) and the answers made here have TTL 0,
     * so nothing one input does is remembered for the next. */
    queries = resolver_queries_new(NULL, cache, 0);
    server = resolver_server_new(base, cfg.resolver.endpoint, queries);
    FUZZ_CHECK(server && server_bus);
    const char *endpoints[FB_ENDPOINTS] = {cfg.resolver.endpoint, NULL};
    fb_clients_open(&clients, endpoints);
    return 0;
}
