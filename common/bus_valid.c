/* The bus's edge checks (bus_valid.h): a walk over the protobuf-c descriptors of a decoded
 * message that applies the rules of bus_rules.c, so every enum field is checked against the
 * values the proto knows without a list of its own, and a field nobody wrote a rule for still
 * gets the default bounds (and fails pm_bus_valid_table_check, which the unit test runs).
 *
 * Not here: who may send which body (the bus policy, bus.h) or what a role may say in it
 * (services/queue/endpoints.c); how a service answers a well-formed request. */
#include "bus_valid.h"

#include <stdio.h>
#include <string.h>

#include "bus.h"
#include "bus_rules.h"
#include "log.h"

#define MAX_DEPTH 4 /* BusMessage > body > element (> element): deeper is not in the proto */

static const struct pm_bus_field_rule default_rule = {"", PM_BUS_TEXT, PM_BUS_MAX_TEXT, PM_BUS_MAX_ITEMS, 0};

static const struct pm_bus_field_rule *rule_for(const struct pm_bus_field_rule *rules, const char *name)
{
    for (const struct pm_bus_field_rule *r = rules; r->name; r++)
        if (strcmp(r->name, name) == 0)
            return r;
    return NULL;
}

static const struct pm_bus_field_rule *part_rules(const ProtobufCMessageDescriptor *d)
{
    for (size_t i = 0; i < pm_bus_nparts; i++)
        if (pm_bus_parts[i].desc == d)
            return pm_bus_parts[i].fields;
    return NULL;
}

static const char *string_problem(const struct pm_bus_field_rule *r, const char *s, int element)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0)
        return r->flags & (element ? PM_BUS_EACH : PM_BUS_REQUIRED) ? "missing" : NULL;
    switch (r->content) {
    case PM_BUS_ANY:
        return NULL;
    case PM_BUS_QUEUE_ID:
        return pm_bus_queue_id_ok(s) ? NULL : "bad_queue_id";
    case PM_BUS_LINE:
        if (n > r->max_len)
            return "too_long";
        for (const unsigned char *p = (const unsigned char *)s; *p; p++)
            if (*p < 0x20 || *p == 0x7f)
                return "control_character";
        return NULL;
    case PM_BUS_TEXT:
        break;
    }
    return n > r->max_len ? "too_long" : NULL;
}

static int fail(struct pm_bus_invalid *why, const char *prefix, const char *name, long index, const char *problem)
{
    why->problem = problem;
    if (index >= 0)
        snprintf(why->field, sizeof why->field, "%s%s[%ld]", prefix, name, index);
    else
        snprintf(why->field, sizeof why->field, "%s%s", prefix, name);
    return -1;
}

static int check_message(const ProtobufCMessage *msg, const struct pm_bus_field_rule *rules, const char *prefix,
                         int depth, struct pm_bus_invalid *why);
static size_t value_size(const ProtobufCFieldDescriptor *f);

/* One value of field f (element index, or -1 if not repeated) at p. */
static int check_value(const ProtobufCFieldDescriptor *f, const struct pm_bus_field_rule *r, const void *p,
                       const char *prefix, long index, int depth, struct pm_bus_invalid *why)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *problem = string_problem(r, *(char *const *)p, index >= 0);
        return problem ? fail(why, prefix, f->name, index, problem) : 0;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        return r->content != PM_BUS_ANY && b->len > r->max_len ? fail(why, prefix, f->name, index, "too_long") : 0;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
        if (!sub)
            return r->flags & PM_BUS_REQUIRED ? fail(why, prefix, f->name, index, "missing") : 0;
        char path[sizeof why->field];
        if (index >= 0)
            snprintf(path, sizeof path, "%s%s[%ld].", prefix, f->name, index);
        else
            snprintf(path, sizeof path, "%s%s.", prefix, f->name);
        return check_message(sub, part_rules(f->descriptor), path, depth + 1, why);
    }
    case PROTOBUF_C_TYPE_ENUM:
        if (!protobuf_c_enum_descriptor_get_value(f->descriptor, *(const int *)p))
            return fail(why, prefix, f->name, index, "unknown_value");
        break;
    default: /* numbers and bools: any value is one */
        break;
    }
    /* A required number or enum is not 0 (an enum's 0 is its "none"). */
    int zero = value_size(f) == 8 ? !*(const uint64_t *)p : !*(const uint32_t *)p;
    return zero && index < 0 && (r->flags & PM_BUS_REQUIRED) ? fail(why, prefix, f->name, index, "missing") : 0;
}

static size_t value_size(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_DOUBLE: return 8;
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    default: return 4;
    }
}

static int check_message(const ProtobufCMessage *msg, const struct pm_bus_field_rule *rules, const char *prefix,
                         int depth, struct pm_bus_invalid *why)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    if (depth > MAX_DEPTH)
        return fail(why, prefix, "", -1, "too_deep");
    const char *base = (const char *)msg;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const struct pm_bus_field_rule *r = rules ? rule_for(rules, f->name) : NULL;
        if (!r)
            r = &default_rule;
        if (f->label != PROTOBUF_C_LABEL_REPEATED) {
            if (check_value(f, r, base + f->offset, prefix, -1, depth, why) < 0)
                return -1;
            continue;
        }
        size_t n = *(const size_t *)(base + f->quantifier_offset);
        const char *items = *(const char *const *)(base + f->offset);
        if (n > r->max_count)
            return fail(why, prefix, f->name, -1, "too_many");
        if (n == 0 && (r->flags & PM_BUS_REQUIRED))
            return fail(why, prefix, f->name, -1, "missing");
        for (size_t k = 0; k < n; k++)
            if (check_value(f, r, items + k * value_size(f), prefix, (long)k, depth, why) < 0)
                return -1;
    }
    return 0;
}

static const struct pm_bus_body_row *row_for(Postmesh__BusMessage__BodyCase body)
{
    for (size_t i = 0; i < pm_bus_nrows; i++)
        if (pm_bus_rows[i].body == body)
            return &pm_bus_rows[i];
    return NULL;
}

/* The body's own message: the one field of the oneof that is set. */
static const ProtobufCMessage *body_of(const Postmesh__BusMessage *m)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field(&postmesh__bus_message__descriptor, (unsigned)m->body_case);
    return f ? *(ProtobufCMessage *const *)((const char *)m + f->offset) : NULL;
}

int pm_bus_validate(const Postmesh__BusMessage *m, struct pm_bus_invalid *why)
{
    why->problem = NULL;
    why->field[0] = '\0';
    if (m->version != PM_PROTOCOL_VERSION)
        return fail(why, "", "version", -1, "version");
    const struct pm_bus_body_row *row = row_for(m->body_case);
    const ProtobufCMessage *body = row ? body_of(m) : NULL;
    if (!body || body->descriptor != row->part.desc)
        return fail(why, "", "", -1, "no_body");
    if (check_message(body, row->part.fields, "", 1, why) < 0)
        return -1;
    if (row->check && (why->problem = row->check(m, why)))
        return -1;
    return 0;
}

int pm_bus_refusal(const Postmesh__BusMessage *m, const struct pm_bus_invalid *why, struct pm_bus_refusal *r)
{
    const struct pm_bus_body_row *row = why->problem && strcmp(why->problem, "version") ? row_for(m->body_case) : NULL;
    if (!row || !row->refusal)
        return 0; /* a peer of another version could not read our answer anyway */
    postmesh__bus_message__init(&r->msg);
    r->msg.request_id = m->request_id;
    snprintf(r->text, sizeof r->text, PM_BUS_REFUSAL_CODE "invalid %s: %s%s%s", pm_bus_body_name(m->body_case),
             why->field, why->field[0] ? " " : "", why->problem);
    row->refusal(r);
    return 1;
}

void pm_bus_log_invalid(const char *endpoint, const char *key, enum pm_role role, const Postmesh__BusMessage *m,
                        const struct pm_bus_invalid *why, size_t size)
{
    pm_log(PM_WARN, "event=bus_refused endpoint=%s key=%s role=%s body=%s reason=%s field=%s problem=%s bytes=%zu",
           endpoint, key, pm_role_name(role), pm_bus_body_name(m->body_case),
           strcmp(why->problem, "version") ? "invalid" : "version", why->field[0] ? why->field : "-", why->problem,
           size);
}

int pm_bus_queue_id_ok(const char *id)
{
    if (!id || strlen(id) != PM_BUS_QUEUE_ID_LEN)
        return 0;
    for (const char *p = id; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'F')))
            return 0;
    return 1;
}

/* ------------------------------------------------------------------ the table's own check */

static int table_part_check(const ProtobufCMessageDescriptor *d, const struct pm_bus_field_rule *rules, char *err,
                            size_t size)
{
    for (const struct pm_bus_field_rule *r = rules; r->name; r++)
        if (!protobuf_c_message_descriptor_get_field_by_name(d, r->name))
            return snprintf(err, size, "%s: no field %s", d->name, r->name), -1;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        int needs = f->label == PROTOBUF_C_LABEL_REPEATED || f->type == PROTOBUF_C_TYPE_STRING ||
                    f->type == PROTOBUF_C_TYPE_BYTES;
        if (needs && !rule_for(rules, f->name))
            return snprintf(err, size, "%s.%s: no rule", d->name, f->name), -1;
        if (f->type == PROTOBUF_C_TYPE_MESSAGE && !part_rules(f->descriptor))
            return snprintf(err, size, "%s.%s: no rules for %s", d->name, f->name,
                            ((const ProtobufCMessageDescriptor *)f->descriptor)->name), -1;
    }
    return 0;
}

int pm_bus_valid_table_check(char *err, size_t size)
{
    const ProtobufCMessageDescriptor *bm = &postmesh__bus_message__descriptor;
    for (unsigned i = 0; i < bm->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &bm->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        const struct pm_bus_body_row *row = row_for((Postmesh__BusMessage__BodyCase)f->id);
        if (!row || row->part.desc != f->descriptor)
            return snprintf(err, size, "body %s: no row", f->name), -1;
    }
    for (size_t i = 0; i < pm_bus_nrows; i++)
        if (table_part_check(pm_bus_rows[i].part.desc, pm_bus_rows[i].part.fields, err, size) < 0)
            return -1;
    for (size_t i = 0; i < pm_bus_nparts; i++)
        if (table_part_check(pm_bus_parts[i].desc, pm_bus_parts[i].fields, err, size) < 0)
            return -1;
    return 0;
}
