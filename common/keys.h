/* CurveZMQ keypairs of the services: state_dir/keys/<name>.key (Z85 public and secret key,
 * mode 0600) and <name>.pub (Z85 public key, 0644). Whoever needs a key first creates it. */
#ifndef PM_KEYS_H
#define PM_KEYS_H

#define PM_KEY_Z85 41 /* 40 characters + NUL */

/* Loads name's keypair from dir, creating dir and the pair if missing. 0 or -1 (logged). */
int pm_keys_load_or_create(const char *dir, const char *name, char pub[PM_KEY_Z85], char sec[PM_KEY_Z85]);

/* Reads name.pub (creating the pair if missing, so a client may start before its server). */
int pm_keys_public(const char *dir, const char *name, char pub[PM_KEY_Z85]);

/* Every service and tool that speaks on the bus; a server creates all their keypairs at
 * start so that a single machine works without a setup step. */
extern const char *const pm_keys_bus_names[];

/* Reads every *.pub in dir into the in-memory allowlist. Returns the count or -1. */
int pm_keys_load_allowlist(const char *dir);

/* Is the 32-byte binary key allowed? (the cached list, re-read from dir on a miss) */
int pm_keys_is_allowed(const char *dir, const unsigned char key[32]);

#endif
