/* Trust anchor files (resolver.trust_anchors): DS and DNSKEY records in zone-file form are
 * read, anything else is refused with the file and the line named; and the TLSA/DNSSEC
 * bits of answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "trust_anchors.h"
#include "resolver/transport_unbound.h"

static char dir[] = "/tmp/pm-anchors-XXXXXX";

static const char *write_file(const char *name, const char *text)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int load(const char *path, struct pm_trust_anchors *a, char *err, size_t size)
{
    const char *paths[] = {path};
    return pm_trust_anchors_load(paths, 1, a, err, size);
}

static void test_ds_and_dnskey_with_comments_and_parentheses(void **state)
{
    (void)state;
    const char *p = write_file("ok.key", "; a comment\n$TTL 600\n"
                                         "sec.test.\tIN\tDS\t60086 13 2 "
                                         "327cdb7cf2631fbcdbb9fc3b3cbfea4c02931142e7a6496490f91aac2376b28b\n"
                                         "\n"
                                         ". IN DNSKEY ( 257 3 8 AwEAAaz/tAm8yTn4Mfeh5eyI96WSVexTBAvkMgJzkKTOiW1vkIbz\n"
                                         "  xeF3+/4RgWOq7HrxRixHlFlExOLAJr5emLvN7SWXgnLh4+B5xQlNVz8Og8kv ) ; keytag\n");
    struct pm_trust_anchors a = {0};
    char err[256] = "";
    assert_int_equal(load(p, &a, err, sizeof err), 0);
    assert_int_equal(a.n, 2);
    assert_non_null(strstr(a.v[0], "sec.test."));
    assert_non_null(strstr(a.v[0], "DS"));
    assert_null(strchr(a.v[0], '\n'));
    assert_non_null(strstr(a.v[1], "DNSKEY"));
    pm_trust_anchors_free(&a);
}

static void test_debian_root_key(void **state)
{
    (void)state;
    if (access("/usr/share/dns/root.key", R_OK) != 0)
        skip();
    struct pm_trust_anchors a = {0};
    char err[256] = "";
    assert_int_equal(load("/usr/share/dns/root.key", &a, err, sizeof err), 0);
    assert_true(a.n >= 1);
    pm_trust_anchors_free(&a);
}

static void test_refusals_name_file_and_line(void **state)
{
    (void)state;
    struct {
        const char *name, *text, *want;
    } cases[] = {
        {"a.key", "sec.test. IN DS 1 13 2 aa\nsec.test. IN A 127.0.0.1\n", "a.key:2: a A record is not a trust anchor"},
        {"garbage.key", "this is not a record\n", "garbage.key:"},
        {"empty.key", "; nothing\n", "empty.key: no DS or DNSKEY record"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *p = write_file(cases[i].name, cases[i].text);
        struct pm_trust_anchors a = {0};
        char err[256] = "";
        assert_int_equal(load(p, &a, err, sizeof err), -1);
        assert_non_null(strstr(err, cases[i].want));
        pm_trust_anchors_free(&a);
    }
    struct pm_trust_anchors a = {0};
    char err[256] = "";
    assert_int_equal(load("/nonexistent/anchor.key", &a, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/anchor.key: No such file"));
    assert_int_equal(load(dir, &a, err, sizeof err), -1); /* a directory */
    assert_non_null(strstr(err, "not a regular file"));
    pm_trust_anchors_free(&a);
}

static void test_too_many_anchors(void **state)
{
    (void)state;
    size_t size = (PM_MAX_TRUST_ANCHORS + 1) * 40 + 1;
    char *text = malloc(size), *p = text;
    assert_non_null(text);
    for (int i = 0; i <= PM_MAX_TRUST_ANCHORS; i++)
        p += sprintf(p, "t%d.test. IN DS %d 13 2 aabbccdd\n", i, i + 1);
    const char *path = write_file("many.key", text);
    free(text);
    struct pm_trust_anchors a = {0};
    char err[256] = "";
    assert_int_equal(load(path, &a, err, sizeof err), -1);
    assert_non_null(strstr(err, "more than"));
    pm_trust_anchors_free(&a);
}

static void test_forwarder_text(void **state)
{
    (void)state;
    struct resolver_ns ns;
    char out[96];
    assert_int_equal(resolver_ns_parse("127.0.0.1:5353", &ns), 0);
    assert_int_equal(resolver_unbound_fwd_text(&ns, out, sizeof out), 0);
    assert_string_equal(out, "127.0.0.1@5353");
    assert_int_equal(resolver_ns_parse("[::1]:53", &ns), 0);
    assert_int_equal(resolver_unbound_fwd_text(&ns, out, sizeof out), 0);
    assert_string_equal(out, "::1@53");
    assert_int_equal(resolver_ns_parse("192.0.2.1", &ns), 0);
    assert_int_equal(resolver_unbound_fwd_text(&ns, out, sizeof out), 0);
    assert_string_equal(out, "192.0.2.1@53");
    assert_int_equal(resolver_unbound_fwd_text(&ns, out, 5), -1); /* does not fit */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ds_and_dnskey_with_comments_and_parentheses),
        cmocka_unit_test(test_debian_root_key),
        cmocka_unit_test(test_refusals_name_file_and_line),
        cmocka_unit_test(test_too_many_anchors),
        cmocka_unit_test(test_forwarder_text),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
