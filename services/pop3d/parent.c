#include "parent.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "mailroot.h"
#include "net.h"
#include "passdb.h"
#include "privsep.h"
#include "runas.h"
#include "tls_server.h"
#include "tlspem.h"

static void *helper_open(void *arg) { return pop3_passdb_open(arg); }

static void helper_answer(const struct pm_priv_msg *req, struct pm_priv_msg *reply, void *state)
{
    reply->result = -1;
    if (req->op == PM_PRIV_AUTH && state)
        reply->result = pop3_passdb_check(state, req->a ? req->a : "", req->b ? req->b : "");
}

static int have_tls_config(const struct pm_config *cfg)
{
    return cfg->tls.certificate && cfg->tls.certificate[0] && cfg->tls.key && cfg->tls.key[0];
}

/* Reads the pair and checks that it makes a context. 0, or -1 with err. */
static int read_tls(const struct pm_config *cfg, char **cert, char **key, char *err, size_t errsize)
{
    return pm_tls_read_pair(cfg->tls.certificate, cfg->tls.key, cert, key, err, errsize);
}

/* At least one listener must be up: pop3s alone without a certificate is a dead service. */
static int open_listeners(struct pop3_parent *p)
{
    if (pm_listeners_open(&p->cfg->pop3d.listen, "pop3s", p->cert_pem != NULL, 128, &p->fds, &p->nfds) < 0)
        return -1;
    if (p->nfds == 0) {
        pm_log(PM_ERR, "event=startup_failed reason=\"no listener\"");
        return -1;
    }
    return 0;
}

/* The store is shared with delivery through its group: the sandbox reads, renames and
 * deletes there as its own user (runas.c). */
static int prepare_store(struct pop3_parent *p)
{
    if (pm_runas_sandbox(p->cfg, "pop3d", &p->sandbox, p->mail_dir, sizeof p->mail_dir) < 0)
        return -1;
    return pm_mailroot_prepare(p->cfg, p->sandbox.user, p->mail_dir, sizeof p->mail_dir, p->mail_root,
                               sizeof p->mail_root);
}

int pop3_parent_init(struct pop3_parent *p, const struct pm_config *cfg)
{
    memset(p, 0, sizeof *p);
    p->cfg = cfg;
    char err[512], v[PM_LOGV_SIZE];
    int want_pop3s = 0;
    for (int i = 0; i < cfg->pop3d.listen.n; i++)
        want_pop3s |= strcmp(cfg->pop3d.listen.v[i].mode, "pop3s") == 0;
    /* TLS is optional: without a pair there is no STLS and pop3s listeners are skipped. */
    if (!have_tls_config(cfg)) {
        if (want_pop3s)
            pm_log(PM_ERR, "event=tls_unconfigured reason=\"pop3s listener without tls.certificate/tls.key\"");
    } else if (read_tls(cfg, &p->cert_pem, &p->key_pem, err, sizeof err) < 0) {
        pm_log(PM_ERR, "event=tls_error error=%s", PM_LV(v, err));
        return -1;
    }
    if (prepare_store(p) < 0 || open_listeners(p) < 0)
        return -1;
    /* Forked now: this process never reads the users file. */
    if (cfg->users_file && cfg->users_file[0])
        p->helper_files[0] = cfg->users_file;
    p->helper_spec = (struct pm_helper_spec){.name = "pop3d-passdb", .open = helper_open, .answer = helper_answer,
                                             .arg = cfg->users_file, .files = p->helper_files,
                                             .user = PM_PRIV_HELPER_USER, .max_pending = POP3_AUTH_IN_FLIGHT};
    p->helper = pm_priv_helper_start(&p->helper_spec);
    p->helpers[0] = p->helper;
    return p->helper ? 0 : -1;
}

void pop3_parent_free(struct pop3_parent *p)
{
    pm_priv_helper_stop(p->helper);
    pm_listeners_close(p->fds, p->nfds);
    pm_tls_pem_free(p->cert_pem);
    pm_tls_pem_free(p->key_pem);
    memset(p, 0, sizeof *p);
}

struct pm_priv_helper *pop3_parent_route(const struct pm_priv_msg *req, void *arg)
{
    struct pop3_parent *p = arg;
    return req->op == PM_PRIV_AUTH ? p->helper : NULL;
}

void pop3_parent_answer(const struct pm_priv_msg *req, struct pm_priv_msg *reply, void *arg)
{
    struct pop3_parent *p = arg;
    reply->result = -1;
    if (req->op == PM_PRIV_MAILBOX_REPAIR) { /* root's job, done here: nothing secret involved */
        pm_mailroot_answer_repair(p->mail_dir, p->sandbox.user, req, reply);
        return;
    }
    pm_log(PM_WARN, "event=sandbox_request_refused op=%u", (unsigned)req->op);
}

void pop3_parent_reload(int sandbox_fd, void *arg)
{
    struct pop3_parent *p = arg;
    char err[512], v[PM_LOGV_SIZE];
    char *cert, *key;
    if (!have_tls_config(p->cfg))
        return;
    if (read_tls(p->cfg, &cert, &key, err, sizeof err) < 0) {
        pm_log(PM_ERR, "event=tls_error error=%s", PM_LV(v, err)); /* the sandbox keeps its pair */
        return;
    }
    if (pm_tls_keep_and_push(sandbox_fd, &p->cert_pem, &p->key_pem, cert, key) < 0)
        pm_log(PM_ERR, "event=tls_error error=\"cannot reach the sandbox\"");
}
