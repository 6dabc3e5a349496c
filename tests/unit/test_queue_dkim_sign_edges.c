/* The DKIM signer against hostile-but-legal input (review of issue 14): From: forms a reader
 * could take two ways (not signed), u-label domains (d= is the a-label), the canonicalization
 * edge cases of RFC 6376 3.4 verified with libopendkim, the bottom-up choice of duplicate
 * fields (5.4.2) and the oversigned From, key files writable by everyone, and the signing
 * pool freed while its threads are busy (no leak, no use after free under ASan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <event2/event.h>
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

static char root[64], rsa_pem[128], ed_pem[128];
static char rsa_txt[1024], ed_txt[256];

static int setup(void **state)
{
    (void)state;
    strcpy(root, "/tmp/pmdkimedgeXXXXXX");
    assert_non_null(mkdtemp(root));
    snprintf(rsa_pem, sizeof rsa_pem, "%s/rsa.pem", root);
    snprintf(ed_pem, sizeof ed_pem, "%s/ed.pem", root);
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    write_key(rsa_pem, rsa, 0600);
    write_key(ed_pem, ed, 0600);
    txt_of(rsa, 0, rsa_txt, sizeof rsa_txt);
    txt_of(ed, 1, ed_txt, sizeof ed_txt);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ed);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    return system(cmd) == 0 ? 0 : -1;
}

static struct pm_dkim_key entry(const char *domain, const char *selector, const char *key, int line)
{
    return (struct pm_dkim_key){.domain = (char *)domain, .selector = (char *)selector, .key = (char *)key,
                                .active = 1, .file = "edges.conf", .line = line};
}

static struct dkim_signer *load2(const char *domain, char *err, size_t size)
{
    static struct pm_dkim_key k[2];
    k[0] = entry(domain, "r1", rsa_pem, 1);
    k[1] = entry(domain, "e1", ed_pem, 2);
    struct pm_config cfg = {.path = "edges.conf", .dkim = {.v = k, .n = 2}};
    return queue_dkim_load(&cfg, err, size);
}

/* ------------------------------------------------------------------ From: */
static const char *from_of(const char *value, char *dom)
{
    char msg[4096];
    snprintf(msg, sizeof msg, "Subject: x\r\nFrom: %s\r\nTo: b@remote.test\r\n\r\nbody\r\n", value);
    const char *why = NULL;
    dom[0] = '\0';
    return queue_dkim_from_domain((const uint8_t *)msg, strlen(msg), dom, 256, &why) == 0 ? NULL : why;
}

static void test_from_signed_forms(void **state)
{
    (void)state;
    static const char *const ok[][2] = {
        {"\"Doe, John\" <j@example.test>", "example.test"},
        {"j@example.test (Doe, John)", "example.test"},
        {"=?utf-8?q?Doe=2C_John?= <j@example.test>", "example.test"},
        {"\"a\\\"b, c <x@evil.test>\" <j@example.test>", "example.test"},
        {"(a \" b) j@example.test", "example.test"},
        {"\"a@evil.test\" <j@example.test>", "example.test"},  /* quoted: a display name */
        {"(a@evil.test) <j@example.test>", "example.test"},    /* a comment */
        {"<j@example.test> (trailing comment)", "example.test"},
        {"\"j doe\"@example.test", "example.test"},
        {"J <\"x@evil.test\"@example.test>", "example.test"}, /* the last '@' is the domain's */
        {"=?utf-8?b?SsO2cmc=?=\r\n\t<j@EXAMPLE.test>", "example.test"},
        /* u-labels (SMTPUTF8): d= must be the a-label, the name the key is published under */
        {"J\xc3\xb6rg <j@b\xc3\xbc" "cher.example>", "xn--bcher-kva.example"},
        {"j@M\xc3\xbc" "nchen.t\xc3\xa4st.example", "xn--mnchen-3ya.xn--tst-qla.example"},
        {"j@xn--bcher-kva.EXAMPLE", "xn--bcher-kva.example"},
        {"j@B\xc3\x9c" "CHER.example", "xn--bcher-kva.example"},  /* upper case: folded (UTS #46) */
        {"j@bu\xcc\x88" "cher.example", "xn--bcher-kva.example"}, /* u + combining diaeresis: NFC */
    };
    char d[256];
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        const char *why = from_of(ok[i][0], d);
        if (why || strcmp(d, ok[i][1]))
            fail_msg("From: %s -> %s (%s), expected %s", ok[i][0], d, why ? why : "ok", ok[i][1]);
    }
}

static void test_from_ambiguous_forms_not_signed(void **state)
{
    (void)state;
    static const char *const bad[][2] = {
        /* a second address after the angle-addr, or an unquoted '@' in the display name:
         * readers differ on which is the author, so no signature (these were signed before) */
        {"<j@example.test> k@evil.test", "several_addresses"},
        {"<j@example.test> (c) k@evil.test", "several_addresses"},
        {"<j@example.test> \"x\"", "several_addresses"},
        {"<j@example.test> =?utf-8?q?x?=", "several_addresses"},
        {"a@evil.test <j@example.test>", "several_addresses"},
        {"j@b\xc3\xbc" "cher.example <k@example.test>", "several_addresses"},
        {"<j@example.test>,", "several_addresses"},
        {"a@example.test, b@example.test", "several_addresses"},
        {"Friends: a@example.test, b@example.test;", "group"},
        {"undisclosed-recipients:;", "group"},
        {"\"a\"@", "no_domain"},
        {"j", "no_domain"},
        {"", "no_address"},
        {"<>", "no_address"},
        {"j@[192.0.2.1]", "bad_domain"},
        {"j@example.test.", "bad_domain"},
        {"j@b\xff" "cher.example", "bad_domain"},         /* not UTF-8 */
        {"j@\xc0\xafxample.test", "bad_domain"},          /* an overlong form */
        {"j@\xed\xa0\x80.test", "bad_domain"},            /* a surrogate */
    };
    char d[256];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *why = from_of(bad[i][0], d);
        if (!why || strcmp(why, bad[i][1]))
            fail_msg("From: %s -> %s, expected %s", bad[i][0], why ? why : d, bad[i][1]);
    }
    /* two From: fields (RFC 6376 5.4, DMARC): never signed, whatever the case or spacing */
    const char *two = "From: a@example.test\r\nSubject: x\r\nFROM : a@example.test\r\n\r\n";
    const char *why = NULL;
    assert_int_equal(queue_dkim_from_domain((const uint8_t *)two, strlen(two), d, sizeof d, &why), -1);
    assert_string_equal(why, "several_from");
    /* a label longer than 63 octets once it is an a-label */
    char big[200] = "j@";
    for (int i = 0; i < 25; i++)
        strcat(big, "a\xc3\xbc");
    strcat(big, "aaaaaaaaaa.example");
    why = from_of(big, d);
    assert_non_null(why);
    assert_string_equal(why, "bad_domain");
    /* more than 63 code points in one label (found by fuzzing: wrote past the label's array) */
    strcpy(big, "j@");
    for (int i = 0; i < 70; i++)
        strcat(big, "\xc3\xbc");
    strcat(big, ".example");
    why = from_of(big, d);
    assert_non_null(why);
    assert_string_equal(why, "bad_domain");
}

/* ------------------------------------------------------------------ libopendkim verifies */
static DKIM_CBSTAT key_lookup(DKIM *dkim, DKIM_SIGINFO *sig, u_char *buf, size_t buflen)
{
    (void)dkim;
    const char *sel = (const char *)dkim_sig_getselector(sig);
    const char *txt = !strcmp(sel, "r1") ? rsa_txt : !strcmp(sel, "e1") ? ed_txt : NULL;
    if (!txt)
        return DKIM_CBSTAT_NOTFOUND;
    snprintf((char *)buf, buflen, "%s", txt);
    return DKIM_CBSTAT_CONTINUE;
}

static int verified(const uint8_t *msg, size_t len)
{
    DKIM_LIB *lib = dkim_init(NULL, NULL);
    dkim_set_key_lookup(lib, key_lookup);
    DKIM_STAT st;
    DKIM *h = dkim_verify(lib, (const u_char *)"edges", NULL, &st);
    assert_non_null(h);
    st = dkim_chunk(h, (u_char *)msg, len);
    if (st == DKIM_STAT_OK && len && msg[len - 1] != '\n') /* libopendkim wants a last CRLF */
        st = dkim_chunk(h, (u_char *)"\r\n", 2);
    if (st == DKIM_STAT_OK)
        st = dkim_chunk(h, NULL, 0);
    dkim_eom(h, NULL);
    DKIM_SIGINFO **sigs;
    int nsigs = 0, passed = 0;
    if (dkim_getsiglist(h, &sigs, &nsigs) == DKIM_STAT_OK)
        for (int i = 0; i < nsigs; i++)
            passed += DKIM_SIG_CHECK(sigs[i]);
    dkim_free(h);
    dkim_close(lib);
    return passed;
}

/* msg signed by both keys: the signed octets (malloc'd), *len. */
static uint8_t *sign_both(struct dkim_signer *d, const char *msg, size_t mlen, size_t *len, char **hdrs_out)
{
    const struct dkim_key *c[DKIM_ALG_N];
    char dom[256];
    const char *why = NULL;
    assert_int_equal(queue_dkim_from_domain((const uint8_t *)msg, mlen, dom, sizeof dom, &why), 0);
    assert_int_equal(queue_dkim_choose(d, dom, c), 2);
    char *hdrs;
    size_t hlen;
    if (queue_dkim_sign((const uint8_t *)msg, mlen, c, 2, &hdrs, &hlen, &why) != 0)
        fail_msg("not signed: %s", why);
    uint8_t *out = malloc(hlen + mlen);
    memcpy(out, hdrs, hlen);
    memcpy(out + hlen, msg, mlen);
    *len = hlen + mlen;
    if (hdrs_out)
        *hdrs_out = hdrs;
    else
        free(hdrs);
    return out;
}

#define F "From: A <a@example.test>\r\n"
static void test_canonicalization_table(void **state)
{
    (void)state;
    char err[512];
    struct dkim_signer *d = load2("example.test", err, sizeof err);
    assert_non_null(d);
    char *long_subject = malloc(6000), *long_line = malloc(9000), *refs = malloc(12000);
    snprintf(long_subject, 6000, F "Subject: %0*d\r\n\r\nx\r\n", 5000, 7);
    strcpy(long_line, F "\r\n");
    for (int i = 0; i < 2000; i++)
        strcat(long_line, "ab \t");
    strcat(long_line, "\r\n");
    strcpy(refs, F "References:");
    for (int i = 0; i < 300; i++)
        sprintf(refs + strlen(refs), " <%d@x.test>\r\n", i);
    strcat(refs, "\r\nx\r\n");
    const char *table[] = {
        F "Subject: empty body\r\n\r\n",
        F "Subject: no separator line\r\n",
        F "\r\nno final CRLF",
        F "\r\nabc  \r\n \t \r\n\t\r\n\r\n",                         /* trailing white space lines */
        F "\r\n \r\n\t\r\n  \t  \r\n",                               /* only white space */
        F "\r\na\r\n \t\r\nb\r\n",                                   /* white space line inside */
        F "\r\n  a \t b\r\n",                                        /* leading white space */
        F "Subject:\t\tfolded\r\n\t\tmore \t \r\n\tend\r\n\r\nx\r\n", /* folding with tabs */
        F "Subject:\r\n folded after the colon\r\n\r\nx\r\n",
        F "Subject: one\r\nSubject: two\r\nTo: a@b.test\r\nTo: c@d.test\r\n\r\nx\r\n",
        "From: J\xc3\xb6rg <j@example.test>\r\nSubject: gr\xc3\xbc\xc3\x9f" "e \xe2\x9c\x93\r\n\r\nb\xc3\xb6" "dy\r\n",
        F "\r\nno Date, no Subject, no Message-ID\r\n",
        F "Subject:\r\nTo: \r\n\r\nempty values\r\n",
        "FROM: a@example.test\r\nSUBJECT: X\r\nmEssAge-iD: <x@y>\r\n\r\nb\r\n",
        F "\r\nx\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n",
        F "\r\n\r\n\r\n",
        "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=other.test; s=x; h=from; bh=AAAA; b=AAAA\r\n" F
        "\r\nan older signature\r\n",
        long_subject, long_line, refs,
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        size_t len;
        char *hdrs;
        uint8_t *sm = sign_both(d, table[i], strlen(table[i]), &len, &hdrs);
        int n = verified(sm, len);
        if (n != 2)
            fail_msg("table[%zu]: %d of 2 verify:\n%s", i, n, hdrs);
        size_t last = len; /* the check can fail: the case of the last letter (in the body, or a signed field) */
        while (last-- > 0 && !((sm[last] | 0x20) >= 'a' && (sm[last] | 0x20) <= 'z'))
            ;
        sm[last] ^= 0x20;
        if (verified(sm, len) != 0)
            fail_msg("table[%zu]: still verifies with byte %zu changed", i, last);
        free(hdrs);
        free(sm);
    }
    free(long_subject);
    free(long_line);
    free(refs);
    queue_dkim_free(d);
}

/* Header syntax the verifiers disagree on is not signed (sign_failed, bad_header_syntax): a tab
 * before the colon (libopendkim keeps it in the name: the signature failed there before this
 * was refused), a line without a colon, a field with an empty name. Spaces before the colon
 * verify with libopendkim and stay signed. */
static void test_bad_header_syntax_not_signed(void **state)
{
    (void)state;
    char err[512];
    struct dkim_signer *d = load2("example.test", err, sizeof err);
    assert_non_null(d);
    const struct dkim_key *c[DKIM_ALG_N];
    assert_int_equal(queue_dkim_choose(d, "example.test", c), 2);
    const char *bad[] = {
        F "Subject\t: tab before the colon\r\n\r\nb\r\n",
        "From \t: a@example.test\r\n\r\nb\r\n",
        F "no colon here\r\n\r\nb\r\n",
        F ": no name\r\n\r\nb\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *hdrs = NULL;
        size_t hlen;
        const char *why = NULL;
        assert_int_equal(queue_dkim_sign((const uint8_t *)bad[i], strlen(bad[i]), c, 2, &hdrs, &hlen, &why), -1);
        assert_string_equal(why, "bad_header_syntax");
        assert_null(hdrs);
    }
    const char *spaces[] = {"From : a@example.test\r\n\r\nb\r\n",
                            F "Subject   :x\r\n\r\nb\r\n"};
    for (size_t i = 0; i < 2; i++) {
        size_t len;
        uint8_t *sm = sign_both(d, spaces[i], strlen(spaces[i]), &len, NULL);
        assert_int_equal(verified(sm, len), 2);
        free(sm);
    }
    queue_dkim_free(d);
}

/* Duplicate fields are taken bottom-up (RFC 6376 5.4.2): a To: added above the signed ones
 * leaves the signature intact, one added below them (where a verifier looks first) breaks it;
 * From is oversigned, so a From: added anywhere breaks it. */
static void test_duplicates_bottom_up_and_oversigned_from(void **state)
{
    (void)state;
    char err[512];
    struct dkim_signer *d = load2("example.test", err, sizeof err);
    assert_non_null(d);
    const char *msg = F "To: first@remote.test\r\nSubject: s\r\nTo: second@remote.test\r\n\r\nbody\r\n";
    size_t len;
    char *hdrs;
    uint8_t *sm = sign_both(d, msg, strlen(msg), &len, &hdrs);
    assert_non_null(strstr(hdrs, "h=from:to:subject:to:from;"));
    size_t hlen = len - strlen(msg);
    assert_int_equal(verified(sm, len), 2);
    const char *added[] = {"To: evil@attacker.test\r\n", "From: evil@attacker.test\r\n"};
    for (int a = 0; a < 2; a++)
        for (int where = 0; where < 2; where++) { /* 0: above the message's fields, 1: below */
            size_t alen = strlen(added[a]), at = where ? len - strlen("\r\nbody\r\n") : hlen;
            uint8_t *t = malloc(len + alen);
            memcpy(t, sm, at);
            memcpy(t + at, added[a], alen);
            memcpy(t + at + alen, sm + at, len - at);
            int expect = a == 0 && where == 0 ? 2 : 0;
            if (verified(t, len + alen) != expect)
                fail_msg("%s added %s: expected %d verified", added[a], where ? "below" : "above", expect);
            free(t);
        }
    free(hdrs);
    free(sm);
    queue_dkim_free(d);
}

/* ------------------------------------------------------------------ keys */
static void test_key_writable_by_everyone_refused(void **state)
{
    (void)state;
    char err[512];
    chmod(ed_pem, 0602);
    struct pm_dkim_key k = entry("example.test", "e1", ed_pem, 5);
    struct pm_config cfg = {.path = "edges.conf", .dkim = {.v = &k, .n = 1}};
    struct dkim_signer *d = queue_dkim_load(&cfg, err, sizeof err);
    chmod(ed_pem, 0600);
    assert_null(d);
    assert_non_null(strstr(err, "edges.conf:5: ")), assert_non_null(strstr(err, "writable by everyone"));
    /* a symlink is followed (a Kubernetes Secret volume is made of them), and the file it
     * leads to is what is checked: world-writable behind a link is refused too */
    char link_path[160];
    snprintf(link_path, sizeof link_path, "%s/link.pem", root);
    assert_int_equal(symlink(ed_pem, link_path), 0);
    k.key = link_path;
    d = queue_dkim_load(&cfg, err, sizeof err);
    assert_non_null(d);
    queue_dkim_free(d);
    chmod(ed_pem, 0602);
    assert_null(queue_dkim_load(&cfg, err, sizeof err));
    chmod(ed_pem, 0600);
    assert_non_null(strstr(err, "writable by everyone"));
    /* an encrypted key: refused with the reason, no passphrase asked for (OpenSSL's default
     * callback reads one from the terminal: the queue hung there before) */
    char enc[160];
    snprintf(enc, sizeof enc, "%s/enc.pem", root);
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    int fd = open(enc, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    FILE *f = fdopen(fd, "w");
    assert_true(PEM_write_PrivateKey(f, ed, EVP_aes_256_cbc(), NULL, 0, NULL, (void *)"secret"));
    fclose(f);
    EVP_PKEY_free(ed);
    k.key = enc;
    assert_null(queue_dkim_load(&cfg, err, sizeof err));
    assert_non_null(strstr(err, "is encrypted"));
}

/* ------------------------------------------------------------------ the pool */
static Postmesh__BusMessage *submission(const char *msg)
{
    Postmesh__BusMessage *bm = malloc(sizeof *bm);
    postmesh__bus_message__init(bm);
    bm->body_case = POSTMESH__BUS_MESSAGE__BODY_SUBMIT;
    bm->submit = malloc(sizeof *bm->submit);
    postmesh__submit__init(bm->submit);
    bm->submit->originating = 1;
    bm->submit->body.len = strlen(msg);
    bm->submit->body.data = malloc(strlen(msg));
    memcpy(bm->submit->body.data, msg, strlen(msg));
    return bm;
}

static void count_done(void *arg, Postmesh__BusMessage *bm, const uint8_t *peer, size_t peerlen,
                       const struct dkim_outcome *o)
{
    (void)peer, (void)peerlen;
    int *n = arg;
    *n += o->state == DKIM_SIGNED;
    postmesh__bus_message__free_unpacked(bm, NULL);
}

/* The queue stops (SIGTERM) with the pool full and its threads busy: some submissions given
 * back, some still in the pool, some being signed. pool_free joins the threads and frees what
 * is left, unanswered; ASan/LSan see no leak and no use after free. Ten rounds. */
static void test_pool_freed_while_busy(void **state)
{
    (void)state;
    char err[512];
    struct dkim_signer *d = load2("example.test", err, sizeof err);
    assert_non_null(d);
    for (int round = 0; round < 10; round++) {
        struct event_base *base = event_base_new();
        int done = 0;
        struct dkim_pool *p = queue_dkim_pool_new(base, d, 4, 64, count_done, &done);
        assert_non_null(p);
        int taken = 0;
        for (int i = 0; i < 100; i++) {
            Postmesh__BusMessage *bm = submission(F "Subject: pool\r\n\r\nbody\r\n");
            if (queue_dkim_pool_take(p, bm, (const uint8_t *)"peer", 4))
                taken++;
            else
                postmesh__bus_message__free_unpacked(bm, NULL); /* full: the caller signs inline */
            if (i == 50)
                event_base_loop(base, EVLOOP_NONBLOCK); /* some are given back mid-way */
        }
        assert_true(taken >= 64 && taken <= 100);
        if (round % 2)
            event_base_loop(base, EVLOOP_NONBLOCK);
        queue_dkim_pool_free(p);
        assert_true(done <= taken);
        event_base_free(base);
    }
    queue_dkim_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_from_signed_forms),
        cmocka_unit_test(test_from_ambiguous_forms_not_signed),
        cmocka_unit_test(test_canonicalization_table),
        cmocka_unit_test(test_bad_header_syntax_not_signed),
        cmocka_unit_test(test_duplicates_bottom_up_and_oversigned_from),
        cmocka_unit_test(test_key_writable_by_everyone_refused),
        cmocka_unit_test(test_pool_freed_while_busy),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
