/* `postmesh run`: every installed service as a child, in the foreground.
 *
 * Which services, in which order: the rows of common/services.def that it starts. Start: the
 * core services (start CORE: the queue, the resolver) first; the others once the core ones
 * logged event=started (or after START_WAIT), so smtpd never accepts mail the queue cannot take.
 * A child that exits is restarted after a backoff that doubles from BACKOFF_MIN to
 * BACKOFF_MAX and starts over once a run lasted STABLE_AFTER.
 * Stop (SIGTERM/SIGINT): SIGTERM to the front ends and workers, then to the core once they
 * are gone; SIGKILL to whatever is left after STOP_GRACE; a second signal kills at once. */
#include <errno.h>
#include <event2/event.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bindir.h"
#include "child.h"
#include "cli.h"
#include "clock.h"
#include "log.h"
#include "privsep.h"
#include "selfsigned.h"
#include "services.h"

#define BACKOFF_MIN 0.5
#define BACKOFF_MAX 30.0
#define STABLE_AFTER 60.0
#define START_WAIT 10.0
#define STOP_GRACE 10.0
#define KILL_WAIT 5.0  /* after SIGKILL, give up waiting for children */
#define DRAIN_WAIT 2.0 /* after the last exit, for the children's last log lines */
#define MAX_CHILDREN 16

enum phase { PHASE_CORE, PHASE_REST, PHASE_RUNNING, PHASE_STOPPING, PHASE_DONE };

struct supervisor;

struct child {
    struct supervisor *sv;
    const struct pm_svc *svc;
    char path[PATH_MAX];
    pid_t pid;          /* 0 while not running */
    unsigned generation;
    double started_at;
    double backoff;
    int ready;          /* this run logged event=started */
    int settled;        /* started or exited at least once: startup may go on */
    int spawned;        /* spawned at least once */
    struct event *restart_timer;
};

struct supervisor {
    struct event_base *base;
    const char *config_path;
    struct child v[MAX_CHILDREN];
    int n;
    enum phase phase;
    int core_stopping;   /* SIGTERM sent to the core services */
    int killed;          /* SIGKILL sent */
    double stop_began;
    double drain_until;  /* PHASE_DONE: wait for the children's last lines until then */
    struct event *sig_term, *sig_int, *sig_chld, *timer;
};

static struct timeval tv_of(double secs)
{
    struct timeval tv = {(time_t)secs, (suseconds_t)((secs - (double)(time_t)secs) * 1e6)};
    return tv;
}

static void advance(struct supervisor *sv);

static void on_started(void *arg, unsigned generation)
{
    struct child *c = arg;
    if (generation != c->generation || !c->pid)
        return;
    c->ready = c->settled = 1;
    pm_log(PM_DEBUG, "event=ready svc=%s pid=%d", c->svc->name, (int)c->pid);
    advance(c->sv);
}

static void schedule_restart(struct child *c, double ran);

static void spawn(struct child *c)
{
    c->generation++;
    c->ready = 0;
    c->spawned = 1;
    c->started_at = pm_mono_s();
    c->pid = cli_child_spawn(c->sv->base, c->path, c->sv->config_path, on_started, c, c->generation);
    if (c->pid < 0) {
        pm_log(PM_ERR, "event=spawn_failed svc=%s path=%s error=\"%s\"", c->svc->name, c->path, strerror(errno));
        c->pid = 0;
        c->settled = 1;
        schedule_restart(c, 0);
        return;
    }
    pm_log(PM_INFO, "event=spawn svc=%s pid=%d", c->svc->name, (int)c->pid);
}

static void on_restart(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct child *c = arg;
    if (c->sv->phase < PHASE_STOPPING && !c->pid)
        spawn(c);
}

static void schedule_restart(struct child *c, double ran)
{
    if (ran >= STABLE_AFTER)
        c->backoff = BACKOFF_MIN;
    double delay = c->backoff;
    c->backoff = c->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : c->backoff * 2;
    pm_log(PM_INFO, "event=restart_scheduled svc=%s in=%.1fs", c->svc->name, delay);
    struct timeval tv = tv_of(delay);
    evtimer_add(c->restart_timer, &tv);
}

static int is_core(const struct child *c) { return c->svc->start == PM_SVC_START_CORE; }

/* core: 1 core services, 0 the others, -1 all. */
static int matches(const struct child *c, int core) { return core < 0 || is_core(c) == core; }

static int running(const struct supervisor *sv, int core)
{
    int n = 0;
    for (int i = 0; i < sv->n; i++)
        n += matches(&sv->v[i], core) && sv->v[i].pid;
    return n;
}

/* Services whose first start has not yet been decided (neither started nor exited). */
static int unsettled(const struct supervisor *sv, int core)
{
    int n = 0;
    for (int i = 0; i < sv->n; i++)
        n += matches(&sv->v[i], core) && !sv->v[i].settled;
    return n;
}

static void arm_timer(struct supervisor *sv, double secs)
{
    struct timeval tv = tv_of(secs);
    evtimer_add(sv->timer, &tv);
}

static void start_group(struct supervisor *sv, int core)
{
    for (int i = 0; i < sv->n; i++)
        if (is_core(&sv->v[i]) == core && !sv->v[i].spawned)
            spawn(&sv->v[i]);
}

/* Startup steps: core services, then the rest, then our own event=started. */
static void advance(struct supervisor *sv)
{
    if (sv->phase == PHASE_CORE && unsettled(sv, 1) == 0) {
        sv->phase = PHASE_REST;
        start_group(sv, 0);
        arm_timer(sv, START_WAIT);
    }
    if (sv->phase == PHASE_REST && unsettled(sv, -1) == 0) {
        sv->phase = PHASE_RUNNING;
        evtimer_del(sv->timer);
        int ready = 0;
        for (int i = 0; i < sv->n; i++)
            ready += sv->v[i].ready;
        pm_log(PM_INFO, "event=started services=%d ready=%d", sv->n, ready);
    }
}

static void finish(struct supervisor *sv)
{
    if (sv->phase == PHASE_DONE)
        return;
    sv->phase = PHASE_DONE;
    sv->drain_until = pm_mono_s() + DRAIN_WAIT;
    arm_timer(sv, 0); /* on_timer polls until the pipes are closed or drain_until */
}

static void signal_group(struct supervisor *sv, int core, int sig)
{
    for (int i = 0; i < sv->n; i++) {
        struct child *c = &sv->v[i];
        if (c->pid && matches(c, core)) {
            /* SIGTERM to the service, which stops its own workers; SIGKILL to its group. */
            kill(sig == SIGKILL ? -c->pid : c->pid, sig);
            if (sig == SIGKILL)
                pm_log(PM_WARN, "event=kill svc=%s pid=%d", c->svc->name, (int)c->pid);
        }
    }
}

/* Called during the stop after every exit: core services go when the others are gone. */
static void stop_progress(struct supervisor *sv)
{
    if (!sv->core_stopping && running(sv, 0) == 0) {
        sv->core_stopping = 1;
        signal_group(sv, 1, SIGTERM);
    }
    if (running(sv, -1) == 0)
        finish(sv);
}

static void begin_stop(struct supervisor *sv, int sig)
{
    pm_log(PM_INFO, "event=stopping signal=%s", sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
    sv->phase = PHASE_STOPPING;
    sv->stop_began = pm_mono_s();
    for (int i = 0; i < sv->n; i++)
        evtimer_del(sv->v[i].restart_timer);
    signal_group(sv, 0, SIGTERM);
    arm_timer(sv, STOP_GRACE);
    stop_progress(sv);
}

static void kill_all(struct supervisor *sv)
{
    sv->killed = 1;
    signal_group(sv, -1, SIGKILL);
    arm_timer(sv, KILL_WAIT);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct supervisor *sv = arg;
    switch (sv->phase) {
    case PHASE_CORE:
    case PHASE_REST:
        for (int i = 0; i < sv->n; i++)
            if (sv->v[i].spawned && !sv->v[i].settled)
                pm_log(PM_WARN, "event=start_slow svc=%s pid=%d waited=%.0fs", sv->v[i].svc->name,
                       (int)sv->v[i].pid, START_WAIT);
        for (int i = 0; i < sv->n; i++)
            sv->v[i].settled |= sv->v[i].spawned;
        advance(sv);
        break;
    case PHASE_STOPPING:
        if (!sv->killed) {
            kill_all(sv);
        } else {
            pm_log(PM_ERR, "event=stop_timeout running=%d", running(sv, -1));
            finish(sv);
        }
        break;
    case PHASE_DONE:
        if (cli_child_open_pipes() == 0 || pm_mono_s() >= sv->drain_until)
            event_base_loopbreak(sv->base);
        else
            arm_timer(sv, 0.05);
        break;
    default:
        break;
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct supervisor *sv = arg;
    /* A second signal means "now"; but one kill often reaches us twice at once (a wrapper
     * signalling both us and our process group), so only a later one counts. */
    if (sv->phase == PHASE_STOPPING && !sv->killed && pm_mono_s() - sv->stop_began >= 1.0) {
        pm_log(PM_WARN, "event=stopping_now signal=%s", sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
        kill_all(sv);
    } else if (sv->phase < PHASE_STOPPING) {
        begin_stop(sv, sig);
    }
}

static void describe_status(char *dst, size_t size, int status)
{
    if (WIFEXITED(status))
        snprintf(dst, size, "%d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(dst, size, "SIG%s", sigabbrev_np(WTERMSIG(status)) ? sigabbrev_np(WTERMSIG(status)) : "?");
    else
        snprintf(dst, size, "unknown");
}

static void on_sigchld(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct supervisor *sv = arg;
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        struct child *c = NULL;
        for (int i = 0; i < sv->n; i++)
            if (sv->v[i].pid == pid)
                c = &sv->v[i];
        if (!c)
            continue;
        char st[32];
        describe_status(st, sizeof st, status);
        double ran = pm_mono_s() - c->started_at;
        pm_log(sv->phase >= PHASE_STOPPING ? PM_INFO : PM_WARN, "event=exit svc=%s pid=%d status=%s ran=%.1fs",
               c->svc->name, (int)pid, st, ran);
        kill(-pid, SIGKILL); /* workers the service left behind in its process group */
        c->pid = 0;
        c->settled = 1;
        if (sv->phase >= PHASE_STOPPING) {
            stop_progress(sv);
        } else {
            schedule_restart(c, ran);
            advance(sv);
        }
    }
}

/* state_dir and the TLS pair before anything starts. */
static int prepare(const struct pm_config *cfg)
{
    if (pm_privsep_preflight(cfg, "run") < 0)
        return -1; /* each service would refuse on its own; say it once, before starting any */
    if (cli_mkdirs(cfg->state_dir, 0750) < 0) {
        pm_log(PM_ERR, "event=setup_failed state_dir=%s error=\"%s\"", cfg->state_dir, strerror(errno));
        return -1;
    }
    /* Every bus keypair before any service starts: no service races another to create them,
     * and they are made by whoever runs us (root), before the services drop privileges. */
    if (cfg->bus.curve) {
        char dir[4096];
        int created = cli_keys_init(cfg, NULL);
        if (created < 0) {
            pm_log(PM_ERR, "event=setup_failed keys_dir=%s", cli_keys_dir(cfg, dir, sizeof dir));
            return -1;
        }
        pm_log(PM_INFO, "event=keys_ready dir=%s created=%d", cli_keys_dir(cfg, dir, sizeof dir), created);
    }
    char err[1024], lv[PM_LOGV_SIZE];
    int r = cli_tls_ensure(cfg, err, sizeof err);
    if (r < 0) {
        pm_log(PM_ERR, "event=setup_failed error=%s", PM_LV(lv, err));
        return -1;
    }
    if (r > 0)
        pm_log(PM_INFO, "event=tls_created certificate=%s key=%s cn=%s", cfg->tls.certificate, cfg->tls.key,
               cfg->hostname);
    return 0;
}

static int find_services(struct supervisor *sv)
{
    char bindir[PATH_MAX];
    if (cli_bindir(bindir, sizeof bindir) < 0) {
        pm_log(PM_ERR, "event=setup_failed error=\"cannot find the postmesh binary's directory\"");
        return -1;
    }
    for (const struct pm_svc *s = pm_svc_table; s->name && sv->n < MAX_CHILDREN; s++) {
        struct child *c = &sv->v[sv->n];
        if (!pm_svc_supervised(s))
            continue;
        if (!cli_service_path(bindir, s->name, c->path, sizeof c->path)) {
            pm_log(PM_INFO, "event=skip svc=%s reason=not_installed path=%s", s->name, c->path);
            continue;
        }
        c->sv = sv;
        c->svc = s;
        c->backoff = BACKOFF_MIN;
        c->restart_timer = evtimer_new(sv->base, on_restart, c);
        sv->n++;
    }
    if (sv->n == 0) {
        pm_log(PM_ERR, "event=setup_failed error=\"no service binaries next to postmesh\" dir=%s", bindir);
        return -1;
    }
    return 0;
}

int cli_cmd_run(const struct pm_config *cfg, const char *config_path, int argc, char **argv)
{
    (void)argv;
    if (argc != 1) {
        cli_error("usage: postmesh run");
        return CLI_USAGE;
    }
    if (prepare(cfg) < 0)
        return CLI_FAIL;
    struct supervisor *sv = calloc(1, sizeof *sv);
    if (!sv)
        return CLI_FAIL;
    sv->config_path = config_path;
    sv->base = event_base_new();
    int rc = CLI_FAIL;
    if (!sv->base || find_services(sv) < 0)
        goto out;
    signal(SIGPIPE, SIG_IGN);
    sv->sig_term = evsignal_new(sv->base, SIGTERM, on_signal, sv);
    sv->sig_int = evsignal_new(sv->base, SIGINT, on_signal, sv);
    sv->sig_chld = evsignal_new(sv->base, SIGCHLD, on_sigchld, sv);
    sv->timer = evtimer_new(sv->base, on_timer, sv);
    event_add(sv->sig_term, NULL);
    event_add(sv->sig_int, NULL);
    event_add(sv->sig_chld, NULL);
    sv->phase = PHASE_CORE;
    start_group(sv, 1);
    arm_timer(sv, START_WAIT);
    advance(sv);
    event_base_dispatch(sv->base);
    cli_child_close_all();
    pm_log(PM_INFO, "event=stopped");
    rc = sv->phase == PHASE_DONE ? CLI_OK : CLI_FAIL;
out:
    for (int i = 0; i < sv->n; i++)
        if (sv->v[i].restart_timer)
            event_free(sv->v[i].restart_timer);
    if (sv->sig_term)
        event_free(sv->sig_term);
    if (sv->sig_int)
        event_free(sv->sig_int);
    if (sv->sig_chld)
        event_free(sv->sig_chld);
    if (sv->timer)
        event_free(sv->timer);
    if (sv->base)
        event_base_free(sv->base);
    free(sv);
    return rc;
}
