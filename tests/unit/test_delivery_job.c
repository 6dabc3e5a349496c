/* A delivery job end to end without the bus: unknown users fail permanently, write errors
 * are temporary (never reported delivered), a repeated job is a duplicate, results carry
 * one entry per recipient with its index. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "delivery/job.h"
#include "delivery/maildir.h"
#include "users.h"

static char root[128];
static struct pm_config cfg;
static struct pm_users *users;

static int setup(void **state)
{
    (void)state;
    strcpy(root, "/tmp/pmjobXXXXXX");
    assert_non_null(mkdtemp(root));
    char path[256];
    snprintf(path, sizeof path, "%s/users", root);
    FILE *f = fopen(path, "w");
    /* the hash is never checked here: only existence matters to delivery */
    fputs("alice@example.test:{SHA512-CRYPT}$6$salt$wZU8LXJfJJqoagopbB7RuK6JEotEMZ0CQDy0phpPAuLMYQFcmf6L6BdAbs/Q7w7o1qsZ9pFqFVY4yuUSWgaYt1\n"
          "Bob@Example.test:{SHA512-CRYPT}$6$salt$wZU8LXJfJJqoagopbB7RuK6JEotEMZ0CQDy0phpPAuLMYQFcmf6L6BdAbs/Q7w7o1qsZ9pFqFVY4yuUSWgaYt1\n",
          f);
    fclose(f);
    char err[256];
    users = pm_users_load(path, err, sizeof err);
    assert_non_null(users);
    memset(&cfg, 0, sizeof cfg);
    cfg.state_dir = root;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pm_users_free(users);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    return system(cmd);
}

/* What the worker does once the parent answered for every recipient: the users check (as
 * the helper answers it: -1 without a users database), then the mailbox paths. */
static void prepare(struct delivery_job *job, const struct pm_users *u)
{
    for (size_t i = 0; i < job->nrcpt; i++)
        delivery_job_set_user(job, i, u ? pm_users_exists(u, job->rcpts[i].address) : -1);
    char mail_root[256];
    snprintf(mail_root, sizeof mail_root, "%s/mail", root);
    delivery_job_locate(job, mail_root);
}

/* A Job as the queue sends it: recipients with their envelope indexes. */
static const char job_body[] = "Subject: hi\r\n\r\nbody\r\n";

static struct delivery_job *make_job_with(const char *qid, const char *const *addrs, const uint32_t *idx, size_t n,
                                          const char *body)
{
    Postmesh__Job j = POSTMESH__JOB__INIT;
    Postmesh__JobRecipient r[4], *rp[4];
    for (size_t i = 0; i < n; i++) {
        postmesh__job_recipient__init(&r[i]);
        r[i].index = idx[i];
        r[i].address = (char *)addrs[i];
        rp[i] = &r[i];
    }
    j.job_id = 42;
    j.queue_id = (char *)qid;
    j.kind = POSTMESH__WORKER_KIND__WORKER_DELIVERY;
    j.sender = "s@remote.test";
    j.recipients = rp;
    j.n_recipients = n;
    j.body.data = (uint8_t *)body;
    j.body.len = strlen(body);
    return delivery_job_new(&j, "mx.example.test");
}

static struct delivery_job *make_job(const char *qid, const char *const *addrs, const uint32_t *idx, size_t n)
{
    return make_job_with(qid, addrs, idx, n, job_body);
}

static void test_results_per_recipient(void **state)
{
    (void)state;
    const char *addrs[] = {"alice@example.test", "nobody@example.test", "bob@example.test"};
    const uint32_t idx[] = {0, 3, 5};
    struct delivery_job *job = make_job("ABCDEF0123456789", addrs, idx, 3);
    prepare(job, users);
    delivery_job_run(job);
    assert_int_equal(job->rcpts[0].status, POSTMESH__RECIPIENT_RESULT__STATUS__DELIVERED);
    assert_int_equal(job->rcpts[1].status, POSTMESH__RECIPIENT_RESULT__STATUS__PERMFAIL);
    assert_string_equal(job->rcpts[1].dsn, "5.1.1");
    assert_int_equal(job->rcpts[2].status, POSTMESH__RECIPIENT_RESULT__STATUS__DELIVERED);

    Postmesh__JobResult res;
    Postmesh__RecipientResult results[3], *ptrs[3];
    delivery_job_result(job, &res, results, ptrs);
    assert_int_equal(res.job_id, 42);
    assert_string_equal(res.queue_id, "ABCDEF0123456789");
    assert_int_equal(res.n_results, 3);
    assert_int_equal(res.results[1]->index, 3);
    assert_int_equal(res.results[2]->index, 5);
    delivery_job_free(job);

    char path[512], digest[DELIVERY_DIGEST_LEN + 1];
    delivery_body_digest((const uint8_t *)job_body, strlen(job_body), digest);
    snprintf(path, sizeof path, "%s/mail/example.test/bob/Maildir/new/ABCDEF0123456789.5.%s.mx.example.test", root,
             digest);
    assert_int_equal(access(path, F_OK), 0);

    /* the same job again (lease expired): delivered, but as a duplicate */
    job = make_job("ABCDEF0123456789", addrs, idx, 3);
    prepare(job, users);
    delivery_job_run(job);
    assert_int_equal(job->rcpts[0].status, POSTMESH__RECIPIENT_RESULT__STATUS__DELIVERED);
    assert_true(job->rcpts[0].duplicate);
    delivery_job_free(job);

    /* Another message that carries the same queue id (two queue shards that drew the same
     * random tag, in the same tick): delivered as a new file, never taken for a repeat. */
    job = make_job_with("ABCDEF0123456789", addrs, idx, 3, "Subject: other\r\n\r\nanother message\r\n");
    prepare(job, users);
    delivery_job_run(job);
    assert_int_equal(job->rcpts[0].status, POSTMESH__RECIPIENT_RESULT__STATUS__DELIVERED);
    assert_false(job->rcpts[0].duplicate);
    delivery_job_free(job);
}

static void test_write_errors_are_temporary(void **state)
{
    (void)state;
    const char *addrs[] = {"alice@example.test"};
    const uint32_t idx[] = {0};
    /* A file size limit makes the write fail (EFBIG) like a full disk would. */
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, small = {8, 8};
    getrlimit(RLIMIT_FSIZE, &old);
    small.rlim_max = old.rlim_max;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    struct delivery_job *job = make_job("FEDCBA9876543210", addrs, idx, 1);
    prepare(job, users);
    delivery_job_run(job);
    setrlimit(RLIMIT_FSIZE, &old);
    assert_int_equal(job->rcpts[0].status, POSTMESH__RECIPIENT_RESULT__STATUS__TEMPFAIL);
    assert_string_equal(job->rcpts[0].dsn, "4.3.0");
    delivery_job_free(job);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/mail/example.test/alice/Maildir/new/FEDCBA9876543210.0.mx.example.test", root);
    assert_int_not_equal(access(dir, F_OK), 0); /* nothing half-written in new/ */

    /* after the problem is gone, the retry delivers */
    job = make_job("FEDCBA9876543210", addrs, idx, 1);
    prepare(job, users);
    delivery_job_run(job);
    assert_int_equal(job->rcpts[0].status, POSTMESH__RECIPIENT_RESULT__STATUS__DELIVERED);
    assert_false(job->rcpts[0].duplicate);
    delivery_job_free(job);
}

static void test_no_users_database_is_temporary(void **state)
{
    (void)state;
    const char *addrs[] = {"alice@example.test"};
    const uint32_t idx[] = {0};
    struct delivery_job *job = make_job("0123456789ABCDEF", addrs, idx, 1);
    prepare(job, NULL);
    delivery_job_run(job);
    assert_int_equal(job->rcpts[0].status, POSTMESH__RECIPIENT_RESULT__STATUS__TEMPFAIL);
    delivery_job_free(job);
    /* a queue id that could name a path is refused, temporarily */
    job = make_job("../../x", addrs, idx, 1);
    prepare(job, users);
    delivery_job_run(job);
    assert_int_equal(job->rcpts[0].status, POSTMESH__RECIPIENT_RESULT__STATUS__TEMPFAIL);
    delivery_job_free(job);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_results_per_recipient, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_errors_are_temporary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_users_database_is_temporary, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
