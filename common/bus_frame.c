/* One BusMessage per frame on any ZeroMQ socket (bus.h): packing and sending it without a
 * copy, receiving and decoding it with the same edge check as bus.c's watcher (bus_valid.h),
 * for the CLI, which polls its own sockets, and for the blocking call of tools. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "bus.h"
#include "bus_valid.h"
#include "metrics.h"

static void free_packed(void *data, void *hint)
{
    (void)hint;
    free(data);
}

int pm_bus_send_frame(void *sock, Postmesh__BusMessage *msg, int flags)
{
    msg->version = PM_PROTOCOL_VERSION;
    size_t len = postmesh__bus_message__get_packed_size(msg);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return -1;
    postmesh__bus_message__pack(msg, buf);
    zmq_msg_t part;
    zmq_msg_init_data(&part, buf, len, free_packed, NULL); /* zero-copy: bodies can be large */
    if (zmq_msg_send(&part, sock, flags) < 0) {
        int e = errno;
        zmq_msg_close(&part);
        errno = e;
        return -1;
    }
    pm_metric_add(PM_M_BUS_MESSAGES, 1, "sent", pm_bus_body_name(msg->body_case));
    return 0;
}

Postmesh__BusMessage *pm_bus_recv_frame(void *sock, int flags)
{
    zmq_msg_t part;
    zmq_msg_init(&part);
    Postmesh__BusMessage *m = NULL;
    size_t size = 0;
    if (zmq_msg_recv(&part, sock, flags) >= 0) {
        size = zmq_msg_size(&part);
        m = postmesh__bus_message__unpack(NULL, size, zmq_msg_data(&part));
    }
    zmq_msg_close(&part);
    struct pm_bus_invalid why;
    if (m && pm_bus_validate(m, &why) < 0) {
        char endpoint[256] = "-";
        size_t len = sizeof endpoint;
        if (zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, endpoint, &len) < 0)
            snprintf(endpoint, sizeof endpoint, "-");
        const char *server = pm_bus_server_of(endpoint); /* the only peer of a client socket */
        enum pm_role role = server ? pm_role_of_key_name(server) : PM_ROLE_NONE;
        pm_bus_log_invalid(endpoint, server ? server : "-", role, m, &why, size);
        postmesh__bus_message__free_unpacked(m, NULL);
        m = NULL;
    }
    return m;
}

Postmesh__BusMessage *pm_bus_call(const char *endpoint, Postmesh__BusMessage *req, int timeout_ms)
{
    void *sock = zmq_socket(pm_bus_context(), ZMQ_DEALER);
    if (!sock)
        return NULL;
    int zero = 0; /* no linger; and no ZMQ_IMMEDIATE: the request waits for the connection */
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(sock, ZMQ_SNDTIMEO, &timeout_ms, sizeof timeout_ms);
    zmq_setsockopt(sock, ZMQ_RCVTIMEO, &timeout_ms, sizeof timeout_ms);
    Postmesh__BusMessage *reply = NULL;
    if (pm_bus_apply_security(sock, endpoint, 0) == 0 && zmq_connect(sock, endpoint) == 0 &&
        pm_bus_send_frame(sock, req, 0) == 0) {
        reply = pm_bus_recv_frame(sock, 0);
    }
    zmq_close(sock);
    return reply;
}
