/* Editing the users file: read under an exclusive lock, change lines, replace the file
 * atomically (temp file + fsync + rename), so services re-reading it never see half a file
 * and two `postmesh user` commands never lose each other's change. */
#ifndef CLI_USERFILE_H
#define CLI_USERFILE_H
#include <stddef.h>

struct cli_userfile {
    char *path;
    char **lines; /* without line ends; comments and blank lines kept as they were */
    int n;
    int lockfd;   /* -1 when opened read-only */
};

/* Reads path (missing = empty). lock: take <path>.lock exclusively first (creating the
 * directory and lock file if needed). Every line must parse: else -1 with "path:line: why". */
int cli_userfile_open(struct cli_userfile *uf, const char *path, int lock, char *err, size_t errsize);
void cli_userfile_close(struct cli_userfile *uf);

/* Index of the line holding address (case-insensitive), or -1. */
int cli_userfile_find(const struct cli_userfile *uf, const char *address);
/* The address of line i if it is an entry (malloc'd), else NULL. */
char *cli_userfile_address(const struct cli_userfile *uf, int i);

/* Line edits; the line is "address:{SCHEME}hash". 0 or -1 (out of memory). */
int cli_userfile_append(struct cli_userfile *uf, const char *line);
int cli_userfile_replace(struct cli_userfile *uf, int i, const char *line);
void cli_userfile_remove(struct cli_userfile *uf, int i);

/* Writes the lines to a temp file (mode 0640, owner and group of the old file when we
 * may), fsyncs it, renames it over path and fsyncs the directory. 0 or -1 with err. */
int cli_userfile_commit(struct cli_userfile *uf, char *err, size_t errsize);

#endif
