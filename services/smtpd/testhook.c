#include "testhook.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "log.h"
#include "net.h"
#include "session.h"

#ifndef POSTMESH_NO_TEST_HOOKS
static int armed;

void smtpd_testhook_init(void)
{
    const char *v = getenv("POSTMESH_TEST_FORBIDDEN_SYSCALL");
    armed = v && strcmp(v, "1") == 0;
    if (armed)
        pm_log(PM_WARN, "event=test_hook_armed hook=forbidden_syscall command=XTESTEXEC");
}

int smtpd_testhook_command(struct smtpd_session *s, const char *line, size_t len)
{
    static char *const loopback[] = {"127.0.0.0/8", "::1/128"};
    if (!armed || len != 9 || strncasecmp(line, "XTESTEXEC", 9) != 0 || !pm_ip_in_networks(s->ip, loopback, 2) ||
        prctl(PR_GET_SECCOMP, 0, 0, 0, 0) != 2)
        return 0;
    pm_log(PM_WARN, "event=test_hook client=%s action=execve", s->peer);
    char *const argv[] = {"true", NULL};
    char *const envp[] = {NULL};
    execve("/bin/true", argv, envp); /* the filter kills the process here */
    smtpd_reply_error(s, "554 5.3.0 Error: the sandbox let execve through");
    return 1;
}
#else
void smtpd_testhook_init(void) {}

int smtpd_testhook_command(struct smtpd_session *s, const char *line, size_t len)
{
    (void)s;
    (void)line;
    (void)len;
    return 0;
}
#endif
