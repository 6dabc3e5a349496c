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

static inline uint64_t pm_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

#endif
