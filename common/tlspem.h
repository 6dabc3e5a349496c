/* TLS certificate and key as PEM text. The privileged parent reads the files; the worker,
 * which does the handshakes but cannot open the files from its chroot, builds its SSL_CTX
 * from the text (inherited at fork, or pushed over the privchan channel after SIGHUP). */
#ifndef PM_TLSPEM_H
#define PM_TLSPEM_H
#include <stddef.h>

#include <openssl/ssl.h>

/* What one privchan field carries: a longer chain could not be pushed to a worker. */
#define PM_TLS_PEM_MAX 16384

/* Reads a PEM file (at most PM_TLS_PEM_MAX bytes) into malloc'd text; NULL with err. */
char *pm_tls_read_pem(const char *path, char *err, size_t errsize);

/* Installs the certificate chain (first PEM block = the server's) and the private key into
 * ctx and checks that they match. 0, or -1 with err. An encrypted key is refused (no prompt). */
int pm_tls_use_pem(SSL_CTX *ctx, const char *cert_pem, const char *key_pem, char *err, size_t errsize);

/* Wipes and frees PEM text (it may hold a private key). NULL is fine. */
void pm_tls_pem_free(char *pem);

#endif
