/* Test hook (none in a release build, POSTMESH_NO_TEST_HOOKS): POSTMESH_TEST_STS_LOOKUP="d1 d2"
 * makes the mta look up the MTA-STS policy of those domains at start, and again every
 * POSTMESH_TEST_STS_REPEAT_MS (if set), logging each answer that differs from the last one
 * for its domain as event=mta_sts_test_lookup. The integration tests watch the lookup, the
 * fetch and the store through it without a delivery. */
#include "sts_testhook.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sts.h"

#ifndef POSTMESH_NO_TEST_HOOKS
#define HOOK_DOMAINS 8

struct hook_domain {
    char name[254];
    char last[600];
    int busy;
};

static struct {
    struct mta_sts *sts;
    struct event *timer;
    long repeat_ms;
    int n;
    struct hook_domain d[HOOK_DOMAINS];
} hook;

static void on_result(const struct mta_sts_result *r, void *arg)
{
    struct hook_domain *d = arg;
    d->busy = 0;
    char line[sizeof d->last], mx[300] = "";
    const struct mta_sts_policy *p = r->policy;
    for (int i = 0; p && i < p->nmx && strlen(mx) < 200; i++)
        snprintf(mx + strlen(mx), sizeof mx - strlen(mx), "%s%s", i ? "," : "", p->mx[i]);
    snprintf(line, sizeof line, "status=%s mode=%s id=%s max_age=%u mx=%s result_type=%s",
             r->status == MTA_STS_POLICY ? "policy" : r->status == MTA_STS_FAILED ? "failed" : "none",
             p ? (p->mode == MTA_STS_MODE_ENFORCE ? "enforce" : "testing") : "-", p ? p->id : "-",
             p ? p->max_age : 0, mx[0] ? mx : "-", r->result_type[0] ? r->result_type : "-");
    if (strcmp(line, d->last) != 0) {
        snprintf(d->last, sizeof d->last, "%s", line);
        pm_log(PM_INFO, "event=mta_sts_test_lookup domain=%s %s", d->name, line);
    }
}

static void lookup_all(void)
{
    for (int i = 0; i < hook.n; i++)
        if (!hook.d[i].busy) {
            hook.d[i].busy = 1;
            mta_sts_lookup(hook.sts, hook.d[i].name, on_result, &hook.d[i]);
        }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    lookup_all();
}

void mta_sts_testhook_start(struct event_base *base, struct mta_sts *sts)
{
    const char *list = getenv("POSTMESH_TEST_STS_LOOKUP");
    if (!list || !sts)
        return;
    hook.sts = sts;
    char copy[2048];
    snprintf(copy, sizeof copy, "%s", list);
    for (char *save = NULL, *t = strtok_r(copy, " ,", &save); t && hook.n < HOOK_DOMAINS; t = strtok_r(NULL, " ,", &save))
        snprintf(hook.d[hook.n++].name, sizeof hook.d[0].name, "%s", t);
    const char *rep = getenv("POSTMESH_TEST_STS_REPEAT_MS");
    hook.repeat_ms = rep ? atol(rep) : 0;
    pm_log(PM_WARN, "event=test_hook hook=POSTMESH_TEST_STS_LOOKUP domains=%d repeat_ms=%ld", hook.n, hook.repeat_ms);
    if (hook.repeat_ms > 0) {
        hook.timer = event_new(base, -1, EV_PERSIST, on_timer, NULL);
        struct timeval tv = {hook.repeat_ms / 1000, (hook.repeat_ms % 1000) * 1000};
        event_add(hook.timer, &tv);
    }
    lookup_all();
}

void mta_sts_testhook_stop(void)
{
    if (hook.timer)
        event_free(hook.timer);
    hook.timer = NULL;
    hook.sts = NULL;
}
#else
void mta_sts_testhook_start(struct event_base *base, struct mta_sts *sts)
{
    (void)base;
    (void)sts;
}
void mta_sts_testhook_stop(void) {}
#endif
