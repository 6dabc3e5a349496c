/* The bus's edge checks (common/bus_valid.c), row by row: for every body a well-formed message
 * passes (and the limits themselves pass: a string of exactly its bound, the largest count),
 * then each required field missing, each bound exceeded by one and each unknown enum value is
 * refused, with the problem and the field named; the answers refused requests get; and the
 * table against the proto (every field has a rule, every rule a field). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "bus_valid.h"

#define BODY(x) POSTMESH__BUS_MESSAGE__BODY_##x
#define QID "0123456789ABCDEF"

/* Every message a case builds lives here; reset before each case. */
static struct {
    Postmesh__BusMessage m;
    Postmesh__Submit submit;
    Postmesh__SubmitReply submit_reply;
    Postmesh__Credit credit;
    Postmesh__Job job;
    Postmesh__JobRecipient jr[2], *jrp[2];
    Postmesh__ReportRecipient rr, *rrp[1];
    Postmesh__JobResult result;
    Postmesh__RecipientResult res, *resp[1];
    Postmesh__ControlRequest control;
    Postmesh__ControlReply control_reply;
    Postmesh__QueueItem item, *itemp[1];
    Postmesh__QueueRecipient qr, *qrp[1];
    Postmesh__ResolveRequest resolve;
    Postmesh__ResolveReply resolve_reply;
    Postmesh__MxHost mx, *mxp[1];
    Postmesh__Ping ping;
    Postmesh__Etrn etrn;
    Postmesh__EtrnReply etrn_reply;
    char *rcpts[2];
    char *addrs[1], *names[1];
} w;

/* Strings of exact lengths, and huge arrays, made on demand and freed after each case. */
static char *made[8];
static int nmade;
static void **many; /* PM_BUS_MAX_STORED_RCPTS + 1 copies of one pointer */

static char *str_of(size_t n, char c)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    assert_true(nmade < 8);
    made[nmade++] = s;
    return s;
}

static void *many_of(void *p)
{
    if (!many)
        many = malloc((PM_BUS_MAX_STORED_RCPTS + 1) * sizeof *many);
    assert_non_null(many);
    for (size_t i = 0; i <= PM_BUS_MAX_STORED_RCPTS; i++)
        many[i] = p;
    return many;
}

static void reset(Postmesh__BusMessage__BodyCase body)
{
    for (int i = 0; i < nmade; i++)
        free(made[i]);
    nmade = 0;
    memset(&w, 0, sizeof w);
    postmesh__bus_message__init(&w.m);
    w.m.version = PM_PROTOCOL_VERSION;
    w.m.request_id = 42;
    w.m.body_case = body;
    switch (body) {
    case BODY(SUBMIT):
        postmesh__submit__init(&w.submit);
        w.rcpts[0] = "alice@example.test";
        w.rcpts[1] = "bob@example.net";
        w.submit.sender = "carol@example.org";
        w.submit.recipients = w.rcpts;
        w.submit.n_recipients = 2;
        w.submit.body.data = (uint8_t *)"Subject: hi\r\n\r\nhello\r\n";
        w.submit.body.len = 22;
        w.submit.client_address = "192.0.2.1:40000";
        w.submit.helo = "client.example.org";
        w.m.submit = &w.submit;
        break;
    case BODY(SUBMIT_REPLY):
        postmesh__submit_reply__init(&w.submit_reply);
        w.submit_reply.queue_id = QID;
        w.submit_reply.text = "2.0.0 committed";
        w.m.submit_reply = &w.submit_reply;
        break;
    case BODY(CREDIT):
        postmesh__credit__init(&w.credit);
        w.credit.kind = POSTMESH__WORKER_KIND__WORKER_MTA;
        w.credit.credits = 10;
        w.credit.worker_name = "mta-1";
        w.m.credit = &w.credit;
        break;
    case BODY(JOB):
        postmesh__job__init(&w.job);
        for (int i = 0; i < 2; i++) {
            postmesh__job_recipient__init(&w.jr[i]);
            w.jr[i].index = (uint32_t)i;
            w.jr[i].address = i ? "b@example.net" : "a@example.net";
            w.jr[i].original = w.jr[i].address;
            w.jrp[i] = &w.jr[i];
        }
        postmesh__report_recipient__init(&w.rr);
        w.rr.address = "x@example.net";
        w.rr.status = "5.1.1";
        w.rr.action = "failed";
        w.rr.remote_mta = "mx.example.net";
        w.rr.diagnostic = "550 5.1.1 no such user";
        w.rrp[0] = &w.rr;
        w.job.job_id = 7;
        w.job.epoch = 0x9e3779b97f4a7c15ull;
        w.job.queue_id = QID;
        w.job.kind = POSTMESH__WORKER_KIND__WORKER_MTA;
        w.job.sender = "carol@example.org";
        w.job.recipients = w.jrp;
        w.job.n_recipients = 2;
        w.job.domain = "example.net";
        w.job.report = w.rrp; /* the bouncer's only, but checked in any job */
        w.job.n_report = 1;
        w.m.job = &w.job;
        break;
    case BODY(JOB_RESULT):
        postmesh__job_result__init(&w.result);
        postmesh__recipient_result__init(&w.res);
        w.res.index = 3;
        w.res.status = POSTMESH__RECIPIENT_RESULT__STATUS__TEMPFAIL;
        w.res.dsn_status = "4.4.1";
        w.res.text = "4.4.1 connection refused";
        w.res.remote_mta = "mx.example.net";
        w.resp[0] = &w.res;
        w.result.job_id = 7;
        w.result.queue_id = QID;
        w.result.results = w.resp;
        w.result.n_results = 1;
        w.result.kind = POSTMESH__WORKER_KIND__WORKER_MTA;
        w.m.job_result = &w.result;
        break;
    case BODY(CONTROL):
        postmesh__control_request__init(&w.control);
        w.control.command = POSTMESH__CONTROL_REQUEST__COMMAND__LIST;
        w.control.after = QID;
        w.control.limit = 1000;
        w.m.control = &w.control;
        break;
    case BODY(CONTROL_REPLY):
        postmesh__control_reply__init(&w.control_reply);
        postmesh__queue_item__init(&w.item);
        postmesh__queue_recipient__init(&w.qr);
        w.qr.address = "a@example.net";
        w.qr.state = "deferred";
        w.qr.last_error = "4.4.1 connection refused";
        w.qrp[0] = &w.qr;
        w.item.queue_id = QID;
        w.item.sender = "";
        w.item.recipients = w.qrp;
        w.item.n_recipients = 1;
        w.item.state = "deferred";
        w.item.headers = "Subject: hi\r\n";
        w.itemp[0] = &w.item;
        w.control_reply.ok = 1;
        w.control_reply.items = w.itemp;
        w.control_reply.n_items = 1;
        w.m.control_reply = &w.control_reply;
        break;
    case BODY(RESOLVE):
        postmesh__resolve_request__init(&w.resolve);
        w.resolve.name = "example.net";
        w.m.resolve = &w.resolve;
        break;
    case BODY(RESOLVE_REPLY):
        postmesh__resolve_reply__init(&w.resolve_reply);
        postmesh__mx_host__init(&w.mx);
        w.addrs[0] = "2001:db8::25";
        w.mx.name = "mx.example.net";
        w.mx.preference = 10;
        w.mx.addresses = w.addrs;
        w.mx.n_addresses = 1;
        w.mxp[0] = &w.mx;
        w.names[0] = "host.example.net";
        w.resolve_reply.hosts = w.mxp;
        w.resolve_reply.n_hosts = 1;
        w.resolve_reply.names = w.names;
        w.resolve_reply.n_names = 1;
        w.m.resolve_reply = &w.resolve_reply;
        break;
    case BODY(PING):
        postmesh__ping__init(&w.ping);
        w.m.ping = &w.ping;
        break;
    case BODY(ETRN):
        postmesh__etrn__init(&w.etrn);
        w.etrn.domain = "example.net";
        w.m.etrn = &w.etrn;
        break;
    case BODY(ETRN_REPLY):
        postmesh__etrn_reply__init(&w.etrn_reply);
        w.etrn_reply.status = POSTMESH__ETRN_REPLY__STATUS__STARTED;
        w.etrn_reply.messages = 3;
        w.m.etrn_reply = &w.etrn_reply;
        break;
    default:
        break;
    }
}

/* pm_bus_validate's verdict: passed (problem NULL) or refused for problem in field. */
static void judge(int rc, const struct pm_bus_invalid *why, const char *problem, const char *field)
{
    if (!problem) {
        if (rc != 0)
            fail_msg("refused: %s %s", why->field, why->problem);
        return;
    }
    assert_int_equal(rc, -1);
    assert_string_equal(why->problem, problem);
    assert_string_equal(why->field, field);
}

/* The message as the bus hands it over: packed and unpacked again (protobuf-c keeps enum
 * numbers it does not know as they came), then checked. */
static void expect(const char *problem, const char *field)
{
    struct pm_bus_invalid why;
    size_t len = postmesh__bus_message__get_packed_size(&w.m);
    uint8_t *buf = malloc(len + 1);
    assert_non_null(buf);
    postmesh__bus_message__pack(&w.m, buf);
    Postmesh__BusMessage *m = postmesh__bus_message__unpack(NULL, len, buf);
    free(buf);
    assert_non_null(m);
    int rc = pm_bus_validate(m, &why);
    postmesh__bus_message__free_unpacked(m, NULL);
    judge(rc, &why, problem, field);
}

/* The same without the wire, for counts too large to pack quickly. */
static void expect_direct(const char *problem, const char *field)
{
    struct pm_bus_invalid why;
    judge(pm_bus_validate(&w.m, &why), &why, problem, field);
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < nmade; i++)
        free(made[i]);
    nmade = 0;
    free(many);
    many = NULL;
    return 0;
}

/* ------------------------------------------------------------------ the message as a whole */

static void test_table_matches_the_proto(void **state)
{
    (void)state;
    char err[256] = "";
    if (pm_bus_valid_table_check(err, sizeof err) != 0)
        fail_msg("%s", err);
}

static void test_version_and_body(void **state)
{
    (void)state;
    static const Postmesh__BusMessage__BodyCase all[] = {
        BODY(SUBMIT), BODY(SUBMIT_REPLY), BODY(CREDIT), BODY(JOB), BODY(JOB_RESULT), BODY(CONTROL),
        BODY(CONTROL_REPLY), BODY(RESOLVE), BODY(RESOLVE_REPLY), BODY(PING), BODY(ETRN), BODY(ETRN_REPLY),
    };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        reset(all[i]);
        expect(NULL, NULL); /* every body's well-formed message passes */
        w.m.version = 2;
        expect("version", "version");
        w.m.version = 0; /* absent */
        expect("version", "version");
    }
    reset(BODY(PING));
    w.m.body_case = POSTMESH__BUS_MESSAGE__BODY__NOT_SET;
    w.m.ping = NULL;
    expect("no_body", "");
}

static void test_queue_id_form(void **state)
{
    (void)state;
    assert_true(pm_bus_queue_id_ok("0123456789ABCDEF"));
    assert_true(pm_bus_queue_id_ok("FEDCBA9876543210"));
    static const char *const bad[] = {"", "0123456789ABCDE", "0123456789ABCDEF0", "0123456789abcdef",
                                      "0123456789ABCDEG", "0123456789ABC EF", "0123456789ABC\nEF", NULL};
    for (size_t i = 0; bad[i]; i++)
        assert_false(pm_bus_queue_id_ok(bad[i]));
    assert_false(pm_bus_queue_id_ok(NULL));
}

/* ------------------------------------------------------------------ the rows, as tables */

/* Every bounded string: at its bound it passes, one octet more is too long; one that must be
 * a single clean line (line = 1) is also refused with a CR LF in it. */
static const struct {
    Postmesh__BusMessage__BodyCase body;
    char **field;
    size_t bound;
    int line;
    const char *name;
} bounds[] = {
    {BODY(SUBMIT), &w.submit.sender, PM_BUS_MAX_ADDRESS, 1, "sender"},
    {BODY(SUBMIT), &w.rcpts[1], PM_BUS_MAX_ADDRESS, 1, "recipients[1]"},
    {BODY(SUBMIT), &w.submit.client_address, PM_BUS_MAX_CLIENT, 1, "client_address"},
    {BODY(SUBMIT), &w.submit.helo, PM_BUS_MAX_DOMAIN, 1, "helo"},
    {BODY(SUBMIT), &w.submit.auth_user, PM_BUS_MAX_USER, 1, "auth_user"},
    {BODY(SUBMIT_REPLY), &w.submit_reply.text, PM_BUS_MAX_TEXT, 0, "text"},
    {BODY(CREDIT), &w.credit.worker_name, PM_BUS_MAX_NAME, 1, "worker_name"},
    {BODY(JOB), &w.job.sender, PM_BUS_MAX_ADDRESS, 1, "sender"},
    {BODY(JOB), &w.job.domain, PM_BUS_MAX_ADDRESS, 1, "domain"}, /* cut from an alias target */
    {BODY(JOB), &w.jr[1].address, PM_BUS_MAX_ADDRESS, 1, "recipients[1].address"},
    {BODY(JOB), &w.jr[0].original, PM_BUS_MAX_ADDRESS, 1, "recipients[0].original"},
    {BODY(JOB), &w.rr.address, PM_BUS_MAX_ADDRESS, 1, "report[0].address"},
    {BODY(JOB), &w.rr.original, PM_BUS_MAX_ADDRESS, 1, "report[0].original"},
    {BODY(JOB), &w.rr.status, PM_BUS_MAX_DSN, 1, "report[0].status"},
    {BODY(JOB), &w.rr.action, PM_BUS_MAX_WORD, 1, "report[0].action"},
    {BODY(JOB), &w.rr.remote_mta, PM_BUS_MAX_DOMAIN, 1, "report[0].remote_mta"},
    {BODY(JOB), &w.rr.diagnostic, PM_BUS_MAX_TEXT, 0, "report[0].diagnostic"},
    {BODY(JOB_RESULT), &w.res.dsn_status, PM_BUS_MAX_DSN, 1, "results[0].dsn_status"},
    {BODY(JOB_RESULT), &w.res.text, PM_BUS_MAX_TEXT, 0, "results[0].text"},
    {BODY(JOB_RESULT), &w.res.remote_mta, PM_BUS_MAX_DOMAIN, 1, "results[0].remote_mta"},
    {BODY(CONTROL_REPLY), &w.control_reply.text, PM_BUS_MAX_TEXT, 0, "text"},
    {BODY(CONTROL_REPLY), &w.item.sender, PM_BUS_MAX_ADDRESS, 1, "items[0].sender"},
    {BODY(CONTROL_REPLY), &w.item.state, PM_BUS_MAX_WORD, 1, "items[0].state"},
    {BODY(CONTROL_REPLY), &w.item.client_address, PM_BUS_MAX_CLIENT, 1, "items[0].client_address"},
    {BODY(CONTROL_REPLY), &w.item.helo, PM_BUS_MAX_DOMAIN, 1, "items[0].helo"},
    {BODY(CONTROL_REPLY), &w.qr.address, PM_BUS_MAX_ADDRESS, 1, "items[0].recipients[0].address"},
    {BODY(CONTROL_REPLY), &w.qr.state, PM_BUS_MAX_WORD, 1, "items[0].recipients[0].state"},
    {BODY(CONTROL_REPLY), &w.qr.last_error, PM_BUS_MAX_TEXT, 0, "items[0].recipients[0].last_error"},
    {BODY(RESOLVE), &w.resolve.name, PM_BUS_MAX_DOMAIN, 1, "name"}, /* 255 octets: the lookup says 5.1.2 */
    {BODY(RESOLVE_REPLY), &w.resolve_reply.dsn_status, PM_BUS_MAX_DSN, 1, "dsn_status"},
    {BODY(RESOLVE_REPLY), &w.resolve_reply.text, PM_BUS_MAX_TEXT, 0, "text"},
    {BODY(RESOLVE_REPLY), &w.mx.name, PM_BUS_MAX_DOMAIN, 1, "hosts[0].name"},
    {BODY(RESOLVE_REPLY), &w.addrs[0], PM_BUS_MAX_IP, 1, "hosts[0].addresses[0]"},
    {BODY(RESOLVE_REPLY), &w.names[0], PM_BUS_MAX_DOMAIN, 1, "names[0]"},
    {BODY(ETRN), &w.etrn.domain, PM_BUS_MAX_DOMAIN, 1, "domain"},
    {BODY(ETRN_REPLY), &w.etrn_reply.text, PM_BUS_MAX_TEXT, 0, "text"},
};

static void test_every_string_bound(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++) {
        reset(bounds[i].body);
        *bounds[i].field = str_of(bounds[i].bound, 'a');
        expect(NULL, NULL);
        *bounds[i].field = str_of(bounds[i].bound + 1, 'a');
        expect("too_long", bounds[i].name);
        if (bounds[i].line) {
            *bounds[i].field = "a\r\nRSET";
            expect("control_character", bounds[i].name);
            *bounds[i].field = "t\tb";
            expect("control_character", bounds[i].name);
        }
    }
}

/* Required fields, queue ids and values that are refused or admitted on their own. */
static const struct {
    Postmesh__BusMessage__BodyCase body;
    char **field;
    const char *value;
    const char *problem; /* NULL: admitted */
    const char *name;
} values[] = {
    {BODY(SUBMIT), &w.submit.sender, "", NULL, NULL}, /* the null sender */
    {BODY(SUBMIT), &w.rcpts[1], "", "missing", "recipients[1]"},
    {BODY(SUBMIT), &w.submit.origin_id, QID, NULL, NULL},
    {BODY(SUBMIT), &w.submit.origin_id, "not-a-queue-id", "bad_queue_id", "origin_id"},
    {BODY(SUBMIT_REPLY), &w.submit_reply.queue_id, "", "missing", "queue_id"}, /* COMMITTED names it */
    {BODY(SUBMIT_REPLY), &w.submit_reply.queue_id, "0123456789abcdef", "bad_queue_id", "queue_id"},
    {BODY(JOB), &w.job.queue_id, "", "missing", "queue_id"},
    {BODY(JOB), &w.job.queue_id, "x id=0000000000000000 event=delivered", "bad_queue_id", "queue_id"},
    {BODY(JOB), &w.jr[1].address, "", "missing", "recipients[1].address"},
    {BODY(JOB_RESULT), &w.result.queue_id, "", "missing", "queue_id"},
    {BODY(JOB_RESULT), &w.result.queue_id, "0123456789ABCDEF0", "bad_queue_id", "queue_id"},
    {BODY(CONTROL), &w.control.after, "", NULL, NULL}, /* from the start */
    {BODY(CONTROL), &w.control.after, "~index", "bad_queue_id", "after"},
    {BODY(CONTROL), &w.control.queue_id, "0123456789ABCDEx", "bad_queue_id", "queue_id"},
    {BODY(CONTROL_REPLY), &w.item.queue_id, "", "missing", "items[0].queue_id"},
    {BODY(RESOLVE), &w.resolve.name, "", "missing", "name"},
    {BODY(ETRN), &w.etrn.domain, "@example.net", NULL, NULL}, /* RFC 1985: its subdomains too */
    {BODY(ETRN), &w.etrn.domain, "EXAMPLE.NET", NULL, NULL},
    {BODY(ETRN), &w.etrn.domain, "", "missing", "domain"},
    {BODY(ETRN), &w.etrn.domain, "@", "missing", "domain"},
};

static void test_required_fields_and_queue_ids(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        reset(values[i].body);
        *values[i].field = (char *)values[i].value;
        expect(values[i].problem, values[i].name);
    }
    reset(BODY(ETRN)); /* "@" and a whole domain: one octet over a domain's bound */
    char *at = str_of(1 + PM_BUS_MAX_DOMAIN, 'd');
    at[0] = '@';
    w.etrn.domain = at;
    expect(NULL, NULL);
}

/* Every enum field, with a number the proto does not have (protobuf-c keeps it as it came). */
static const struct {
    Postmesh__BusMessage__BodyCase body;
    int *field;
    int value;
    const char *name;
} enums[] = {
    {BODY(SUBMIT_REPLY), (int *)&w.submit_reply.status, 3, "status"},
    {BODY(CREDIT), (int *)&w.credit.kind, 4, "kind"},
    {BODY(JOB), (int *)&w.job.kind, 9, "kind"},
    {BODY(JOB_RESULT), (int *)&w.result.kind, -1, "kind"},
    {BODY(JOB_RESULT), (int *)&w.res.status, 4, "results[0].status"},
    {BODY(CONTROL), (int *)&w.control.command, 8, "command"}, /* 7: TLSRPT */
    {BODY(RESOLVE), (int *)&w.resolve.kind, 5, "kind"},
    {BODY(SUBMIT), (int *)&w.submit.dsn_ret, 3, "dsn_ret"},
    {BODY(RESOLVE_REPLY), (int *)&w.resolve_reply.status, 3, "status"},
    {BODY(RESOLVE_REPLY), (int *)&w.resolve_reply.dnssec, 3, "dnssec"},
    {BODY(ETRN_REPLY), (int *)&w.etrn_reply.status, 3, "status"},
};

static void test_every_enum_knows_its_values(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof enums / sizeof enums[0]; i++) {
        reset(enums[i].body);
        *enums[i].field = enums[i].value;
        expect("unknown_value", enums[i].name);
    }
}

/* Every repeated field: its largest count passes, one more is too many. */
static const struct {
    Postmesh__BusMessage__BodyCase body;
    size_t *n;
    void *array; /* the address of the field's pointer */
    void *element;
    size_t max;
    const char *name;
} counts[] = {
    {BODY(SUBMIT), &w.submit.n_recipients, &w.submit.recipients, "a@example.test", PM_BUS_MAX_RCPTS, "recipients"},
    {BODY(JOB), &w.job.n_recipients, &w.job.recipients, &w.jr[0], PM_BUS_MAX_RCPTS, "recipients"},
    {BODY(JOB), &w.job.n_report, &w.job.report, &w.rr, PM_BUS_MAX_STORED_RCPTS, "report"},
    {BODY(JOB_RESULT), &w.result.n_results, &w.result.results, &w.res, PM_BUS_MAX_RCPTS, "results"},
    {BODY(CONTROL_REPLY), &w.control_reply.n_items, &w.control_reply.items, &w.item, PM_BUS_MAX_ITEMS, "items"},
    {BODY(CONTROL_REPLY), &w.item.n_recipients, &w.item.recipients, &w.qr, PM_BUS_MAX_STORED_RCPTS,
     "items[0].recipients"},
    {BODY(RESOLVE_REPLY), &w.resolve_reply.n_hosts, &w.resolve_reply.hosts, &w.mx, PM_BUS_MAX_HOSTS, "hosts"},
    {BODY(RESOLVE_REPLY), &w.mx.n_addresses, &w.mx.addresses, "192.0.2.1", PM_BUS_MAX_ADDRS, "hosts[0].addresses"},
    {BODY(RESOLVE_REPLY), &w.resolve_reply.n_names, &w.resolve_reply.names, "h.example.net", PM_BUS_MAX_NAMES,
     "names"},
};

static void test_every_count_bound(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        reset(counts[i].body);
        *(void **)counts[i].array = many_of(counts[i].element);
        *counts[i].n = counts[i].max;
        expect_direct(NULL, NULL); /* checked as decoded, without packing 200,000 elements */
        *counts[i].n = counts[i].max + 1;
        expect_direct("too_many", counts[i].name);
    }
}

/* The rules that are not one field's bound. */
static void test_what_else_each_body_needs(void **state)
{
    (void)state;
    reset(BODY(SUBMIT)); /* no recipient at all: the queue answers that itself (5.5.1) */
    w.submit.n_recipients = 0;
    expect(NULL, NULL);
    reset(BODY(SUBMIT_REPLY)); /* a refusal names no message */
    w.submit_reply.status = POSTMESH__SUBMIT_REPLY__STATUS__PERMFAIL;
    w.submit_reply.queue_id = "";
    expect(NULL, NULL);
    reset(BODY(CREDIT)); /* the queue's role rules answer a worker of no kind */
    w.credit.kind = POSTMESH__WORKER_KIND__WORKER_NONE;
    expect(NULL, NULL);

    reset(BODY(JOB));
    w.job.epoch = 0; /* "no run's": legal, it matches no job */
    expect(NULL, NULL);
    w.job.job_id = 0;
    expect("missing", "job_id");
    reset(BODY(JOB));
    w.job.kind = POSTMESH__WORKER_KIND__WORKER_NONE;
    expect("missing", "kind");
    reset(BODY(JOB));
    w.job.n_recipients = 0;
    expect("missing", "recipients");
    /* A bouncer's one recipient is the envelope sender, the null sender too. */
    reset(BODY(JOB));
    w.job.kind = POSTMESH__WORKER_KIND__WORKER_BOUNCER;
    w.job.n_recipients = 1;
    w.jr[0].address = "";
    expect(NULL, NULL);

    /* A bogus answer is only ever a TEMPFAIL; records only come with OK; a TLSA record's
     * data is bounded. */
    reset(BODY(RESOLVE_REPLY));
    w.resolve_reply.dnssec = POSTMESH__DNSSEC__DNSSEC_BOGUS;
    expect("bogus_not_tempfail", "dnssec");
    w.resolve_reply.status = POSTMESH__RESOLVE_REPLY__STATUS__TEMPFAIL;
    w.resolve_reply.n_hosts = 0;
    expect(NULL, NULL);
    reset(BODY(RESOLVE_REPLY));
    w.resolve_reply.status = POSTMESH__RESOLVE_REPLY__STATUS__PERMFAIL;
    expect("records_without_ok", "hosts");
    {
        static uint8_t data[PM_BUS_MAX_TLSA_DATA + 1];
        Postmesh__TlsaRecord t = POSTMESH__TLSA_RECORD__INIT, *tp[1] = {&t};
        t.usage = 3;
        t.selector = 1;
        t.matching_type = 1;
        t.data.data = data;
        t.data.len = PM_BUS_MAX_TLSA_DATA;
        reset(BODY(RESOLVE_REPLY));
        w.resolve_reply.tlsa = tp;
        w.resolve_reply.n_tlsa = 1;
        expect(NULL, NULL);
        t.data.len = PM_BUS_MAX_TLSA_DATA + 1;
        expect("too_long", "tlsa[0].data");
        t.data.len = 32;
        w.resolve_reply.status = POSTMESH__RESOLVE_REPLY__STATUS__TEMPFAIL;
        w.resolve_reply.n_hosts = 0;
        expect("records_without_ok", "tlsa");
        w.resolve_reply.tlsa = NULL;
        w.resolve_reply.n_tlsa = 0;
    }

    reset(BODY(JOB_RESULT));
    w.result.n_results = 0; /* the queue counts it as "worker gave no result" */
    expect(NULL, NULL);
    w.result.job_id = 0;
    expect("missing", "job_id");

    static const Postmesh__ControlRequest__Command one[] = {
        POSTMESH__CONTROL_REQUEST__COMMAND__SHOW, POSTMESH__CONTROL_REQUEST__COMMAND__DELETE,
        POSTMESH__CONTROL_REQUEST__COMMAND__HOLD, POSTMESH__CONTROL_REQUEST__COMMAND__RELEASE};
    for (size_t i = 0; i < 4; i++) {
        reset(BODY(CONTROL));
        w.control.command = one[i];
        w.control.queue_id = QID;
        expect(NULL, NULL);
        w.control.queue_id = "";
        expect("missing", "queue_id"); /* these commands name a message */
    }
    reset(BODY(CONTROL_REPLY));
    w.item.headers = str_of(1 << 20, 'h'); /* a header section: bounded by the frame only */
    expect(NULL, NULL);
    reset(BODY(RESOLVE));
    w.resolve.kind = POSTMESH__RESOLVE_REQUEST__KIND__PTR;
    w.resolve.name = "192.0.2.1";
    expect(NULL, NULL);
}

/* ------------------------------------------------------------------ answers to refusals */

static void refusal_of(struct pm_bus_refusal *r, int want)
{
    struct pm_bus_invalid why;
    assert_int_equal(pm_bus_validate(&w.m, &why), -1);
    assert_int_equal(pm_bus_refusal(&w.m, &why, r), want);
    if (want) {
        assert_int_equal(r->msg.request_id, 42);
        /* What is sent is itself a valid message. */
        r->msg.version = PM_PROTOCOL_VERSION;
        struct pm_bus_invalid again;
        assert_int_equal(pm_bus_validate(&r->msg, &again), 0);
    }
}

static void test_refused_requests_are_answered(void **state)
{
    (void)state;
    struct pm_bus_refusal r;
    reset(BODY(SUBMIT));
    w.rcpts[0] = "";
    refusal_of(&r, 1);
    assert_int_equal(r.msg.body_case, BODY(SUBMIT_REPLY));
    assert_int_equal(r.msg.submit_reply->status, POSTMESH__SUBMIT_REPLY__STATUS__PERMFAIL);
    assert_string_equal(r.msg.submit_reply->text, "5.5.4 invalid submit: recipients[0] missing");

    reset(BODY(CONTROL));
    w.control.command = (Postmesh__ControlRequest__Command)99;
    refusal_of(&r, 1);
    assert_int_equal(r.msg.body_case, BODY(CONTROL_REPLY));
    assert_false(r.msg.control_reply->ok);
    assert_string_equal(r.msg.control_reply->text, "invalid control: command unknown_value");

    reset(BODY(RESOLVE));
    w.resolve.name = str_of(300, 'x');
    refusal_of(&r, 1);
    assert_int_equal(r.msg.body_case, BODY(RESOLVE_REPLY));
    assert_int_equal(r.msg.resolve_reply->status, POSTMESH__RESOLVE_REPLY__STATUS__PERMFAIL);
    assert_string_equal(r.msg.resolve_reply->dsn_status, "5.5.4");
    assert_string_equal(r.msg.resolve_reply->text, "invalid resolve: name too_long");

    reset(BODY(ETRN));
    w.etrn.domain = "@";
    refusal_of(&r, 1);
    assert_int_equal(r.msg.body_case, BODY(ETRN_REPLY));
    assert_int_equal(r.msg.etrn_reply->status, POSTMESH__ETRN_REPLY__STATUS__TEMPFAIL);

    /* A job, a result, a credit or a reply has nobody waiting for an answer. */
    reset(BODY(JOB));
    w.job.job_id = 0;
    refusal_of(&r, 0);
    reset(BODY(JOB_RESULT));
    w.result.queue_id = "";
    refusal_of(&r, 0);
    reset(BODY(CREDIT));
    w.credit.kind = (Postmesh__WorkerKind)7;
    refusal_of(&r, 0);
    reset(BODY(SUBMIT_REPLY));
    w.submit_reply.queue_id = "";
    refusal_of(&r, 0);
    /* Nor a peer of another protocol version: it could not read the answer. */
    reset(BODY(SUBMIT));
    w.m.version = 2;
    refusal_of(&r, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_table_matches_the_proto, teardown),
        cmocka_unit_test_teardown(test_version_and_body, teardown),
        cmocka_unit_test_teardown(test_queue_id_form, teardown),
        cmocka_unit_test_teardown(test_every_string_bound, teardown),
        cmocka_unit_test_teardown(test_required_fields_and_queue_ids, teardown),
        cmocka_unit_test_teardown(test_every_enum_knows_its_values, teardown),
        cmocka_unit_test_teardown(test_every_count_bound, teardown),
        cmocka_unit_test_teardown(test_what_else_each_body_needs, teardown),
        cmocka_unit_test_teardown(test_refused_requests_are_answered, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
