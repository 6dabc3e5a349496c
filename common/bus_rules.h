/* The rules bus_valid.c applies, as bus_rules.c writes them down: private to those two files.
 * A rule names a field of a message by its proto name and says what its strings hold, how
 * long they and how many its elements may be, and whether it must be there. */
#ifndef PM_BUS_RULES_H
#define PM_BUS_RULES_H
#include <stddef.h>

#include "bus_valid.h"

/* What a string holds. */
enum pm_bus_content {
    PM_BUS_TEXT,     /* anything: reply texts, diagnostics */
    PM_BUS_LINE,     /* no control characters: addresses, names, codes (they reach logs, SMTP, DSNs) */
    PM_BUS_QUEUE_ID, /* "" or a queue id */
    PM_BUS_ANY,      /* bounded by the frame only: message bodies and header sections */
};

#define PM_BUS_REQUIRED 1u /* non-empty, non-zero, not the enum's 0, at least one element */
#define PM_BUS_EACH 2u     /* repeated strings: no element empty */

struct pm_bus_field_rule {
    const char *name;
    enum pm_bus_content content;
    size_t max_len;   /* strings: octets at most */
    size_t max_count; /* repeated: elements at most */
    unsigned flags;
};

struct pm_bus_part {
    const ProtobufCMessageDescriptor *desc;
    const struct pm_bus_field_rule *fields; /* ends with a NULL name */
};

/* Rules of one body that join fields: NULL if fine, else the problem (field named in *why). */
typedef const char *(*pm_bus_body_check)(const Postmesh__BusMessage *m, struct pm_bus_invalid *why);
/* Fills the answer to a refused request (text already written in r->text). */
typedef void (*pm_bus_body_refusal)(struct pm_bus_refusal *r);

struct pm_bus_body_row {
    Postmesh__BusMessage__BodyCase body;
    struct pm_bus_part part;
    pm_bus_body_check check;
    pm_bus_body_refusal refusal;
};

/* What a refused request's answer text starts with (RFC 3463: invalid command arguments);
 * the answers without a place for a code skip it. */
#define PM_BUS_REFUSAL_CODE "5.5.4 "

/* One row per BusMessage body, and the rules of the messages met inside bodies. */
extern const struct pm_bus_body_row pm_bus_rows[];
extern const size_t pm_bus_nrows;
extern const struct pm_bus_part pm_bus_parts[];
extern const size_t pm_bus_nparts;

#endif
