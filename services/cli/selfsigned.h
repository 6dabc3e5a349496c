/* A self-signed certificate for a first start, so TLS works before an operator installs a
 * real one. */
#ifndef CLI_SELFSIGNED_H
#define CLI_SELFSIGNED_H
#include <stddef.h>

#include "config.h"

/* If tls.certificate and tls.key are set and both missing, creates an EC P-256 key (mode
 * 0600) and a certificate for cfg->hostname. Returns 1 if created, 0 if nothing to do, -1
 * with err (also when only one of the two exists: we never pair a new key with an old
 * certificate or overwrite either). */
int cli_tls_ensure(const struct pm_config *cfg, char *err, size_t errsize);

#endif
