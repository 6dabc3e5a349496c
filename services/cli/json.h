/* JSON output for scripts (`postmesh queue list --json`, `postmesh status --json`). Values
 * come from the network (senders, addresses, remote replies): every string is escaped so
 * that the document is valid JSON and valid UTF-8 whatever the bytes were. */
#ifndef CLI_JSON_H
#define CLI_JSON_H
#include <stddef.h>
#include <stdio.h>

/* Writes s (NULL: "") as a JSON string: '"', '\\' and control characters escaped, valid
 * UTF-8 kept as it is, each byte of an invalid sequence written as \u00XX (its Latin-1
 * reading: lossy, but never an invalid document). */
void cli_json_string(FILE *out, const char *s);
/* The same for len bytes at s (may hold NUL). */
void cli_json_mem(FILE *out, const char *s, size_t len);

#endif
