/* TLSA records → OpenSSL's DANE (dane.h). */
#include "dane.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

int mta_tlsa_usable(uint32_t usage, uint32_t selector, uint32_t mtype, size_t len)
{
    if (usage != 2 && usage != 3)
        return 0; /* PKIX-TA/PKIX-EE: unusable for SMTP (RFC 7672 3.1.3) */
    if (selector > 1 || len == 0 || len > MTA_TLSA_MAX_DATA)
        return 0;
    switch (mtype) {
    case 0:
        return 1;
    case 1:
        return len == 32;
    case 2:
        return len == 64;
    default:
        return 0;
    }
}

void mta_tlsa_set_free(struct mta_tlsa_set *set)
{
    for (int i = 0; i < set->n; i++)
        free(set->v[i].data);
    for (int i = 0; i < set->total; i++)
        free(set->text ? set->text[i] : NULL);
    free(set->v);
    free(set->text);
    memset(set, 0, sizeof *set);
}

/* "u s m hex": the record as RFC 6698 2.2 presents it, at most 2 KB of hex (the bus allows
 * 1024 octets). */
static char *record_text(const Postmesh__TlsaRecord *r)
{
    size_t len = r->data.len > MTA_TLSA_MAX_DATA ? MTA_TLSA_MAX_DATA : r->data.len;
    char *s = malloc(len * 2 + 32);
    if (!s)
        abort();
    int n = snprintf(s, 32, "%u %u %u ", r->usage, r->selector, r->matching_type);
    for (size_t i = 0; i < len; i++)
        snprintf(s + n + 2 * i, 3, "%02x", r->data.data[i]);
    return s;
}

enum mta_tlsa_state mta_tlsa_from_reply(const Postmesh__ResolveReply *reply, const char *error,
                                        struct mta_tlsa_set *set, char *why, size_t whysize)
{
    mta_tlsa_set_free(set);
    why[0] = '\0';
    if (!reply) {
        snprintf(why, whysize, "%s", error && error[0] ? error : "no answer");
        return MTA_TLSA_FAILED;
    }
    /* NXDOMAIN (PERMFAIL 5.1.2) is a denial like NODATA: no records, proven or not. */
    int nxdomain = reply->status == POSTMESH__RESOLVE_REPLY__STATUS__PERMFAIL && reply->dsn_status &&
                   strcmp(reply->dsn_status, "5.1.2") == 0;
    if (nxdomain && reply->dnssec != POSTMESH__DNSSEC__DNSSEC_BOGUS)
        return reply->dnssec == POSTMESH__DNSSEC__DNSSEC_SECURE ? MTA_TLSA_NONE : MTA_TLSA_NOT_ASKED;
    if (reply->status != POSTMESH__RESOLVE_REPLY__STATUS__OK || reply->dnssec == POSTMESH__DNSSEC__DNSSEC_BOGUS) {
        snprintf(why, whysize, "%s", reply->text && reply->text[0] ? reply->text : "lookup failed");
        return MTA_TLSA_FAILED;
    }
    if (reply->dnssec != POSTMESH__DNSSEC__DNSSEC_SECURE) {
        /* The MX and host were secure, the TLSA answer is not: an insecure delegation under a
         * secure name is possible (RFC 7672 2.2.2); the records prove nothing. */
        return MTA_TLSA_NOT_ASKED;
    }
    size_t total = reply->n_tlsa > MTA_TLSA_MAX ? MTA_TLSA_MAX : reply->n_tlsa;
    if (total == 0)
        return MTA_TLSA_NONE;
    set->v = calloc(total, sizeof *set->v);
    set->text = calloc(total, sizeof *set->text);
    if (!set->v || !set->text)
        abort();
    for (size_t i = 0; i < total; i++) {
        const Postmesh__TlsaRecord *r = reply->tlsa[i];
        set->text[set->total++] = record_text(r);
        if (!mta_tlsa_usable(r->usage, r->selector, r->matching_type, r->data.len))
            continue;
        struct mta_tlsa *t = &set->v[set->n++];
        t->usage = (uint8_t)r->usage;
        t->selector = (uint8_t)r->selector;
        t->mtype = (uint8_t)r->matching_type;
        t->len = r->data.len;
        t->data = malloc(t->len);
        if (!t->data)
            abort();
        memcpy(t->data, r->data.data, t->len);
    }
    return set->n ? MTA_TLSA_USABLE : MTA_TLSA_UNUSABLE;
}

int mta_dane_ctx_enable(SSL_CTX *ctx)
{
    return SSL_CTX_dane_enable(ctx) > 0 ? 0 : -1;
}

int mta_dane_apply(SSL *ssl, const char *mx_host, const struct mta_tlsa_set *set)
{
    if (SSL_dane_enable(ssl, mx_host) <= 0)
        return -1;
    /* RFC 7672 3.1.1: a DANE-EE(3) match is the server's key, whatever names it carries. */
    SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
    int added = 0;
    for (int i = 0; i < set->n; i++) {
        const struct mta_tlsa *t = &set->v[i];
        int rc = SSL_dane_tlsa_add(ssl, t->usage, t->selector, t->mtype, t->data, t->len);
        if (rc > 0)
            added++;
        else
            pm_log(PM_DEBUG, "event=tlsa_unusable host=%s usage=%u selector=%u mtype=%u", mx_host, t->usage,
                   t->selector, t->mtype);
    }
    return added ? 0 : -1;
}
