/* loadgen: the benchmark's EHLO load generator (scripts/bench.py drives it; not installed).
 * One libevent loop, N concurrent SMTP connections on loopback. Three modes:
 *   send (default): EHLO, then per message MAIL+RCPT+DATA in one write when the server
 *     offers PIPELINING (one command per round trip otherwise), the body after the 354;
 *     records each message's end-of-DATA -> 250 latency; -n opens a new connection per
 *     message; -D N sends message k to local@d<k mod N>.<domain> of -t local@domain.
 *     Prints `messages= failed= seconds= msgs_per_s= p50_ms= p99_ms=`.
 *   -L COUNT: COUNT sequential connect + EHLO + QUIT; prints the connect..221 latency.
 *   -I COUNT: COUNT sessions that got their EHLO reply, then silent: prints `ready=COUNT`
 *     and holds them until stdin closes (the bench measures the server meanwhile).
 * Every run is bounded by -T seconds (exit 2 on timeout). Exit 1 when anything failed. */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum state { S_GREET, S_EHLO, S_ENVELOPE, S_BODY, S_QUIT, S_IDLE };
enum mode { M_SEND, M_LATENCY, M_IDLE };

struct conn {
    struct bufferevent *bev;
    enum state state;
    int pipelining;
    int pending;     /* envelope replies still expected */
    int ok;          /* envelope replies so far were all positive */
    int in_message;  /* a message was started on this connection */
    int sent;        /* messages started on this connection */
    double t_start;  /* connect (latency mode) or end of DATA (send mode) */
    char rcpt[320];  /* this message's recipient */
};

static struct {
    enum mode mode;
    const char *host, *from, *rcpt, *helo;
    int port, concurrency, per_message_conn, size, timeout;
    int domains;  /* -D: recipients spread over this many domains (0: all to -t) */
    int sources;  /* -S: spread connections over 127.0.0.10 .. 10+sources-1 (0: the kernel picks) */
    long next_source;
    long target;  /* messages (send), connections (latency, idle) */
    long started, done, failed, connfail, open, idle_ready, lost;
    double *lat;
    long nlat;
    double t0;
    char *body;
    size_t body_len;
    struct event_base *base;
    int announced, timed_out;
} g = {.host = "127.0.0.1", .from = "loadgen@client.test", .rcpt = "bench@example.test",
       .helo = "loadgen.client.test", .concurrency = 10, .size = 10240, .timeout = 300, .target = 1000};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void conn_open(void);

static int finished(void) {
    if (g.mode == M_IDLE) return 0;
    return g.done + g.failed >= g.target;
}

static void conn_free(struct conn *c) {
    bufferevent_free(c->bev);
    free(c);
    g.open--;
}

/* A connection ended (cleanly or not): open the next one if work is left. */
static void conn_end(struct conn *c, int failed) {
    if (g.mode == M_IDLE && c->state == S_IDLE) g.lost++;
    else if (failed && (c->in_message || g.mode != M_SEND)) g.failed++;
    else if (failed) g.connfail++;
    conn_free(c);
    if (g.connfail > 1000 || g.failed > g.target) { /* the server refuses everything: stop */
        event_base_loopbreak(g.base);
        return;
    }
    if (!finished() && g.started < g.target) conn_open();
    else if (g.open == 0) event_base_loopbreak(g.base);
}

static void send_str(struct conn *c, const char *s) { bufferevent_write(c->bev, s, strlen(s)); }

static void quit(struct conn *c) {
    c->state = S_QUIT;
    send_str(c, "QUIT\r\n");
}

/* The recipient of message number `message_no`: -t itself, or with -D its local part at
 * d<message_no mod domains>.<its domain>. */
static void message_rcpt(struct conn *c, long message_no) {
    const char *at = strrchr(g.rcpt, '@');
    if (g.domains < 1 || !at) {
        snprintf(c->rcpt, sizeof c->rcpt, "%s", g.rcpt);
        return;
    }
    snprintf(c->rcpt, sizeof c->rcpt, "%.*s@d%ld.%s", (int)(at - g.rcpt), g.rcpt, message_no % g.domains, at + 1);
}

/* The connection is ready for its next message, or for QUIT. */
static void next_message(struct conn *c) {
    if (g.started >= g.target || (g.per_message_conn && c->sent)) {
        quit(c);
        return;
    }
    message_rcpt(c, g.started);
    g.started++;
    c->sent++;
    c->in_message = 1;
    c->ok = 1;
    char cmd[1024];
    int n = snprintf(cmd, sizeof cmd, "MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n", g.from, c->rcpt);
    if (c->pipelining) {
        bufferevent_write(c->bev, cmd, (size_t)n);
        c->pending = 3;
    } else {
        n = snprintf(cmd, sizeof cmd, "MAIL FROM:<%s>\r\n", g.from);
        bufferevent_write(c->bev, cmd, (size_t)n);
        c->pending = 1;  /* then RCPT, then DATA: see on_reply */
    }
    c->state = S_ENVELOPE;
}

/* Returns 0 when the connection was freed (ended, and maybe replaced by a new one). */
static int on_reply(struct conn *c, int code, int ehlo_pipelining) {
    switch (c->state) {
    case S_GREET: {
        if (code != 220) { conn_end(c, 1); return 0; }
        char cmd[300];
        snprintf(cmd, sizeof cmd, "EHLO %s\r\n", g.helo);
        send_str(c, cmd);
        c->state = S_EHLO;
        return 1;
    }
    case S_EHLO:
        if (code != 250) { conn_end(c, 1); return 0; }
        c->pipelining = ehlo_pipelining;
        if (g.mode == M_LATENCY) { quit(c); return 1; }
        if (g.mode == M_IDLE) {
            c->state = S_IDLE;
            g.idle_ready++;
            if (g.started < g.target) conn_open();
            if (g.idle_ready == g.target && !g.announced) {
                g.announced = 1;
                printf("ready=%ld\n", g.idle_ready);
                fflush(stdout);
            }
            return 1;
        }
        next_message(c);
        return 1;
    case S_ENVELOPE: {
        /* pipelined: 3 replies counted down; one by one: pending counts up 1 (MAIL), 2, 3 */
        int last = c->pipelining ? c->pending == 1 : c->pending == 3;
        if (code != (last ? 354 : 250)) c->ok = 0;
        if (c->pipelining) {
            if (--c->pending > 0) return 1;
        } else if (c->ok && !last) {
            char cmd[600];
            if (c->pending == 1) snprintf(cmd, sizeof cmd, "RCPT TO:<%s>\r\n", c->rcpt);
            else snprintf(cmd, sizeof cmd, "DATA\r\n");
            send_str(c, cmd);
            c->pending++;
            return 1;
        }
        if (!c->ok) {
            g.failed++;
            c->in_message = 0;
            if (code == 354) send_str(c, ".\r\n");  /* a 354 after a refused RCPT: end it empty */
            quit(c);
            return 1;
        }
        bufferevent_write(c->bev, g.body, g.body_len);
        c->t_start = now();
        c->state = S_BODY;
        return 1;
    }
    case S_BODY:
        if (code == 250) {
            if (g.nlat < g.target) g.lat[g.nlat++] = (now() - c->t_start) * 1000.0;
            g.done++;
        } else {
            g.failed++;
        }
        c->in_message = 0;
        next_message(c);
        return 1;
    case S_QUIT:
        if (code == 250 || code == 354 || (code >= 500 && code != 221)) return 1; /* the ".", or its refusal */
        if (g.mode == M_LATENCY && code == 221) {
            if (g.nlat < g.target) g.lat[g.nlat++] = (now() - c->t_start) * 1000.0;
            g.done++;
        }
        c->state = S_IDLE;
        c->in_message = 0;
        conn_free(c);
        if (finished() || g.failed > g.target) {
            if (g.open == 0) event_base_loopbreak(g.base);
        } else if (g.started < g.target) {
            conn_open();
        } else if (g.open == 0) {
            event_base_loopbreak(g.base);
        }
        return 0;
    case S_IDLE:
        return 1; /* e.g. a 421 on shutdown: the close that follows is counted */
    }
    return 1;
}

static void on_read(struct bufferevent *bev, void *arg) {
    struct conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    char *line;
    size_t len;
    while ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF)) != NULL) {
        int code = (len >= 3) ? atoi(line) : 0;
        int more = len > 3 && line[3] == '-';
        if (c->state == S_EHLO && len >= 14 && strncasecmp(line + 4, "PIPELINING", 10) == 0) c->pipelining = 1;
        free(line);
        if (more) continue;
        if (!on_reply(c, code, c->pipelining)) return;
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg) {
    (void)bev;
    struct conn *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;
        setsockopt(bufferevent_getfd(c->bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) conn_end(c, 1);
}

static void conn_open(void) {
    if (g.mode != M_SEND) g.started++;
    else if (g.started >= g.target) return;
    struct conn *c = calloc(1, sizeof *c);
    if (!c) { perror("calloc"); exit(2); }
    /* Several source addresses, as real clients come from: smtpd spreads its workers by
     * client address, so one address would measure one worker. */
    evutil_socket_t fd = -1;
    if (g.sources > 0) {
        fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f00000aU + (uint32_t)(g.next_source++ % g.sources));
        if (fd < 0 || bind(fd, (struct sockaddr *)&src, sizeof src) < 0 || evutil_make_socket_nonblocking(fd) < 0) {
            perror("source address");
            exit(2);
        }
    }
    c->bev = bufferevent_socket_new(g.base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g.port)};
    inet_pton(AF_INET, g.host, &sa.sin_addr);
    c->t_start = now();
    g.open++;
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&sa, sizeof sa) < 0) {
        g.failed++;
        conn_free(c);
    }
}

static void on_timeout(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what, (void)arg;
    g.timed_out = 1;
    event_base_loopbreak(g.base);
}

static void on_stdin(evutil_socket_t fd, short what, void *arg) {
    (void)what, (void)arg;
    char buf[256];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) event_base_loopbreak(g.base);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(double p) {
    if (g.nlat == 0) return 0;
    long i = (long)(p * (double)(g.nlat - 1) + 0.5);
    return g.lat[i];
}

static void make_body(void) {
    size_t cap = (size_t)g.size + 1024;
    g.body = malloc(cap);
    if (!g.body) exit(2);
    int n = snprintf(g.body, cap, "From: <%s>\r\nTo: <%s>\r\nSubject: loadgen\r\n\r\n", g.from, g.rcpt);
    size_t len = (size_t)n;
    static const char line[] = "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789\r\n";
    while (len + sizeof line + 8 < (size_t)g.size) {
        memcpy(g.body + len, line, sizeof line - 1);
        len += sizeof line - 1;
    }
    memcpy(g.body + len, ".\r\n", 3);
    g.body_len = len + 3;
}

static void usage(void) {
    fprintf(stderr, "usage: loadgen [-c conc] [-m msgs] [-s size] [-n] [-f from] [-t rcpt] [-D domains] [-T secs] [-S sources]\n"
                    "               [-L count | -I count] host:port\n");
    exit(2);
}

int main(int argc, char **argv) {
    int opt;
    while ((opt = getopt(argc, argv, "c:m:s:nf:t:D:T:L:I:S:")) != -1) {
        switch (opt) {
        case 'c': g.concurrency = atoi(optarg); break;
        case 'm': g.target = atol(optarg); break;
        case 's': g.size = atoi(optarg); break;
        case 'n': g.per_message_conn = 1; break;
        case 'S': g.sources = atoi(optarg); break;
        case 'f': g.from = optarg; break;
        case 't': g.rcpt = optarg; break;
        case 'D': g.domains = atoi(optarg); break;
        case 'T': g.timeout = atoi(optarg); break;
        case 'L': g.mode = M_LATENCY; g.target = atol(optarg); break;
        case 'I': g.mode = M_IDLE; g.target = atol(optarg); break;
        default: usage();
        }
    }
    if (optind != argc - 1 || g.target < 1 || g.concurrency < 1) usage();
    static char hostbuf[256];
    snprintf(hostbuf, sizeof hostbuf, "%s", argv[optind]);
    char *colon = strrchr(hostbuf, ':');
    if (!colon) usage();
    *colon = 0;
    g.host = hostbuf;
    g.port = atoi(colon + 1);

    /* 10,000 idle sessions need more descriptors than the usual soft limit. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    g.lat = calloc((size_t)g.target, sizeof *g.lat);
    if (!g.lat) return 2;
    make_body();
    g.base = event_base_new();
    struct timeval tv = {g.timeout, 0};
    struct event *timer = evtimer_new(g.base, on_timeout, NULL);
    evtimer_add(timer, &tv);
    struct event *in = NULL;
    if (g.mode == M_IDLE) {
        in = event_new(g.base, 0, EV_READ | EV_PERSIST, on_stdin, NULL);
        event_add(in, NULL);
    }
    g.t0 = now();
    /* Idle sessions open 200 at a time (each opens the next once it got its EHLO reply). */
    int first = g.mode == M_LATENCY ? 1 : g.mode == M_IDLE ? 200 : g.concurrency;
    for (int i = 0; i < first && (g.mode == M_SEND ? g.started < g.target : g.started < g.target); i++) conn_open();
    event_base_dispatch(g.base);
    double secs = now() - g.t0;
    qsort(g.lat, (size_t)g.nlat, sizeof *g.lat, cmp_double);
    if (g.mode == M_IDLE)
        printf("ready=%ld failed=%ld lost=%ld\n", g.idle_ready, g.failed, g.lost);
    else
        printf("messages=%ld failed=%ld connfail=%ld seconds=%.3f msgs_per_s=%.1f p50_ms=%.3f p99_ms=%.3f timeout=%d\n",
               g.done, g.failed, g.connfail, secs, secs > 0 ? g.done / secs : 0.0, pct(0.50), pct(0.99), g.timed_out);
    fflush(stdout);
    _exit(g.timed_out ? 2 : (g.failed || (g.mode != M_IDLE && g.done < g.target)) ? 1 : 0);
}
