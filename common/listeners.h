/* The listening sockets a front end's privileged parent binds for its worker (smtpd, pop3d). */
#ifndef PM_LISTENERS_H
#define PM_LISTENERS_H

#include "config.h"

struct pm_listener {
    int fd;
    int implicit_tls; /* mode is the service's implicit-TLS mode (smtps, pop3s) */
    int proxy_protocol; /* connections begin with a PROXY v1/v2 header */
    int backlog;
    char mode[16];    /* as configured: smtp, submission, smtps, pop3, pop3s */
    char address[128];
};

/* Binds every entry of list. An entry in implicit_tls_mode is skipped (event=listen_skipped)
 * when have_tls is 0. Returns 0 with *out (calloc'd) and *n filled, or -1 (logged). */
int pm_listeners_open(const struct pm_listenlist *list, const char *implicit_tls_mode, int have_tls, int backlog,
                      struct pm_listener **out, int *n);
void pm_listeners_close(struct pm_listener *v, int n);

/* For several workers: nsets sets of every listener, laid out set-major (set s is
 * (*out)[s * *n .. s * *n + *n - 1]; *n counts one set). nsets 1 is pm_listeners_open.
 * Otherwise each address gets nsets sockets bound with SO_REUSEPORT, one per worker, and
 * the group a classic BPF program that picks the socket by a hash of the client's address
 * alone: every connection from one address reaches the same worker, so that worker's
 * per-address limits (connections, rate, AUTH lockout) see all of that address's traffic,
 * and distinct addresses spread across the workers. -1 (logged) on failure. */
int pm_listeners_open_sets(const struct pm_listenlist *list, const char *implicit_tls_mode, int have_tls,
                           int backlog, int nsets, struct pm_listener **out, int *n);

/* listen() again on every socket: a draining worker shut them down (SHUT_RD) so that the
 * port refuses new clients; the worker started after it must find them listening. */
void pm_listeners_rearm(const struct pm_listener *v, int n);

#endif
