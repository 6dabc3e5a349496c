/* The metrics catalog, the values and the Prometheus text exposition (format 0.0.4). What
 * is served over HTTP and what "ready" means is metrics_http.c. Values are kept under one
 * mutex: counting happens in event loops and in delivery's threads, and an uncontended lock
 * costs less than a system call. With several worker processes (smtpd) each counts in its
 * own table in shared memory, and the text adds up every worker's. */
#include <ctype.h>
#include <math.h>
#include <protobuf-c/protobuf-c.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "metrics.h"

enum kind { COUNTER, GAUGE, HISTOGRAM };

struct row {
    const char *name;
    enum kind kind;
    const char *service; /* NULL: every process shows it */
    const char *labels[2];
    const double *bounds; /* histograms: upper bounds, ascending */
    int nbounds;
    const char *help;
};

#define NB(a) (int)(sizeof(a) / sizeof((a)[0]))
static const double batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
static const double commit_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};

/* One row per metric, indexed by its enum value. */
static const struct row catalog[PM_M_COUNT] = {
    [PM_M_BUS_MESSAGES] = {"postmesh_bus_messages_total", COUNTER, NULL, {"direction", "type"}, NULL, 0,
                           "Bus messages sent and received by this process, by message type."},
    [PM_M_READY] = {"postmesh_ready", GAUGE, NULL, {NULL, NULL}, NULL, 0,
                    "1 when the service is ready (bus connected, listeners open), else 0."},
    [PM_M_SMTPD_CONNECTIONS] = {"postmesh_smtpd_connections_total", COUNTER, "smtpd", {NULL, NULL}, NULL, 0,
                                "SMTP connections accepted."},
    [PM_M_SMTPD_SESSIONS] = {"postmesh_smtpd_sessions", GAUGE, "smtpd", {NULL, NULL}, NULL, 0,
                             "SMTP sessions open now."},
    [PM_M_SMTPD_MESSAGES] = {"postmesh_smtpd_messages_total", COUNTER, "smtpd", {"result", "reason"}, NULL, 0,
                             "Messages at the end of DATA: accepted (queued) or rejected, by the enhanced status "
                             "code of the reply."},
    [PM_M_SMTPD_ENVELOPE_REJECTS] = {"postmesh_smtpd_envelope_rejects_total", COUNTER, "smtpd",
                                     {"command", "reason"}, NULL, 0,
                                     "MAIL and RCPT commands refused, by the enhanced status code of the reply."},
    [PM_M_POP3D_CONNECTIONS] = {"postmesh_pop3d_connections_total", COUNTER, "pop3d", {NULL, NULL}, NULL, 0,
                                "POP3 connections accepted."},
    [PM_M_POP3D_SESSIONS] = {"postmesh_pop3d_sessions", GAUGE, "pop3d", {NULL, NULL}, NULL, 0,
                             "POP3 sessions open now."},
    [PM_M_IMAPD_CONNECTIONS] = {"postmesh_imapd_connections_total", COUNTER, "imapd", {NULL, NULL}, NULL, 0,
                                "IMAP connections accepted."},
    [PM_M_IMAPD_SESSIONS] = {"postmesh_imapd_sessions", GAUGE, "imapd", {NULL, NULL}, NULL, 0,
                             "IMAP sessions open now."},
    [PM_M_IMAPD_LOGINS] = {"postmesh_imapd_logins_total", COUNTER, "imapd", {"result", NULL}, NULL, 0,
                           "IMAP logins (LOGIN, AUTHENTICATE): ok, failed, locked_out or unavailable."},
    [PM_M_IMAPD_IDLE_WAKEUPS] = {"postmesh_imapd_idle_wakeups_total", COUNTER, "imapd", {NULL, NULL}, NULL, 0,
                                 "IDLE sessions woken by a change in their folder (inotify)."},
    [PM_M_QUEUE_MESSAGES] = {"postmesh_queue_messages", GAUGE, "queue", {"state", NULL}, NULL, 0,
                             "Messages in the queue by state: queued (waiting for a first attempt), active (a job "
                             "is out), deferred (waiting for a retry), hold."},
    [PM_M_QUEUE_SUBMISSIONS] = {"postmesh_queue_submissions_total", COUNTER, "queue", {"result", "reason"}, NULL, 0,
                                "Submissions: committed (synced, acknowledged) or refused, by enhanced status code."},
    [PM_M_QUEUE_COMMITS] = {"postmesh_queue_commits_total", COUNTER, "queue", {NULL, NULL}, NULL, 0,
                            "Synced LMDB write transactions (group commits)."},
    [PM_M_QUEUE_COMMIT_BATCH] = {"postmesh_queue_commit_batch_size", HISTOGRAM, "queue", {NULL, NULL},
                                 batch_bounds, NB(batch_bounds), "Records written per group commit."},
    [PM_M_QUEUE_COMMIT_SECONDS] = {"postmesh_queue_commit_seconds", HISTOGRAM, "queue", {NULL, NULL},
                                   commit_bounds, NB(commit_bounds),
                                   "Time of one group commit: write transaction and sync."},
    [PM_M_QUEUE_DELIVERIES] = {"postmesh_queue_deliveries_total", COUNTER, "queue", {"kind", "result"}, NULL, 0,
                               "Recipient results the queue applied, by worker kind and result."},
    [PM_M_RESOLVER_QUERIES] = {"postmesh_resolver_queries_total", COUNTER, "resolver", {"kind", NULL}, NULL, 0,
                               "Resolve requests received over the bus, by kind (mx, ptr, a)."},
    [PM_M_RESOLVER_CACHE] = {"postmesh_resolver_cache_lookups_total", COUNTER, "resolver", {"result", NULL}, NULL,
                             0, "DNS cache lookups: hit or miss."},
};

/* Label sets per metric at most; the last one is kept for "other". */
#define MAX_SERIES 32
#define MAX_HOOKS 8
#define MAX_LABEL 64  /* a longer label value is counted as "other" */
#define MAX_BOUNDS 16 /* histogram bounds in the catalog at most */

/* Fixed size, no pointers: a table may sit in memory shared by several worker processes
 * (pm_metrics_share), each counting in its own table, the one serving the port adding
 * them up. */
struct series {
    char l[2][MAX_LABEL];
    double v;
};

struct values {
    struct series s[MAX_SERIES];
    int n;                           /* series in use; raised only once the series is written */
    double buckets[MAX_BOUNDS + 1];  /* histogram: count per bound, not cumulative; [nbounds] is +Inf */
    double sum, count;
};

struct table {
    struct values v[PM_M_COUNT];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct table local;
static struct table *mine = &local; /* where this process counts */
static struct table *shared;        /* every worker's table (pm_metrics_share), or NULL */
static int nshared;
static const char *service_name;
static struct {
    void (*fn)(void *);
    void *arg;
} hooks[MAX_HOOKS];
static int nhooks;

static int nlabels(const struct row *r) { return r->labels[0] ? (r->labels[1] ? 2 : 1) : 0; }

static struct series *lookup(struct values *vs, int nl, const char *const want[2])
{
    int n = __atomic_load_n(&vs->n, __ATOMIC_ACQUIRE);
    for (int i = 0; i < n; i++) {
        int k = 0;
        while (k < nl && strcmp(vs->s[i].l[k], want[k]) == 0)
            k++;
        if (k == nl)
            return &vs->s[i];
    }
    return NULL;
}

/* The series of these label values in vs, made on first use (locked, or vs is private). */
static struct series *find_in(struct values *vs, enum pm_metric_id id, const char *l1, const char *l2)
{
    int nl = nlabels(&catalog[id]);
    const char *want[2] = {l1 ? l1 : "", l2 ? l2 : ""};
    for (int k = 0; k < nl; k++)
        if (strlen(want[k]) >= MAX_LABEL)
            want[k] = "other";
    struct series *s = lookup(vs, nl, want);
    if (s)
        return s;
    if (vs->n >= (nl ? MAX_SERIES - 1 : 1)) {
        /* Full: this label set is counted as "other", in the slot kept for it. */
        for (int k = 0; k < nl; k++)
            want[k] = "other";
        if ((s = lookup(vs, nl, want)) != NULL || vs->n >= MAX_SERIES)
            return s;
    }
    s = &vs->s[vs->n];
    for (int k = 0; k < 2; k++)
        snprintf(s->l[k], sizeof s->l[k], "%s", k < nl ? want[k] : "");
    s->v = 0;
    __atomic_store_n(&vs->n, vs->n + 1, __ATOMIC_RELEASE); /* a reader elsewhere sees it whole */
    return s;
}

static struct series *find(enum pm_metric_id id, const char *l1, const char *l2)
{
    return find_in(&mine->v[id], id, l1, l2);
}

static void update(enum pm_metric_id id, double v, const char *l1, const char *l2, int set)
{
    if ((unsigned)id >= PM_M_COUNT || catalog[id].kind == HISTOGRAM)
        return;
    pthread_mutex_lock(&lock);
    struct series *s = find(id, l1, l2);
    if (s)
        s->v = set ? v : s->v + v;
    pthread_mutex_unlock(&lock);
}

int pm_metrics_share(int nslots)
{
    if (nslots <= 1)
        return 0;
    void *m = mmap(NULL, sizeof(struct table) * (size_t)nslots, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
    if (m == MAP_FAILED)
        return -1;
    shared = m; /* zero-filled by the kernel */
    nshared = nslots;
    return 0;
}

void pm_metrics_clear_gauges(int slot)
{
    if (!shared || slot < 0 || slot >= nshared)
        return;
    for (int id = 0; id < PM_M_COUNT; id++) {
        struct values *vs = &shared[slot].v[id];
        for (int i = 0; catalog[id].kind == GAUGE && i < vs->n; i++)
            vs->s[i].v = 0;
    }
}

void pm_metrics_use_slot(int slot)
{
    if (!shared || slot < 0 || slot >= nshared)
        return;
    pthread_mutex_lock(&lock);
    mine = &shared[slot];
    pthread_mutex_unlock(&lock);
}

void pm_metric_add(enum pm_metric_id id, double v, const char *l1, const char *l2) { update(id, v, l1, l2, 0); }

void pm_metric_set(enum pm_metric_id id, double v, const char *l1, const char *l2) { update(id, v, l1, l2, 1); }

void pm_metric_observe(enum pm_metric_id id, double v)
{
    if ((unsigned)id >= PM_M_COUNT || catalog[id].kind != HISTOGRAM)
        return;
    const struct row *r = &catalog[id];
    pthread_mutex_lock(&lock);
    struct values *vs = &mine->v[id];
    int b = 0;
    while (b < r->nbounds && b < MAX_BOUNDS && v > r->bounds[b])
        b++;
    vs->buckets[b]++;
    vs->sum += v;
    vs->count++;
    pthread_mutex_unlock(&lock);
}

/* n > 0 when s starts with an enhanced status code (class.subject.detail, 1-3 digits each)
 * followed by the end or a space. */
static int enhanced_length(const char *s)
{
    int n = 0;
    if (sscanf(s, "%*1[245].%*3[0-9].%*3[0-9]%n", &n) != 0 || n == 0 || (s[n] && s[n] != ' '))
        return 0;
    return n;
}

const char *pm_metric_reason(const char *reply, char *out, size_t size)
{
    const char *p = reply ? reply : "";
    int n = enhanced_length(p); /* "4.3.1 queue store full" (the queue's answers) */
    if (n) {
        snprintf(out, size, "%.*s", n, p);
        return out;
    }
    if (!(p[0] >= '2' && p[0] <= '5' && p[1] >= '0' && p[1] <= '9' && p[2] >= '0' && p[2] <= '9') ||
        (p[3] && p[3] != ' ' && p[3] != '-')) {
        snprintf(out, size, "other");
        return out;
    }
    const char *e = p[3] ? p + 4 : p + 3; /* "550 5.1.1 ..." */
    n = enhanced_length(e);
    if (n && e[0] == p[0])
        snprintf(out, size, "%.*s", n, e);
    else
        snprintf(out, size, "%.3s", p);
    return out;
}

const char *pm_metric_enum(const struct ProtobufCEnumDescriptor *d, int value, char *out, size_t size)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(d, value);
    snprintf(out, size, "%s", v ? v->name : "unknown");
    for (char *c = out; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    return out;
}

void pm_metrics_on_collect(void (*fn)(void *arg), void *arg)
{
    pthread_mutex_lock(&lock);
    if (nhooks < MAX_HOOKS) {
        hooks[nhooks].fn = fn;
        hooks[nhooks].arg = arg;
        nhooks++;
    }
    pthread_mutex_unlock(&lock);
}

void pm_metrics_set_service(const char *service) { service_name = service; }

/* Integers as integers, the rest with enough digits; Prometheus spells infinity +Inf. */
static void put_number(FILE *f, double v)
{
    if (isnan(v))
        fputs("NaN", f);
    else if (isinf(v))
        fputs(v > 0 ? "+Inf" : "-Inf", f);
    else if (v == (double)(long long)v && v < 1e15 && v > -1e15)
        fprintf(f, "%lld", (long long)v);
    else
        fprintf(f, "%.9g", v);
}

/* Label values: backslash, double quote and newline escaped (text format 0.0.4). */
static void put_label_value(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"') {
            fputc('\\', f);
            fputc(*s, f);
        } else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

static void put_labels(FILE *f, const struct row *r, const struct series *s, const char *le)
{
    int nl = nlabels(r);
    if (!nl && !le)
        return;
    fputc('{', f);
    for (int k = 0; k < nl; k++) {
        fprintf(f, "%s%s=\"", k ? "," : "", r->labels[k]);
        put_label_value(f, s->l[k]);
        fputc('"', f);
    }
    if (le)
        fprintf(f, "%sle=\"%s\"", nl ? "," : "", le);
    fputc('}', f);
}

static int shown(const struct row *r, const struct values *vs)
{
    if (!r->name)
        return 0; /* a hole in the catalog (the unit test checks there is none) */
    return !r->service || (service_name && strcmp(r->service, service_name) == 0) || vs->n || vs->count;
}

static void put_metric(FILE *f, const struct row *r, const struct values *vs)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", r->name, r->help, r->name, types[r->kind]);
    if (r->kind == HISTOGRAM) {
        double cum = 0;
        for (int b = 0; b <= r->nbounds; b++) {
            cum += vs->buckets[b];
            char le[32];
            if (b < r->nbounds)
                snprintf(le, sizeof le, "%g", r->bounds[b]);
            else
                snprintf(le, sizeof le, "+Inf");
            fprintf(f, "%s_bucket{le=\"%s\"} ", r->name, le);
            put_number(f, cum);
            fputc('\n', f);
        }
        fprintf(f, "%s_sum ", r->name);
        put_number(f, vs->sum);
        fprintf(f, "\n%s_count ", r->name);
        put_number(f, vs->count);
        fputc('\n', f);
        return;
    }
    if (!nlabels(r) && vs->n == 0) { /* a plain counter or gauge is 0 before its first event */
        fprintf(f, "%s 0\n", r->name);
        return;
    }
    for (int i = 0; i < vs->n; i++) {
        fputs(r->name, f);
        put_labels(f, r, &vs->s[i], NULL);
        fputc(' ', f);
        put_number(f, vs->s[i].v);
        fputc('\n', f);
    }
}

/* Every worker's table added into out: counters, and a service's gauges, which are each
 * worker's share (its sessions). A common gauge (postmesh_ready) is about the process
 * answering: its own value. */
static void add_up(struct table *out)
{
    for (int w = 0; w < nshared; w++)
        for (int id = 0; id < PM_M_COUNT; id++) {
            int own_only = catalog[id].kind == GAUGE && !catalog[id].service;
            if (own_only && &shared[w] != mine)
                continue;
            const struct values *in = &shared[w].v[id];
            struct values *vs = &out->v[id];
            int n = __atomic_load_n(&in->n, __ATOMIC_ACQUIRE);
            for (int i = 0; i < n && i < MAX_SERIES; i++) {
                struct series *s = find_in(vs, (enum pm_metric_id)id, in->s[i].l[0], in->s[i].l[1]);
                if (s)
                    s->v += in->s[i].v;
            }
            for (int b = 0; b <= MAX_BOUNDS; b++)
                vs->buckets[b] += in->buckets[b];
            vs->sum += in->sum;
            vs->count += in->count;
        }
}

char *pm_metrics_text(size_t *len)
{
    pthread_mutex_lock(&lock);
    int n = nhooks;
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < n; i++) /* unlocked: a hook sets gauges */
        hooks[i].fn(hooks[i].arg);
    struct table *sum = NULL;
    if (shared && !(sum = calloc(1, sizeof *sum)))
        return NULL;
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f) {
        free(sum);
        return NULL;
    }
    pthread_mutex_lock(&lock);
    if (sum)
        add_up(sum);
    const struct table *t = sum ? sum : mine;
    for (int id = 0; id < PM_M_COUNT; id++)
        if (shown(&catalog[id], &t->v[id]))
            put_metric(f, &catalog[id], &t->v[id]);
    pthread_mutex_unlock(&lock);
    free(sum);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    if (len)
        *len = size;
    return buf;
}
