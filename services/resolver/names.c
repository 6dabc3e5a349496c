#include "names.h"

#include <ctype.h>
#include <string.h>

int resolver_name_normalize(const char *in, char *out, size_t outsize)
{
    size_t len = strlen(in);
    if (outsize < 2)
        return -1;
    if (len == 1 && in[0] == '.') {
        strcpy(out, ".");
        return 0;
    }
    if (len > 0 && in[len - 1] == '.')
        len--;
    if (len == 0 || len > 253 || len >= outsize)
        return -1;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '.') {
            if (label == 0)
                return -1; /* empty label: "a..b" or ".a" */
            label = 0;
        } else if (isalnum(c) || c == '-' || c == '_') {
            if (++label > 63)
                return -1;
        } else {
            return -1; /* non-LDH byte, including non-ASCII (IDNA is the sender's job) */
        }
        out[i] = (char)tolower(c);
    }
    out[len] = '\0';
    return 0;
}
