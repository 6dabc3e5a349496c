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
        len = sizeof line - 2;
    line[len++] = '\n';
    /* One write() per line so lines from concurrent processes never interleave. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

char *pm_log_value(char *dst, size_t size, const char *s)
{
    if (size == 0)
        return dst;
    if (!s)
        s = "";
    int needs_quote = (*s == '\0');
    for (const char *p = s; *p && !needs_quote; p++)
        if ((unsigned char)*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || (unsigned char)*p >= 0x7f)
            needs_quote = 1;
    if (!needs_quote) {
        snprintf(dst, size, "%s", s);
        return dst;
    }
    size_t o = 0;
    dst[o++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p && o + 6 < size; p++) {
        if (*p == '"' || *p == '\\') {
            dst[o++] = '\\';
            dst[o++] = (char)*p;
        } else if (*p < ' ' || *p == 0x7f) {
            o += (size_t)snprintf(dst + o, size - o, "\\x%02x", *p);
        } else {
            dst[o++] = (char)*p;
        }
    }
    if (o < size - 1)
        dst[o++] = '"';
    dst[o < size ? o : size - 1] = '\0';
    return dst;
}
