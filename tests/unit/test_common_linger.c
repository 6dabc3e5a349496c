/* The lingering close (common/linger.c) on a real loopback TCP connection: the server's end
 * is handed over with the client's input still unread, and the client must then read the
 * last reply and a clean end of stream (a FIN, never a RST), go on sending without an
 * error, and the socket must be closed once the client closes or the deadline passes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <event2/event.h>

#include "linger.h"

/* A connected pair over 127.0.0.1: *server is the accepted end, *client the other. */
static void tcp_pair(int *server, int *client)
{
    int lsn = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    assert_int_equal(bind(lsn, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(lsn, 1), 0);
    assert_int_equal(getsockname(lsn, (struct sockaddr *)&a, &alen), 0);
    *client = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(*client, (struct sockaddr *)&a, sizeof a), 0);
    *server = accept(lsn, NULL, NULL);
    assert_true(*server >= 0);
    close(lsn);
    struct timeval tv = {5, 0};
    setsockopt(*client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Runs the loop until nothing lingers or `limit` seconds pass. */
static void run_until_done(struct event_base *base, double limit)
{
    double end = now_s() + limit;
    while (pm_linger_count() > 0 && now_s() < end)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

static void test_reply_and_fin_survive_unread_input(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    int server, client;
    tcp_pair(&server, &client);
    char junk[65536];
    memset(junk, 'x', sizeof junk);
    assert_int_equal(send(client, junk, sizeof junk, 0), (ssize_t)sizeof junk); /* never read */
    assert_int_equal(send(server, "* BYE too big\r\n", 15, 0), 15);
    pm_linger_close(base, server);
    assert_int_equal(pm_linger_count(), 1);
    /* The client goes on sending a while (more than any socket buffer holds): no error. */
    size_t sent = 0;
    for (double end = now_s() + 5; sent < 8 * 1024 * 1024 && now_s() < end;) {
        ssize_t n = send(client, junk, sizeof junk, MSG_NOSIGNAL | MSG_DONTWAIT);
        assert_true(n > 0 || errno == EAGAIN);
        sent += n > 0 ? (size_t)n : 0;
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
    assert_true(sent >= 8 * 1024 * 1024);
    char got[64];
    assert_int_equal(recv(client, got, sizeof got, 0), 15);
    assert_memory_equal(got, "* BYE too big\r\n", 15);
    assert_int_equal(recv(client, got, sizeof got, 0), 0); /* our FIN, not ECONNRESET */
    assert_int_equal(pm_linger_count(), 1);             /* the client has not closed yet */
    close(client);
    run_until_done(base, 5);
    assert_int_equal(pm_linger_count(), 0);
    event_base_free(base);
}

static void test_a_client_that_never_closes_is_dropped_at_the_deadline(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    int server, client;
    tcp_pair(&server, &client);
    double t0 = now_s();
    pm_linger_close(base, server);
    run_until_done(base, PM_LINGER_MS / 1000.0 + 3);
    double took = now_s() - t0;
    assert_int_equal(pm_linger_count(), 0);
    assert_true(took >= PM_LINGER_MS / 1000.0 - 0.1 && took < PM_LINGER_MS / 1000.0 + 2);
    char got[8];
    assert_int_equal(recv(client, got, sizeof got, 0), 0);
    close(client);
    event_base_free(base);
}

static void test_a_dead_socket_is_closed_at_once(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    int server, client;
    tcp_pair(&server, &client);
    close(client);
    usleep(10000);
    pm_linger_close(base, server); /* the client's FIN is already there */
    run_until_done(base, 1);
    assert_int_equal(pm_linger_count(), 0);
    pm_linger_close(base, -1); /* nothing to do */
    assert_int_equal(pm_linger_count(), 0);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_and_fin_survive_unread_input),
        cmocka_unit_test(test_a_client_that_never_closes_is_dropped_at_the_deadline),
        cmocka_unit_test(test_a_dead_socket_is_closed_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
