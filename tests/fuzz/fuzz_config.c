/* The configuration loader (common/config.c, libconfig underneath): the input is the file,
 * written to one temp path per process and loaded as every service loads it. A file that
 * loads must have honoured the schema's ranges; one that does not must say "file:line:".
 * Inputs with @include are skipped: the config is the operator's, an include reads any path
 * (a fuzzer soon finds /dev/zero or a FIFO), and that is libconfig's feature, not a bug. */
#include <stdint.h>
#include <string.h>

#include "config.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (memmem(data, size, "@include", 8))
        return 0;
    const char *path = fuzz_write_file(data, size);
    struct pm_config cfg;
    char err[1024] = "";
    if (pm_config_load(path, &cfg, err, sizeof err) < 0) {
        /* "path:line: reason" (libconfig names the file it read: the same path). */
        size_t pl = strlen(path);
        FUZZ_CHECK(strncmp(err, path, pl) == 0 && err[pl] == ':');
        return 0;
    }
    FUZZ_CHECK(cfg.hostname && cfg.state_dir && cfg.state_dir[0]);
    FUZZ_CHECK(cfg.queue.retry_min >= 1 && cfg.queue.retry_min <= cfg.queue.retry_max);
    FUZZ_CHECK(cfg.smtpd.max_message_size >= 1024 && cfg.smtpd.max_message_size <= (1LL << 31));
    FUZZ_CHECK(cfg.mta.remote_port >= 1 && cfg.mta.remote_port <= 65535);
    FUZZ_CHECK(cfg.resolver.timeout >= 1 && cfg.resolver.timeout <= 120);
    for (int i = 0; i < cfg.domains.n; i++)
        FUZZ_CHECK(cfg.domains.v[i][0] && !strchr(cfg.domains.v[i], '@'));
    for (int i = 0; i < cfg.smtpd.listen.n; i++)
        FUZZ_CHECK(cfg.smtpd.listen.v[i].address && cfg.smtpd.listen.v[i].mode);
    for (int i = 0; i < cfg.pop3d.listen.n; i++)
        FUZZ_CHECK(cfg.pop3d.listen.v[i].address && cfg.pop3d.listen.v[i].mode);
    char buf[64];
    pm_config_state_path(&cfg, "queue", buf, sizeof buf);
    (void)pm_config_is_local_domain(&cfg, "example.test");
    pm_config_free(&cfg);
    return 0;
}
