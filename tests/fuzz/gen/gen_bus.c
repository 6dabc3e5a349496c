/* Writes the BusMessage seeds of fuzz_queue_bus and fuzz_resolver_bus (tests/fuzz/corpus/):
 * sessions of records as tests/fuzz/fuzz_bus.h reads them, each frame packed with the
 * protobuf-c code generated from proto/postmesh.proto. The sessions are what the services
 * say to each other (smtpd submits, workers give credit and answer jobs, the CLI asks) and
 * what issue 10's attacker tried (a worker's credit from smtpd's key, control from a
 * worker, a DSN from smtpd, oversized and undecodable frames).
 * Build and run: make -f Makefile -f tests/fuzz/fuzz.mk fuzz-seeds */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "postmesh.pb-c.h"

static uint8_t out[1 << 20];
static size_t outlen;

enum { OP_FRAME = 0, OP_RESULT = 1, OP_CONTROL = 2, OP_TICK = 3 };
enum { EP_MAIN = 0, EP_CONTROL = 1 };

static void record_raw(enum pm_role role, int endpoint, int op, int burst, const void *p, size_t n)
{
    out[outlen++] = (uint8_t)(role | endpoint << 4 | op << 5 | burst << 7);
    out[outlen++] = (uint8_t)(n >> 8);
    out[outlen++] = (uint8_t)n;
    memcpy(out + outlen, p, n);
    outlen += n;
}

static void record(enum pm_role role, int endpoint, int burst, Postmesh__BusMessage *m)
{
    static uint8_t buf[70000];
    if (!m->version)
        m->version = 1;
    size_t n = postmesh__bus_message__pack(m, buf);
    record_raw(role, endpoint, OP_FRAME, burst, buf, n);
}

static void save(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(out, 1, outlen, f) != outlen || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
    outlen = 0;
}

static const char *body_plain = "Received: from client.example.test ([192.0.2.10])\r\n"
                                "\tby mx.example.test (Postmesh) with ESMTP;\r\n\tMon, 13 Nov 2023 10:00:00 +0000\r\n"
                                "From: Alice <alice@example.test>\r\nTo: bob@remote.test\r\nSubject: hello\r\n\r\nHi.\r\n";

static void submit(enum pm_role role, int burst, uint64_t rid, const char *sender, const char *const *rcpts,
                   const char *body, int is_dsn)
{
    Postmesh__Submit s = POSTMESH__SUBMIT__INIT;
    s.sender = (char *)sender;
    size_t n = 0;
    while (rcpts[n])
        n++;
    s.recipients = (char **)rcpts;
    s.n_recipients = n;
    s.body.data = (uint8_t *)body;
    s.body.len = strlen(body);
    s.client_address = "192.0.2.10:54321";
    s.helo = "client.example.test";
    s.is_dsn = is_dsn;
    s.origin_id = is_dsn ? "0005F1A2B3C4D001" : "";
    Postmesh__BusMessage m = POSTMESH__BUS_MESSAGE__INIT;
    m.request_id = rid;
    m.body_case = POSTMESH__BUS_MESSAGE__BODY_SUBMIT;
    m.submit = &s;
    record(role, EP_MAIN, burst, &m);
}

static void credit(enum pm_role role, Postmesh__WorkerKind kind, unsigned credits, const char *name)
{
    Postmesh__Credit c = POSTMESH__CREDIT__INIT;
    c.kind = kind;
    c.credits = credits;
    c.worker_name = (char *)name;
    Postmesh__BusMessage m = POSTMESH__BUS_MESSAGE__INIT;
    m.body_case = POSTMESH__BUS_MESSAGE__BODY_CREDIT;
    m.credit = &c;
    record(role, EP_MAIN, 0, &m);
}

static void control(enum pm_role role, int endpoint, Postmesh__ControlRequest__Command cmd, const char *id)
{
    Postmesh__ControlRequest c = POSTMESH__CONTROL_REQUEST__INIT;
    c.command = cmd;
    c.queue_id = (char *)id;
    Postmesh__BusMessage m = POSTMESH__BUS_MESSAGE__INIT;
    m.request_id = 3;
    m.body_case = POSTMESH__BUS_MESSAGE__BODY_CONTROL;
    m.control = &c;
    record(role, endpoint, 0, &m);
}

static void ping(enum pm_role role, int endpoint)
{
    Postmesh__Ping p = POSTMESH__PING__INIT;
    Postmesh__BusMessage m = POSTMESH__BUS_MESSAGE__INIT;
    m.request_id = 99;
    m.body_case = POSTMESH__BUS_MESSAGE__BODY_PING;
    m.ping = &p;
    record(role, endpoint, 0, &m);
}

/* A result for the last job the role received: one status byte per recipient. */
static void result(enum pm_role role, const char *statuses)
{
    record_raw(role, EP_MAIN, OP_RESULT, 0, statuses, strlen(statuses));
}

static void queue_seeds(const char *dir)
{
    const char *local[] = {"bob@example.test", NULL};
    const char *remote[] = {"carol@remote.test", "dave@remote.test", NULL};
    const char *aliased[] = {"team@example.test", "staff@example.test", "postmaster@example.test",
                             "Team@Example.Test", NULL};
    const char *one[] = {"x@example.test", NULL};
    const char *none[] = {NULL};
    const char *sender = "alice@example.test";

    /* Local delivery: submit, the CLI looks, a delivery worker takes the job and delivers. */
    submit(PM_ROLE_SMTPD, 0, 1, sender, local, body_plain, 0);
    control(PM_ROLE_CLI, EP_CONTROL, POSTMESH__CONTROL_REQUEST__COMMAND__LIST, "");
    record_raw(PM_ROLE_CLI, EP_CONTROL, OP_CONTROL, 0, "\x01", 1); /* SHOW the last id */
    credit(PM_ROLE_DELIVERY, POSTMESH__WORKER_KIND__WORKER_DELIVERY, 8, "delivery-1");
    result(PM_ROLE_DELIVERY, "\x00");
    control(PM_ROLE_CLI, EP_CONTROL, POSTMESH__CONTROL_REQUEST__COMMAND__STATUS, "");
    save(dir, "local_delivery");

    /* Remote: the mta defers one, fails one; a tick; the bouncer gets a DSN job, answers. */
    submit(PM_ROLE_SMTPD, 0, 2, sender, remote, body_plain, 0);
    credit(PM_ROLE_MTA, POSTMESH__WORKER_KIND__WORKER_MTA, 4, "mta-1");
    result(PM_ROLE_MTA, "\x01\x42");
    record_raw(PM_ROLE_NONE, EP_MAIN, OP_TICK, 0, "", 0);
    credit(PM_ROLE_BOUNCER, POSTMESH__WORKER_KIND__WORKER_BOUNCER, 4, "bouncer-1");
    result(PM_ROLE_BOUNCER, "\x00");
    submit(PM_ROLE_BOUNCER, 0, 3, "", one, "From: MAILER-DAEMON@mx.example.test\r\nSubject: failure\r\n\r\nx\r\n", 1);
    save(dir, "remote_and_bounce");

    /* Group commit: five submissions read in one burst (max_batch 4 in the harness). */
    for (int i = 0; i < 5; i++)
        submit(PM_ROLE_SMTPD, i < 4, 10 + (uint64_t)i, sender, i % 2 ? aliased : local, body_plain, 0);
    control(PM_ROLE_CLI, EP_CONTROL, POSTMESH__CONTROL_REQUEST__COMMAND__FLUSH, "");
    record_raw(PM_ROLE_CLI, EP_CONTROL, OP_CONTROL, 0, "\x04", 1); /* HOLD */
    record_raw(PM_ROLE_CLI, EP_CONTROL, OP_CONTROL, 0, "\x05", 1); /* RELEASE */
    record_raw(PM_ROLE_CLI, EP_CONTROL, OP_CONTROL, 0, "\x03", 1); /* DELETE */
    save(dir, "burst_aliases_control");

    /* Issue 10, as the attacker did it with smtpd's key. */
    submit(PM_ROLE_SMTPD, 0, 20, sender, local, body_plain, 0);
    credit(PM_ROLE_SMTPD, POSTMESH__WORKER_KIND__WORKER_DELIVERY, 8, "evil");          /* not a worker */
    credit(PM_ROLE_MTA, POSTMESH__WORKER_KIND__WORKER_DELIVERY, 8, "mta-as-delivery"); /* wrong kind */
    control(PM_ROLE_SMTPD, EP_CONTROL, POSTMESH__CONTROL_REQUEST__COMMAND__LIST, "");
    control(PM_ROLE_SMTPD, EP_MAIN, POSTMESH__CONTROL_REQUEST__COMMAND__DELETE, "0000000000000000");
    control(PM_ROLE_DELIVERY, EP_CONTROL, POSTMESH__CONTROL_REQUEST__COMMAND__DELETE, "");
    submit(PM_ROLE_SMTPD, 0, 21, "", local, body_plain, 1);  /* a "DSN" from smtpd */
    submit(PM_ROLE_BOUNCER, 0, 22, sender, local, body_plain, 1); /* a DSN with a sender */
    submit(PM_ROLE_MTA, 0, 23, sender, local, body_plain, 0);
    ping(PM_ROLE_NONE, EP_MAIN);
    ping(PM_ROLE_RESOLVER, EP_MAIN);
    ping(PM_ROLE_CLI, EP_CONTROL);
    ping(PM_ROLE_SMTPD, EP_CONTROL);
    save(dir, "role_attacks");

    /* Malformed: no recipients, a mail loop, a wrong version, undecodable, oversized credit. */
    submit(PM_ROLE_SMTPD, 0, 30, sender, none, body_plain, 0);
    {
        static char loop[200 * 40 + 64];
        loop[0] = '\0';
        for (int i = 0; i < 102; i++)
            snprintf(loop + strlen(loop), sizeof loop - strlen(loop), "Received: from hop%d\r\n", i);
        strcat(loop, "\r\nbody\r\n");
        submit(PM_ROLE_SMTPD, 0, 31, sender, local, loop, 0);
    }
    {
        Postmesh__BusMessage m = POSTMESH__BUS_MESSAGE__INIT;
        Postmesh__Ping p = POSTMESH__PING__INIT;
        m.version = 2;
        m.body_case = POSTMESH__BUS_MESSAGE__BODY_PING;
        m.ping = &p;
        record(PM_ROLE_SMTPD, EP_MAIN, 0, &m);
    }
    record_raw(PM_ROLE_SMTPD, EP_MAIN, OP_FRAME, 0, "\x08\x01\x52\xff\xff\xff\xff\x0f", 8);
    {
        static char big[5000];
        memset(big, 'w', sizeof big - 1);
        credit(PM_ROLE_DELIVERY, POSTMESH__WORKER_KIND__WORKER_DELIVERY, 1, big);
    }
    credit(PM_ROLE_DELIVERY, POSTMESH__WORKER_KIND__WORKER_DELIVERY, 4000000000u, "delivery \"=x");
    save(dir, "malformed");

    /* Results that do not fit: a job's result from the wrong worker, a late one, a missing
     * recipient, an index it does not hold. */
    submit(PM_ROLE_SMTPD, 0, 40, sender, remote, body_plain, 0);
    credit(PM_ROLE_MTA, POSTMESH__WORKER_KIND__WORKER_MTA, 1, "mta-1");
    result(PM_ROLE_MTA, "\x80\x00\x02");
    result(PM_ROLE_MTA, "\x00\x00\x01");
    result(PM_ROLE_MTA, "\x03\x03");
    {
        Postmesh__JobResult r = POSTMESH__JOB_RESULT__INIT;
        Postmesh__RecipientResult rr = POSTMESH__RECIPIENT_RESULT__INIT;
        Postmesh__RecipientResult *rp[] = {&rr};
        r.job_id = 1;
        r.epoch = 12345;
        r.queue_id = "0005F1A2B3C4D001";
        r.kind = POSTMESH__WORKER_KIND__WORKER_MTA;
        rr.index = 0;
        rr.status = POSTMESH__RECIPIENT_RESULT__STATUS__DELIVERED;
        rr.dsn_status = "2.0.0";
        rr.text = "250 ok";
        r.results = rp;
        r.n_results = 1;
        Postmesh__BusMessage m = POSTMESH__BUS_MESSAGE__INIT;
        m.body_case = POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT;
        m.job_result = &r;
        record(PM_ROLE_MTA, EP_MAIN, 0, &m);
    }
    save(dir, "results_mismatch");

    /* The operator deletes a message while its jobs are out (the job keeps it alive). */
    submit(PM_ROLE_SMTPD, 0, 50, sender, remote, body_plain, 0);
    credit(PM_ROLE_MTA, POSTMESH__WORKER_KIND__WORKER_MTA, 4, "mta-1");
    record_raw(PM_ROLE_CLI, EP_CONTROL, OP_CONTROL, 0, "\x03", 1); /* DELETE */
    result(PM_ROLE_MTA, "\x00\x00");
    control(PM_ROLE_CLI, EP_CONTROL, POSTMESH__CONTROL_REQUEST__COMMAND__LIST, "");
    save(dir, "delete_in_flight");
}

static void resolve(enum pm_role role, int op, uint64_t rid, Postmesh__ResolveRequest__Kind kind, const char *name)
{
    static uint8_t buf[70000];
    Postmesh__ResolveRequest r = POSTMESH__RESOLVE_REQUEST__INIT;
    r.kind = kind;
    r.name = (char *)name;
    Postmesh__BusMessage m = POSTMESH__BUS_MESSAGE__INIT;
    m.version = 1;
    m.request_id = rid;
    m.body_case = POSTMESH__BUS_MESSAGE__BODY_RESOLVE;
    m.resolve = &r;
    size_t n = postmesh__bus_message__pack(&m, buf);
    record_raw(role, EP_MAIN, op, 0, buf, n);
}

static void resolver_seeds(const char *dir)
{
    /* op: how the harness's nameserver answers what the request asks: 1 timeout, 2 an
     * answer, 3 NXDOMAIN (0: later, with the next record's answers). */
    resolve(PM_ROLE_MTA, 2, 1, POSTMESH__RESOLVE_REQUEST__KIND__MX, "remote.test");
    resolve(PM_ROLE_MTA, 3, 2, POSTMESH__RESOLVE_REQUEST__KIND__MX, "nowhere.test");
    resolve(PM_ROLE_MTA, 1, 3, POSTMESH__RESOLVE_REQUEST__KIND__A, "mx1.remote.test");
    resolve(PM_ROLE_SMTPD, 2, 4, POSTMESH__RESOLVE_REQUEST__KIND__PTR, "192.0.2.1");
    resolve(PM_ROLE_SMTPD, 2, 5, POSTMESH__RESOLVE_REQUEST__KIND__PTR, "2001:db8::1");
    save(dir, "lookups");

    resolve(PM_ROLE_MTA, 0, 10, POSTMESH__RESOLVE_REQUEST__KIND__MX, "remote.test");
    resolve(PM_ROLE_MTA, 0, 11, POSTMESH__RESOLVE_REQUEST__KIND__MX, "remote.test"); /* the same question */
    resolve(PM_ROLE_MTA, 2, 12, POSTMESH__RESOLVE_REQUEST__KIND__MX, "Remote.Test.");
    resolve(PM_ROLE_MTA, 2, 13, POSTMESH__RESOLVE_REQUEST__KIND__MX, "remote.test"); /* from the cache */
    save(dir, "shared_and_cached");

    resolve(PM_ROLE_CLI, 2, 20, POSTMESH__RESOLVE_REQUEST__KIND__MX, "remote.test");
    resolve(PM_ROLE_DELIVERY, 2, 21, POSTMESH__RESOLVE_REQUEST__KIND__MX, "remote.test");
    resolve(PM_ROLE_NONE, 2, 22, POSTMESH__RESOLVE_REQUEST__KIND__MX, "remote.test");
    resolve(PM_ROLE_MTA, 2, 23, POSTMESH__RESOLVE_REQUEST__KIND__MX, "bad name\".test");
    resolve(PM_ROLE_MTA, 2, 24, POSTMESH__RESOLVE_REQUEST__KIND__PTR, "not-an-ip");
    resolve(PM_ROLE_MTA, 2, 25, (Postmesh__ResolveRequest__Kind)7, "remote.test");
    {
        static char longname[3000];
        memset(longname, 'a', sizeof longname - 1);
        resolve(PM_ROLE_MTA, 2, 26, POSTMESH__RESOLVE_REQUEST__KIND__MX, longname); /* over the size cap */
    }
    {
        Postmesh__Ping p = POSTMESH__PING__INIT;
        Postmesh__BusMessage m = POSTMESH__BUS_MESSAGE__INIT;
        m.body_case = POSTMESH__BUS_MESSAGE__BODY_PING;
        m.ping = &p;
        record(PM_ROLE_MTA, EP_MAIN, 0, &m);
        Postmesh__Submit s = POSTMESH__SUBMIT__INIT;
        m.body_case = POSTMESH__BUS_MESSAGE__BODY_SUBMIT;
        m.submit = &s;
        record(PM_ROLE_SMTPD, EP_MAIN, 0, &m);
    }
    record_raw(PM_ROLE_MTA, EP_MAIN, 2, 0, "\x08\x01\x8a\x01\x05\x12\x03", 7); /* truncated */
    save(dir, "refused");
}

int main(int argc, char **argv)
{
    const char *root = argc > 1 ? argv[1] : "tests/fuzz/corpus";
    char dir[512];
    snprintf(dir, sizeof dir, "%s/queue_bus", root);
    queue_seeds(dir);
    snprintf(dir, sizeof dir, "%s/resolver_bus", root);
    resolver_seeds(dir);
    return 0;
}
