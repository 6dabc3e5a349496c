/* A test-only hook that proves the sandbox's seccomp filter: when smtpd is started with
 * POSTMESH_TEST_FORBIDDEN_SYSCALL=1 in its environment, the command "XTESTEXEC" from a
 * loopback client makes the sandbox call execve("/bin/true"), which the seccomp allowlist
 * answers by killing the sandbox (SIGSYS); the parent logs it and starts a new sandbox.
 * Safe by construction: it needs the variable at start, a loopback client and an active
 * seccomp filter (so it can only ever demonstrate the kill); a release build can drop it
 * entirely with -DPOSTMESH_NO_TEST_HOOKS. */
#ifndef SMTPD_TESTHOOK_H
#define SMTPD_TESTHOOK_H
#include <stddef.h>

struct smtpd_session;

/* In the parent at start: reads the environment once and logs if the hook is armed. */
void smtpd_testhook_init(void);

/* 1 if line was the hook's command (and it did not kill us: the reply is sent), else 0. */
int smtpd_testhook_command(struct smtpd_session *s, const char *line, size_t len);

#endif
