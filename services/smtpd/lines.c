#include "lines.h"

#include <string.h>

void smtpd_linescan_reset(struct smtpd_linescan *st)
{
    st->seen = 0;
    st->overflow = 0;
}

enum smtpd_line_status smtpd_linescan_feed(struct smtpd_linescan *st, const char *p, size_t n, size_t max,
                                           size_t *used)
{
    const char *lf = memchr(p, '\n', n);
    size_t take = lf ? (size_t)(lf - p) + 1 : n;
    *used = take;
    st->seen += take;
    if (st->seen > max)
        st->overflow = 1;
    if (!lf)
        return SMTPD_LINE_MORE;
    return st->overflow ? SMTPD_LINE_TOO_LONG : SMTPD_LINE_DONE;
}

size_t smtpd_line_strip(const char *line, size_t len)
{
    if (len && line[len - 1] == '\n')
        len--;
    if (len && line[len - 1] == '\r')
        len--;
    return len;
}
