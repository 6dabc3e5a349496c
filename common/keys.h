/* CurveZMQ keys of the bus, and the roles they stand for.
 *
 * A key's file name says its role: state_dir/keys/<role>.pub, or <role>.<replica>.pub for a
 * replica with a key of its own (revocable alone). <name>.key holds the public and secret
 * key (mode 0600) and is read only by the process that is <name>. */
#ifndef PM_KEYS_H
#define PM_KEYS_H
#include <stddef.h>

#define PM_KEY_Z85 41  /* 40 characters + NUL */
#define PM_KEY_NAME 64 /* longest key name + NUL */

/* Who a key may speak as on the bus. */
enum pm_role {
    PM_ROLE_NONE = 0,
    PM_ROLE_SMTPD,
    PM_ROLE_QUEUE,
    PM_ROLE_RESOLVER,
    PM_ROLE_MTA,
    PM_ROLE_DELIVERY,
    PM_ROLE_BOUNCER,
    PM_ROLE_POP3D,
    PM_ROLE_IMAPD,
    PM_ROLE_CLI,
    PM_ROLE_COUNT
};
#define PM_ROLE_BIT(r) (1u << (r))

const char *pm_role_name(enum pm_role r); /* "smtpd", ...; "none" */

/* The role a key name stands for: "smtpd" and "smtpd.eu-1" are smtpd. PM_ROLE_NONE if the
 * name is not <role> or <role>.<replica> (replica: 1-40 of [A-Za-z0-9_-]). */
enum pm_role pm_role_of_key_name(const char *name);

/* Every key name of the system's own, NULL-terminated, in the order `postmesh keys init`
 * creates them: the rows of services.def that have a bus key. */
extern const char *const pm_keys_bus_names[];

/* Loads name's own keypair from dir, creating dir (0755) and the pair if neither file exists
 * (a service's first start on one machine). Refuses a .key others may read or write, and
 * never replaces a .pub that is there without its .key. 0 or -1 (logged). */
int pm_keys_load_or_create(const char *dir, const char *name, char pub[PM_KEY_Z85], char sec[PM_KEY_Z85]);

/* Reads name.pub. Never creates anything: a peer's key comes from that peer. 0 or -1. */
int pm_keys_public(const char *dir, const char *name, char pub[PM_KEY_Z85]);

#endif
