/* RFC 5321 mailbox and path syntax (with RFC 6531 UTF-8 when asked for).
 *
 * Limits follow RFC 5321 4.5.3.1: a whole path, "<" and ">" included, is at most 256
 * octets and a domain at most 255. The 64-octet local-part limit is deliberately NOT
 * enforced: real senders (VERP, SRS, mailing lists) exceed it and the path limit still
 * bounds everything. Parsing is pure: no allocation, no I/O, no global state. */
#ifndef PM_ADDR_H
#define PM_ADDR_H
#include <stddef.h>

#define PM_ADDR_MAX_PATH 256
#define PM_ADDR_MAX_DOMAIN 255

/* Parse flags. */
enum {
    PM_ADDR_NULL_OK = 1,    /* "<>" is acceptable (MAIL FROM reverse-path) */
    PM_ADDR_UTF8 = 2,       /* SMTPUTF8: UTF-8 allowed in local part and domain */
    PM_ADDR_STRICT = 4,     /* refuse relay tricks (%, !, quoted @, source routes) */
    PM_ADDR_POSTMASTER = 8, /* "<Postmaster>" without a domain is acceptable (RCPT TO) */
};

enum pm_addr_status {
    PM_ADDR_OK = 0,
    PM_ADDR_SYNTAX,      /* not a path/mailbox at all */
    PM_ADDR_TOO_LONG,    /* path over 256 octets */
    PM_ADDR_DOMAIN_LONG, /* domain over 255 octets or a label over 63 */
    PM_ADDR_NON_ASCII,   /* 8-bit octets without PM_ADDR_UTF8 (or invalid UTF-8) */
    PM_ADDR_TRICK,       /* a relay trick refused under PM_ADDR_STRICT */
};

struct pm_addr {
    /* "local@domain" as written (quoted local parts keep their quotes), "" for the null
     * path, "Postmaster" for the bare postmaster form. Source routes are dropped. */
    char address[PM_ADDR_MAX_PATH + 1];
    size_t local_len;   /* address[0 .. local_len) is the local part */
    const char *domain; /* points into address after the '@' ("" if none) */
    int is_null;        /* "<>" */
    int is_literal;     /* domain is an address literal "[192.0.2.1]" / "[IPv6:...]" */
    int is_quoted;      /* local part is a quoted string */
    int is_utf8;        /* contains non-ASCII octets */
    int had_route;      /* a source route "@a,@b:" was present (and dropped) */
};

/* Parses a path "<...>" at the start of s (len octets). On success *consumed is the
 * number of octets up to and including '>'. *why (may be NULL) gets a short static
 * reason on failure. */
enum pm_addr_status pm_addr_parse_path(const char *s, size_t len, int flags, struct pm_addr *out, size_t *consumed,
                                       const char **why);

/* Parses a bare mailbox "local@domain" spanning exactly len octets. */
enum pm_addr_status pm_addr_parse_mailbox(const char *s, size_t len, int flags, struct pm_addr *out,
                                          const char **why);

/* Is s (len octets) a valid domain (dot-separated LDH labels, or U-labels with utf8)?
 * Returns PM_ADDR_OK, PM_ADDR_SYNTAX, PM_ADDR_DOMAIN_LONG or PM_ADDR_NON_ASCII. */
enum pm_addr_status pm_addr_check_domain(const char *s, size_t len, int utf8);

/* The domain of an address "local@domain" (after the last '@'); "" when there is none.
 * Points into address, which must not be NULL. */
const char *pm_addr_domain(const char *address);

/* Length of the valid UTF-8 sequence starting at s (1..4), 0 if invalid or truncated. */
size_t pm_addr_utf8_len(const unsigned char *s, size_t avail);

#endif
