#include "postmaster.h"

#include <string.h>
#include <strings.h>

int pm_postmaster_is(const struct pm_config *cfg, const char *address)
{
    const char *at = address ? strrchr(address, '@') : NULL;
    /* RFC 5321 4.5.1 and 2.4: "Postmaster" is matched without regard to case. */
    return at && at - address == 10 && strncasecmp(address, "postmaster", 10) == 0 &&
           pm_config_is_local_domain(cfg, at + 1);
}
