#include "answer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"

#define MAX_CNAME_HOPS 8

const char *resolver_rcode_name(enum resolver_rcode rc)
{
    switch (rc) {
    case RESOLVER_OK: return "ok";
    case RESOLVER_NXDOMAIN: return "nxdomain";
    case RESOLVER_NODATA: return "nodata";
    default: return "tempfail";
    }
}

const char *resolver_security_name(enum resolver_security s)
{
    switch (s) {
    case RESOLVER_SECURE: return "secure";
    case RESOLVER_BOGUS: return "bogus";
    default: return "insecure";
    }
}

void resolver_answer_tempfail(struct resolver_answer *out, const char *why)
{
    memset(out, 0, sizeof *out);
    out->rcode = RESOLVER_TEMPFAIL;
    snprintf(out->why, sizeof out->why, "%s", why);
}

static uint32_t min_ttl(uint32_t a, uint32_t b) { return a < b ? a : b; }

/* A TXT record's character-strings joined (RFC 7208 3.3, RFC 6376 3.6.2.2), or NULL to skip
 * it: longer than the bus carries. The records are ASCII by their RFCs; a NUL, a control
 * character other than white space, or a non-ASCII byte becomes '?' so that what follows
 * can hold it in a C string and a log line. */
static char *txt_text(const ldns_rr *rr)
{
    size_t total = 0;
    for (size_t i = 0; i < ldns_rr_rd_count(rr); i++) {
        const ldns_rdf *f = ldns_rr_rdf(rr, i);
        if (ldns_rdf_get_type(f) != LDNS_RDF_TYPE_STR || ldns_rdf_size(f) < 1)
            return NULL;
        total += ldns_rdf_data(f)[0];
    }
    if (total > RESOLVER_MAX_TXT)
        return NULL;
    char *out = malloc(total + 1), *p = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < ldns_rr_rd_count(rr); i++) {
        const ldns_rdf *f = ldns_rr_rdf(rr, i);
        const uint8_t *d = ldns_rdf_data(f);
        size_t len = d[0] < ldns_rdf_size(f) ? d[0] : ldns_rdf_size(f) - 1;
        for (size_t j = 1; j <= len; j++) {
            uint8_t c = d[j];
            *p++ = (c >= 0x20 && c < 0x7f) || c == '\t' || c == '\r' || c == '\n' ? (char)c : '?';
        }
    }
    *p = '\0';
    return out;
}

/* "usage selector matching-type hex" (RFC 6698 2.2's presentation form, without spaces in
 * the data), or NULL to skip a record that is malformed or longer than the bus carries. */
static char *tlsa_text(const ldns_rr *rr)
{
    if (ldns_rr_rd_count(rr) != 4)
        return NULL;
    unsigned v[3];
    for (int i = 0; i < 3; i++) {
        const ldns_rdf *f = ldns_rr_rdf(rr, (size_t)i);
        if (ldns_rdf_size(f) != 1)
            return NULL;
        v[i] = ldns_rdf_data(f)[0];
    }
    const ldns_rdf *data = ldns_rr_rdf(rr, 3);
    size_t len = ldns_rdf_size(data);
    if (len == 0 || len > RESOLVER_MAX_TLSA_DATA)
        return NULL;
    char *out = malloc(12 + 2 * len + 1);
    if (!out)
        return NULL;
    int n = snprintf(out, 13, "%u %u %u ", v[0], v[1], v[2]);
    static const char hex[] = "0123456789abcdef";
    const uint8_t *d = ldns_rdf_data(data);
    for (size_t i = 0; i < len; i++) {
        out[n++] = hex[d[i] >> 4];
        out[n++] = hex[d[i] & 15];
    }
    out[n] = '\0';
    return out;
}

/* Text form of the record's interesting rdata, or NULL to skip the record. */
static char *record_text(const ldns_rr *rr, ldns_rr_type type, uint16_t *pref)
{
    *pref = 0;
    if (type == LDNS_RR_TYPE_TXT)
        return txt_text(rr);
    if (type == LDNS_RR_TYPE_TLSA)
        return tlsa_text(rr);
    const ldns_rdf *target = NULL;
    if (type == LDNS_RR_TYPE_MX) {
        if (ldns_rr_rd_count(rr) != 2)
            return NULL;
        *pref = ldns_rdf2native_int16(ldns_rr_rdf(rr, 0));
        target = ldns_rr_rdf(rr, 1);
    } else {
        if (ldns_rr_rd_count(rr) != 1)
            return NULL;
        target = ldns_rr_rdf(rr, 0);
    }
    char *s = ldns_rdf2str(target);
    if (!s)
        return NULL;
    if (type == LDNS_RR_TYPE_A || type == LDNS_RR_TYPE_AAAA)
        return s;
    /* A name: keep only what we could put on an SMTP connection or in a log line safely. */
    char norm[RESOLVER_NAME_MAX];
    int ok = resolver_name_normalize(s, norm, sizeof norm) == 0;
    free(s);
    return ok ? strdup(norm) : NULL;
}

/* RFC 2308 5: a negative answer is kept for the smaller of the SOA record's TTL and its
 * MINIMUM field, the SOA of the authority section; never longer than the configured
 * negative_ttl, which is also what an answer without a SOA gets. */
uint32_t resolver_negative_ttl(const ldns_pkt *pkt, uint32_t negative_ttl)
{
    const ldns_rr_list *auth = ldns_pkt_authority(pkt);
    size_t count = auth ? ldns_rr_list_rr_count(auth) : 0;
    for (size_t i = 0; i < count; i++) {
        const ldns_rr *rr = ldns_rr_list_rr(auth, i);
        if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_SOA || ldns_rr_rd_count(rr) != 7)
            continue;
        const ldns_rdf *min = ldns_rr_rdf(rr, 6);
        if (ldns_rdf_size(min) != 4)
            continue;
        uint32_t ttl = min_ttl(ldns_rr_ttl(rr), ldns_rdf2native_int32(min));
        return min_ttl(ttl, negative_ttl);
    }
    return negative_ttl;
}

int resolver_answer_from_pkt(const ldns_pkt *pkt, const char *qname, ldns_rr_type qtype, uint32_t negative_ttl,
                             struct resolver_answer *out)
{
    memset(out, 0, sizeof *out);
    ldns_pkt_rcode rc = ldns_pkt_get_rcode(pkt);
    if (rc == LDNS_RCODE_NXDOMAIN) {
        out->rcode = RESOLVER_NXDOMAIN;
        out->ttl = resolver_negative_ttl(pkt, negative_ttl);
        return 0;
    }
    if (rc != LDNS_RCODE_NOERROR) {
        ldns_lookup_table *lt = ldns_lookup_by_id(ldns_rcodes, (int)rc);
        snprintf(out->why, sizeof out->why, "%s", lt ? lt->name : "bad rcode");
        out->rcode = RESOLVER_TEMPFAIL;
        return 0;
    }
    ldns_rdf *cur = ldns_dname_new_frm_str(qname);
    if (!cur)
        return -1;
    const ldns_rr_list *ans = ldns_pkt_answer(pkt);
    size_t count = ans ? ldns_rr_list_rr_count(ans) : 0;
    uint32_t ttl = RESOLVER_MAX_TTL;

    /* A recursive server answers for the end of a CNAME chain: walk it from qname so
     * only records that belong to the question are used. */
    for (int hop = 0; hop < MAX_CNAME_HOPS; hop++) {
        const ldns_rr *next = NULL;
        for (size_t i = 0; i < count && !next; i++) {
            const ldns_rr *rr = ldns_rr_list_rr(ans, i);
            if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_CNAME && ldns_rr_rd_count(rr) == 1 &&
                ldns_dname_compare(ldns_rr_owner(rr), cur) == 0)
                next = rr;
        }
        if (!next || qtype == LDNS_RR_TYPE_CNAME)
            break;
        ttl = min_ttl(ttl, ldns_rr_ttl(next));
        ldns_rdf_deep_free(cur);
        cur = ldns_rdf_clone(ldns_rr_rdf(next, 0));
        if (!cur)
            return -1;
    }

    out->rr = calloc(RESOLVER_MAX_RECORDS, sizeof *out->rr);
    if (!out->rr) {
        ldns_rdf_deep_free(cur);
        return -1;
    }
    for (size_t i = 0; i < count && out->n < RESOLVER_MAX_RECORDS; i++) {
        const ldns_rr *rr = ldns_rr_list_rr(ans, i);
        if (ldns_rr_get_type(rr) != qtype || ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN ||
            ldns_dname_compare(ldns_rr_owner(rr), cur) != 0)
            continue;
        uint16_t pref;
        char *text = record_text(rr, qtype, &pref);
        if (!text)
            continue;
        out->rr[out->n].pref = pref;
        out->rr[out->n].text = text;
        out->n++;
        ttl = min_ttl(ttl, ldns_rr_ttl(rr));
    }
    ldns_rdf_deep_free(cur);
    if (out->n == 0) {
        free(out->rr);
        out->rr = NULL;
        out->rcode = RESOLVER_NODATA;
        out->ttl = resolver_negative_ttl(pkt, negative_ttl);
    } else {
        out->rcode = RESOLVER_OK;
        out->ttl = ttl;
    }
    return 0;
}

int resolver_answer_copy(struct resolver_answer *dst, const struct resolver_answer *src)
{
    *dst = *src;
    dst->rr = NULL;
    dst->n = 0;
    if (src->n == 0)
        return 0;
    dst->rr = calloc((size_t)src->n, sizeof *dst->rr);
    if (!dst->rr)
        return -1;
    for (int i = 0; i < src->n; i++) {
        dst->rr[i].pref = src->rr[i].pref;
        dst->rr[i].text = strdup(src->rr[i].text);
        if (!dst->rr[i].text) {
            resolver_answer_free(dst);
            return -1;
        }
        dst->n = i + 1;
    }
    return 0;
}

void resolver_answer_free(struct resolver_answer *a)
{
    for (int i = 0; i < a->n; i++)
        free(a->rr[i].text);
    free(a->rr);
    a->rr = NULL;
    a->n = 0;
}
