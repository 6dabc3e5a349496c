#include "received.h"

#include <stdio.h>
#include <string.h>

const char *smtpd_received_protocol(int esmtp, int tls, int auth, int smtputf8)
{
    static const char *const esmtp_names[] = {"ESMTP", "ESMTPS", "ESMTPA", "ESMTPSA"};
    static const char *const utf8_names[] = {"UTF8SMTP", "UTF8SMTPS", "UTF8SMTPA", "UTF8SMTPSA"};
    int i = (tls ? 1 : 0) + (auth ? 2 : 0);
    if (smtputf8)
        return utf8_names[i];
    if (!esmtp)
        return tls ? "SMTPS" : "SMTP";
    return esmtp_names[i];
}

/* The HELO name goes into a header: keep it from closing the comment or the field. */
static void clean(char *dst, size_t size, const char *s)
{
    size_t o = 0;
    for (; s && *s && o + 1 < size; s++)
        dst[o++] = (*s == '(' || *s == ')' || *s == '\\' || *s == ';' || (unsigned char)*s <= ' ') ? '_' : *s;
    dst[o] = '\0';
}

size_t smtpd_received_format(const struct smtpd_received *r, char *dst, size_t size)
{
    char helo[300], date[64], tlsline[200] = "", forline[300] = "";
    clean(helo, sizeof helo, r->helo && *r->helo ? r->helo : "unknown");
    struct tm tm;
    gmtime_r(&r->when, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    if (r->tls && r->tls_version && *r->tls_version)
        snprintf(tlsline, sizeof tlsline, "\t(using %s with cipher %s)\r\n", r->tls_version,
                 r->tls_cipher && *r->tls_cipher ? r->tls_cipher : "unknown");
    if (r->rcpt)
        snprintf(forline, sizeof forline, "\r\n\tfor <%s>", r->rcpt);
    int n = snprintf(dst, size, "Received: from %s ([%s%s])\r\n%s\tby %s (Postmesh) with %s%s;\r\n\t%s\r\n", helo,
                     strchr(r->ip, ':') ? "IPv6:" : "", r->ip, tlsline, r->hostname, smtpd_received_protocol(r->esmtp, r->tls, r->auth, r->smtputf8), forline,
                     date);
    return n < 0 || (size_t)n >= size ? 0 : (size_t)n;
}
