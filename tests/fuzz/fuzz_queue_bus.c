/* The queue as a compromised peer meets it: every BusMessage a role can send, garbage
 * included, through the queue's real bus endpoints (queue.endpoint and queue.control: the
 * policy tables and on_bus of services/queue/endpoints.c, the handlers of submit.c, dispatch.c,
 * control.c) into a real LMDB store on tmpfs, fresh for every input. See fuzz_bus.h for the
 * record format; here bit 4 picks queue.control and the op (bits 5-6) is:
 *   0  the payload is a frame, sent as is;
 *   1  a JobResult for the last Job this role's DEALER received, statuses from the payload
 *      (a worker answering: the fuzzer cannot guess job ids and queue ids);
 *   2  a ControlRequest (command from payload[0]) naming the last queue id committed;
 *   3  the queue's 250 ms tick (lease expiry, the full dispatch walk).
 * What must hold whatever the peers send (issue 10's findings, as properties): only the CLI
 * gets answers on queue.control; a Job goes only to a worker role, and only of its own
 * kind (an smtpd key once got a Job with a message body); SubmitReplies only to the
 * submitting roles; nothing to a role that may send nothing; and no crash, leak or UB.
 *
 * queue_bind() and queue_tick() are what main() calls: the harness runs the code the
 * service runs. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_bus.h"
#include "log.h"
#include "queue/queue.h"

/* From services/queue/main.o (see above). */

static struct queue q;
static struct pm_config cfg;
static struct fb_clients clients;
static char state[256], store[300];
static char last_id[QUEUE_ID_LEN + 1];
static Postmesh__BusMessage *last_job[PM_ROLE_COUNT];

/* The worker kind a role may take jobs of: the specification, written again on purpose. */
static Postmesh__WorkerKind own_kind(enum pm_role r)
{
    return r == PM_ROLE_DELIVERY ? POSTMESH__WORKER_KIND__WORKER_DELIVERY
           : r == PM_ROLE_MTA    ? POSTMESH__WORKER_KIND__WORKER_MTA
           : r == PM_ROLE_BOUNCER ? POSTMESH__WORKER_KIND__WORKER_BOUNCER
                                  : POSTMESH__WORKER_KIND__WORKER_NONE;
}

static void on_reply(int endpoint, enum pm_role role, const Postmesh__BusMessage *m, void *arg)
{
    (void)arg;
    if (endpoint == 1) {
        FUZZ_CHECK(role == PM_ROLE_CLI);
        FUZZ_CHECK(m->body_case == POSTMESH__BUS_MESSAGE__BODY_CONTROL_REPLY ||
                   m->body_case == POSTMESH__BUS_MESSAGE__BODY_PING);
        return;
    }
    switch (m->body_case) {
    case POSTMESH__BUS_MESSAGE__BODY_SUBMIT_REPLY:
        FUZZ_CHECK(role == PM_ROLE_SMTPD || role == PM_ROLE_BOUNCER);
        FUZZ_CHECK(m->submit_reply->queue_id && m->submit_reply->text);
        if (m->submit_reply->status == POSTMESH__SUBMIT_REPLY__STATUS__COMMITTED) {
            FUZZ_CHECK(strlen(m->submit_reply->queue_id) == QUEUE_ID_LEN);
            memcpy(last_id, m->submit_reply->queue_id, sizeof last_id);
        }
        break;
    case POSTMESH__BUS_MESSAGE__BODY_JOB: {
        const Postmesh__Job *j = m->job;
        FUZZ_CHECK(own_kind(role) != POSTMESH__WORKER_KIND__WORKER_NONE && j->kind == own_kind(role));
        FUZZ_CHECK(j->epoch == q.epoch && j->n_recipients >= 1);
        if (last_job[role])
            postmesh__bus_message__free_unpacked(last_job[role], NULL);
        size_t n = postmesh__bus_message__get_packed_size(m);
        uint8_t *buf = malloc(n);
        postmesh__bus_message__pack(m, buf);
        last_job[role] = postmesh__bus_message__unpack(NULL, n, buf);
        free(buf);
        break;
    }
    case POSTMESH__BUS_MESSAGE__BODY_PING:
        FUZZ_CHECK(role != PM_ROLE_NONE && role != PM_ROLE_QUEUE && role != PM_ROLE_RESOLVER &&
                   role != PM_ROLE_POP3D && role != PM_ROLE_IMAPD);
        break;
    default:
        FUZZ_CHECK(0); /* nothing else goes from the queue to a peer */
    }
}

/* Runs the queue's loop until what was sent is read and the group commit it asked for ran. */
static void settle(int endpoint, enum pm_role role)
{
    for (int i = 0; i < 8; i++) {
        fb_kick(q.base, endpoint ? q.control : q.bus, role);
        if (!q.commit_scheduled && i >= 1)
            break;
    }
    fb_collect(&clients, on_reply, NULL);
}

static void send_result(const struct fb_record *r)
{
    const Postmesh__BusMessage *jm = last_job[r->role];
    if (!jm)
        return;
    const Postmesh__Job *j = jm->job;
    Postmesh__JobResult res = POSTMESH__JOB_RESULT__INIT;
    res.job_id = j->job_id;
    res.epoch = j->epoch;
    res.queue_id = j->queue_id;
    res.kind = j->kind;
    size_t n = j->n_recipients;
    Postmesh__RecipientResult *rr = calloc(n, sizeof *rr), **rp = calloc(n, sizeof *rp);
    static char *dsn[] = {"2.0.0", "4.4.1", "5.1.1", "4.0.0"};
    for (size_t i = 0; i < n; i++) {
        uint8_t b = i < r->len ? r->payload[i] : 0;
        postmesh__recipient_result__init(&rr[i]);
        rr[i].index = j->recipients[i]->index + (b & 0x80 ? 1 : 0); /* sometimes one it does not hold */
        rr[i].status = (Postmesh__RecipientResult__Status)(b & 3);
        rr[i].dsn_status = dsn[b & 3];
        rr[i].text = b & 0x40 ? "550 5.1.1 <x@remote.test>: no such user" : "";
        rr[i].remote_mta = b & 0x20 ? "mx.remote.test" : "";
        rp[i] = &rr[i];
    }
    res.results = rp;
    res.n_results = r->len > n && (r->payload[n] & 1) ? n - 1 : n; /* sometimes one missing */
    if (r->len > n && (r->payload[n] & 2))
        res.kind = (Postmesh__WorkerKind)((res.kind + 1) % 4);
    Postmesh__BusMessage m = POSTMESH__BUS_MESSAGE__INIT;
    m.request_id = 7;
    m.body_case = POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT;
    m.job_result = &res;
    fb_send_msg(&clients, r, &m);
    free(rr);
    free(rp);
}

static void send_control(const struct fb_record *r)
{
    Postmesh__ControlRequest c = POSTMESH__CONTROL_REQUEST__INIT;
    c.command = (Postmesh__ControlRequest__Command)((r->len ? r->payload[0] : 0) % 7);
    c.queue_id = last_id;
    Postmesh__BusMessage m = POSTMESH__BUS_MESSAGE__INIT;
    m.request_id = 9;
    m.body_case = POSTMESH__BUS_MESSAGE__BODY_CONTROL;
    m.control = &c;
    fb_send_msg(&clients, r, &m);
}

static void rmtree_store(void)
{
    char p[400];
    snprintf(p, sizeof p, "%s/data.mdb", store);
    unlink(p);
    snprintf(p, sizeof p, "%s/lock.mdb", store);
    unlink(p);
}

/* A fresh queue over a fresh store, on the sockets and loop that stay. */
static void queue_start(void)
{
    rmtree_store();
    FUZZ_CHECK(queue_store_open(&q) == 0 && queue_store_load(&q) == 0);
    FUZZ_CHECK(q.nmsgs == 0);
}

/* As main() ends: commit what is dirty, then free memory only (queue_free_memory). */
static void queue_stop(void)
{
    queue_commit_now(&q);
    fb_collect(&clients, on_reply, NULL);
    queue_free_memory(&q);
    queue_store_close(&q);
    struct queue keep = q;
    memset(&q, 0, sizeof q);
    q.cfg = keep.cfg;
    q.base = keep.base;
    q.bus = keep.bus;
    q.control = keep.control;
    q.aliases = keep.aliases;
    q.epoch = keep.epoch;
    q.commit_ev = keep.commit_ev;
    for (int r = 0; r < PM_ROLE_COUNT; r++)
        if (last_job[r]) {
            postmesh__bus_message__free_unpacked(last_job[r], NULL);
            last_job[r] = NULL;
        }
    last_id[0] = '\0';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    queue_start();
    const uint8_t *p = data;
    size_t left = size;
    struct fb_record r;
    int pending = -1; /* endpoint with frames the queue has not read yet */
    enum pm_role pending_role = PM_ROLE_NONE;
    int records = 0;
    while (records++ < 64 && fb_next(&p, &left, &r)) {
        /* bus.c learns the sender of a frame when it reads it: frames of one burst must come
         * from one DEALER, so read what another one sent first. */
        if (pending >= 0 && (pending != r.endpoint || pending_role != r.role)) {
            settle(pending, pending_role);
            pending = -1;
        }
        switch (r.op) {
        case 0:
            fb_send(&clients, &r, r.payload, r.len);
            break;
        case 1:
            send_result(&r);
            break;
        case 2:
            send_control(&r);
            break;
        default:
            queue_tick(&q);
            fb_collect(&clients, on_reply, NULL);
            continue;
        }
        pending = r.endpoint;
        pending_role = r.role;
        if (!r.burst) {
            settle(pending, pending_role);
            pending = -1;
        }
    }
    if (pending >= 0)
        settle(pending, pending_role);
    queue_stop();
    return 0;
}

static void cleanup(void)
{
    static const char *const files[] = {"aliases", "postmesh.conf", "keys/queue.key", "keys/queue.pub", NULL};
    rmtree_store();
    rmdir(store);
    fb_state_remove(state, files);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* Every group commit is a sync: run.py's TMPDIR is on tmpfs when there is one. */
    fb_state_make(state, sizeof state, "queue");
    snprintf(store, sizeof store, "%s/queue", state);
    atexit(cleanup);
    char path[400], text[2048];
    snprintf(path, sizeof path, "%s/aliases", state);
    fb_write_text(path, "team@example.test: alice@example.test, bob@remote.test\n"
                     "postmaster: alice@example.test\n"
                     "staff@example.test: team@example.test, carol\n");
    snprintf(text, sizeof text,
             "hostname = \"mx.example.test\";\nstate_dir = \"%s\";\ndomains = [ \"example.test\" ];\n"
             "aliases_file = \"%s/aliases\";\nusers_file = \"%s/users\";\n"
             "bus = { curve = true; keys_dir = \"%s/keys\"; };\n"
             "queue = { endpoint = \"inproc://fuzz-queue\"; control = \"inproc://fuzz-queue-control\";\n"
             "  map_size_mb = 4; retry_min = 1; retry_max = 4; max_lifetime = 3600; delay_warning = 0;\n"
             "  job_lease = 600; max_batch = 4; };\n"
             "smtpd = { max_message_size = 65536; };\n",
             state, state, state, state);
    snprintf(path, sizeof path, "%s/postmesh.conf", state);
    fb_write_text(path, text);
    char err[512];
    if (pm_config_load(path, &cfg, err, sizeof err) < 0) {
        fprintf(stderr, "fuzz_queue_bus: %s\n", err);
        abort();
    }
    pm_log_init("queue");
    pm_bus_security_init(&cfg, "queue");
    FUZZ_CHECK(pm_bus_roles_known());
    fb_roles_init();

    q.cfg = &cfg;
    q.epoch = 0x5eed5eed5eed5eedULL | 1; /* fixed: a crash must reproduce */
    q.aliases = pm_aliases_load(cfg.aliases_file, err, sizeof err);
    FUZZ_CHECK(q.aliases);
    q.base = event_base_new();
    FUZZ_CHECK(queue_bind(&q) == 0); /* the policies and handler main() binds */
    const char *endpoints[FB_ENDPOINTS] = {cfg.queue.endpoint, cfg.queue.control};
    fb_clients_open(&clients, endpoints);
    return 0;
}
