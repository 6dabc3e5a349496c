/* Privilege separation: the steps a process takes before it reads from the network, and the
 * seccomp profiles that say what each process may still do afterwards. Who runs as what is
 * common/runas.c's table; this file only applies a row. */
#ifndef PM_PRIVSEP_H
#define PM_PRIVSEP_H

struct pm_config;

/* What a sandboxed process may do beyond the base every one of them gets: memory, its own
 * threads (clone with CLONE_THREAD only), signals to itself only, time, polling, and I/O on
 * the descriptors it already holds. A call outside its profile kills the process, except
 * those answered with an error a library can live with (seccomp.c says which). */
enum pm_seccomp_allow {
    PM_SC_SOCKET = 1u << 0, /* socket(AF_UNIX/AF_INET/AF_INET6) + connect: the bus, DNS, outbound SMTP */
    PM_SC_ACCEPT = 1u << 1, /* accept on sockets bound before the drop (listeners, ZeroMQ ROUTERs) */
    PM_SC_BIND = 1u << 2,   /* bind + listen after the drop */
    PM_SC_READ = 1u << 3,   /* open read-only, list directories; without it every path is ENOENT */
    PM_SC_WRITE = 1u << 4,  /* open for writing, create files and directories, sync, truncate */
    PM_SC_NAMES = 1u << 5,  /* rename, link, unlink, rmdir */
    /* open read-only (no directory listing, no write): glibc's getaddrinfo reading the copies
     * of hosts, resolv.conf and nsswitch.conf in the chroot's etc/. Never in a profile of
     * runas.c: pm_privsep_drop adds it to a process that connects to a bus endpoint naming a
     * host (privsep.c says why). */
    PM_SC_RESOLVE = 1u << 6,
    PM_SC_NOTIFY = 1u << 7, /* inotify on paths it may read: imapd's IDLE learns of new mail */
    /* bind without listen after the drop: libunbound binds every query's UDP socket to a
     * port of its own random choice (RFC 5452 source port randomization); the resolver with
     * resolver.dnssec. It can still listen on nothing. */
    PM_SC_SOURCE_PORT = 1u << 8,
};

struct pm_seccomp_profile {
    const char *name; /* for logs */
    unsigned allow;   /* PM_SC_* */
};

struct pm_sandbox {
    const char *user;       /* unprivileged user to become, e.g. "postmesh-smtpd" */
    const char *group;      /* group to take instead of the user's own (the mail store's "vmail"); NULL: the user's */
    const char *chroot_dir; /* kept owned by root (see pm_privsep_drop); NULL: no chroot */
    const struct pm_seccomp_profile *profile; /* NULL: the one of user's row in the runas table */
};

/* As root: chroot, chdir("/"), drop supplementary groups, setgid/setuid to the user; then
 * always: umask, no_new_privs and the seccomp profile. The chroot directory (created if
 * missing, with missing parents 0750) must not be a symlink; it is made root's, mode 0755,
 * or root:<group> 0770 for a profile that writes files there, so the sandboxed user can use
 * it but never chmod or replace it. Without root the first steps are skipped and one
 * event=privsep_limited line says so. Returns 0, or -1 (logged) if a step failed.
 * When the user's runas row connects to a bus endpoint that names a host (see
 * pm_privsep_note_endpoints), the chroot first gets etc/ with root's read-only copies of
 * /etc/hosts, /etc/resolv.conf and a "hosts: files dns" nsswitch.conf, made afresh at each
 * start, and the profile gets PM_SC_RESOLVE; a chroot shared through a group (the mail
 * store) is then also sticky (01770), so its group cannot rename root's etc/ away. With IP
 * literals only, a stale etc/ of ours is removed and nothing else changes. */
int pm_privsep_drop(const struct pm_sandbox *sb);

/* At a service's start, before it opens anything: state_dir is made if missing (0750), and
 * the bus endpoints are noted (pm_privsep_note_endpoints); delivery refuses a host name on
 * the bus while a local domain is "etc" (that domain's directory in the store would be the
 * resolver's etc/). As root, nothing else to check. Without root
 * every process of every service would share one uid (a compromised sandbox could read the
 * users file, or its parent's and helper's memory), so the service refuses to start unless
 * the configuration says privsep.allow_unprivileged = true; when it may, it makes itself
 * non-dumpable (inherited by the helper and sandbox it forks), so /proc/<pid>/mem and
 * environ of the parent and helper stay closed to a sandbox of the same uid. 0, or -1
 * (logged: the caller exits). */
int pm_privsep_preflight(const struct pm_config *cfg, const char *service);

/* Which bus endpoints of cfg name a host rather than an IP literal (PM_CONNECTS_* of
 * runas.h), remembered for pm_privsep_drop; pm_privsep_preflight calls it. */
void pm_privsep_note_endpoints(const struct pm_config *cfg);

/* 1 if a ZeroMQ endpoint names a host ZeroMQ must resolve ("tcp://queue:7701"), 0 for an
 * IP literal ("tcp://10.0.0.5:7701", "tcp://[::1]:7701", the wildcard "*" of a bind) or another
 * transport (ipc://, inproc://). */
int pm_privsep_endpoint_names_host(const char *endpoint);

/* Look up a user's uid/gid (0 if found). Must run before any chroot. */
int pm_privsep_lookup(const char *user, unsigned *uid, unsigned *gid);

/* As root only (no-op otherwise): the entries below path (not path itself: a chroot
 * directory is pm_privsep_drop's) become user's, with the user's own group. For state one
 * service owns alone (the queue's LMDB directory). */
int pm_privsep_chown_tree(const char *path, const char *user);

/* As root only (no-op otherwise): for a tree several services share through a group (the
 * mail store, group vmail): every entry below path gets that group and the owner's read and
 * write (and search, for directories) bits for it; entries root owns become user's. No
 * symlink is followed. Other bits and other owners stay as they are. */
int pm_privsep_share_tree(const char *path, const char *user, const char *group);

/* mkdir -p with mode for every directory it creates (0750 for state). 0 or -1 (errno). */
int pm_privsep_mkdirs(const char *path, unsigned mode);

/* 0 if path is a directory (after following links), else -1 (errno; ENOTDIR when it is
 * something else). */
int pm_privsep_is_dir(const char *path);

/* Installs profile's seccomp filter (every thread, TSYNC). */
int pm_seccomp_install_profile(const struct pm_seccomp_profile *profile);

/* The lookup helpers' filter (the runas table's "auth" profile), for privhelper.c, which
 * drops its own way; goes once it drops through pm_privsep_drop. */
int pm_seccomp_install(void);

#endif
