#include "services.h"

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Start order: the queue binds the bus everyone connects to, the resolver answers the mta
 * and smtpd; front ends last so they never accept mail before it can be stored. */
const struct cli_service cli_services[] = {
    {"queue", 1}, {"resolver", 1}, {"delivery", 0}, {"mta", 0}, {"bouncer", 0}, {"smtpd", 0}, {"pop3d", 0},
};
const int cli_nservices = (int)(sizeof cli_services / sizeof cli_services[0]);

int cli_bindir(char *dst, size_t size)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    snprintf(dst, size, "%s", dirname(exe));
    return 0;
}

int cli_service_path(const char *bindir, const char *name, char *dst, size_t size)
{
    struct stat st;
    snprintf(dst, size, "%s/postmesh-%s", bindir, name);
    return stat(dst, &st) == 0 && S_ISREG(st.st_mode) && access(dst, X_OK) == 0;
}
