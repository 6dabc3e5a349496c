/* Where the binaries of the services `postmesh run` supervises are (which services, and in
 * which order: common/services.h). */
#ifndef CLI_BINDIR_H
#define CLI_BINDIR_H
#include <stddef.h>

/* The directory of the running postmesh binary: services are installed next to it. */
int cli_bindir(char *dst, size_t size);

/* dst = bindir/postmesh-<name>; returns 1 if it is an executable file, else 0. */
int cli_service_path(const char *bindir, const char *name, char *dst, size_t size);

#endif
