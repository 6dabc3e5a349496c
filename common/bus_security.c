/* Bus security: CurveZMQ on every tcp:// and ipc:// endpoint, a ZAP handler on the binding
 * side that admits only keys of the allowlist (allowlist.h) and tells the socket which key
 * it was (the User-Id every message then carries, from which bus.c finds the sender's role),
 * and ipc:// socket files created 0660. A client with an unknown key fails the handshake;
 * one without CURVE cannot even speak to a CURVE server (mechanism mismatch).
 *
 * Each process holds one secret key, its own (keys_dir/<name>.key), and the public keys of
 * the servers it connects to. Nobody creates another's key: `postmesh keys init` does that. */
#include <errno.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "allowlist.h"
#include "bus.h"
#include "clock.h"
#include "config.h"
#include "keys.h"
#include "log.h"
#include "logvalue.h"
#include "outside.h"

#define RELOAD_EVERY_MS 5000 /* revocation: a removed key file stops its key within this */

static struct {
    int ready;
    int curve;
    char keys_dir[4096];
    char name[PM_KEY_NAME];
    char pub[PM_KEY_Z85], sec[PM_KEY_Z85];
    /* Where clients connect, to know whose public key a connect needs: every queue shard's
     * endpoint and control (all shards hold the queue's key), and the resolver. */
    char **queue_endpoints;
    int nqueue_endpoints;
    char resolver_endpoint[256];
    pthread_t zap_thread;
    int zap_running;
    /* Server public keys read before a chroot hid the keys directory. */
    struct {
        char name[16];
        char pub[PM_KEY_Z85];
    } preloaded[4];
    int npreloaded;
} sec;

int pm_bus_roles_known(void) { return sec.ready && sec.curve; }

static void remember_queue_endpoints(const struct pm_config *cfg)
{
    for (int i = 0; i < sec.nqueue_endpoints; i++)
        free(sec.queue_endpoints[i]);
    free(sec.queue_endpoints);
    sec.nqueue_endpoints = 0;
    int n = cfg->queue.endpoints.n + cfg->queue.controls.n;
    sec.queue_endpoints = calloc((size_t)(n ? n : 1), sizeof *sec.queue_endpoints);
    if (!sec.queue_endpoints)
        return; /* then no queue endpoint is known: connects fail with a log line */
    const struct pm_strlist *lists[] = {&cfg->queue.endpoints, &cfg->queue.controls};
    for (size_t l = 0; l < 2; l++)
        for (int i = 0; i < lists[l]->n; i++)
            if ((sec.queue_endpoints[sec.nqueue_endpoints] = strdup(lists[l]->v[i])))
                sec.nqueue_endpoints++;
}

void pm_bus_security_init(const struct pm_config *cfg, const char *service)
{
    sec.ready = 1;
    sec.curve = cfg->bus.curve;
    snprintf(sec.name, sizeof sec.name, "%s", cfg->bus.key_name && *cfg->bus.key_name ? cfg->bus.key_name : service);
    if (cfg->bus.keys_dir && cfg->bus.keys_dir[0])
        snprintf(sec.keys_dir, sizeof sec.keys_dir, "%s", cfg->bus.keys_dir);
    else
        snprintf(sec.keys_dir, sizeof sec.keys_dir, "%s/keys", cfg->state_dir);
    remember_queue_endpoints(cfg);
    snprintf(sec.resolver_endpoint, sizeof sec.resolver_endpoint, "%s", cfg->resolver.endpoint);
    if (!sec.curve)
        return;
    if (pm_role_of_key_name(sec.name) != pm_role_of_key_name(service)) {
        /* A replica's key must be of its own role: smtpd with a cli key would be the CLI. */
        pm_log(PM_ERR, "event=bus_security_error reason=\"bus.key_name must be %s or %s.<replica>\" key_name=%s",
               service, service, sec.name);
        sec.pub[0] = sec.sec[0] = '\0';
        return;
    }
    if (pm_keys_load_or_create(sec.keys_dir, sec.name, sec.pub, sec.sec) < 0) {
        pm_log(PM_ERR, "event=bus_security_error reason=\"no keypair\" name=%s dir=%s", sec.name, sec.keys_dir);
        sec.pub[0] = sec.sec[0] = '\0'; /* every socket will refuse to start */
    }
    /* The servers re-read the allowlist from inside their chroot, through the reader. */
    if (!strcmp(service, "queue") || !strcmp(service, "resolver"))
        pm_outside_add_keys(sec.keys_dir);
    /* A worker reads nothing after its chroot: keep the servers' keys now (quietly: a
     * missing one is an error only when that server is used). */
    char pub[PM_KEY_Z85];
    const char *servers[] = {"queue", "resolver"};
    for (size_t i = 0; i < 2; i++)
        if (pm_keys_public(sec.keys_dir, servers[i], pub) == 0) {
            snprintf(sec.preloaded[sec.npreloaded].name, sizeof sec.preloaded[0].name, "%s", servers[i]);
            memcpy(sec.preloaded[sec.npreloaded].pub, pub, sizeof pub);
            sec.npreloaded++;
        }
}

int pm_bus_security_preload(const char *server)
{
    if (!sec.ready || !sec.curve)
        return 0;
    for (int i = 0; i < sec.npreloaded; i++)
        if (strcmp(sec.preloaded[i].name, server) == 0)
            return 0;
    pm_log(PM_ERR, "event=bus_security_error reason=\"no public key of the server (copy %s.pub here or run "
           "`postmesh keys init`)\" server=%s dir=%s", server, server, sec.keys_dir);
    return -1;
}

static int server_public(const char *server, char pub[PM_KEY_Z85])
{
    for (int i = 0; i < sec.npreloaded; i++)
        if (strcmp(sec.preloaded[i].name, server) == 0) {
            memcpy(pub, sec.preloaded[i].pub, PM_KEY_Z85);
            return 0;
        }
    return pm_keys_public(sec.keys_dir, server, pub);
}

static int recv_str(void *s, char *buf, size_t size, int *more)
{
    int n;
    do /* EINTR: e.g. glibc's setuid broadcast to every thread when the process drops root */
        n = zmq_recv(s, buf, size - 1, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -1;
    buf[(size_t)n < size - 1 ? (size_t)n : size - 1] = '\0';
    size_t sz = sizeof *more;
    zmq_getsockopt(s, ZMQ_RCVMORE, more, &sz);
    return n;
}

static void reload(const char *why)
{
    int n = pm_allowlist_reload(sec.keys_dir);
    pm_log(n < 0 ? PM_ERR : PM_DEBUG, "event=bus_allowlist keys=%d dir=%s why=%s", n, sec.keys_dir, why);
}

/* RFC 27 (ZAP): version, request id, domain, address, identity, mechanism, credentials.
 * The answer's user id is the key itself, so that every message can be looked up again. */
static void answer_zap(void *s)
{
    char frames[7][256];
    int lens[7] = {0}, more = 1, n = 0;
    while (more && n < 7) {
        if ((lens[n] = recv_str(s, frames[n], sizeof frames[n], &more)) < 0)
            return;
        n++;
    }
    while (more) { /* ignore extra frames */
        char junk[8];
        if (recv_str(s, junk, sizeof junk, &more) < 0)
            return;
    }
    char z85[PM_KEY_Z85] = "";
    enum pm_role role = PM_ROLE_NONE;
    char name[PM_KEY_NAME] = "";
    int ok = n == 7 && strcmp(frames[5], "CURVE") == 0 && lens[6] == 32;
    if (ok) {
        zmq_z85_encode(z85, (const uint8_t *)frames[6], 32);
        ok = pm_allowlist_find((const unsigned char *)frames[6], &role, name);
        /* The operator may just have added it; a stream of unknown keys costs one stat each. */
        if (!ok && pm_allowlist_reload_if_changed(sec.keys_dir) > 0)
            ok = pm_allowlist_find((const unsigned char *)frames[6], &role, name);
    }
    if (ok)
        pm_log(PM_DEBUG, "event=bus_admitted key=%s role=%s address=%s", name, pm_role_name(role), frames[3]);
    else { /* the key is the peer's choice, and Z85 has '=' */
        char k[PM_LOGV_SIZE], mech[PM_LOGV_SIZE];
        pm_log(PM_WARN, "event=bus_denied address=%s mechanism=%s key=%s", n > 3 ? frames[3] : "?",
               PM_LOGV(mech, n > 5 ? frames[5] : "?"), PM_LOGV(k, z85[0] ? z85 : "-"));
    }
    zmq_send(s, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(s, frames[1], (size_t)(lens[1] > 0 ? lens[1] : 0), ZMQ_SNDMORE);
    zmq_send(s, ok ? "200" : "400", 3, ZMQ_SNDMORE);
    zmq_send(s, ok ? "OK" : "key not allowed", ok ? 2 : 15, ZMQ_SNDMORE);
    zmq_send(s, ok ? z85 : "", ok ? PM_KEY_Z85 - 1 : 0, ZMQ_SNDMORE);
    zmq_send(s, "", 0, 0);
}

static void *zap_main(void *arg)
{
    void *s = arg;
    uint64_t last_reload = pm_mono_ms();
    for (;;) {
        zmq_pollitem_t item = {.socket = s, .events = ZMQ_POLLIN};
        int rc = zmq_poll(&item, 1, RELOAD_EVERY_MS);
        if (rc < 0 && errno != EINTR)
            break;
        if (rc > 0)
            answer_zap(s);
        uint64_t now = pm_mono_ms();
        if (now - last_reload >= RELOAD_EVERY_MS) {
            last_reload = now;
            reload("periodic");
        }
    }
    zmq_close(s);
    return NULL;
}

/* 0, or -1 if the allowlist cannot be read at all: a server that would admit nobody says so
 * by not starting, rather than by refusing every peer with a log line each. */
static int start_zap(void)
{
    if (sec.zap_running)
        return 0;
    int n = pm_allowlist_reload(sec.keys_dir);
    if (n < 0) {
        pm_log(PM_ERR, "event=bus_security_error reason=\"cannot read the keys directory\" dir=%s error=\"%s\"",
               sec.keys_dir, strerror(errno));
        return -1;
    }
    pm_log(PM_INFO, "event=bus_allowlist keys=%d dir=%s", n, sec.keys_dir);
    void *s = zmq_socket(pm_bus_context(), ZMQ_REP);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_bind(s, "inproc://zeromq.zap.01") < 0) {
        pm_log(PM_ERR, "event=bus_security_error reason=\"zap bind: %s\"", zmq_strerror(errno));
        zmq_close(s);
        return -1;
    }
    if (pthread_create(&sec.zap_thread, NULL, zap_main, s) != 0) {
        zmq_close(s);
        return -1;
    }
    pthread_detach(sec.zap_thread);
    sec.zap_running = 1;
    return 0;
}

/* Which server's public key a client needs for this endpoint. */
const char *pm_bus_server_of(const char *endpoint)
{
    for (int i = 0; i < sec.nqueue_endpoints; i++)
        if (!strcmp(endpoint, sec.queue_endpoints[i]))
            return "queue";
    if (!strcmp(endpoint, sec.resolver_endpoint))
        return "resolver";
    return NULL;
}

int pm_bus_apply_security(void *sock, const char *endpoint, int is_server)
{
    if (strncmp(endpoint, "tcp://", 6) != 0 && strncmp(endpoint, "ipc://", 6) != 0)
        return 0;
    if (!sec.ready) {
        pm_log(PM_ERR, "event=bus_security_error reason=\"pm_bus_security_init not called\" endpoint=%s", endpoint);
        return -1;
    }
    if (!sec.curve)
        return 0;
    if (!sec.sec[0]) {
        pm_log(PM_ERR, "event=bus_security_error reason=\"no keypair for %s\" endpoint=%s", sec.name, endpoint);
        return -1;
    }
    if (is_server) {
        int one = 1;
        if (start_zap() < 0)
            return -1;
        zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one);
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, sec.sec, 40);
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, "postmesh", 8);
        return 0;
    }
    const char *server = pm_bus_server_of(endpoint);
    char server_pub[PM_KEY_Z85];
    if (!server || server_public(server, server_pub) < 0) {
        pm_log(PM_ERR, "event=bus_security_error reason=\"no public key of the server (copy %s.pub into the keys "
               "directory)\" endpoint=%s dir=%s", server ? server : "?", endpoint, sec.keys_dir);
        return -1;
    }
    zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server_pub, 40);
    zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, sec.pub, 40);
    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, sec.sec, 40);
    return 0;
}

int pm_bus_secure_bind(void *sock, const char *endpoint)
{
    if (strncmp(endpoint, "ipc://", 6) != 0)
        return zmq_bind(sock, endpoint);
    /* The socket file is made by bind(2) in this thread: under this umask it is born 0660,
     * never for a moment at a looser mode. Its group is its directory's, which the operator
     * chooses (a file's group would otherwise be whatever our gid is). */
    mode_t old = umask(0117);
    int rc = zmq_bind(sock, endpoint);
    int e = errno;
    umask(old);
    if (rc < 0) {
        errno = e;
        return rc;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", endpoint + 6);
    struct stat st;
    if (stat(dirname(dir), &st) == 0 && chown(endpoint + 6, (uid_t)-1, st.st_gid) < 0)
        pm_log(PM_WARN, "event=bus_chown_failed endpoint=%s error=\"%s\"", endpoint, strerror(errno));
    return 0;
}
