/* imapd FETCH items: macros, simple items, section grammar, partials, the echoed names,
 * \Seen, options, and a table of refused (BAD) item arguments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imapd/fetch_atts.h"
#include "imapd/parse.h"
#include "imapd_args_fixture.h"

/* Parses the one item argument in text; returns parse's result. */
static int parse(const char *text, int uid, unsigned opts, struct imap_fetch_atts *fa, const char **err)
{
    struct targs t = targs_make(text);
    assert_int_equal(t.n, 1);
    int rc = imap_fetch_atts_parse(&t.args[0], uid, opts, fa, err);
    targs_free(&t);
    return rc;
}

static void test_macros_and_items(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int uid;
        unsigned items;
    } rows[] = {
        {"ALL", 0, IMAP_FETCH_FLAGS | IMAP_FETCH_INTERNALDATE | IMAP_FETCH_RFC822_SIZE | IMAP_FETCH_ENVELOPE},
        {"fast", 0, IMAP_FETCH_FLAGS | IMAP_FETCH_INTERNALDATE | IMAP_FETCH_RFC822_SIZE},
        {"Full", 0,
         IMAP_FETCH_FLAGS | IMAP_FETCH_INTERNALDATE | IMAP_FETCH_RFC822_SIZE | IMAP_FETCH_ENVELOPE | IMAP_FETCH_BODY},
        {"FLAGS", 0, IMAP_FETCH_FLAGS},
        {"FLAGS", 1, IMAP_FETCH_FLAGS | IMAP_FETCH_UID},
        {"FAST", 1, IMAP_FETCH_FLAGS | IMAP_FETCH_INTERNALDATE | IMAP_FETCH_RFC822_SIZE | IMAP_FETCH_UID},
        {"(UID)", 1, IMAP_FETCH_UID},
        {"(flags uid internaldate rfc822.size envelope body bodystructure)", 0,
         IMAP_FETCH_FLAGS | IMAP_FETCH_UID | IMAP_FETCH_INTERNALDATE | IMAP_FETCH_RFC822_SIZE | IMAP_FETCH_ENVELOPE |
             IMAP_FETCH_BODY | IMAP_FETCH_BODYSTRUCTURE},
        {"(FLAGS FLAGS)", 0, IMAP_FETCH_FLAGS},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct imap_fetch_atts fa;
        const char *err = NULL;
        if (parse(rows[i].text, rows[i].uid, 0, &fa, &err) != 0)
            fail_msg("\"%s\": %s", rows[i].text, err);
        if (fa.items != rows[i].items || fa.nbodies != 0)
            fail_msg("\"%s\": items %#x, want %#x", rows[i].text, fa.items, rows[i].items);
        imap_fetch_atts_free(&fa);
    }
}

/* One section item: its echo name, seen, partial and section fields. */
static void test_sections(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *name;
        int seen;
        enum imap_section_text sect;
        size_t nparts;
        uint32_t part0;
        size_t nfields;
        int partial;
        uint32_t offset, count;
    } rows[] = {
        {"BODY[]", "BODY[]", 1, IMAP_SECTION_ALL, 0, 0, 0, 0, 0, 0},
        {"BODY.PEEK[]", "BODY[]", 0, IMAP_SECTION_ALL, 0, 0, 0, 0, 0, 0},
        {"body.peek[header]", "BODY[HEADER]", 0, IMAP_SECTION_HEADER, 0, 0, 0, 0, 0, 0},
        {"BODY[TEXT]", "BODY[TEXT]", 1, IMAP_SECTION_TEXT, 0, 0, 0, 0, 0, 0},
        {"BODY[1]", "BODY[1]", 1, IMAP_SECTION_ALL, 1, 1, 0, 0, 0, 0},
        {"BODY[1.2.3]", "BODY[1.2.3]", 1, IMAP_SECTION_ALL, 3, 1, 0, 0, 0, 0},
        {"BODY[2.mime]", "BODY[2.MIME]", 1, IMAP_SECTION_MIME, 1, 2, 0, 0, 0, 0},
        {"BODY[4.2.HEADER]", "BODY[4.2.HEADER]", 1, IMAP_SECTION_HEADER, 2, 4, 0, 0, 0, 0},
        {"BODY.PEEK[3.TEXT]", "BODY[3.TEXT]", 0, IMAP_SECTION_TEXT, 1, 3, 0, 0, 0, 0},
        {"BODY.PEEK[HEADER.FIELDS (From To)]", "BODY[HEADER.FIELDS (FROM TO)]", 0, IMAP_SECTION_HEADER_FIELDS, 0, 0,
         2, 0, 0, 0},
        {"BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.512>", "BODY[HEADER.FIELDS (FROM TO)]<0>", 0,
         IMAP_SECTION_HEADER_FIELDS, 0, 0, 2, 1, 0, 512},
        {"BODY[header.fields.not (X-Spam \"Received\")]", "BODY[HEADER.FIELDS.NOT (X-SPAM RECEIVED)]", 1,
         IMAP_SECTION_HEADER_FIELDS_NOT, 0, 0, 2, 0, 0, 0},
        {"BODY[1.HEADER.FIELDS (SUBJECT)]", "BODY[1.HEADER.FIELDS (SUBJECT)]", 1, IMAP_SECTION_HEADER_FIELDS, 1, 1, 1,
         0, 0, 0},
        {"BODY[]<100.50>", "BODY[]<100>", 1, IMAP_SECTION_ALL, 0, 0, 0, 1, 100, 50},
        {"BODY[]<4294967295.4294967295>", "BODY[]<4294967295>", 1, IMAP_SECTION_ALL, 0, 0, 0, 1, 4294967295u,
         4294967295u},
        {"RFC822", "RFC822", 1, IMAP_SECTION_ALL, 0, 0, 0, 0, 0, 0},
        {"rfc822.header", "RFC822.HEADER", 0, IMAP_SECTION_HEADER, 0, 0, 0, 0, 0, 0},
        {"RFC822.TEXT", "RFC822.TEXT", 1, IMAP_SECTION_TEXT, 0, 0, 0, 0, 0, 0},
        {"BODY.PEEK[1.2.header.fields.not (a)]<5.6>", "BODY[1.2.HEADER.FIELDS.NOT (A)]<5>", 0,
         IMAP_SECTION_HEADER_FIELDS_NOT, 2, 1, 1, 1, 5, 6},
        {"BODY[3.HEADER]<0.1>", "BODY[3.HEADER]<0>", 1, IMAP_SECTION_HEADER, 1, 3, 0, 1, 0, 1},
        {"BODY[HEADER.FIELDS (\"A(B\")]", "BODY[HEADER.FIELDS (\"A(B\")]", 1, IMAP_SECTION_HEADER_FIELDS, 0, 0, 1, 0,
         0, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct imap_fetch_atts fa;
        const char *err = NULL;
        if (parse(rows[i].text, 0, 0, &fa, &err) != 0)
            fail_msg("\"%s\": %s", rows[i].text, err);
        assert_int_equal(fa.nbodies, 1);
        const struct imap_fetch_body *b = &fa.bodies[0];
        if (strcmp(b->name, rows[i].name) != 0)
            fail_msg("\"%s\": name \"%s\", want \"%s\"", rows[i].text, b->name, rows[i].name);
        assert_int_equal(b->kind, IMAP_FETCH_SECTION);
        assert_int_equal(b->sets_seen, rows[i].seen);
        assert_int_equal(fa.sets_seen, rows[i].seen);
        assert_int_equal(b->section.text, rows[i].sect);
        assert_int_equal(b->section.nparts, rows[i].nparts);
        if (rows[i].nparts)
            assert_int_equal(b->section.part[0], rows[i].part0);
        assert_int_equal(b->section.nfields, rows[i].nfields);
        assert_int_equal(b->partial, rows[i].partial);
        assert_int_equal(b->offset, rows[i].offset);
        assert_int_equal(b->count, rows[i].count);
        assert_true(imap_fetch_atts_need_message(&fa));
        imap_fetch_atts_free(&fa);
    }
}

static void test_field_names_kept(void **state)
{
    (void)state;
    struct imap_fetch_atts fa;
    const char *err;
    assert_int_equal(parse("BODY.PEEK[HEADER.FIELDS (x-Mailer \"List-Id\" \"a\\\\b\")]", 0, 0, &fa, &err), 0);
    const struct imap_section *sec = &fa.bodies[0].section;
    assert_int_equal(sec->nfields, 3);
    assert_string_equal(sec->fields[0], "x-Mailer");
    assert_string_equal(sec->fields[1], "List-Id");
    assert_string_equal(sec->fields[2], "a\\b");
    assert_string_equal(fa.bodies[0].name, "BODY[HEADER.FIELDS (X-MAILER LIST-ID \"A\\\\B\")]");
    imap_fetch_atts_free(&fa);
}

static void test_list_order_and_seen(void **state)
{
    (void)state;
    struct imap_fetch_atts fa;
    const char *err;
    assert_int_equal(
        parse("(UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (FROM)] BODY.PEEK[1]<0.10> BODY[2])", 0, 0, &fa, &err),
        0);
    assert_int_equal(fa.items, IMAP_FETCH_UID | IMAP_FETCH_RFC822_SIZE | IMAP_FETCH_FLAGS);
    assert_int_equal(fa.nbodies, 3);
    assert_string_equal(fa.bodies[0].name, "BODY[HEADER.FIELDS (FROM)]");
    assert_string_equal(fa.bodies[1].name, "BODY[1]<0>");
    assert_string_equal(fa.bodies[2].name, "BODY[2]");
    assert_false(fa.bodies[0].sets_seen);
    assert_false(fa.bodies[1].sets_seen);
    assert_true(fa.bodies[2].sets_seen);
    assert_true(fa.sets_seen);
    imap_fetch_atts_free(&fa);

    assert_int_equal(parse("(FLAGS UID INTERNALDATE RFC822.SIZE)", 0, 0, &fa, &err), 0);
    assert_false(imap_fetch_atts_need_message(&fa));
    assert_false(fa.sets_seen);
    imap_fetch_atts_free(&fa);
    assert_int_equal(parse("ENVELOPE", 0, 0, &fa, &err), 0);
    assert_true(imap_fetch_atts_need_message(&fa));
    imap_fetch_atts_free(&fa);
}

static void test_options(void **state)
{
    (void)state;
    struct imap_fetch_atts fa;
    const char *err;
    assert_int_equal(parse("BINARY[1]", 0, 0, &fa, &err), -1);
    assert_string_equal(err, "BINARY is not supported");
    assert_int_equal(parse("MODSEQ", 0, 0, &fa, &err), -1);
    assert_int_equal(parse("MODSEQ", 0, IMAP_FETCH_OPT_CONDSTORE, &fa, &err), 0);
    assert_int_equal(fa.items, IMAP_FETCH_MODSEQ);
    imap_fetch_atts_free(&fa);

    assert_int_equal(parse("(BINARY[1]<0.5> BINARY.PEEK[1.2] BINARY.SIZE[] BINARY[])", 0, IMAP_FETCH_OPT_BINARY, &fa,
                           &err),
                     0);
    assert_int_equal(fa.nbodies, 4);
    assert_int_equal(fa.bodies[0].kind, IMAP_FETCH_BINARY);
    assert_string_equal(fa.bodies[0].name, "BINARY[1]<0>");
    assert_true(fa.bodies[0].sets_seen);
    assert_int_equal(fa.bodies[1].kind, IMAP_FETCH_BINARY);
    assert_string_equal(fa.bodies[1].name, "BINARY[1.2]");
    assert_false(fa.bodies[1].sets_seen);
    assert_int_equal(fa.bodies[2].kind, IMAP_FETCH_BINARY_SIZE);
    assert_string_equal(fa.bodies[2].name, "BINARY.SIZE[]");
    assert_false(fa.bodies[2].sets_seen);
    assert_string_equal(fa.bodies[3].name, "BINARY[]");
    imap_fetch_atts_free(&fa);
}

static void test_refused_table(void **state)
{
    (void)state;
    static const char *const rows[] = {
        "()", "XYZZY", "BODY.PEEK", "BODY[", "BODY[]]", "BODY[HEADER", "BODY[0]", "BODY[1.0]", "BODY[01]",
        "BODY[1.]", "BODY[.1]", "BODY[1..2]", "BODY[4294967296]", "BODY[MIME]", "BODY[HEADERS]", "BODY[TEXT.1]",
        "BODY[1.TEXT.2]", "BODY[HEADER.FIELDS]", "BODY[HEADER.FIELDS ()]", "BODY[HEADER.FIELDS  (A)]",
        "BODY[HEADER.FIELDS (A )]", "BODY[HEADER.FIELDS (A) ]", "BODY[HEADER.FIELDS (A)(B)]",
        "BODY[HEADER.FIELDS (A:B)]", "BODY[HEADER.FIELDS (\"\")]", "BODY[HEADER.FIELDS (\"A)]",
        "BODY[HEADER.FIELDS (\"A\\B\")]", "BODY[HEADER.FIELDS {1}A]", "BODY[HEADER.FIELDS.NOTX (A)]",
        "BODY[HEADER.FIELDSX (A)]", "BODY[]<>", "BODY[]<1>", "BODY[]<1.0>", "BODY[]<.5>", "BODY[]<1.>",
        "BODY[]<4294967296.1>", "BODY[]<1.4294967296>", "BODY[]<1.2>x", "BODY[]x", "BODY[]<-1.2>", "BODY.PEEKX[]",
        "BODYX[]", "RFC822.PEEK", "(ALL)", "(FLAGS FAST)", "(FLAGS (UID))", "\"FLAGS\"", "(\"FLAGS\")", "NIL",
        "RFC822.SIZEX", "BINARY[1]",
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct imap_fetch_atts fa;
        const char *err = NULL;
        if (parse(rows[i], 0, 0, &fa, &err) == 0)
            fail_msg("\"%s\" was accepted", rows[i]);
        assert_non_null(err);
        assert_int_equal(fa.nbodies, 0);
        assert_null(fa.bodies);
        imap_fetch_atts_free(&fa); /* safe after a failure */
    }
    struct imap_fetch_atts fa;
    const char *err;
    /* BINARY sections take part numbers only; BINARY.SIZE no partial. */
    assert_int_equal(parse("BINARY[HEADER]", 0, IMAP_FETCH_OPT_BINARY, &fa, &err), -1);
    assert_int_equal(parse("BINARY.SIZE[1]<0.1>", 0, IMAP_FETCH_OPT_BINARY, &fa, &err), -1);
    assert_int_equal(imap_fetch_atts_parse(NULL, 0, 0, &fa, &err), -1);
}

static void test_bounds(void **state)
{
    (void)state;
    char text[32 * 1024];
    struct imap_fetch_atts fa;
    const char *err;
    /* IMAP_FETCH_BODIES_MAX sections pass, one more is refused. */
    size_t n = (size_t)snprintf(text, sizeof text, "(");
    for (int i = 0; i < IMAP_FETCH_BODIES_MAX; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "%sBODY.PEEK[%d]", i ? " " : "", i + 1);
    snprintf(text + n, sizeof text - n, ")");
    assert_int_equal(parse(text, 0, 0, &fa, &err), 0);
    assert_int_equal(fa.nbodies, IMAP_FETCH_BODIES_MAX);
    imap_fetch_atts_free(&fa);
    snprintf(text + n, sizeof text - n, " BODY[1])");
    assert_int_equal(parse(text, 0, 0, &fa, &err), -1);

    /* Depth: IMAP_SECTION_DEPTH_MAX part numbers pass, one more is refused. */
    n = (size_t)snprintf(text, sizeof text, "BODY[1");
    for (int i = 1; i < IMAP_SECTION_DEPTH_MAX; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, ".%d", 9);
    snprintf(text + n, sizeof text - n, "]");
    assert_int_equal(parse(text, 0, 0, &fa, &err), 0);
    assert_int_equal(fa.bodies[0].section.nparts, IMAP_SECTION_DEPTH_MAX);
    imap_fetch_atts_free(&fa);
    snprintf(text + n, sizeof text - n, ".1]");
    assert_int_equal(parse(text, 0, 0, &fa, &err), -1);
    assert_string_equal(err, "Section nested too deep");

    /* Field names: IMAP_SECTION_FIELDS_MAX pass, one more is refused; a name too long. */
    n = (size_t)snprintf(text, sizeof text, "BODY[HEADER.FIELDS (");
    for (int i = 0; i < IMAP_SECTION_FIELDS_MAX; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "%sX-%d", i ? " " : "", i);
    snprintf(text + n, sizeof text - n, ")]");
    assert_int_equal(parse(text, 0, 0, &fa, &err), 0);
    assert_int_equal(fa.bodies[0].section.nfields, IMAP_SECTION_FIELDS_MAX);
    imap_fetch_atts_free(&fa);
    snprintf(text + n, sizeof text - n, " Y)]");
    assert_int_equal(parse(text, 0, 0, &fa, &err), -1);
    n = (size_t)snprintf(text, sizeof text, "BODY[HEADER.FIELDS (");
    memset(text + n, 'A', IMAP_SECTION_FIELD_LEN_MAX + 1);
    snprintf(text + n + IMAP_SECTION_FIELD_LEN_MAX + 1, sizeof text - n - IMAP_SECTION_FIELD_LEN_MAX - 1, ")]");
    assert_int_equal(parse(text, 0, 0, &fa, &err), -1);
    assert_string_equal(err, "Header field name too long");
    text[n + IMAP_SECTION_FIELD_LEN_MAX] = ')';
    text[n + IMAP_SECTION_FIELD_LEN_MAX + 1] = ']';
    text[n + IMAP_SECTION_FIELD_LEN_MAX + 2] = '\0';
    assert_int_equal(parse(text, 0, 0, &fa, &err), 0);
    imap_fetch_atts_free(&fa);
}

static void test_section_parse_direct(void **state)
{
    (void)state;
    struct imap_section sec;
    const char *err;
    assert_int_equal(imap_section_parse("", 0, 0, &sec, &err), 0);
    assert_int_equal(sec.nparts, 0);
    assert_int_equal(sec.text, IMAP_SECTION_ALL);
    imap_section_free(&sec);
    assert_int_equal(imap_section_parse("1.2", 3, 1, &sec, &err), 0);
    assert_int_equal(sec.nparts, 2);
    assert_int_equal(sec.part[1], 2);
    imap_section_free(&sec);
    assert_int_equal(imap_section_parse("TEXT", 4, 1, &sec, &err), -1);
    /* A NUL inside the bracket text is not a name byte. */
    assert_int_equal(imap_section_parse("HEADER.FIELDS (A\0B)", 19, 0, &sec, &err), -1);
}

static void test_section_name(void **state)
{
    (void)state;
    struct imap_section sec;
    const char *err;
    const char *spaced = "2.HEADER.FIELDS (x-a \"B C\")", *starred = "2.HEADER.FIELDS (x-a \"B*\")";
    assert_int_equal(imap_section_parse(spaced, strlen(spaced), 0, &sec, &err), -1); /* SP in a name */
    assert_int_equal(imap_section_parse(starred, strlen(starred), 0, &sec, &err), 0);
    char *name = imap_section_name("BODY", &sec, 1, 4294967295u);
    assert_string_equal(name, "BODY[2.HEADER.FIELDS (X-A \"B*\")]<4294967295>");
    free(name);
    name = imap_section_name("BINARY.SIZE", &sec, 0, 0);
    assert_string_equal(name, "BINARY.SIZE[2.HEADER.FIELDS (X-A \"B*\")]");
    free(name);
    imap_section_free(&sec);
    imap_section_free(&sec); /* twice is safe */
}

/* Through the real parser (parse.c): the bracket atom reaches fetch_atts whole. */
static void test_with_parser(void **state)
{
    (void)state;
    static const struct {
        const char *line;
        int ok;
        const char *first_name;
    } rows[] = {
        {"a1 FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.512>)", 1, "BODY[HEADER.FIELDS (FROM TO)]<0>"},
        {"a2 UID FETCH 1:* (UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (\"Subject\" DATE)])", 1,
         "BODY[HEADER.FIELDS (SUBJECT DATE)]"},
        {"a3 FETCH 2 BODY[1.2.MIME]", 1, "BODY[1.2.MIME]"},
        {"a4 FETCH 2 RFC822.HEADER", 1, "RFC822.HEADER"},
        {"a5 FETCH 2 (BODY[HEADER.FIELDS (A)] BODY[TEXT]<10.20>)", 1, "BODY[HEADER.FIELDS (A)]"},
        {"a6 FETCH 2 (BODY[HEADER.FIELDS ()])", 0, NULL},
        {"a7 FETCH 2 ALL", 1, NULL},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct imap_command cmd;
        const char *err = NULL;
        if (imap_parse_command(rows[i].line, strlen(rows[i].line), SIZE_MAX, 0, &cmd, &err) != 0)
            fail_msg("parse.c refused \"%s\": %s", rows[i].line, err);
        assert_int_equal(cmd.nargs, 2);
        struct imap_fetch_atts fa;
        int rc = imap_fetch_atts_parse(&cmd.args[1], cmd.uid, 0, &fa, &err);
        if ((rc == 0) != rows[i].ok)
            fail_msg("\"%s\": %s", rows[i].line, rc == 0 ? "accepted" : err);
        if (rc == 0 && rows[i].first_name != NULL) {
            assert_true(fa.nbodies > 0);
            assert_string_equal(fa.bodies[0].name, rows[i].first_name);
        }
        if (rc == 0 && cmd.uid)
            assert_true(fa.items & IMAP_FETCH_UID);
        imap_fetch_atts_free(&fa);
        imap_command_free(&cmd);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_macros_and_items), cmocka_unit_test(test_sections),
        cmocka_unit_test(test_field_names_kept), cmocka_unit_test(test_list_order_and_seen),
        cmocka_unit_test(test_options),          cmocka_unit_test(test_refused_table),
        cmocka_unit_test(test_bounds),           cmocka_unit_test(test_section_parse_direct),
        cmocka_unit_test(test_section_name),     cmocka_unit_test(test_with_parser),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
