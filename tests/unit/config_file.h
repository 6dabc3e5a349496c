/* For the config loader's tests: a configuration written to a temporary file, and the
 * check that loading it fails with "<file>:<line>: " and a text. Include after cmocka.h. */
#ifndef TEST_CONFIG_FILE_H
#define TEST_CONFIG_FILE_H
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static char path[64];

static void write_conf(const char *text)
{
    strcpy(path, "/tmp/pmconfXXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

/* The error must start with "<path>:<line>: " (the file is the one we wrote, the line the
 * offending setting's) and then say what is wrong. */
static void expect_error(const char *text, int line, const char *needle)
{
    write_conf(text);
    struct pm_config cfg;
    char err[512], want[128];
    assert_int_equal(pm_config_load(path, &cfg, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:%d: ", path, line);
    if (strncmp(err, want, strlen(want)) != 0)
        fail_msg("error '%s' does not start with '%s'", err, want);
    if (!strstr(err + strlen(want), needle))
        fail_msg("error '%s' does not contain '%s'", err, needle);
    unlink(path);
}

#endif
