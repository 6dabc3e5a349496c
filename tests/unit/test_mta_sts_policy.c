/* MTA-STS text formats (mta/sts_policy.c): the TXT record (RFC 8461 3.1), the policy body
 * (3.2), MX matching (4.1); and the policy store (mta/sts_cache.c): a policy put survives a
 * reopen (an mta restart), expires with its max_age, and a broken or foreign file is dropped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mta/sts_cache.h"
#include "mta/sts_policy.h"

/* ------------------------------------------------------------------ TXT */
static int txt1(const char *t, char id[33])
{
    const char *texts[] = {t};
    char why[200];
    return mta_sts_txt_parse(texts, 1, id, why, sizeof why);
}

static void test_txt_valid(void **state)
{
    (void)state;
    char id[33];
    assert_int_equal(txt1("v=STSv1; id=20160831085700Z;", id), 1);
    assert_string_equal(id, "20160831085700Z");
    assert_int_equal(txt1("v=STSv1; id=abc", id), 1); /* the last ';' is optional */
    assert_string_equal(id, "abc");
    assert_int_equal(txt1("v=STSv1;id=a1", id), 1);
    assert_int_equal(txt1("v=STSv1 ;\tid=a1 ; ext_1=x:y ;", id), 1);
    assert_string_equal(id, "a1");
    assert_int_equal(txt1("v=STSv1; foo=bar; id=Z9", id), 1); /* extensions before id */
    assert_string_equal(id, "Z9");
    assert_int_equal(txt1("v=STSv1; id=first; id=second", id), 1); /* the first instance counts */
    assert_string_equal(id, "first");
    assert_int_equal(txt1("v=STSv1; id=12345678901234567890123456789012", id), 1); /* 32 */
}

static void test_txt_invalid(void **state)
{
    (void)state;
    char id[33];
    assert_int_equal(txt1("v=STSv1;", id), -1);                                 /* no field */
    assert_int_equal(txt1("v=STSv1; foo=bar", id), -1);                         /* no id */
    assert_int_equal(txt1("v=STSv1; id=", id), -1);                             /* empty */
    assert_int_equal(txt1("v=STSv1; id=123456789012345678901234567890123", id), -1); /* 33 */
    assert_int_equal(txt1("v=STSv1; id=a-b", id), -1);                          /* not alphanumeric */
    assert_int_equal(txt1("v=STSv1; id=a b", id), -1);
    assert_int_equal(txt1("v=STSv1; =x; id=a", id), -1);
    assert_int_equal(txt1("v=STSv1; _x=1; id=a", id), -1); /* a name starts alphanumeric */
    assert_int_equal(txt1("v=STSv1; id=a;;", id), -1);
    assert_int_equal(txt1("v=STSv1; x=a=b; id=a", id), -1);
    assert_string_equal(id, "");
}

static void test_txt_selection(void **state)
{
    (void)state;
    char id[33], why[200];
    /* Not ours: skipped. */
    const char *other[] = {"v=spf1 -all", "v=STSv10; id=x", "v=STSv1 id=x", "V=STSv1; id=x"};
    assert_int_equal(mta_sts_txt_parse(other, 4, id, why, sizeof why), 0);
    assert_int_equal(mta_sts_txt_parse(NULL, 0, id, why, sizeof why), 0);
    const char *mixed[] = {"v=spf1 -all", "v=STSv1; id=one"};
    assert_int_equal(mta_sts_txt_parse(mixed, 2, id, why, sizeof why), 1);
    assert_string_equal(id, "one");
    /* Two of ours: none usable (3.1). */
    const char *two[] = {"v=STSv1; id=one", "v=STSv1; id=two"};
    assert_int_equal(mta_sts_txt_parse(two, 2, id, why, sizeof why), -1);
    assert_non_null(strstr(why, "2 v=STSv1"));
}

/* ------------------------------------------------------------------ policy */
static int parse(const char *body, struct mta_sts_policy *p, char *why)
{
    memset(p, 0, sizeof *p);
    return mta_sts_policy_parse(body, strlen(body), p, why, 200);
}

static void test_policy_rfc_example(void **state)
{
    (void)state;
    struct mta_sts_policy p;
    char why[200];
    assert_int_equal(parse("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\n"
                           "mx: backupmx.example.com\r\nmax_age: 604800\r\n", &p, why), 0);
    assert_int_equal(p.mode, MTA_STS_MODE_ENFORCE);
    assert_int_equal(p.max_age, 604800);
    assert_int_equal(p.nmx, 3);
    assert_string_equal(p.mx[0], "mail.example.com");
    assert_string_equal(p.mx[1], "*.example.net");
    assert_string_equal(p.mx[2], "backupmx.example.com");
}

static void test_policy_lenient_forms(void **state)
{
    (void)state;
    struct mta_sts_policy p;
    char why[200];
    /* LF lines, no last newline, blank lines, trailing blanks, any order, extensions, case of mx */
    assert_int_equal(parse("mx: MX1.Example.COM.\n\nmax_age:86400  \nfoo.bar-1: some value\nmode: testing\n"
                           "version: STSv1", &p, why), 0);
    assert_int_equal(p.mode, MTA_STS_MODE_TESTING);
    assert_int_equal(p.max_age, 86400);
    assert_int_equal(p.nmx, 1);
    assert_string_equal(p.mx[0], "mx1.example.com");
    /* Repeated fields other than mx: the first counts. */
    assert_int_equal(parse("version: STSv1\nmode: testing\nmode: enforce\nmax_age: 5\nmax_age: 9\nmx: a.test\n", &p, why), 0);
    assert_int_equal(p.mode, MTA_STS_MODE_TESTING);
    assert_int_equal(p.max_age, 5);
    /* none needs no mx; max_age above a year is a year */
    assert_int_equal(parse("version: STSv1\nmode: none\nmax_age: 9999999999\n", &p, why), 0);
    assert_int_equal(p.mode, MTA_STS_MODE_NONE);
    assert_int_equal(p.max_age, MTA_STS_MAX_AGE_LIMIT);
    assert_int_equal(p.nmx, 0);
    /* UTF-8 in an extension value is allowed */
    assert_int_equal(parse("version: STSv1\nmode: none\nmax_age: 0\nnote: gr\xc3\xbc\xc3\x9f" "e\n", &p, why), 0);
    assert_int_equal(p.max_age, 0);
}

static void test_policy_invalid(void **state)
{
    (void)state;
    struct mta_sts_policy p;
    char why[200];
    static const char *bad[] = {
        "",                                                           /* nothing */
        "mode: enforce\nmax_age: 1\nmx: a.test\n",                     /* no version */
        "version: STSv2\nmode: enforce\nmax_age: 1\nmx: a.test\n",     /* other version */
        "version: stsv1\nmode: enforce\nmax_age: 1\nmx: a.test\n",     /* values are case-sensitive */
        "version: STSv1\nmax_age: 1\nmx: a.test\n",                    /* no mode */
        "version: STSv1\nmode: Enforce\nmax_age: 1\nmx: a.test\n",
        "version: STSv1\nmode: enforce\nmx: a.test\n",                 /* no max_age */
        "version: STSv1\nmode: enforce\nmax_age: -1\nmx: a.test\n",
        "version: STSv1\nmode: enforce\nmax_age: 12345678901\nmx: a.test\n", /* 11 digits */
        "version: STSv1\nmode: enforce\nmax_age: 1 d\nmx: a.test\n",
        "version: STSv1\nmode: enforce\nmax_age: 1\n",                 /* enforce without mx */
        "version: STSv1\nmode: testing\nmax_age: 1\n",
        "version: STSv1\nmode: enforce\nmax_age: 1\nmx: *\n",
        "version: STSv1\nmode: enforce\nmax_age: 1\nmx: *.*.a.test\n",
        "version: STSv1\nmode: enforce\nmax_age: 1\nmx: a..test\n",
        "version: STSv1\nmode: enforce\nmax_age: 1\nmx: -a.test\n",
        "version: STSv1\nmode: enforce\nmax_age: 1\nmx: a_b.test\n",
        "version: STSv1\nmode: enforce\nmax_age: 1\nmx: a.test b.test\n",
        "version: STSv1\nmode: enforce\nmax_age: 1\nmx: a.test\ngarbage\n", /* not key: value */
        "version: STSv1\nmode: enforce\nmax_age: 1\nmx: a.test\n: x\n",
        "version: STSv1\nmode: enforce\nmax_age: 1\nmx: a.test\nx: a\x01" "b\n",
        "<html><body>It works!</body></html>\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        why[0] = '\0';
        if (parse(bad[i], &p, why) != -1)
            fail_msg("accepted: %s", bad[i]);
        assert_true(why[0] != '\0');
    }
    /* a NUL inside the body */
    static const char nul[] = "version: STSv1\nmode: none\nmax_age: 1\nx: a\0b\n";
    assert_int_equal(mta_sts_policy_parse(nul, sizeof nul - 1, &p, why, sizeof why), -1);
    /* too many mx */
    char big[8192] = "version: STSv1\nmode: enforce\nmax_age: 1\n";
    for (int i = 0; i <= MTA_STS_MAX_MX; i++)
        snprintf(big + strlen(big), sizeof big - strlen(big), "mx: mx%d.test\n", i);
    assert_int_equal(parse(big, &p, why), -1);
    /* a body above the limit, whatever it holds */
    assert_int_equal(mta_sts_policy_parse(big, MTA_STS_MAX_POLICY + 1, &p, why, sizeof why), -1);
}

static void test_mx_matching(void **state)
{
    (void)state;
    assert_true(mta_sts_pattern_matches("mail.example.com", "mail.example.com"));
    assert_true(mta_sts_pattern_matches("mail.example.com", "MAIL.Example.com."));
    assert_true(mta_sts_pattern_matches("*.example.net", "mx1.example.net"));
    assert_true(mta_sts_pattern_matches("*.example.net", "MX1.EXAMPLE.NET."));
    assert_false(mta_sts_pattern_matches("*.example.net", "example.net"));
    assert_false(mta_sts_pattern_matches("*.example.net", "a.b.example.net")); /* one label only */
    assert_false(mta_sts_pattern_matches("*.example.net", ".example.net"));
    assert_false(mta_sts_pattern_matches("*.example.net", "xexample.net"));
    assert_false(mta_sts_pattern_matches("mail.example.com", "mail.example.co"));
    assert_false(mta_sts_pattern_matches("mail.example.com", "evilmail.example.com"));
    assert_false(mta_sts_pattern_matches("mail.example.com", ""));
    assert_false(mta_sts_pattern_matches("", "mail.example.com"));
    struct mta_sts_policy p;
    char why[200];
    assert_int_equal(parse("version: STSv1\nmode: enforce\nmax_age: 1\nmx: a.test\nmx: *.b.test\n", &p, why), 0);
    assert_true(mta_sts_mx_matches(&p, "a.test"));
    assert_true(mta_sts_mx_matches(&p, "mx.b.test"));
    assert_false(mta_sts_mx_matches(&p, "b.test"));
    assert_false(mta_sts_mx_matches(&p, "mx.a.test"));
    assert_false(mta_sts_mx_matches(NULL, "a.test"));
}

/* ------------------------------------------------------------------ the store */
struct tmp {
    char dir[64];
    char sts[80];
};

static int tmp_setup(void **state)
{
    struct tmp *t = calloc(1, sizeof *t);
    /* tmpfs where there is one: hundreds of fsyncs cost nothing there */
    snprintf(t->dir, sizeof t->dir, "%s/sts-unit-XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (!mkdtemp(t->dir))
        return -1;
    snprintf(t->sts, sizeof t->sts, "%s/sts", t->dir);
    *state = t;
    return 0;
}

static int tmp_teardown(void **state)
{
    struct tmp *t = *state;
    DIR *d = opendir(t->sts);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        char p[400];
        snprintf(p, sizeof p, "%s/%s", t->sts, de->d_name);
        if (de->d_name[0] != '.' || strlen(de->d_name) > 2)
            unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(t->sts);
    rmdir(t->dir);
    free(t);
    return 0;
}

static const char body[] = "version: STSv1\r\nmode: enforce\r\nmx: mx.a.test\r\nmax_age: 1000\r\n";

static void put_one(struct mta_sts_cache *c, const char *domain, const char *id, uint64_t fetched)
{
    struct mta_sts_policy p;
    char why[200];
    memset(&p, 0, sizeof p);
    assert_int_equal(mta_sts_policy_parse(body, sizeof body - 1, &p, why, sizeof why), 0);
    snprintf(p.id, sizeof p.id, "%s", id);
    assert_int_equal(mta_sts_cache_put(c, domain, &p, body, sizeof body - 1, fetched), 0);
}

static void test_cache_survives_reopen(void **state)
{
    struct tmp *t = *state;
    struct mta_sts_cache *c = mta_sts_cache_open(t->sts, 5000);
    assert_non_null(c);
    assert_null(mta_sts_cache_get(c, "a.test", 5000));
    put_one(c, "a.test", "id1", 5000);
    const struct mta_sts_policy *p = mta_sts_cache_get(c, "a.test", 5001);
    assert_non_null(p);
    assert_string_equal(p->id, "id1");
    assert_int_equal(p->expires, 6000);
    mta_sts_cache_free(c);

    c = mta_sts_cache_open(t->sts, 5500); /* a restart */
    assert_int_equal(mta_sts_cache_count(c), 1);
    p = mta_sts_cache_get(c, "a.test", 5500);
    assert_non_null(p);
    assert_string_equal(p->id, "id1");
    assert_int_equal(p->mode, MTA_STS_MODE_ENFORCE);
    assert_string_equal(p->mx[0], "mx.a.test");
    assert_string_equal(p->text, body);
    /* A new id replaces it, on disk too. */
    put_one(c, "a.test", "id2", 5600);
    mta_sts_cache_free(c);
    c = mta_sts_cache_open(t->sts, 5700);
    assert_string_equal(mta_sts_cache_get(c, "a.test", 5700)->id, "id2");
    /* max_age: gone at fetched + max_age, its file too. */
    assert_null(mta_sts_cache_get(c, "a.test", 6600));
    mta_sts_cache_free(c);
    char path[200];
    snprintf(path, sizeof path, "%s/a.test", t->sts);
    assert_int_equal(access(path, F_OK), -1);
    /* A policy of max_age 0 is not kept, and removes the one before it. */
    c = mta_sts_cache_open(t->sts, 7000);
    put_one(c, "a.test", "id3", 7000);
    assert_int_equal(access(path, F_OK), 0);
    static const char zero[] = "version: STSv1\nmode: enforce\nmx: mx.a.test\nmax_age: 0\n";
    struct mta_sts_policy p0;
    char why[200];
    memset(&p0, 0, sizeof p0);
    assert_int_equal(mta_sts_policy_parse(zero, sizeof zero - 1, &p0, why, sizeof why), 0);
    assert_int_equal(mta_sts_cache_put(c, "a.test", &p0, zero, sizeof zero - 1, 7001), 0);
    assert_null(mta_sts_cache_get(c, "a.test", 7001));
    assert_int_equal(access(path, F_OK), -1);
    mta_sts_cache_free(c);
}

static void test_cache_drops_bad_files(void **state)
{
    struct tmp *t = *state;
    struct mta_sts_cache *c = mta_sts_cache_open(t->sts, 100);
    put_one(c, "good.test", "g", 100);
    mta_sts_cache_free(c);
    struct {
        const char *name, *text;
    } files[] = {
        {"junk.test", "not a policy file"},
        {"renamed.test", "postmesh-mta-sts 1\ndomain other.test\nid x\nfetched 100\nexpires 1100\n\nversion: STSv1\n"
                         "mode: none\nmax_age: 1000\n"}, /* another domain's file */
        {"longer.test", "postmesh-mta-sts 1\ndomain longer.test\nid x\nfetched 100\nexpires 99999\n\nversion: STSv1\n"
                        "mode: none\nmax_age: 1000\n"}, /* an expiry its max_age does not give */
        {"broken.test", "postmesh-mta-sts 1\ndomain broken.test\nid x\nfetched 100\nexpires 1100\n\nversion: STSv1\n"},
        {".tmp-good.test", "half a write"},
        {"UPPER", "x"},
    };
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char path[300];
        snprintf(path, sizeof path, "%s/%s", t->sts, files[i].name);
        FILE *f = fopen(path, "w");
        fputs(files[i].text, f);
        fclose(f);
    }
    c = mta_sts_cache_open(t->sts, 200);
    assert_int_equal(mta_sts_cache_count(c), 1);
    assert_non_null(mta_sts_cache_get(c, "good.test", 200));
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char path[300];
        snprintf(path, sizeof path, "%s/%s", t->sts, files[i].name);
        assert_int_equal(access(path, F_OK), -1);
    }
    /* Names that are no file name of ours are never looked at. */
    assert_null(mta_sts_cache_get(c, "../etc", 200));
    assert_null(mta_sts_cache_get(c, ".hidden", 200));
    assert_null(mta_sts_cache_get(c, "a/b", 200));
    mta_sts_cache_free(c);
}

static void test_cache_memory_bound(void **state)
{
    struct tmp *t = *state;
    struct mta_sts_cache *c = mta_sts_cache_open(t->sts, 10);
    char d[64];
    for (int i = 0; i < MTA_STS_CACHE_MEMORY + 20; i++) {
        snprintf(d, sizeof d, "d%d.test", i);
        put_one(c, d, "x", 10);
    }
    assert_int_equal(mta_sts_cache_count(c), MTA_STS_CACHE_MEMORY);
    /* The first ones left memory but are read back from disk. */
    assert_non_null(mta_sts_cache_get(c, "d0.test", 11));
    assert_int_equal(mta_sts_cache_count(c), MTA_STS_CACHE_MEMORY);
    mta_sts_cache_free(c);
    c = mta_sts_cache_open(t->sts, 11);
    assert_int_equal(mta_sts_cache_count(c), MTA_STS_CACHE_MEMORY);
    snprintf(d, sizeof d, "d%d.test", MTA_STS_CACHE_MEMORY + 19);
    assert_non_null(mta_sts_cache_get(c, d, 11));
    mta_sts_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_txt_valid),
        cmocka_unit_test(test_txt_invalid),
        cmocka_unit_test(test_txt_selection),
        cmocka_unit_test(test_policy_rfc_example),
        cmocka_unit_test(test_policy_lenient_forms),
        cmocka_unit_test(test_policy_invalid),
        cmocka_unit_test(test_mx_matching),
        cmocka_unit_test_setup_teardown(test_cache_survives_reopen, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_cache_drops_bad_files, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_cache_memory_bound, tmp_setup, tmp_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
