/* postmesh-uidlist: round trip, recovery from missing and corrupt files (bounded), the lock,
 * and the flag letters of file names (mflags). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "imapd/mflags.h"
#include "imapd/uidlist.h"

static char dir[128];

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/pmuidXXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

static void put_file(const char *content, size_t len)
{
    char path[256];
    snprintf(path, sizeof path, "%s/" IMAP_UIDLIST_FILE, dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(content, 1, len, f), len);
    fclose(f);
}

static void test_missing_then_round_trip(void **state)
{
    (void)state;
    struct imap_uidlist ul;
    assert_int_equal(imap_uidlist_load(dir, &ul), IMAP_UIDLIST_NEW);
    assert_int_equal(ul.uidnext, 1);
    assert_true(ul.uidvalidity + 5 >= (uint32_t)time(NULL));
    uint32_t validity = ul.uidvalidity;
    assert_int_equal(imap_uidlist_add(&ul, "1700000000.a.host", 17), 1);
    assert_int_equal(imap_uidlist_add(&ul, "Q1.0.ABC.host,S=12", 18), 2);
    assert_int_equal(imap_uidlist_add(&ul, "bad key", 7), 0);
    assert_int_equal(imap_uidlist_add(&ul, ".hidden", 7), 0);
    assert_int_equal(imap_uidlist_write(dir, &ul), 0);
    imap_uidlist_free(&ul);

    assert_int_equal(imap_uidlist_load(dir, &ul), IMAP_UIDLIST_OK);
    assert_int_equal(ul.uidvalidity, validity);
    assert_int_equal(ul.uidnext, 3);
    assert_int_equal(ul.n, 2);
    assert_int_equal(imap_uidlist_find(&ul, "Q1.0.ABC.host,S=12", 18), 2);
    assert_int_equal(imap_uidlist_find(&ul, "Q1.0.ABC.host,S=12:2,S", 18), 2); /* by length */
    assert_int_equal(imap_uidlist_find(&ul, "nope", 4), 0);
    imap_uidlist_free(&ul);

    char path[256];
    snprintf(path, sizeof path, "%s/" IMAP_UIDLIST_TMP, dir);
    assert_int_not_equal(access(path, F_OK), 0); /* the tmp file was renamed away */
}

static void test_exact_format(void **state)
{
    (void)state;
    const char text[] = "postmesh-uidlist 1 1234 10\n3 a\n7 b.c,S=5\n";
    put_file(text, sizeof text - 1);
    struct imap_uidlist ul;
    assert_int_equal(imap_uidlist_load(dir, &ul), IMAP_UIDLIST_OK);
    assert_int_equal(ul.uidvalidity, 1234);
    assert_int_equal(ul.uidnext, 10);
    assert_int_equal(imap_uidlist_find(&ul, "a", 1), 3);
    assert_int_equal(imap_uidlist_find(&ul, "b.c,S=5", 7), 7);
    assert_int_equal(imap_uidlist_add(&ul, "d", 1), 10);
    assert_int_equal(imap_uidlist_write(dir, &ul), 0);
    imap_uidlist_free(&ul);
    char path[256], buf[256] = "";
    snprintf(path, sizeof path, "%s/" IMAP_UIDLIST_FILE, dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* Version 1 is read (nothing but new/ recent: first_recent = uidnext), version 2 written. */
    assert_string_equal(buf, "postmesh-uidlist 2 1234 11 10\n3 a\n7 b.c,S=5\n10 d\n");
    const char v2[] = "postmesh-uidlist 2 99 12 7\n3 a\n";
    put_file(v2, sizeof v2 - 1);
    assert_int_equal(imap_uidlist_load(dir, &ul), IMAP_UIDLIST_OK);
    assert_int_equal(ul.uidvalidity, 99);
    assert_int_equal(ul.uidnext, 12);
    assert_int_equal(ul.first_recent, 7);
    imap_uidlist_free(&ul);
}

static uint32_t counter_value(const char *d)
{
    char path[256], buf[32] = "";
    snprintf(path, sizeof path, "%s/" IMAP_UIDVALIDITY_FILE, d);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return (uint32_t)strtoul(buf, NULL, 10);
}

static void put_counter(const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/" IMAP_UIDVALIDITY_FILE, dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* RFC 3501 §2.3.1.1: a name's UIDVALIDITY never repeats. Lists made within one second (a
 * folder deleted and made again, a lost list) get increasing values from the user's
 * counter in the Maildir, whichever folder they are for. */
static void test_uidvalidity_counter(void **state)
{
    (void)state;
    char folder[256], list[300];
    snprintf(folder, sizeof folder, "%s/.Again", dir);
    snprintf(list, sizeof list, "%s/" IMAP_UIDLIST_FILE, folder);
    assert_int_equal(mkdir(folder, 0700), 0);
    struct imap_uidlist ul;
    uint32_t last = 0;
    for (int round = 0; round < 3; round++) { /* within the same second */
        assert_int_equal(imap_uidlist_load(folder, &ul), IMAP_UIDLIST_NEW);
        assert_true(ul.uidvalidity > last);
        assert_true(ul.uidvalidity + 5 >= (uint32_t)time(NULL));
        last = ul.uidvalidity;
        assert_int_equal(imap_uidlist_write(folder, &ul), 0);
        imap_uidlist_free(&ul);
        assert_true(counter_value(dir) >= last); /* kept in the Maildir, not the folder */
        assert_int_equal(counter_value(folder), 0);
        assert_int_equal(unlink(list), 0);
    }
    /* INBOX (the Maildir itself) counts on the same counter; a trailing '/' changes nothing. */
    char slash[300];
    snprintf(slash, sizeof slash, "%s/", dir);
    assert_int_equal(imap_uidlist_load(slash, &ul), IMAP_UIDLIST_NEW);
    assert_int_equal(ul.uidvalidity, last + 1);
    imap_uidlist_free(&ul);
    /* A corrupt list: above its old value and above the counter. */
    FILE *f = fopen(list, "w");
    fprintf(f, "postmesh-uidlist 2 %u 5 1\nbad\n", last + 1000);
    fclose(f);
    assert_int_equal(imap_uidlist_load(folder, &ul), IMAP_UIDLIST_RESET);
    assert_int_equal(ul.uidvalidity, last + 1001);
    imap_uidlist_free(&ul);
    assert_true(counter_value(dir) >= last + 1001);
    unlink(list);
    /* A damaged counter leaves "now" as the floor; one at the end refuses to wrap. */
    put_counter("junk");
    assert_int_equal(imap_uidlist_load(folder, &ul), IMAP_UIDLIST_NEW);
    assert_true(ul.uidvalidity + 5 >= (uint32_t)time(NULL));
    imap_uidlist_free(&ul);
    put_counter("4294967295\n");
    errno = 0;
    assert_int_equal(imap_uidvalidity_next(folder, 0), 0);
    assert_int_equal(errno, EOVERFLOW);
    assert_int_equal(imap_uidlist_load(folder, &ul), IMAP_UIDLIST_ERR);
    imap_uidlist_free(&ul);
    put_counter("4000000000\n");
    assert_int_equal(imap_uidvalidity_next(folder, 0), 4000000001u);
    assert_int_equal(imap_uidvalidity_next(folder, 4100000000u), 4100000001u);
    /* A block of values per counter write: the next ones come without one, until another
     * process (here: the file rewritten) reserves; then a fresh block above its values. */
    uint32_t end = counter_value(dir);
    assert_true(end > 4100000001u);
    assert_int_equal(imap_uidvalidity_next(folder, 0), 4100000002u);
    assert_int_equal(counter_value(dir), end);
    put_counter("4200000000\n");
    assert_int_equal(imap_uidvalidity_next(dir, 0), 4200000001u);
    put_counter("4294967295\n");
    assert_int_equal(imap_uidvalidity_next(folder, 0), 0);
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s/" IMAP_UIDVALIDITY_TMP, dir);
    assert_int_not_equal(access(tmp, F_OK), 0);
}

/* Each corrupt file is replaced by an empty list with a higher UIDVALIDITY (when the
 * header was readable) and never crashes or reads past the data. */
static void test_corrupt_files(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "garbage\n",
        "postmesh-uidlist 2 100 5\n",
        "postmesh-uidlist 1 0 5\n",
        "postmesh-uidlist 1 4000000000 5\n1 a\n",   /* fine header... */
        "postmesh-uidlist 1 100 5\n1 a\n1 b\n",      /* uids not ascending */
        "postmesh-uidlist 1 100 5\n2 a\n1 b\n",
        "postmesh-uidlist 1 100 5\n5 a\n",           /* uid >= uidnext */
        "postmesh-uidlist 1 100 5\n1 a b\n",         /* space in key */
        "postmesh-uidlist 1 100 5\n1 \n",            /* empty key */
        "postmesh-uidlist 1 100 5\n1 a\n2 a\n",      /* duplicate key */
        "postmesh-uidlist 1 100 5\n01 a\n",
        "postmesh-uidlist 1 100 99999999999\n",
        "postmesh-uidlist 1 100 5\n1 .x\n",
        "postmesh-uidlist 1 100 5\n1 a\n\n",          /* empty line */
        "postmesh-uidlist 1 100 5",                    /* no newline after header */
        "postmesh-uidlist 1 100 5\nx a\n",
        "postmesh-uidlist 2 100 5 6\n",             /* first recent above uidnext */
        "postmesh-uidlist 2 100 5 0\n",
        "postmesh-uidlist 2 100 5 1 \n",
        "postmesh-uidlist 2 100 5 1",
        "postmesh-uidlist 3 100 5 1\n",
        "postmesh-uidlist 1 100 5 1\n",             /* version 1 has no first recent */
        "postmesh-uidlist 2",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        put_file(bad[i], strlen(bad[i]));
        struct imap_uidlist ul;
        int rc = imap_uidlist_load(dir, &ul);
        if (i == 4) {
            assert_int_equal(rc, IMAP_UIDLIST_OK); /* 1 < 5, valid */
        } else {
            assert_int_equal(rc, IMAP_UIDLIST_RESET);
            assert_int_equal(ul.n, 0);
            assert_int_equal(ul.uidnext, 1);
            if (strncmp(bad[i], "postmesh-uidlist 1 100 ", 23) == 0 || strncmp(bad[i], "postmesh-uidlist 2 100 ", 23) == 0)
                assert_true(ul.uidvalidity > 100);
        }
        imap_uidlist_free(&ul);
    }
    /* A key of 300 bytes (longer than any file name). */
    char big[512];
    int n = snprintf(big, sizeof big, "postmesh-uidlist 1 100 5\n1 %0300d\n", 7);
    put_file(big, (size_t)n);
    struct imap_uidlist ul;
    assert_int_equal(imap_uidlist_load(dir, &ul), IMAP_UIDLIST_RESET);
    imap_uidlist_free(&ul);
    /* A file with a NUL in it. */
    put_file("postmesh-uidlist 1 100 5\n1 a\0b\n", 31);
    assert_int_equal(imap_uidlist_load(dir, &ul), IMAP_UIDLIST_RESET);
    imap_uidlist_free(&ul);
}

/* A last line without its newline is read (a list we wrote always has one, but a reader
 * must not run past the end). A validity near UINT32_MAX never wraps to 0. */
static void test_edges(void **state)
{
    (void)state;
    put_file("postmesh-uidlist 1 100 5\n1 a\n2 b", 32);
    struct imap_uidlist ul;
    assert_int_equal(imap_uidlist_load(dir, &ul), IMAP_UIDLIST_OK);
    assert_int_equal(imap_uidlist_find(&ul, "b", 1), 2);
    imap_uidlist_free(&ul);

    /* UIDs (nearly) used up, hostile or torn: renumbered from 1 under a new UIDVALIDITY
     * (RFC 9051 §2.3.1.1), not kept (every new message would go without a UID). */
    put_file("postmesh-uidlist 1 4294967295 4294967295\n", 41);
    assert_int_equal(imap_uidlist_load(dir, &ul), IMAP_UIDLIST_RESET);
    assert_int_not_equal(ul.uidvalidity, 4294967295u);
    assert_int_equal(ul.uidnext, 1);
    assert_int_equal(imap_uidlist_add(&ul, "x", 1), 1);
    imap_uidlist_free(&ul);
    put_file("postmesh-uidlist 1 100 4294967295\n1 a\n", 38);
    assert_int_equal(imap_uidlist_load(dir, &ul), IMAP_UIDLIST_RESET);
    assert_true(ul.uidvalidity > 100);
    assert_int_equal(ul.n, 0);
    imap_uidlist_free(&ul);
    char text[80];
    int len = snprintf(text, sizeof text, "postmesh-uidlist 1 100 %u\n", IMAP_UIDNEXT_LIMIT);
    put_file(text, (size_t)len);
    assert_int_equal(imap_uidlist_load(dir, &ul), IMAP_UIDLIST_OK); /* room for one COPY yet */
    imap_uidlist_free(&ul);
    len = snprintf(text, sizeof text, "postmesh-uidlist 1 100 %u\n", IMAP_UIDNEXT_LIMIT + 1);
    put_file(text, (size_t)len);
    assert_int_equal(imap_uidlist_load(dir, &ul), IMAP_UIDLIST_RESET);
    imap_uidlist_free(&ul);
}

/* A file above the size bound is not read into memory: it reads as corrupt. */
static void test_huge_file(void **state)
{
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s/" IMAP_UIDLIST_FILE, dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "postmesh-uidlist 1 100 5\n", 25), 25);
    assert_int_equal(ftruncate(fd, (off_t)IMAP_UIDLIST_FILE_MAX + 1), 0); /* sparse */
    close(fd);
    struct imap_uidlist ul;
    assert_int_equal(imap_uidlist_load(dir, &ul), IMAP_UIDLIST_RESET);
    imap_uidlist_free(&ul);
}

/* More entries than IMAP_UIDLIST_MAX: refused as a whole (RESET), not allocated on. */
static void test_too_many_entries(void **state)
{
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s/" IMAP_UIDLIST_FILE, dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "postmesh-uidlist 1 100 %u\n", IMAP_UIDLIST_MAX + 10);
    for (unsigned i = 1; i <= IMAP_UIDLIST_MAX + 1; i++)
        fprintf(f, "%u k%u\n", i, i);
    fclose(f);
    struct imap_uidlist ul;
    assert_int_equal(imap_uidlist_load(dir, &ul), IMAP_UIDLIST_RESET);
    assert_int_equal(ul.n, 0);
    imap_uidlist_free(&ul);
}

static int keep_odd(void *arg, const char *key)
{
    (void)arg;
    return (key[1] - '0') % 2;
}

static void test_put_and_prune(void **state)
{
    (void)state;
    struct imap_uidlist ul;
    imap_uidlist_init(&ul, 77);
    assert_int_equal(imap_uidlist_add(&ul, "k1", 2), 1);
    assert_int_equal(imap_uidlist_put(&ul, 5, "k5", 2), 0);
    assert_int_equal(ul.uidnext, 6);
    assert_int_equal(imap_uidlist_put(&ul, 3, "k3", 2), 0); /* in the middle */
    assert_int_equal(imap_uidlist_put(&ul, 3, "k4", 2), -1); /* taken */
    assert_int_equal(ul.v[1].uid, 3);
    assert_int_equal(imap_uidlist_find(&ul, "k5", 2), 5);
    assert_int_equal(imap_uidlist_add(&ul, "k6", 2), 6);
    imap_uidlist_prune(&ul, keep_odd, NULL);
    assert_int_equal(ul.n, 3);
    assert_int_equal(imap_uidlist_find(&ul, "k6", 2), 0);
    assert_int_equal(imap_uidlist_find(&ul, "k3", 2), 3);
    assert_int_equal(ul.uidnext, 7); /* never goes back */
    imap_uidlist_free(&ul);
}

static void test_lock_excludes(void **state)
{
    (void)state;
    int fd = imap_uidlist_lock(dir);
    assert_true(fd >= 0);
    char path[256];
    snprintf(path, sizeof path, "%s/" IMAP_UIDLIST_LOCK, dir);
    int other = open(path, O_RDWR);
    assert_true(other >= 0);
    assert_int_equal(flock(other, LOCK_EX | LOCK_NB), -1); /* another open file: excluded */
    assert_int_equal(errno, EWOULDBLOCK);
    imap_uidlist_unlock(fd);
    assert_int_equal(flock(other, LOCK_EX | LOCK_NB), 0);
    close(other);
}

static void test_key_ok(void **state)
{
    (void)state;
    assert_true(imap_uidlist_key_ok("1700000000.M1P2.host", 20));
    assert_false(imap_uidlist_key_ok("", 0));
    assert_false(imap_uidlist_key_ok(".x", 2));
    assert_false(imap_uidlist_key_ok("a/b", 3));
    assert_false(imap_uidlist_key_ok("a b", 3));
    assert_false(imap_uidlist_key_ok("a\nb", 3));
    assert_false(imap_uidlist_key_ok("a\x80", 2));
    char k[300];
    memset(k, 'a', sizeof k);
    assert_true(imap_uidlist_key_ok(k, IMAP_NAME_MAX));
    assert_false(imap_uidlist_key_ok(k, IMAP_NAME_MAX + 1));
}

/* ---- mflags ---- */
static void test_mflags_names(void **state)
{
    (void)state;
    assert_int_equal(imap_mflags_from_name("key"), 0);
    assert_int_equal(imap_mflags_from_name("key:2,"), 0);
    assert_int_equal(imap_mflags_from_name("key:2,FS"), IMAP_F_FLAGGED | IMAP_F_SEEN);
    assert_int_equal(imap_mflags_from_name("key:2,DFPRST"), IMAP_F_PERMANENT);
    assert_int_equal(imap_mflags_from_name("key:1,S"), 0);
    assert_int_equal(imap_mflags_keylen("key,S=5:2,S"), 7);

    char out[IMAP_NAME_MAX + 1];
    assert_int_equal(imap_mflags_name("key", IMAP_F_SEEN, out, sizeof out), 0);
    assert_string_equal(out, "key:2,S");
    assert_int_equal(imap_mflags_name("key:2,S", IMAP_F_SEEN | IMAP_F_ANSWERED | IMAP_F_DELETED, out, sizeof out), 0);
    assert_string_equal(out, "key:2,RST");
    /* Letters not ours stay: P ($Forwarded) and Dovecot keywords a, c; sorted ASCII. */
    assert_int_equal(imap_mflags_name("key:2,PSac", IMAP_F_DRAFT, out, sizeof out), 0);
    assert_string_equal(out, "key:2,DPac");
    assert_int_equal(imap_mflags_name("key:2,SS", IMAP_F_SEEN, out, sizeof out), 0);
    assert_string_equal(out, "key:2,S");
    assert_int_equal(imap_mflags_name("key:2,S", 0, out, sizeof out), 0);
    assert_string_equal(out, "key:2,");
    char small[8];
    assert_int_equal(imap_mflags_name("key", IMAP_F_PERMANENT, small, sizeof small), -1);
    char longname[IMAP_NAME_MAX + 1];
    memset(longname, 'k', IMAP_NAME_MAX - 3);
    longname[IMAP_NAME_MAX - 3] = '\0';
    assert_int_equal(imap_mflags_name(longname, 0, out, sizeof out), 0);
    assert_int_equal(imap_mflags_name(longname, IMAP_F_SEEN, out, sizeof out), -1); /* past NAME_MAX */
}

static void test_mflags_text(void **state)
{
    (void)state;
    char buf[IMAP_MFLAGS_TEXT_MAX];
    imap_mflags_text(0, buf, sizeof buf);
    assert_string_equal(buf, "()");
    imap_mflags_text(IMAP_F_SEEN | IMAP_F_FLAGGED, buf, sizeof buf);
    assert_string_equal(buf, "(\\Flagged \\Seen)");
    size_t n = imap_mflags_text(IMAP_F_PERMANENT | IMAP_F_RECENT, buf, sizeof buf);
    assert_string_equal(buf, "(\\Answered \\Flagged \\Deleted \\Seen \\Draft \\Recent)");
    assert_int_equal(n, strlen(buf));
}

static struct imap_arg atom(const char *s) { return (struct imap_arg){.type = IMAP_ARG_ATOM, .s = s, .len = strlen(s)}; }

static void test_mflags_parse(void **state)
{
    (void)state;
    unsigned bit;
    assert_int_equal(imap_mflags_parse_flag("\\seen", 5, &bit), 0);
    assert_int_equal(bit, IMAP_F_SEEN);
    assert_int_equal(imap_mflags_parse_flag("\\DRAFT", 6, &bit), 0);
    assert_int_equal(bit, IMAP_F_DRAFT);
    assert_int_equal(imap_mflags_parse_flag("$Forwarded", 10, &bit), 0);
    assert_int_equal(bit, 0);
    assert_int_equal(imap_mflags_parse_flag("\\Recent", 7, &bit), -1);
    assert_int_equal(imap_mflags_parse_flag("\\Foo", 4, &bit), -1);
    assert_int_equal(imap_mflags_parse_flag("\\", 1, &bit), -1);
    assert_int_equal(imap_mflags_parse_flag("\\*", 2, &bit), -1);
    assert_int_equal(imap_mflags_parse_flag("a]b", 3, &bit), -1);
    assert_int_equal(imap_mflags_parse_flag("", 0, &bit), -1);

    struct imap_arg elems[] = {atom("\\Seen"), atom("\\Deleted"), atom("NonJunk")};
    struct imap_arg list = {.type = IMAP_ARG_LIST, .list = elems, .n = 3};
    unsigned flags;
    assert_int_equal(imap_mflags_parse(&list, 1, &flags), 0);
    assert_int_equal(flags, IMAP_F_SEEN | IMAP_F_DELETED);
    assert_int_equal(imap_mflags_parse(elems, 2, &flags), 0); /* STORE's bare flags */
    assert_int_equal(flags, IMAP_F_SEEN | IMAP_F_DELETED);
    struct imap_arg empty = {.type = IMAP_ARG_LIST};
    assert_int_equal(imap_mflags_parse(&empty, 1, &flags), 0);
    assert_int_equal(flags, 0);
    assert_int_equal(imap_mflags_parse(elems, 0, &flags), -1);
    struct imap_arg quoted = {.type = IMAP_ARG_QUOTED, .s = "\\Seen", .len = 5};
    assert_int_equal(imap_mflags_parse(&quoted, 1, &flags), -1);
    struct imap_arg nested = {.type = IMAP_ARG_LIST, .list = &list, .n = 1};
    assert_int_equal(imap_mflags_parse(&nested, 1, &flags), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_missing_then_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exact_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_uidvalidity_counter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_huge_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_many_entries, setup, teardown),
        cmocka_unit_test(test_put_and_prune),
        cmocka_unit_test_setup_teardown(test_lock_excludes, setup, teardown),
        cmocka_unit_test(test_key_ok),
        cmocka_unit_test(test_mflags_names),
        cmocka_unit_test(test_mflags_text),
        cmocka_unit_test(test_mflags_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
