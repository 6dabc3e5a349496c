/* TLSRPT (RFC 8460), the queue's half: the TLS sessions every mta JobResult carries
 * (services/mta/tlsrpt.h) added up per (UTC day, policy domain) in the store's "tlsrpt"
 * database, and each day's report, once the day is over (after queue.tlsrpt_hour UTC) or
 * when `postmesh queue tlsrpt` asks, put into the queue as a new message.
 *
 * Only a result that answers a job this queue run sent to an mta counts, and only its
 * sessions for that job's destination domain: anything else could make the queue send signed
 * reports about any domain to any address.
 *
 * Durability follows the group commit: a result's sessions are merged into a copy of the
 * day's record in memory and written in the next commit's transaction (store.c calls
 * queue_tlsrpt_stage), so they are stored exactly when the result itself is. A report is
 * committed in the same transaction that deletes the day's record: a crash leaves either
 * the record (the report is made again later) or the message (queued, the record gone),
 * never both and never neither.
 *
 * tlsrpt_agg.c: the record (json-c) and the merge; tlsrpt_report.c: the report's JSON, gzip
 * and the RFC 8460 5.3 message; tlsrpt.c: the store, the timer, the control command. */
#ifndef QUEUE_TLSRPT_H
#define QUEUE_TLSRPT_H
#include <json-c/json.h>
#include <stddef.h>
#include <time.h>

#include "queue.h"

#define TLSRPT_MAX_POLICIES 8  /* policies per (day, domain): a domain changes its policy rarely */
#define TLSRPT_MAX_DETAILS 32  /* failure-details per policy; more failures count in the summary */
#define TLSRPT_KEY_SIZE 280    /* "YYYY-MM-DD " + domain */
#define TLSRPT_MAX_RECORD (256u << 10) /* a stored record's JSON at most (bounded by the above) */

/* tlsrpt_agg.c ---------------------------------------------------------------------------*/
/* The day record's key: "YYYY-MM-DD <domain>" (UTC day of t). Returns its length, or -1 if
 * the domain is empty or too long. */
int queue_tlsrpt_key(char key[TLSRPT_KEY_SIZE], time_t t, const char *domain);
/* Splits a key: the day's start (unix seconds) and the domain inside key. -1: not a key. */
int queue_tlsrpt_key_parse(const char *key, size_t len, time_t *day_start, const char **domain, size_t *dlen);
/* A new, empty record. */
json_object *queue_tlsrpt_record_new(void);
/* Adds one session to rec (a record as stored): its policy found or added (at most
 * TLSRPT_MAX_POLICIES), the summary counted, a failure's detail counted under its (result
 * type, sending ip, mx, receiving ip); the record's rua becomes the session's mailto: URIs
 * that hold an address. Returns 0, or -1 if the session was not counted (no usable rua, no
 * room for its policy, out of memory). */
int queue_tlsrpt_merge(json_object *rec, const Postmesh__TlsSession *s);
/* Is s about domain (the job's destination): its policy domain, case aside? */
int queue_tlsrpt_session_for(const Postmesh__TlsSession *s, const char *domain);
/* The rua addresses of rec (mailto: decoded), at most max. */
int queue_tlsrpt_rua(json_object *rec, char addrs[][256], int max);
/* Summed counts of rec (for the logs). */
void queue_tlsrpt_totals(json_object *rec, long long *ok, long long *failed);
/* Is the report of the day starting at day_start due at now: the day is over and now is past
 * `hour` UTC of the day after (or later days)? */
int queue_tlsrpt_due(time_t day_start, time_t now, int hour);

/* tlsrpt_report.c -------------------------------------------------------------------------*/
struct tlsrpt_meta {
    const char *organization; /* organization-name */
    const char *submitter;    /* our host name: TLS-Report-Submitter, the file name's sender */
    const char *contact;      /* contact-info */
    const char *report_id;    /* unique per report */
    const char *domain;       /* the policy domain */
    time_t start, end;        /* date-range (end inclusive, seconds) */
    time_t now;               /* the message's Date */
};
/* The report's JSON (RFC 8460 4.4) from a stored record: malloc'd, NULL on failure. */
char *queue_tlsrpt_json(json_object *rec, const struct tlsrpt_meta *meta);
/* gzip (RFC 1952) of in: malloc'd in *out. 0 or -1. */
int queue_tlsrpt_gzip(const void *in, size_t len, unsigned char **out, size_t *outlen);
/* The RFC 8460 5.3 message (CRLF lines): multipart/report; report-type="tlsrpt", a text
 * part, the gzipped JSON as application/tlsrpt+gzip. to: the rua addresses. malloc'd. */
char *queue_tlsrpt_message(const struct tlsrpt_meta *meta, const char *json, char to[][256], int nto,
                           size_t *len);

/* tlsrpt.c ---------------------------------------------------------------------------------*/
int queue_tlsrpt_init(struct queue *q);    /* opens nothing: the state and the timer. 0 / -1 */
void queue_tlsrpt_free(struct queue *q);
/* The sessions of an mta JobResult that fits a job this run dispatched (dispatch.c matches
 * it: epoch, job id, queue id, kind) for job_domain: those whose policy domain is job_domain
 * are counted for the next commit, the others refused (one log line). An mta can thus report
 * only on the domains the queue sent it mail for, and only once per job. */
void queue_tlsrpt_apply(struct queue *q, const Postmesh__JobResult *r, const char *job_domain);
/* A result that fits no outstanding job of this run (late, replayed, made up, another kind's):
 * its sessions are not counted; one log line (event=tlsrpt_refused reason=...) if it had any. */
void queue_tlsrpt_refuse(struct queue *q, const Postmesh__JobResult *r, const char *reason);
int queue_tlsrpt_pending(const struct queue *q); /* 1: records wait for a commit */
/* store.c's write transaction: the changed records written, the reported days deleted for
 * the reports in list. 0 or an MDB error (the transaction is then aborted by the caller). */
int queue_tlsrpt_stage(struct queue *q, MDB_txn *txn, struct qmsg **list, size_t n);
/* After that transaction committed. */
void queue_tlsrpt_committed(struct queue *q, struct qmsg **list, size_t n);
/* Queues the reports of every day counted (all) or of the finished days due now. Returns the
 * number queued (-1: the store failed; text says why). */
int queue_tlsrpt_send(struct queue *q, int all, char *text, size_t size);

#endif
