/* pop3d's command table (services/pop3d/command_table.c): every verb's state rules in every
 * kind of session, CAPA made from the rows, and the parser reading names and argument counts
 * from them. A verb added to the table without a line here fails test_every_verb_has_rules.
 * The replies are the ones the two per-state switches gave before the table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "pop3d/command_table.h"

/* The kinds of session the rules tell apart. */
enum { V_AUTH, V_USER, V_TRANS, V_AUTH_TLS, V_TRANS_TLS, V_INSECURE, V_NO_PAIR, NVIEWS };
static const struct pop3_view views[NVIEWS] = {
    [V_AUTH] = {.state = POP3_S_AUTH, .tls = 0, .tls_pair = 1, .secure = 1}, /* plain, on loopback */
    [V_USER] = {.state = POP3_S_USER, .tls = 0, .tls_pair = 1, .secure = 1},
    [V_TRANS] = {.state = POP3_S_TRANS, .tls = 0, .tls_pair = 1, .secure = 1},
    [V_AUTH_TLS] = {.state = POP3_S_AUTH, .tls = 1, .tls_pair = 1, .secure = 1},
    [V_TRANS_TLS] = {.state = POP3_S_TRANS, .tls = 1, .tls_pair = 1, .secure = 1},
    [V_INSECURE] = {.state = POP3_S_AUTH, .tls = 0, .tls_pair = 1, .secure = 0}, /* plain, not loopback */
    [V_NO_PAIR] = {.state = POP3_S_AUTH, .tls = 0, .tls_pair = 0, .secure = 1},
};

#define OK NULL
#define BEFORE "-ERR not allowed before login"
#define AFTER "-ERR not allowed after login"
#define NO_USER "-ERR send USER first"
#define TLS_ON "-ERR TLS is already active"
#define NO_TLS "-ERR TLS is not available"
#define CLEAR "-ERR [AUTH] plaintext login requires TLS (use STLS)"

/* What the table answers (NULL: the handler runs; APOP's and AUTH's then refuse on their own). */
static const struct {
    const char *verb;
    const char *reply[NVIEWS]; /* AUTH USER TRANS AUTH_TLS TRANS_TLS INSECURE NO_PAIR */
} expect[] = {
    {"USER", {OK, OK, AFTER, OK, AFTER, CLEAR, OK}},
    {"PASS", {NO_USER, OK, AFTER, NO_USER, AFTER, NO_USER, NO_USER}},
    {"APOP", {OK, OK, AFTER, OK, AFTER, OK, OK}},
    {"AUTH", {OK, OK, AFTER, OK, AFTER, OK, OK}},
    {"STLS", {OK, OK, AFTER, TLS_ON, AFTER, OK, NO_TLS}},
    {"STAT", {BEFORE, BEFORE, OK, BEFORE, OK, BEFORE, BEFORE}},
    {"LIST", {BEFORE, BEFORE, OK, BEFORE, OK, BEFORE, BEFORE}},
    {"RETR", {BEFORE, BEFORE, OK, BEFORE, OK, BEFORE, BEFORE}},
    {"DELE", {BEFORE, BEFORE, OK, BEFORE, OK, BEFORE, BEFORE}},
    {"RSET", {BEFORE, BEFORE, OK, BEFORE, OK, BEFORE, BEFORE}},
    {"TOP", {BEFORE, BEFORE, OK, BEFORE, OK, BEFORE, BEFORE}},
    {"UIDL", {BEFORE, BEFORE, OK, BEFORE, OK, BEFORE, BEFORE}},
    {"NOOP", {OK, OK, OK, OK, OK, OK, OK}},
    {"CAPA", {OK, OK, OK, OK, OK, OK, OK}},
    {"QUIT", {OK, OK, OK, OK, OK, OK, OK}},
};
#define NEXPECT (sizeof expect / sizeof expect[0])

static void test_every_verb_has_rules(void **state)
{
    (void)state;
    assert_int_equal(pop3_ncommands, NEXPECT); /* no line here for a verb that is gone */
    for (size_t i = 0; i < pop3_ncommands; i++) {
        const struct pop3_command_row *row = &pop3_commands[i];
        size_t e = 0;
        while (e < NEXPECT && strcmp(expect[e].verb, row->name) != 0)
            e++;
        if (e == NEXPECT)
            fail_msg("verb %s has no state rules in this test", row->name);
        assert_non_null(row->handler);
        for (int v = 0; v < NVIEWS; v++) {
            const char *got = pop3_command_refusal(row, &views[v]), *want = expect[e].reply[v];
            if (!want ? got != NULL : !got || strcmp(got, want) != 0)
                fail_msg("%s in view %d: got \"%s\", want \"%s\"", row->name, v, got ? got : "(runs)",
                         want ? want : "(runs)");
        }
    }
}

struct lines {
    char text[32][64];
    int n;
};

static void collect(void *arg, const char *text)
{
    struct lines *l = arg;
    assert_true(l->n < 32);
    snprintf(l->text[l->n++], sizeof l->text[0], "%s", text);
}

#define SERVER "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "IMPLEMENTATION Postmesh"

static void assert_capa(int view, const char *const *want)
{
    struct lines got = {.n = 0};
    pop3_capa_lines(&views[view], collect, &got);
    int n = 0;
    for (; want[n]; n++) {
        if (n >= got.n)
            fail_msg("view %d: CAPA ends before %s", view, want[n]);
        if (strcmp(got.text[n], want[n]) != 0)
            fail_msg("view %d: CAPA line %d is %s, want %s", view, n, got.text[n], want[n]);
    }
    assert_int_equal(got.n, n);
}

/* A verb's capability is listed while the session can still use it: TOP and UIDL before
 * login too, USER and SASL only where a password may be sent, STLS only in the clear with a
 * TLS pair, nothing of AUTHORIZATION after login. */
static void test_capa_from_the_table(void **state)
{
    (void)state;
    assert_capa(V_AUTH, (const char *const[]){"USER", "SASL PLAIN", "STLS", "TOP", "UIDL", SERVER, NULL});
    assert_capa(V_USER, (const char *const[]){"USER", "SASL PLAIN", "STLS", "TOP", "UIDL", SERVER, NULL});
    assert_capa(V_AUTH_TLS, (const char *const[]){"USER", "SASL PLAIN", "TOP", "UIDL", SERVER, NULL});
    assert_capa(V_INSECURE, (const char *const[]){"STLS", "TOP", "UIDL", SERVER, NULL});
    assert_capa(V_NO_PAIR, (const char *const[]){"USER", "SASL PLAIN", "TOP", "UIDL", SERVER, NULL});
    assert_capa(V_TRANS, (const char *const[]){"TOP", "UIDL", SERVER, NULL});
    assert_capa(V_TRANS_TLS, (const char *const[]){"TOP", "UIDL", SERVER, NULL});
    /* Every line but the server's is a row's: a row's capa is what CAPA shows. */
    for (size_t i = 0; i < pop3_ncommands; i++) {
        if (!pop3_commands[i].capa)
            continue;
        struct lines got = {.n = 0};
        pop3_capa_lines(&views[V_AUTH], collect, &got);
        int found = 0;
        for (int k = 0; k < got.n; k++)
            found |= strcmp(got.text[k], pop3_commands[i].capa) == 0;
        assert_true(found);
    }
}

/* The parser takes each keyword and its argument counts from the row. */
static void test_parser_reads_the_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < pop3_ncommands; i++) {
        const struct pop3_command_row *row = &pop3_commands[i];
        char line[64], lower[8];
        struct pop3_command c;
        size_t n = strlen(row->name);
        for (size_t k = 0; k <= n; k++)
            lower[k] = (char)tolower((unsigned char)row->name[k]);
        snprintf(line, sizeof line, "%s", lower);
        for (int a = 0; a < row->min_args; a++)
            strcat(line, " 1");
        assert_int_equal(pop3_parse_command(line, strlen(line), &c), POP3_PARSE_OK);
        assert_int_equal(c.verb, row->verb);
        assert_ptr_equal(c.row, row);
        assert_int_equal(c.argc, row->min_args);
        if (row->flags & POP3_F_ARG_REST)
            continue; /* PASS: the rest of the line is one argument */
        snprintf(line, sizeof line, "%s", row->name);
        for (int a = 0; a <= row->max_args; a++)
            strcat(line, " 1");
        assert_int_equal(pop3_parse_command(line, strlen(line), &c), POP3_PARSE_SYNTAX);
        if (row->min_args > 0) {
            assert_int_equal(pop3_parse_command(row->name, n, &c), POP3_PARSE_SYNTAX);
        }
    }
    assert_null(pop3_command_find("STA", 3));
    assert_int_equal(pop3_command_find("uidl", 4)->verb, POP3_UIDL);
    assert_string_equal(pop3_verb_name(POP3_TOP), "TOP");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_verb_has_rules),
        cmocka_unit_test(test_capa_from_the_table),
        cmocka_unit_test(test_parser_reads_the_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
