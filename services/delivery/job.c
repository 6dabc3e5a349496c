#include "job.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailroot.h"
#include "maildir.h"

/* j as the edge let it through (bus_rules.c), or as a test builds it: every string set. */
struct delivery_job *delivery_job_new(const Postmesh__Job *j, const char *hostname)
{
    struct delivery_job *job = calloc(1, sizeof *job);
    if (!job)
        return NULL;
    job->job_id = j->job_id;
    job->queue_id = strdup(j->queue_id);
    job->sender = strdup(j->sender);
    job->hostname = hostname;
    job->body_len = j->body.len;
    job->body = malloc(j->body.len ? j->body.len : 1);
    job->nrcpt = j->n_recipients;
    job->rcpts = calloc(j->n_recipients ? j->n_recipients : 1, sizeof *job->rcpts);
    if (!job->queue_id || !job->sender || !job->body || !job->rcpts) {
        delivery_job_free(job);
        return NULL;
    }
    if (j->body.len)
        memcpy(job->body, j->body.data, j->body.len);
    for (size_t i = 0; i < job->nrcpt; i++) {
        job->rcpts[i].index = j->recipients[i]->index;
        job->rcpts[i].address = strdup(j->recipients[i]->address);
        if (!job->rcpts[i].address) {
            delivery_job_free(job);
            return NULL;
        }
    }
    return job;
}

void delivery_job_free(struct delivery_job *job)
{
    if (!job)
        return;
    for (size_t i = 0; job->rcpts && i < job->nrcpt; i++) {
        free(job->rcpts[i].address);
        free(job->rcpts[i].maildir);
    }
    free(job->rcpts);
    free(job->queue_id);
    free(job->sender);
    free(job->body);
    free(job);
}

static void decide(struct delivery_rcpt *r, Postmesh__RecipientResult__Status status, const char *dsn,
                   const char *text)
{
    r->decided = 1;
    r->status = status;
    snprintf(r->dsn, sizeof r->dsn, "%s", dsn);
    snprintf(r->text, sizeof r->text, "%s", text);
}

void delivery_job_set_user(struct delivery_job *job, size_t i, int exists)
{
    if (i >= job->nrcpt || job->rcpts[i].decided)
        return;
    struct delivery_rcpt *r = &job->rcpts[i];
    if (exists < 0)
        decide(r, POSTMESH__RECIPIENT_RESULT__STATUS__TEMPFAIL, "4.3.0", "users database unavailable");
    else if (!exists)
        decide(r, POSTMESH__RECIPIENT_RESULT__STATUS__PERMFAIL, "5.1.1", "no such local user");
}

void delivery_job_locate(struct delivery_job *job, const char *mail_root)
{
    for (size_t i = 0; i < job->nrcpt; i++) {
        struct delivery_rcpt *r = &job->rcpts[i];
        char path[PATH_MAX];
        if (r->decided)
            continue;
        if (pm_mailroot_maildir(mail_root, r->address, path, sizeof path) < 0)
            decide(r, POSTMESH__RECIPIENT_RESULT__STATUS__PERMFAIL, "5.1.3", "address has no usable mailbox name");
        else if (!(r->maildir = strdup(path)))
            decide(r, POSTMESH__RECIPIENT_RESULT__STATUS__TEMPFAIL, "4.3.0", "out of memory");
    }
}

/* Disk errors are temporary: the queue keeps the message and retries. */
static void decide_errno(struct delivery_rcpt *r, int err)
{
    char text[160];
    snprintf(text, sizeof text, "cannot write mailbox: %s", strerror(err));
    const char *dsn = err == EDQUOT ? "4.2.2" : err == ENOSPC ? "4.3.1" : "4.3.0";
    decide(r, POSTMESH__RECIPIENT_RESULT__STATUS__TEMPFAIL, dsn, text);
    r->error = err;
}

void delivery_job_run(struct delivery_job *job)
{
    char name[512], digest[DELIVERY_DIGEST_LEN + 1];
    delivery_body_digest(job->body, job->body_len, digest);
    int name_ok = delivery_file_name(job->queue_id, 0, digest, job->hostname, name, sizeof name) == 0;
    for (size_t i = 0; i < job->nrcpt; i++) {
        struct delivery_rcpt *r = &job->rcpts[i];
        if (r->decided)
            continue;
        if (!name_ok || delivery_file_name(job->queue_id, r->index, digest, job->hostname, name, sizeof name) < 0) {
            decide(r, POSTMESH__RECIPIENT_RESULT__STATUS__TEMPFAIL, "4.3.0", "unusable queue id");
            continue;
        }
        size_t headlen;
        char *head = delivery_trace_headers(job->sender, r->address, &headlen);
        if (!head) {
            decide(r, POSTMESH__RECIPIENT_RESULT__STATUS__TEMPFAIL, "4.3.0", "out of memory");
            continue;
        }
        int rc = delivery_maildir_write(r->maildir, name, head, headlen, job->body, job->body_len);
        free(head);
        if (rc < 0) {
            decide_errno(r, -rc);
        } else {
            r->duplicate = rc == DELIVERY_DUPLICATE;
            decide(r, POSTMESH__RECIPIENT_RESULT__STATUS__DELIVERED, "2.0.0",
                   r->duplicate ? "already delivered" : "delivered to mailbox");
        }
    }
}

void delivery_job_result(const struct delivery_job *job, Postmesh__JobResult *res, Postmesh__RecipientResult *results,
                         Postmesh__RecipientResult **ptrs)
{
    postmesh__job_result__init(res);
    res->job_id = job->job_id;
    res->queue_id = job->queue_id;
    res->n_results = job->nrcpt;
    res->results = ptrs;
    for (size_t i = 0; i < job->nrcpt; i++) {
        const struct delivery_rcpt *r = &job->rcpts[i];
        postmesh__recipient_result__init(&results[i]);
        results[i].index = r->index;
        results[i].status = r->status;
        results[i].dsn_status = (char *)r->dsn;
        results[i].text = (char *)r->text;
        ptrs[i] = &results[i];
    }
}
