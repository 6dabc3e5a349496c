/* postmesh-imapd: IMAP4rev1 (RFC 3501, with what clients use of RFC 9051) with IDLE,
 * UIDPLUS, MOVE, LITERAL+, NAMESPACE, ID, ENABLE and SPECIAL-USE, STARTTLS and implicit
 * TLS, over the Maildir++ store that postmesh-delivery writes and pop3d reads. A privileged
 * parent (parent.h) opens the sockets and has passwords checked; one unprivileged sandbox
 * (sandbox.c), chrooted into the store as postmesh-imapd (group vmail, runas.c) and
 * confined by seccomp, runs every session on one event loop. */
#include <iconv.h>
#include <stddef.h>

#include "config.h"
#include "parent.h"
#include "service.h"

/* GMime converts charsets with iconv, whose converters (glibc's gconv modules) are loaded
 * from /usr/lib on first use: inside the sandbox's chroot they cannot be, and SEARCH of an
 * ISO-8859-1 or windows-1252 message would not decode it. The common ones are opened here,
 * before the sandbox is forked, and stay open while it runs, so the modules are in the
 * process it copies (a new iconv_open there finds them loaded). A charset not listed is
 * searched undecoded. */
static const char *const charsets[] = {
    "ISO-8859-1", "ISO-8859-2", "ISO-8859-3", "ISO-8859-4", "ISO-8859-5", "ISO-8859-6", "ISO-8859-7",
    "ISO-8859-8", "ISO-8859-9", "ISO-8859-10", "ISO-8859-13", "ISO-8859-14", "ISO-8859-15", "ISO-8859-16",
    "WINDOWS-1250", "WINDOWS-1251", "WINDOWS-1252", "WINDOWS-1253", "WINDOWS-1254", "WINDOWS-1255",
    "WINDOWS-1256", "WINDOWS-1257", "WINDOWS-1258", "KOI8-R", "KOI8-U", "IBM850", "IBM866", "MACINTOSH",
    "ISO-2022-JP", "SHIFT_JIS", "CP932", "EUC-JP", "EUC-KR", "CP949", "GB2312", "GBK", "GB18030", "BIG5",
    "BIG5-HKSCS", "TIS-620", "UTF-16", "UTF-16BE", "UTF-16LE", "UTF-7",
};
#define NCHARSETS (sizeof charsets / sizeof charsets[0])
static iconv_t converters[NCHARSETS];

static void charsets_open(void)
{
    for (size_t i = 0; i < NCHARSETS; i++)
        converters[i] = iconv_open("UTF-8", charsets[i]);
}

static void charsets_close(void)
{
    for (size_t i = 0; i < NCHARSETS; i++)
        if (converters[i] != (iconv_t)-1)
            iconv_close(converters[i]);
}

int main(int argc, char **argv)
{
    struct pm_config cfg;
    int init_rc = pm_service_init(argc, argv, "imapd", 0, &cfg); /* no bus: imapd reads the store only */
    if (init_rc != 0)
        return init_rc;

    struct pm_mailfront parent;
    int rc = 1;
    charsets_open();
    if (pm_mailfront_init(&parent, &cfg, "imapd", &cfg.imapd.listen, "imaps") == 0)
        rc = pm_mailfront_supervise(&parent, imap_sandbox_main);
    pm_mailfront_free(&parent);
    charsets_close();
    pm_config_free(&cfg);
    return rc;
}
