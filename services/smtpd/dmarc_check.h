/* DMARC (RFC 7489) with libopendmarc: the From: domain, its policy record (_dmarc.<From
 * domain>, else _dmarc.<organizational domain>, found by the public suffix list loaded at
 * start), and the verdict from the SPF and DKIM results with their alignment. The records
 * come from the message's DNS table (authres_dns.h) and are handed to libopendmarc with
 * opendmarc_policy_store_dmarc: libopendmarc never does DNS itself. libopendmarc parses the
 * record; the alignment and verdict are computed here (its own alignment is wrong for
 * one-letter labels and unknown suffixes: dmarc_check.c). */
#ifndef SMTPD_DMARC_CHECK_H
#define SMTPD_DMARC_CHECK_H
#include <stddef.h>

#include "dkim_verify.h"
#include "spf_check.h"

struct ar_dns;

enum dmarc_check_result {
    DMARC_CHECK_NONE,      /* no From: domain, or no policy record */
    DMARC_CHECK_PASS,
    DMARC_CHECK_FAIL,
    DMARC_CHECK_TEMPERROR,
    DMARC_CHECK_PERMERROR, /* several From: addresses, or a record that does not parse */
};

/* What the domain's policy asks for a message that fails. */
enum dmarc_check_policy { DMARC_POLICY_ASKS_NONE, DMARC_POLICY_ASKS_QUARANTINE, DMARC_POLICY_ASKS_REJECT };

struct dmarc_check {
    char from_domain[256];  /* "" when the message has none */
    int from_state;         /* 0 one domain, -1 none, -2 several From: addresses or fields,
                             * -3 a From: too long to read or with a NUL (permerror) */
    char org_domain[256];
    int stage;              /* which record is being looked for (dmarc_check.c) */
    char record[1024];      /* the policy record found, "" none */
    int record_at_org;      /* it is the organizational domain's: sp= applies */
    int temperror;
};

struct dmarc_check_outcome {
    enum dmarc_check_result result;
    enum dmarc_check_policy policy; /* effective (p=, or sp= for a subdomain) */
    const char *policy_name;        /* "none", "quarantine", "reject" ("" without a record) */
    int spf_aligned, dkim_aligned;
};

/* Once per process, before the sandbox chroots: reads the public suffix list. 0, or -1. */
int dmarc_check_init(const char *psl_path);

/* The From: domain of the header section hdr (RFC 7489 6.6.1). */
void dmarc_check_start(struct dmarc_check *c, const char *hdr, size_t hdrlen);
/* Looks the policy record up in d: 1 when settled, 0 when a name was noted as wanted. */
int dmarc_check_lookup(struct dmarc_check *c, struct ar_dns *d);
/* The verdict. ip: the client; spf: its SPF result; sigs: the DKIM results. */
void dmarc_check_evaluate(const struct dmarc_check *c, const char *ip, const struct spf_check_outcome *spf,
                          const struct dkim_verify_sig *sigs, size_t nsigs, struct dmarc_check_outcome *out);

/* The organizational domain of domain (public suffix list; the implicit "*" rule for a
 * suffix the list does not know). */
void dmarc_check_org_domain(const char *domain, char *out, size_t size);

const char *dmarc_check_result_name(enum dmarc_check_result r);

#endif
