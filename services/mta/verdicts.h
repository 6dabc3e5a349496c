/* The recipients of an outbound job (outbound.h) and their verdicts: what the answers of one
 * connection of the shared client (smtpc.h) mean for them, and the JobResult that reports
 * them, one log line each (event=delivered, deferred, returned or bounced). A verdict is
 * final when a server decided (2xx, 5xx, or the body went out and no answer came); a
 * temporary one only keeps the last reason while another address may still take the mail.
 * What it does not do: choose the next address or talk to a server (outbound.c). */
#ifndef MTA_VERDICTS_H
#define MTA_VERDICTS_H
#include <stdint.h>

#include "postmesh.pb-c.h"
#include "smtpc.h"

typedef Postmesh__RecipientResult__Status mta_status;

struct mta_rcpt {
    uint32_t index;
    const char *address;
    int final;
    mta_status status;
    char dsn[16];
    char text[PM_SMTPC_TEXT_MAX];
    char remote_mta[256]; /* the host that gave the verdict or the last error, "" if none */
    char relay[360];
    char tls[160];
    const Postmesh__RecipientDsn *rcpt_dsn; /* the job's NOTIFY and ORCPT, NULL none */
    int relayed; /* delivered to a server without DSN, and NOTIFY asked for SUCCESS */
    /* Some address failed it only temporarily (a 4.x.x reason): a 5.x.x reason kept from
     * another one (REQUIRETLS, RFC 8689 4.2.1) is then not final, the queue tries later. */
    int temp_reason;
};

/* dsn and text may be r's own fields (the last temporary reason becoming final). */
void mta_rcpt_final(struct mta_rcpt *r, mta_status st, const char *dsn, const char *text);

/* Every recipient still undecided gets this final verdict. */
void mta_rcpts_fail_all(struct mta_rcpt *rcpts, int n, mta_status st, const char *dsn, const char *text);

/* An MX not tried for the TLS policy (policy.h SKIP): the reason stays on every undecided
 * recipient, as a temporary one from a connection would, while another MX may take them. */
void mta_rcpts_skip(struct mta_rcpt *rcpts, int n, const char *dsn, const char *text);

/* What one connection decided for its recipients: sm->rcpts[j] is rcpts[map[j]]. host, relay
 * and tls name the server and the connection. When sm->loop, every one of them gets
 * looptext: final (PERMFAIL 5.4.6) from a best-preference host, else kept as the reason
 * (4.4.6) while better hosts are tried. */
void mta_rcpts_fold(struct mta_rcpt *rcpts, const int *map, const struct pm_smtpc *sm, const char *host, int best,
                    const char *relay, const char *tls, const char *looptext);

/* The job's result: every recipient still undecided becomes TEMPFAIL with its last reason,
 * or PERMFAIL when that reason is 5.x.x and no address failed it temporarily (every MX was
 * tried and none could take it, e.g. none offered REQUIRETLS: RFC 8689 4.2.1 returns the
 * message then). Each is logged, and r->res points into r until mta_result_free. */
struct mta_result {
    Postmesh__JobResult res;
    Postmesh__RecipientResult *rr;
    Postmesh__RecipientResult **rp;
};
void mta_result_build(struct mta_result *r, struct mta_rcpt *rcpts, int n, const Postmesh__Job *job);
void mta_result_free(struct mta_result *r);

#endif
