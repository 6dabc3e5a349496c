/* What smtpd's helper answers the worker: passwords, local recipients (users and aliases,
 * bare-local-part aliases in every local domain) and the senders a user may use; -1 when
 * the users file is unusable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smtpd/lookup.h"
#include "users.h"

static char dir[64], users_path[128], aliases_path[128];
static char *domains[] = {"example.test", NULL};
static struct pm_config cfg;

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/pmlookupXXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(users_path, sizeof users_path, "%s/users", dir);
    snprintf(aliases_path, sizeof aliases_path, "%s/aliases", dir);
    char *hash = pm_users_hash_password("secret", "SHA512-CRYPT");
    char line[512];
    snprintf(line, sizeof line, "alice@example.test:%s\n", hash);
    free(hash);
    write_file(users_path, line);
    write_file(aliases_path, "postmaster: alice@example.test\nsales@example.test: alice@example.test, bob@remote.test\n"
                             "ghost@example.test: nobody@example.test\n");
    memset(&cfg, 0, sizeof cfg);
    cfg.users_file = users_path;
    cfg.aliases_file = aliases_path;
    cfg.domains.v = domains;
    cfg.domains.n = 1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(users_path);
    unlink(aliases_path);
    return rmdir(dir);
}

static int ask(struct smtpd_lookup *l, enum pm_priv_op op, const char *a, const char *b)
{
    struct pm_priv_msg req = {.id = 1, .op = op, .a = (char *)a, .b = (char *)b}, reply = {.result = 7};
    smtpd_lookup_answer(l, &req, &reply);
    return reply.result;
}

static void test_answers(void **state)
{
    (void)state;
    struct smtpd_lookup *l = smtpd_lookup_open(&cfg);
    assert_non_null(l);
    assert_int_equal(ask(l, PM_PRIV_AUTH, "alice@example.test", "secret"), 1);
    assert_int_equal(ask(l, PM_PRIV_AUTH, "ALICE@example.test", "secret"), 1);
    assert_int_equal(ask(l, PM_PRIV_AUTH, "alice@example.test", "Secret"), 0);
    assert_int_equal(ask(l, PM_PRIV_AUTH, "nobody@example.test", "secret"), 0);
    assert_int_equal(ask(l, PM_PRIV_AUTH, "alice@example.test", NULL), 0);

    assert_int_equal(ask(l, PM_PRIV_RCPT_EXISTS, "alice@example.test", NULL), 1);
    assert_int_equal(ask(l, PM_PRIV_RCPT_EXISTS, "postmaster@example.test", NULL), 1);
    assert_int_equal(ask(l, PM_PRIV_RCPT_EXISTS, "ghost@example.test", NULL), 1); /* an alias exists */
    assert_int_equal(ask(l, PM_PRIV_RCPT_EXISTS, "nobody@example.test", NULL), 0);
    assert_int_equal(ask(l, PM_PRIV_RCPT_EXISTS, "", NULL), 0); /* the parent's start-up probe */

    assert_int_equal(ask(l, PM_PRIV_SENDER_OK, "alice@example.test", "Alice@Example.test"), 1);
    assert_int_equal(ask(l, PM_PRIV_SENDER_OK, "alice@example.test", "sales@example.test"), 1);
    assert_int_equal(ask(l, PM_PRIV_SENDER_OK, "alice@example.test", "ghost@example.test"), 0);
    assert_int_equal(ask(l, PM_PRIV_SENDER_OK, "alice@example.test", "bob@remote.test"), 0);

    assert_int_equal(ask(l, PM_PRIV_TLS_PEM, "x", "y"), -1); /* not a question for the helper */
    smtpd_lookup_free(l);
}

static void test_unusable_users_file(void **state)
{
    (void)state;
    write_file(users_path, "this is not a users line\n");
    struct smtpd_lookup *l = smtpd_lookup_open(&cfg);
    assert_int_equal(ask(l, PM_PRIV_AUTH, "alice@example.test", "secret"), -1);
    assert_int_equal(ask(l, PM_PRIV_RCPT_EXISTS, "alice@example.test", NULL), -1);
    assert_int_equal(ask(l, PM_PRIV_SENDER_OK, "alice@example.test", "sales@example.test"), 1); /* aliases only */
    smtpd_lookup_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unusable_users_file, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
