/* The allowlist in memory: the list of admitted keys (set from a scan's text), lookups by
 * key for the ZAP thread and every message's sender, and reloads, through the reader outside
 * the chroot when one runs. Reading the directory itself is allowlist_scan.c's. */
#include "allowlist.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "log.h"
#include "outside.h"

#define MAX_TEXT PM_ALLOWLIST_MAX_TEXT

struct entry {
    unsigned char key[32];
    enum pm_role role;
    char name[PM_KEY_NAME];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry *entries;
static size_t nentries;
static unsigned generation;
/* The state (allowlist_scan.c's digest) of the directory the list was read from; unknown
 * after a scan that met a file changing under it, or before the first one. */
static unsigned long long last_state;
static int last_state_known;

/* The entry of the current list named name (a key file being written keeps it). */
static int previous(const char *name, struct entry *out)
{
    int found = 0;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < nentries && !found; i++)
        if (strcmp(entries[i].name, name) == 0) {
            *out = entries[i];
            found = 1;
        }
    pthread_mutex_unlock(&lock);
    return found;
}

/* One line of the text into e: "name z85", or "? name" for a file being written (its
 * previous entry, if any). 0 if the line gives no entry. */
static int parse_line(const char *line, struct entry *e)
{
    *e = (struct entry){0};
    if (line[0] == '?' && line[1] == ' ')
        return strlen(line + 2) < sizeof e->name && previous(line + 2, e);
    const char *sp = strchr(line, ' ');
    if (!sp || (size_t)(sp - line) >= sizeof e->name || strlen(sp + 1) != PM_KEY_Z85 - 1)
        return 0; /* also the "#state" line */
    memcpy(e->name, line, (size_t)(sp - line));
    e->name[sp - line] = '\0';
    e->role = pm_role_of_key_name(e->name);
    return e->role != PM_ROLE_NONE && zmq_z85_decode(e->key, sp + 1);
}

int pm_allowlist_set(const char *text)
{
    size_t cap = 16, n = 0;
    struct entry *list = malloc(cap * sizeof *list);
    for (const char *p = text; list && *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        char line[PM_KEY_NAME + PM_KEY_Z85 + 2];
        struct entry e;
        if (len < sizeof line) {
            memcpy(line, p, len);
            line[len] = '\0';
            int ok = parse_line(line, &e);
            for (size_t i = 0; i < n && ok; i++)
                ok = memcmp(list[i].key, e.key, 32) != 0; /* one key, one role: the first file wins */
            if (ok) {
                if (n == cap) {
                    struct entry *nl = realloc(list, (cap *= 2) * sizeof *nl);
                    if (!nl)
                        break;
                    list = nl;
                }
                list[n++] = e;
            }
        }
        p += len + (eol ? 1 : 0);
    }
    if (!list)
        return -1;
    pthread_mutex_lock(&lock);
    free(entries);
    entries = list;
    nentries = n;
    generation++;
    pthread_mutex_unlock(&lock);
    return (int)n;
}

static char *read_all(int fd)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    for (ssize_t n; buf; len += (size_t)n) {
        if (len + 1 == cap) {
            char *nb = cap >= MAX_TEXT ? NULL : realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
        }
        n = read(fd, buf + len, cap - len - 1);
        if (n <= 0) {
            if (n < 0) {
                free(buf);
                return NULL;
            }
            break;
        }
    }
    if (buf)
        buf[len] = '\0';
    return buf;
}

/* The state the scan's last line vouches for (pm_allowlist_scan_fd). */
static void remember_state(const char *text)
{
    const char *line = strncmp(text, "#state ", 7) == 0 ? text : strstr(text, "\n#state ");
    unsigned long long v = 0;
    int known = line && sscanf(line + (*line == '\n') + 7, "%llx", &v) == 1;
    pthread_mutex_lock(&lock);
    last_state = v;
    last_state_known = known;
    pthread_mutex_unlock(&lock);
}

int pm_allowlist_reload_if_changed(const char *dir)
{
    int slot = pm_outside_find(dir);
    struct stat st;
    if ((slot >= 0 ? pm_outside_stat(slot, &st) : pm_allowlist_state(dir, &st)) < 0)
        return -1;
    pthread_mutex_lock(&lock);
    int same = last_state_known && (unsigned long long)st.st_size == last_state;
    pthread_mutex_unlock(&lock);
    if (same)
        return 0;
    return pm_allowlist_reload(dir) < 0 ? -1 : 1;
}

int pm_allowlist_reload(const char *dir)
{
    int slot = pm_outside_running() ? pm_outside_find(dir) : -1;
    char *text;
    if (slot >= 0) {
        int fd = pm_outside_open(slot);
        text = fd >= 0 ? read_all(fd) : NULL;
        if (fd >= 0)
            close(fd);
    } else {
        text = pm_allowlist_scan(dir);
    }
    if (!text) {
        pthread_mutex_lock(&lock);
        last_state_known = 0;
        pthread_mutex_unlock(&lock);
        return -1;
    }
    remember_state(text);
    int n = pm_allowlist_set(text);
    free(text);
    return n;
}

int pm_allowlist_find(const unsigned char key[32], enum pm_role *role, char name[PM_KEY_NAME])
{
    int found = 0;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < nentries && !found; i++)
        if (memcmp(entries[i].key, key, 32) == 0) {
            found = 1;
            if (role)
                *role = entries[i].role;
            if (name)
                memcpy(name, entries[i].name, PM_KEY_NAME);
        }
    pthread_mutex_unlock(&lock);
    return found;
}

int pm_allowlist_find_z85(const char *z85, enum pm_role *role, char name[PM_KEY_NAME])
{
    unsigned char bin[32];
    if (!z85 || strlen(z85) != PM_KEY_Z85 - 1 || !zmq_z85_decode(bin, z85))
        return 0;
    return pm_allowlist_find(bin, role, name);
}

unsigned pm_allowlist_generation(void)
{
    pthread_mutex_lock(&lock);
    unsigned g = generation;
    pthread_mutex_unlock(&lock);
    return g;
}
