/* The From: domain of an internationalized message (RFC 6531/6532: u-labels, UTF-8) in the
 * a-label form (RFC 5890) that d=, the key's DNS name and DMARC (RFC 8616) use: libidn2's
 * IDNA2008 lookup (NFC, case folding), as the resolver would ask for the name. */
#include <idn2.h>
#include <stdlib.h>
#include <string.h>

#include "dkim_sign_int.h"

int queue_dkim_to_alabels(const char *d, char *out, size_t size)
{
    char *a = NULL;
    /* Nontransitional (UTS #46): "ß" stays itself, as registries of IDNA2008 names expect. */
    if (idn2_lookup_u8((const uint8_t *)d, (uint8_t **)&a, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL) != IDN2_OK)
        return -1;
    size_t n = strlen(a);
    int ok = n > 0 && n < size;
    if (ok) {
        for (size_t i = 0; i <= n; i++) /* libidn2 keeps ASCII letters as they were */
            out[i] = (char)(a[i] >= 'A' && a[i] <= 'Z' ? a[i] + 'a' - 'A' : a[i]);
        /* Every label within the 63 octets DNS allows (libidn2 checks a-labels only). */
        for (const char *l = out; ok; l += strcspn(l, ".") + 1) {
            size_t len = strcspn(l, ".");
            ok = len > 0 && len <= 63;
            if (!l[len])
                break;
        }
    }
    idn2_free(a);
    return ok ? 0 : -1;
}
