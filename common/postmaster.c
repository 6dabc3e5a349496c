#include "postmaster.h"

#include <string.h>
#include <strings.h>

#include "addr.h"

int pm_postmaster_is(const struct pm_config *cfg, const char *address)
{
    /* RFC 5321 4.5.1 and 2.4: "Postmaster" is matched without regard to case; the '@' after
     * it must be the address's last. */
    return address && strncasecmp(address, "postmaster@", 11) == 0 && pm_addr_domain(address) == address + 11 &&
           pm_config_is_local_domain(cfg, address + 11);
}
