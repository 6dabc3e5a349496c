/* The shared session counts of the smtpd sandboxes (tally.h). */
#include "tally.h"

#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

#include "log.h"

struct smtpd_tally {
    _Atomic long sessions[SMTPD_TALLY_MAX];
    _Atomic int draining;
    _Atomic int ready;
};

struct smtpd_tally *smtpd_tally_mine;

struct smtpd_tally *smtpd_tally_new(void)
{
    void *m = mmap(NULL, sizeof(struct smtpd_tally), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        pm_log(PM_ERR, "event=startup_failed reason=\"cannot map the sandboxes' tally\"");
        return NULL;
    }
    return m; /* zero-filled by the kernel */
}

void smtpd_tally_free(struct smtpd_tally *t)
{
    if (t)
        munmap(t, sizeof *t);
}

void smtpd_tally_set(struct smtpd_tally *t, int index, long sessions)
{
    if (t && index >= 0 && index < SMTPD_TALLY_MAX)
        atomic_store_explicit(&t->sessions[index], sessions, memory_order_relaxed);
}

long smtpd_tally_others(const struct smtpd_tally *t, int index)
{
    long sum = 0;
    for (int i = 0; t && i < SMTPD_TALLY_MAX; i++) {
        long v = i == index ? 0 : atomic_load_explicit(&t->sessions[i], memory_order_relaxed);
        sum += v > 0 ? v : 0; /* a negative count is a lie; it must not make room */
    }
    return sum;
}

void smtpd_tally_set_draining(struct smtpd_tally *t, int on)
{
    if (t)
        atomic_store(&t->draining, on);
}

int smtpd_tally_draining(const struct smtpd_tally *t) { return t && atomic_load(&t->draining); }

int smtpd_tally_ready(struct smtpd_tally *t) { return t ? atomic_fetch_add(&t->ready, 1) + 1 : 1; }
