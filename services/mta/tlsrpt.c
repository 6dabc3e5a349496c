/* STUB until the TLSRPT helper lands: counts nothing. */
#include "tlsrpt.h"

#include <stdlib.h>

struct mta_tlsrpt {
    int unused;
};

struct mta_tlsrpt *mta_tlsrpt_new(const char *policy_domain)
{
    (void)policy_domain;
    return calloc(1, sizeof(struct mta_tlsrpt));
}

void mta_tlsrpt_free(struct mta_tlsrpt *r) { free(r); }

void mta_tlsrpt_set_record(struct mta_tlsrpt *r, const char *const *texts, size_t n)
{
    (void)r, (void)texts, (void)n;
}

void mta_tlsrpt_set_policy(struct mta_tlsrpt *r, Postmesh__TlsSession__PolicyType type, const char *const *strings,
                           size_t nstrings, const char *const *mx, size_t nmx)
{
    (void)r, (void)type, (void)strings, (void)nstrings, (void)mx, (void)nmx;
}

void mta_tlsrpt_session(struct mta_tlsrpt *r, int success, const char *result_type, const char *mx_host,
                        const char *receiving_ip, const char *sending_ip, const char *helo, const char *additional)
{
    (void)r, (void)success, (void)result_type, (void)mx_host, (void)receiving_ip, (void)sending_ip, (void)helo,
        (void)additional;
}

void mta_tlsrpt_attach(struct mta_tlsrpt *r, Postmesh__JobResult *res) { (void)r, (void)res; }
