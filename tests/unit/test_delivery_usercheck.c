/* The worker's users check over a real privchan socketpair, the parent played by the test:
 * one question per recipient, the job handed on only after the last answer, 5.1.1 for a
 * "no", TEMPFAIL when the parent cannot tell or is gone, waiting jobs counted and dropped
 * cleanly at shutdown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "delivery/usercheck.h"
#include "privchan.h"

static struct event_base *base;
static struct pm_priv_client *priv;
static int parent_fd, worker_fd;
static struct delivery_job *finished;
static int finished_count;

static void on_done(struct delivery_job *job, void *arg)
{
    (void)arg;
    finished = job;
    finished_count++;
}

static int setup(void **state)
{
    (void)state;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) < 0)
        return -1;
    parent_fd = sv[0];
    worker_fd = sv[1];
    base = event_base_new();
    priv = pm_priv_client_new(base, worker_fd, NULL, NULL);
    finished = NULL;
    finished_count = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pm_priv_client_free(priv);
    event_base_free(base);
    if (parent_fd >= 0)
        close(parent_fd);
    close(worker_fd);
    delivery_job_free(finished);
    return 0;
}

static struct delivery_job *make_job(const char *const *addrs, size_t n)
{
    Postmesh__Job j = POSTMESH__JOB__INIT;
    Postmesh__JobRecipient r[4], *rp[4];
    for (size_t i = 0; i < n; i++) {
        postmesh__job_recipient__init(&r[i]);
        r[i].index = (uint32_t)i;
        r[i].address = (char *)addrs[i];
        rp[i] = &r[i];
    }
    j.queue_id = "ABCDEF0123456789";
    j.sender = "s@remote.test";
    j.recipients = rp;
    j.n_recipients = n;
    return delivery_job_new(&j, "mx.example.test");
}

/* The parent's side: answers every question waiting on the socket with answer(address). */
static int answer_all(int (*answer)(const char *))
{
    int n = 0;
    struct pm_priv_msg m;
    while (recv(parent_fd, NULL, 0, MSG_PEEK | MSG_DONTWAIT) >= 0 && pm_priv_recv(parent_fd, &m) == 1) {
        assert_int_equal(m.op, PM_PRIV_RCPT_EXISTS);
        struct pm_priv_msg reply = {.id = m.id, .op = m.op, .result = answer(m.a)};
        assert_int_equal(pm_priv_send(parent_fd, &reply), 0);
        pm_priv_msg_clear(&m);
        n++;
    }
    return n;
}

static int only_alice(const char *a) { return strcmp(a, "alice@example.test") == 0; }
static int cannot_tell(const char *a) { (void)a; return -1; }

static void test_answers_decide(void **state)
{
    (void)state;
    struct delivery_checks *c = delivery_checks_new(priv, on_done, NULL);
    const char *addrs[] = {"alice@example.test", "nobody@example.test", "bob@example.test"};
    delivery_checks_start(c, make_job(addrs, 3));
    assert_int_equal(delivery_checks_pending(c), 1);
    assert_int_equal(finished_count, 0); /* nothing before the answers */
    assert_int_equal(answer_all(only_alice), 3);
    event_base_loop(base, EVLOOP_NONBLOCK);
    assert_int_equal(finished_count, 1);
    assert_int_equal(delivery_checks_pending(c), 0);
    assert_false(finished->rcpts[0].decided);
    assert_int_equal(finished->rcpts[1].status, POSTMESH__RECIPIENT_RESULT__STATUS__PERMFAIL);
    assert_string_equal(finished->rcpts[1].dsn, "5.1.1");
    assert_int_equal(finished->rcpts[2].status, POSTMESH__RECIPIENT_RESULT__STATUS__PERMFAIL);
    delivery_job_locate(finished, ".");
    assert_string_equal(finished->rcpts[0].maildir, "./example.test/alice/Maildir");
    delivery_checks_free(c);
}

static void test_no_answer_is_temporary(void **state)
{
    (void)state;
    struct delivery_checks *c = delivery_checks_new(priv, on_done, NULL);
    const char *addrs[] = {"alice@example.test"};
    delivery_checks_start(c, make_job(addrs, 1));
    answer_all(cannot_tell);
    event_base_loop(base, EVLOOP_NONBLOCK);
    assert_int_equal(finished->rcpts[0].status, POSTMESH__RECIPIENT_RESULT__STATUS__TEMPFAIL);
    delivery_job_free(finished);
    finished = NULL;

    /* the parent goes away with a question open: TEMPFAIL, and later jobs too (at once) */
    delivery_checks_start(c, make_job(addrs, 1));
    close(parent_fd);
    parent_fd = -1;
    event_base_loop(base, EVLOOP_NONBLOCK);
    assert_int_equal(finished_count, 2);
    assert_int_equal(finished->rcpts[0].status, POSTMESH__RECIPIENT_RESULT__STATUS__TEMPFAIL);
    delivery_job_free(finished);
    finished = NULL;
    delivery_checks_start(c, make_job(addrs, 1));
    assert_int_equal(finished_count, 3);
    assert_string_equal(finished->rcpts[0].dsn, "4.3.0");
    delivery_checks_free(c);
}

static void test_shutdown_drops_waiting_jobs(void **state)
{
    (void)state;
    struct delivery_checks *c = delivery_checks_new(priv, on_done, NULL);
    const char *addrs[] = {"alice@example.test", "bob@example.test"};
    delivery_checks_start(c, make_job(addrs, 2));
    delivery_checks_start(c, make_job(addrs, 1));
    const char *none[] = {NULL};
    delivery_checks_start(c, make_job(none, 0)); /* no recipient: handed on at once */
    assert_int_equal(finished_count, 1);
    assert_int_equal(delivery_checks_pending(c), 2);
    delivery_checks_free(c); /* frees both waiting jobs (ASan checks) */
    answer_all(only_alice);  /* late answers find nobody */
    event_base_loop(base, EVLOOP_NONBLOCK);
    assert_int_equal(finished_count, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_answers_decide, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_answer_is_temporary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_drops_waiting_jobs, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
