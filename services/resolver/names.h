/* Domain name and address text checks shared by the resolver's parts. */
#ifndef RESOLVER_NAMES_H
#define RESOLVER_NAMES_H
#include <stddef.h>

#define RESOLVER_NAME_MAX 254 /* 253 characters + NUL */

/* Validates a host/domain name (LDH labels of 1..63, underscore tolerated, at most 253
 * characters, one optional trailing dot) and writes it lower-cased without the trailing
 * dot. "." (the root, as in a null MX) is kept as ".". Returns 0, or -1 if invalid. */
int resolver_name_normalize(const char *in, char *out, size_t outsize);

#endif
