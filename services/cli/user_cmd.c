/* `postmesh user add|del|passwd|list`: manages users_file. Passwords come from stdin, one
 * line (prompted twice without echo when stdin is a terminal), never from the command line
 * where `ps` would show them. */
#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "addr.h"
#include "cli.h"
#include "users.h"
#include "userfile.h"

#define MAX_PASSWORD 511 /* libcrypt's limit (CRYPT_MAX_PASSPHRASE_SIZE - 1) */

static struct termios saved_tty;

static void restore_tty_and_exit(int sig)
{
    (void)sig;
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
    _exit(CLI_FAIL);
}

/* One line from stdin into buf (without the line end). 0, or -1 after printing why. */
static int read_line(const char *prompt, char *buf, size_t size)
{
    int tty = isatty(STDIN_FILENO);
    struct sigaction sa = {.sa_handler = restore_tty_and_exit}, old_int, old_term;
    if (tty) {
        struct termios noecho;
        tcgetattr(STDIN_FILENO, &saved_tty);
        noecho = saved_tty;
        noecho.c_lflag &= ~(tcflag_t)ECHO;
        sigaction(SIGINT, &sa, &old_int);
        sigaction(SIGTERM, &sa, &old_term);
        fputs(prompt, stderr);
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &noecho);
    }
    char *got = fgets(buf, (int)size, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        fputc('\n', stderr);
    }
    if (!got) {
        cli_error("no password on standard input");
        return -1;
    }
    size_t n = strlen(buf);
    int complete = n && buf[n - 1] == '\n';
    if (!complete && !feof(stdin)) {
        cli_error("password longer than %d characters", MAX_PASSWORD);
        return -1;
    }
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    if (n == 0) {
        cli_error("empty password refused");
        return -1;
    }
    return 0;
}

/* The new hash line "address:{YESCRYPT}..." for the password on stdin, or NULL. */
static char *new_entry(const char *address)
{
    char pw[MAX_PASSWORD + 2], again[MAX_PASSWORD + 2];
    char *line = NULL;
    if (read_line("Password: ", pw, sizeof pw) < 0)
        goto out;
    if (isatty(STDIN_FILENO)) {
        if (read_line("Retype password: ", again, sizeof again) < 0)
            goto out;
        if (strcmp(pw, again) != 0) {
            cli_error("passwords do not match");
            goto out;
        }
    }
    char *hash = pm_users_hash_password(pw, "YESCRYPT");
    if (!hash) {
        cli_error("cannot hash the password");
        goto out;
    }
    size_t n = strlen(address) + strlen(hash) + 2;
    if ((line = malloc(n)))
        snprintf(line, n, "%s:%s", address, hash);
    free(hash);
out:
    explicit_bzero(pw, sizeof pw);
    explicit_bzero(again, sizeof again);
    return line;
}

/* Lower-cases address into dst after checking it is a plain local-part@domain (no quoting:
 * a mailbox name is also a directory name) in one of our domains. */
static int check_address(const struct pm_config *cfg, const char *address, char *dst, size_t size)
{
    struct pm_addr a;
    const char *why = NULL;
    if (pm_addr_parse_mailbox(address, strlen(address), PM_ADDR_STRICT, &a, &why) != PM_ADDR_OK || a.is_quoted ||
        a.is_literal || !a.domain[0]) {
        cli_error("'%s' is not an address of the form local-part@domain%s%s", address, why ? ": " : "",
                  why ? why : "");
        return -1;
    }
    if (!pm_config_is_local_domain(cfg, a.domain)) {
        cli_error("%s is not one of our domains (domains in %s)", a.domain, cfg->path);
        return -1;
    }
    snprintf(dst, size, "%s", a.address);
    for (char *p = dst; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return 0;
}

static int user_list(const struct pm_config *cfg)
{
    struct cli_userfile uf;
    char err[1024];
    int rc = CLI_OK;
    if (cli_userfile_open(&uf, cfg->users_file, 0, err, sizeof err) < 0) {
        cli_error("%s", err);
        rc = CLI_FAIL;
    }
    for (int i = 0; rc == CLI_OK && i < uf.n; i++) {
        char *a = cli_userfile_address(&uf, i);
        if (a)
            printf("%s\n", a);
        free(a);
    }
    cli_userfile_close(&uf);
    return rc;
}

/* add, del, passwd: one locked read-modify-write of the file. */
static int user_change(const struct pm_config *cfg, const char *verb, const char *arg)
{
    char address[PM_ADDR_MAX_PATH + 1];
    int is_add = !strcmp(verb, "add");
    if (is_add) {
        if (check_address(cfg, arg, address, sizeof address) < 0)
            return CLI_FAIL;
    } else {
        snprintf(address, sizeof address, "%s", arg);
    }
    struct cli_userfile uf;
    char err[1024];
    char *line = NULL;
    int rc = CLI_FAIL;
    if (cli_userfile_open(&uf, cfg->users_file, 1, err, sizeof err) < 0) {
        cli_error("%s", err);
        goto out;
    }
    int i = cli_userfile_find(&uf, address);
    if (is_add && i >= 0) {
        cli_error("user %s already exists", address);
        goto out;
    }
    if (!is_add && i < 0) {
        cli_error("no user %s in %s", address, cfg->users_file);
        goto out;
    }
    if (!strcmp(verb, "del")) {
        cli_userfile_remove(&uf, i);
    } else {
        char *stored = is_add ? NULL : cli_userfile_address(&uf, i); /* keep the file's spelling */
        if (stored)
            snprintf(address, sizeof address, "%s", stored);
        free(stored);
        line = new_entry(address);
        if (!line || (is_add ? cli_userfile_append(&uf, line) : cli_userfile_replace(&uf, i, line)) < 0)
            goto out;
    }
    if (cli_userfile_commit(&uf, err, sizeof err) < 0) {
        cli_error("%s", err);
        goto out;
    }
    printf("user %s %s\n", address, is_add ? "added" : !strcmp(verb, "del") ? "deleted" : "password changed");
    rc = CLI_OK;
out:
    if (line) {
        explicit_bzero(line, strlen(line));
        free(line);
    }
    cli_userfile_close(&uf);
    return rc;
}

int cli_cmd_user(const struct pm_config *cfg, int argc, char **argv)
{
    const char *verb = argc >= 2 ? argv[1] : "";
    if (!strcmp(verb, "list") && argc == 2)
        return user_list(cfg);
    if ((!strcmp(verb, "add") || !strcmp(verb, "del") || !strcmp(verb, "passwd")) && argc == 3)
        return user_change(cfg, verb, argv[2]);
    cli_error("usage: postmesh user add ADDRESS | passwd ADDRESS | del ADDRESS | list");
    return CLI_USAGE;
}
