#include "trust_anchors.h"

#include "config.h"

#include <errno.h>
#include <ldns/ldns.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void pm_trust_anchors_free(struct pm_trust_anchors *a)
{
    for (int i = 0; i < a->n; i++)
        free(a->v[i]);
    free(a->v);
    a->v = NULL;
    a->n = 0;
}

static int add(struct pm_trust_anchors *a, const ldns_rr *rr)
{
    char *text = ldns_rr2str(rr);
    if (!text)
        return -1;
    text[strcspn(text, "\n")] = '\0';
    char **v = realloc(a->v, (size_t)(a->n + 1) * sizeof *v);
    if (!v) {
        free(text);
        return -1;
    }
    a->v = v;
    a->v[a->n++] = text;
    return 0;
}

static int load_one(const char *path, struct pm_trust_anchors *out, char *err, size_t errsize)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errsize, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)PM_MAX_TRUST_ANCHOR_FILE) {
        snprintf(err, errsize, "%s: not a regular file of at most %u bytes", path, PM_MAX_TRUST_ANCHOR_FILE);
        fclose(f);
        return -1;
    }
    uint32_t ttl = 3600;
    ldns_rdf *origin = NULL, *prev = NULL;
    int line = 1, found = 0, rc = 0;
    while (!feof(f)) {
        ldns_rr *rr = NULL;
        int at = line; /* ldns counts the newline it read: the record began here */
        ldns_status s = ldns_rr_new_frm_fp_l(&rr, f, &ttl, &origin, &prev, &line);
        if (s == LDNS_STATUS_SYNTAX_EMPTY || s == LDNS_STATUS_SYNTAX_TTL || s == LDNS_STATUS_SYNTAX_ORIGIN ||
            s == LDNS_STATUS_SYNTAX_INCLUDE_ERR_NOTIMPL)
            continue;
        if (s != LDNS_STATUS_OK) {
            if (feof(f) && s == LDNS_STATUS_SYNTAX_ERR)
                break; /* trailing white space or comments */
            snprintf(err, errsize, "%s:%d: not a DS or DNSKEY record: %s", path, at, ldns_get_errorstr_by_id(s));
            rc = -1;
            break;
        }
        ldns_rr_type t = ldns_rr_get_type(rr);
        if (t != LDNS_RR_TYPE_DS && t != LDNS_RR_TYPE_DNSKEY) {
            char *name = ldns_rr_type2str(t);
            snprintf(err, errsize, "%s:%d: a %s record is not a trust anchor (DS or DNSKEY only)", path, at,
                     name ? name : "other");
            free(name);
            ldns_rr_free(rr);
            rc = -1;
            break;
        }
        if (out->n >= PM_MAX_TRUST_ANCHORS) {
            snprintf(err, errsize, "%s:%d: more than %d trust anchors", path, at, PM_MAX_TRUST_ANCHORS);
            ldns_rr_free(rr);
            rc = -1;
            break;
        }
        if (add(out, rr) < 0) {
            snprintf(err, errsize, "%s: out of memory", path);
            ldns_rr_free(rr);
            rc = -1;
            break;
        }
        ldns_rr_free(rr);
        found++;
    }
    if (origin)
        ldns_rdf_deep_free(origin);
    if (prev)
        ldns_rdf_deep_free(prev);
    fclose(f);
    if (rc == 0 && found == 0) {
        snprintf(err, errsize, "%s: no DS or DNSKEY record in it", path);
        rc = -1;
    }
    return rc;
}

int pm_trust_anchors_load(const char *const *paths, int npaths, struct pm_trust_anchors *out, char *err,
                          size_t errsize)
{
    for (int i = 0; i < npaths; i++)
        if (load_one(paths[i], out, err, errsize) < 0)
            return -1;
    return 0;
}

int pm_trust_anchors_load_config(const struct pm_config *cfg, struct pm_trust_anchors *out, char *err,
                                 size_t errsize)
{
    const char *root = PM_ROOT_TRUST_ANCHOR;
    const struct pm_strlist *l = &cfg->resolver.trust_anchors;
    return pm_trust_anchors_load(l->n ? (const char *const *)l->v : &root, l->n ? l->n : 1, out, err, errsize);
}
