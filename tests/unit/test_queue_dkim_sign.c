/* The queue's DKIM signer: the From: domain and its edge cases, which keys sign (domain,
 * active flag, one per algorithm), what the load refuses (file:line), and that what it signs
 * verifies with libopendkim itself, for rsa-sha256 and ed25519-sha256, with the public keys
 * given by a key callback (no DNS). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <opendkim/dkim.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base64.h"
#include "dkim_test_keys.h"
#include "postmesh.pb-c.h"
#include "queue/dkim_sign.h"
#include <event2/event.h>

static char root[64];
static char rsa_pem[128], ed_pem[128], ed2_pem[128], small_pem[128];
static char rsa_txt[1024], ed_txt[256], ed2_txt[256];

static int setup(void **state)
{
    (void)state;
    strcpy(root, "/tmp/pmdkimXXXXXX");
    assert_non_null(mkdtemp(root));
    snprintf(rsa_pem, sizeof rsa_pem, "%s/rsa.pem", root);
    snprintf(ed_pem, sizeof ed_pem, "%s/ed.pem", root);
    snprintf(ed2_pem, sizeof ed2_pem, "%s/ed2.pem", root);
    snprintf(small_pem, sizeof small_pem, "%s/small.pem", root);
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    EVP_PKEY *ed2 = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    write_key(rsa_pem, rsa, 0600);
    write_key(ed_pem, ed, 0640);
    write_key(ed2_pem, ed2, 0600);
    write_key(small_pem, small, 0600);
    txt_of(rsa, 0, rsa_txt, sizeof rsa_txt);
    txt_of(ed, 1, ed_txt, sizeof ed_txt);
    txt_of(ed2, 1, ed2_txt, sizeof ed2_txt);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ed);
    EVP_PKEY_free(ed2);
    EVP_PKEY_free(small);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    return system(cmd) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------ From: */
static const char *from_of(const char *msg, char *dom, size_t size)
{
    const char *why = NULL;
    int rc = queue_dkim_from_domain((const uint8_t *)msg, strlen(msg), dom, size, &why);
    return rc == 0 ? NULL : why;
}

static void test_from_domain(void **state)
{
    (void)state;
    char d[256];
    assert_null(from_of("From: Alice <alice@Example.TEST>\r\nTo: b@x.test\r\n\r\nhi\r\n", d, sizeof d));
    assert_string_equal(d, "example.test");
    assert_null(from_of("Subject: x\r\nfrom:alice@example.test (Alice, \"the\" <boss>)\r\n\r\n", d, sizeof d));
    assert_string_equal(d, "example.test");
    /* folded, a quoted display name with a comma, colon and '<' in it */
    assert_null(from_of("From: \"Smith, J: <x@evil.test>\"\r\n <js@mail.example.test>\r\n\r\n", d, sizeof d));
    assert_string_equal(d, "mail.example.test");
    /* encoded words may hold what would otherwise be a list or a group */
    assert_null(from_of("From: =?utf-8?q?A,_B:_C?= <ab@example.test>\r\n\r\n", d, sizeof d));
    assert_string_equal(d, "example.test");
    assert_null(from_of("From: =?utf-8?b?w6lsw6h2ZSwgPGE+?= <e@example.test>\r\n\r\n", d, sizeof d));
    assert_string_equal(d, "example.test");
    assert_null(from_of("From : a@spaced.test\r\nFromage: b@cheese.test\r\n\r\n", d, sizeof d));
    assert_string_equal(d, "spaced.test");
    assert_string_equal(from_of("From: a@one.test\r\nfrom\t: b@two.test\r\n\r\n", d, sizeof d), "several_from");
    /* a From: in the body is not a header */
    assert_null(from_of("From: a@one.test\r\n\r\nFrom: b@two.test\r\n", d, sizeof d));
    assert_string_equal(d, "one.test");

    assert_string_equal(from_of("To: b@x.test\r\n\r\nFrom: a@example.test\r\n", d, sizeof d), "no_from");
    assert_string_equal(from_of("From: a@one.test\r\nFrom: b@two.test\r\n\r\n", d, sizeof d), "several_from");
    assert_string_equal(from_of("From: a@one.test, b@two.test\r\n\r\n", d, sizeof d), "several_addresses");
    assert_string_equal(from_of("From: <a@one.test> <b@two.test>\r\n\r\n", d, sizeof d), "several_addresses");
    assert_string_equal(from_of("From: friends: a@one.test, b@two.test;\r\n\r\n", d, sizeof d), "group");
    assert_string_equal(from_of("From: undisclosed:;\r\n\r\n", d, sizeof d), "group");
    assert_string_equal(from_of("From: <>\r\n\r\n", d, sizeof d), "no_address");
    assert_string_equal(from_of("From: alice\r\n\r\n", d, sizeof d), "no_domain");
    assert_string_equal(from_of("From: a@[192.0.2.1]\r\n\r\n", d, sizeof d), "bad_domain");
    assert_string_equal(from_of("From: a@example..test\r\n\r\n", d, sizeof d), "bad_domain");
    assert_string_equal(from_of("From: \"unterminated <a@example.test>\r\n\r\n", d, sizeof d), "unbalanced_quote");
    assert_string_equal(from_of("From: (comment <a@example.test>\r\n\r\n", d, sizeof d), "unbalanced");
    /* bounded: a huge From: is refused, not copied */
    size_t n = 10000;
    char *big = malloc(n + 32);
    memcpy(big, "From: ", 6);
    memset(big + 6, 'a', n);
    strcpy(big + 6 + n, "@example.test\r\n\r\n");
    assert_string_equal(from_of(big, d, sizeof d), "too_long");
    free(big);
}

/* ------------------------------------------------------------------ loading, choosing */
static struct pm_dkim_key entry(const char *domain, const char *selector, const char *key, int active, int line)
{
    return (struct pm_dkim_key){.domain = (char *)domain, .selector = (char *)selector, .key = (char *)key,
                                .active = active, .file = "test.conf", .line = line};
}

static struct dkim_signer *load(struct pm_dkim_key *keys, int n, char *err, size_t size)
{
    struct pm_config cfg = {.path = "test.conf", .dkim = {.v = keys, .n = n}};
    return queue_dkim_load(&cfg, err, size);
}

static void test_load_refuses_bad_keys(void **state)
{
    (void)state;
    char err[512];
    struct pm_dkim_key k[2];
    k[0] = entry("example.test", "s1", "/nonexistent/key.pem", 1, 7);
    assert_null(load(k, 1, err, sizeof err));
    assert_non_null(strstr(err, "test.conf:7: ")), assert_non_null(strstr(err, "cannot read key"));
    k[0] = entry("example.test", "s1", small_pem, 1, 8);
    assert_null(load(k, 1, err, sizeof err));
    assert_non_null(strstr(err, "test.conf:8: ")), assert_non_null(strstr(err, "1024 bits"));
    char notkey[128];
    snprintf(notkey, sizeof notkey, "%s/notkey.pem", root);
    FILE *f = fopen(notkey, "w");
    fputs("-----BEGIN NOTHING-----\nAAAA\n-----END NOTHING-----\n", f);
    fclose(f);
    chmod(notkey, 0600);
    k[0] = entry("example.test", "s1", notkey, 1, 9);
    assert_null(load(k, 1, err, sizeof err));
    assert_non_null(strstr(err, "not a PEM private key"));
    chmod(ed2_pem, 0604);
    k[0] = entry("example.test", "s1", ed2_pem, 1, 10);
    assert_null(load(k, 1, err, sizeof err));
    assert_non_null(strstr(err, "readable by everyone"));
    chmod(ed2_pem, 0600);
    /* two active ed25519 keys for one domain; inactive, or another domain, is fine */
    k[0] = entry("example.test", "s1", ed_pem, 1, 11);
    k[1] = entry("Example.test", "s2", ed2_pem, 1, 12);
    assert_null(load(k, 2, err, sizeof err));
    assert_non_null(strstr(err, "test.conf:12: ")), assert_non_null(strstr(err, "second active ed25519"));
    k[1].active = 0;
    struct dkim_signer *d = load(k, 2, err, sizeof err);
    assert_non_null(d);
    queue_dkim_free(d);
}

static void test_choose(void **state)
{
    (void)state;
    char err[512];
    struct pm_dkim_key k[] = {
        entry("example.test", "old", ed2_pem, 0, 1), entry("example.test", "r1", rsa_pem, 1, 2),
        entry("example.test", "e1", ed_pem, 1, 3), entry("rsa.test", "r1", rsa_pem, 1, 4),
    };
    struct dkim_signer *d = load(k, 4, err, sizeof err);
    assert_non_null(d);
    const struct dkim_key *c[DKIM_ALG_N];
    assert_int_equal(queue_dkim_choose(d, "EXAMPLE.test", c), 2);
    assert_string_equal(c[0]->selector, "r1"), assert_int_equal(c[0]->alg, DKIM_ALG_RSA);
    assert_string_equal(c[1]->selector, "e1"), assert_int_equal(c[1]->alg, DKIM_ALG_ED25519);
    assert_int_equal(queue_dkim_choose(d, "rsa.test", c), 1);
    assert_int_equal(queue_dkim_choose(d, "sub.example.test", c), 0);
    assert_int_equal(queue_dkim_choose(d, "other.test", c), 0);
    queue_dkim_free(d);
}

/* ------------------------------------------------------------------ signing verifies */
static DKIM_CBSTAT key_lookup(DKIM *dkim, DKIM_SIGINFO *sig, u_char *buf, size_t buflen)
{
    (void)dkim;
    const char *sel = (const char *)dkim_sig_getselector(sig);
    const char *txt = !strcmp(sel, "r1") ? rsa_txt : !strcmp(sel, "e1") ? ed_txt : !strcmp(sel, "old") ? ed2_txt : NULL;
    if (!txt)
        return DKIM_CBSTAT_NOTFOUND;
    snprintf((char *)buf, buflen, "%s", txt);
    return DKIM_CBSTAT_CONTINUE;
}

/* Verifies msg with libopendkim: how many signatures passed. */
static int verified(const uint8_t *msg, size_t len, int *nsigs)
{
    DKIM_LIB *lib = dkim_init(NULL, NULL);
    dkim_set_key_lookup(lib, key_lookup);
    DKIM_STAT st;
    DKIM *h = dkim_verify(lib, (const u_char *)"test", NULL, &st);
    assert_non_null(h);
    st = dkim_chunk(h, (u_char *)msg, len);
    /* libopendkim's verifier, like its signer, refuses a last line without CRLF; relaxed
     * canonicalization ends the body with one anyway (dkimpy takes the message as it is). */
    if (st == DKIM_STAT_OK && len && msg[len - 1] != '\n')
        st = dkim_chunk(h, (u_char *)"\r\n", 2);
    if (st == DKIM_STAT_OK)
        st = dkim_chunk(h, NULL, 0);
    dkim_eom(h, NULL);
    DKIM_SIGINFO **sigs;
    *nsigs = 0;
    int passed = 0;
    if (dkim_getsiglist(h, &sigs, nsigs) == DKIM_STAT_OK)
        for (int i = 0; i < *nsigs; i++)
            passed += DKIM_SIG_CHECK(sigs[i]);
    dkim_free(h);
    dkim_close(lib);
    return passed;
}

static const char MSG[] = "Received: from client by mx.example.test\r\n"
                          "From: Alice <alice@example.test>\r\nTo: Bob <bob@remote.test>\r\n"
                          "Subject: a  signed\r\n  message\r\nDate: Tue, 1 Dec 2026 22:00:00 +0000\r\n"
                          "Message-ID: <1@example.test>\r\nX-Other: not signed\r\n\r\n"
                          "Hello Bob,  \r\n\r\n.dot\r\nbye\r\n\r\n\r\n";

static void test_sign_verifies(void **state)
{
    (void)state;
    char err[512];
    struct pm_dkim_key k[] = {entry("example.test", "r1", rsa_pem, 1, 1), entry("example.test", "e1", ed_pem, 1, 2)};
    struct dkim_signer *d = load(k, 2, err, sizeof err);
    assert_non_null(d);
    const struct dkim_key *c[DKIM_ALG_N];
    assert_int_equal(queue_dkim_choose(d, "example.test", c), 2);
    for (int which = 0; which < 3; which++) { /* rsa alone, ed25519 alone, both */
        const struct dkim_key *use[2] = {which == 1 ? c[1] : c[0], c[1]};
        int n = which == 2 ? 2 : 1;
        char *hdrs;
        size_t hlen;
        const char *why = NULL;
        assert_int_equal(queue_dkim_sign((const uint8_t *)MSG, strlen(MSG), use, n, &hdrs, &hlen, &why),
                         0);
        size_t total = hlen + strlen(MSG);
        uint8_t *signed_msg = malloc(total);
        memcpy(signed_msg, hdrs, hlen);
        memcpy(signed_msg + hlen, MSG, strlen(MSG));
        assert_true(hlen > 16 && !memcmp(hdrs, "DKIM-Signature: ", 16));
        assert_non_null(strstr(hdrs, "c=relaxed/relaxed"));
        assert_non_null(strstr(hdrs, which == 1 ? "a=ed25519-sha256" : "a=rsa-sha256"));
        assert_null(strstr(hdrs, "X-Other") ? strstr(hdrs, "X-Other") : strstr(hdrs, "x-other"));
        for (size_t i = 0; i < hlen; i++) /* CRLF line ends only */
            if (hdrs[i] == '\n')
                assert_true(i > 0 && hdrs[i - 1] == '\r');
        int nsigs;
        assert_int_equal(verified(signed_msg, total, &nsigs), n);
        assert_int_equal(nsigs, n);
        /* a changed body or a changed From: no longer verifies */
        signed_msg[total - 7] ^= 1;
        assert_int_equal(verified(signed_msg, total, &nsigs), 0);
        signed_msg[total - 7] ^= 1;
        uint8_t *from = (uint8_t *)strstr((char *)signed_msg + hlen, "alice@");
        from[0] = 'm';
        assert_int_equal(verified(signed_msg, total, &nsigs), 0);
        free(signed_msg);
        free(hdrs);
    }
    queue_dkim_free(d);
}

/* Canonicalization edge cases (both algorithms; libopendkim verifies): an empty body, lines of
 * white space only, a line longer than any buffer, repeated and oddly spaced fields. */
static void test_sign_edge_cases_verify(void **state)
{
    (void)state;
    char err[512];
    struct pm_dkim_key k[] = {entry("example.test", "r1", rsa_pem, 1, 1), entry("example.test", "e1", ed_pem, 1, 2)};
    struct dkim_signer *d = load(k, 2, err, sizeof err);
    assert_non_null(d);
    const struct dkim_key *c[DKIM_ALG_N];
    assert_int_equal(queue_dkim_choose(d, "example.test", c), 2);
    char *longline = malloc(5000);
    for (int i = 0; i < 4990; i++)
        longline[i] = i % 7 == 0 ? ' ' : i % 11 == 0 ? '\t' : 'x';
    longline[4990] = '\0';
    char *msgs[5];
    msgs[0] = strdup("From: a@example.test\r\nSubject: empty body\r\n\r\n");
    msgs[1] = strdup("From: a@example.test\r\nSubject: no body at all\r\n");
    msgs[2] = strdup("From: a@example.test\r\nTo: x@y.test\r\nTo: z@y.test\r\nSubject  :\t folded\r\n\t\tvalue  \r\n"
                     "\r\n \t \r\n\tleading tab\r\n  \r\n\r\n");
    size_t n = strlen(longline) + 100;
    msgs[3] = malloc(n);
    snprintf(msgs[3], n, "From: a@example.test\r\n\r\n%s\r\nend \r\n", longline);
    msgs[4] = strdup("FROM: A <a@EXAMPLE.test>\r\nmime-version: 1.0\r\nContent-Type: text/plain;\r\n charset=utf-8\r\n"
                     "\r\n"
                     "no final line end");
    for (size_t m = 0; m < sizeof msgs / sizeof msgs[0]; m++) {
        char *hdrs;
        size_t hlen;
        const char *why = NULL;
        size_t len = strlen(msgs[m]);
        if (queue_dkim_sign((const uint8_t *)msgs[m], len, c, 2, &hdrs, &hlen, &why) != 0)
            fail_msg("message %zu: not signed: %s", m, why);
        uint8_t *sm = malloc(hlen + len);
        memcpy(sm, hdrs, hlen);
        memcpy(sm + hlen, msgs[m], len);
        int nsigs;
        if (verified(sm, hlen + len, &nsigs) != 2)
            fail_msg("message %zu: %d of %d signatures verify:\n%s", m, verified(sm, hlen + len, &nsigs), nsigs, hdrs);
        free(sm);
        free(hdrs);
        free(msgs[m]);
    }
    free(longline);
    queue_dkim_free(d);
}

/* ------------------------------------------------------------------ the signing threads */
static Postmesh__BusMessage *submission(int originating)
{
    Postmesh__BusMessage *bm = malloc(sizeof *bm);
    postmesh__bus_message__init(bm);
    bm->body_case = POSTMESH__BUS_MESSAGE__BODY_SUBMIT;
    bm->submit = malloc(sizeof *bm->submit);
    postmesh__submit__init(bm->submit);
    bm->submit->originating = originating;
    bm->submit->body.len = strlen(MSG);
    bm->submit->body.data = malloc(strlen(MSG));
    memcpy(bm->submit->body.data, MSG, strlen(MSG));
    return bm; /* as the bus unpacks one: postmesh__bus_message__free_unpacked frees it all */
}

struct pool_result {
    int done, signed_ok, verified;
    struct event_base *base;
};

static void pool_done(void *arg, Postmesh__BusMessage *bm, const uint8_t *peer, size_t peerlen,
                      const struct dkim_outcome *o)
{
    struct pool_result *r = arg;
    assert_int_equal(peerlen, 3);
    assert_memory_equal(peer, "abc", 3);
    r->done++;
    r->signed_ok += o->state == DKIM_SIGNED && !strcmp(o->algorithms, "rsa-sha256,ed25519-sha256");
    int nsigs;
    r->verified += verified(bm->submit->body.data, bm->submit->body.len, &nsigs) == 2;
    postmesh__bus_message__free_unpacked(bm, NULL);
}

static void test_pool_signs_and_gives_back(void **state)
{
    (void)state;
    char err[512];
    struct pm_dkim_key k[] = {entry("example.test", "r1", rsa_pem, 1, 1), entry("example.test", "e1", ed_pem, 1, 2)};
    struct dkim_signer *d = load(k, 2, err, sizeof err);
    struct pool_result r = {.base = event_base_new()};
    struct dkim_pool *p = queue_dkim_pool_new(r.base, d, 2, 8, pool_done, &r);
    assert_non_null(p);
    Postmesh__BusMessage *plain = submission(0);
    assert_int_equal(queue_dkim_pool_take(p, plain, (const uint8_t *)"abc", 3), 0); /* not originating */
    postmesh__bus_message__free_unpacked(plain, NULL);
    int taken = 0;
    for (int i = 0; i < 20; i++) { /* 8 at most in the pool: the rest the caller signs inline */
        Postmesh__BusMessage *bm = submission(1);
        if (queue_dkim_pool_take(p, bm, (const uint8_t *)"abc", 3))
            taken++;
        else
            postmesh__bus_message__free_unpacked(bm, NULL);
    }
    assert_int_equal(taken, 8);
    for (int spins = 0; r.done < taken && spins < 10000; spins++)
        event_base_loop(r.base, EVLOOP_ONCE);
    assert_int_equal(r.done, taken);
    assert_int_equal(r.signed_ok, taken);
    assert_int_equal(r.verified, taken);
    /* room again; one left in the pool at the end is freed, unanswered */
    Postmesh__BusMessage *last = submission(1);
    assert_int_equal(queue_dkim_pool_take(p, last, (const uint8_t *)"abc", 3), 1);
    queue_dkim_pool_free(p);
    event_base_free(r.base);
    queue_dkim_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_from_domain),
        cmocka_unit_test(test_load_refuses_bad_keys),
        cmocka_unit_test(test_choose),
        cmocka_unit_test(test_sign_verifies),
        cmocka_unit_test(test_sign_edge_cases_verify),
        cmocka_unit_test(test_pool_signs_and_gives_back),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
