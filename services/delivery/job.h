/* One delivery job: a copy of the queue's Job (the bus message is freed after its handler),
 * the per-recipient decisions and their results. Users are checked on the event loop
 * thread (delivery_job_prepare); the Maildir writes run on a pool thread (delivery_job_run). */
#ifndef DELIVERY_JOB_H
#define DELIVERY_JOB_H
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "postmesh.pb-c.h"
#include "users.h"

struct delivery_rcpt {
    uint32_t index;
    char *address;
    char *maildir;   /* NULL once a result is decided without writing */
    int decided;
    int duplicate;
    Postmesh__RecipientResult__Status status;
    char dsn[16];
    char text[160];
};

struct delivery_job {
    uint64_t job_id;
    char *queue_id;
    char *sender;
    uint8_t *body;
    size_t body_len;
    const char *hostname;
    size_t nrcpt;
    struct delivery_rcpt *rcpts;
    struct delivery_job *next; /* pool queue link */
};

/* Copies what delivery needs out of a Job. NULL on allocation failure. */
struct delivery_job *delivery_job_new(const Postmesh__Job *j, const char *hostname);
void delivery_job_free(struct delivery_job *job);

/* Decides what needs no disk: unknown users (PERMFAIL 5.1.1), no usable users database or
 * mailbox path (TEMPFAIL). users may be NULL (database unreadable). */
void delivery_job_prepare(struct delivery_job *job, const struct pm_config *cfg, const struct pm_users *users);

/* Writes the message for every undecided recipient. Blocking; runs on a pool thread. */
void delivery_job_run(struct delivery_job *job);

/* The result message for the queue (fills storage the caller provides: results must have
 * job->nrcpt entries, ptrs as many pointers). */
void delivery_job_result(const struct delivery_job *job, Postmesh__JobResult *res, Postmesh__RecipientResult *results,
                         Postmesh__RecipientResult **ptrs);

#endif
