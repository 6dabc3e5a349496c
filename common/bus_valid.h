/* What a decoded BusMessage may hold, checked once where it is decoded (common/bus.c), so
 * that a handler only ever sees a message that passed: the protocol version, a body, enum
 * values the proto knows (protobuf-c keeps an unknown number as it came), required fields
 * present, and every string's length and content and every repeated field's count within
 * the bounds below. The rules are one table with a row per body (bus_valid.c); what a ROLE
 * may say (a worker only for its own kind, DSNs only from the bouncer) stays with the
 * service that knows the roles (services/queue/endpoints.c).
 *
 * The bounds are the protocol's, not any one service's config: two hosts configured
 * differently (a rolling change of smtpd.max_recipients) must not refuse each other's
 * legitimate messages. Each is at least what the sending side can produce, with the reason
 * next to it. Unknown fields (a newer peer's) are let through, as protobuf intends. */
#ifndef PM_BUS_VALID_H
#define PM_BUS_VALID_H
#include <stddef.h>

#include "keys.h"
#include "postmesh.pb-c.h"

/* The queue's ids: 16 upper-case hex digits (services/queue/msg.c), the only form admitted,
 * since ids are logged bare on every line about a message. */
#define PM_BUS_QUEUE_ID_LEN 16
/* Recipients of one Submit, Job or JobResult: smtpd.max_recipients' ceiling (config.c). */
#define PM_BUS_MAX_RCPTS 100000
/* Recipients of one stored message (Job.report, a listed item): up to 10,000 (or
 * smtpd.max_recipients) addresses after alias expansion plus one failed entry per RCPT. */
#define PM_BUS_MAX_STORED_RCPTS (2 * PM_BUS_MAX_RCPTS)
/* An address: an RFC 5321 path is at most 256 octets with its <>, an alias target (final
 * address of a Job) at most 320 (common/aliases.c). A Job's domain is cut from one. */
#define PM_BUS_MAX_ADDRESS 320
#define PM_BUS_MAX_DOMAIN 255 /* host names: HELO, MX and PTR names, remote_mta, ETRN */
#define PM_BUS_MAX_USER 512   /* an AUTH identity (smtpd/auth.c) */
#define PM_BUS_MAX_CLIENT 128 /* "ip:port" of an SMTP client, or "local" */
#define PM_BUS_MAX_IP 63      /* an address in text form (the mta's buffer holds 63) */
#define PM_BUS_MAX_DSN 15     /* an enhanced status code, "5.1.10" */
#define PM_BUS_MAX_WORD 32    /* a state or action: "deferred", "failed" */
#define PM_BUS_MAX_NAME 255   /* a worker's name, for the queue's logs */
/* Reply texts and diagnostics: the longest written is an expiry note around a remote
 * reply line (1,023 octets, services/queue/schedule.c). */
#define PM_BUS_MAX_TEXT 2048
#define PM_BUS_MAX_ENVID 100  /* RFC 3461 4.4: ENVID at most 100 characters */
#define PM_BUS_MAX_ORCPT 500  /* RFC 3461 4.2: ORCPT at most 500 characters */
#define PM_BUS_MAX_TXT 4096   /* one TXT record, its strings joined */
#define PM_BUS_MAX_HOSTS 64  /* MX hosts in a ResolveReply (the resolver keeps 16) */
#define PM_BUS_MAX_ADDRS 64  /* addresses per MX host (the resolver keeps 16 + 16) */
#define PM_BUS_MAX_NAMES 64  /* PTR names (the resolver reads 64 records an answer) */
#define PM_BUS_MAX_TLSA 32   /* TLSA records in a ResolveReply */
#define PM_BUS_MAX_TLSA_DATA 1024 /* one TLSA record's association data, octets */
#define PM_BUS_MAX_ITEMS 5000 /* ControlReply items: one page (proto: at most 5,000) */
#define PM_BUS_MAX_TLS_SESSIONS 16 /* JobResult.tls_sessions (MTA_TLSRPT_MAX_SESSIONS) */
#define PM_BUS_MAX_TLS_POLICY 32   /* a session's policy strings and mx patterns */
#define PM_BUS_MAX_TLS_POLICY_STRING 1024 /* one policy string ("3 1 1 <hex>", an STS line) */
#define PM_BUS_MAX_TLS_RUA 8       /* a session's rua URIs (PM_TLSRPT_MAX_RUA) */

/* Why a message was refused: a fixed word and the field it is about, for the log line. */
struct pm_bus_invalid {
    const char *problem; /* "version", "no_body", "missing", "too_long", "too_many",
                          * "unknown_value", "bad_queue_id", "control_character",
                          * "too_deep" */
    char field[96];      /* "recipients[3].address"; "" for the message as a whole */
};

/* 0 if m is fit for its handler, else -1 with *why filled in. */
int pm_bus_validate(const Postmesh__BusMessage *m, struct pm_bus_invalid *why);

/* The one line of a refusal for what a message holds: `event=bus_refused endpoint=E key=K
 * role=R body=B reason=invalid field=F problem=P bytes=N` (reason=version for another
 * protocol version). key and role name the sender: its key on a binding socket, the server
 * a client socket connects to. */
void pm_bus_log_invalid(const char *endpoint, const char *key, enum pm_role role, const Postmesh__BusMessage *m,
                        const struct pm_bus_invalid *why, size_t size);

/* The answer to a request refused as invalid, so that its sender neither waits for an answer
 * nor asks again: SubmitReply and ResolveReply PERMFAIL 5.5.4, ControlReply not ok,
 * EtrnReply TEMPFAIL, each with the reason in its text. */
struct pm_bus_refusal {
    Postmesh__BusMessage msg;
    union {
        Postmesh__SubmitReply submit;
        Postmesh__ControlReply control;
        Postmesh__ResolveReply resolve;
        Postmesh__EtrnReply etrn;
    } u;
    char text[192];
};
/* 1 and r filled in if m is a request that has an answer, else 0 (nothing to send). */
int pm_bus_refusal(const Postmesh__BusMessage *m, const struct pm_bus_invalid *why, struct pm_bus_refusal *r);

/* Is id a queue id (PM_BUS_QUEUE_ID_LEN upper-case hex digits)? */
int pm_bus_queue_id_ok(const char *id);

/* The table against the proto, for its unit test: every rule names a field of its message,
 * every string, bytes and repeated field has a rule, every message type met has rules.
 * 0, or -1 with what is wrong in err. */
int pm_bus_valid_table_check(char *err, size_t size);

#endif
