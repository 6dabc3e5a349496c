/* postmesh: the operator's command. `postmesh [-c FILE] COMMAND ...` */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "log.h"
#include "privsep.h"

static const char usage_text[] =
    "usage: postmesh [-c FILE] COMMAND [ARGS]\n"
    "\n"
    "  -c FILE               configuration (default $POSTMESH_CONFIG or /etc/postmesh/postmesh.conf)\n"
    "\n"
    "commands:\n"
    "  run                   start every installed service and supervise them in the foreground\n"
    "  check                 validate the configuration, users, aliases, TLS files, keys and\n"
    "                        permissions; show what each service would run as\n"
    "  status [--json]       every queue shard's counters (--json: one document for scripts)\n"
    "  ping [--live] SERVICE is SERVICE ready? GET /health on SERVICE.metrics (the queue without\n"
    "                        one: a bus ping to queue.control); exit 0 ready, 1 not, 2 cannot ask;\n"
    "                        --live: only whether it runs (/live), for liveness probes\n"
    "  queue list [--json]   one line per message of every shard: id age size sender state recipients\n"
    "  queue show ID         envelope and headers of one message (on whichever shard holds it)\n"
    "  queue flush           retry every deferred message now\n"
    "  queue hold ID         keep a message from being delivered\n"
    "  queue release ID      undo hold\n"
    "  queue delete ID       remove a message without a bounce\n"
    "  queue tlsrpt          send now the TLS reports (RFC 8460) of every day counted, today's too\n"
    "  user add ADDRESS      add a mailbox; the password is read from stdin (one line)\n"
    "  user passwd ADDRESS   set a new password (from stdin)\n"
    "  user del ADDRESS      remove a mailbox's login (its mail stays on disk)\n"
    "  user list             the addresses that can log in\n"
    "  keys init             create the bus keypairs (CurveZMQ) that are missing; print the public keys\n"
    "  keys list             name, public key and role of every key in the keys directory (the allowlist)\n"
    "  keys add ROLE.NAME    create a replica's own keypair (revocable alone) and say where its files go\n"
    "  keys where            which key files each service's host needs (each holds only its own secret)\n"
    "  dkim keygen DOMAIN SELECTOR [--ed25519] [--dir DIR]\n"
    "                        a new DKIM signing key (rsa-2048 or ed25519) readable by the queue only\n"
    "                        (default dir state_dir/dkim); prints the config entry and the DNS TXT record\n"
    "  services [--json]     every program of Postmesh: bus role, user and pinned uid, chroot, privilege\n"
    "                        separation, start order, bus key (--json: for scripts; reads no configuration)\n"
    "  help                  this text\n"
    "\n"
    "exit status: 0 ok, 1 failure, 2 usage or configuration error\n";

void cli_error(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "postmesh: %s\n", msg);
}

int cli_mkdirs(const char *path, unsigned mode)
{
    if (pm_privsep_mkdirs(path, mode) < 0)
        return -1;
    return pm_privsep_is_dir(path);
}

int main(int argc, char **argv)
{
    const char *config_path = pm_config_default_path();
    int opt;
    opterr = 0;
    while ((opt = getopt(argc, argv, "+c:h")) != -1) {
        if (opt == 'c') {
            config_path = optarg;
        } else if (opt == 'h') {
            fputs(usage_text, stdout);
            return CLI_OK;
        } else {
            cli_error(optopt == 'c' ? "-c needs a file name" : "unknown option -%c", optopt);
            fputs(usage_text, stderr);
            return CLI_USAGE;
        }
    }
    argc -= optind;
    argv += optind;
    if (argc == 0) {
        fputs(usage_text, stderr);
        return CLI_USAGE;
    }
    const char *cmd = argv[0];
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help")) {
        fputs(usage_text, stdout);
        return CLI_OK;
    }
    if (!strcmp(cmd, "services")) /* the same on every host: no configuration to load */
        return cli_cmd_services(argc, argv);
    static const char *const known[] = {"run", "check", "status", "queue", "user", "keys", "ping", "dkim", NULL};
    int found = 0;
    for (const char *const *k = known; *k; k++)
        found |= !strcmp(*k, cmd);
    if (!found) {
        cli_error("unknown command '%s'", cmd);
        fputs(usage_text, stderr);
        return CLI_USAGE;
    }

    pm_log_init("postmesh");
    struct pm_config cfg;
    char err[1024];
    if (pm_config_load(config_path, &cfg, err, sizeof err) < 0) {
        cli_error("%s", err);
        return CLI_USAGE;
    }
    pm_log_set_debug(cfg.debug);
    int rc;
    if (!strcmp(cmd, "run"))
        rc = cli_cmd_run(&cfg, config_path, argc, argv);
    else if (!strcmp(cmd, "check"))
        rc = cli_cmd_check(&cfg, config_path, argc, argv);
    else if (!strcmp(cmd, "status"))
        rc = cli_cmd_status(&cfg, argc, argv);
    else if (!strcmp(cmd, "queue"))
        rc = cli_cmd_queue(&cfg, argc, argv);
    else if (!strcmp(cmd, "keys"))
        rc = cli_cmd_keys(&cfg, argc, argv);
    else if (!strcmp(cmd, "dkim"))
        rc = cli_cmd_dkim(&cfg, argc, argv);
    else if (!strcmp(cmd, "ping"))
        rc = cli_cmd_ping(&cfg, argc, argv);
    else
        rc = cli_cmd_user(&cfg, argc, argv);
    pm_config_free(&cfg);
    return rc;
}
