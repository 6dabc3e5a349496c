/* The header side of inbound verification: walking a message's header fields, removing the
 * Authentication-Results: fields that claim to be ours, and writing ours (RFC 8601). Pure
 * functions over buffers, no I/O. */
#ifndef SMTPD_AUTHRES_HEADER_H
#define SMTPD_AUTHRES_HEADER_H
#include <stddef.h>

/* The header section's length: up to and including the CRLF of its last field (the empty
 * line after it is not counted). A message without an empty line is all header. */
size_t ar_header_length(const char *msg, size_t len);

/* One header field from *pos on: its name (without the colon) and the whole field with its
 * folded lines and final CRLF. 1 and *pos past it; 0 at the end. A line that is no field (no
 * colon) comes back with namelen 0. */
struct ar_field {
    const char *name;
    size_t namelen;
    const char *text;  /* "Name: value\r\n\tmore\r\n" */
    size_t len;
    const char *value; /* after the colon */
    size_t valuelen;
};
int ar_header_next(const char *hdr, size_t len, size_t *pos, struct ar_field *f);

/* The authserv-id an Authentication-Results: value starts with (after CFWS), copied into
 * out; 0, or -1 if there is none. */
int ar_header_authserv_id(const char *value, size_t len, char *out, size_t size);

/* Removes, in place, every Authentication-Results: field whose authserv-id is host
 * (case-insensitive). Returns the new length; *removed gets how many went. */
size_t ar_header_remove_ours(char *hdr, size_t len, const char *host, int *removed);

/* One result of the header: "method=result (comment) ptype.prop=value ...". */
#define AR_MAX_PROPS 4
struct ar_result {
    const char *method;  /* spf, dkim, dmarc */
    const char *result;
    const char *comment; /* NULL: none; printable text, parentheses and backslashes escaped */
    struct {
        const char *name;  /* "smtp.mailfrom", "header.d" */
        const char *value; /* quoted when it is no token */
    } props[AR_MAX_PROPS];
};

/* "Authentication-Results: host;\r\n\tspf=...;\r\n\tdkim=...\r\n": one result per folded line.
 * Values longer than 255 octets are cut. Returns the length, 0 if it does not fit. */
size_t ar_header_format(const char *host, const struct ar_result *r, size_t n, char *dst, size_t size);

#endif
