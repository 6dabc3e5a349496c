#include "parent.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "lookup.h"
#include "metrics.h"
#include "net.h"
#include "runas.h"
#include "tls_server.h"
#include "tlspem.h"

#define HELPER_TIMEOUT_MS 10000 /* a password hash takes milliseconds; this is a stuck helper */

static void *helper_open(void *arg) { return smtpd_lookup_open(arg); }

static void helper_answer(const struct pm_priv_msg *req, struct pm_priv_msg *reply, void *state)
{
    smtpd_lookup_answer(state, req, reply);
}

/* Reads the pair (the key may sit in the certificate file) and checks that it makes a
 * context. 0, or -1 with err. */
static int read_tls(const struct pm_config *cfg, char **cert, char **key, char *err, size_t errsize)
{
    const char *keyfile = cfg->tls.key && cfg->tls.key[0] ? cfg->tls.key : cfg->tls.certificate;
    return pm_tls_read_pair(cfg->tls.certificate, keyfile, cert, key, err, errsize);
}

int smtpd_parent_init(struct smtpd_parent *p, struct pm_config *cfg)
{
    memset(p, 0, sizeof *p);
    p->cfg = cfg;
    char err[512], v[PM_LOGV_SIZE];
    /* The sandboxes' user, seccomp profile and chroot (an empty directory that stays root's;
     * pm_privsep_drop makes it) are runas.c's "smtpd" row. */
    if (pm_runas_sandbox(cfg, "smtpd", &p->sandbox, p->empty_dir, sizeof p->empty_dir) < 0) {
        pm_log(PM_ERR, "event=startup_failed reason=\"no runas row for smtpd\"");
        return -1;
    }
    if (cfg->tls.certificate && cfg->tls.certificate[0] &&
        read_tls(cfg, &p->cert_pem, &p->key_pem, err, sizeof err) < 0) {
        pm_log(PM_ERR, "event=tls_error error=%s", PM_LV(v, err));
        return -1;
    }
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    cpus = cpus < 1 ? 1 : cpus;
    p->nsandboxes = cfg->smtpd.sandboxes > 0 ? (int)cfg->smtpd.sandboxes
                                             : (int)(cpus < SMTPD_AUTO_SANDBOXES ? cpus : SMTPD_AUTO_SANDBOXES);
    p->nsandboxes = p->nsandboxes > SMTPD_TALLY_MAX ? SMTPD_TALLY_MAX : p->nsandboxes;
    p->listener_sets = p->nsandboxes;
    if (pm_listeners_open_sets(&cfg->smtpd.listen, "smtps", p->cert_pem != NULL, 1024, p->listener_sets, &p->fds,
                               &p->nfds) < 0) {
        if (p->nsandboxes == 1)
            return -1;
        /* No SO_REUSEPORT steering here (an old kernel): one sandbox, as before. */
        pm_log(PM_WARN, "event=sandboxes_reduced sandboxes=1 wanted=%d reason=\"no per-sandbox listeners\"",
               p->nsandboxes);
        p->nsandboxes = p->listener_sets = 1;
        if (pm_listeners_open(&cfg->smtpd.listen, "smtps", p->cert_pem != NULL, 1024, &p->fds, &p->nfds) < 0)
            return -1;
    }
    if (!(p->tally = smtpd_tally_new()))
        return -1;
    if (pm_metrics_share(p->nsandboxes) < 0) {
        pm_log(PM_ERR, "event=startup_failed reason=\"cannot map the sandboxes' metrics\"");
        return -1;
    }
    /* Forked now, before this process ever reads the users file (it never does). */
    int nfiles = 0;
    if (cfg->users_file && cfg->users_file[0])
        p->helper_files[nfiles++] = cfg->users_file;
    /* Both held (heldfile.h): the helper opens them as root and the parent passes a new
     * descriptor when one changes, so they may sit in a state_dir only root may enter. */
    if (cfg->aliases_file && cfg->aliases_file[0])
        p->helper_files[nfiles++] = cfg->aliases_file;
    p->lookup_spec = (struct pm_helper_spec){.name = "smtpd-lookup", .open = helper_open, .answer = helper_answer,
                                             .arg = cfg, .files = p->helper_files, .user = PM_PRIV_HELPER_USER};
    /* A hash keeps one core busy: one password helper per core uses them all, and the cap on
     * checks in flight is shared among them. */
    p->nauth = (int)(cpus < SMTPD_AUTH_HELPERS ? cpus : SMTPD_AUTH_HELPERS);
    p->auth_spec = p->lookup_spec;
    p->auth_spec.name = "smtpd-auth";
    p->auth_spec.max_pending = (SMTPD_AUTH_IN_FLIGHT + p->nauth - 1) / p->nauth;
    p->lookup = pm_priv_helper_start(&p->lookup_spec);
    p->helpers[0] = p->lookup;
    if (!p->lookup)
        return -1;
    for (int i = 0; i < p->nauth; i++) {
        if (!(p->auth[i] = pm_priv_helper_start(&p->auth_spec)))
            return -1;
        p->helpers[1 + i] = p->auth[i];
    }
    struct pm_priv_msg probe = {.op = PM_PRIV_RCPT_EXISTS, .a = ""}, answer = {0};
    pm_priv_helper_ask(p->lookup, &probe, &answer, HELPER_TIMEOUT_MS);
    pm_priv_msg_clear(&answer);
    if (answer.result < 0) {
        pm_log(PM_ERR, "event=startup_failed reason=\"users or aliases file not usable\"");
        return -1;
    }
    return 0;
}

void smtpd_parent_free(struct smtpd_parent *p)
{
    for (int i = 0; i < p->nauth; i++)
        pm_priv_helper_stop(p->auth[i]);
    pm_priv_helper_stop(p->lookup);
    pm_listeners_close(p->fds, p->nfds * (p->listener_sets > 1 ? p->listener_sets : 1));
    smtpd_tally_free(p->tally);
    pm_tls_pem_free(p->cert_pem);
    pm_tls_pem_free(p->key_pem);
    memset(p, 0, sizeof *p);
}

struct pm_priv_helper *smtpd_parent_route(const struct pm_priv_msg *req, void *arg)
{
    struct smtpd_parent *p = arg;
    switch (req->op) {
    case PM_PRIV_AUTH: { /* the least busy password helper */
        struct pm_priv_helper *best = p->auth[0];
        for (int i = 1; i < p->nauth; i++)
            if (pm_priv_helper_pending(p->auth[i]) < pm_priv_helper_pending(best))
                best = p->auth[i];
        return best;
    }
    case PM_PRIV_RCPT_EXISTS:
    case PM_PRIV_SENDER_OK:
        return p->lookup;
    default:
        return NULL; /* smtpd_parent_answer refuses it */
    }
}

void smtpd_parent_answer(const struct pm_priv_msg *req, struct pm_priv_msg *reply, void *arg)
{
    (void)arg;
    reply->result = -1;
    pm_log(PM_WARN, "event=sandbox_request_refused op=%u", (unsigned)req->op);
}

void smtpd_parent_reload(int sandbox_fd, void *arg)
{
    struct smtpd_parent *p = arg;
    char err[512], v[PM_LOGV_SIZE];
    char *cert, *key;
    if (!p->cert_pem)
        return; /* started without TLS: no listener was opened for it */
    if (read_tls(p->cfg, &cert, &key, err, sizeof err) < 0) {
        pm_log(PM_ERR, "event=tls_reload result=fail error=%s", PM_LV(v, err));
        return; /* the sandbox keeps the pair it has */
    }
    if (pm_tls_keep_and_push(sandbox_fd, &p->cert_pem, &p->key_pem, cert, key) < 0)
        pm_log(PM_ERR, "event=tls_reload result=fail error=\"cannot reach the sandbox\"");
}

void smtpd_parent_exited(int index, void *arg)
{
    struct smtpd_parent *p = arg;
    smtpd_tally_set(p->tally, index, 0); /* its sessions are gone with it */
    pm_metrics_clear_gauges(index);
}
