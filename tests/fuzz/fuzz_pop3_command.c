/* POP3 command lines (pop3d/command.c): every '\n'-separated line of the input, without its
 * CR, as the session passes it, then the number parsers on each argument as RETR/DELE/TOP/
 * LIST use them. Checks the parser's bounds: arguments NUL-terminated within their limits,
 * the argument count the verb allows, numbers in range. */
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "pop3d/command.h"

static void one_line(const char *line, size_t len, void *arg)
{
    (void)arg;
    if (len && line[len - 1] == '\r')
        len--;
    if (len > POP3_MAX_AUTH_LINE)
        return; /* the session refuses longer lines before parsing */
    char *copy = malloc(len ? len : 1); /* exact size: an over-read is an ASan report */
    memcpy(copy, line, len);
    struct pop3_command cmd;
    int rc = pop3_parse_command(copy, len, &cmd);
    FUZZ_CHECK(rc >= POP3_PARSE_OK && rc <= POP3_PARSE_BAD_BYTES);
    FUZZ_CHECK(pop3_verb_name(cmd.verb) != NULL);
    if (rc == POP3_PARSE_OK) {
        FUZZ_CHECK(cmd.verb != POP3_UNKNOWN);
        FUZZ_CHECK(cmd.argc >= 0 && cmd.argc <= 2);
        for (int i = 0; i < cmd.argc; i++) {
            size_t n = strnlen(cmd.argv[i], sizeof cmd.argv[i]);
            FUZZ_CHECK(n < sizeof cmd.argv[i]);
            FUZZ_CHECK(n <= (cmd.verb == POP3_PASS || cmd.verb == POP3_AUTH || cmd.verb == POP3_USER ? POP3_MAX_PASS
                                                                                                 : POP3_MAX_ARG));
            if (cmd.verb != POP3_PASS)
                FUZZ_CHECK(n > 0 && !memchr(cmd.argv[i], ' ', n));
            unsigned long count = 0;
            if (pop3_parse_count(cmd.argv[i], &count) == 0)
                FUZZ_CHECK(count <= 999999999UL);
            unsigned long num = pop3_parse_msgnum(cmd.argv[i], 1000);
            FUZZ_CHECK(num <= 1000);
        }
        for (int i = cmd.argc; i < 2; i++)
            FUZZ_CHECK(cmd.argv[i][0] == '\0');
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_lines(data, size, one_line, NULL);
    return 0;
}
