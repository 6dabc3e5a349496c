/* The privileged parent's helpers: separate processes that alone read the users file (the
 * password hashes) and the aliases, and answer the questions the sandbox sends over the
 * privchan channel, which the parent forwards to them.
 *
 * Why a third process: sandboxes are forked from the parent, and a fork copies the parent's
 * whole heap, freed buffers included. A parent that never read a hash cannot hand one to a
 * sandbox, neither to the first nor to one restarted after a crash. A helper is forked
 * before it loads anything, opens the files it declares, drops to its own user (no root, no
 * capabilities), sets no_new_privs and the seccomp allowlist, and reads nothing from the
 * network. When a declared file changes, the parent opens it again and hands the helper the
 * descriptor (heldfile.h): the file stays root-only.
 *
 * Why several helpers and forwarding without waiting: a password check costs a yescrypt
 * (~25 ms, on purpose, for unknown users as well), so recipient lookups that queued behind
 * a burst of AUTHs would wait seconds. Each kind of question gets its own helper, the parent
 * forwards and goes on, and the questions in flight per helper are capped (beyond the cap
 * the answer is PM_PRIV_BUSY at once: a temporary failure). */
#ifndef PM_PRIVHELPER_H
#define PM_PRIVHELPER_H

#include "privchan.h"

/* The helpers' user (scripts/install-deps.sh creates it): owns no file, may read none of ours. */
#define PM_PRIV_HELPER_USER "postmesh-auth"
#define PM_PRIV_HELPER_MAX_PENDING 1024
#define PM_PRIV_HELPER_MAX_FILES 2

struct pm_helper_spec {
    const char *name; /* for logs */
    /* In the helper process, once after it started: returns its state (loads may be lazy). */
    void *(*open)(void *arg);
    /* In the helper: one request -> reply->result (1 yes, 0 no, -1 cannot tell now). */
    void (*answer)(const struct pm_priv_msg *req, struct pm_priv_msg *reply, void *state);
    void *arg;
    /* Files the helper reads that need root to open (the users file), NULL-terminated, at
     * most PM_PRIV_HELPER_MAX_FILES; read them with the usual loaders (pm_users_load), which
     * go through the descriptors the parent hands over. */
    const char *const *files;
    /* The user to become once the files are open (PM_PRIV_HELPER_USER); NULL stays as
     * started (only for a helper that declares no files). Ignored when not started as root. */
    const char *user;
    /* Questions forwarded and not yet answered, at most (0: PM_PRIV_HELPER_MAX_PENDING). */
    int max_pending;
    int timeout_ms; /* an answer later than this means a stuck helper (0: 10 s) */
};

struct pm_priv_helper;

/* Forks the helper. NULL (logged) if that failed. spec must outlive the helper. */
struct pm_priv_helper *pm_priv_helper_start(const struct pm_helper_spec *spec);

/* Synchronous: forwards req (its id is not used) and waits up to timeout_ms for the answer;
 * reply->result is -1 without one. For start-up checks and for a parent that answers in
 * answer() (pm_sandbox_spec); not while questions forwarded with pm_priv_helper_forward are
 * in flight (result -1 then). A dead or stuck helper is replaced (at most once a second). */
void pm_priv_helper_ask(struct pm_priv_helper *h, const struct pm_priv_msg *req, struct pm_priv_msg *reply,
                        int timeout_ms);

/* ---- asynchronous, driven by pm_privsep_supervise (privchan.c) ----
 * Several sandboxes may ask through one helper: every question remembers the generation of
 * the sandbox that asked (each sandbox started gets a new one), and its answer goes to the
 * channel fd_of(gen) gives, if that sandbox still runs (-1: it is gone, the answer is
 * dropped; a restarted sandbox never gets its predecessor's answers). */
typedef int (*pm_priv_sandbox_fd_fn)(unsigned gen, void *arg);
/* The descriptor to poll for answers, -1 while no helper runs. */
int pm_priv_helper_fd(const struct pm_priv_helper *h);
/* Forwards the question of sandbox gen; its answer goes back under req->id once the helper
 * gives it. Answered at once with PM_PRIV_BUSY when max_pending are in flight, -1 when no
 * helper can be reached. */
void pm_priv_helper_forward(struct pm_priv_helper *h, const struct pm_priv_msg *req, unsigned gen,
                            pm_priv_sandbox_fd_fn fd_of, void *arg);
/* The helper's descriptor is readable: passes its answers on. */
void pm_priv_helper_deliver(struct pm_priv_helper *h, pm_priv_sandbox_fd_fn fd_of, void *arg);
/* ms until the oldest question in flight is overdue, -1 if none. */
int pm_priv_helper_timeout_ms(const struct pm_priv_helper *h);
/* An overdue question means a stuck helper: it is killed and every question in flight is
 * answered -1 (the next one starts a new helper). */
void pm_priv_helper_expire(struct pm_priv_helper *h, pm_priv_sandbox_fd_fn fd_of, void *arg);
/* Questions in flight now. */
int pm_priv_helper_pending(const struct pm_priv_helper *h);

/* In a sandbox forked from the parent: close the inherited descriptor to the helper, so only
 * the parent (which filters what it forwards) can talk to it. */
void pm_priv_helper_forget(struct pm_priv_helper *h);

/* Ends the helper (EOF on its channel) and waits for it briefly. */
void pm_priv_helper_stop(struct pm_priv_helper *h);

#endif
