/* The CLI's JSON strings (services/cli/json.c): input bytes -> the exact JSON text. Whatever
 * came from the network, the output must be one valid JSON string in valid UTF-8. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/json.h"

static char *render(const char *s, size_t len)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    assert_non_null(f);
    cli_json_mem(f, s, len);
    fclose(f);
    return buf;
}

static const struct {
    const char *in;
    size_t len; /* 0: strlen */
    const char *out;
} cases[] = {
    {"alice@example.test", 0, "\"alice@example.test\""},
    {"", 0, "\"\""},
    {"say \"hi\" \\ bye", 0, "\"say \\\"hi\\\" \\\\ bye\""},
    {"a\r\nb\tc", 0, "\"a\\r\\nb\\tc\""},
    {"\x01\x1f\x7f", 0, "\"\\u0001\\u001f\\u007f\""},
    {"nul\0in", 6, "\"nul\\u0000in\""},
    {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 0, "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\""},
    {"bad \xff", 0, "\"bad \\u00ff\""},
    {"overlong \xc0\xaf", 0, "\"overlong \\u00c0\\u00af\""},
    {"surrogate \xed\xa0\x80", 0, "\"surrogate \\u00ed\\u00a0\\u0080\""},
    {"cut \xe2\x82", 0, "\"cut \\u00e2\\u0082\""},
    {"too big \xf4\x90\x80\x80", 0, "\"too big \\u00f4\\u0090\\u0080\\u0080\""},
};

static void test_strings_escaped_exactly(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = render(cases[i].in, cases[i].len ? cases[i].len : strlen(cases[i].in));
        if (strcmp(got, cases[i].out) != 0)
            fail_msg("case %zu: got %s, want %s", i, got, cases[i].out);
        free(got);
    }
}

static void test_null_is_empty_string(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    cli_json_string(f, NULL);
    fclose(f);
    assert_string_equal(buf, "\"\"");
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strings_escaped_exactly),
        cmocka_unit_test(test_null_is_empty_string),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
