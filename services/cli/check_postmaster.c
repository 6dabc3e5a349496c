/* `postmesh check`: where postmaster mail of each local domain goes (RFC 5321 4.5.1 makes
 * postmaster@ every local domain a valid recipient, common/postmaster.h). An alias sends it
 * on, as the queue will expand it at commit; without one it stays in the postmaster mailbox,
 * which needs a users entry (a password) only to be read over POP3. A local alias target
 * that is no user would bounce the postmaster's mail: that is a warning. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "aliases.h"
#include "check.h"
#include "mailstore.h"
#include "postmaster.h"
#include "userfile.h"

/* Has a local final address somewhere to go? 1 yes, 0 no (its mail bounces). */
static int deliverable(const struct pm_config *cfg, const struct cli_userfile *uf, const char *address)
{
    if (!pm_config_is_local_domain(cfg, pm_addr_domain(address)))
        return 1; /* remote: the mta's business */
    return pm_postmaster_is(cfg, address) || cli_userfile_find(uf, address) >= 0;
}

static void to_alias(struct cli_check_report *r, const struct pm_config *cfg, const struct pm_aliases *al,
                     const struct cli_userfile *uf, const char *pm)
{
    struct pm_strlist out = {0};
    char err[1024], list[2048] = "", bad[1024] = "";
    if (pm_aliases_expand(al, cfg, pm, &out, err, sizeof err) < 0) {
        cli_check_line(r, "FAIL", "postmaster", "%s: %s", pm, err);
        return;
    }
    size_t o = 0, b = 0;
    for (int i = 0; i < out.n; i++) {
        o += (size_t)snprintf(list + o, o < sizeof list ? sizeof list - o : 0, "%s%s", i ? ", " : "", out.v[i]);
        if (o >= sizeof list)
            o = sizeof list - 1;
        if (!deliverable(cfg, uf, out.v[i])) {
            b += (size_t)snprintf(bad + b, b < sizeof bad ? sizeof bad - b : 0, "%s%s", b ? ", " : "", out.v[i]);
            if (b >= sizeof bad)
                b = sizeof bad - 1;
        }
        free(out.v[i]);
    }
    free(out.v);
    if (*bad)
        cli_check_line(r, "warn", "postmaster", "%s -> %s (alias); not a user, so its mail bounces: %s", pm, list,
                       bad);
    else
        cli_check_line(r, "ok", "postmaster", "%s -> %s (alias)", pm, list);
}

static void to_mailbox(struct cli_check_report *r, const struct pm_config *cfg, const struct cli_userfile *uf,
                       const char *pm)
{
    char dir[4096];
    if (pm_mailstore_maildir(cfg, pm, dir, sizeof dir) < 0) {
        cli_check_line(r, "FAIL", "postmaster", "%s: no usable mailbox name", pm);
        return;
    }
    if (uf && cli_userfile_find(uf, pm) >= 0)
        cli_check_line(r, "ok", "postmaster", "%s -> mailbox %s (no alias; readable over POP3 as %s)", pm, dir, pm);
    else
        cli_check_line(r, "ok", "postmaster",
                       "%s -> mailbox %s (no alias; `postmesh user add %s` gives it a password for POP3)", pm, dir,
                       pm);
}

void cli_check_postmaster(struct cli_check_report *r, const struct pm_config *cfg)
{
    char err[1024];
    struct pm_aliases *al = pm_aliases_load(cfg->aliases_file, err, sizeof err);
    struct cli_userfile uf;
    int have_users = cli_userfile_open(&uf, cfg->users_file, 0, err, sizeof err) == 0;
    for (int i = 0; i < cfg->domains.n; i++) {
        char pm[600];
        snprintf(pm, sizeof pm, "postmaster@%s", cfg->domains.v[i]);
        if (!al || !have_users)
            cli_check_line(r, "warn", "postmaster", "%s: cannot tell where it goes (users or aliases file unreadable)",
                           pm);
        else if (pm_aliases_is_alias(al, cfg, pm))
            to_alias(r, cfg, al, &uf, pm);
        else
            to_mailbox(r, cfg, &uf, pm);
    }
    cli_userfile_close(&uf);
    pm_aliases_free(al);
}
