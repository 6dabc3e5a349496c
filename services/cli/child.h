/* Starting one service process for the supervisor, with its stderr read through a pipe so
 * the supervisor sees when it logs event=started. Its lines are passed on unchanged, one
 * write() each, to our stderr. */
#ifndef CLI_CHILD_H
#define CLI_CHILD_H
#include <sys/types.h>

struct event_base;

/* Called when the process of that generation logs event=started. */
typedef void (*cli_child_started_fn)(void *arg, unsigned generation);

/* fork + exec "path -c config" in its own session (and process group, pgid = pid), stdin
 * from /dev/null, stdout and stderr the log pipe, no other inherited descriptor, a clean
 * environment (child.c says what passes), with SIGTERM sent to it if the supervisor dies.
 * Returns the pid or -1 (errno). */
pid_t cli_child_spawn(struct event_base *base, const char *path, const char *config, cli_child_started_fn fn,
                      void *arg, unsigned generation);

/* Pipes still open (a child's last lines may still be on the way after it exited). */
int cli_child_open_pipes(void);

/* Passes on what is buffered and frees every pipe. */
void cli_child_close_all(void);

#endif
