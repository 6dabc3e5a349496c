/* The channel between a privileged parent and its sandbox (the unprivileged process it
 * forks: a front end's session process, or the process a job worker runs in): a
 * SOCK_SEQPACKET socketpair carrying small framed requests ("is this password right?") and
 * parent pushes (new TLS certificate after SIGHUP). The sandbox never sees a password hash. */
#ifndef PM_PRIVCHAN_H
#define PM_PRIVCHAN_H
#include <stddef.h>
#include <stdint.h>

#include "privsep.h"

enum pm_priv_op {
    PM_PRIV_AUTH = 1,        /* a = address, b = password        -> result 1 ok / 0 no */
    PM_PRIV_RCPT_EXISTS = 2, /* a = address (local domain)        -> 1 user or alias / 0 */
    PM_PRIV_SENDER_OK = 3,   /* a = auth user, b = envelope sender -> 1 may use / 0 */
    PM_PRIV_MAILBOX_REPAIR = 4, /* a = address: its mailbox directories made by someone else
                                 * (root) become the store user's -> number fixed */
    PM_PRIV_TLS_PEM = 100,   /* parent -> sandbox: a = certificate PEM, b = key PEM */
    PM_PRIV_HELD_FILE = 101, /* parent -> helper: a = path, with its open descriptor (result 0),
                              * or result -errno when the parent could not open it */
};

/* An answer's result when the question was not asked because too many of its kind are in
 * flight (a password check beyond the cap): a temporary failure, like -1. */
#define PM_PRIV_BUSY (-2)

#define PM_PRIV_MAX_FIELD 16384

struct pm_priv_msg {
    uint32_t id;     /* request id, echoed; 0 for parent pushes */
    uint32_t op;
    int32_t result;
    char *a, *b;     /* NUL-terminated fields (owned by the message) */
};

/* Frame: id, op, result, len(a), len(b), a, b. Returns 0 or -1. */
int pm_priv_send(int fd, const struct pm_priv_msg *m);
/* Reads one frame (blocking or not, as the fd is). 1 = got one, 0 = EOF, -1 = error/EAGAIN.
 * A descriptor sent along is discarded. */
int pm_priv_recv(int fd, struct pm_priv_msg *m);
/* The same with a descriptor passed along (SCM_RIGHTS): passfd -1 for none; *gotfd is -1
 * unless one came (then the caller owns it). */
int pm_priv_send_fd(int fd, const struct pm_priv_msg *m, int passfd);
int pm_priv_recv_fd(int fd, struct pm_priv_msg *m, int *gotfd);
void pm_priv_msg_clear(struct pm_priv_msg *m);

/* ---- sandbox side: asynchronous requests from a libevent loop ---- */
struct event_base;
struct pm_priv_client;
typedef void (*pm_priv_cb)(int result, void *arg);
typedef void (*pm_priv_push_cb)(const struct pm_priv_msg *m, void *arg);

struct pm_priv_client *pm_priv_client_new(struct event_base *base, int fd, pm_priv_push_cb push, void *push_arg);
/* Sends a request; cb runs later with the result (-1 if the parent is gone, PM_PRIV_BUSY if
 * the parent did not ask because too many are in flight). Returns a
 * handle for pm_priv_client_cancel (e.g. the session closed meanwhile). */
uint32_t pm_priv_request(struct pm_priv_client *c, enum pm_priv_op op, const char *a, const char *b, pm_priv_cb cb,
                         void *arg);
void pm_priv_cancel(struct pm_priv_client *c, uint32_t handle);
void pm_priv_client_free(struct pm_priv_client *c);

/* ---- parent side ---- */
struct pm_priv_helper;

struct pm_listener;
/* A sandbox to fork and supervise. */
struct pm_sandbox_spec {
    const char *name;                 /* service name for logs (sandbox=<name>) */
    struct pm_sandbox sandbox;        /* applied in the child before sandbox_main */
    /* Runs in the child after the drop; parent_fd is its end of the channel. Returns the
     * exit status. Everything the sandbox needs (listening fds, TLS context) was set up by
     * the parent before the fork and is inherited. */
    int (*sandbox_main)(int parent_fd, void *arg);
    /* Runs in the parent for each request that route() gives no helper; fills reply->result
     * (and a/b if it wants). It must not wait: every other question waits meanwhile. */
    void (*answer)(const struct pm_priv_msg *req, struct pm_priv_msg *reply, void *arg);
    /* Optional: the helper process (privhelper.h) that answers req. The parent forwards the
     * question and goes on; the answer reaches the sandbox when the helper gives it, so a
     * slow kind of question (a password hash) never holds up a quick one that another
     * helper answers. NULL: answer() in the parent. */
    struct pm_priv_helper *(*route)(const struct pm_priv_msg *req, void *arg);
    struct pm_priv_helper *const *helpers; /* every helper route() may return, NULL-terminated */
    /* Runs in the parent on SIGHUP; may push messages to the sandbox with pm_priv_send
     * (sandbox_fd is -1 while no sandbox runs: re-read the files for the next one). */
    void (*reload)(int sandbox_fd, void *arg);
    void *arg;
    /* The listening sockets the sandbox serves: re-armed before a sandbox is restarted (the
     * one before may have shut them down while draining). */
    const struct pm_listener *listeners;
    int nlisteners;
    /* Sandbox processes (0: 1), each with its own channel, restarted on its own. */
    int nsandboxes;
    /* listener_sets > 1: listeners holds that many sets of nlisteners sockets, set-major,
     * one set per sandbox (pm_listeners_open_sets: SO_REUSEPORT); only sandbox i's set is
     * re-armed when sandbox i restarts. Otherwise every sandbox serves the same sockets. */
    int listener_sets;
    /* Optional, in the parent: sandbox index ended (before it is started again). */
    void (*exited)(int index, void *arg);
};

/* Forks the sandboxes and supervises them: answers their requests (or forwards them to a
 * helper), restarts a sandbox that died with backoff (the others go on serving), forwards
 * SIGHUP to reload() once per running sandbox, stops them all on SIGTERM/SIGINT. Logs
 * event=sandbox_started / sandbox_exited / sandbox_error with sandbox=<name>. Returns the
 * exit status. */
int pm_privsep_supervise(const struct pm_sandbox_spec *spec);

/* In a sandbox: which one it is (0 .. nsandboxes-1; a restarted sandbox keeps the index of
 * the one it replaces). 0 in any other process. */
int pm_privsep_sandbox_index(void);

#endif
