/* pm_log (common/log.c): one line per call; a line longer than the buffer is cut back to its
 * last whole token and marked ` truncated=1`, never left inside a quoted value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define LINE_MAX_BYTES 4096 /* pm_log's buffer, newline included */

/* Runs pm_log with stderr sent to a temporary file; returns what was written (malloc'd). */
static char *logged(const char *fmt, const char *arg)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(f), STDERR_FILENO) >= 0);
    pm_log(PM_INFO, fmt, arg);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    long size = ftell(f);
    assert_true(size > 0);
    char *out = calloc(1, (size_t)size + 1);
    assert_non_null(out);
    rewind(f);
    assert_int_equal(fread(out, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    return out;
}

/* The line's tokens as the integration tests read them: key=value, the value bare or quoted
 * with backslash escapes. Fails on a stray token or an unterminated quote; returns the
 * number of tokens. */
static int check_logfmt(const char *line)
{
    int tokens = 0;
    const char *p = line;
    while (*p) {
        if (*p == ' ') {
            p++;
            continue;
        }
        const char *eq = p;
        while (*eq && *eq != '=' && *eq != ' ' && *eq != '"')
            eq++;
        if (*eq != '=' || eq == p)
            fail_msg("stray token at [%.40s]", p);
        p = eq + 1;
        if (*p == '"') {
            for (p++; *p && *p != '"'; p++)
                if (*p == '\\' && !*++p)
                    break;
            if (*p != '"')
                fail_msg("unterminated quote in [%s]", eq + 1);
            p++;
        } else {
            while (*p && *p != ' ' && *p != '"')
                p++;
        }
        if (*p && *p != ' ')
            fail_msg("no space after a value at [%.40s]", p);
        tokens++;
    }
    return tokens;
}

static void test_short_line_is_whole(void **state)
{
    (void)state;
    char v[PM_LOGV_SIZE];
    char *out = logged("event=x from=%s", PM_LOGV(v, "two words"));
    size_t len = strlen(out);
    assert_true(len > 0 && out[len - 1] == '\n');
    out[len - 1] = '\0';
    assert_non_null(strstr(out, " level=info event=x from=\"two words\""));
    assert_null(strstr(out, "truncated="));
    check_logfmt(out);
    free(out);
}

/* Many long quoted values, each with spaces and escaped quotes followed by spaces (a cut
 * that ignored the escapes would take the space after \" for one outside the quotes). */
static void test_long_line_cut_at_a_whole_token(void **state)
{
    (void)state;
    char raw[300], v[PM_LOGV_SIZE];
    for (size_t i = 0; i + 1 < sizeof raw; i++)
        raw[i] = i % 10 == 3 ? '"' : i % 10 == 4 ? ' ' : (char)('a' + i % 26);
    raw[sizeof raw - 1] = '\0';
    PM_LOGV(v, raw);
    assert_int_equal(v[0], '"');
    char *body = malloc(20 * (strlen(v) + 8) + 1);
    assert_non_null(body);
    size_t o = 0;
    for (int k = 0; k < 20; k++)
        o += (size_t)sprintf(body + o, "%sk%02d=%s", k ? " " : "", k, v);
    char *out = logged("event=long %s", body);
    size_t len = strlen(out);
    assert_true(len <= LINE_MAX_BYTES);
    assert_int_equal(out[len - 1], '\n');
    out[len - 1] = '\0';
    const char *mark = " truncated=1";
    assert_true(len - 1 > strlen(mark));
    assert_string_equal(out + len - 1 - strlen(mark), mark);
    assert_int_equal(strstr(out, "truncated="), out + len - strlen(mark));
    int tokens = check_logfmt(out);
    /* Whole tokens only, as many as fit: the header (ts svc pid level), event, the kept
     * values and the mark; the next value would not have fitted with the mark. */
    int kept = tokens - 4 - 1 - 1;
    assert_true(kept > 0 && kept < 20);
    char want[PM_LOGV_SIZE + 8];
    snprintf(want, sizeof want, " k%02d=%s", kept - 1, v);
    size_t before_mark = len - 1 - strlen(mark);
    assert_true(before_mark >= strlen(want));
    assert_memory_equal(out + before_mark - strlen(want), want, strlen(want));
    snprintf(want, sizeof want, " k%02d=%s", kept, v);
    assert_true(before_mark + strlen(want) + strlen(mark) + 1 > LINE_MAX_BYTES);
    free(body);
    free(out);
}

/* One value longer than the whole line: only the header and the mark are left. */
static void test_cut_before_a_value_longer_than_the_line(void **state)
{
    (void)state;
    char *big = malloc(6000);
    assert_non_null(big);
    big[0] = '"';
    memset(big + 1, 'x', 5997);
    memcpy(big + 1000, " y ", 3);
    big[5998] = '"';
    big[5999] = '\0';
    char *out = logged("event=big v=%s", big);
    size_t len = strlen(out);
    out[len - 1] = '\0';
    assert_int_equal(check_logfmt(out), 4 + 1 + 1);
    assert_non_null(strstr(out, " event=big truncated=1"));
    free(big);
    free(out);
}

int main(void)
{
    pm_log_init("test");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_short_line_is_whole),
        cmocka_unit_test(test_long_line_cut_at_a_whole_token),
        cmocka_unit_test(test_cut_before_a_value_longer_than_the_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
