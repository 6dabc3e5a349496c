/* Helpers shared by the libFuzzer harnesses (tests/fuzz/fuzz_<name>.c): a check that aborts
 * with a message (a broken invariant is a finding like a crash), splitting input into lines,
 * and one temp file per process for parsers that read a path. Header-only: each fuzzer is one
 * file plus the project's libraries. */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H
#include <fcntl.h>
#include <sanitizer/common_interface_defs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Invariants are checked in every build (no NDEBUG surprises); abort() gives libFuzzer a
 * crash with a stack. The message goes through the sanitizers' report channel, which
 * libFuzzer keeps open when -close_fd_mask=2 silences the services' own logging. */
static inline void fuzz_check_failed(const char *file, int line, const char *what)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s:%d: invariant failed: %s", file, line, what);
    __sanitizer_report_error_summary(msg);
    __sanitizer_print_stack_trace();
    abort();
}
#define FUZZ_CHECK(cond)                                                                      \
    do {                                                                                      \
        if (!(cond))                                                                          \
            fuzz_check_failed(__FILE__, __LINE__, #cond);                                     \
    } while (0)

/* A NUL-terminated heap copy of data (parsers that take C strings). */
static inline char *fuzz_strndup(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* Calls fn(line, len, arg) for every '\n'-separated line of data (the '\n' not included;
 * a trailing "\r" stays, as the caller decides what a line end is). */
static inline void fuzz_lines(const uint8_t *data, size_t size, void (*fn)(const char *, size_t, void *), void *arg)
{
    size_t i = 0;
    while (i < size) {
        const uint8_t *nl = memchr(data + i, '\n', size - i);
        size_t len = nl ? (size_t)(nl - (data + i)) : size - i;
        fn((const char *)data + i, len, arg);
        i += len + 1;
    }
}

/* The size of the next piece when input is fed in pieces: left, or the next of the sizes
 * cycled from cuts (each 1..256; *k counts the pieces) if that is smaller. */
static inline size_t fuzz_chunk(size_t left, const uint8_t *cuts, size_t ncuts, size_t *k)
{
    if (!ncuts)
        return left;
    size_t c = (size_t)cuts[(*k)++ % ncuts] + 1;
    return c < left ? c : left;
}

/* Where a harness keeps its files: $TMPDIR (run.py points it at a directory of its own,
 * on tmpfs when there is one, and removes it after the run), else /tmp. */
static inline const char *fuzz_tmpdir(void)
{
    const char *dir = getenv("TMPDIR");
    return dir && *dir && strlen(dir) < 200 ? dir : "/tmp";
}

static inline void fuzz_remove_file(void);

/* One temp file per fuzzing process, rewritten for every input: the loaders under test take a
 * path, and a fresh file per input would fill the disk during a long campaign. The process
 * removes it as it exits. */
static inline const char *fuzz_file_path(void)
{
    static char path[256];
    if (!path[0]) {
        snprintf(path, sizeof path, "%s/pm-fuzz-%d", fuzz_tmpdir(), (int)getpid());
        atexit(fuzz_remove_file);
    }
    return path;
}

static inline const char *fuzz_write_file(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file_path();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        abort();
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0)
            abort();
        off += (size_t)w;
    }
    close(fd);
    return path;
}

static inline void fuzz_remove_file(void) { unlink(fuzz_file_path()); }

#endif
