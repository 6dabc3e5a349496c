/* For the DKIM signer's unit tests: a private key written as PEM with a mode, and the TXT
 * record ("v=DKIM1; k=...; p=...") a key callback answers with. Include after cmocka.h and
 * OpenSSL's evp.h/pem.h/x509.h. */
#ifndef TEST_DKIM_TEST_KEYS_H
#define TEST_DKIM_TEST_KEYS_H
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "base64.h"

static void write_key(const char *path, EVP_PKEY *k, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_true(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL));
    fclose(f);
    chmod(path, mode);
}

static void txt_of(EVP_PKEY *k, int ed, char *out, size_t size)
{
    unsigned char raw[64], *der = NULL;
    size_t rl = sizeof raw;
    char b64[900];
    if (ed) {
        assert_int_equal(EVP_PKEY_get_raw_public_key(k, raw, &rl), 1);
        assert_true(pm_base64_encode(raw, rl, b64, sizeof b64) > 0);
    } else {
        int n = i2d_PUBKEY(k, &der);
        assert_true(n > 0 && pm_base64_encode(der, (size_t)n, b64, sizeof b64) > 0);
        OPENSSL_free(der);
    }
    snprintf(out, size, "v=DKIM1; k=%s; p=%s", ed ? "ed25519" : "rsa", b64);
}

#endif
