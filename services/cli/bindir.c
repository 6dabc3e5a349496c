/* Where the services `postmesh run` supervises are installed: next to postmesh (bindir.h). */
#include "bindir.h"

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
