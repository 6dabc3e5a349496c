/* The reference configuration (deploy/local/postmesh.conf, what `make run` uses) lists every
 * key of the schema and nothing else, so it stays the one place a reader finds every setting
 * with its comment; and every configuration under deploy/ loads. Run from the repository root
 * (as `make unit` does). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <libconfig.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#define REFERENCE "deploy/local/postmesh.conf"

struct paths {
    char *v[256];
    int n;
};

/* The file's keys: every setting that is not a group, by its dotted path. A list (as
 * smtpd.listen's groups) is one key. */
static void collect(const config_setting_t *group, const char *prefix, struct paths *out)
{
    for (int i = 0; i < config_setting_length(group); i++) {
        const config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
        char path[256];
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", config_setting_name(s));
        if (config_setting_is_group(s))
            collect(s, path, out);
        else if (out->n < (int)(sizeof out->v / sizeof out->v[0]))
            out->v[out->n++] = strdup(path);
    }
}

static int listed(const struct paths *p, const char *key)
{
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->v[i], key) == 0)
            return 1;
    return 0;
}

static void test_reference_lists_every_key_and_nothing_else(void **state)
{
    (void)state;
    if (access(REFERENCE, R_OK) != 0)
        fail_msg("%s not found: run from the repository root", REFERENCE);
    config_t lc;
    config_init(&lc);
    if (!config_read_file(&lc, REFERENCE))
        fail_msg("%s:%d: %s", REFERENCE, config_error_line(&lc), config_error_text(&lc));
    struct paths file = {0};
    collect(config_root_setting(&lc), "", &file);
    config_destroy(&lc);

    char missing[2048] = "", unknown[2048] = "";
    size_t n = pm_config_key_count();
    assert_true(n > 50);
    assert_null(pm_config_key_path(n));
    for (size_t i = 0; i < n; i++)
        if (!listed(&file, pm_config_key_path(i)))
            snprintf(missing + strlen(missing), sizeof missing - strlen(missing), " %s", pm_config_key_path(i));
    for (int i = 0; i < file.n; i++) {
        size_t k = 0;
        while (k < n && strcmp(pm_config_key_path(k), file.v[i]) != 0)
            k++;
        if (k == n)
            snprintf(unknown + strlen(unknown), sizeof unknown - strlen(unknown), " %s", file.v[i]);
        for (int j = 0; j < i; j++)
            if (strcmp(file.v[j], file.v[i]) == 0)
                fail_msg("%s sets %s twice", REFERENCE, file.v[i]);
    }
    for (int i = 0; i < file.n; i++)
        free(file.v[i]);
    if (missing[0])
        fail_msg("%s lacks schema keys (add each with a comment):%s", REFERENCE, missing);
    if (unknown[0])
        fail_msg("%s sets keys the schema does not know:%s", REFERENCE, unknown);
}

static void test_deploy_configs_load(void **state)
{
    (void)state;
    const char *files[] = {REFERENCE, "deploy/compose/postmesh.conf", "deploy/k8s/postmesh.conf"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        struct pm_config cfg;
        char err[512];
        if (pm_config_load(files[i], &cfg, err, sizeof err) != 0)
            fail_msg("%s", err);
        assert_true(cfg.hostname && cfg.hostname[0]);
        pm_config_free(&cfg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_lists_every_key_and_nothing_else),
        cmocka_unit_test(test_deploy_configs_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
