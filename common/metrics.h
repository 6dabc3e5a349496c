/* Prometheus metrics and the health answer of every service: one catalog of what is counted
 * (metrics.c: name, type, help, labels of every postmesh_* metric), the values, the text
 * exposition (format 0.0.4) and a small HTTP server on <service>.metrics serving
 * GET /metrics and GET /health.
 *
 * The listening socket is opened by pm_service_init (pm_metrics_listen), before any chroot
 * or seccomp, and served by whichever process holds the counters once it has an event loop
 * (pm_metrics_serve): the sandboxed worker for smtpd, pop3d, mta and delivery, the process
 * itself elsewhere. Counting is cheap and thread-safe, and a no-op while nothing serves. */
#ifndef PM_METRICS_H
#define PM_METRICS_H
#include <stddef.h>

struct event_base;
struct pm_config;

/* Every metric of the system. The catalog in metrics.c gives each its name and labels; a
 * process shows the rows of its own service and the common ones (service NULL there). */
enum pm_metric_id {
    PM_M_BUS_MESSAGES,            /* {direction, type} */
    PM_M_READY,                   /* 1 while /health says ok */
    PM_M_SMTPD_CONNECTIONS,
    PM_M_SMTPD_SESSIONS,
    PM_M_SMTPD_MESSAGES,          /* {result, reason}: the final reply to DATA */
    PM_M_SMTPD_ENVELOPE_REJECTS,  /* {command, reason}: MAIL and RCPT refused */
    PM_M_POP3D_CONNECTIONS,
    PM_M_POP3D_SESSIONS,
    PM_M_IMAPD_CONNECTIONS,
    PM_M_IMAPD_SESSIONS,
    PM_M_IMAPD_LOGINS,            /* {result}: ok, failed, locked_out, unavailable */
    PM_M_IMAPD_IDLE_WAKEUPS,      /* IDLE sessions told of a change by inotify */
    PM_M_QUEUE_MESSAGES,          /* {state}: depth by state */
    PM_M_QUEUE_SUBMISSIONS,       /* {result, reason}: committed, or refused and why */
    PM_M_QUEUE_COMMITS,
    PM_M_QUEUE_COMMIT_BATCH,      /* histogram: records per group commit */
    PM_M_QUEUE_COMMIT_SECONDS,    /* histogram: time of one synced write transaction */
    PM_M_QUEUE_DELIVERIES,        /* {kind, result}: job results applied per recipient */
    PM_M_RESOLVER_QUERIES,        /* {kind}: questions from the bus */
    PM_M_RESOLVER_CACHE,          /* {result}: hit or miss */
    PM_M_COUNT
};

/* Adds v to a counter or gauge. l1/l2 are the label values in the catalog's order (NULL
 * where the metric has fewer labels). A metric keeps at most a few dozen label sets; later
 * new ones are counted under the value "other", so a peer cannot grow the table. */
void pm_metric_add(enum pm_metric_id id, double v, const char *l1, const char *l2);
void pm_metric_set(enum pm_metric_id id, double v, const char *l1, const char *l2);
static inline void pm_metric_inc(enum pm_metric_id id) { pm_metric_add(id, 1, NULL, NULL); }
void pm_metric_observe(enum pm_metric_id id, double v); /* histograms (no labels) */

/* The reason label of an SMTP reply ("550 5.1.1 ...") or of a queue answer that starts
 * with an enhanced code ("4.3.1 ..."): the enhanced status code if there is one, else the
 * three digits ("554"), else "other". Returns out (at least 16 bytes). */
const char *pm_metric_reason(const char *reply, char *out, size_t size);

/* The lower-case name of a protobuf enum value ("delivered", "mx") as a label value, or
 * "unknown". Returns out. */
struct ProtobufCEnumDescriptor;
const char *pm_metric_enum(const struct ProtobufCEnumDescriptor *d, int value, char *out, size_t size);

/* Called just before every scrape and health answer, in the serving loop: where a gauge is
 * cheaper to compute than to keep (queue depth). At most a handful. */
void pm_metrics_on_collect(void (*fn)(void *arg), void *arg);

/* The exposition text of this process's metrics (malloc'd, NUL-terminated; NULL without
 * memory). Runs the collect hooks first. */
char *pm_metrics_text(size_t *len);
/* Which service's rows pm_metrics_text shows (besides the common ones). */
void pm_metrics_set_service(const char *service);

/* cfg-><service>.metrics ("" when off; NULL for a name without a metrics key). */
const char *pm_metrics_address(const struct pm_config *cfg, const char *service);

/* Opens the listening socket of cfg-><service>.metrics, if set; before any sandbox. It is
 * inherited by a forked worker. 0 (also when off), or -1 (logged). */
int pm_metrics_listen(const struct pm_config *cfg, const char *service);
/* Does this process hold the metrics listener (so its seccomp profile must let it accept)? */
int pm_metrics_holds_listener(void);

/* Several worker processes, one metrics port (smtpd.workers): in the parent before the
 * workers are forked, nslots tables in shared memory (0 and nothing done for nslots <= 1;
 * -1 if it cannot be mapped). In worker i, pm_metrics_use_slot(i) before it counts
 * anything: it counts in table i (a successor continues its counters, so they never go
 * back), and pm_metrics_text adds up every table. */
int pm_metrics_share(int nslots);
void pm_metrics_use_slot(int slot);
/* In the parent, once worker slot is gone: its gauges (sessions open) are 0; its counters
 * stay for its successor. */
void pm_metrics_clear_gauges(int slot);

/* Readiness, beyond what the bus watch below finds: NULL when ready, else the reason. */
typedef const char *(*pm_metrics_ready_fn)(void *arg);
/* Serves the socket pm_metrics_listen opened on base (nothing when it opened none).
 * ready may be NULL. 0, or -1 (logged). */
int pm_metrics_serve(struct event_base *base, pm_metrics_ready_fn ready, void *arg);
/* Not ready for reason (e.g. "draining") from now on; NULL: ready again. */
void pm_metrics_set_unready(const char *reason);
/* NULL when ready, else why not (checked like /health: the bus, the callback). */
const char *pm_metrics_health(void);

/* common/bus.c: every socket the bus opens. A binding socket is ready once bound; a
 * connecting one while it has a live connection (a ZeroMQ monitor sees the handshake and
 * the disconnect). Connections to queue shards count as one: any live shard will do. */
void pm_metrics_bus_opened(struct event_base *base, void *zsock, int type, const char *endpoint);
void pm_metrics_bus_closed(void *zsock);

#endif
