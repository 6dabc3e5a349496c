/* APPEND's date-time (datetime.h). */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "datetime.h"

/* Digits s[0..n) as a number, -1 if any is not a digit. */
static int digits(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int imap_parse_datetime(const char *s, size_t len, time_t *t)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    char buf[32];
    if (len == 25) { /* a one-digit day without its space */
        buf[0] = ' ';
        memcpy(buf + 1, s, len);
        s = buf;
        len = 26;
    }
    if (len != 26 || s[2] != '-' || s[6] != '-' || s[11] != ' ' || s[14] != ':' || s[17] != ':' || s[20] != ' ' ||
        (s[21] != '+' && s[21] != '-'))
        return -1;
    int day = s[0] == ' ' ? digits(s + 1, 1) : digits(s, 2);
    const char *m = NULL;
    for (int i = 0; i < 12 && !m; i++)
        if (strncasecmp(s + 3, months + 3 * i, 3) == 0)
            m = months + 3 * i;
    int year = digits(s + 7, 4), hour = digits(s + 12, 2), min = digits(s + 15, 2), sec = digits(s + 18, 2);
    int zh = digits(s + 22, 2), zm = digits(s + 24, 2);
    if (day < 1 || day > 31 || !m || year < 1900 || hour < 0 || hour > 23 || min < 0 || min > 59 || sec < 0 ||
        sec > 60 || zh < 0 || zh > 23 || zm < 0 || zm > 59)
        return -1;
    struct tm tm = {.tm_mday = day, .tm_mon = (int)(m - months) / 3, .tm_year = year - 1900,
                    .tm_hour = hour, .tm_min = min, .tm_sec = sec == 60 ? 59 : sec};
    time_t utc = timegm(&tm);
    if (utc == (time_t)-1 || tm.tm_mday != day) /* 31-Feb rolls over: refuse it */
        return -1;
    utc += sec == 60; /* a leap second, kept out of timegm so the day check holds */
    long zone = (zh * 60L + zm) * 60L;
    *t = s[21] == '+' ? utc - zone : utc + zone;
    return 0;
}
