/* Log values from peers: the one escaping function for every value a peer controls
 * (envelope addresses, EHLO names, AUTH user names, remote SMTP replies, DNS names, error
 * text that quotes any of them), in logs and in CLI output.
 *
 * A value made only of printable ASCII other than space, '"', '\' and '=' (and of valid UTF-8
 * letters and symbols) is written bare, as it always was: `from=<alice@example.test>`.
 * Anything else is written in double quotes, with \" and \\, and \xHH for '=', control
 * characters, DEL, C1 controls (U+0080-U+009F), characters that look like a space or like
 * nothing, line and paragraph separators, bidirectional controls, and every byte that is
 * not part of valid UTF-8 (overlong forms, surrogates, above U+10FFFF, cut sequences).
 * Spaces stay readable inside the quotes. So no peer can put ` id=` or `event=` into a
 * line: a value never holds a raw '=', and a bare one never a space. The quoted form reads
 * back with Go's strconv.Unquote or any logfmt parser that knows \xHH.
 *
 * The output always fits the buffer and is always a whole value: a value cut to fit is
 * quoted and ends in `..."` (never a dangling escape or quote). */
#ifndef PM_LOGVALUE_H
#define PM_LOGVALUE_H
#include <stddef.h>

/* Room for any address or reply line; longer values are cut. */
#define PM_LOGV_SIZE 512

/* s as one log value in dst (NULL counts as ""). Returns dst, for use as a printf argument:
 *   char from[PM_LOGV_SIZE];
 *   pm_log(PM_INFO, "event=x from=%s", PM_LOGV(from, sender)); */
char *pm_logv(char *dst, size_t size, const char *s);
#define PM_LOGV(buf, s) pm_logv((buf), sizeof(buf), (s))

/* An envelope path: "<" address ">" as one value, so `from=<x y@z>` can never be two. */
char *pm_logv_path(char *dst, size_t size, const char *address);
#define PM_LOGV_PATH(buf, s) pm_logv_path((buf), sizeof(buf), (s))

enum {
    PM_LOGV_TOKEN = 1, /* also \x20 and \x2c for space and ',': one column of a listing */
    PM_LOGV_TEXT = 2,  /* text for a terminal: no quotes, '"' and '=' as they are, tab and
                        * newline kept; everything else escaped as above */
};
/* The general form: len bytes at s (NULs allowed). The others call this one. */
char *pm_logv_mem(char *dst, size_t size, const void *s, size_t len, unsigned flags);

#endif
