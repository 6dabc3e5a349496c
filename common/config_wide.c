/* Integer literals past 32 bits, read back from the configuration's source (config_wide.h). */
#include "config_wide.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pm_config_source_free(struct pm_config_source *src)
{
    for (unsigned i = 0; i < src->n; i++)
        free(src->lines[i]);
    free(src->lines);
    free(src->path);
    memset(src, 0, sizeof *src);
}

/* Line `no` (1-based) of file; NULL if unreadable. */
static const char *source_line(struct pm_config_source *src, const char *file, unsigned no)
{
    if (!src->path || strcmp(src->path, file) != 0) {
        pm_config_source_free(src);
        FILE *fp = fopen(file, "r");
        if (!fp)
            return NULL;
        char *line = NULL;
        size_t cap = 0;
        while (getline(&line, &cap, fp) >= 0) {
            char **grown = realloc(src->lines, (src->n + 1) * sizeof *grown);
            if (!grown)
                break;
            src->lines = grown;
            src->lines[src->n++] = line;
            line = NULL;
            cap = 0;
        }
        free(line);
        fclose(fp);
        src->path = strdup(file);
    }
    return no >= 1 && no <= src->n ? src->lines[no - 1] : NULL;
}

/* The integer literal assigned to `name` on line (outside strings and comments) when it does
 * not fit 32 bits and has no L suffix: 1 and *out (LLONG_MIN/MAX past 64 bits), else 0. */
static int wide_literal(const char *line, const char *name, long long *out)
{
    size_t nlen = strlen(name);
    int in_str = 0;
    for (const char *p = line; *p; p++) {
        if (in_str) {
            if (*p == '\\' && p[1])
                p++;
            else if (*p == '"')
                in_str = 0;
            continue;
        }
        if (*p == '"') {
            in_str = 1;
            continue;
        }
        if (*p == '#' || (*p == '/' && (p[1] == '/' || p[1] == '*')))
            return 0;
        int word_start = p == line || !(isalnum((unsigned char)p[-1]) || strchr("_-*", p[-1]));
        if (!word_start || strncmp(p, name, nlen) != 0)
            continue;
        const char *q = p + nlen + strspn(p + nlen, " \t");
        if (*q != '=' && *q != ':')
            continue;
        q += 1 + strspn(q + 1, " \t");
        char *end;
        errno = 0;
        int hex = q[0] == '0' && (q[1] == 'x' || q[1] == 'X'); /* libconfig: decimal or 0x */
        long long v = strtoll(q, &end, hex ? 16 : 10);
        if (end == q || *end == 'L' || *end == 'l')
            continue;
        if (errno == ERANGE || v < INT_MIN || v > INT_MAX) {
            *out = errno == ERANGE ? (v < 0 ? LLONG_MIN : LLONG_MAX) : v;
            return 1;
        }
    }
    return 0;
}

int pm_config_wide_int(struct pm_config_source *src, const config_setting_t *s, const char *file, long long *out)
{
    const char *own = config_setting_source_file(s);
    const char *name = config_setting_name(s);
    const char *line = name ? source_line(src, own ? own : file, config_setting_source_line(s)) : NULL;
    return line && wide_literal(line, name, out);
}
