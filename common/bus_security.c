/* Bus security: CurveZMQ on every tcp:// endpoint, a ZAP handler on the binding side that
 * admits only the public keys in state_dir/keys, and 0660 permissions on ipc:// sockets.
 * A client with an unknown key fails the handshake; one without CURVE cannot even speak to a
 * CURVE server (mechanism mismatch). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#include "bus.h"
#include "config.h"
#include "keys.h"
#include "log.h"

static struct {
    int ready;
    int curve;
    char keys_dir[4096];
    char service[64];
    char pub[PM_KEY_Z85], sec[PM_KEY_Z85];
    char queue_endpoint[256], queue_control[256], resolver_endpoint[256];
    pthread_t zap_thread;
    int zap_running;
    /* Server public keys read before a chroot hid state_dir/keys (pm_bus_security_preload). */
    struct {
        char name[16];
        char pub[PM_KEY_Z85];
    } preloaded[4];
    int npreloaded;
} sec;

void pm_bus_security_init(const struct pm_config *cfg, const char *service)
{
    sec.ready = 1;
    sec.curve = cfg->bus.curve;
    snprintf(sec.service, sizeof sec.service, "%s", service);
    if (cfg->bus.keys_dir && cfg->bus.keys_dir[0])
        snprintf(sec.keys_dir, sizeof sec.keys_dir, "%s", cfg->bus.keys_dir);
    else
        snprintf(sec.keys_dir, sizeof sec.keys_dir, "%s/keys", cfg->state_dir);
    snprintf(sec.queue_endpoint, sizeof sec.queue_endpoint, "%s", cfg->queue.endpoint);
    snprintf(sec.queue_control, sizeof sec.queue_control, "%s", cfg->queue.control);
    snprintf(sec.resolver_endpoint, sizeof sec.resolver_endpoint, "%s", cfg->resolver.endpoint);
    if (sec.curve && pm_keys_load_or_create(sec.keys_dir, service, sec.pub, sec.sec) < 0) {
        pm_log(PM_ERR, "event=bus_security_error reason=\"no keypair\" dir=%s", sec.keys_dir);
        sec.pub[0] = sec.sec[0] = '\0'; /* every tcp:// socket will refuse to start */
    }
    /* Every client may need these, and a worker reads nothing after its chroot. */
    pm_bus_security_preload("queue");
    pm_bus_security_preload("resolver");
}

int pm_bus_security_preload(const char *server)
{
    if (!sec.ready || !sec.curve)
        return 0;
    for (int i = 0; i < sec.npreloaded; i++)
        if (strcmp(sec.preloaded[i].name, server) == 0)
            return 0;
    if (sec.npreloaded == (int)(sizeof sec.preloaded / sizeof sec.preloaded[0]))
        return -1;
    char pub[PM_KEY_Z85];
    if (pm_keys_public(sec.keys_dir, server, pub) < 0) {
        pm_log(PM_ERR, "event=bus_security_error reason=\"no server key\" server=%s dir=%s", server, sec.keys_dir);
        return -1;
    }
    snprintf(sec.preloaded[sec.npreloaded].name, sizeof sec.preloaded[0].name, "%s", server);
    memcpy(sec.preloaded[sec.npreloaded].pub, pub, sizeof pub);
    sec.npreloaded++;
    return 0;
}

/* The server's public key: preloaded, else read from the keys directory now. */
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

/* RFC 27 (ZAP): version, request id, domain, address, identity, mechanism, credentials. */
static void *zap_main(void *arg)
{
    void *s = arg;
    for (;;) {
        char frames[7][256];
        int lens[7] = {0}, more = 1, n = 0;
        while (more && n < 7) {
            lens[n] = recv_str(s, frames[n], sizeof frames[n], &more);
            if (lens[n] < 0)
                goto out;
            n++;
        }
        while (more) { /* ignore extra frames */
            char junk[8];
            if (recv_str(s, junk, sizeof junk, &more) < 0)
                goto out;
        }
        int ok = n == 7 && strcmp(frames[5], "CURVE") == 0 && lens[6] == 32 &&
                 pm_keys_is_allowed(sec.keys_dir, (const unsigned char *)frames[6]);
        if (!ok)
            pm_log(PM_WARN, "event=bus_denied address=%s mechanism=%s", n > 3 ? frames[3] : "?", n > 5 ? frames[5] : "?");
        zmq_send(s, "1.0", 3, ZMQ_SNDMORE);
        zmq_send(s, frames[1], (size_t)(lens[1] > 0 ? lens[1] : 0), ZMQ_SNDMORE);
        zmq_send(s, ok ? "200" : "400", 3, ZMQ_SNDMORE);
        zmq_send(s, ok ? "OK" : "key not allowed", ok ? 2 : 15, ZMQ_SNDMORE);
        zmq_send(s, "", 0, ZMQ_SNDMORE);
        zmq_send(s, "", 0, 0);
    }
out:
    zmq_close(s);
    return NULL;
}

static void start_zap(void)
{
    if (sec.zap_running)
        return;
    /* One machine needs no setup: the server makes sure every service has a key. */
    for (const char *const *n = pm_keys_bus_names; *n; n++) {
        char pub[PM_KEY_Z85];
        pm_keys_public(sec.keys_dir, *n, pub);
    }
    int n = pm_keys_load_allowlist(sec.keys_dir);
    pm_log(PM_INFO, "event=bus_allowlist keys=%d dir=%s", n, sec.keys_dir);
    void *s = zmq_socket(pm_bus_context(), ZMQ_REP);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_bind(s, "inproc://zeromq.zap.01") < 0) {
        pm_log(PM_ERR, "event=bus_security_error reason=\"zap bind: %s\"", zmq_strerror(errno));
        zmq_close(s);
        return;
    }
    if (pthread_create(&sec.zap_thread, NULL, zap_main, s) == 0) {
        pthread_detach(sec.zap_thread);
        sec.zap_running = 1;
    }
}

/* Which server's public key a client needs for this endpoint. */
static const char *server_name(const char *endpoint)
{
    if (!strcmp(endpoint, sec.queue_endpoint) || !strcmp(endpoint, sec.queue_control))
        return "queue";
    if (!strcmp(endpoint, sec.resolver_endpoint))
        return "resolver";
    return NULL;
}

int pm_bus_apply_security(void *sock, const char *endpoint, int is_server)
{
    if (strncmp(endpoint, "tcp://", 6) != 0)
        return 0;
    if (!sec.ready) {
        pm_log(PM_ERR, "event=bus_security_error reason=\"pm_bus_security_init not called\" endpoint=%s", endpoint);
        return -1;
    }
    if (!sec.curve)
        return 0;
    if (!sec.sec[0]) {
        pm_log(PM_ERR, "event=bus_security_error reason=\"no keypair for %s\" endpoint=%s", sec.service, endpoint);
        return -1;
    }
    if (is_server) {
        int one = 1;
        start_zap();
        zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one);
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, sec.sec, 40);
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, "postmesh", 8);
        return 0;
    }
    const char *server = server_name(endpoint);
    char server_pub[PM_KEY_Z85];
    if (!server || server_public(server, server_pub) < 0) {
        pm_log(PM_ERR, "event=bus_security_error reason=\"no server key\" endpoint=%s", endpoint);
        return -1;
    }
    zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server_pub, 40);
    zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, sec.pub, 40);
    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, sec.sec, 40);
    return 0;
}

void pm_bus_after_bind(const char *endpoint)
{
    /* ipc:// sockets are protected by file permissions: owner and group only. */
    if (strncmp(endpoint, "ipc://", 6) == 0 && chmod(endpoint + 6, 0660) < 0)
        pm_log(PM_WARN, "event=bus_chmod_failed endpoint=%s error=\"%s\"", endpoint, strerror(errno));
}
