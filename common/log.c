#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *log_service = "postmesh";
static int log_debug;
static pid_t log_pid; /* getpid() is a real system call: cache it, refreshed in a forked child */

static void refresh_pid(void) { log_pid = getpid(); }

void pm_log_init(const char *service)
{
    log_service = service;
    refresh_pid();
    static int registered;
    if (!registered++)
        pthread_atfork(NULL, NULL, refresh_pid);
}
void pm_log_set_debug(int on) { log_debug = on; }

static const char *level_name(enum pm_log_level l)
{
    switch (l) {
    case PM_DEBUG: return "debug";
    case PM_INFO: return "info";
    case PM_WARN: return "warn";
    default: return "error";
    }
}

#define TRUNCATED " truncated=1"

/* A line cut at the buffer's end may stop inside a quoted value, which would swallow the
 * rest of the line (and the next one) for a logfmt reader. Cut back to the last space outside
 * quotes that leaves room for the mark, so only whole tokens stay, and mark the cut. The
 * header ends in a space outside quotes, so there is always one. Returns the new length
 * (at most max). */
static size_t cut_line(char *line, size_t len, size_t max)
{
    size_t cut = 0;
    int quoted = 0;
    for (size_t i = 0; i < len && i + sizeof TRUNCATED - 1 <= max; i++) {
        if (quoted && line[i] == '\\')
            i++;
        else if (line[i] == '"')
            quoted = !quoted;
        else if (!quoted && line[i] == ' ')
            cut = i;
    }
    memcpy(line + cut, TRUNCATED, sizeof TRUNCATED - 1);
    return cut + sizeof TRUNCATED - 1;
}

void pm_log(enum pm_log_level level, const char *fmt, ...)
{
    if (level == PM_DEBUG && !log_debug)
        return;
    char line[4096];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03dZ svc=%s pid=%d level=%s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(tv.tv_usec / 1000), log_service, (int)(log_pid ? log_pid : getpid()), level_name(level));
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = cut_line(line, sizeof line - 2, sizeof line - 1); /* room for the newline */
    line[len++] = '\n';
    /* One write() per line so lines from concurrent processes never interleave. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
