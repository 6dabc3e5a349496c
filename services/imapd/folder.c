/* Folder names <-> Maildir++ directories, and the folder list LIST shows (folder.h). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "folder_int.h"
#include "keyhash.h"
#include "store_int.h"

const char *imap_folder_rc_text(int rc)
{
    switch (rc) {
    case IMAP_FOLDER_OK: return "Completed";
    case IMAP_FOLDER_INVALID: return "[CANNOT] Invalid mailbox name";
    case IMAP_FOLDER_EXISTS: return "[ALREADYEXISTS] Mailbox already exists";
    case IMAP_FOLDER_NONEXISTENT: return "[NONEXISTENT] Mailbox doesn't exist";
    case IMAP_FOLDER_INBOX: return "[CANNOT] INBOX can't be deleted";
    /* RFC 9051 §7.1's code; RFC 3501 clients ignore codes they do not know (§7.1). */
    case IMAP_FOLDER_HASCHILDREN: return "[HASCHILDREN] Mailbox has children, delete them first";
    case IMAP_FOLDER_LIMIT: return "[LIMIT] Too many mailboxes";
    default: return "[SERVERBUG] Internal error occurred. Refer to server log for more information.";
    }
}

int imap_folder_is_inbox(const char *name, size_t len) { return len == 5 && strncasecmp(name, "INBOX", 5) == 0; }

static int component_ok(const char *c, size_t len)
{
    if (len == 0 || c[0] == '~' || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char b = (unsigned char)c[i];
        /* 7-bit only: names are modified UTF-7 (UTF8=ACCEPT is not offered). */
        if (b < 0x20 || b >= 0x7f || b == '.' || b == '%' || b == '*')
            return 0;
    }
    return 1;
}

int imap_folder_name_ok(const char *name, size_t len)
{
    if (len == 0 || len > IMAP_FOLDER_NAME_MAX)
        return 0;
    size_t depth = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && name[i] != '/')
            continue;
        if (!component_ok(name + start, i - start) || ++depth > IMAP_FOLDER_DEPTH_MAX)
            return 0;
        start = i + 1;
    }
    return 1;
}

int imap_folder_canon(const char *name, size_t len, int drop_slash, char *dst, size_t size)
{
    if (drop_slash && len > 1 && name[len - 1] == '/')
        len--;
    if (!imap_folder_name_ok(name, len) || len >= size)
        return -1;
    memcpy(dst, name, len);
    dst[len] = '\0';
    if ((len == 5 || (len > 5 && name[5] == '/')) && strncasecmp(name, "INBOX", 5) == 0)
        memcpy(dst, "INBOX", 5);
    return 0;
}

int imap_folder_dirname(const char *name, size_t len, char *dst, size_t size)
{
    char canon[IMAP_FOLDER_NAME_MAX + 1];
    if (imap_folder_canon(name, len, 0, canon, sizeof canon) < 0)
        return -1;
    if (strcmp(canon, "INBOX") == 0) {
        if (size < 1)
            return -1;
        dst[0] = '\0';
        return 0;
    }
    if (imap_path(dst, size, ".%s", canon) < 0)
        return -1;
    for (char *p = dst + 1; *p; p++)
        if (*p == '/')
            *p = '.';
    return 0;
}

int imap_folder_from_dirname(const char *entry, char *dst, size_t size)
{
    if (entry[0] != '.' || imap_path(dst, size, "%s", entry + 1) < 0)
        return -1;
    for (char *p = dst; *p; p++)
        if (*p == '.')
            *p = '/';
    size_t len = strlen(dst);
    /* ".INBOX" would shadow INBOX itself: not a folder. */
    if (!imap_folder_name_ok(dst, len) || imap_folder_is_inbox(dst, len))
        return -1;
    if (len > 5 && dst[5] == '/' && strncmp(dst, "INBOX", 5) != 0 && strncasecmp(dst, "INBOX", 5) == 0)
        return -1; /* ".inbox.x" next to ".INBOX.x": only the canonical spelling is ours */
    return 0;
}

int imap_folder_path(const char *maildir, const char *name, size_t len, char *dst, size_t size)
{
    char dn[IMAP_FOLDER_NAME_MAX + 2];
    if (imap_folder_dirname(name, len, dn, sizeof dn) < 0)
        return -1;
    return dn[0] ? imap_path(dst, size, "%s/%s", maildir, dn) : imap_path(dst, size, "%s", maildir);
}

int imap_folder_exists(const char *maildir, const char *name, size_t len)
{
    char path[IMAP_FOLDER_PATH_MAX];
    if (imap_folder_is_inbox(name, len))
        return 1;
    if (imap_folder_path(maildir, name, len, path, sizeof path) < 0)
        return 0;
    return imap_folder_dir_check(path) == 1;
}

void imap_folder_names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

int imap_folder_names(const char *maildir, char ***names, size_t *n)
{
    *names = NULL;
    *n = 0;
    DIR *d = opendir(maildir);
    if (!d)
        return -1;
    size_t cap = 0;
    struct dirent *e;
    int rc = 0;
    for (size_t seen = 0; *n < IMAP_FOLDER_MAX && seen < 4 * IMAP_FOLDER_MAX + 64 && (e = readdir(d)); seen++) {
        char name[IMAP_FOLDER_NAME_MAX + 1], dir[IMAP_FOLDER_PATH_MAX];
        if (e->d_name[0] != '.' || (e->d_type != DT_DIR && e->d_type != DT_UNKNOWN) ||
            imap_folder_from_dirname(e->d_name, name, sizeof name) < 0 ||
            imap_path(dir, sizeof dir, "%s/%s", maildir, e->d_name) < 0 || imap_folder_dir_check(dir) != 1)
            continue;
        if (imap_names_push(names, n, &cap, name) < 0) {
            rc = -1;
            break;
        }
    }
    closedir(d);
    if (rc < 0) {
        imap_folder_names_free(*names, *n);
        *names = NULL;
        *n = 0;
    }
    return rc;
}

/* ---- the list ---- */
struct builder {
    struct imap_folder *v;
    size_t n, cap;
    struct imap_keyhash hash; /* name -> index: up to IMAP_FOLDER_MAX * depth + subscriptions */
};

static const char *builder_key(const void *ctx, uint32_t pos, size_t *len)
{
    const struct builder *b = ctx;
    *len = strlen(b->v[pos].name);
    return b->v[pos].name;
}

static long find(const struct builder *b, const char *name)
{
    return imap_keyhash_find(&b->hash, builder_key, b, name, strlen(name));
}

/* The entry for name, added with attrs if new (existing entries get attrs or'ed in). */
static int add(struct builder *b, const char *name, size_t len, unsigned attrs)
{
    char buf[IMAP_FOLDER_NAME_MAX + 1];
    if (len >= sizeof buf)
        return -1;
    memcpy(buf, name, len);
    buf[len] = '\0';
    long i = find(b, buf);
    if (i >= 0) {
        b->v[i].attrs |= attrs;
        return 0;
    }
    if (b->n == b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 32;
        struct imap_folder *nv = realloc(b->v, ncap * sizeof *nv);
        if (!nv)
            return -1;
        b->v = nv;
        b->cap = ncap;
    }
    if (!(b->v[b->n].name = strdup(buf)))
        return -1;
    b->v[b->n].attrs = attrs;
    if (imap_keyhash_add(&b->hash, builder_key, b, (uint32_t)b->n) < 0) {
        free(b->v[b->n].name);
        return -1;
    }
    b->n++;
    return 0;
}

static int cmp_folder(const void *a, const void *b)
{
    const struct imap_folder *x = a, *y = b;
    int xi = strcmp(x->name, "INBOX") == 0, yi = strcmp(y->name, "INBOX") == 0;
    if (xi != yi)
        return yi - xi;
    return strcmp(x->name, y->name);
}

static unsigned special_use(const char *name)
{
    static const struct {
        const char *name;
        unsigned attr;
    } table[] = {{"Sent", IMAP_FA_SENT}, {"Drafts", IMAP_FA_DRAFTS}, {"Trash", IMAP_FA_TRASH},
                 {"Junk", IMAP_FA_JUNK}, {"Archive", IMAP_FA_ARCHIVE}};
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(name, table[i].name) == 0)
            return table[i].attr;
    return 0;
}

#define EXISTS_BIT 0x80000000u /* builder-only: a real folder */

int imap_folder_list(const char *maildir, struct imap_folder_list *out)
{
    *out = (struct imap_folder_list){0};
    struct builder b = {0};
    char **names = NULL, **subs = NULL;
    size_t nn = 0, ns = 0;
    int rc = -1;
    if (imap_folder_names(maildir, &names, &nn) < 0 || imap_subs_read(maildir, &subs, &ns) < 0 ||
        add(&b, "INBOX", 5, EXISTS_BIT) < 0)
        goto out;
    for (size_t i = 0; i < nn; i++)
        if (add(&b, names[i], strlen(names[i]), EXISTS_BIT | special_use(names[i])) < 0)
            goto out;
    /* Parents: each existing folder's superiors have children; missing ones are holes. */
    for (size_t i = 0; i < nn; i++) {
        for (const char *p = strchr(names[i], '/'); p; p = strchr(p + 1, '/'))
            if (add(&b, names[i], (size_t)(p - names[i]), IMAP_FA_HASCHILDREN) < 0)
                goto out;
    }
    for (size_t i = 0; i < ns; i++)
        if (add(&b, subs[i], strlen(subs[i]), IMAP_FA_SUBSCRIBED) < 0)
            goto out;
    for (size_t i = 0; i < b.n; i++) {
        unsigned *a = &b.v[i].attrs;
        if (*a & EXISTS_BIT)
            *a |= *a & IMAP_FA_HASCHILDREN ? 0 : IMAP_FA_HASNOCHILDREN;
        else if (*a & IMAP_FA_HASCHILDREN)
            *a |= IMAP_FA_HOLE | IMAP_FA_NOSELECT | IMAP_FA_NONEXISTENT;
        else
            *a |= IMAP_FA_SUBSCRIBED_ONLY | IMAP_FA_NOSELECT | IMAP_FA_NONEXISTENT;
        *a &= ~EXISTS_BIT;
    }
    qsort(b.v, b.n, sizeof *b.v, cmp_folder);
    rc = 0;
out:
    imap_folder_names_free(names, nn);
    imap_folder_names_free(subs, ns);
    imap_keyhash_free(&b.hash);
    out->v = b.v;
    out->n = b.n;
    if (rc < 0 && !errno)
        errno = ENOMEM;
    return rc;
}

void imap_folder_list_free(struct imap_folder_list *list)
{
    for (size_t i = 0; i < list->n; i++)
        free(list->v[i].name);
    free(list->v);
    *list = (struct imap_folder_list){0};
}

size_t imap_folder_attrs_text(unsigned attrs, unsigned want, char *dst, size_t size)
{
    static const struct {
        unsigned bit;
        const char *text;
    } table[] = {{IMAP_FA_NOSELECT, "\\Noselect"},       {IMAP_FA_NONEXISTENT, "\\NonExistent"},
                 {IMAP_FA_NOINFERIORS, "\\Noinferiors"}, {IMAP_FA_HASCHILDREN, "\\HasChildren"},
                 {IMAP_FA_HASNOCHILDREN, "\\HasNoChildren"}, {IMAP_FA_SUBSCRIBED, "\\Subscribed"},
                 {IMAP_FA_SENT, "\\Sent"},               {IMAP_FA_DRAFTS, "\\Drafts"},
                 {IMAP_FA_TRASH, "\\Trash"},             {IMAP_FA_JUNK, "\\Junk"},
                 {IMAP_FA_ARCHIVE, "\\Archive"}};
    size_t o = 0;
    if (size)
        dst[0] = '\0';
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (!(attrs & want & table[i].bit))
            continue;
        int w = snprintf(dst + o, size > o ? size - o : 0, "%s%s", o ? " " : "", table[i].text);
        if (w < 0 || o + (size_t)w >= size)
            break;
        o += (size_t)w;
    }
    return o;
}
