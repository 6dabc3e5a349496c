/* DNS answers from a hostile or broken nameserver, two ways:
 *  - each packet of the input, parsed by ldns as transport.c parses it, reduced by
 *    resolver_answer_from_pkt (resolver/answer.c) for the question it carries and for an MX
 *    question of its own; the answer must hold only usable names and addresses;
 *  - a whole lookup (resolver/lookup.c, query.c, cache.c, mx.c) for an MX, A, PTR or TXT request,
 *    with the transport replaced (fake_transport.h): every query it sends is answered with
 *    the input's next packets, made to match the question as the real transport requires.
 *    The ResolveReply must be well formed and packable, because it goes back on the bus.
 * Input: byte 0 picks the request, then packets as <2-byte length><DNS message>. */
#include <arpa/inet.h>
#include <ldns/ldns.h>
#include <stdint.h>
#include <string.h>

#include "fake_transport.h"
#include "fuzz_common.h"
#include "resolver/answer.h"
#include "resolver/cache.h"
#include "resolver/lookup.h"
#include "resolver/names.h"
#include "resolver/query.h"

#define NEGATIVE_TTL 60

static void check_name(const char *s)
{
    char norm[RESOLVER_NAME_MAX];
    FUZZ_CHECK(s && resolver_name_normalize(s, norm, sizeof norm) == 0 && strcmp(norm, s) == 0);
}

static void check_address(const char *s, int v6)
{
    unsigned char bin[16];
    FUZZ_CHECK(s && inet_pton(v6 ? AF_INET6 : AF_INET, s, bin) == 1);
}

/* A TXT record as the bus carries it: bounded, and nothing a C string or a log line chokes on. */
static void check_txt(const char *s)
{
    FUZZ_CHECK(s && strlen(s) <= RESOLVER_MAX_TXT);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        FUZZ_CHECK((*p >= 0x20 && *p < 0x7f) || *p == '\t' || *p == '\r' || *p == '\n');
}

static void check_answer(const struct resolver_answer *a, ldns_rr_type type)
{
    switch (a->rcode) {
    case RESOLVER_OK:
        FUZZ_CHECK(a->n >= 1 && a->n <= RESOLVER_MAX_RECORDS && a->rr);
        FUZZ_CHECK(a->ttl <= RESOLVER_MAX_TTL);
        for (int i = 0; i < a->n; i++) {
            if (type == LDNS_RR_TYPE_A || type == LDNS_RR_TYPE_AAAA)
                check_address(a->rr[i].text, type == LDNS_RR_TYPE_AAAA);
            else if (type == LDNS_RR_TYPE_MX || type == LDNS_RR_TYPE_PTR || type == LDNS_RR_TYPE_CNAME ||
                     type == LDNS_RR_TYPE_NS)
                check_name(a->rr[i].text);
            else if (type == LDNS_RR_TYPE_TXT)
                check_txt(a->rr[i].text);
            else
                FUZZ_CHECK(a->rr[i].text != NULL);
        }
        break;
    case RESOLVER_NXDOMAIN:
    case RESOLVER_NODATA:
        FUZZ_CHECK(a->n == 0 && !a->rr && a->ttl <= NEGATIVE_TTL); /* the SOA's, at most the config's */
        break;
    case RESOLVER_TEMPFAIL:
        FUZZ_CHECK(a->n == 0 && a->why[0] && strnlen(a->why, sizeof a->why) < sizeof a->why);
        break;
    default:
        FUZZ_CHECK(0);
    }
    struct resolver_answer copy;
    FUZZ_CHECK(resolver_answer_copy(&copy, a) == 0);
    FUZZ_CHECK(copy.n == a->n);
    resolver_answer_free(&copy);
}

static void reduce(const ldns_pkt *pkt, const char *qname, ldns_rr_type type)
{
    struct resolver_answer a;
    if (resolver_answer_from_pkt(pkt, qname, type, NEGATIVE_TTL, &a) < 0)
        return; /* allocation failure, or a qname ldns refuses */
    check_answer(&a, type);
    resolver_answer_free(&a);
}

/* The first packets on their own, with the question they carry. */
static void direct(const uint8_t *data, size_t size)
{
    struct ft_packets src = {data, size};
    const uint8_t *wire;
    size_t len;
    for (int k = 0; k < 4 && ft_next_packet(&src, &wire, &len); k++) {
        ldns_pkt *pkt = NULL;
        if (ldns_wire2pkt(&pkt, wire, len) != LDNS_STATUS_OK) {
            if (pkt)
                ldns_pkt_free(pkt);
            continue;
        }
        const ldns_rr_list *ql = ldns_pkt_question(pkt);
        if (ql && ldns_rr_list_rr_count(ql) == 1) {
            const ldns_rr *q = ldns_rr_list_rr(ql, 0);
            char *name = ldns_rdf2str(ldns_rr_owner(q));
            if (name) {
                reduce(pkt, name, ldns_rr_get_type(q));
                free(name);
            }
        }
        reduce(pkt, "remote.test", LDNS_RR_TYPE_MX);
        ldns_pkt_free(pkt);
    }
}

struct outcome {
    int done;
    Postmesh__ResolveRequest__Kind kind;
};

static void check_dsn(const char *dsn, char cls)
{
    /* "4.4.3", "5.1.10" */
    FUZZ_CHECK(dsn && dsn[0] == cls && dsn[1] == '.' && strlen(dsn) >= 5 && strlen(dsn) <= 9);
}

static void on_done(Postmesh__ResolveReply *r, void *arg)
{
    struct outcome *o = arg;
    FUZZ_CHECK(!o->done);
    o->done = 1;
    FUZZ_CHECK(r->text && r->dsn_status);
    FUZZ_CHECK(r->ttl <= RESOLVER_MAX_TTL);
    switch (r->status) {
    case POSTMESH__RESOLVE_REPLY__STATUS__OK:
        FUZZ_CHECK(r->dsn_status[0] == '\0');
        /* NODATA is an OK without records, except for MX (the implicit MX has an address). */
        if (o->kind == POSTMESH__RESOLVE_REQUEST__KIND__PTR) {
            FUZZ_CHECK(r->n_names <= RESOLVER_MAX_RECORDS && r->n_hosts == 0 && r->n_texts == 0);
            for (size_t i = 0; i < r->n_names; i++)
                check_name(r->names[i]);
        } else if (o->kind == POSTMESH__RESOLVE_REQUEST__KIND__TXT) {
            FUZZ_CHECK(r->n_texts <= RESOLVER_MAX_RECORDS && r->n_hosts == 0 && r->n_names == 0);
            for (size_t i = 0; i < r->n_texts; i++)
                check_txt(r->texts[i]);
        } else {
            FUZZ_CHECK(r->n_hosts >= (o->kind == POSTMESH__RESOLVE_REQUEST__KIND__A ? 0u : 1u) && r->n_hosts <= 16);
            for (size_t i = 0; i < r->n_hosts; i++) {
                const Postmesh__MxHost *h = r->hosts[i];
                check_name(h->name);
                FUZZ_CHECK(strcmp(h->name, ".") != 0);
                FUZZ_CHECK(h->n_addresses >= 1 && h->n_addresses <= 32);
                for (size_t j = 0; j < h->n_addresses; j++)
                    check_address(h->addresses[j], strchr(h->addresses[j], ':') != NULL);
                for (size_t k = 0; k < i; k++)
                    FUZZ_CHECK(strcmp(r->hosts[k]->name, h->name) != 0); /* each host once */
                if (i)
                    FUZZ_CHECK(r->hosts[i - 1]->preference <= h->preference);
            }
        }
        break;
    case POSTMESH__RESOLVE_REPLY__STATUS__TEMPFAIL:
        check_dsn(r->dsn_status, '4');
        FUZZ_CHECK(r->ttl == 0); /* never kept */
        break;
    case POSTMESH__RESOLVE_REPLY__STATUS__PERMFAIL:
        check_dsn(r->dsn_status, '5');
        break;
    default:
        FUZZ_CHECK(0);
    }
    /* It goes back on the bus: it must pack (no NULL strings) and unpack to the same. */
    Postmesh__BusMessage m = POSTMESH__BUS_MESSAGE__INIT;
    m.version = 1;
    m.body_case = POSTMESH__BUS_MESSAGE__BODY_RESOLVE_REPLY;
    m.resolve_reply = r;
    size_t n = postmesh__bus_message__get_packed_size(&m);
    uint8_t *buf = malloc(n ? n : 1);
    FUZZ_CHECK(postmesh__bus_message__pack(&m, buf) == n);
    Postmesh__BusMessage *back = postmesh__bus_message__unpack(NULL, n, buf);
    FUZZ_CHECK(back && back->resolve_reply && back->resolve_reply->n_hosts == r->n_hosts &&
               back->resolve_reply->n_texts == r->n_texts && back->resolve_reply->ttl == r->ttl);
    postmesh__bus_message__free_unpacked(back, NULL);
    free(buf);
}

static uint32_t first(uint32_t bound, void *arg)
{
    (void)arg;
    (void)bound;
    return 0; /* no shuffle: a crash must reproduce */
}

static void lookup(uint8_t opt, const uint8_t *data, size_t size)
{
    static const char *names[] = {"remote.test", "Remote.Test.", "a.b.example.test", "x"};
    static const char *ips[] = {"192.0.2.1", "2001:db8::1", "127.0.0.1", "::1"};
    Postmesh__ResolveRequest req = POSTMESH__RESOLVE_REQUEST__INIT;
    switch (opt & 3) {
    case 1:
        req.kind = POSTMESH__RESOLVE_REQUEST__KIND__A;
        break;
    case 2:
        req.kind = POSTMESH__RESOLVE_REQUEST__KIND__PTR;
        break;
    case 3:
        req.kind = POSTMESH__RESOLVE_REQUEST__KIND__TXT;
        break;
    default:
        req.kind = POSTMESH__RESOLVE_REQUEST__KIND__MX;
    }
    req.name = (char *)(req.kind == POSTMESH__RESOLVE_REQUEST__KIND__PTR ? ips : names)[(opt >> 2) & 3];

    ft_reset();
    struct resolver_cache *cache = resolver_cache_new(64);
    struct resolver_queries *q = resolver_queries_new(NULL, cache, NEGATIVE_TTL);
    FUZZ_CHECK(cache && q);
    resolver_lookup_set_rng(first, NULL);
    struct outcome o = {0, req.kind};
    resolver_lookup_start(q, &req, on_done, &o);
    struct ft_packets src = {data, size};
    struct ft_query fq;
    while (ft_pop(&fq))
        ft_answer(&fq, &src);
    /* Every query was answered, so the lookup must have finished: one MX, then A and AAAA
     * for at most 16 hosts. */
    FUZZ_CHECK(o.done);
    FUZZ_CHECK(ft_total <= 1 + 2 * 16);
    resolver_lookup_free_all();
    resolver_queries_free(q);
    resolver_cache_free(cache);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    direct(data + 1, size - 1);
    lookup(data[0], data + 1, size - 1);
    return 0;
}
