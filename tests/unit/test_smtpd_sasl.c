/* smtpd SASL decoding: strict base64 and AUTH PLAIN messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "smtpd/sasl.h"

static void test_base64(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(smtpd_base64_decode("Zm9vYmFy", 8, out, sizeof out), 6);
    assert_string_equal(out, "foobar");
    assert_int_equal(smtpd_base64_decode("Zm9vYg==", 8, out, sizeof out), 4);
    assert_string_equal(out, "foob");
    assert_int_equal(smtpd_base64_decode("Zm9vYmE=", 8, out, sizeof out), 5);
    assert_int_equal(smtpd_base64_decode("", 0, out, sizeof out), 0);
    const char *bad[] = {"Zm9", "Zm9vY", "Zm9v!mFy", "Zg==Zg==", "Z===", "Zm 9v", "=m9v"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (smtpd_base64_decode(bad[i], strlen(bad[i]), out, sizeof out) != -1)
            fail_msg("accepted bad base64 %s", bad[i]);
    assert_int_equal(smtpd_base64_decode("Zm9vYmFy", 8, out, 6), -1); /* no room for the NUL */
    char enc[16];
    assert_int_equal(smtpd_base64_encode("foob", 4, enc, sizeof enc), 8);
    assert_string_equal(enc, "Zm9vYg==");
    assert_int_equal(smtpd_base64_encode("foob", 4, enc, 8), -1);
}

static void test_plain(void **state)
{
    (void)state;
    char user[64], pass[64], b64[128];
    smtpd_base64_encode("\0alice@example.test\0s3cret", 26, b64, sizeof b64);
    assert_int_equal(smtpd_sasl_plain(b64, strlen(b64), user, sizeof user, pass, sizeof pass), 0);
    assert_string_equal(user, "alice@example.test");
    assert_string_equal(pass, "s3cret");
    smtpd_base64_encode("alice@example.test\0alice@example.test\0pw", 40, b64, sizeof b64);
    assert_int_equal(smtpd_sasl_plain(b64, strlen(b64), user, sizeof user, pass, sizeof pass), 0);
    /* Authorizing as somebody else, missing separators, empty user, NUL in the password. */
    smtpd_base64_encode("bob@example.test\0alice@example.test\0pw", 38, b64, sizeof b64);
    assert_int_equal(smtpd_sasl_plain(b64, strlen(b64), user, sizeof user, pass, sizeof pass), -1);
    smtpd_base64_encode("alice", 5, b64, sizeof b64);
    assert_int_equal(smtpd_sasl_plain(b64, strlen(b64), user, sizeof user, pass, sizeof pass), -1);
    smtpd_base64_encode("\0alice", 6, b64, sizeof b64);
    assert_int_equal(smtpd_sasl_plain(b64, strlen(b64), user, sizeof user, pass, sizeof pass), -1);
    smtpd_base64_encode("\0\0pw", 4, b64, sizeof b64);
    assert_int_equal(smtpd_sasl_plain(b64, strlen(b64), user, sizeof user, pass, sizeof pass), -1);
    smtpd_base64_encode("\0a\0p\0w", 6, b64, sizeof b64);
    assert_int_equal(smtpd_sasl_plain(b64, strlen(b64), user, sizeof user, pass, sizeof pass), -1);
    assert_int_equal(smtpd_sasl_plain("!!!!", 4, user, sizeof user, pass, sizeof pass), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_base64), cmocka_unit_test(test_plain)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
