/* The bus as a compromised peer sees it, for the queue and resolver fuzzers: the server
 * binds its real ROUTER (common/bus.c: decoding, version check, the per-endpoint policy of
 * who may send what, size caps) on an inproc:// endpoint, and the harness holds one DEALER
 * per role. CurveZMQ is on, so bus.c looks every sender up by the key ZAP admitted; inproc
 * has no handshake, so the one thing faked is that key: zmq_msg_gets(part, "User-Id") is
 * wrapped (link with -Wl,--wrap=zmq_msg_gets) to return the public key of the role whose
 * DEALER sent the frame. Each role has its key in the allowlist (pm_allowlist_set), except
 * PM_ROLE_NONE, which stands for a key ZAP let in that is no longer listed.
 *
 * Input records, read one after the other:
 *   byte 0: bits 0-3 role (mod PM_ROLE_COUNT), bit 4 second endpoint, bits 5-6 op, bit 7
 *           "burst" (do not run the server's loop before the next record: many messages
 *           read in one go, as the group commit sees them);
 *   bytes 1-2: payload length (big-endian, cut short at the end of the input); payload. */
#ifndef FUZZ_BUS_H
#define FUZZ_BUS_H
#include <errno.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "allowlist.h"
#include "bus.h"
#include "fuzz_common.h"
#include "keys.h"

#define FB_ENDPOINTS 2

struct fb_record {
    enum pm_role role;
    int endpoint; /* 0 or 1 */
    int op;       /* 0..3, meaning up to the harness */
    int burst;
    const uint8_t *payload;
    size_t len;
};

static inline int fb_next(const uint8_t **p, size_t *left, struct fb_record *r)
{
    if (*left < 1)
        return 0;
    uint8_t b = (*p)[0];
    r->role = (enum pm_role)((b & 15) % PM_ROLE_COUNT);
    r->endpoint = (b >> 4) & 1;
    r->op = (b >> 5) & 3;
    r->burst = (b >> 7) & 1;
    size_t n = 0;
    if (*left >= 3)
        n = ((size_t)(*p)[1] << 8) | (*p)[2];
    size_t hdr = *left >= 3 ? 3 : *left;
    *p += hdr;
    *left -= hdr;
    if (n > *left)
        n = *left;
    r->payload = *p;
    r->len = n;
    *p += n;
    *left -= n;
    return 1;
}

/* ---------------------------------------------------------------- the server's state */
/* state = $TMPDIR/pm-fuzz-<name>-<pid>, made (the server's state_dir: config and keys). */
static inline void fb_state_make(char *state, size_t size, const char *name)
{
    snprintf(state, size, "%s/pm-fuzz-%s-%d", fuzz_tmpdir(), name, (int)getpid());
    FUZZ_CHECK(mkdir(state, 0700) == 0 || errno == EEXIST);
}

static inline void fb_write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    FUZZ_CHECK(f && fputs(text, f) >= 0 && fclose(f) == 0);
}

/* Removes files (names below state, NULL-terminated), state/keys and state. */
static inline void fb_state_remove(const char *state, const char *const files[])
{
    char p[400];
    for (int i = 0; files[i]; i++) {
        snprintf(p, sizeof p, "%s/%s", state, files[i]);
        unlink(p);
    }
    snprintf(p, sizeof p, "%s/keys", state);
    rmdir(p);
    rmdir(state);
}

/* ---------------------------------------------------------------- roles and keys */
static char fb_uid[PM_ROLE_COUNT][PM_KEY_Z85]; /* each role's public key, Z85 */
static const char *fb_current_uid;             /* the sender of the frame being read */

const char *__real_zmq_msg_gets(const zmq_msg_t *msg, const char *property);
const char *__wrap_zmq_msg_gets(const zmq_msg_t *msg, const char *property)
{
    if (fb_current_uid && strcmp(property, "User-Id") == 0)
        return fb_current_uid;
    return __real_zmq_msg_gets(msg, property);
}

/* A key per role; all but PM_ROLE_NONE's go into the allowlist under the role's name. */
static inline void fb_roles_init(void)
{
    char text[PM_ROLE_COUNT * (PM_KEY_NAME + PM_KEY_Z85 + 2)] = "";
    for (int r = 0; r < PM_ROLE_COUNT; r++) {
        char sec[PM_KEY_Z85];
        FUZZ_CHECK(zmq_curve_keypair(fb_uid[r], sec) == 0);
        if (r != PM_ROLE_NONE)
            snprintf(text + strlen(text), sizeof text - strlen(text), "%s %s\n", pm_role_name((enum pm_role)r),
                     fb_uid[r]);
    }
    FUZZ_CHECK(pm_allowlist_set(text) == PM_ROLE_COUNT - 1);
}

/* ---------------------------------------------------------------- the clients */
struct fb_clients {
    void *dealer[FB_ENDPOINTS][PM_ROLE_COUNT];
};

/* One DEALER per role and endpoint, with a fixed identity so the server sees the same peer
 * across inputs (as a worker that stays connected). */
static inline void fb_clients_open(struct fb_clients *c, const char *const endpoints[FB_ENDPOINTS])
{
    for (int e = 0; e < FB_ENDPOINTS; e++) {
        if (!endpoints[e])
            continue;
        for (int r = 0; r < PM_ROLE_COUNT; r++) {
            void *s = zmq_socket(pm_bus_context(), ZMQ_DEALER);
            FUZZ_CHECK(s);
            char id[32];
            int n = snprintf(id, sizeof id, "fuzz-%d-%s", e, pm_role_name((enum pm_role)r));
            int zero = 0;
            zmq_setsockopt(s, ZMQ_ROUTING_ID, id, (size_t)n);
            zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
            FUZZ_CHECK(zmq_connect(s, endpoints[e]) == 0);
            c->dealer[e][r] = s;
        }
    }
}

static inline void fb_send(struct fb_clients *c, const struct fb_record *r, const void *frame, size_t len)
{
    void *s = c->dealer[r->endpoint][r->role];
    if (!s)
        return;
    FUZZ_CHECK(zmq_send(s, frame, len, ZMQ_DONTWAIT) == (int)len);
}

/* Packs m and sends it as role r would. */
static inline void fb_send_msg(struct fb_clients *c, const struct fb_record *r, Postmesh__BusMessage *m)
{
    m->version = PM_PROTOCOL_VERSION;
    size_t n = postmesh__bus_message__get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    postmesh__bus_message__pack(m, buf);
    fb_send(c, r, buf, n);
    free(buf);
}

/* Makes bus read what is waiting: a send to a peer that does not exist fails (the ROUTER is
 * mandatory) but, as every pm_bus_send_to, makes the bus check its socket in the next loop
 * turn, so the harness never depends on ZMQ_FD's edge. The User-Id seen while it reads is
 * the key of `role`. */
static inline void fb_kick(struct event_base *base, struct pm_bus *bus, enum pm_role role)
{
    Postmesh__BusMessage m = POSTMESH__BUS_MESSAGE__INIT;
    Postmesh__Ping ping = POSTMESH__PING__INIT;
    m.body_case = POSTMESH__BUS_MESSAGE__BODY_PING;
    m.ping = &ping;
    fb_current_uid = fb_uid[role];
    pm_bus_send_to(bus, (const uint8_t *)"\0nobody", 7, &m);
    event_base_loop(base, EVLOOP_NONBLOCK);
}

/* Every message waiting at the clients, decoded; cb(endpoint, role, msg) checks them. */
static inline void fb_collect(struct fb_clients *c, void (*cb)(int, enum pm_role, const Postmesh__BusMessage *, void *),
                              void *arg)
{
    for (int e = 0; e < FB_ENDPOINTS; e++)
        for (int r = 0; r < PM_ROLE_COUNT; r++) {
            void *s = c->dealer[e][r];
            if (!s)
                continue;
            for (;;) {
                zmq_msg_t part;
                zmq_msg_init(&part);
                if (zmq_msg_recv(&part, s, ZMQ_DONTWAIT) < 0) {
                    zmq_msg_close(&part);
                    break;
                }
                Postmesh__BusMessage *m =
                    postmesh__bus_message__unpack(NULL, zmq_msg_size(&part), zmq_msg_data(&part));
                zmq_msg_close(&part);
                /* What the server sends must decode: a peer would drop it otherwise. */
                FUZZ_CHECK(m && m->version == PM_PROTOCOL_VERSION);
                cb(e, (enum pm_role)r, m, arg);
                postmesh__bus_message__free_unpacked(m, NULL);
            }
        }
}

#endif
