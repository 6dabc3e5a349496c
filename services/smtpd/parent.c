#include "parent.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "lookup.h"
#include "net.h"
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

/* The chroot: an empty directory only root can write to. */
static int make_empty_dir(struct smtpd_parent *p)
{
    pm_config_state_path(p->cfg, "empty", p->empty_dir, sizeof p->empty_dir);
    if (geteuid() != 0)
        return 0;
    if (mkdir(p->cfg->state_dir, 0755) < 0 && errno != EEXIST)
        return -1;
    if (mkdir(p->empty_dir, 0755) < 0 && errno != EEXIST)
        return -1;
    return chown(p->empty_dir, 0, 0) == 0 && chmod(p->empty_dir, 0755) == 0 ? 0 : -1;
}

int smtpd_parent_init(struct smtpd_parent *p, struct pm_config *cfg)
{
    memset(p, 0, sizeof *p);
    p->cfg = cfg;
    char err[512], v[PM_LOGV_SIZE];
    if (make_empty_dir(p) < 0) {
        pm_log(PM_ERR, "event=startup_failed reason=\"cannot prepare %s: %s\"", p->empty_dir, strerror(errno));
        return -1;
    }
    if (cfg->tls.certificate && cfg->tls.certificate[0] &&
        read_tls(cfg, &p->cert_pem, &p->key_pem, err, sizeof err) < 0) {
        pm_log(PM_ERR, "event=tls_error error=%s", PM_LV(v, err));
        return -1;
    }
    if (pm_listeners_open(&cfg->smtpd.listen, "smtps", p->cert_pem != NULL, 1024, &p->fds, &p->nfds) < 0)
        return -1;
    /* Forked now, before this process ever reads the users file (it never does). */
    p->helper_spec = (struct pm_helper_spec){.name = "smtpd-lookup", .open = helper_open,
                                             .answer = helper_answer, .arg = cfg};
    p->helper = pm_priv_helper_start(&p->helper_spec);
    if (!p->helper)
        return -1;
    struct pm_priv_msg probe = {.op = PM_PRIV_RCPT_EXISTS, .a = ""}, answer = {0};
    pm_priv_helper_ask(p->helper, &probe, &answer, HELPER_TIMEOUT_MS);
    pm_priv_msg_clear(&answer);
    if (answer.result < 0) {
        pm_log(PM_ERR, "event=startup_failed reason=\"users or aliases file not usable\"");
        return -1;
    }
    return 0;
}

void smtpd_parent_free(struct smtpd_parent *p)
{
    pm_priv_helper_stop(p->helper);
    pm_listeners_close(p->fds, p->nfds);
    pm_tls_pem_free(p->cert_pem);
    pm_tls_pem_free(p->key_pem);
    memset(p, 0, sizeof *p);
}

void smtpd_parent_answer(const struct pm_priv_msg *req, struct pm_priv_msg *reply, void *arg)
{
    struct smtpd_parent *p = arg;
    reply->result = -1;
    if (req->op != PM_PRIV_AUTH && req->op != PM_PRIV_RCPT_EXISTS && req->op != PM_PRIV_SENDER_OK) {
        pm_log(PM_WARN, "event=worker_request_refused op=%u", (unsigned)req->op);
        return;
    }
    pm_priv_helper_ask(p->helper, req, reply, HELPER_TIMEOUT_MS);
}

void smtpd_parent_reload(int worker_fd, void *arg)
{
    struct smtpd_parent *p = arg;
    char err[512], v[PM_LOGV_SIZE];
    char *cert, *key;
    if (!p->cert_pem)
        return; /* started without TLS: no listener was opened for it */
    if (read_tls(p->cfg, &cert, &key, err, sizeof err) < 0) {
        pm_log(PM_ERR, "event=tls_reload result=fail error=%s", PM_LV(v, err));
        return; /* the worker keeps the pair it has */
    }
    if (pm_tls_keep_and_push(worker_fd, &p->cert_pem, &p->key_pem, cert, key) < 0)
        pm_log(PM_ERR, "event=tls_reload result=fail error=\"cannot reach the worker\"");
}
