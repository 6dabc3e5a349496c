#include "passdb.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "privchan.h"
#include "users.h"

/* ------------------------------------------------------------------ sandbox side */
struct pm_passdb_req {
    struct pm_priv_client *priv;
    uint32_t handle;
    pm_passdb_cb cb;
    void *arg;
    int sending; /* inside pm_priv_request: a send failure is reported synchronously */
    int send_failed;
};

static void on_answer(int result, void *arg)
{
    struct pm_passdb_req *r = arg;
    if (r->sending) {
        r->send_failed = 1;
        return;
    }
    pm_passdb_cb cb = r->cb;
    void *cbarg = r->arg;
    free(r);
    cb(cbarg, result);
}

struct pm_passdb_req *pm_passdb_verify(struct pm_priv_client *priv, const char *user, const char *password,
                                           pm_passdb_cb cb, void *arg)
{
    struct pm_passdb_req *r = priv ? calloc(1, sizeof *r) : NULL;
    if (!r)
        return NULL;
    r->priv = priv;
    r->cb = cb;
    r->arg = arg;
    r->sending = 1;
    r->handle = pm_priv_request(priv, PM_PRIV_AUTH, user, password, on_answer, r);
    r->sending = 0;
    if (r->send_failed) {
        free(r);
        return NULL;
    }
    return r;
}

void pm_passdb_cancel(struct pm_passdb_req *r)
{
    if (!r)
        return;
    pm_priv_cancel(r->priv, r->handle);
    free(r);
}

/* ------------------------------------------------------------------ helper side */

struct pm_passdb {
    char *path;
    struct pm_users *users;
};

static void log_error(const char *err)
{
    char ev[PM_LOGV_SIZE];
    pm_log(PM_ERR, "event=users_error error=%s", PM_LV(ev, err));
}

struct pm_passdb *pm_passdb_open(const char *users_file)
{
    struct pm_passdb *db = calloc(1, sizeof *db);
    if (!db || !(db->path = strdup(users_file))) {
        free(db);
        return NULL;
    }
    char err[512];
    if (!(db->users = pm_users_load(db->path, err, sizeof err)))
        log_error(err);
    return db;
}

void pm_passdb_free(struct pm_passdb *db)
{
    if (!db)
        return;
    pm_users_free(db->users);
    free(db->path);
    free(db);
}

int pm_passdb_check(struct pm_passdb *db, const char *user, const char *password)
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
