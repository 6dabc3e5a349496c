/* libcurl's multi interface on libevent: curl tells which sockets it waits on
 * (CURLMOPT_SOCKETFUNCTION) and when it wants to be woken (CURLMOPT_TIMERFUNCTION); libevent
 * reports readiness back through curl_multi_socket_action, and finished transfers are read
 * with curl_multi_info_read. The host's address goes in with CURLOPT_RESOLVE, so the name in
 * the URL (and the certificate check) is mta-sts.<domain> while no lookup of it ever leaves
 * the process. */
#include "sts_fetch.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sts.h"

struct fetch {
    struct mta_sts_fetcher *f;
    struct fetch *prev, *next;
    uint64_t handle;
    CURL *easy;
    struct curl_slist *resolve;
    struct event *later; /* an error found before curl started: answered from the loop */
    char *buf;
    size_t len;
    int too_big;
    char early[256];
    char errbuf[CURL_ERROR_SIZE];
    mta_sts_fetch_cb cb;
    void *arg;
};

struct mta_sts_fetcher {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    char *ca;
    size_t ca_len;
    long port, connect_timeout_ms, timeout_ms;
    struct fetch *head;
    uint64_t next_handle;
};

struct sock {
    struct event *ev;
};

/* ------------------------------------------------------------------ finishing */
static void unlink_fetch(struct fetch *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        x->f->head = x->next;
    if (x->next)
        x->next->prev = x->prev;
}

static void fetch_free(struct fetch *x)
{
    if (x->easy) {
        curl_multi_remove_handle(x->f->multi, x->easy);
        curl_easy_cleanup(x->easy);
    }
    curl_slist_free_all(x->resolve);
    if (x->later)
        event_free(x->later);
    free(x->buf);
    free(x);
}

static int is_webpki(CURLcode rc)
{
    return rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_SSL_ISSUER_ERROR ||
           rc == CURLE_SSL_PINNEDPUBKEYNOTMATCH || rc == CURLE_SSL_INVALIDCERTSTATUS;
}

/* "text/plain", any parameters (RFC 8461 3.3: charset aside they are ignored). */
static int is_text_plain(const char *ct)
{
    if (!ct)
        return 0;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = strcspn(ct, "; \t");
    return n == 10 && strncasecmp(ct, "text/plain", 10) == 0;
}

static void finish(struct fetch *x, CURLcode rc)
{
    struct mta_sts_fetch_result r = {0};
    snprintf(r.result_type, sizeof r.result_type, "sts-policy-fetch-error");
    long code = 0;
    char *ct = NULL;
    if (x->easy) {
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ct);
    }
    if (x->early[0]) {
        snprintf(r.why, sizeof r.why, "%s", x->early);
    } else if (x->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
        snprintf(r.why, sizeof r.why, "policy larger than %d octets", MTA_STS_MAX_POLICY);
    } else if (rc != CURLE_OK) {
        if (is_webpki(rc))
            snprintf(r.result_type, sizeof r.result_type, "sts-webpki-invalid");
        snprintf(r.why, sizeof r.why, "%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
    } else if (code >= 300 && code < 400) {
        snprintf(r.why, sizeof r.why, "HTTP %ld: redirects are not followed", code);
    } else if (code != 200) {
        snprintf(r.why, sizeof r.why, "HTTP %ld", code);
    } else if (!is_text_plain(ct)) {
        snprintf(r.why, sizeof r.why, "content type is not text/plain");
    } else {
        r.ok = 1;
        r.body = x->buf ? x->buf : "";
        r.len = x->len;
        r.result_type[0] = '\0';
    }
    /* Out of the list and out of curl first: the callback may start or cancel fetches. */
    unlink_fetch(x);
    if (x->easy) {
        curl_multi_remove_handle(x->f->multi, x->easy);
        curl_easy_cleanup(x->easy);
        x->easy = NULL;
    }
    x->cb(&r, x->arg);
    fetch_free(x);
}

static void read_done(struct mta_sts_fetcher *f)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(f->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct fetch *x = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        if (x)
            finish(x, m->data.result);
    }
}

/* ------------------------------------------------------------------ curl <-> libevent */
static void on_socket(evutil_socket_t fd, short what, void *arg)
{
    struct mta_sts_fetcher *f = arg;
    int action = (what & EV_READ ? CURL_CSELECT_IN : 0) | (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
    int running = 0;
    curl_multi_socket_action(f->multi, fd, action, &running);
    read_done(f);
    if (running <= 0)
        evtimer_del(f->timer);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct mta_sts_fetcher *f = arg;
    int running = 0;
    curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    read_done(f);
}

static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)easy;
    struct mta_sts_fetcher *f = userp;
    struct sock *k = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (k) {
            event_free(k->ev);
            free(k);
            curl_multi_assign(f->multi, s, NULL);
        }
        return 0;
    }
    short kind = (short)((what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0) | EV_PERSIST);
    if (!k) {
        k = calloc(1, sizeof *k);
        if (!k)
            return -1;
        curl_multi_assign(f->multi, s, k);
    } else {
        event_free(k->ev);
    }
    k->ev = event_new(f->base, s, kind, on_socket, f);
    if (!k->ev)
        return -1;
    event_add(k->ev, NULL);
    return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct mta_sts_fetcher *f = userp;
    if (timeout_ms < 0) {
        evtimer_del(f->timer);
        return 0;
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    evtimer_add(f->timer, &tv);
    return 0;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct fetch *x = arg;
    size_t add = size * n;
    if (add > (size_t)MTA_STS_MAX_POLICY - x->len) {
        x->too_big = 1;
        return 0; /* stops the transfer (CURLE_WRITE_ERROR) */
    }
    char *grown = realloc(x->buf, x->len + add + 1);
    if (!grown)
        return 0;
    x->buf = grown;
    memcpy(x->buf + x->len, data, add);
    x->len += add;
    x->buf[x->len] = '\0';
    return add;
}

/* ------------------------------------------------------------------ the API */
struct mta_sts_fetcher *mta_sts_fetcher_new(struct event_base *base, const void *ca, size_t ca_len, long port,
                                            long connect_timeout_ms, long timeout_ms)
{
    struct mta_sts_fetcher *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->base = base;
    f->port = port;
    f->connect_timeout_ms = connect_timeout_ms;
    f->timeout_ms = timeout_ms;
    f->ca = malloc(ca_len ? ca_len : 1);
    f->multi = curl_multi_init();
    f->timer = evtimer_new(base, on_timer, f);
    if (!f->ca || !f->multi || !f->timer) {
        mta_sts_fetcher_free(f);
        return NULL;
    }
    memcpy(f->ca, ca, ca_len);
    f->ca_len = ca_len;
    curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f);
    curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f);
    curl_multi_setopt(f->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, 32L);
    return f;
}

void mta_sts_fetcher_free(struct mta_sts_fetcher *f)
{
    if (!f)
        return;
    while (f->head) {
        struct fetch *x = f->head;
        unlink_fetch(x);
        fetch_free(x);
    }
    if (f->multi)
        curl_multi_cleanup(f->multi);
    if (f->timer)
        event_free(f->timer);
    free(f->ca);
    free(f);
}

static void on_later(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    finish(arg, CURLE_OK);
}

/* The CURLOPT_RESOLVE entry: "mta-sts.<domain>:<port>:<a>,[<aaaa>],...". */
static int resolve_entry(char *out, size_t size, const char *host, long port, const char *const *addrs, size_t n)
{
    int len = snprintf(out, size, "%s:%ld:", host, port);
    size_t used = 0;
    for (size_t i = 0; i < n && used < MTA_STS_FETCH_MAX_ADDRESSES; i++) {
        unsigned char bin[16];
        const char *a = addrs[i];
        int v6 = a && inet_pton(AF_INET6, a, bin) == 1;
        if (!a || (!v6 && inet_pton(AF_INET, a, bin) != 1))
            continue;
        int w = snprintf(out + len, size - (size_t)len, "%s%s%s%s", used ? "," : "", v6 ? "[" : "", a, v6 ? "]" : "");
        if (w < 0 || (size_t)w >= size - (size_t)len)
            break;
        len += w;
        used++;
    }
    return used ? 0 : -1;
}

static int start_curl(struct fetch *x, const char *domain, const char *const *addrs, size_t n)
{
    struct mta_sts_fetcher *f = x->f;
    char host[300], url[400], entry[300 + MTA_STS_FETCH_MAX_ADDRESSES * 50];
    int hl = snprintf(host, sizeof host, "mta-sts.%s", domain);
    if (hl < 0 || hl > 253 || strpbrk(domain, "/:@?#[]% \\")) {
        snprintf(x->early, sizeof x->early, "policy host name mta-sts.<domain> is not a host name");
        return -1;
    }
    if (resolve_entry(entry, sizeof entry, host, f->port, addrs, n) < 0) {
        snprintf(x->early, sizeof x->early, "no address for %.200s", host);
        return -1;
    }
    if (f->port == 443)
        snprintf(url, sizeof url, "https://%s/.well-known/mta-sts.txt", host);
    else
        snprintf(url, sizeof url, "https://%s:%ld/.well-known/mta-sts.txt", host, f->port);
    x->resolve = curl_slist_append(NULL, entry);
    x->easy = curl_easy_init();
    if (!x->resolve || !x->easy) {
        snprintf(x->early, sizeof x->early, "out of memory");
        return -1;
    }
    CURL *e = x->easy;
    struct curl_blob ca = {.data = f->ca, .len = f->ca_len, .flags = CURL_BLOB_NOCOPY};
    int bad = 0;
#define SET(opt, val) bad |= curl_easy_setopt(e, opt, val) != CURLE_OK
    SET(CURLOPT_PRIVATE, (void *)x);
    SET(CURLOPT_URL, url);
    SET(CURLOPT_PROTOCOLS_STR, "https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "https");
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_RESOLVE, x->resolve);
    SET(CURLOPT_PROXY, "");     /* never https_proxy and friends from the environment */
    SET(CURLOPT_NOPROXY, "*");
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    SET(CURLOPT_CAINFO, (char *)NULL); /* only the bundle read before the chroot */
    SET(CURLOPT_CAPATH, (char *)NULL);
    SET(CURLOPT_CAINFO_BLOB, &ca);
    SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    SET(CURLOPT_SSL_SESSIONID_CACHE, 0L);
    SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    SET(CURLOPT_FORBID_REUSE, 1L);
    SET(CURLOPT_FRESH_CONNECT, 1L);
    SET(CURLOPT_CONNECTTIMEOUT_MS, f->connect_timeout_ms);
    SET(CURLOPT_TIMEOUT_MS, f->timeout_ms);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)MTA_STS_MAX_POLICY);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, (void *)x);
    SET(CURLOPT_ERRORBUFFER, x->errbuf);
    SET(CURLOPT_USERAGENT, "postmesh-mta");
#undef SET
    if (bad) {
        snprintf(x->early, sizeof x->early, "libcurl refused an option (too old?)");
        return -1;
    }
    if (curl_multi_add_handle(f->multi, e) != CURLM_OK) {
        snprintf(x->early, sizeof x->early, "libcurl refused the transfer");
        return -1;
    }
    return 0;
}

uint64_t mta_sts_fetch(struct mta_sts_fetcher *f, const char *domain, const char *const *addresses, size_t naddresses,
                       mta_sts_fetch_cb cb, void *arg)
{
    struct fetch *x = calloc(1, sizeof *x);
    if (!x)
        abort(); /* as the resolver client: a lookup we cannot track is a bug not to hide */
    x->f = f;
    x->handle = ++f->next_handle;
    x->cb = cb;
    x->arg = arg;
    x->next = f->head;
    if (f->head)
        f->head->prev = x;
    f->head = x;
    if (start_curl(x, domain, addresses, naddresses) < 0) {
        if (x->easy) {
            curl_easy_cleanup(x->easy);
            x->easy = NULL;
        }
        x->later = evtimer_new(f->base, on_later, x);
        if (!x->later)
            abort();
        struct timeval now = {0, 0};
        evtimer_add(x->later, &now);
    }
    return x->handle;
}

void mta_sts_fetch_cancel(struct mta_sts_fetcher *f, uint64_t handle)
{
    for (struct fetch *x = f->head; x; x = x->next)
        if (x->handle == handle) {
            unlink_fetch(x);
            fetch_free(x);
            return;
        }
}
