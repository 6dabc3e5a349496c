/* The resolver's network side replaced for fuzzing: resolver_transport_query() (the one
 * function of resolver/transport.c the query layer calls) is defined here, so the linker
 * takes it instead of transport.o and no socket is ever opened. Each query waits in a list;
 * the harness answers it later, "from the event loop" as the real transport does (never
 * inside the query call), with a packet from the fuzz input or an error. Header-only, one
 * per fuzzer program. */
#ifndef FAKE_TRANSPORT_H
#define FAKE_TRANSPORT_H
#include <ldns/ldns.h>
#include <stdlib.h>
#include <string.h>

#include "resolver/transport.h"

struct ft_query {
    char name[256];
    ldns_rr_type type;
    resolver_transport_cb cb;
    void *arg;
};

#define FT_MAX 256
static struct ft_query ft_queue[FT_MAX];
static size_t ft_head, ft_tail;
static size_t ft_total; /* queries asked since the last ft_reset() */

int resolver_transport_query(struct resolver_transport *t, const char *name, ldns_rr_type type,
                             resolver_transport_cb cb, void *arg)
{
    (void)t;
    if (strlen(name) >= sizeof ft_queue[0].name || ft_tail - ft_head >= FT_MAX)
        return -1; /* as the real one: an unusable name, or too much in flight */
    struct ft_query *q = &ft_queue[ft_tail++ % FT_MAX];
    snprintf(q->name, sizeof q->name, "%s", name);
    q->type = type;
    q->cb = cb;
    q->arg = arg;
    ft_total++;
    return 0;
}

static inline int ft_pop(struct ft_query *out)
{
    if (ft_head == ft_tail)
        return 0;
    *out = ft_queue[ft_head++ % FT_MAX];
    return 1;
}

static inline void ft_reset(void) { ft_head = ft_tail = ft_total = 0; }

/* Makes pkt an answer to q as transport.c's matches() demands (QR set, the one question
 * asked), keeping everything else the input chose: the rcode, flags and all sections. */
static inline void ft_match(ldns_pkt *pkt, const struct ft_query *q)
{
    ldns_pkt_set_qr(pkt, true);
    ldns_rr *rr = ldns_rr_new();
    ldns_rdf *owner = ldns_dname_new_frm_str(q->name);
    if (!rr || !owner)
        abort();
    ldns_rr_set_owner(rr, owner);
    ldns_rr_set_type(rr, q->type);
    ldns_rr_set_class(rr, LDNS_RR_CLASS_IN);
    ldns_rr_set_question(rr, true);
    ldns_rr_list *list = ldns_rr_list_new();
    ldns_rr_list_push_rr(list, rr);
    ldns_rr_list_deep_free(ldns_pkt_question(pkt));
    ldns_pkt_set_question(pkt, list);
    ldns_pkt_set_qdcount(pkt, 1);
}

/* The fuzz input as the datagrams the nameserver sends: each is a 2-byte big-endian length
 * and that many bytes (the last one is cut short if the input ends). */
struct ft_packets {
    const uint8_t *p;
    size_t left;
};

static inline int ft_next_packet(struct ft_packets *s, const uint8_t **wire, size_t *len)
{
    if (s->left < 2)
        return 0;
    size_t n = ((size_t)s->p[0] << 8) | s->p[1];
    s->p += 2;
    s->left -= 2;
    if (n > s->left)
        n = s->left;
    *wire = s->p;
    *len = n;
    s->p += n;
    s->left -= n;
    return 1;
}

/* Answers q as transport.c would from the packets that arrive: unparsable datagrams are
 * skipped (the real answer may still come), TC=1 sends the question again over TCP (the
 * next packet is the TCP answer, no skipping there), an error rcode is a failure, and
 * running out of packets is the timeout. Exactly one callback per query. */
static inline void ft_answer(const struct ft_query *q, struct ft_packets *src)
{
    int tcp = 0;
    const uint8_t *wire;
    size_t len;
    while (ft_next_packet(src, &wire, &len)) {
        ldns_pkt *pkt = NULL;
        if (ldns_wire2pkt(&pkt, wire, len) != LDNS_STATUS_OK) {
            if (pkt)
                ldns_pkt_free(pkt);
            if (tcp) {
                q->cb(NULL, RESOLVER_INSECURE, "bad TCP answer", q->arg);
                return;
            }
            continue;
        }
        ft_match(pkt, q);
        if (!tcp && ldns_pkt_tc(pkt)) {
            ldns_pkt_free(pkt);
            tcp = 1;
            continue;
        }
        ldns_pkt_rcode rc = ldns_pkt_get_rcode(pkt);
        if (rc != LDNS_RCODE_NOERROR && rc != LDNS_RCODE_NXDOMAIN) {
            ldns_lookup_table *lt = ldns_lookup_by_id(ldns_rcodes, (int)rc);
            ldns_pkt_free(pkt);
            q->cb(NULL, RESOLVER_INSECURE, lt ? lt->name : "server failure", q->arg);
            return;
        }
        /* The security libunbound would have judged: taken from the input's AD bit, so that
         * the secure paths are fuzzed too (the real engine never believes that bit). */
        q->cb(pkt, ldns_pkt_ad(pkt) ? RESOLVER_SECURE : RESOLVER_INSECURE, NULL, q->arg); /* the callee owns pkt */
        return;
    }
    q->cb(NULL, RESOLVER_INSECURE, tcp ? "TCP connection failed" : "timeout", q->arg);
}

#endif
