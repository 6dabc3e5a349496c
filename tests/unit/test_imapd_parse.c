/* The IMAP command parser (services/imapd/parse.h): tags and verbs, literal announcements,
 * and the argument tree (atoms with the bracket rule, quoted strings and their escapes,
 * literals, lists, NIL), with hostile input refused. Tables: input -> expected result. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imapd/parse.h"

#define LEN(lit) (sizeof(lit) - 1)

static void test_head(void **state)
{
    (void)state;
    static const struct {
        const char *line;
        int rc;
        const char *tag, *verb;
        int uid;
        size_t args_at;
    } cases[] = {
        {"a1 NOOP", IMAP_HEAD_OK, "a1", "NOOP", 0, 7},
        {"a1 noop", IMAP_HEAD_OK, "a1", "NOOP", 0, 7},
        {"A.2 LOGIN x y", IMAP_HEAD_OK, "A.2", "LOGIN", 0, 10},
        {"t uid fetch 1:* FLAGS", IMAP_HEAD_OK, "t", "FETCH", 1, 12},
        {"t] CAPABILITY", IMAP_HEAD_OK, "t]", "CAPABILITY", 0, 13},
        {"a1 NOOP ", IMAP_HEAD_OK, "a1", "NOOP", 0, 8},
        {"+ NOOP", IMAP_HEAD_NO_TAG, "", "", 0, 0},
        {"* NOOP", IMAP_HEAD_NO_TAG, "", "", 0, 0},
        {"a+b NOOP", IMAP_HEAD_NO_TAG, "", "", 0, 0},
        {"a{ NOOP", IMAP_HEAD_NO_TAG, "", "", 0, 0},
        {"a\"b NOOP", IMAP_HEAD_NO_TAG, "", "", 0, 0},
        {"a1", IMAP_HEAD_NO_TAG, "", "", 0, 0},
        {" NOOP", IMAP_HEAD_NO_TAG, "", "", 0, 0},
        {"a1 ", IMAP_HEAD_NO_VERB, "a1", "", 0, 0},
        {"a1  NOOP", IMAP_HEAD_NO_VERB, "a1", "", 0, 0},
        {"a1 N00P", IMAP_HEAD_NO_VERB, "a1", "", 0, 0},
        {"a1 UID", IMAP_HEAD_NO_VERB, "a1", "UID", 0, 0},
        {"a1 UID 5", IMAP_HEAD_NO_VERB, "a1", "UID", 1, 0},
        {"a1 NOOP(", IMAP_HEAD_NO_VERB, "a1", "NOOP", 0, 0},
        {"a1 ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFG", IMAP_HEAD_NO_VERB, "a1", "", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char tag[IMAP_TAG_MAX + 1], verb[IMAP_VERB_MAX + 1];
        int uid = -1;
        size_t at = 0;
        int rc = imap_parse_head(cases[i].line, strlen(cases[i].line), tag, verb, &uid, &at);
        if (rc != cases[i].rc)
            fail_msg("%s: rc %d, want %d", cases[i].line, rc, cases[i].rc);
        if (rc != IMAP_HEAD_NO_TAG)
            assert_string_equal(tag, cases[i].tag);
        if (rc == IMAP_HEAD_OK) {
            assert_string_equal(verb, cases[i].verb);
            assert_int_equal(uid, cases[i].uid);
            assert_int_equal(at, cases[i].args_at);
        }
    }
}

static void test_tag_length(void **state)
{
    (void)state;
    char line[200], tag[IMAP_TAG_MAX + 1], verb[IMAP_VERB_MAX + 1];
    int uid;
    size_t at;
    memset(line, 'x', IMAP_TAG_MAX);
    strcpy(line + IMAP_TAG_MAX, " NOOP");
    assert_int_equal(imap_parse_head(line, strlen(line), tag, verb, &uid, &at), IMAP_HEAD_OK);
    assert_int_equal(strlen(tag), IMAP_TAG_MAX);
    memset(line, 'x', IMAP_TAG_MAX + 1);
    strcpy(line + IMAP_TAG_MAX + 1, " NOOP");
    assert_int_equal(imap_parse_head(line, strlen(line), tag, verb, &uid, &at), IMAP_HEAD_NO_TAG);
}

static void test_literal_head(void **state)
{
    (void)state;
    static const struct {
        const char *line;
        int rc;
        uint64_t size;
        int nonsync, literal8;
        size_t at;
    } cases[] = {
        {"a LOGIN {5}", 1, 5, 0, 0, 8},
        {"a LOGIN {5+}", 1, 5, 1, 0, 8},
        {"a APPEND INBOX ~{12}", 1, 12, 0, 1, 15},
        {"a APPEND INBOX (\\Seen) {0}", 1, 0, 0, 0, 23},
        {"a X ({3}", 1, 3, 0, 0, 5},
        {" {7}", 1, 7, 0, 0, 1},
        {"a X {9223372036854775807}", 1, 9223372036854775807ull, 0, 0, 4},
        {"a NOOP", 0, 0, 0, 0, 0},
        {"a X foo{5}", 0, 0, 0, 0, 0},
        {"a X \"{5}\"", 0, 0, 0, 0, 0},
        {"{5}", 0, 0, 0, 0, 0},
        {"a X {5}}", 0, 0, 0, 0, 0},
        {"a X }", 0, 0, 0, 0, 0},
        {"a X {}", -1, 0, 0, 0, 0},
        {"a X {+}", -1, 0, 0, 0, 0},
        {"a X {12345678901234567890}", -1, 0, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct imap_literal_head lit = {0};
        int rc = imap_parse_literal_head(cases[i].line, strlen(cases[i].line), &lit);
        if (rc != cases[i].rc)
            fail_msg("%s: rc %d, want %d", cases[i].line, rc, cases[i].rc);
        if (rc == 1) {
            assert_true(lit.size == cases[i].size);
            assert_int_equal(lit.nonsync, cases[i].nonsync);
            assert_int_equal(lit.literal8, cases[i].literal8);
            assert_int_equal(lit.at, cases[i].at);
        }
    }
}

/* The tree as text: atoms bare, quoted "..", literals {n}bytes, lists (..), NIL. */
static void show(const struct imap_arg *v, size_t n, char *dst, size_t size)
{
    size_t o = strlen(dst);
    for (size_t i = 0; i < n && o + 1 < size; i++) {
        const struct imap_arg *a = &v[i];
        if (i)
            o += (size_t)snprintf(dst + o, size - o, " ");
        switch (a->type) {
        case IMAP_ARG_ATOM:
            o += (size_t)snprintf(dst + o, size - o, "A:%s", a->s);
            break;
        case IMAP_ARG_NIL:
            o += (size_t)snprintf(dst + o, size - o, "NIL");
            break;
        case IMAP_ARG_QUOTED:
            o += (size_t)snprintf(dst + o, size - o, "Q:%s", a->s);
            break;
        case IMAP_ARG_LITERAL:
            o += (size_t)snprintf(dst + o, size - o, "%sL%zu:%s", a->literal8 ? "~" : "", a->len, a->s);
            break;
        case IMAP_ARG_LIST:
            o += (size_t)snprintf(dst + o, size - o, "(");
            show(a->list, a->n, dst, size);
            o = strlen(dst);
            o += (size_t)snprintf(dst + o, size - o, ")");
            break;
        }
        if (o >= size)
            o = size - 1;
    }
}

struct parse_case {
    const char *in;
    size_t len; /* 0: strlen */
    const char *tree; /* NULL: refused */
};

static void run(const struct parse_case *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct imap_command cmd;
        const char *err = NULL;
        size_t len = c[i].len ? c[i].len : strlen(c[i].in);
        int rc = imap_parse_command(c[i].in, len, SIZE_MAX, 0, &cmd, &err);
        if (!c[i].tree) {
            if (rc == 0)
                fail_msg("%s: parsed, want refused", c[i].in);
            assert_non_null(err);
            continue;
        }
        if (rc != 0)
            fail_msg("%s: refused (%s)", c[i].in, err ? err : "?");
        char text[1024] = "";
        show(cmd.args, cmd.nargs, text, sizeof text);
        if (strcmp(text, c[i].tree) != 0)
            fail_msg("%s: got [%s], want [%s]", c[i].in, text, c[i].tree);
        assert_int_equal(cmd.append_fd, -1);
        imap_command_free(&cmd);
    }
}

static void test_atoms_and_quoted(void **state)
{
    (void)state;
    static const struct parse_case cases[] = {
        {"a NOOP", 0, ""},
        {"a LOGIN alice secret", 0, "A:alice A:secret"},
        {"a LOGIN \"al ice\" \"s\\\"e\\\\c\"", 0, "Q:al ice Q:s\"e\\c"},
        {"a LOGIN \"\" \"\"", 0, "Q: Q:"},
        {"a STORE 1:* +FLAGS (\\Seen \\Deleted)", 0, "A:1:* A:+FLAGS (A:\\Seen A:\\Deleted)"},
        {"a LIST \"\" %", 0, "Q: A:%"},
        {"a LIST \"\" *", 0, "Q: A:*"},
        {"a SELECT nil", 0, "NIL"},
        {"a SELECT NILS", 0, "A:NILS"},
        {"a SELECT \"NIL\"", 0, "Q:NIL"},
        {"a NOOP  ", 0, ""},
        {"a LOGIN alice secret ", 0, "A:alice A:secret"},
        {"a SELECT \"Entw&APw-rfe\"", 0, "Q:Entw&APw-rfe"},
        {"a SELECT \"caf\xc3\xa9\"", 0, "Q:caf\xc3\xa9"},
        /* refused */
        {"a LOGIN  alice", 0, NULL},
        {"a LOGIN alice  secret", 0, NULL},
        {"a LOGIN \"alice", 0, NULL},
        {"a LOGIN \"a\\nb\"", 0, NULL},
        {"a LOGIN \"a\\", 0, NULL},
        {"a LOGIN \"a\rb\"", 0, NULL},
        {"a LOGIN al\x01ice", 0, NULL},
        {"a LOGIN al\x7fice", 0, NULL},
        {"a LOGIN caf\xc3\xa9", 0, NULL},
        {"a LOGIN ab\"cd", 0, NULL},
        {"a LOGIN a)b", 0, NULL},
        {"a LOGIN \"a\"b", 0, NULL},
        {"a LOGIN \"a\0b\"", 12, NULL},
        {"+ NOOP", 0, NULL},
        {"a 12", 0, NULL},
    };
    run(cases, sizeof cases / sizeof cases[0]);
}

static void test_brackets(void **state)
{
    (void)state;
    static const struct parse_case cases[] = {
        {"a FETCH 1 BODY[]", 0, "A:1 A:BODY[]"},
        {"a FETCH 1 (BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.512> UID)", 0,
         "A:1 (A:BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.512> A:UID)"},
        {"a FETCH 1 BODY[1.2.MIME]", 0, "A:1 A:BODY[1.2.MIME]"},
        {"a FETCH 1 BODY[HEADER.FIELDS (\"X\" Y)]", 0, "A:1 A:BODY[HEADER.FIELDS (\"X\" Y)]"},
        {"a FETCH 1 (BODY[TEXT])", 0, "A:1 (A:BODY[TEXT])"},
        {"a FETCH 1 BODY[HEADER", 0, NULL},
        {"a FETCH 1 BODY[HEADER\r\n]", 0, NULL},
        {"a FETCH 1 BODY[\0]", 17, NULL},
    };
    run(cases, sizeof cases / sizeof cases[0]);
}

static void test_lists(void **state)
{
    (void)state;
    static const struct parse_case cases[] = {
        {"a X ()", 0, "()"},
        {"a X (a (b c) ())", 0, "(A:a (A:b A:c) ())"},
        {"a X ((()))", 0, "((()))"},
        {"a ID (\"name\" \"mutt\" \"version\" NIL)", 0, "(Q:name Q:mutt Q:version NIL)"},
        {"a X (a b", 0, NULL},
        {"a X a)", 0, NULL},
        {"a X ( a)", 0, NULL},
        {"a X (a )", 0, NULL},
        {"a X (a)(b)", 0, NULL},
        {"a X ((a) b", 0, NULL},
    };
    run(cases, sizeof cases / sizeof cases[0]);
}

static void test_depth(void **state)
{
    (void)state;
    char in[256] = "a X ";
    for (int i = 0; i < IMAP_PARSE_DEPTH; i++)
        strcat(in, "(");
    for (int i = 0; i < IMAP_PARSE_DEPTH; i++)
        strcat(in, ")");
    struct imap_command cmd;
    const char *err;
    assert_int_equal(imap_parse_command(in, strlen(in), SIZE_MAX, 0, &cmd, &err), 0);
    imap_command_free(&cmd);
    char deep[256] = "a X (";
    strcat(deep, in + 4);
    strcat(deep, ")");
    assert_int_equal(imap_parse_command(deep, strlen(deep), SIZE_MAX, 0, &cmd, &err), -1);
    assert_string_equal(err, "lists nested too deep");
}

static void test_literals(void **state)
{
    (void)state;
    static const char nul8[] = "a X ~{3}\r\na\0b";
    static const char nul[] = "a X {3}\r\na\0b";
    static const struct parse_case cases[] = {
        {"a LOGIN {5}\r\nalice {6}\r\nsecret", 0, "L5:alice L6:secret"},
        {"a LOGIN {5+}\r\nalice {6+}\r\nsecret", 0, "L5:alice L6:secret"},
        {"a LOGIN {0}\r\n {3}\r\na b", 0, "L0: L3:a b"},
        {"a X ({2}\r\n()) z", 0, "(L2:()) A:z"},
        {"a X {4}\r\n\r\n\r\n", 0, "L4:\r\n\r\n"},
        {nul8, LEN(nul8), "~L3:a"},
        {nul, LEN(nul), NULL},
        {"a LOGIN {5}\r\nali", 0, NULL},
        {"a LOGIN {5}\r\nalicex", 0, NULL},
        {"a LOGIN {5}alice", 0, NULL},
        {"a LOGIN {5}\nalice", 0, NULL},
        {"a LOGIN {x}\r\nalice", 0, NULL},
        {"a LOGIN {99999999999999999999}\r\nalice", 0, NULL},
        {"a LOGIN {18446744073709551615}\r\nalice", 0, NULL},
        {"a LOGIN ~x", 0, "A:~x"},
    };
    run(cases, sizeof cases / sizeof cases[0]);
}

/* APPEND's message literal is in a file: its argument has no bytes, only its size. */
static void test_external_literal(void **state)
{
    (void)state;
    static const char in[] = "a APPEND {5}\r\nDraft (\\Seen) \"01-Jan-2025 10:00:00 +0000\" {300}\r\n";
    struct imap_command cmd;
    const char *err;
    size_t at = strstr(in, "{300}") - in;
    assert_int_equal(imap_parse_command(in, LEN(in), at, 300, &cmd, &err), 0);
    assert_string_equal(cmd.verb, "APPEND");
    assert_int_equal(cmd.nargs, 4);
    assert_int_equal(cmd.args[0].type, IMAP_ARG_LITERAL);
    assert_string_equal(cmd.args[0].s, "Draft");
    assert_int_equal(cmd.args[1].type, IMAP_ARG_LIST);
    assert_int_equal(cmd.args[2].type, IMAP_ARG_QUOTED);
    assert_int_equal(cmd.args[3].type, IMAP_ARG_LITERAL);
    assert_int_equal(cmd.args[3].len, 300);
    assert_string_equal(cmd.args[3].s, "");
    imap_command_free(&cmd);
    /* what follows the external literal is parsed on */
    static const char more[] = "a APPEND INBOX {10}\r\n x";
    at = strstr(more, "{10}") - more;
    assert_int_equal(imap_parse_command(more, LEN(more), at, 10, &cmd, &err), 0);
    assert_int_equal(cmd.nargs, 3);
    assert_string_equal(cmd.args[2].s, "x");
    imap_command_free(&cmd);
}

static void test_arg_helpers(void **state)
{
    (void)state;
    struct imap_command cmd;
    const char *err;
    static const char in[] = "a X foo \"bar\" {3}\r\nbaz () NIL";
    assert_int_equal(imap_parse_command(in, LEN(in), SIZE_MAX, 0, &cmd, &err), 0);
    assert_int_equal(cmd.nargs, 5);
    assert_true(imap_arg_is_string(&cmd.args[0]));
    assert_true(imap_arg_is_string(&cmd.args[1]));
    assert_true(imap_arg_is_string(&cmd.args[2]));
    assert_false(imap_arg_is_string(&cmd.args[3]));
    assert_false(imap_arg_is_string(&cmd.args[4]));
    assert_true(imap_arg_is_atom(&cmd.args[0], "FOO"));
    assert_false(imap_arg_is_atom(&cmd.args[0], "fo"));
    assert_false(imap_arg_is_atom(&cmd.args[1], "bar"));
    assert_false(imap_arg_is_atom(NULL, "x"));
    imap_command_free(&cmd);
    imap_command_free(NULL);
}

/* Every prefix of a valid command, and every byte value in every position of a short one:
 * the parser answers (parsed or refused) without reading past its input (ASan). */
static void test_hostile_bytes(void **state)
{
    (void)state;
    static const char base[] = "a1 FETCH 1:* (BODY.PEEK[HEADER.FIELDS (A)] {3}\r\nxyz \"q\\\"\")";
    for (size_t n = 0; n <= LEN(base); n++) {
        char *copy = malloc(n ? n : 1);
        memcpy(copy, base, n);
        struct imap_command cmd;
        const char *err;
        if (imap_parse_command(copy, n, SIZE_MAX, 0, &cmd, &err) == 0)
            imap_command_free(&cmd);
        free(copy);
    }
    char buf[16];
    for (size_t pos = 0; pos < 12; pos++)
        for (int c = 0; c < 256; c++) {
            memcpy(buf, "a X (b \"c\")", 12);
            buf[pos] = (char)c;
            struct imap_command cmd;
            const char *err;
            if (imap_parse_command(buf, 11, SIZE_MAX, 0, &cmd, &err) == 0)
                imap_command_free(&cmd);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head),
        cmocka_unit_test(test_tag_length),
        cmocka_unit_test(test_literal_head),
        cmocka_unit_test(test_atoms_and_quoted),
        cmocka_unit_test(test_brackets),
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_literals),
        cmocka_unit_test(test_external_literal),
        cmocka_unit_test(test_arg_helpers),
        cmocka_unit_test(test_hostile_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
