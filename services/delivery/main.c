/* postmesh-delivery: the local delivery service. A privileged parent (parent.h) prepares
 * the mail store and answers "is this a local user?"; one unprivileged worker (worker.c)
 * takes WORKER_DELIVERY jobs from the queue and writes the Maildir copies. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bus.h"
#include "config.h"
#include "log.h"
#include "mailroot.h"
#include "maildir.h"
#include "parent.h"
#include "privchan.h"
#include "privsep.h"
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
        char av[PM_LOGV_SIZE];
        reply->result = pm_mailroot_repair(p->mail_dir, req->a ? req->a : "", DELIVERY_WORKER_USER);
        pm_log(reply->result > 0 ? PM_WARN : PM_INFO, "event=mailbox_repair address=%s fixed=%d",
               PM_LV(av, req->a ? req->a : ""), (int)reply->result);
        return;
    }
    if (req->op != PM_PRIV_RCPT_EXISTS) {
        pm_log(PM_WARN, "event=worker_request_refused op=%u", (unsigned)req->op);
        return;
    }
    pm_priv_helper_ask(p->helper, req, reply, HELPER_TIMEOUT_MS);
}

/* The store belongs to vmail, the only user that writes there. */
static int prepare_store(struct delivery_parent *p)
{
    int root = geteuid() == 0;
    pm_config_state_path(p->cfg, "mail", p->mail_dir, sizeof p->mail_dir);
    pm_mailroot_init(p->cfg, root, p->mail_root, sizeof p->mail_root);
    if ((mkdir(p->cfg->state_dir, 0755) < 0 && errno != EEXIST) || (mkdir(p->mail_dir, 0700) < 0 && errno != EEXIST)) {
        pm_log(PM_ERR, "event=startup_failed reason=\"cannot create %s: %s\"", p->mail_dir, strerror(errno));
        return -1;
    }
    return pm_privsep_chown_tree(p->mail_dir, DELIVERY_WORKER_USER) < 0 ? -1 : 0;
}

/* POSTMESH_TEST_DELIVERY_STALL=<seconds>[:tmp|:new] — test-only: sleep after the tmp/ file
 * is synced (tmp) or after it is linked into new/ (new, the default), before the result is
 * reported, so an integration test can SIGKILL the worker in the middle of a job. */
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

int main(int argc, char **argv)
{
    const char *path = pm_config_default_path();
    int opt;
    while ((opt = getopt(argc, argv, "c:")) != -1) {
        if (opt != 'c') {
            fprintf(stderr, "usage: %s [-c config]\n", argv[0]);
            return 2;
        }
        path = optarg;
    }
    pm_log_init("delivery");
    struct pm_config cfg;
    char err[1024];
    if (pm_config_load(path, &cfg, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    pm_log_set_debug(cfg.debug);
    /* CurveZMQ identity and the queue's key now: the worker connects from inside the store. */
    pm_bus_security_init(&cfg, "delivery");
    pm_bus_security_preload("queue");
    signal(SIGPIPE, SIG_IGN);
    read_test_stall(); /* the worker inherits it */

    struct delivery_parent parent = {.cfg = &cfg};
    int rc = 1;
    if (prepare_store(&parent) == 0) {
        /* Forked now: this process never reads the users file. */
        parent.helper_spec = (struct pm_helper_spec){.name = "delivery-users", .open = helper_open,
                                                     .answer = helper_answer, .arg = cfg.users_file};
        parent.helper = pm_priv_helper_start(&parent.helper_spec);
    }
    if (parent.helper) {
        struct pm_worker_spec spec = {
            .name = "delivery",
            .sandbox = {.user = DELIVERY_WORKER_USER, .chroot_dir = parent.mail_dir},
            .worker_main = delivery_worker_main,
            .answer = answer,
            .arg = &parent,
        };
        rc = pm_privsep_supervise(&spec);
    }
    pm_priv_helper_stop(parent.helper);
    pm_config_free(&cfg);
    return rc;
}
