/* AUTH PLAIN decoding and strict base64 (the per-address lockout table, shared with smtpd,
 * is tested in test_smtpd_limits.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "pop3d/sasl.h"

static int plain(const char *b64, char *user, char *pass)
{
    return pop3_sasl_plain(b64, strlen(b64), user, 257, pass, 257);
}

static void test_base64(void **state)
{
    (void)state;
    unsigned char out[16];
    assert_int_equal(pop3_base64_decode("aGk=", 4, out, sizeof out), 2);
    assert_memory_equal(out, "hi", 2);
    assert_int_equal(pop3_base64_decode("aGVsbG8h", 8, out, sizeof out), 6);
    assert_int_equal(pop3_base64_decode("", 0, out, sizeof out), 0);
    assert_int_equal(pop3_base64_decode("aGk", 3, out, sizeof out), -1);      /* no padding */
    assert_int_equal(pop3_base64_decode("a=Gk", 4, out, sizeof out), -1);    /* pad inside */
    assert_int_equal(pop3_base64_decode("aGk=aGk=", 8, out, sizeof out), -1); /* data after pad */
    assert_int_equal(pop3_base64_decode("aG k", 4, out, sizeof out), -1);
    assert_int_equal(pop3_base64_decode("aGVsbG8h", 8, out, 5), -1);          /* does not fit */
}

static void test_plain(void **state)
{
    (void)state;
    char user[257], pass[257];
    /* "\0alice@example.test\0secret" */
    assert_int_equal(plain("AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=", user, pass), 0);
    assert_string_equal(user, "alice@example.test");
    assert_string_equal(pass, "secret");
    /* authzid equal to the user: fine ("alice\0alice\0pw") */
    assert_int_equal(plain("YWxpY2UAYWxpY2UAcHc=", user, pass), 0);
    assert_string_equal(user, "alice");
    assert_string_equal(pass, "pw");
    /* authzid of someone else: refused ("bob\0alice\0pw") */
    assert_int_equal(plain("Ym9iAGFsaWNlAHB3", user, pass), -1);
    /* one NUL only ("alice\0pw") */
    assert_int_equal(plain("YWxpY2UAcHc=", user, pass), -1);
    /* empty user ("\0\0pw") */
    assert_int_equal(plain("AABwdw==", user, pass), -1);
    /* a NUL inside the password ("\0a\0p\0w") */
    assert_int_equal(plain("AGEAcAB3", user, pass), -1);
    assert_int_equal(plain("not base64!", user, pass), -1);
    assert_int_equal(plain("", user, pass), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_plain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
