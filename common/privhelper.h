/* The privileged parent's helper: a separate process that alone reads the users file (the
 * password hashes) and the aliases, and answers the questions the worker sends over the
 * privchan channel, which the parent forwards to it.
 *
 * Why a third process: workers are forked from the parent, and a fork copies the parent's
 * whole heap, freed buffers included. A parent that never read a hash cannot hand one to a
 * worker, neither to the first nor to one restarted after a crash. The helper itself is
 * forked before it loads anything, runs with no_new_privs and the seccomp allowlist, and
 * reads nothing from the network. */
#ifndef PM_PRIVHELPER_H
#define PM_PRIVHELPER_H

#include "privchan.h"

struct pm_helper_spec {
    const char *name; /* for logs */
    /* In the helper process, once after it started: returns its state (loads may be lazy). */
    void *(*open)(void *arg);
    /* In the helper: one request -> reply->result (1 yes, 0 no, -1 cannot tell now). */
    void (*answer)(const struct pm_priv_msg *req, struct pm_priv_msg *reply, void *state);
    void *arg;
};

struct pm_priv_helper;

/* Forks the helper. NULL (logged) if that failed. spec must outlive the helper. */
struct pm_priv_helper *pm_priv_helper_start(const struct pm_helper_spec *spec);

/* Forwards req (its id is not used) and waits up to timeout_ms for the answer; reply->result
 * is -1 without one. A dead or stuck helper is replaced (at most once a second). */
void pm_priv_helper_ask(struct pm_priv_helper *h, const struct pm_priv_msg *req, struct pm_priv_msg *reply,
                        int timeout_ms);

/* In a worker forked from the parent: close the inherited descriptor to the helper, so only
 * the parent (which filters what it forwards) can talk to it. */
void pm_priv_helper_forget(struct pm_priv_helper *h);

/* Ends the helper (EOF on its channel) and waits for it briefly. */
void pm_priv_helper_stop(struct pm_priv_helper *h);

#endif
