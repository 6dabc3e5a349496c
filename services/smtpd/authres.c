/* The authres end-of-message stage: SPF, DKIM, DMARC and our Authentication-Results:
 * (authres.h). */
#include "authres.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "authres_dns.h"
#include "authres_header.h"
#include "clock.h"
#include "config.h"
#include "dkim_verify.h"
#include "dmarc_check.h"
#include "eom.h"
#include "log.h"
#include "logvalue.h"
#include "policy.h"
#include "session.h"
#include "spf_check.h"

#define MAX_ROUNDS 64 /* fetch rounds per message: the table's size bounds them anyway */

struct smtpd_authres {
    struct ar_dns dns;
    struct dkim_verify *dkim;
    struct dmarc_check dmarc;
    struct spf_check_outcome spf;
    int spf_wanted, spf_done, dmarc_done;
    int rounds;
};

int smtpd_authres_init(const struct pm_config *cfg)
{
    if (spf_check_init(cfg->hostname) < 0 || dkim_verify_init() < 0) {
        pm_log(PM_ERR, "event=startup_failed reason=\"SPF or DKIM library set-up failed\"");
        return -1;
    }
    if (access(SMTPD_AUTHRES_PSL, R_OK) != 0 || dmarc_check_init(SMTPD_AUTHRES_PSL) < 0)
        pm_log(PM_WARN, "event=psl_missing path=%s effect=\"organizational domains by the last two labels\"",
               SMTPD_AUTHRES_PSL);
    return 0;
}

int smtpd_authres_wanted(const struct smtpd_session *s)
{
    return s->mode == SMTPD_MODE_SMTP && !smtpd_policy_may_relay(s);
}

static void release(struct smtpd_session *s)
{
    struct smtpd_authres *a = s->authres;
    if (!a)
        return;
    s->authres = NULL;
    ar_dns_free(&a->dns);
    dkim_verify_free(a->dkim);
    free(a);
}

void smtpd_authres_cancel(struct smtpd_session *s) { release(s); }

/* The header section, contiguous in the message; *len its length. */
static char *header_section(struct evbuffer *msg, size_t *len)
{
    struct evbuffer_ptr end = evbuffer_search(msg, "\r\n\r\n", 4, NULL);
    *len = end.pos >= 0 ? (size_t)end.pos + 2 : evbuffer_get_length(msg);
    return (char *)evbuffer_pullup(msg, (ev_ssize_t)*len);
}

/* RFC 8601 5: an Authentication-Results: with our authserv-id that came with the message is
 * a forgery (or stale); it goes before anyone downstream trusts it. */
static int remove_forged(struct smtpd_session *s)
{
    size_t len;
    char *hdr = header_section(s->eom_msg, &len);
    if (!hdr || len == 0)
        return 0;
    char *copy = malloc(len);
    if (!copy)
        return 0;
    memcpy(copy, hdr, len);
    int removed = 0;
    size_t kept = ar_header_remove_ours(copy, len, s->srv->cfg->hostname, &removed);
    if (removed) {
        evbuffer_drain(s->eom_msg, len);
        evbuffer_prepend(s->eom_msg, copy, kept);
    }
    free(copy);
    return removed;
}

static void step(struct smtpd_session *s);

static void fetched(void *arg) { step(arg); }

static const char *dmarc_comment(const struct dmarc_check *c, const struct dmarc_check_outcome *o, char *buf,
                                 size_t size)
{
    if (c->from_state == -2)
        return "several From: addresses";
    if (c->from_state == -3)
        return "From: not readable";
    if (!o->policy_name[0])
        return NULL;
    snprintf(buf, size, "p=%s", o->policy_name);
    return buf;
}

/* Our header: SPF (unless not checked), each DKIM signature's result, DMARC. */
static void prepend_header(struct smtpd_session *s, const struct dkim_verify_sig *sigs, size_t nsigs,
                           const struct dmarc_check_outcome *dm)
{
    struct smtpd_authres *a = s->authres;
    struct ar_result r[2 + DKIM_VERIFY_MAX_SIGS];
    size_t n = 0;
    memset(r, 0, sizeof r);
    if (a->spf_wanted) {
        r[n].method = "spf";
        r[n].result = spf_check_result_name(a->spf.result);
        r[n].props[0].name = a->spf.helo_identity ? "smtp.helo" : "smtp.mailfrom";
        r[n].props[0].value = a->spf.helo_identity ? (s->helo ? s->helo : "") : s->txn.sender;
        if (!r[n].props[0].value[0])
            r[n].props[0].name = NULL;
        n++;
    }
    for (size_t i = 0; i < nsigs; i++, n++) {
        r[n].method = "dkim";
        r[n].result = dkim_verify_result_name(sigs[i].result);
        r[n].comment = sigs[i].result != DKIM_VERIFY_PASS && sigs[i].why[0] ? sigs[i].why : NULL;
        int p = 0;
        if (sigs[i].domain[0]) {
            r[n].props[p].name = "header.d";
            r[n].props[p++].value = sigs[i].domain;
        }
        if (sigs[i].selector[0]) {
            r[n].props[p].name = "header.s";
            r[n].props[p++].value = sigs[i].selector;
        }
        if (sigs[i].alg[0]) {
            r[n].props[p].name = "header.a";
            r[n].props[p++].value = sigs[i].alg;
        }
    }
    char comment[64];
    r[n].method = "dmarc";
    r[n].result = dmarc_check_result_name(dm->result);
    r[n].comment = dmarc_comment(&a->dmarc, dm, comment, sizeof comment);
    if (a->dmarc.from_domain[0]) {
        r[n].props[0].name = "header.from";
        r[n].props[0].value = a->dmarc.from_domain;
    }
    n++;
    char hdr[8192];
    size_t len = ar_header_format(s->srv->cfg->hostname, r, n, hdr, sizeof hdr);
    if (len)
        evbuffer_prepend(s->eom_msg, hdr, len);
}

/* All answers are in: the verdicts, the action, the header, the log line. */
static void finish(struct smtpd_session *s)
{
    struct smtpd_authres *a = s->authres;
    const struct pm_config *cfg = s->srv->cfg;
    struct dkim_verify_sig sigs[DKIM_VERIFY_MAX_SIGS];
    size_t nsigs = 0;
    dkim_verify_finish(a->dkim, &a->dns, sigs, DKIM_VERIFY_MAX_SIGS, &nsigs);
    struct dmarc_check_outcome dm;
    dmarc_check_evaluate(&a->dmarc, s->ip, a->spf_wanted ? &a->spf : NULL, sigs, nsigs, &dm);

    char reply[512] = "", why[PM_LOGV_SIZE] = "";
    const char *action = "accept";
    if (a->spf_wanted && a->spf.result == SPF_CHECK_FAIL && strcmp(cfg->smtpd.spf_fail_action, "reject") == 0) {
        action = "reject";
        snprintf(why, sizeof why, "spf_fail");
        snprintf(reply, sizeof reply, "550 5.7.23 SPF: %.200s does not permit %s to send its mail", a->spf.domain, s->ip);
    } else if (dm.result == DMARC_CHECK_FAIL && strcmp(cfg->smtpd.dmarc_action, "none") != 0 &&
               dm.policy != DMARC_POLICY_ASKS_NONE) {
        int reject = dm.policy == DMARC_POLICY_ASKS_REJECT && strcmp(cfg->smtpd.dmarc_action, "reject") == 0;
        action = reject ? "reject" : "quarantine";
        snprintf(why, sizeof why, "dmarc_%s", dm.policy_name);
        if (reject) {
            snprintf(reply, sizeof reply, "550 5.7.1 DMARC: the policy of %.200s rejects this message",
                     a->dmarc.from_domain);
        } else {
            char held[300];
            snprintf(held, sizeof held, "DMARC fail (p=%s) for %.200s", dm.policy_name, a->dmarc.from_domain);
            free(s->txn.hold_reason);
            s->txn.hold_reason = strdup(held);
            s->txn.hold = 1;
        }
    }
    char dkim_word[16], v1[PM_LOGV_SIZE];
    snprintf(dkim_word, sizeof dkim_word, "%s", dkim_verify_result_name(sigs[0].result));
    for (size_t i = 1; i < nsigs; i++)
        if (sigs[i].result == DKIM_VERIFY_PASS)
            snprintf(dkim_word, sizeof dkim_word, "pass");
    pm_log(PM_INFO, "event=authres client=%s spf=%s dkim=%s dmarc=%s from_domain=%s action=%s dns_lookups=%zu%s%s",
           s->peer, a->spf_wanted ? spf_check_result_name(a->spf.result) : "-", dkim_word,
           dmarc_check_result_name(dm.result), PM_LV(v1, a->dmarc.from_domain[0] ? a->dmarc.from_domain : "-"), action,
           a->dns.asked, why[0] ? " reason=" : "", why);
    if (reply[0]) {
        release(s);
        smtpd_eom_refuse(s, why, reply);
        return;
    }
    prepend_header(s, sigs, nsigs, &dm);
    release(s);
    smtpd_eom_continue(s);
}

/* Runs the checks over what is known; fetches what they want; finishes when nothing more is
 * wanted. Each pass either starts lookups (and waits) or settles something, so it ends. */
static void step(struct smtpd_session *s)
{
    struct smtpd_authres *a = s->authres;
    while (a->rounds++ < MAX_ROUNDS) {
        if (a->spf_wanted && !a->spf_done)
            a->spf_done = spf_check_run(&a->dns, s->ip, s->helo, s->txn.sender, &a->spf);
        if (!a->dmarc_done)
            a->dmarc_done = dmarc_check_lookup(&a->dmarc, &a->dns);
        if (ar_dns_fetch(&a->dns, fetched, s) > 0)
            return;
        if ((!a->spf_wanted || a->spf_done) && a->dmarc_done)
            break;
    }
    if (a->spf_wanted && !a->spf_done)
        a->spf.result = SPF_CHECK_TEMPERROR;
    finish(s);
}

void smtpd_authres_start(struct smtpd_session *s)
{
    const struct pm_config *cfg = s->srv->cfg;
    if (!cfg->smtpd.verify_inbound) {
        remove_forged(s);
        smtpd_eom_continue(s);
        return;
    }
    struct smtpd_authres *a = calloc(1, sizeof *a);
    if (!a) {
        remove_forged(s);
        smtpd_eom_continue(s);
        return;
    }
    s->authres = a;
    ar_dns_init(&a->dns, s->srv, pm_mono_ms() + (uint64_t)cfg->smtpd.auth_dns_timeout * 1000);
    a->spf_wanted = strcmp(cfg->smtpd.spf_fail_action, "none") != 0;
    /* DKIM sees the header section as it came: a signature may cover what is removed next. */
    size_t hlen;
    const char *hdr = header_section(s->eom_msg, &hlen);
    a->dkim = dkim_verify_begin(hdr ? hdr : "", hdr ? hlen : 0, s->eom_msg, hlen + 2, &a->dns);
    dmarc_check_start(&a->dmarc, hdr ? hdr : "", hdr ? hlen : 0);
    remove_forged(s);
    step(s);
}
