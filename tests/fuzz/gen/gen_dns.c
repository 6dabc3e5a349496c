/* Writes the DNS seeds of fuzz_dns_answer (tests/fuzz/corpus/dns_answer/): answers built with
 * ldns from zone-file text, as a nameserver would send them, in the order the resolver asks
 * (MX, then A and AAAA of each host). Format: byte 0 = request (bits 0-1: 0 MX, 1 A, 2 PTR;
 * bits 2-3: which name), then <2-byte length><message> per packet.
 * Build and run: make -f Makefile -f tests/fuzz/fuzz.mk fuzz-seeds */
#include <ldns/ldns.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct out {
    uint8_t buf[65536];
    size_t len;
};

/* One response: rcode, flags ("tc", "aa"), question, answer and authority records. */
static void packet(struct out *o, const char *qname, ldns_rr_type qtype, ldns_pkt_rcode rc, int tc,
                   const char *const *answer, const char *const *authority)
{
    ldns_pkt *p = ldns_pkt_new();
    ldns_pkt_set_id(p, 4242);
    ldns_pkt_set_qr(p, true);
    ldns_pkt_set_rd(p, true);
    ldns_pkt_set_ra(p, true);
    ldns_pkt_set_tc(p, tc);
    ldns_pkt_set_rcode(p, (uint8_t)rc);
    ldns_rr *q = ldns_rr_new();
    ldns_rr_set_owner(q, ldns_dname_new_frm_str(qname));
    ldns_rr_set_type(q, qtype);
    ldns_rr_set_class(q, LDNS_RR_CLASS_IN);
    ldns_rr_set_question(q, true);
    ldns_pkt_push_rr(p, LDNS_SECTION_QUESTION, q);
    for (int s = 0; s < 2; s++) {
        const char *const *rrs = s ? authority : answer;
        for (int i = 0; rrs && rrs[i]; i++) {
            ldns_rr *rr = NULL;
            if (ldns_rr_new_frm_str(&rr, rrs[i], 300, NULL, NULL) != LDNS_STATUS_OK) {
                fprintf(stderr, "bad rr: %s\n", rrs[i]);
                exit(1);
            }
            ldns_pkt_push_rr(p, s ? LDNS_SECTION_AUTHORITY : LDNS_SECTION_ANSWER, rr);
        }
    }
    uint8_t *wire = NULL;
    size_t n = 0;
    if (ldns_pkt2wire(&wire, p, &n) != LDNS_STATUS_OK || o->len + 2 + n > sizeof o->buf)
        exit(1);
    o->buf[o->len++] = (uint8_t)(n >> 8);
    o->buf[o->len++] = (uint8_t)n;
    memcpy(o->buf + o->len, wire, n);
    o->len += n;
    free(wire);
    ldns_pkt_free(p);
}

static void raw(struct out *o, const void *data, size_t n)
{
    o->buf[o->len++] = (uint8_t)(n >> 8);
    o->buf[o->len++] = (uint8_t)n;
    memcpy(o->buf + o->len, data, n);
    o->len += n;
}

static void save(const char *dir, const char *name, struct out *o)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(o->buf, 1, o->len, f) != o->len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
    o->len = 0;
}

#define L(...) ((const char *const[]){__VA_ARGS__, NULL})
static const char *const soa[] = {"remote.test. 60 IN SOA ns.remote.test. host.remote.test. 1 3600 600 86400 60",
                                  NULL};

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "tests/fuzz/corpus/dns_answer";
    static struct out o;
    enum { MX = 0, A = 1, PTR = 2 };

    o.buf[o.len++] = MX; /* remote.test: two MX hosts, one with both families */
    packet(&o, "remote.test.", LDNS_RR_TYPE_MX, LDNS_RCODE_NOERROR, 0,
           L("remote.test. 300 IN MX 10 mx1.remote.test.", "remote.test. 300 IN MX 20 mx2.remote.test."), NULL);
    packet(&o, "mx1.remote.test.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, 0, L("mx1.remote.test. 300 IN A 127.0.0.1"),
           NULL);
    packet(&o, "mx1.remote.test.", LDNS_RR_TYPE_AAAA, LDNS_RCODE_NOERROR, 0, L("mx1.remote.test. 300 IN AAAA ::1"),
           NULL);
    packet(&o, "mx2.remote.test.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, 0,
           L("mx2.remote.test. 300 IN A 127.0.0.2", "mx2.remote.test. 300 IN A 127.0.0.3"), NULL);
    packet(&o, "mx2.remote.test.", LDNS_RR_TYPE_AAAA, LDNS_RCODE_NOERROR, 0, NULL, soa);
    save(dir, "mx_two_hosts", &o);

    o.buf[o.len++] = MX;
    packet(&o, "remote.test.", LDNS_RR_TYPE_MX, LDNS_RCODE_NOERROR, 0, L("remote.test. 300 IN MX 0 ."), NULL);
    save(dir, "null_mx", &o);

    o.buf[o.len++] = MX;
    packet(&o, "remote.test.", LDNS_RR_TYPE_MX, LDNS_RCODE_NXDOMAIN, 0, NULL, soa);
    save(dir, "nxdomain", &o);

    o.buf[o.len++] = MX;
    packet(&o, "remote.test.", LDNS_RR_TYPE_MX, LDNS_RCODE_SERVFAIL, 0, NULL, NULL);
    save(dir, "servfail", &o);

    o.buf[o.len++] = MX; /* no MX: the domain itself (implicit MX) */
    packet(&o, "remote.test.", LDNS_RR_TYPE_MX, LDNS_RCODE_NOERROR, 0, NULL, soa);
    packet(&o, "remote.test.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, 0, L("remote.test. 300 IN A 192.0.2.25"), NULL);
    packet(&o, "remote.test.", LDNS_RR_TYPE_AAAA, LDNS_RCODE_NOERROR, 0, L("remote.test. 300 IN AAAA 2001:db8::25"),
           NULL);
    save(dir, "implicit_mx", &o);

    o.buf[o.len++] = MX; /* a CNAME chain inside the answer, plus a forged record for another name */
    packet(&o, "remote.test.", LDNS_RR_TYPE_MX, LDNS_RCODE_NOERROR, 0,
           L("remote.test. 300 IN CNAME mail.remote.test.", "mail.remote.test. 120 IN MX 5 mx1.remote.test.",
             "victim.test. 300 IN MX 1 evil.test."),
           NULL);
    packet(&o, "mx1.remote.test.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, 0,
           L("mx1.remote.test. 300 IN CNAME host.remote.test.", "host.remote.test. 300 IN A 127.0.0.1"), NULL);
    packet(&o, "mx1.remote.test.", LDNS_RR_TYPE_AAAA, LDNS_RCODE_NOERROR, 0, NULL, soa);
    save(dir, "cname_chain", &o);

    o.buf[o.len++] = MX; /* truncated over UDP, the TCP answer follows; garbage datagram first */
    raw(&o, "\x10\x92garbage", 9);
    packet(&o, "remote.test.", LDNS_RR_TYPE_MX, LDNS_RCODE_NOERROR, 1, NULL, NULL);
    packet(&o, "remote.test.", LDNS_RR_TYPE_MX, LDNS_RCODE_NOERROR, 0, L("remote.test. 300 IN MX 10 mx1.remote.test."),
           NULL);
    packet(&o, "mx1.remote.test.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, 0, L("mx1.remote.test. 300 IN A 127.0.0.1"),
           NULL);
    save(dir, "truncated_then_tcp", &o);

    o.buf[o.len++] = MX; /* many hosts, equal preferences, duplicates, a "." among them */
    {
        const char *rrs[24];
        static char text[24][96];
        for (int i = 0; i < 22; i++) {
            snprintf(text[i], sizeof text[i], "remote.test. 300 IN MX %d mx%d.remote.test.", (i % 3) * 10, i % 19);
            rrs[i] = text[i];
        }
        rrs[22] = "remote.test. 300 IN MX 0 .";
        rrs[23] = NULL;
        packet(&o, "remote.test.", LDNS_RR_TYPE_MX, LDNS_RCODE_NOERROR, 0, rrs, NULL);
        for (int i = 0; i < 4; i++) {
            char owner[64], rr[128];
            snprintf(owner, sizeof owner, "mx%d.remote.test.", i);
            snprintf(rr, sizeof rr, "%s 30 IN A 127.0.1.%d", owner, i + 1);
            packet(&o, owner, LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, 0, L(rr), NULL);
        }
    }
    save(dir, "many_mx", &o);

    o.buf[o.len++] = A | (1 << 2); /* "Remote.Test." */
    packet(&o, "remote.test.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, 0,
           L("remote.test. 86400 IN A 192.0.2.1", "remote.test. 999999 IN A 192.0.2.2", "remote.test. 0 IN A 10.0.0.1"),
           NULL);
    packet(&o, "remote.test.", LDNS_RR_TYPE_AAAA, LDNS_RCODE_NOERROR, 0, L("remote.test. 60 IN AAAA 2001:db8::1"),
           NULL);
    save(dir, "a_request", &o);

    o.buf[o.len++] = PTR; /* 192.0.2.1 */
    packet(&o, "1.2.0.192.in-addr.arpa.", LDNS_RR_TYPE_PTR, LDNS_RCODE_NOERROR, 0,
           L("1.2.0.192.in-addr.arpa. 300 IN PTR client.example.test.",
             "1.2.0.192.in-addr.arpa. 300 IN PTR Other.Example.Test."),
           NULL);
    save(dir, "ptr_v4", &o);

    o.buf[o.len++] = PTR | (1 << 2); /* 2001:db8::1 */
    packet(&o, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.", LDNS_RR_TYPE_PTR,
           LDNS_RCODE_NOERROR, 0,
           L("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. 300 IN PTR v6host.example.test."),
           NULL);
    save(dir, "ptr_v6", &o);

    o.buf[o.len++] = MX; /* names nobody should connect to */
    packet(&o, "remote.test.", LDNS_RR_TYPE_MX, LDNS_RCODE_NOERROR, 0,
           L("remote.test. 300 IN MX 10 bad\\032name.remote.test.",
             "remote.test. 300 IN MX 20 under_score.remote.test.", "remote.test. 300 IN TXT \"v=spf1 -all\""),
           NULL);
    packet(&o, "under_score.remote.test.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, 0,
           L("under_score.remote.test. 300 IN A 127.0.0.1"), NULL);
    save(dir, "odd_names", &o);
    return 0;
}
