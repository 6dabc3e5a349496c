/* The `postmesh` command: one entry point per command group, each in its own file. */
#ifndef PM_CLI_H
#define PM_CLI_H
#include <stddef.h>
#include <stdio.h>

#include "config.h"

/* Exit codes of every command. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* argv[0] is the command name ("queue", "user", ...); returns an exit code. */
int cli_cmd_run(const struct pm_config *cfg, const char *config_path, int argc, char **argv);
int cli_cmd_queue(const struct pm_config *cfg, int argc, char **argv);
int cli_cmd_status(const struct pm_config *cfg, int argc, char **argv);
int cli_cmd_user(const struct pm_config *cfg, int argc, char **argv);
int cli_cmd_check(const struct pm_config *cfg, const char *config_path, int argc, char **argv);
int cli_cmd_keys(const struct pm_config *cfg, int argc, char **argv);
int cli_cmd_dkim(const struct pm_config *cfg, int argc, char **argv);
int cli_cmd_ping(const struct pm_config *cfg, int argc, char **argv);
int cli_cmd_services(int argc, char **argv);

/* The CurveZMQ keys directory: bus.keys_dir, or state_dir/keys. Returns dst. */
char *cli_keys_dir(const struct pm_config *cfg, char *dst, size_t size);
/* Creates every bus participant's missing keypair; prints "name public-key" lines to out
 * (if not NULL). Returns how many pairs it created, or -1 (printed). */
int cli_keys_init(const struct pm_config *cfg, FILE *out);

/* Prints "postmesh: <message>" to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* mkdir -p with mode for the directories it creates. 0 or -1 (errno). */
int cli_mkdirs(const char *path, unsigned mode);

#endif
