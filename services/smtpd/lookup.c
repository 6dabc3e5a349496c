#include "lookup.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "aliases.h"
#include "log.h"
#include "users.h"

struct smtpd_lookup {
    const struct pm_config *cfg;
    struct pm_users *users;     /* NULL while the file is unreadable */
    struct pm_aliases *aliases;
    time_t checked;
};

static void load(struct smtpd_lookup *l)
{
    char err[512], v[PM_LOGV_SIZE];
    if (!l->users && !(l->users = pm_users_load(l->cfg->users_file, err, sizeof err)))
        pm_log(PM_ERR, "event=users_error error=%s", PM_LV(v, err));
    if (!l->aliases && !(l->aliases = pm_aliases_load(l->cfg->aliases_file, err, sizeof err)))
        pm_log(PM_ERR, "event=aliases_error error=%s", PM_LV(v, err));
}

/* Re-reads what changed: the users file at every question (the parent hands a changed file
 * over before the question that should see it, heldfile.h; checking costs an fstat), the
 * aliases at most once a second. */
static void refresh(struct smtpd_lookup *l)
{
    char err[512], v[PM_LOGV_SIZE];
    time_t now = time(NULL);
    int aliases_due = now != l->checked;
    l->checked = now;
    if (aliases_due && (!l->users || !l->aliases))
        load(l); /* a file that was unusable: try again, once a second */
    int r = l->users ? pm_users_reload_if_changed(&l->users, err, sizeof err) : 0;
    if (r < 0)
        pm_log(PM_ERR, "event=users_error error=%s", PM_LV(v, err));
    else if (r > 0)
        pm_log(PM_INFO, "event=users_reloaded file=%s", l->cfg->users_file);
    r = aliases_due && l->aliases ? pm_aliases_reload_if_changed(&l->aliases, err, sizeof err) : 0;
    if (r < 0)
        pm_log(PM_ERR, "event=aliases_error error=%s", PM_LV(v, err));
    else if (r > 0)
        pm_log(PM_INFO, "event=aliases_reloaded file=%s", l->cfg->aliases_file);
}

struct smtpd_lookup *smtpd_lookup_open(const struct pm_config *cfg)
{
    struct smtpd_lookup *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->cfg = cfg;
    load(l);
    l->checked = time(NULL);
    return l;
}

void smtpd_lookup_free(struct smtpd_lookup *l)
{
    if (!l)
        return;
    pm_users_free(l->users);
    pm_aliases_free(l->aliases);
    free(l);
}

int smtpd_lookup_local_exists(const struct pm_users *users, const struct pm_aliases *aliases,
                              const struct pm_config *cfg, const char *address)
{
    if (users && pm_users_exists(users, address))
        return 1;
    return aliases && pm_aliases_is_alias(aliases, cfg, address);
}

int smtpd_lookup_owns(const struct pm_aliases *aliases, const struct pm_config *cfg, const char *user,
                      const char *address)
{
    if (strcasecmp(user, address) == 0)
        return 1;
    if (!aliases || !pm_aliases_is_alias(aliases, cfg, address))
        return 0;
    struct pm_strlist out = {0};
    char err[256];
    int found = 0;
    if (pm_aliases_expand(aliases, cfg, address, &out, err, sizeof err) == 0)
        for (int i = 0; i < out.n && !found; i++)
            found = strcasecmp(out.v[i], user) == 0;
    for (int i = 0; i < out.n; i++)
        free(out.v[i]);
    free(out.v);
    return found;
}

void smtpd_lookup_answer(struct smtpd_lookup *l, const struct pm_priv_msg *req, struct pm_priv_msg *reply)
{
    reply->result = -1;
    if (!l)
        return;
    refresh(l);
    const char *a = req->a ? req->a : "", *b = req->b ? req->b : "";
    switch (req->op) {
    case PM_PRIV_AUTH:
        if (l->users)
            reply->result = pm_users_verify(l->users, a, b) == 1;
        break;
    case PM_PRIV_RCPT_EXISTS:
        if (l->users && l->aliases)
            reply->result = smtpd_lookup_local_exists(l->users, l->aliases, l->cfg, a);
        break;
    case PM_PRIV_SENDER_OK:
        if (l->aliases)
            reply->result = smtpd_lookup_owns(l->aliases, l->cfg, a, b);
        break;
    default:
        pm_log(PM_WARN, "event=helper_refused op=%u", (unsigned)req->op);
        break;
    }
}
