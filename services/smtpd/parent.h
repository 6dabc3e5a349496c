/* smtpd's privileged parent. It reads the configuration and the TLS certificate and key,
 * binds every listening socket (so ports 25/465/587 work when started as root), starts the
 * helpers that alone load the users and aliases files (lookup.h), and supervises
 * smtpd.sandboxes sandboxes, the unprivileged session processes (sandbox.c; 0: one per CPU,
 * at most SMTPD_AUTO_SANDBOXES), each running its share of the SMTP sessions: chrooted into
 * an empty directory as postmesh-smtpd, with no_new_privs and seccomp. A sandbox that dies
 * is started again alone; the others' sessions go on.
 *
 * How the sandboxes share a port: each has its own listening socket on it (SO_REUSEPORT,
 * one set per sandbox, listeners.h), and the kernel picks the socket by a hash of the
 * client's address. Why not one socket inherited by all: every sandbox's event loop would
 * wake for each connection (libevent has no EPOLLEXCLUSIVE) and whoever wins the accept
 * takes it, so the spread follows scheduling, not load. Why by address, not by the kernel's
 * 4-tuple hash: the per-address limits (max_connections_per_ip, max_connection_rate, the
 * AUTH lockout) then live in the one sandbox that sees every connection of that address,
 * exactly as with one sandbox, with no question to the parent on each accept. The price:
 * the connections of one address never spread (a single benchmark client uses one sandbox,
 * and behind a PROXY-protocol balancer every connection has the balancer's address: one
 * sandbox per balancer address).
 * A crashed sandbox's sockets stay open in the parent, so its clients wait in the backlog
 * for its successor instead of being refused. smtpd.max_connections is for all sandboxes
 * together: they count their sessions in a shared page (tally.h).
 *
 * The parent never reads from the network; it forwards the sandboxes' questions to the
 * helpers without waiting for them (privhelper.h): recipients and senders to one, passwords
 * to a pool of one per CPU (at most SMTPD_AUTH_HELPERS), the least busy first, so a burst of
 * AUTHs (a deliberate ~25 ms hash each) uses every core and never delays a recipient check.
 * On SIGHUP it re-reads the certificate and pushes it to every sandbox. */
#ifndef SMTPD_PARENT_H
#define SMTPD_PARENT_H

#include "config.h"
#include "privchan.h"
#include "privhelper.h"
#include "privsep.h"
#include "server.h"
#include "tally.h"

/* Password checks in flight at most, at the helpers of the parent for every sandbox
 * (beyond: 454 4.7.0 at once). At ~25 ms a check, an AUTH waits at most ~0.4 s for its
 * turn. */
#define SMTPD_AUTH_IN_FLIGHT 16
/* Password helpers at most (one per CPU below that), and sandboxes when smtpd.sandboxes
 * is 0. */
#define SMTPD_AUTH_HELPERS 4
#define SMTPD_AUTO_SANDBOXES 8

struct smtpd_parent {
    struct pm_config *cfg;
    char *cert_pem, *key_pem;      /* NULL without tls.certificate */
    struct pm_listener *fds;       /* nsandboxes sets of nfds when listener_sets > 1 (listeners.h) */
    int nfds;
    int nsandboxes, listener_sets;
    struct smtpd_tally *tally;     /* sessions per sandbox, shared (tally.h) */
    const char *helper_files[3];   /* users and aliases files, for the helpers (heldfile.h) */
    struct pm_helper_spec lookup_spec, auth_spec;
    struct pm_priv_helper *lookup;  /* recipients and senders: quick answers */
    struct pm_priv_helper *auth[SMTPD_AUTH_HELPERS]; /* passwords: a hash each */
    int nauth;
    struct pm_priv_helper *helpers[SMTPD_AUTH_HELPERS + 2];
    struct pm_sandbox sandbox;     /* the sandboxes': runas.c's "smtpd" row */
    char empty_dir[4096];          /* their chroot */
};

/* Everything before the fork: TLS files, listening sockets, the helper (and a first
 * question to it, so a broken users file stops the start). -1 (logged) on failure. */
int smtpd_parent_init(struct smtpd_parent *p, struct pm_config *cfg);
void smtpd_parent_free(struct smtpd_parent *p);

/* pm_sandbox_spec callbacks (privchan.h). */
struct pm_priv_helper *smtpd_parent_route(const struct pm_priv_msg *req, void *arg);
void smtpd_parent_answer(const struct pm_priv_msg *req, struct pm_priv_msg *reply, void *arg);
void smtpd_parent_reload(int sandbox_fd, void *arg);
void smtpd_parent_exited(int index, void *arg);

/* sandbox.c: the unprivileged side (pm_sandbox_spec.sandbox_main). */
int smtpd_sandbox_main(int parent_fd, void *arg);

#endif
