#include "mailfront.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "log.h"
#include "mailroot.h"
#include "passdb.h"
#include "runas.h"
#include "tls_server.h"
#include "tlspem.h"

static void *helper_open(void *arg) { return pm_passdb_open(arg); }

static void helper_answer(const struct pm_priv_msg *req, struct pm_priv_msg *reply, void *state)
{
    reply->result = -1;
    if (req->op == PM_PRIV_AUTH && state)
        reply->result = pm_passdb_check(state, req->a ? req->a : "", req->b ? req->b : "");
}

/* Thousands of sessions need thousands of descriptors: take what the hard limit allows (the
 * sandbox inherits it), as smtpd does; a soft limit of 1,024 would stop accepting there. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
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

/* At least one listener must be up: implicit TLS alone without a certificate is a dead
 * service. */
static int open_listeners(struct pm_mailfront *p, const struct pm_listenlist *listen, const char *tls_mode)
{
    if (pm_listeners_open(listen, tls_mode, p->cert_pem != NULL, 128, &p->fds, &p->nfds) < 0)
        return -1;
    if (p->nfds == 0) {
        pm_log(PM_ERR, "event=startup_failed reason=\"no listener\"");
        return -1;
    }
    return 0;
}

/* The store is shared with delivery through its group: the sandbox reads, renames and
 * deletes there as its own user (runas.c). */
static int prepare_store(struct pm_mailfront *p)
{
    if (pm_runas_sandbox(p->cfg, p->name, &p->sandbox, p->mail_dir, sizeof p->mail_dir) < 0)
        return -1;
    return pm_mailroot_prepare(p->cfg, p->sandbox.user, p->mail_dir, sizeof p->mail_dir, p->mail_root,
                               sizeof p->mail_root);
}

int pm_mailfront_init(struct pm_mailfront *p, const struct pm_config *cfg, const char *name,
                      const struct pm_listenlist *listen, const char *tls_mode)
{
    memset(p, 0, sizeof *p);
    p->cfg = cfg;
    p->name = name;
    raise_fd_limit();
    char err[512], v[PM_LOGV_SIZE];
    int want_tls_mode = 0;
    for (int i = 0; i < listen->n; i++)
        want_tls_mode |= strcmp(listen->v[i].mode, tls_mode) == 0;
    /* TLS is optional: without a pair there is no STARTTLS and implicit-TLS listeners are
     * skipped. */
    if (!have_tls_config(cfg)) {
        if (want_tls_mode)
            pm_log(PM_ERR, "event=tls_unconfigured reason=\"%s listener without tls.certificate/tls.key\"", tls_mode);
    } else if (read_tls(cfg, &p->cert_pem, &p->key_pem, err, sizeof err) < 0) {
        pm_log(PM_ERR, "event=tls_error error=%s", PM_LV(v, err));
        return -1;
    }
    if (prepare_store(p) < 0 || open_listeners(p, listen, tls_mode) < 0)
        return -1;
    /* Forked now: this process never reads the users file. */
    if (cfg->users_file && cfg->users_file[0])
        p->helper_files[0] = cfg->users_file;
    snprintf(p->helper_name, sizeof p->helper_name, "%s-passdb", name);
    p->helper_spec = (struct pm_helper_spec){.name = p->helper_name, .open = helper_open, .answer = helper_answer,
                                             .arg = cfg->users_file, .files = p->helper_files,
                                             .user = PM_PRIV_HELPER_USER, .max_pending = PM_MAILFRONT_AUTH_IN_FLIGHT};
    p->helper = pm_priv_helper_start(&p->helper_spec);
    p->helpers[0] = p->helper;
    return p->helper ? 0 : -1;
}

void pm_mailfront_free(struct pm_mailfront *p)
{
    pm_priv_helper_stop(p->helper);
    pm_listeners_close(p->fds, p->nfds);
    pm_tls_pem_free(p->cert_pem);
    pm_tls_pem_free(p->key_pem);
    memset(p, 0, sizeof *p);
}

static struct pm_priv_helper *route(const struct pm_priv_msg *req, void *arg)
{
    struct pm_mailfront *p = arg;
    return req->op == PM_PRIV_AUTH ? p->helper : NULL;
}

static void answer(const struct pm_priv_msg *req, struct pm_priv_msg *reply, void *arg)
{
    struct pm_mailfront *p = arg;
    reply->result = -1;
    if (req->op == PM_PRIV_MAILBOX_REPAIR) { /* root's job, done here: nothing secret involved */
        pm_mailroot_answer_repair(p->mail_dir, p->sandbox.user, req, reply);
        return;
    }
    pm_log(PM_WARN, "event=sandbox_request_refused op=%u", (unsigned)req->op);
}

static void reload(int sandbox_fd, void *arg)
{
    struct pm_mailfront *p = arg;
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

int pm_mailfront_supervise(struct pm_mailfront *p, int (*sandbox_main)(int parent_fd, void *arg))
{
    struct pm_sandbox_spec spec = {
        .name = p->name,
        .sandbox = p->sandbox,
        .sandbox_main = sandbox_main,
        .answer = answer,
        .route = route,
        .helpers = p->helpers,
        .reload = reload,
        .arg = p,
        .listeners = p->fds,
        .nlisteners = p->nfds,
    };
    return pm_privsep_supervise(&spec);
}
