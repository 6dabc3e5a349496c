#include "tls.h"

#include <stdio.h>

void pop3_tls_describe(SSL *ssl, char *dst, size_t size)
{
    snprintf(dst, size, "%s %s", SSL_get_version(ssl), SSL_get_cipher_name(ssl));
}
