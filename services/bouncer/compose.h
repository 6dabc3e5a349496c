/* RFC 3464 delivery status notification, composed as a pure function of its inputs (the
 * time and a unique token are inputs too) so it can be tested byte for byte.
 *
 * Character set policy: the DSN's own header fields, the human-readable part and the
 * message/delivery-status part are strictly 7-bit. Non-ASCII in diagnostics becomes '?';
 * non-ASCII addresses are written in the report as "utf-8; " utf-8-addr-xtext (RFC 6533)
 * and in the human-readable part as '?'. A To: address that cannot be written in 7 bits is
 * replaced by "undisclosed-recipients:;" (the envelope still carries it). The original
 * header section goes into text/rfc822-headers unchanged apart from line ends; if it holds
 * 8-bit bytes that part and the top level say Content-Transfer-Encoding: 8bit. */
#ifndef BOUNCER_COMPOSE_H
#define BOUNCER_COMPOSE_H
#include <stddef.h>
#include <stdint.h>

/* The original header section is cut to this many bytes (at a line end) in part 3. */
#define BOUNCER_MAX_HEADERS (128 * 1024)

struct bouncer_rcpt {
    const char *address;    /* final recipient */
    const char *original;   /* as given at RCPT; reported when different */
    const char *status;     /* enhanced status code "5.1.1" */
    const char *action;     /* "failed", "delayed", "delivered" or "relayed" (RFC 3464 2.3.3) */
    const char *remote_mta; /* host that answered, "" if none */
    const char *diagnostic; /* remote reply text or local reason */
    uint64_t last_attempt;  /* unix seconds, 0 if unknown */
    const char *orcpt;      /* RCPT's ORCPT "addr-type;address" (RFC 3461), "" or NULL if none */
};

struct bouncer_dsn_in {
    const char *hostname;     /* Reporting-MTA and MAILER-DAEMON@ */
    const char *queue_id;     /* the original message */
    const char *sender;       /* original envelope sender: the DSN's recipient */
    int delay_notice;         /* warning instead of failure */
    uint64_t arrival_time;    /* of the original message, 0 if unknown */
    uint64_t now;             /* Date: */
    long long delay_warning;  /* seconds; the warning's wording if arrival_time is unknown */
    long long max_lifetime;   /* seconds; Will-Retry-Until = arrival_time + this */
    const char *unique;       /* token making Message-ID and boundary unique */
    const struct bouncer_rcpt *rcpts;
    size_t nrcpts;
    const uint8_t *headers;   /* original header section (anything after it is ignored) */
    size_t headers_len;
    const char *envid;        /* MAIL's ENVID (RFC 3461), "" or NULL if none */
    /* RET=FULL and a failure is reported: headers is the whole message, returned as
     * message/rfc822 (else its header section only, as text/rfc822-headers). */
    int return_full;
    /* The message was sent with REQUIRETLS (RFC 8689): the notice says why only the header
     * section comes back (return_full is the caller's to clear). */
    int requiretls;
};

struct bouncer_dsn {
    char *data; /* the complete message, CRLF line ends */
    size_t len;
    int eightbit;       /* part 3 carries 8-bit bytes */
    int to_undisclosed; /* the sender could not be written in a 7-bit To: */
    char boundary[72];
};

/* 0 on success (free with bouncer_dsn_free), -1 on allocation failure or when no boundary
 * absent from the content could be found. */
int bouncer_compose(const struct bouncer_dsn_in *in, struct bouncer_dsn *out);
void bouncer_dsn_free(struct bouncer_dsn *out);

/* The action a recipient is reported with: its own if valid, else from delay_notice. */
const char *bouncer_rcpt_action(const struct bouncer_rcpt *r, int delay_notice);

#endif
