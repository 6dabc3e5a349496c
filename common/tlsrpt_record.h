/* TLSRPT (RFC 8460) records: the "_smtp._tls" TXT record of a domain and the mailto: URIs of
 * its rua. Shared by the mta (reads the record) and the queue (sends the reports, and checks
 * again every address it was given over the bus). Pure functions, no allocation. */
#ifndef PM_TLSRPT_RECORD_H
#define PM_TLSRPT_RECORD_H
#include <stddef.h>

#define PM_TLSRPT_MAX_RUA 8        /* mailto: URIs kept per record */
#define PM_TLSRPT_URI_SIZE 256     /* a kept URI ("mailto:" + address), NUL included */
#define PM_TLSRPT_ADDR_SIZE 255    /* an address taken from one, NUL included */

/* The mailbox of a mailto: URI (RFC 6068): "mailto:" case-insensitive, %XX decoded, the
 * "?hfields" dropped; one plain ASCII addr-spec (local@domain, no comma, no quotes, no
 * controls), else -1. uri need not be NUL-terminated (len octets). 0: out holds it. */
int pm_tlsrpt_mailto_addr(const char *uri, size_t len, char *out, size_t size);

/* One TXT record: -1 unless it is "v=TLSRPTv1" followed by its fields (RFC 8460 3); else the
 * number of usable mailto: URIs of its rua put into rua (at most max, each as given, without
 * the spaces around it; https: and broken URIs skipped). */
int pm_tlsrpt_parse_record(const char *txt, char rua[][PM_TLSRPT_URI_SIZE], int max);

/* The records of "_smtp._tls.<domain>": exactly one must be a TLSRPTv1 record (RFC 8460 3:
 * none, or more than one, means the domain does not take reports). Returns the mailto: URIs
 * found in it (0: no report for this domain). */
int pm_tlsrpt_pick_record(const char *const *texts, size_t n, char rua[][PM_TLSRPT_URI_SIZE], int max);

#endif
