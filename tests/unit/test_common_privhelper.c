/* The parent's side of the helper processes (privhelper.c), with real helper processes and a
 * socketpair standing in for the sandbox: questions are forwarded without waiting and their
 * answers come back under the sandbox's ids, a slow helper never delays another, questions
 * beyond the cap are answered PM_PRIV_BUSY at once, an answer never reaches a later sandbox,
 * a stuck helper is replaced, and a declared file that changes is handed over again (also
 * when it is root's 0600 and the helper runs as postmesh-auth). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "heldfile.h"
#include "privhelper.h"

enum { OP_SLOW = PM_PRIV_AUTH, OP_FAST = PM_PRIV_RCPT_EXISTS, OP_FILE = PM_PRIV_SENDER_OK };

static void *open_state(void *arg) { return arg; }

/* OP_SLOW: 300 ms (or as long as a = "hang" says: 5 s), then 1. OP_FAST: 1 at once.
 * OP_FILE: the first byte of the declared file, read as the users loader would read it. */
static void answer(const struct pm_priv_msg *req, struct pm_priv_msg *reply, void *state)
{
    const char *path = state;
    if (req->op == OP_SLOW) {
        struct timespec ts = {0, 300 * 1000 * 1000};
        if (req->a && strcmp(req->a, "hang") == 0)
            ts = (struct timespec){5, 0};
        nanosleep(&ts, NULL);
        reply->result = 1;
    } else if (req->op == OP_FAST) {
        reply->result = 1;
    } else if (req->op == OP_FILE) {
        int fd;
        if (!pm_heldfile_open(path, &fd))
            fd = open(path, O_RDONLY | O_CLOEXEC);
        char c = 0;
        reply->result = fd >= 0 && read(fd, &c, 1) == 1 ? c : -errno;
        if (fd >= 0)
            close(fd);
    }
}

struct fixture {
    int sandbox[2]; /* [0] the parent's end, [1] the "sandbox" reads answers here */
    char path[64];
};

static int setup(void **state)
{
    static struct fixture f;
    memset(&f, 0, sizeof f);
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, f.sandbox), 0);
    snprintf(f.path, sizeof f.path, "/tmp/pm-privhelper-%d", (int)getpid());
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    close(f->sandbox[0]);
    close(f->sandbox[1]);
    unlink(f->path);
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    return 0;
}

/* The sandbox running now is generation live_gen; an answer for another one is dropped. */
static unsigned live_gen;

static int fd_of(unsigned gen, void *arg)
{
    struct fixture *f = arg;
    return gen == live_gen ? f->sandbox[0] : -1;
}

static void ask(struct pm_priv_helper *h, struct fixture *f, uint32_t id, uint32_t op, const char *a, unsigned gen)
{
    struct pm_priv_msg m = {.id = id, .op = op, .a = (char *)a};
    live_gen = gen;
    pm_priv_helper_forward(h, &m, gen, fd_of, f);
}

/* The next answer the sandbox gets within ms: its id (result in *result), 0 if none. */
static uint32_t next_answer(struct fixture *f, struct pm_priv_helper *const *hs, int nh, unsigned gen, int ms,
                            int *result)
{
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        struct pollfd p[4] = {{f->sandbox[1], POLLIN, 0}};
        for (int i = 0; i < nh; i++)
            p[1 + i] = (struct pollfd){pm_priv_helper_fd(hs[i]), POLLIN, 0};
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        int left = ms - (int)((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000);
        if (left <= 0)
            return 0;
        int wait = left; /* as the supervisor does: wake for the oldest question's deadline */
        for (int i = 0; i < nh; i++) {
            int t = pm_priv_helper_timeout_ms(hs[i]);
            if (t >= 0 && t < wait)
                wait = t;
        }
        poll(p, (nfds_t)(1 + nh), wait);
        if (p[0].revents & POLLIN) {
            struct pm_priv_msg m;
            assert_int_equal(pm_priv_recv(f->sandbox[1], &m), 1);
            *result = m.result;
            pm_priv_msg_clear(&m);
            return m.id;
        }
        for (int i = 0; i < nh; i++) {
            live_gen = gen;
            if (p[1 + i].revents)
                pm_priv_helper_deliver(hs[i], fd_of, f);
            pm_priv_helper_expire(hs[i], fd_of, f);
        }
    }
}

static void test_slow_helper_does_not_delay_another(void **state)
{
    struct fixture *f = *state;
    struct pm_helper_spec slow_spec = {.name = "slow", .open = open_state, .answer = answer, .max_pending = 3};
    struct pm_helper_spec fast_spec = {.name = "fast", .open = open_state, .answer = answer};
    struct pm_priv_helper *slow = pm_priv_helper_start(&slow_spec), *fast = pm_priv_helper_start(&fast_spec);
    assert_non_null(slow);
    assert_non_null(fast);
    struct pm_priv_helper *hs[] = {slow, fast};
    for (uint32_t id = 1; id <= 5; id++)
        ask(slow, f, id, OP_SLOW, "x", 1);
    assert_int_equal(pm_priv_helper_pending(slow), 3);
    int r;
    /* beyond the cap: answered at once, without the helper */
    assert_int_equal(next_answer(f, hs, 2, 1, 50, &r), 4);
    assert_int_equal(r, PM_PRIV_BUSY);
    assert_int_equal(next_answer(f, hs, 2, 1, 50, &r), 5);
    assert_int_equal(r, PM_PRIV_BUSY);
    /* the quick question overtakes the 900 ms of slow ones */
    ask(fast, f, 100, OP_FAST, "x", 1);
    assert_int_equal(next_answer(f, hs, 2, 1, 250, &r), 100);
    assert_int_equal(r, 1);
    for (uint32_t id = 1; id <= 3; id++) {
        assert_int_equal(next_answer(f, hs, 2, 1, 2000, &r), id);
        assert_int_equal(r, 1);
    }
    assert_int_equal(pm_priv_helper_pending(slow), 0);
    /* an answer for the sandbox before a restart never reaches the next one */
    ask(fast, f, 7, OP_FAST, "x", 1);
    assert_int_equal(next_answer(f, hs, 2, 2, 200, &r), 0);
    assert_int_equal(pm_priv_helper_pending(fast), 0);
    pm_priv_helper_stop(slow);
    pm_priv_helper_stop(fast);
}

static void test_stuck_helper_is_replaced(void **state)
{
    struct fixture *f = *state;
    struct pm_helper_spec spec = {.name = "stuck", .open = open_state, .answer = answer, .timeout_ms = 200};
    struct pm_priv_helper *h = pm_priv_helper_start(&spec);
    struct pm_priv_helper *hs[] = {h};
    ask(h, f, 1, OP_SLOW, "hang", 1);
    ask(h, f, 2, OP_FAST, "x", 1);
    int r;
    assert_in_range(pm_priv_helper_timeout_ms(h), 1, 201);
    assert_int_equal(next_answer(f, hs, 1, 1, 2000, &r), 1);
    assert_int_equal(r, -1);
    assert_int_equal(next_answer(f, hs, 1, 1, 100, &r), 2);
    assert_int_equal(r, -1);
    assert_int_equal(pm_priv_helper_fd(h), -1);
    /* a new helper for the next question, once a second has passed since the last start */
    struct timespec second = {1, 0};
    nanosleep(&second, NULL);
    ask(h, f, 3, OP_FAST, "x", 1);
    assert_int_equal(next_answer(f, hs, 1, 1, 1000, &r), 3);
    assert_int_equal(r, 1);
    pm_priv_helper_stop(h);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    char tmp[80];
    snprintf(tmp, sizeof tmp, "%s.new", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    fchmod(fd, mode);
    close(fd);
    assert_int_equal(rename(tmp, path), 0); /* a new inode, as `postmesh user add` makes */
}

static void test_declared_file_is_handed_over(void **state)
{
    struct fixture *f = *state;
    int root = geteuid() == 0 && getpwnam(PM_PRIV_HELPER_USER) != NULL;
    write_file(f->path, "A", 0600); /* root's only, when run as root */
    const char *files[] = {f->path, NULL};
    struct pm_helper_spec spec = {.name = "files", .open = open_state, .answer = answer, .arg = f->path,
                                  .files = files, .user = PM_PRIV_HELPER_USER};
    struct pm_priv_helper *h = pm_priv_helper_start(&spec);
    struct pm_priv_helper *hs[] = {h};
    int r;
    ask(h, f, 1, OP_FILE, NULL, 1);
    assert_int_equal(next_answer(f, hs, 1, 1, 2000, &r), 1);
    assert_int_equal(r, 'A'); /* opened before the drop */
    write_file(f->path, "B", 0600);
    ask(h, f, 2, OP_FILE, NULL, 1);
    assert_int_equal(next_answer(f, hs, 1, 1, 2000, &r), 2);
    assert_int_equal(r, 'B'); /* opened again by the parent, handed over */
    unlink(f->path);
    ask(h, f, 3, OP_FILE, NULL, 1);
    assert_int_equal(next_answer(f, hs, 1, 1, 2000, &r), 3);
    assert_int_equal(r, -ENOENT);
    write_file(f->path, "C", 0600);
    ask(h, f, 4, OP_FILE, NULL, 1);
    assert_int_equal(next_answer(f, hs, 1, 1, 2000, &r), 4);
    assert_int_equal(r, 'C');
    if (!root)
        print_message("not root: the helper did not drop (the hand-over was still tested)\n");
    pm_priv_helper_stop(h);
}

/* In this process: a held path reads through its descriptor, from the start every time. */
static void test_heldfile(void **state)
{
    struct fixture *f = *state;
    write_file(f->path, "hello", 0600);
    int fd;
    assert_int_equal(pm_heldfile_open(f->path, &fd), 0); /* not held */
    assert_int_equal(pm_heldfile_set(f->path, pm_heldfile_open_path(f->path), 0), 0);
    unlink(f->path); /* gone by name, still readable through the descriptor */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pm_heldfile_open(f->path, &fd), 1);
        char buf[8] = {0};
        assert_int_equal(read(fd, buf, sizeof buf), 5);
        assert_string_equal(buf, "hello");
        close(fd);
    }
    struct pm_filestamp st;
    assert_int_equal(pm_heldfile_stamp(f->path, &st), 1);
    assert_true(st.exists);
    assert_int_equal(st.size, 5);
    assert_int_equal(pm_heldfile_set(f->path, -1, ENOENT), 0);
    assert_int_equal(pm_heldfile_open(f->path, &fd), 1);
    assert_int_equal(fd, -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(pm_heldfile_open_path("/dev/null"), -1); /* regular files only */
    assert_int_equal(errno, EINVAL);
    pm_heldfile_reset();
}

int main(void)
{
    /* The helpers' seccomp filter is the integration tests' business (test_frontend_limits.py
     * reads it from /proc); here it would only stop valgrind, which cannot follow seccomp. */
    setenv("POSTMESH_SECCOMP", "off", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_slow_helper_does_not_delay_another, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stuck_helper_is_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_declared_file_is_handed_over, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heldfile, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
