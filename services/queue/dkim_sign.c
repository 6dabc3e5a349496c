/* DKIM signing at intake (dkim_sign.h, docs/dkim.md): the keys for the From: domain, one
 * signature per algorithm (dkim_sign_openssl.c), and the DKIM-Signature fields put in front
 * of the stored body. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dkim_sign_int.h"
#include "log.h"
#include "logvalue.h"
#include "postmesh.pb-c.h"

/* RFC 6376 5.4.1's recommended set and the MIME fields (RFC 6376 5.4: those a change of
 * which changes the meaning); only those present are signed. From is signed once more than
 * it occurs (oversigned), so no From: can be added later without breaking the signature. */
static const char *const signed_headers[] = {
    "from", "reply-to", "subject", "date", "to", "cc", "resent-date", "resent-from", "resent-to", "resent-cc",
    "in-reply-to", "references", "list-id", "list-help", "list-unsubscribe", "list-subscribe", "list-post",
    "list-owner", "list-archive", "message-id", "sender", "mime-version", "content-type",
    "content-transfer-encoding", NULL,
};

const char *queue_dkim_alg_name(enum dkim_alg a) { return a == DKIM_ALG_RSA ? "rsa-sha256" : "ed25519-sha256"; }

struct dkim_signer *queue_dkim_load(const struct pm_config *cfg, char *err, size_t errsize)
{
    struct dkim_signer *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, errsize, "%s:0: dkim: out of memory", cfg->path);
        return NULL;
    }
    if (queue_dkim_load_keys(d, cfg, err, errsize) < 0) {
        queue_dkim_free(d);
        return NULL;
    }
    return d;
}

void queue_dkim_free(struct dkim_signer *d)
{
    if (!d)
        return;
    queue_dkim_free_keys(d);
    free(d);
}

int queue_dkim_nkeys(const struct dkim_signer *d) { return d ? d->nkeys : 0; }

int queue_dkim_choose(const struct dkim_signer *d, const char *domain, const struct dkim_key *out[DKIM_ALG_N])
{
    const struct dkim_key *by_alg[DKIM_ALG_N] = {0};
    for (int i = 0; d && i < d->nkeys; i++)
        if (d->keys[i].active && !strcasecmp(d->keys[i].domain, domain))
            by_alg[d->keys[i].alg] = &d->keys[i]; /* the load allows one active per algorithm */
    int n = 0;
    for (int a = 0; a < DKIM_ALG_N; a++)
        if (by_alg[a])
            out[n++] = by_alg[a];
    return n;
}

int queue_dkim_sign(const uint8_t *msg, size_t len, const struct dkim_key *const *keys, int nkeys, char **hdrs,
                    size_t *hlen, const char **why)
{
    *hdrs = NULL;
    *hlen = 0;
    for (int k = 0; k < nkeys; k++) {
        struct dkim_field f;
        int ok = queue_dkim_sign_one(keys[k], signed_headers, msg, len, &f, why) == 0;
        if (ok) {
            char *n = realloc(*hdrs, *hlen + f.n + 1);
            ok = n != NULL;
            if (ok) {
                memcpy(n + *hlen, f.d, f.n + 1);
                *hdrs = n;
                *hlen += f.n;
            } else {
                *why = "out_of_memory";
            }
            free(f.d);
        }
        if (!ok) {
            free(*hdrs);
            *hdrs = NULL;
            *hlen = 0;
            return -1;
        }
    }
    return 0;
}

void queue_dkim_sign_submit(struct dkim_signer *d, Postmesh__Submit *s, struct dkim_outcome *o)
{
    memset(o, 0, sizeof *o);
    o->state = DKIM_NOT_OURS;
    if (!s->originating || s->is_dsn || queue_dkim_nkeys(d) == 0)
        return;
    o->state = DKIM_NOT_SIGNED;
    if (queue_dkim_from_domain(s->body.data, s->body.len, o->domain, sizeof o->domain, &o->reason) < 0)
        return;
    const struct dkim_key *keys[DKIM_ALG_N];
    int n = queue_dkim_choose(d, o->domain, keys);
    if (n == 0) {
        o->reason = "no_key";
        return;
    }
    char *hdrs;
    size_t hlen;
    const char *why;
    if (queue_dkim_sign(s->body.data, s->body.len, keys, n, &hdrs, &hlen, &why) < 0) {
        o->reason = "sign_failed";
        snprintf(o->error, sizeof o->error, "%s", why);
        return;
    }
    uint8_t *body = malloc(hlen + s->body.len);
    if (!body) {
        free(hdrs);
        o->reason = "out_of_memory";
        return;
    }
    memcpy(body, hdrs, hlen);
    memcpy(body + hlen, s->body.data, s->body.len);
    free(hdrs);
    free(s->body.data); /* unpacked by protobuf-c with the default allocator: free_unpacked frees ours */
    s->body.data = body;
    s->body.len += hlen;
    o->state = DKIM_SIGNED;
    for (int k = 0; k < n; k++) {
        size_t sl = strlen(o->selectors), al = strlen(o->algorithms);
        snprintf(o->selectors + sl, sizeof o->selectors - sl, "%s%s", k ? "," : "", keys[k]->selector);
        snprintf(o->algorithms + al, sizeof o->algorithms - al, "%s%s", k ? "," : "",
                 queue_dkim_alg_name(keys[k]->alg));
    }
}

void queue_dkim_log(const struct dkim_outcome *o, const char *id)
{
    char dv[PM_LOGV_SIZE], sv[PM_LOGV_SIZE], ev[PM_LOGV_SIZE];
    if (o->state == DKIM_SIGNED)
        pm_log(PM_INFO, "event=dkim_signed queue_id=%s domain=%s selector=%s algorithm=%s", id, PM_LOGV(dv, o->domain),
               PM_LOGV(sv, o->selectors), o->algorithms);
    else if (o->state == DKIM_NOT_SIGNED)
        pm_log(o->error[0] ? PM_WARN : PM_INFO, "event=dkim_not_signed queue_id=%s reason=%s%s%s%s%s", id, o->reason,
               o->domain[0] ? " domain=" : "", o->domain[0] ? PM_LOGV(dv, o->domain) : "", o->error[0] ? " error=" : "",
               o->error[0] ? PM_LOGV(ev, o->error) : "");
}
