#include "passdb.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "users.h"

struct pop3_passdb {
    char *path;
    struct pm_users *users;
};

static void log_error(const char *err)
{
    char ev[PM_LOGV_SIZE];
    pm_log(PM_ERR, "event=users_error error=%s", PM_LV(ev, err));
}

struct pop3_passdb *pop3_passdb_open(const char *users_file)
{
    struct pop3_passdb *db = calloc(1, sizeof *db);
    if (!db || !(db->path = strdup(users_file))) {
        free(db);
        return NULL;
    }
    char err[512];
    if (!(db->users = pm_users_load(db->path, err, sizeof err)))
        log_error(err);
    return db;
}

void pop3_passdb_free(struct pop3_passdb *db)
{
    if (!db)
        return;
    pm_users_free(db->users);
    free(db->path);
    free(db);
}

int pop3_passdb_verify(struct pop3_passdb *db, const char *user, const char *password)
{
    char err[512];
    if (!db->users) {
        if (!(db->users = pm_users_load(db->path, err, sizeof err))) {
            log_error(err);
            return -1;
        }
    } else if (pm_users_reload_if_changed(&db->users, err, sizeof err) < 0) {
        log_error(err); /* keeps serving the previous version */
    }
    return pm_users_verify(db->users, user, password) ? 1 : 0;
}
