/* postmesh-delivery: the local delivery service. A privileged parent (parent.h) prepares
 * the mail store and answers "is this a local user?"; one unprivileged job worker process
 * (worker.c) takes WORKER_DELIVERY jobs from the queue and writes the Maildir copies. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bus.h"
#include "config.h"
#include "log.h"
#include "mailroot.h"
#include "maildir.h"
#include "parent.h"
#include "postmaster.h"
#include "privchan.h"
#include "privsep.h"
#include "runas.h"
#include "service.h"
#include "users.h"

#define HELPER_TIMEOUT_MS 10000

/* ------------------------------------------------------------------ the helper's side */
struct users_state {
    const char *path;
    struct pm_users *users; /* NULL while unreadable: answers are -1 (TEMPFAIL) */
    time_t checked;
};

static void *helper_open(void *arg)
{
    struct users_state *u = calloc(1, sizeof *u);
    if (u)
        u->path = arg;
    return u;
}

/* Loads or re-reads the file (at most once a second). */
static void refresh(struct users_state *u)
{
    time_t now = time(NULL);
    if (now == u->checked)
        return;
    u->checked = now;
    char err[512], ev[PM_LOGV_SIZE];
    if (!u->users) {
        if (!(u->users = pm_users_load(u->path, err, sizeof err)))
            pm_log(PM_ERR, "event=users_error error=%s", PM_LV(ev, err));
    } else if (pm_users_reload_if_changed(&u->users, err, sizeof err) < 0) {
        pm_log(PM_ERR, "event=users_error error=%s", PM_LV(ev, err)); /* keeps the previous version */
    }
}

static void helper_answer(const struct pm_priv_msg *req, struct pm_priv_msg *reply, void *state)
{
    struct users_state *u = state;
    reply->result = -1;
    if (req->op != PM_PRIV_RCPT_EXISTS || !u)
        return;
    refresh(u);
    if (u->users)
        reply->result = pm_users_exists(u->users, req->a ? req->a : "");
}

/* ------------------------------------------------------------------ the parent */
static void answer(const struct pm_priv_msg *req, struct pm_priv_msg *reply, void *arg)
{
    struct delivery_parent *p = arg;
    reply->result = -1;
    if (req->op == PM_PRIV_MAILBOX_REPAIR) { /* root's job, done here: nothing secret involved */
        pm_mailroot_answer_repair(p->mail_dir, p->sandbox.user, req, reply);
        return;
    }
    if (req->op != PM_PRIV_RCPT_EXISTS) {
        pm_log(PM_WARN, "event=sandbox_request_refused op=%u", (unsigned)req->op);
        return;
    }
    /* Without an alias (the queue would have expanded it), postmaster's mail stays in its
     * own mailbox: it exists with or without a users entry (RFC 5321 4.5.1). */
    if (pm_postmaster_is(p->cfg, req->a)) {
        reply->result = 1;
        return;
    }
    pm_priv_helper_ask(p->helper, req, reply, HELPER_TIMEOUT_MS);
}

/* The store is shared with pop3d through its group; the worker is delivery's own user. */
static int prepare_store(struct delivery_parent *p)
{
    if (pm_runas_sandbox(p->cfg, "delivery", &p->sandbox, p->mail_dir, sizeof p->mail_dir) < 0)
        return -1;
    return pm_mailroot_prepare(p->cfg, p->sandbox.user, p->mail_dir, sizeof p->mail_dir, p->mail_root,
                               sizeof p->mail_root);
}

#ifndef POSTMESH_NO_TEST_HOOKS
/* POSTMESH_TEST_DELIVERY_STALL=<seconds>[:tmp|:new] — test-only: sleep after the tmp/ file
 * is synced (tmp) or after it is linked into new/ (new, the default), before the result is
 * reported, so an integration test can SIGKILL the worker in the middle of a job. A release
 * build (-DPOSTMESH_NO_TEST_HOOKS) has no such switch. */
static void read_test_stall(void)
{
    const char *e = getenv("POSTMESH_TEST_DELIVERY_STALL");
    if (!e || !*e)
        return;
    unsigned seconds = (unsigned)strtoul(e, NULL, 10);
    int at_new = strstr(e, ":tmp") == NULL;
    delivery_maildir_set_stall(seconds, at_new);
    pm_log(PM_WARN, "event=test_stall seconds=%u at=%s", seconds, at_new ? "new" : "tmp");
}
#else
static void read_test_stall(void) {}
#endif

int main(int argc, char **argv)
{
    struct pm_config cfg;
    /* Bus keys (ours, the queue's) are read now: the worker connects from inside the store. */
    int init_rc = pm_service_init(argc, argv, "delivery", PM_SERVICE_BUS, &cfg);
    if (init_rc != 0)
        return init_rc;
    read_test_stall(); /* the worker inherits it */

    struct delivery_parent parent = {.cfg = &cfg};
    int rc = 1;
    if (prepare_store(&parent) == 0) {
        /* Forked now: this process never reads the users file. */
        if (cfg.users_file && cfg.users_file[0])
            parent.helper_files[0] = cfg.users_file;
        parent.helper_spec = (struct pm_helper_spec){.name = "delivery-users", .open = helper_open,
                                                     .answer = helper_answer, .arg = cfg.users_file,
                                                     .files = parent.helper_files, .user = PM_PRIV_HELPER_USER};
        parent.helper = pm_priv_helper_start(&parent.helper_spec);
    }
    if (parent.helper) {
        struct pm_sandbox_spec spec = {
            .name = "delivery",
            .sandbox = parent.sandbox,
            .sandbox_main = delivery_worker_main,
            .answer = answer,
            .arg = &parent,
        };
        rc = pm_privsep_supervise(&spec);
    }
    pm_priv_helper_stop(parent.helper);
    pm_config_free(&cfg);
    return rc;
}
