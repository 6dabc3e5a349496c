/* APPEND's date-time argument (RFC 9051 §9 "date-time"): "dd-Mon-yyyy hh:mm:ss +zzzz"
 * with the quotes already gone, into seconds since the epoch. Owns no output: INTERNALDATE
 * is written by the FETCH side. */
#ifndef IMAP_DATETIME_H
#define IMAP_DATETIME_H
#include <stddef.h>
#include <time.h>

/* s[0..len) into *t (UTC seconds). The day may be " d", "dd" or (leniently) "d"; the month
 * any case; seconds up to 60; a day the month lacks (31-Feb) is refused. 0, or -1. */
int imap_parse_datetime(const char *s, size_t len, time_t *t);

#endif
