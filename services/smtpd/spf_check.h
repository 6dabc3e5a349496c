/* SPF (RFC 7208) of a message's MAIL FROM, or of the HELO name for the null sender, with
 * libspf2 answered from the message's DNS table (authres_dns.h): libspf2's DNS layer is our
 * own SPF_dns_server_t whose lookup answers from the table and notes every question it
 * cannot answer yet as wanted (and answers it "try again", which ends that run). The caller
 * fetches what is wanted and runs the check again until it is final.
 *
 * Bounds (RFC 7208 4.6.4, counted here: libspf2 counts per record only): 10 DNS-querying
 * terms per evaluation, includes and redirects too; 2 void lookups; 10 MX hosts; PTR names
 * past the tenth ignored; at most SPF_CHECK_MAX_QUESTIONS questions in all. Past a bound the
 * result is permerror. Names over 253 octets lose labels on the left (RFC 7208 7.3). A DNS
 * answer that does not come in time is temperror. libspf2's fatal errors (its assertions)
 * end the run as permerror instead of the process. */
#ifndef SMTPD_SPF_CHECK_H
#define SMTPD_SPF_CHECK_H
#include <stddef.h>

struct ar_dns;

enum spf_check_result {
    SPF_CHECK_NONE,
    SPF_CHECK_NEUTRAL,
    SPF_CHECK_PASS,
    SPF_CHECK_FAIL,
    SPF_CHECK_SOFTFAIL,
    SPF_CHECK_TEMPERROR,
    SPF_CHECK_PERMERROR,
};

#define SPF_CHECK_MAX_QUESTIONS 40

struct spf_check_outcome {
    enum spf_check_result result;
    int helo_identity;  /* the null sender: the HELO name was checked */
    char domain[256];   /* the domain checked ("" if there was none to check) */
    size_t questions;   /* DNS questions the final run asked */
};

/* Once per process, before the sandbox chroots. rec_dom: our host name. 0, or -1. */
int spf_check_init(const char *rec_dom);
void spf_check_shutdown(void);

/* One run over what d holds. ip: the client's address (text); helo: its HELO/EHLO name (may
 * be NULL); sender: MAIL FROM ("" for <>). 1: final, *out filled; 0: names were noted as
 * wanted in d, fetch them and run again. */
int spf_check_run(struct ar_dns *d, const char *ip, const char *helo, const char *sender,
                  struct spf_check_outcome *out);

const char *spf_check_result_name(enum spf_check_result r);

#endif
