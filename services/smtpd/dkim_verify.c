/* DKIM verification with libopendkim over the message's DNS table (dkim_verify.h). */
#include "dkim_verify.h"

#include <event2/buffer.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <opendkim/dkim.h>

#include "authres_dns.h"
#include "authres_header.h"

static DKIM_LIB *lib;

struct dkim_verify {
    DKIM *dkim;              /* NULL: nothing to verify (see state) */
    enum dkim_verify_result state; /* when dkim is NULL: NONE, or the error that stopped it */
    char why[80];
    struct ar_dns *dns;      /* during dkim_eom only: the key callback's table */
};

static void key_name(DKIM_SIGINFO *sig, char *out, size_t size)
{
    const char *s = (const char *)dkim_sig_getselector(sig), *d = (const char *)dkim_sig_getdomain(sig);
    if (!s || !d || !*s || !*d || (size_t)snprintf(out, size, "%s._domainkey.%s", s, d) >= size)
        out[0] = '\0';
}

/* The key record, from the table: libopendkim parses it (and says permerror for junk). */
static DKIM_CBSTAT key_lookup(DKIM *dkim, DKIM_SIGINFO *sig, u_char *buf, size_t buflen)
{
    struct dkim_verify *v = dkim_get_user_context(dkim);
    char name[AR_DNS_MAX_NAME + 1];
    key_name(sig, name, sizeof name);
    const struct ar_dns_entry *e = v && v->dns && name[0] ? ar_dns_find(v->dns, SMTPD_DNS_TXT, name) : NULL;
    if (!e || e->state != AR_DNS_DONE)
        return name[0] ? DKIM_CBSTAT_TRYAGAIN : DKIM_CBSTAT_NOTFOUND;
    switch (e->status) {
    case SMTPD_DNS_OK:
        break;
    case SMTPD_DNS_TEMPFAIL:
        return DKIM_CBSTAT_TRYAGAIN;
    default:
        return DKIM_CBSTAT_NOTFOUND;
    }
    /* RFC 6376 3.6.2.2: more than one record may be ignored but the first. */
    size_t len = strlen(e->records[0]);
    if (len + 1 > buflen)
        return DKIM_CBSTAT_ERROR;
    memcpy(buf, e->records[0], len + 1);
    return DKIM_CBSTAT_CONTINUE;
}

/* Past the first DKIM_VERIFY_MAX_SIGS signatures: ignored (never fetched, never verified). */
static DKIM_CBSTAT prescreen(DKIM *dkim, DKIM_SIGINFO **sigs, int nsigs)
{
    (void)dkim;
    for (int i = DKIM_VERIFY_MAX_SIGS; i < nsigs; i++)
        dkim_sig_ignore(sigs[i]);
    return DKIM_CBSTAT_CONTINUE;
}

int dkim_verify_init(void)
{
    if (lib)
        return 0;
    lib = dkim_init(NULL, NULL);
    if (!lib)
        return -1;
    unsigned int flags = 0;
    dkim_options(lib, DKIM_OP_GETOPT, DKIM_OPTS_FLAGS, &flags, sizeof flags);
    flags &= ~(unsigned int)DKIM_LIBFLAGS_VERIFYONE; /* every signature gets its result */
    flags |= DKIM_LIBFLAGS_DELAYSIGPROC;            /* keys at dkim_eom, not at dkim_eoh */
    dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags, sizeof flags);
    if (dkim_set_key_lookup(lib, key_lookup) != DKIM_STAT_OK || dkim_set_prescreen(lib, prescreen) != DKIM_STAT_OK) {
        dkim_close(lib);
        lib = NULL;
        return -1;
    }
    return 0;
}

void dkim_verify_shutdown(void)
{
    if (lib)
        dkim_close(lib);
    lib = NULL;
}

static struct dkim_verify *stopped(struct dkim_verify *v, enum dkim_verify_result r, const char *why)
{
    if (v->dkim)
        dkim_free(v->dkim);
    v->dkim = NULL;
    v->state = r;
    snprintf(v->why, sizeof v->why, "%s", why);
    return v;
}

/* Feeds one field without its final CRLF (folds kept, as libopendkim wants them). */
static int feed_header(DKIM *dkim, const struct ar_field *f)
{
    size_t n = f->len;
    if (n >= 2 && f->text[n - 2] == '\r' && f->text[n - 1] == '\n')
        n -= 2;
    return dkim_header(dkim, (u_char *)f->text, n);
}

struct dkim_verify *dkim_verify_begin(const char *hdr, size_t hdrlen, struct evbuffer *msg, size_t body_off,
                                      struct ar_dns *d)
{
    struct dkim_verify *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    if (!lib)
        return stopped(v, DKIM_VERIFY_TEMPERROR, "verifier not initialised");
    if (hdrlen > DKIM_VERIFY_MAX_HEADER)
        return stopped(v, DKIM_VERIFY_PERMERROR, "header section too large");
    DKIM_STAT st;
    v->dkim = dkim_verify(lib, (const u_char *)"authres", NULL, &st);
    if (!v->dkim)
        return stopped(v, DKIM_VERIFY_TEMPERROR, "out of memory");
    dkim_set_user_context(v->dkim, v);
    size_t pos = 0;
    struct ar_field f;
    while (ar_header_next(hdr, hdrlen, &pos, &f)) {
        if (!f.namelen)
            continue; /* not a field: nothing a signature could cover */
        if (f.len > DKIM_VERIFY_MAX_FIELD)
            return stopped(v, DKIM_VERIFY_PERMERROR, "header field too large");
        if (feed_header(v->dkim, &f) != DKIM_STAT_OK)
            return stopped(v, DKIM_VERIFY_PERMERROR, "malformed header");
    }
    st = dkim_eoh(v->dkim);
    if (st == DKIM_STAT_NOSIG)
        return stopped(v, DKIM_VERIFY_NONE, "");
    DKIM_SIGINFO **sigs = NULL;
    int nsigs = 0;
    if (dkim_getsiglist(v->dkim, &sigs, &nsigs) != DKIM_STAT_OK || nsigs == 0)
        return stopped(v, DKIM_VERIFY_NONE, ""); /* e.g. no From: at all: nothing was signed */
    for (int i = 0; i < nsigs && i < DKIM_VERIFY_MAX_SIGS; i++) {
        char name[AR_DNS_MAX_NAME + 1];
        key_name(sigs[i], name, sizeof name);
        if (name[0]) /* a signature that does not parse has no d= or s=, so no name */
            ar_dns_want(d, SMTPD_DNS_TXT, name);
    }
    /* The body, chain by chain (evbuffer_peek with a negative length fills at most the
     * vectors given and says nothing of the rest: so the length left is passed). */
    size_t total = evbuffer_get_length(msg), left = total > body_off ? total - body_off : 0;
    struct evbuffer_ptr at;
    if (left && evbuffer_ptr_set(msg, &at, body_off, EVBUFFER_PTR_SET) == 0) {
        struct evbuffer_iovec iov[16];
        while (left > 0) {
            int k = evbuffer_peek(msg, (ev_ssize_t)left, &at, iov, 16);
            if (k <= 0)
                break;
            size_t fed = 0;
            for (int i = 0; i < k && i < 16 && fed < left; i++) {
                size_t n = iov[i].iov_len < left - fed ? iov[i].iov_len : left - fed;
                dkim_body(v->dkim, iov[i].iov_base, n);
                fed += n;
            }
            if (fed == 0)
                break;
            left -= fed;
            if (left && evbuffer_ptr_set(msg, &at, fed, EVBUFFER_PTR_ADD) < 0)
                break;
        }
    }
    return v;
}

static enum dkim_verify_result sig_result(DKIM_SIGINFO *sig, char *why, size_t size)
{
    unsigned int flags = dkim_sig_getflags(sig);
    int bh = dkim_sig_getbh(sig), err = dkim_sig_geterror(sig);
    if ((flags & DKIM_SIGFLAG_PASSED) && bh == DKIM_SIGBH_MATCH)
        return DKIM_VERIFY_PASS;
    const char *s = err != DKIM_SIGERROR_OK ? dkim_sig_geterrorstr(err) : NULL;
    if (bh == DKIM_SIGBH_MISMATCH) /* the likelier story: the body changed on the way */
        s = "body hash did not verify";
    snprintf(why, size, "%s", s ? s : "signature did not verify");
    if (err == DKIM_SIGERROR_KEYFAIL)
        return DKIM_VERIFY_TEMPERROR;
    if (err == DKIM_SIGERROR_BADSIG || bh == DKIM_SIGBH_MISMATCH || (err == DKIM_SIGERROR_OK && (flags & DKIM_SIGFLAG_PROCESSED)))
        return DKIM_VERIFY_FAIL;
    return DKIM_VERIFY_PERMERROR;
}

static void alg_name(DKIM_SIGINFO *sig, char *out, size_t size)
{
    dkim_alg_t alg = DKIM_SIGN_UNKNOWN;
    dkim_sig_getsignalg(sig, &alg);
    snprintf(out, size, "%s", alg == DKIM_SIGN_RSASHA256 ? "rsa-sha256" : alg == DKIM_SIGN_RSASHA1 ? "rsa-sha1"
                              : alg == DKIM_SIGN_ED25519SHA256 ? "ed25519-sha256" : "");
}

void dkim_verify_finish(struct dkim_verify *v, struct ar_dns *d, struct dkim_verify_sig *sigs, size_t max, size_t *n)
{
    *n = 0;
    if (max == 0)
        return;
    if (!v || !v->dkim) {
        memset(&sigs[0], 0, sizeof sigs[0]);
        sigs[0].result = v ? v->state : DKIM_VERIFY_TEMPERROR;
        snprintf(sigs[0].why, sizeof sigs[0].why, "%s", v ? v->why : "out of memory");
        *n = 1;
        return;
    }
    v->dns = d;
    dkim_eom(v->dkim, NULL); /* every signature's own result is read below */
    v->dns = NULL;
    DKIM_SIGINFO **list = NULL;
    int nsigs = 0;
    if (dkim_getsiglist(v->dkim, &list, &nsigs) != DKIM_STAT_OK)
        nsigs = 0;
    for (int i = 0; i < nsigs && *n < max && i < DKIM_VERIFY_MAX_SIGS; i++) {
        struct dkim_verify_sig *o = &sigs[(*n)++];
        memset(o, 0, sizeof *o);
        const char *dom = (const char *)dkim_sig_getdomain(list[i]), *sel = (const char *)dkim_sig_getselector(list[i]);
        snprintf(o->domain, sizeof o->domain, "%s", dom ? dom : "");
        snprintf(o->selector, sizeof o->selector, "%s", sel ? sel : "");
        alg_name(list[i], o->alg, sizeof o->alg);
        o->result = sig_result(list[i], o->why, sizeof o->why);
    }
    if (*n == 0) {
        memset(&sigs[0], 0, sizeof sigs[0]);
        sigs[0].result = DKIM_VERIFY_PERMERROR;
        snprintf(sigs[0].why, sizeof sigs[0].why, "no usable signature");
        *n = 1;
    }
}

void dkim_verify_free(struct dkim_verify *v)
{
    if (!v)
        return;
    if (v->dkim)
        dkim_free(v->dkim);
    free(v);
}

const char *dkim_verify_result_name(enum dkim_verify_result r)
{
    static const char *const names[] = {"none", "pass", "fail", "temperror", "permerror"};
    return (unsigned)r < sizeof names / sizeof names[0] ? names[r] : "permerror";
}
