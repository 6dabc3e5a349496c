/* One delivery job: a copy of the queue's Job (the bus message is freed after its handler),
 * the per-recipient decisions and their results. Users are checked on the event loop
 * thread (delivery_job_set_user, then delivery_job_locate); the Maildir writes run on a pool
 * thread (delivery_job_run). */
#ifndef DELIVERY_JOB_H
#define DELIVERY_JOB_H
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "postmesh.pb-c.h"

struct delivery_rcpt {
    uint32_t index;
    char *address;
    char *maildir;   /* NULL once a result is decided without writing */
    int decided;
    int duplicate;
    int error;       /* errno of a failed write (EACCES: the parent may repair ownership) */
    Postmesh__RecipientResult__Status status;
    char dsn[16];
    char text[160];
};

struct pm_job;

struct delivery_job {
    struct pm_job *handle; /* the job client's job, answered once the writes are done */
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

/* The users check's answer for recipient i (asked of the privileged parent, usercheck.h):
 * 1 a local user; 0 no such user (PERMFAIL 5.1.1); -1 no answer (TEMPFAIL 4.3.0). */
void delivery_job_set_user(struct delivery_job *job, size_t i, int exists);

/* Decides the mailbox path (below mail_root, mailroot.h) of every recipient not decided
 * yet; an address with no usable mailbox name fails permanently (5.1.3). */
void delivery_job_locate(struct delivery_job *job, const char *mail_root);

/* Writes the message for every undecided recipient. Blocking; runs on a pool thread. */
void delivery_job_run(struct delivery_job *job);

/* The result message for the queue (fills storage the caller provides: results must have
 * job->nrcpt entries, ptrs as many pointers). */
void delivery_job_result(const struct delivery_job *job, Postmesh__JobResult *res, Postmesh__RecipientResult *results,
                         Postmesh__RecipientResult **ptrs);

#endif
