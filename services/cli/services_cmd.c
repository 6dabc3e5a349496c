/* `postmesh services [--json]`: the list of common/services.def as a table for the operator,
 * or one JSON document for scripts and tests (which take their lists of services, users
 * and keys from it instead of keeping their own). Needs no configuration: the list is
 * the same on every host. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "json.h"
#include "services.h"

static const char *or_dash(const char *s) { return s ? s : "-"; }

static const char *role_of(const struct pm_svc *s) { return s->role == PM_ROLE_NONE ? NULL : pm_role_name(s->role); }

static void print_table(void)
{
    printf("%-9s %-9s %-18s %-5s %-6s %-7s %-12s %-5s %-4s %-4s %s\n", "name", "role", "user", "uid", "group",
           "chroot", "privsep", "start", "core", "key", "description");
    int order = 0;
    for (const struct pm_svc *s = pm_svc_table; s->name; s++) {
        char uid[16] = "-", start[16] = "-";
        if (s->user)
            snprintf(uid, sizeof uid, "%u", s->uid);
        if (pm_svc_supervised(s))
            snprintf(start, sizeof start, "%d", ++order);
        printf("%-9s %-9s %-18s %-5s %-6s %-7s %-12s %-5s %-4s %-4s %s\n", s->name, or_dash(role_of(s)),
               or_dash(s->user), uid, or_dash(s->group), or_dash(s->chroot_rel), pm_svc_privsep_name(s->privsep),
               start, !pm_svc_supervised(s) ? "-" : s->start == PM_SVC_START_CORE ? "yes" : "no",
               s->bus_key ? "yes" : "no", s->description);
    }
    for (const struct pm_svc_group *g = pm_svc_groups; g->name; g++)
        printf("group %s (gid %u): %s\n", g->name, g->gid, g->description);
}

static void json_field(const char *key, const char *value, int last)
{
    printf("\"%s\": ", key);
    if (value)
        cli_json_string(stdout, value);
    else
        fputs("null", stdout);
    fputs(last ? "" : ", ", stdout);
}

static void print_json(void)
{
    int order = 0;
    fputs("{\"services\": [", stdout);
    for (const struct pm_svc *s = pm_svc_table; s->name; s++) {
        fputs(s == pm_svc_table ? "\n  {" : ",\n  {", stdout);
        json_field("name", s->name, 0);
        json_field("role", role_of(s), 0);
        json_field("user", s->user, 0);
        if (s->user)
            printf("\"uid\": %u, ", s->uid);
        else
            fputs("\"uid\": null, ", stdout);
        json_field("group", s->group, 0);
        json_field("chroot", s->chroot_rel, 0);
        json_field("privsep", pm_svc_privsep_name(s->privsep), 0);
        if (pm_svc_supervised(s))
            printf("\"start\": %d, ", ++order);
        else
            fputs("\"start\": null, ", stdout);
        printf("\"core\": %s, \"bus_key\": %s, ", s->start == PM_SVC_START_CORE ? "true" : "false",
               s->bus_key ? "true" : "false");
        json_field("description", s->description, 1);
        fputs("}", stdout);
    }
    fputs("\n], \"groups\": [", stdout);
    for (const struct pm_svc_group *g = pm_svc_groups; g->name; g++) {
        fputs(g == pm_svc_groups ? "\n  {" : ",\n  {", stdout);
        json_field("name", g->name, 0);
        printf("\"gid\": %u, ", g->gid);
        json_field("description", g->description, 1);
        fputs("}", stdout);
    }
    fputs("\n]}\n", stdout);
}

int cli_cmd_services(int argc, char **argv)
{
    if (argc == 1) {
        print_table();
        return CLI_OK;
    }
    if (argc == 2 && strcmp(argv[1], "--json") == 0) {
        print_json();
        return CLI_OK;
    }
    cli_error("usage: postmesh services [--json]");
    return CLI_USAGE;
}
