/* POP3 command parser: keywords, argument counts and limits, hostile bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "pop3d/command.h"

static int parse(const char *line, struct pop3_command *cmd) { return pop3_parse_command(line, strlen(line), cmd); }

static void test_keywords_case_insensitive(void **state)
{
    (void)state;
    struct pop3_command c;
    assert_int_equal(parse("stat", &c), POP3_PARSE_OK);
    assert_int_equal(c.verb, POP3_STAT);
    assert_int_equal(parse("Quit", &c), POP3_PARSE_OK);
    assert_int_equal(c.verb, POP3_QUIT);
    assert_int_equal(parse("TOP 1 10", &c), POP3_PARSE_OK);
    assert_int_equal(c.verb, POP3_TOP);
    assert_int_equal(c.argc, 2);
    assert_string_equal(c.argv[0], "1");
    assert_string_equal(c.argv[1], "10");
    assert_int_equal(parse("CAPA", &c), POP3_PARSE_OK);
    assert_int_equal(parse("STLS", &c), POP3_PARSE_OK);
    assert_int_equal(c.verb, POP3_STLS);
}

static void test_unknown_and_empty(void **state)
{
    (void)state;
    struct pop3_command c;
    assert_int_equal(parse("", &c), POP3_PARSE_EMPTY);
    assert_int_equal(parse("XYZZY", &c), POP3_PARSE_UNKNOWN);
    assert_int_equal(parse("RETRX 1", &c), POP3_PARSE_UNKNOWN);
    assert_int_equal(parse("RE", &c), POP3_PARSE_UNKNOWN);
    assert_int_equal(parse(" STAT", &c), POP3_PARSE_UNKNOWN);
    assert_int_equal(parse("HELO x", &c), POP3_PARSE_UNKNOWN);
}

static void test_argument_counts(void **state)
{
    (void)state;
    struct pop3_command c;
    assert_int_equal(parse("STAT 1", &c), POP3_PARSE_SYNTAX);
    assert_int_equal(parse("RETR", &c), POP3_PARSE_SYNTAX);
    assert_int_equal(parse("RETR 1 2", &c), POP3_PARSE_SYNTAX);
    assert_int_equal(parse("TOP 1", &c), POP3_PARSE_SYNTAX);
    assert_int_equal(parse("LIST", &c), POP3_PARSE_OK);
    assert_int_equal(c.argc, 0);
    assert_int_equal(parse("LIST 3", &c), POP3_PARSE_OK);
    assert_int_equal(c.argc, 1);
    assert_int_equal(parse("UIDL 1 2", &c), POP3_PARSE_SYNTAX);
    assert_int_equal(parse("USER", &c), POP3_PARSE_SYNTAX);
    assert_int_equal(parse("USER a b", &c), POP3_PARSE_SYNTAX);
    assert_int_equal(parse("DELE 1 ", &c), POP3_PARSE_OK); /* trailing space tolerated */
    assert_int_equal(parse("AUTH", &c), POP3_PARSE_OK);
    assert_int_equal(parse("AUTH PLAIN AGFsaWNlAHNlY3JldA==", &c), POP3_PARSE_OK);
    assert_int_equal(c.argc, 2);
    assert_string_equal(c.argv[1], "AGFsaWNlAHNlY3JldA==");
    assert_int_equal(parse("STATUS", &c), POP3_PARSE_UNKNOWN);
}

static void test_pass_keeps_spaces(void **state)
{
    (void)state;
    struct pop3_command c;
    assert_int_equal(parse("PASS my secret  pass ", &c), POP3_PARSE_OK);
    assert_int_equal(c.verb, POP3_PASS);
    assert_string_equal(c.argv[0], "my secret  pass ");
    assert_int_equal(parse("PASS", &c), POP3_PARSE_SYNTAX);
    assert_int_equal(parse("PASS ", &c), POP3_PARSE_SYNTAX);
    char line[400] = "PASS ";
    memset(line + 5, 'x', 300);
    line[305] = '\0';
    assert_int_equal(parse(line, &c), POP3_PARSE_SYNTAX);
}

static void test_argument_length_limits(void **state)
{
    (void)state;
    struct pop3_command c;
    char line[400] = "RETR ";
    memset(line + 5, '1', 41);
    line[46] = '\0';
    assert_int_equal(parse(line, &c), POP3_PARSE_SYNTAX);
    line[45] = '\0'; /* 40 characters is fine for the parser (the number is checked later) */
    assert_int_equal(parse(line, &c), POP3_PARSE_OK);
    /* USER takes a full address */
    char user[300] = "USER ";
    memset(user + 5, 'a', 100);
    strcpy(user + 105, "@example.test");
    assert_int_equal(parse(user, &c), POP3_PARSE_OK);
    assert_int_equal(strlen(c.argv[0]), 113);
}

static void test_control_bytes_refused(void **state)
{
    (void)state;
    struct pop3_command c;
    assert_int_equal(pop3_parse_command("STAT\0X", 6, &c), POP3_PARSE_BAD_BYTES);
    assert_int_equal(parse("RETR 1\r", &c), POP3_PARSE_BAD_BYTES);
    assert_int_equal(parse("USER a\x1b[2J", &c), POP3_PARSE_BAD_BYTES);
    assert_int_equal(parse("PASS a\x7f", &c), POP3_PARSE_BAD_BYTES);
}

static void test_numbers(void **state)
{
    (void)state;
    assert_int_equal(pop3_parse_msgnum("1", 5), 1);
    assert_int_equal(pop3_parse_msgnum("5", 5), 5);
    assert_int_equal(pop3_parse_msgnum("6", 5), 0);
    assert_int_equal(pop3_parse_msgnum("0", 5), 0);
    assert_int_equal(pop3_parse_msgnum("-1", 5), 0);
    assert_int_equal(pop3_parse_msgnum("+1", 5), 0);
    assert_int_equal(pop3_parse_msgnum("1x", 5), 0);
    assert_int_equal(pop3_parse_msgnum("", 5), 0);
    assert_int_equal(pop3_parse_msgnum("99999999999999999999", 5), 0);
    unsigned long v;
    assert_int_equal(pop3_parse_count("0", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(pop3_parse_count("123456789", &v), 0);
    assert_int_equal(v, 123456789);
    assert_int_equal(pop3_parse_count("1234567890", &v), -1);
    assert_int_equal(pop3_parse_count(" 1", &v), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keywords_case_insensitive), cmocka_unit_test(test_unknown_and_empty),
        cmocka_unit_test(test_argument_counts),           cmocka_unit_test(test_pass_keeps_spaces),
        cmocka_unit_test(test_argument_length_limits),    cmocka_unit_test(test_control_bytes_refused),
        cmocka_unit_test(test_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
