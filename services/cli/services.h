/* The services `postmesh run` supervises and where their binaries are. */
#ifndef CLI_SERVICES_H
#define CLI_SERVICES_H
#include <stddef.h>

struct cli_service {
    const char *name; /* binary is postmesh-<name> */
    int core;         /* started first, stopped last: the others depend on it */
};

extern const struct cli_service cli_services[];
extern const int cli_nservices;

/* The directory of the running postmesh binary: services are installed next to it. */
int cli_bindir(char *dst, size_t size);

/* dst = bindir/postmesh-<name>; returns 1 if it is an executable file, else 0. */
int cli_service_path(const char *bindir, const char *name, char *dst, size_t size);

#endif
