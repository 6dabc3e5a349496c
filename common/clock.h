/* The two clocks services measure time with, in milliseconds: monotonic for deadlines,
 * timeouts and leases (a wall-clock step must not end them), wall for what crosses hosts
 * or is stored. */
#ifndef PM_CLOCK_H
#define PM_CLOCK_H
#include <stdint.h>
#include <time.h>

static inline uint64_t pm_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Monotonic seconds with a fraction: supervisors' restart backoffs. */
static inline double pm_mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Whole monotonic seconds from the cheap coarse clock: per-command session deadlines. */
static inline long long pm_mono_coarse_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (long long)ts.tv_sec;
}

static inline uint64_t pm_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

#endif
