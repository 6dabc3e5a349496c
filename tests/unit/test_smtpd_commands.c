/* smtpd's command table (services/smtpd/command_table.c), without a network: every verb's
 * rules for when it may be used, checked against the rules written out here one verb at a
 * time over every combination of phase, TLS, authentication, trust, port and argument; the
 * parser's verbs, EHLO and HELP generated from the rows; the flags that change what the
 * dispatcher does. A row without a spec here fails the test: a new command needs one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "smtpd/command_table.h"
#include "smtpd/parser.h"
#include "smtpd/session.h"

/* One situation a command can arrive in. */
struct situation {
    int tls_config, tls, auth, trusted, submission;
    unsigned phase; /* SMTPD_PH_INIT .. SMTPD_PH_MAIL */
    int esmtp;      /* with SMTPD_PH_MAIL: greeted with EHLO (else HELO) */
    int arg;
};

struct world {
    struct pm_config cfg;
    struct smtpd_server srv;
    struct smtpd_session s;
};

static char *trusted_nets[] = {"192.0.2.0/24"};
static char helo_name[] = "client.test", auth_name[] = "alice@example.test";
static int a_tls_context; /* stands for the server's TLS context: only its presence is read */

static void enter(struct world *w, const struct situation *x)
{
    memset(w, 0, sizeof *w);
    w->cfg.hostname = "mx.example.test";
    w->cfg.smtpd.max_message_size = 36700160;
    if (x->trusted) {
        w->cfg.trusted_networks.v = trusted_nets;
        w->cfg.trusted_networks.n = 1;
    }
    w->srv.cfg = &w->cfg;
    w->srv.tls = x->tls_config ? (struct smtpd_tls *)&a_tls_context : NULL;
    w->s.srv = &w->srv;
    snprintf(w->s.ip, sizeof w->s.ip, "192.0.2.7");
    w->s.mode = x->submission ? SMTPD_MODE_SUBMISSION : SMTPD_MODE_SMTP;
    w->s.tls = x->tls;
    w->s.auth_user = x->auth ? auth_name : NULL;
    w->s.helo = x->phase == SMTPD_PH_INIT ? NULL : helo_name;
    w->s.esmtp = x->phase == SMTPD_PH_EHLO || (x->phase == SMTPD_PH_MAIL && x->esmtp);
    w->s.txn.active = x->phase == SMTPD_PH_MAIL;
}

/* The rules, verb by verb: the reply a command gets before its handler runs, or NULL. */
typedef const char *(*rule_fn)(const struct situation *x);

static const char *greeting(const struct situation *x, const char *syntax)
{
    return x->arg ? NULL : syntax;
}
static const char *rule_helo(const struct situation *x) { return greeting(x, "501 5.5.4 Syntax: HELO hostname"); }
static const char *rule_ehlo(const struct situation *x) { return greeting(x, "501 5.5.4 Syntax: EHLO hostname"); }

static const char *rule_mail(const struct situation *x)
{
    if (x->phase == SMTPD_PH_INIT)
        return "503 5.5.1 Error: send HELO/EHLO first";
    if (x->phase == SMTPD_PH_MAIL)
        return "503 5.5.1 Error: nested MAIL command";
    if (x->submission && !x->auth)
        return "530 5.7.0 Authentication required";
    return NULL;
}

static const char *rule_rcpt(const struct situation *x)
{
    return x->phase != SMTPD_PH_MAIL ? "503 5.5.1 Error: need MAIL command" : NULL;
}

static const char *rule_data(const struct situation *x)
{
    if (x->arg)
        return "501 5.5.4 Syntax: DATA";
    return x->phase != SMTPD_PH_MAIL ? "503 5.5.1 Error: need MAIL command" : NULL;
}

static const char *rule_rset(const struct situation *x) { return x->arg ? "501 5.5.4 Syntax: RSET" : NULL; }

static const char *rule_anytime(const struct situation *x)
{
    (void)x;
    return NULL;
}

static const char *rule_vrfy(const struct situation *x) { return x->arg ? NULL : "501 5.5.4 Syntax: VRFY address"; }

static const char *rule_starttls(const struct situation *x)
{
    if (!x->tls_config)
        return "502 5.5.1 Error: STARTTLS not available";
    if (x->tls)
        return "503 5.5.1 Error: TLS already active";
    if (x->arg)
        return "501 5.5.4 Syntax: STARTTLS";
    /* Not inside a transaction: no half-received BDAT message may meet the TLS reset. */
    return x->phase == SMTPD_PH_MAIL ? "503 5.5.1 Error: MAIL transaction in progress" : NULL;
}

/* The table's refusals; bdat.c reads the chunk before the reply goes out. */
static const char *rule_bdat(const struct situation *x)
{
    if (!x->arg)
        return "501 5.5.4 Syntax: BDAT size [LAST]";
    return x->phase != SMTPD_PH_MAIL ? "503 5.5.1 Error: need MAIL command" : NULL;
}

static const char *rule_auth(const struct situation *x)
{
    if (!x->tls_config)
        return "503 5.5.1 Error: authentication not enabled";
    if (!x->tls)
        return "530 5.7.0 Must issue a STARTTLS command first";
    /* Greeted with HELO: that first, also after login or inside a transaction. */
    if (x->phase == SMTPD_PH_INIT || x->phase == SMTPD_PH_HELO || (x->phase == SMTPD_PH_MAIL && !x->esmtp))
        return "503 5.5.1 Error: send EHLO first";
    if (x->auth)
        return "503 5.5.1 Error: already authenticated";
    return x->phase == SMTPD_PH_MAIL ? "503 5.5.1 Error: MAIL transaction in progress" : NULL;
}

static const char *rule_etrn(const struct situation *x)
{
    if (!x->trusted && !x->auth)
        return "502 5.7.0 Error: ETRN not available";
    if (!x->arg)
        return "501 5.5.4 Syntax: ETRN domain";
    if (x->phase == SMTPD_PH_INIT)
        return "503 5.5.1 Error: send HELO/EHLO first";
    return x->phase == SMTPD_PH_MAIL ? "503 5.5.1 Error: MAIL transaction in progress" : NULL;
}

static const struct {
    const char *verb;
    rule_fn rule;
} rules[] = {
    {"HELO", rule_helo},         {"EHLO", rule_ehlo},     {"MAIL", rule_mail},     {"RCPT", rule_rcpt},
    {"DATA", rule_data},         {"RSET", rule_rset},     {"NOOP", rule_anytime},  {"QUIT", rule_anytime},
    {"VRFY", rule_vrfy},         {"EXPN", rule_anytime},  {"HELP", rule_anytime},  {"STARTTLS", rule_starttls},
    {"AUTH", rule_auth},         {"ETRN", rule_etrn},     {"BDAT", rule_bdat},
};

static rule_fn rule_of(const char *verb)
{
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        if (strcmp(rules[i].verb, verb) == 0)
            return rules[i].rule;
    return NULL;
}

/* Calls fn for every possible situation (TLS active needs TLS configured, AUTH needs TLS). */
static int each_situation(void (*fn)(const struct situation *x, void *arg), void *arg)
{
    static const unsigned phases[] = {SMTPD_PH_INIT, SMTPD_PH_HELO, SMTPD_PH_EHLO, SMTPD_PH_MAIL};
    int n = 0;
    for (int bits = 0; bits < 1 << 7; bits++)
        for (size_t p = 0; p < 4; p++) {
            struct situation x = {.tls_config = bits & 1, .tls = !!(bits & 2), .auth = !!(bits & 4),
                                  .trusted = !!(bits & 8), .submission = !!(bits & 16), .esmtp = !!(bits & 32),
                                  .arg = !!(bits & 64), .phase = phases[p]};
            if ((x.tls && !x.tls_config) || (x.auth && !x.tls) || (x.esmtp && x.phase != SMTPD_PH_MAIL))
                continue;
            fn(&x, arg);
            n++;
        }
    return n;
}

static void describe(const struct situation *x, char *dst, size_t size)
{
    snprintf(dst, size, "tls_config=%d tls=%d auth=%d trusted=%d submission=%d phase=%u esmtp=%d arg=%d",
             x->tls_config, x->tls, x->auth, x->trusted, x->submission, x->phase, x->esmtp, x->arg);
}

static void check_rules(const struct situation *x, void *arg)
{
    const struct smtpd_cmd_row *row = arg;
    struct world w;
    enter(&w, x);
    struct smtpd_command c = {.verb = row->id, .row = row, .arg = x->arg ? "x" : "", .arglen = x->arg ? 1 : 0};
    enum smtpd_refusal r = smtpd_cmd_refusal(&w.s, &c);
    char got[256] = "", where[200];
    if (r != SMTPD_REFUSE_NONE)
        smtpd_cmd_refusal_reply(row, r, got, sizeof got);
    const char *want = rule_of(row->verb)(x);
    describe(x, where, sizeof where);
    if (!want && r != SMTPD_REFUSE_NONE)
        fail_msg("%s refused (%s) in %s", row->verb, got, where);
    if (want && strcmp(got, want) != 0)
        fail_msg("%s in %s: got \"%s\", want \"%s\"", row->verb, where, got, want);
}

/* Every row of the table, over every situation, against its verb's rules above. */
static void test_every_verb_follows_its_state_rules(void **state)
{
    (void)state;
    assert_int_equal(smtpd_cmd_table_size, sizeof rules / sizeof rules[0]);
    for (size_t i = 0; i < smtpd_cmd_table_size; i++) {
        const struct smtpd_cmd_row *row = &smtpd_cmd_table[i];
        if (!rule_of(row->verb))
            fail_msg("the command table's %s has no rules in this test", row->verb);
        assert_non_null(row->handler);
        assert_true(each_situation(check_rules, (void *)row) > 100);
    }
}

/* The parser knows exactly the table's verbs, in any case. */
static void test_parser_verbs_are_the_tables(void **state)
{
    (void)state;
    for (size_t i = 0; i < smtpd_cmd_table_size; i++) {
        const struct smtpd_cmd_row *row = &smtpd_cmd_table[i];
        char line[64], lower[64];
        snprintf(line, sizeof line, "%s arg", row->verb);
        for (size_t k = 0; k <= strlen(line); k++)
            lower[k] = (char)(line[k] >= 'A' && line[k] <= 'Z' ? line[k] + 32 : line[k]);
        struct smtpd_command c;
        smtpd_parse_command(lower, strlen(lower), &c);
        assert_ptr_equal(c.row, row);
        assert_int_equal(c.verb, row->id);
        assert_int_equal(c.arglen, 3);
        assert_string_equal(smtpd_verb_name(row->id), row->verb);
        assert_ptr_equal(smtpd_cmd_find(row->verb, strlen(row->verb)), row);
    }
    struct smtpd_command c;
    smtpd_parse_command("BDAT 100 LAST", 13, &c);
    assert_int_equal(c.verb, SMTPD_CMD_BDAT);
    assert_int_equal(c.arglen, 8);
    smtpd_parse_command("BINARY 100", 10, &c);
    assert_int_equal(c.verb, SMTPD_CMD_UNKNOWN);
    assert_null(c.row);
    smtpd_parse_command("GET / HTTP/1.0", 14, &c);
    assert_int_equal(c.verb, SMTPD_CMD_FORBIDDEN);
    assert_null(c.row);
}

/* When each command's keyword must be in the EHLO reply, written out. */
static int keyword_due(const char *verb, const struct situation *x)
{
    if (strcmp(verb, "STARTTLS") == 0)
        return x->tls_config && !x->tls;
    if (strcmp(verb, "AUTH") == 0)
        return x->tls && !x->auth;
    if (strcmp(verb, "ETRN") == 0)
        return x->trusted || x->auth;
    return strcmp(verb, "HELP") == 0;
}

static int count(char (*kw)[SMTPD_KEYWORD_SIZE], int n, const char *word)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        k += strcmp(kw[i], word) == 0;
    return k;
}

static void check_ehlo(const struct situation *x, void *arg)
{
    (void)arg;
    if (x->phase != SMTPD_PH_EHLO || x->arg)
        return; /* EHLO's reply depends on neither */
    struct world w;
    enter(&w, x);
    char kw[SMTPD_MAX_KEYWORDS][SMTPD_KEYWORD_SIZE], where[200];
    int n = smtpd_ehlo_keywords(&w.s, kw, SMTPD_MAX_KEYWORDS);
    describe(x, where, sizeof where);
    int expected = 0;
    for (size_t i = 0; i < smtpd_extensions_size; i++) {
        const char *name = smtpd_extensions[i].keyword.name;
        /* Every extension always, but REQUIRETLS only over TLS (RFC 8689). */
        int due = strcmp(name, "REQUIRETLS") != 0 || x->tls;
        if (count(kw, n, i == 1 ? "SIZE 36700160" : name) != due)
            fail_msg("EHLO %s %s in %s", due ? "lacks" : "offers", name, where);
        if (due)
            assert_string_equal(kw[expected++], i == 1 ? "SIZE 36700160" : name);
    }
    for (size_t i = 0; i < smtpd_cmd_table_size; i++) {
        const struct smtpd_cmd_row *row = &smtpd_cmd_table[i];
        int due = keyword_due(row->verb, x);
        if (!row->ehlo.name) {
            assert_false(due);
            continue;
        }
        if (count(kw, n, row->ehlo.name) != due)
            fail_msg("EHLO %s %s in %s", due ? "lacks" : "offers", row->ehlo.name, where);
        /* The table's own statement of it: offered exactly while the client may use it. */
        assert_int_equal(due, smtpd_cmd_available(&w.s, row));
        expected += due;
    }
    assert_int_equal(n, expected);
    assert_string_equal(kw[n - 1], "HELP"); /* last: clients wait for "250 HELP" */
}

static void test_ehlo_comes_from_the_table(void **state)
{
    (void)state;
    each_situation(check_ehlo, NULL);
    /* The plain port of a server with a certificate, a client from nowhere special. */
    struct situation x = {.tls_config = 1, .phase = SMTPD_PH_EHLO};
    struct world w;
    enter(&w, &x);
    char kw[SMTPD_MAX_KEYWORDS][SMTPD_KEYWORD_SIZE];
    int n = smtpd_ehlo_keywords(&w.s, kw, SMTPD_MAX_KEYWORDS);
    const char *want[] = {"PIPELINING", "SIZE 36700160", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "DSN",
                          "CHUNKING", "STARTTLS", "HELP"};
    assert_int_equal(n, 9);
    for (int i = 0; i < n; i++)
        assert_string_equal(kw[i], want[i]);
    /* Over TLS: REQUIRETLS after the other extensions, AUTH with its mechanisms, and ETRN
     * once authenticated. */
    x.tls = 1;
    enter(&w, &x);
    n = smtpd_ehlo_keywords(&w.s, kw, SMTPD_MAX_KEYWORDS);
    assert_string_equal(kw[7], "REQUIRETLS");
    assert_int_equal(count(kw, n, "REQUIRETLS"), 1);
    assert_int_equal(count(kw, n, "AUTH PLAIN LOGIN"), 1);
    assert_int_equal(count(kw, n, "ETRN"), 0);
    x.auth = 1;
    enter(&w, &x);
    n = smtpd_ehlo_keywords(&w.s, kw, SMTPD_MAX_KEYWORDS);
    assert_int_equal(count(kw, n, "AUTH PLAIN LOGIN"), 0);
    assert_int_equal(count(kw, n, "ETRN"), 1);
}

static void test_help_comes_from_the_table(void **state)
{
    (void)state;
    char text[256];
    smtpd_help_text(text, sizeof text);
    assert_string_equal(text, "Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY STARTTLS AUTH ETRN HELP");
    /* Walking the table: each HELP name once, in table order; a row without one (EXPN, not
     * supported) is not mentioned. */
    const char *at = text;
    for (size_t i = 0; i < smtpd_cmd_table_size; i++) {
        const struct smtpd_cmd_row *row = &smtpd_cmd_table[i];
        char word[32];
        snprintf(word, sizeof word, " %s", row->verb);
        const char *hit = strstr(text, word);
        int listed = hit && (hit[strlen(word)] == ' ' || hit[strlen(word)] == '\0');
        assert_int_equal(listed, row->help != NULL);
        if (row->help) {
            assert_string_equal(row->help, row->verb);
            assert_true(hit >= at);
            at = hit + 1;
        }
    }
}

/* What the flags make the dispatcher do, and the refusals it logs. */
static void test_flags(void **state)
{
    (void)state;
    for (size_t i = 0; i < smtpd_cmd_table_size; i++) {
        const struct smtpd_cmd_row *row = &smtpd_cmd_table[i];
        int auth = strcmp(row->verb, "AUTH") == 0;
        /* Only AUTH may use the long line of RFC 4954, and logs every refusal (password
         * guessing shows there); EXPN is refused by design and counts as an error; a refused
         * DATA with text behind it ends the session. */
        assert_int_equal(!!(row->flags & SMTPD_CMD_LONG_LINE), auth);
        assert_int_equal(!!(row->flags & SMTPD_CMD_LOG_REFUSALS), auth);
        assert_int_equal(!!(row->flags & SMTPD_CMD_COUNTS_AS_ERROR), strcmp(row->verb, "EXPN") == 0);
        assert_int_equal(!!(row->flags & SMTPD_CMD_BODY_FOLLOWS), strcmp(row->verb, "DATA") == 0);
        assert_int_equal(!!(row->flags & SMTPD_CMD_CHUNK_FOLLOWS), strcmp(row->verb, "BDAT") == 0);
        assert_int_equal(!!(row->flags & SMTPD_CMD_ENVELOPE),
                         strcmp(row->verb, "MAIL") == 0 || strcmp(row->verb, "RCPT") == 0);
        /* Policy refusals are always logged; sequencing ones only for AUTH. */
        assert_true(smtpd_cmd_refusal_logged(row, SMTPD_REFUSE_AUTH_REQUIRED));
        assert_true(smtpd_cmd_refusal_logged(row, SMTPD_REFUSE_UNTRUSTED));
        assert_int_equal(smtpd_cmd_refusal_logged(row, SMTPD_REFUSE_NEED_HELO), auth);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_verb_follows_its_state_rules),
        cmocka_unit_test(test_parser_verbs_are_the_tables),
        cmocka_unit_test(test_ehlo_comes_from_the_table),
        cmocka_unit_test(test_help_comes_from_the_table),
        cmocka_unit_test(test_flags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
