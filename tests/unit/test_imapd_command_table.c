/* imapd's command table (services/imapd/command_table.h): which verb may run in which
 * state and session, with the exact refusal, and CAPABILITY as each state shows it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "imapd/command_table.h"

/* Sessions as the rules see them. */
static const struct imap_rules_view clear = {.state = IMAP_S_NOTAUTH, .tls = 0, .tls_pair = 1, .secure = 0};
static const struct imap_rules_view loopback = {.state = IMAP_S_NOTAUTH, .tls = 0, .tls_pair = 1, .secure = 1};
static const struct imap_rules_view no_pair = {.state = IMAP_S_NOTAUTH, .tls = 0, .tls_pair = 0, .secure = 0};
static const struct imap_rules_view tls = {.state = IMAP_S_NOTAUTH, .tls = 1, .tls_pair = 1, .secure = 1};
static const struct imap_rules_view authed = {.state = IMAP_S_AUTH, .tls = 1, .tls_pair = 1, .secure = 1};
static const struct imap_rules_view selected = {.state = IMAP_S_SELECTED, .tls = 1, .tls_pair = 1, .secure = 1};
static const struct imap_rules_view authed_clear = {.state = IMAP_S_AUTH, .tls = 0, .tls_pair = 1, .secure = 1};

static void test_find(void **state)
{
    (void)state;
    assert_non_null(imap_command_find("FETCH", 5));
    assert_ptr_equal(imap_command_find("fetch", 5), imap_command_find("FETCH", 5));
    assert_null(imap_command_find("FETC", 4));
    assert_null(imap_command_find("UID", 3));
    assert_null(imap_command_find("XYZZY", 5));
    /* every row has a handler and a name of its own */
    for (size_t i = 0; i < imap_ncommands; i++) {
        assert_non_null(imap_commands[i].handler);
        assert_ptr_equal(imap_command_find(imap_commands[i].name, strlen(imap_commands[i].name)), &imap_commands[i]);
        assert_true(imap_commands[i].states != 0);
    }
}

static void test_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *verb;
        int uid;
        const struct imap_rules_view *v;
        const char *status, *text; /* text NULL: allowed */
    } cases[] = {
        {"CAPABILITY", 0, &clear, NULL, NULL},
        {"NOOP", 0, &selected, NULL, NULL},
        {"LOGOUT", 0, &clear, NULL, NULL},
        {"ID", 0, &clear, NULL, NULL},
        {"STARTTLS", 0, &clear, NULL, NULL},
        {"STARTTLS", 0, &tls, "BAD", "TLS is already active"},
        {"STARTTLS", 0, &no_pair, "BAD", "TLS is not available"},
        {"STARTTLS", 0, &authed_clear, "BAD", "Already logged in"},
        {"LOGIN", 0, &clear, "NO", "[PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure connections"},
        {"AUTHENTICATE", 0, &clear, "NO",
         "[PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure connections"},
        {"LOGIN", 0, &loopback, NULL, NULL},
        {"LOGIN", 0, &tls, NULL, NULL},
        {"AUTHENTICATE", 0, &tls, NULL, NULL},
        {"LOGIN", 0, &authed, "BAD", "Already logged in"},
        {"AUTHENTICATE", 0, &selected, "BAD", "Already logged in"},
        {"SELECT", 0, &clear, "BAD", "Log in first"},
        {"SELECT", 0, &authed, NULL, NULL},
        {"SELECT", 0, &selected, NULL, NULL},
        {"ENABLE", 0, &tls, "BAD", "Log in first"},
        {"IDLE", 0, &tls, "BAD", "Log in first"},
        {"IDLE", 0, &authed, NULL, NULL},
        {"APPEND", 0, &authed, NULL, NULL},
        {"LIST", 0, &selected, NULL, NULL},
        {"FETCH", 0, &clear, "BAD", "Log in first"},
        {"FETCH", 0, &authed, "BAD", "No mailbox selected"},
        {"FETCH", 0, &selected, NULL, NULL},
        {"FETCH", 1, &selected, NULL, NULL},
        {"FETCH", 1, &authed, "BAD", "No mailbox selected"},
        {"EXPUNGE", 1, &selected, NULL, NULL},
        {"MOVE", 1, &selected, NULL, NULL},
        {"CLOSE", 0, &authed, "BAD", "No mailbox selected"},
        {"UNSELECT", 0, &selected, NULL, NULL},
        {"NOOP", 1, &selected, "BAD", "Unknown command"},
        {"SELECT", 1, &authed, "BAD", "Unknown command"},
        {"CHECK", 1, &selected, "BAD", "Unknown command"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct imap_command_row *row = imap_command_find(cases[i].verb, strlen(cases[i].verb));
        assert_non_null(row);
        const char *status = "?";
        const char *text = imap_command_refusal(row, cases[i].uid, cases[i].v, &status);
        if (!cases[i].text) {
            if (text)
                fail_msg("%s%s: refused (%s), want allowed", cases[i].uid ? "UID " : "", cases[i].verb, text);
            continue;
        }
        if (!text)
            fail_msg("%s%s: allowed, want %s", cases[i].uid ? "UID " : "", cases[i].verb, cases[i].text);
        assert_string_equal(text, cases[i].text);
        assert_string_equal(status, cases[i].status);
    }
}

/* The rows of FETCH, STORE, SEARCH hold expunges back (RFC 9051 §7.5.1); every UID form
 * is one of the six. */
static void test_flags(void **state)
{
    (void)state;
    const char *quiet[] = {"FETCH", "STORE", "SEARCH"};
    for (size_t i = 0; i < 3; i++)
        assert_true(imap_command_find(quiet[i], strlen(quiet[i]))->flags & IMAP_F_NO_EXPUNGE);
    size_t uid = 0;
    for (size_t i = 0; i < imap_ncommands; i++)
        uid += (imap_commands[i].flags & IMAP_F_UID) != 0;
    assert_int_equal(uid, 6);
    assert_true(imap_command_find("APPEND", 6)->flags & IMAP_F_APPEND);
    assert_true(imap_command_find("LOGOUT", 6)->flags & IMAP_F_NO_UPDATES);
}

static int has_word(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; (p = strstr(p, word)); p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
            return 1;
    return 0;
}

static void test_capabilities(void **state)
{
    (void)state;
    static const char *const always[] = {"IMAP4rev1", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE", "NAMESPACE",
                                         "UIDPLUS", "MOVE", "UNSELECT", "SPECIAL-USE", "LIST-EXTENDED",
                                         "LIST-STATUS", "CHILDREN"};
    static const struct {
        const struct imap_rules_view *v;
        int starttls, auth, logindisabled;
    } cases[] = {
        {&clear, 1, 0, 1},   {&loopback, 1, 1, 0}, {&no_pair, 0, 0, 1}, {&tls, 0, 1, 0},
        {&authed, 0, 0, 0},  {&selected, 0, 0, 0}, {&authed_clear, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char caps[IMAP_CAPABILITY_MAX];
        imap_capability_list(cases[i].v, caps, sizeof caps);
        assert_true(strncmp(caps, "IMAP4rev1 ", 10) == 0);
        for (size_t k = 0; k < sizeof always / sizeof always[0]; k++)
            if (!has_word(caps, always[k]))
                fail_msg("case %zu: %s missing from %s", i, always[k], caps);
        assert_int_equal(has_word(caps, "STARTTLS"), cases[i].starttls);
        assert_int_equal(has_word(caps, "AUTH=PLAIN"), cases[i].auth);
        assert_int_equal(has_word(caps, "AUTH=LOGIN"), cases[i].auth);
        assert_int_equal(has_word(caps, "LOGINDISABLED"), cases[i].logindisabled);
    }
    char small[8] = "x";
    imap_capability_list(&clear, small, sizeof small);
    assert_string_equal(small, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_capabilities),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
