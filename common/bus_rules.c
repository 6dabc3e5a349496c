/* What each BusMessage body may hold (bus_valid.h): one row per body, each with the rules of
 * its fields, a check of the rules that join fields (a committed submission names its queue
 * id) and, for a request, the answer its refusal gets; then the rules of the messages met
 * inside bodies (a Job's recipients, a ResolveReply's hosts). bus_valid.c applies them; what
 * a field may hold is decided here, from what its senders write and its readers rely on. */
#include "bus_rules.h"

#include <stdio.h>
#include <string.h>

#include "bus.h"

typedef struct pm_bus_field_rule rule;

#define END {NULL, PM_BUS_TEXT, 0, 0, 0}
#define LINE(name, max, flags) {name, PM_BUS_LINE, max, 0, flags} /* no control characters */
#define ADDRESS(name) LINE(name, PM_BUS_MAX_ADDRESS, 0)
#define HOST(name) LINE(name, PM_BUS_MAX_DOMAIN, 0)
#define DSN(name) LINE(name, PM_BUS_MAX_DSN, 0)
#define WORD(name) LINE(name, PM_BUS_MAX_WORD, 0)
#define LINES(name, max, count, flags) {name, PM_BUS_LINE, max, count, flags} /* repeated strings */
#define PROSE(name) {name, PM_BUS_TEXT, PM_BUS_MAX_TEXT, 0, 0}
#define QID(name, flags) {name, PM_BUS_QUEUE_ID, PM_BUS_QUEUE_ID_LEN, 0, flags}
#define UNBOUNDED(name) {name, PM_BUS_ANY, 0, 0, 0}
#define NEEDED(name) {name, PM_BUS_TEXT, 0, 0, PM_BUS_REQUIRED} /* a number or enum that may not be 0 */
#define LIST(name, count, flags) {name, PM_BUS_TEXT, 0, count, flags} /* repeated messages */

static const rule submit_fields[] = {
    ADDRESS("sender"), /* "" is the null sender */
    /* None at all is the queue's to answer (5.5.1 no valid recipients), as it always was. */
    LINES("recipients", PM_BUS_MAX_ADDRESS, PM_BUS_MAX_RCPTS, PM_BUS_EACH),
    UNBOUNDED("body"),
    LINE("client_address", PM_BUS_MAX_CLIENT, 0),
    HOST("helo"),
    LINE("auth_user", PM_BUS_MAX_USER, 0),
    QID("origin_id", 0),
    PROSE("hold_reason"),
    LINE("dsn_envid", PM_BUS_MAX_ENVID, 0),
    LIST("recipient_dsn", PM_BUS_MAX_RCPTS, 0), /* none, or one per recipient (the queue checks) */
    END,
};
/* ORCPT is "addr-type;address": an address with its type in front. */
static const rule recipient_dsn_fields[] = {LINE("orcpt", PM_BUS_MAX_ORCPT, 0), END};
static const rule submit_reply_fields[] = {QID("queue_id", 0), PROSE("text"), END};

static const rule credit_fields[] = {LINE("worker_name", PM_BUS_MAX_NAME, 0), END};

static const rule job_fields[] = {
    NEEDED("job_id"), /* ids count from 1; the epoch may be 0 ("no run's", never matched) */
    QID("queue_id", PM_BUS_REQUIRED),
    NEEDED("kind"),
    ADDRESS("sender"),
    LIST("recipients", PM_BUS_MAX_RCPTS, PM_BUS_REQUIRED),
    UNBOUNDED("body"),
    ADDRESS("domain"), /* cut from an alias target, which may be longer than a host name */
    LIST("report", PM_BUS_MAX_STORED_RCPTS, 0),
    LINE("dsn_envid", PM_BUS_MAX_ENVID, 0),
    END,
};
static const rule job_recipient_fields[] = {ADDRESS("address"), ADDRESS("original"), UNBOUNDED("dsn"), END};
static const rule report_recipient_fields[] = {
    ADDRESS("address"), ADDRESS("original"), DSN("status"), WORD("action"), HOST("remote_mta"), PROSE("diagnostic"),
    UNBOUNDED("dsn"), END,
};

static const rule job_result_fields[] = {
    NEEDED("job_id"),
    QID("queue_id", PM_BUS_REQUIRED),
    LIST("results", PM_BUS_MAX_RCPTS, 0), /* none: the queue counts "worker gave no result" */
    LIST("tls_sessions", PM_BUS_MAX_TLS_SESSIONS, 0), /* TLSRPT statistics (services/mta/tlsrpt.h) */
    END,
};
static const rule recipient_result_fields[] = {DSN("dsn_status"), PROSE("text"), HOST("remote_mta"), END};
/* Every string of a session may reach a TLS report (JSON, mailed) and the queue's logs. */
static const rule tls_session_fields[] = {
    HOST("policy_domain"),
    LINES("policy_strings", PM_BUS_MAX_TLS_POLICY_STRING, PM_BUS_MAX_TLS_POLICY, 0),
    LINES("mx_host", PM_BUS_MAX_DOMAIN, PM_BUS_MAX_TLS_POLICY, 0),
    LINE("result_type", PM_BUS_MAX_WORD * 2, 0),
    LINE("sending_ip", PM_BUS_MAX_IP, 0),
    HOST("receiving_mx_hostname"),
    LINE("receiving_ip", PM_BUS_MAX_IP, 0),
    HOST("receiving_mx_helo"),
    LINE("additional_info", PM_BUS_MAX_DOMAIN, 0),
    LINE("failure_reason_code", PM_BUS_MAX_DOMAIN, 0),
    LINES("rua", PM_BUS_MAX_DOMAIN, PM_BUS_MAX_TLS_RUA, PM_BUS_EACH),
    END,
};

static const rule control_fields[] = {QID("queue_id", 0), QID("after", 0), END};

static const rule control_reply_fields[] = {PROSE("text"), LIST("items", PM_BUS_MAX_ITEMS, 0), END};
static const rule queue_item_fields[] = {
    QID("queue_id", PM_BUS_REQUIRED),
    ADDRESS("sender"),
    LIST("recipients", PM_BUS_MAX_STORED_RCPTS, 0),
    WORD("state"),
    UNBOUNDED("headers"),
    LINE("client_address", PM_BUS_MAX_CLIENT, 0),
    HOST("helo"),
    PROSE("hold_reason"),
    END,
};
static const rule queue_recipient_fields[] = {ADDRESS("address"), WORD("state"), PROSE("last_error"), END};

/* Any name of a host's length; whether it is a domain (or an address, for PTR) is the
 * lookup's to say, with 5.1.2 or 5.1.3. */
static const rule resolve_fields[] = {LINE("name", PM_BUS_MAX_DOMAIN, PM_BUS_REQUIRED), END};

static const rule resolve_reply_fields[] = {
    DSN("dsn_status"),
    PROSE("text"),
    LIST("hosts", PM_BUS_MAX_HOSTS, 0),
    LINES("names", PM_BUS_MAX_DOMAIN, PM_BUS_MAX_NAMES, 0),
    /* A TXT record may be long (a DKIM key is ~400 octets, SPF records chain strings). */
    {"texts", PM_BUS_TEXT, PM_BUS_MAX_TXT, PM_BUS_MAX_NAMES, 0},
    LIST("tlsa", PM_BUS_MAX_TLSA, 0),
    END,
};
static const rule mx_host_fields[] = {HOST("name"), LINES("addresses", PM_BUS_MAX_IP, PM_BUS_MAX_ADDRS, 0), END};
/* usage, selector and matching type are numbers the mta judges (0..3, 0..1, 0..2 are the
 * known ones; others are unusable records, RFC 7672 3.1.3); the data is a digest or a
 * certificate or key: binary, bounded. */
static const rule tlsa_record_fields[] = {{"data", PM_BUS_TEXT, PM_BUS_MAX_TLSA_DATA, 0, 0}, END};

static const rule ping_fields[] = {END};

/* "@" + a domain: RFC 1985's form for the domain's subdomains (check_etrn bounds the domain). */
static const rule etrn_fields[] = {LINE("domain", 1 + PM_BUS_MAX_DOMAIN, PM_BUS_REQUIRED), END};
static const rule etrn_reply_fields[] = {PROSE("text"), END};

static const char *check_submit_reply(const Postmesh__BusMessage *m, struct pm_bus_invalid *why)
{
    const Postmesh__SubmitReply *r = m->submit_reply;
    if (r->status != POSTMESH__SUBMIT_REPLY__STATUS__COMMITTED || (r->queue_id && r->queue_id[0]))
        return NULL;
    snprintf(why->field, sizeof why->field, "queue_id");
    return "missing"; /* a commit names what it committed */
}

/* A bogus answer is never an answer (proto: BOGUS comes only with TEMPFAIL); TLSA records
 * and MX hosts come only with OK. A resolver that says otherwise is not believed. */
static const char *check_resolve_reply(const Postmesh__BusMessage *m, struct pm_bus_invalid *why)
{
    const Postmesh__ResolveReply *r = m->resolve_reply;
    int ok = r->status == POSTMESH__RESOLVE_REPLY__STATUS__OK;
    if (r->dnssec == POSTMESH__DNSSEC__DNSSEC_BOGUS && r->status != POSTMESH__RESOLVE_REPLY__STATUS__TEMPFAIL) {
        snprintf(why->field, sizeof why->field, "dnssec");
        return "bogus_not_tempfail";
    }
    if (!ok && (r->n_tlsa || r->n_hosts)) {
        snprintf(why->field, sizeof why->field, "%s", r->n_tlsa ? "tlsa" : "hosts");
        return "records_without_ok";
    }
    return NULL;
}

static const char *check_job(const Postmesh__BusMessage *m, struct pm_bus_invalid *why)
{
    const Postmesh__Job *j = m->job;
    /* A bouncer's one recipient is the envelope sender, which may be the null sender. */
    if (j->kind == POSTMESH__WORKER_KIND__WORKER_BOUNCER)
        return NULL;
    for (size_t i = 0; i < j->n_recipients; i++)
        if (!j->recipients[i]->address || !j->recipients[i]->address[0]) {
            snprintf(why->field, sizeof why->field, "recipients[%zu].address", i);
            return "missing";
        }
    return NULL;
}

static const char *check_control(const Postmesh__BusMessage *m, struct pm_bus_invalid *why)
{
    const Postmesh__ControlRequest *c = m->control;
    int names_one = c->command == POSTMESH__CONTROL_REQUEST__COMMAND__SHOW ||
                    c->command == POSTMESH__CONTROL_REQUEST__COMMAND__DELETE ||
                    c->command == POSTMESH__CONTROL_REQUEST__COMMAND__HOLD ||
                    c->command == POSTMESH__CONTROL_REQUEST__COMMAND__RELEASE;
    if (!names_one || (c->queue_id && c->queue_id[0]))
        return NULL;
    snprintf(why->field, sizeof why->field, "queue_id");
    return "missing";
}

static const char *check_etrn(const Postmesh__BusMessage *m, struct pm_bus_invalid *why)
{
    const char *d = m->etrn->domain;
    const char *domain = d[0] == '@' ? d + 1 : d;
    const char *problem = !domain[0] ? "missing" : strlen(domain) > PM_BUS_MAX_DOMAIN ? "too_long" : NULL;
    if (problem)
        snprintf(why->field, sizeof why->field, "domain");
    return problem;
}

static void refuse_submit(struct pm_bus_refusal *r)
{
    postmesh__submit_reply__init(&r->u.submit);
    r->u.submit.status = POSTMESH__SUBMIT_REPLY__STATUS__PERMFAIL;
    r->u.submit.text = r->text;
    r->msg.body_case = POSTMESH__BUS_MESSAGE__BODY_SUBMIT_REPLY;
    r->msg.submit_reply = &r->u.submit;
}

static void refuse_control(struct pm_bus_refusal *r)
{
    postmesh__control_reply__init(&r->u.control);
    r->u.control.ok = 0;
    r->u.control.text = r->text + strlen(PM_BUS_REFUSAL_CODE); /* an operator reads it: no code */
    r->msg.body_case = POSTMESH__BUS_MESSAGE__BODY_CONTROL_REPLY;
    r->msg.control_reply = &r->u.control;
}

static void refuse_resolve(struct pm_bus_refusal *r)
{
    postmesh__resolve_reply__init(&r->u.resolve);
    r->u.resolve.status = POSTMESH__RESOLVE_REPLY__STATUS__PERMFAIL;
    r->u.resolve.dsn_status = "5.5.4";
    r->u.resolve.text = r->text + strlen(PM_BUS_REFUSAL_CODE);
    r->msg.body_case = POSTMESH__BUS_MESSAGE__BODY_RESOLVE_REPLY;
    r->msg.resolve_reply = &r->u.resolve;
}

static void refuse_etrn(struct pm_bus_refusal *r)
{
    postmesh__etrn_reply__init(&r->u.etrn);
    r->u.etrn.status = POSTMESH__ETRN_REPLY__STATUS__TEMPFAIL; /* EtrnReply has no permanent status */
    r->u.etrn.text = r->text + strlen(PM_BUS_REFUSAL_CODE);
    r->msg.body_case = POSTMESH__BUS_MESSAGE__BODY_ETRN_REPLY;
    r->msg.etrn_reply = &r->u.etrn;
}

#define BODY(x) POSTMESH__BUS_MESSAGE__BODY_##x
#define DESC(x) &postmesh__##x##__descriptor

const struct pm_bus_body_row pm_bus_rows[] = {
    {BODY(SUBMIT), {DESC(submit), submit_fields}, NULL, refuse_submit},
    {BODY(SUBMIT_REPLY), {DESC(submit_reply), submit_reply_fields}, check_submit_reply, NULL},
    {BODY(CREDIT), {DESC(credit), credit_fields}, NULL, NULL},
    {BODY(JOB), {DESC(job), job_fields}, check_job, NULL}, /* dropped: its lease brings it back */
    {BODY(JOB_RESULT), {DESC(job_result), job_result_fields}, NULL, NULL},
    {BODY(CONTROL), {DESC(control_request), control_fields}, check_control, refuse_control},
    {BODY(CONTROL_REPLY), {DESC(control_reply), control_reply_fields}, NULL, NULL},
    {BODY(RESOLVE), {DESC(resolve_request), resolve_fields}, NULL, refuse_resolve},
    {BODY(RESOLVE_REPLY), {DESC(resolve_reply), resolve_reply_fields}, check_resolve_reply, NULL},
    {BODY(PING), {DESC(ping), ping_fields}, NULL, NULL},
    {BODY(ETRN), {DESC(etrn), etrn_fields}, check_etrn, refuse_etrn},
    {BODY(ETRN_REPLY), {DESC(etrn_reply), etrn_reply_fields}, NULL, NULL},
};

/* Messages met inside a body. */
const struct pm_bus_part pm_bus_parts[] = {
    {DESC(job_recipient), job_recipient_fields},
    {DESC(report_recipient), report_recipient_fields},
    {DESC(recipient_result), recipient_result_fields},
    {DESC(tls_session), tls_session_fields},
    {DESC(queue_item), queue_item_fields},
    {DESC(queue_recipient), queue_recipient_fields},
    {DESC(mx_host), mx_host_fields},
    {DESC(tlsa_record), tlsa_record_fields},
    {DESC(recipient_dsn), recipient_dsn_fields},
};
const size_t pm_bus_nrows = sizeof pm_bus_rows / sizeof pm_bus_rows[0];
const size_t pm_bus_nparts = sizeof pm_bus_parts / sizeof pm_bus_parts[0];
