/* The PROXY protocol header (HAProxy's proxy-protocol.txt, v1 text and v2 binary) that a
 * load balancer sends before the client's first octet, saying whom it accepted the
 * connection from. This file is the parser only: a byte-level state machine, so the
 * result is the same however the header is split (like smtpd/data.c), bounded (v1 at most
 * 107 octets, v2 at most 16 + PM_PROXY_V2_MAX_LEN), and it never consumes an octet past the
 * header: what follows is the client's (a TLS ClientHello may share the segment).
 * Who may send a header, and the waiting for it on a socket, are proxywait.h's. */
#ifndef PM_PROXY_H
#define PM_PROXY_H
#include <stddef.h>
#include <sys/socket.h>

#define PM_PROXY_V1_MAX 107        /* the spec's longest line, "PROXY TCP6 ...\r\n" */
#define PM_PROXY_V2_MAX_LEN 2048   /* address block + TLVs; HAProxy's own are far shorter */
#define PM_PROXY_V2_ADDR_MAX 216   /* the largest address block (AF_UNIX); TLVs are skipped */

enum pm_proxy_status {
    PM_PROXY_MORE,  /* every octet given was header; the header is not complete */
    PM_PROXY_DONE,  /* the header ended; *used says where */
    PM_PROXY_ERROR, /* not a valid header (p->error says why); stop reading */
};

struct pm_proxy_header {
    int version; /* 1 or 2 */
    /* No client address to take: v2 LOCAL (the proxy's own health check), v1 UNKNOWN, or a
     * family the spec lets a receiver treat as UNSPEC (UDP, AF_UNIX). The connection's own
     * addresses stand. */
    int local;
    struct sockaddr_storage src, dst; /* AF_INET or AF_INET6 with port, unless local */
};

struct pm_proxy_parser {
    int version;         /* 0 until the first octet tells */
    size_t len;          /* octets of the header consumed so far */
    size_t total;        /* v2: 16 + its length field, once read (0 before) */
    unsigned char buf[16 + PM_PROXY_V2_ADDR_MAX]; /* the v1 line, or v2's fixed part + addresses */
    const char *error;   /* set with PM_PROXY_ERROR: a short token for the log */
};

void pm_proxy_init(struct pm_proxy_parser *p);

/* Consumes header octets from in[0..n); *used gets how many. On PM_PROXY_DONE *out is
 * filled and in[*used..n) is the client's. After DONE or ERROR, init again before reuse. */
enum pm_proxy_status pm_proxy_feed(struct pm_proxy_parser *p, const void *in, size_t n, size_t *used,
                                   struct pm_proxy_header *out);

#endif
