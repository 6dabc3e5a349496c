/* The one configuration file (libconfig) shared by all services. Every key of the contract
 * is a row of config_schema.c with its rule; unknown keys and bad values are errors naming
 * file:line and the key. */
#ifndef PM_CONFIG_H
#define PM_CONFIG_H
#include <stddef.h>

struct pm_strlist {
    char **v;
    int n;
};

struct pm_listen {
    char *address; /* "host:port", "[v6]:port" */
    char *mode;    /* smtp | submission | smtps | pop3 | pop3s | imap | imaps */
    int proxy_protocol; /* the connection starts with a PROXY v1/v2 header (from proxy_networks only) */
};

struct pm_listenlist {
    struct pm_listen *v;
    int n;
};

/* One milter (smtpd.milters): a string, or a group with its own timeout and default action. */
struct pm_milter {
    char *address;          /* "inet:127.0.0.1:11332", "inet6:[::1]:11332" (no unix: from the sandbox) */
    long long timeout;      /* seconds per answer; 0: smtpd.milter_timeout */
    char *default_action;   /* "tempfail" | "accept"; NULL: smtpd.milter_default_action */
};

struct pm_milterlist {
    struct pm_milter *v;
    int n;
};

/* One DKIM signing key (the `dkim` list, docs/dkim.md): the algorithm follows from the key
 * file's type, which only the queue reads (services/queue/dkim_sign.c). line: where the
 * entry is in file (for the queue's file:line errors about the key). */
struct pm_dkim_key {
    char *domain, *selector, *key;
    int active;
    char *file;
    int line;
};

struct pm_dkim_list {
    struct pm_dkim_key *v;
    int n;
};

/* One DNS list of smtpd.dnsbl (services/smtpd/dnsbl.c): a listing adds weight to the
 * client's score (a negative weight: an allowlist, DNSWL, that subtracts). match: count only
 * this answer address ("127.0.0.2"); NULL: any address in 127.0.0.0/8. */
struct pm_dnsbl {
    char *zone;
    long long weight;
    char *match;
};

struct pm_dnsbl_list {
    struct pm_dnsbl *v;
    int n;
};

/* One row of mta.tls_policy: the TLS security level for mail to `domain` (".example.com":
 * its subdomains too), like Postfix's smtp_tls_policy_maps. */
struct pm_tls_policy {
    char *domain;
    char *level;             /* as mta.tls_level */
    char *ca_file;           /* verify/secure: trust only these CAs ("": mta.ca_file) */
    struct pm_strlist match; /* verify/secure: names the certificate must carry ("": the
                              * level's default: verify the MX name, secure the domain) */
};

struct pm_tls_policy_list {
    struct pm_tls_policy *v;
    int n;
};

#define PM_ROOT_TRUST_ANCHOR "/usr/share/dns/root.key" /* Debian's dns-root-data */

struct pm_config {
    char *path;
    char *hostname;
    char *state_dir;
    struct pm_strlist domains;
    char *users_file;
    char *aliases_file;
    struct pm_strlist trusted_networks;
    struct pm_strlist proxy_networks; /* who may send a PROXY header on a proxy_protocol listener */
    struct pm_dkim_list dkim;         /* DKIM signing keys of originating mail (queue) */
    int debug;
    struct {
        int allow_unprivileged;   /* development: run without root, every process under one uid */
    } privsep;
    struct {
        int curve;                /* CurveZMQ on tcp:// bus endpoints */
        char *keys_dir;           /* default state_dir/keys */
        char *key_name;           /* own key: keys_dir/<key_name>.key; default the service's role */
    } bus;
    struct {
        char *certificate;
        char *key;
    } tls;
    struct {
        /* Where everyone else connects: one endpoint per queue shard (a string or a list in
         * the file), with the control endpoints in the same order. endpoint and control are
         * the first of each (not separately allocated). */
        struct pm_strlist endpoints, controls;
        char *endpoint;
        char *control;
        char *listen;             /* where the queue binds (default: the only endpoint) */
        char *control_listen;     /* where the queue binds control (default: the only control) */
        char *metrics;            /* "host:port" of the metrics/health HTTP server ("" off) */
        long long map_size_mb;
        long long retry_min, retry_max, max_lifetime, delay_warning;
        long long job_lease;      /* seconds a worker has to answer a job */
        long long max_batch;      /* submissions per group commit at most */
        long long active_limit;   /* messages held in memory at once; the rest wait in LMDB */
        char *tlsrpt_organization; /* RFC 8460 organization-name ("": hostname) */
        long long tlsrpt_hour;    /* UTC hour after which the previous day's reports go out */
    } queue;
    struct {
        char *endpoint;           /* where smtpd and mta connect */
        char *listen;             /* where the resolver binds (default: endpoint) */
        char *metrics;
        struct pm_strlist nameservers;
        long long timeout;        /* seconds per DNS query */
        long long negative_ttl;   /* cache time for NXDOMAIN/no-data answers */
        int dnssec;               /* validate every answer (RFC 4035) from trust_anchors */
        struct pm_strlist trust_anchors; /* files of DS or DNSKEY records (empty: the root KSK,
                                          * PM_ROOT_TRUST_ANCHOR) */
    } resolver;
    struct {
        struct pm_listenlist listen;
        char *metrics;
        long long drain_timeout;    /* SIGTERM: running sessions may go on this long, then 421 */
        long long sandboxes;        /* session processes (sandboxes) sharing the listeners (0: one per CPU) */
        struct pm_strlist etrn_domains; /* ETRN may start these (empty: any domain not ours) */
        long long lookup_cache_ttl; /* seconds a worker remembers a recipient look-up (0: off) */
        long long max_message_size, max_recipients, max_connections, max_connections_per_ip;
        long long body_memory_mb;   /* bodies held by one worker's sessions (0: 8 x max_message_size) */
        long long timeout_command;  /* idle time waiting for a command (RFC 5321: 5 min) */
        long long timeout_data;     /* idle time inside DATA (RFC 5321: 3 min per block) */
        long long submit_timeout;   /* wait for the queue's commit before 451 */
        long long max_errors;       /* errors before 421 and close */
        long long auth_failures;    /* failed AUTHs from one IP before lockout */
        long long auth_lockout;     /* seconds of lockout */
        long long greet_pause_ms;   /* wait before the greeting; talking first gets 554 (0: off) */
        long long auth_fail_delay_ms; /* delay before answering a failed AUTH */
        long long max_connection_rate; /* new connections per IP per minute (0: unlimited) */
        struct pm_milterlist milters;  /* milters asked in order (milter.c); empty: none */
        long long milter_timeout;      /* seconds a milter may take per answer (a group may say
                                        * otherwise); PROGRESS restarts it, 10 times it at most */
        char *milter_default_action;   /* a milter down or too slow: "tempfail" (451 4.7.1) or "accept" */
        int verify_inbound;            /* port 25: SPF, DKIM, DMARC and Authentication-Results: (authres.c) */
        char *spf_fail_action;         /* an SPF fail: "reject" (550 5.7.23), "header" (recorded) or "none" (no SPF) */
        char *dmarc_action;            /* a DMARC fail under p=reject: "reject", "quarantine" (held) or "none" */
        long long auth_dns_timeout;    /* seconds all the DNS of one message's verification may take */
        struct pm_dnsbl_list dnsbl;    /* DNS lists asked at connect on port 25 (dnsbl.c); empty: none */
        long long dnsbl_threshold;     /* score at which a client is refused (554) */
        long long dnsbl_timeout;       /* ms the lists may take together; then what answered counts */
    } smtpd;
    struct {
        char *metrics;
        long long remote_port;
        long long max_concurrency, max_per_domain;
        long long connect_timeout, command_timeout;
        int tls_verify;           /* old name of tls_level "verify" (when tls_level is not set) */
        char *tls_level;          /* the default TLS security level (policy.h): none, may, encrypt,
                                   * verify, secure, dane, dane-only */
        struct pm_tls_policy_list tls_policy; /* per destination domain (config_tls_policy.c) */
        char *ca_file;            /* CA bundle for verify/secure/MTA-STS ("": the system's) */
        char *ca_path;            /* CA directory (hashed), the system's /etc/ssl/certs */
        int mta_sts;              /* honour MTA-STS policies (RFC 8461) */
        long long mta_sts_port;   /* HTTPS port of policy hosts (443; tests point it elsewhere) */
        int tlsrpt;               /* report TLS sessions for TLSRPT (RFC 8460) */
    } mta;
    struct {
        char *metrics;
        long long concurrency;
    } delivery;
    struct {
        char *metrics;
        long long concurrency;      /* DSNs awaiting the queue's commit at once */
        long long submit_timeout;   /* seconds to wait for that commit, then TEMPFAIL the job */
    } bouncer;
    struct {
        struct pm_listenlist listen;
        char *metrics;
        long long drain_timeout;      /* SIGTERM: running sessions may go on this long, then -ERR */
        long long max_connections, timeout;
        long long max_connections_per_ip;
        long long session_timeout;    /* a whole session, whatever it does (0: 6 x timeout) */
        long long auth_delay;         /* seconds before answering a failed login */
        long long auth_failures;      /* failed logins from one IP before lockout */
        long long auth_lockout;       /* seconds of lockout (and the counting window) */
        int plaintext_auth_loopback;  /* loopback clients may log in without TLS */
    } pop3d;
    struct {
        struct pm_listenlist listen;  /* modes imap (STARTTLS) and imaps (implicit TLS) */
        char *metrics;
        long long drain_timeout;      /* SIGTERM: running commands may go on this long, then BYE */
        long long max_connections;
        long long timeout;            /* seconds idle before login */
        long long idle_timeout;       /* seconds idle after login (RFC 9051 §5.4: at least 30 min) */
        long long max_connections_per_ip;
        long long session_timeout;    /* a whole session, whatever it does (0: 48 x idle_timeout, a day) */
        long long auth_delay;         /* seconds before answering a failed login */
        long long auth_failures;      /* failed logins from one IP before lockout */
        long long auth_lockout;       /* seconds of lockout (and the counting window) */
        int plaintext_auth_loopback;  /* loopback clients may log in without TLS */
        long long max_message_size;   /* APPEND's message literal at most */
        long long max_line;           /* a command line, literals not counted */
        long long max_command;        /* a whole command with its literals (APPEND's message aside) */
    } imapd;
};

/* Loads and validates. On failure returns -1 and writes "file:line: message" into err. */
int pm_config_load(const char *path, struct pm_config *cfg, char *err, size_t errsize);
void pm_config_free(struct pm_config *cfg);

/* The path a service should load: -c argument if given, else $POSTMESH_CONFIG, else
 * /etc/postmesh/postmesh.conf. */
const char *pm_config_default_path(void);

/* dst = state_dir + "/" + rel. Returns dst. */
char *pm_config_state_path(const struct pm_config *cfg, const char *rel, char *dst, size_t size);

/* The schema's keys ("hostname", "queue.retry_min", ...), in the table's order: i from 0 to
 * pm_config_key_count() - 1; NULL past the end. (The reference configuration is held to
 * this list by a unit test.) */
size_t pm_config_key_count(void);
const char *pm_config_key_path(size_t i);

/* Case-insensitive: is domain one of cfg->domains? */
int pm_config_is_local_domain(const struct pm_config *cfg, const char *domain);

#endif
