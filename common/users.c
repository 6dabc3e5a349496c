/* The users file: "address:{SCHEME}hash" lines, held as a sorted array of lower-cased
 * addresses so lookups are a binary search. */
#include "users.h"

#include <crypt.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "addr.h"
#include "filestamp.h"
#include "heldfile.h"

#define MAX_LINE 4096
#define MAX_ADDRESS 320

struct user {
    char *address;     /* lower-cased; also the start of the one allocation of this entry */
    const char *crypt; /* the crypt(3) string after "{SCHEME}" */
    int line;
};

struct pm_users {
    char *path;
    struct pm_filestamp stamp;
    struct user *v;
    size_t n;
    const char *dummy; /* hashed against for unknown users: one of the most common scheme */
};

/* Verified against when the address is unknown, so an unknown user costs one hash
 * computation like a known one (yescrypt, default cost; the password is unknown to anyone). */
static const char dummy_hash[] = "$y$j9T$B0quwvrA/xBOeengk3ac..$YA6Jiuup2JGGa9o8RzxXEzqX.kiluUU5dhKb2ZhT8J6";

struct scheme {
    const char *name;   /* as written in the file, between braces */
    const char *prefix; /* crypt(3) method prefix */
};
static const struct scheme schemes[] = {
    {"YESCRYPT", "$y$"},
    {"SHA512-CRYPT", "$6$"},
};
#define NSCHEMES (sizeof schemes / sizeof schemes[0])

static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

static int has_space_or_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f)
            return 1;
    return 0;
}

/* Returns the crypt string inside a "{SCHEME}crypt" value, or NULL with a reason. */
static const char *check_hash(const char *value, const char **reason)
{
    for (size_t i = 0; i < NSCHEMES; i++) {
        size_t n = strlen(schemes[i].name);
        if (value[0] == '{' && strncasecmp(value + 1, schemes[i].name, n) == 0 && value[n + 1] == '}') {
            const char *c = value + n + 2;
            if (strncmp(c, schemes[i].prefix, strlen(schemes[i].prefix)) != 0) {
                *reason = "hash does not match its {SCHEME}";
                return NULL;
            }
            int dollars = 0;
            for (const char *p = c; *p; p++)
                dollars += *p == '$';
            /* "$6$salt$hash", "$6$rounds=N$salt$hash", "$y$params$salt$hash" */
            if (strlen(c) >= CRYPT_OUTPUT_SIZE || has_space_or_ctl(c) || dollars < 3 || c[strlen(c) - 1] == '$') {
                *reason = "malformed hash";
                return NULL;
            }
            return c;
        }
    }
    *reason = "unknown password scheme (expected {YESCRYPT} or {SHA512-CRYPT})";
    return NULL;
}

/* Why an address field is unusable, or NULL. The field is a NUL-terminated copy. */
static const char *check_address(const char *a)
{
    const char *domain = pm_addr_domain(a);
    if (strlen(a) > MAX_ADDRESS)
        return "address too long";
    if (has_space_or_ctl(a))
        return "address contains white space or control characters";
    if (!*domain || domain == a + 1) /* no domain, or nothing before its '@' */
        return "address must be local-part@domain";
    return NULL;
}

int pm_users_parse_line(const char *line, char **address, char **hash, const char **reason)
{
    *address = *hash = NULL;
    *reason = NULL;
    while (*line == ' ' || *line == '\t')
        line++;
    size_t len = strlen(line);
    while (len && isspace((unsigned char)line[len - 1]))
        len--;
    if (len == 0 || line[0] == '#')
        return 0;
    char *copy = strndup(line, len);
    if (!copy) {
        *reason = "out of memory";
        return -1;
    }
    char *colon = strchr(copy, ':');
    if (!colon) {
        *reason = "expected address:{SCHEME}hash";
    } else {
        *colon = '\0';
        if (!(*reason = check_address(copy)))
            check_hash(colon + 1, reason);
    }
    if (*reason) {
        free(copy);
        return -1;
    }
    *address = copy;
    *hash = colon + 1;
    return 1;
}

static int cmp_user(const void *a, const void *b)
{
    return strcmp(((const struct user *)a)->address, ((const struct user *)b)->address);
}

static void free_entries(struct pm_users *u)
{
    for (size_t i = 0; i < u->n; i++)
        free(u->v[i].address);
    free(u->v);
    u->v = NULL;
    u->n = 0;
}

void pm_users_free(struct pm_users *u)
{
    if (!u)
        return;
    free_entries(u);
    free(u->path);
    free(u);
}

static int add_entry(struct pm_users *u, size_t *cap, char *address, const char *hash, int line)
{
    if (u->n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        struct user *nv = realloc(u->v, ncap * sizeof *nv);
        if (!nv)
            return -1;
        u->v = nv;
        *cap = ncap;
    }
    const char *reason;
    lower(address);
    u->v[u->n++] = (struct user){address, check_hash(hash, &reason), line};
    return 0;
}

/* Reads every line of f into u. Returns 0 or -1 with err filled. */
static int read_entries(struct pm_users *u, FILE *f, char *err, size_t errsize)
{
    char *line = NULL;
    size_t linecap = 0, cap = 0;
    ssize_t len;
    int lineno = 0, rc = 0;
    while (rc == 0 && (len = getline(&line, &linecap, f)) >= 0) {
        lineno++;
        char *address, *hash;
        const char *reason = NULL;
        int r;
        if (len > MAX_LINE)
            r = -1, reason = "line too long";
        else if ((size_t)len != strlen(line))
            r = -1, reason = "NUL byte in line";
        else
            r = pm_users_parse_line(line, &address, &hash, &reason);
        if (r < 0) {
            snprintf(err, errsize, "%s:%d: %s", u->path, lineno, reason);
            rc = -1;
        } else if (r > 0 && add_entry(u, &cap, address, hash, lineno) < 0) {
            free(address);
            snprintf(err, errsize, "%s:%d: out of memory", u->path, lineno);
            rc = -1;
        }
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, errsize, "%s:%d: read error: %s", u->path, lineno, strerror(errno));
        rc = -1;
    }
    free(line);
    if (rc < 0)
        return -1;
    if (u->n)
        qsort(u->v, u->n, sizeof *u->v, cmp_user);
    /* Unknown users cost what most known ones cost: a hash of the prevailing method. */
    size_t yescrypt = 0;
    const char *some[2] = {NULL, NULL};
    for (size_t i = 0; i < u->n; i++) {
        int y = strncmp(u->v[i].crypt, "$y$", 3) == 0;
        yescrypt += (size_t)y;
        if (!some[y])
            some[y] = u->v[i].crypt;
    }
    u->dummy = u->n ? some[yescrypt * 2 >= u->n] : NULL;
    for (size_t i = 1; i < u->n; i++) {
        if (strcmp(u->v[i - 1].address, u->v[i].address) == 0) {
            const struct user *a = &u->v[i - 1], *b = &u->v[i];
            snprintf(err, errsize, "%s:%d: duplicate user %s (also on line %d)", u->path,
                     a->line > b->line ? a->line : b->line, a->address, a->line > b->line ? b->line : a->line);
            return -1;
        }
    }
    return 0;
}

/* Through the descriptor the parent handed over when this process holds the file
 * (heldfile.h: a helper that dropped root), else by name. */
static FILE *open_file(const char *path)
{
    int fd;
    if (!pm_heldfile_open(path, &fd))
        return fopen(path, "re");
    FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
    if (!f && fd >= 0)
        close(fd);
    return f;
}

struct pm_users *pm_users_load(const char *path, char *err, size_t errsize)
{
    struct pm_users *u = calloc(1, sizeof *u);
    if (!u || !(u->path = strdup(path ? path : ""))) {
        free(u);
        snprintf(err, errsize, "%s:0: out of memory", path ? path : "");
        return NULL;
    }
    FILE *f = *u->path ? open_file(u->path) : NULL;
    if (!f) {
        if (!*u->path || errno == ENOENT)
            return u; /* no file yet: nobody can log in, but that is not an error */
        snprintf(err, errsize, "%s:0: cannot read: %s", u->path, strerror(errno));
        pm_users_free(u);
        return NULL;
    }
    pm_filestamp_fd(fileno(f), &u->stamp);
    int rc = read_entries(u, f, err, errsize);
    fclose(f);
    if (rc < 0) {
        pm_users_free(u);
        return NULL;
    }
    return u;
}

int pm_users_reload_if_changed(struct pm_users **u, char *err, size_t errsize)
{
    if (!u || !*u) {
        snprintf(err, errsize, "users database not loaded");
        return -1;
    }
    struct pm_filestamp now;
    if (!pm_heldfile_stamp((*u)->path, &now) && pm_filestamp_get((*u)->path, &now) < 0) {
        snprintf(err, errsize, "%s:0: cannot stat: %s", (*u)->path, strerror(errno));
        return -1;
    }
    if (pm_filestamp_equal(&now, &(*u)->stamp))
        return 0;
    struct pm_users *fresh = pm_users_load((*u)->path, err, errsize);
    if (!fresh) {
        /* Keep serving the old data; remember this version so the error is reported once,
         * and the next edit (a new stamp) is tried again. */
        (*u)->stamp = now;
        return -1;
    }
    pm_users_free(*u);
    *u = fresh;
    return 1;
}

static const struct user *find(const struct pm_users *u, const char *address)
{
    if (!u || !address || strlen(address) > MAX_ADDRESS)
        return NULL;
    char key[MAX_ADDRESS + 1];
    snprintf(key, sizeof key, "%s", address);
    lower(key);
    struct user probe = {key, NULL, 0};
    return u->n ? bsearch(&probe, u->v, u->n, sizeof *u->v, cmp_user) : NULL;
}

int pm_users_exists(const struct pm_users *u, const char *address) { return find(u, address) != NULL; }

/* Compares without an early exit, so the time does not tell how many bytes matched. */
static int equal_ct(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = la != lb;
    size_t n = la < lb ? la : lb;
    for (size_t i = 0; i < n; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

int pm_users_verify(const struct pm_users *u, const char *address, const char *password)
{
    const struct user *e = find(u, address);
    /* An unknown user is hashed against a known user's hash (same method and cost) when
     * there is one, so the response time does not tell which addresses exist. */
    const char *setting = e ? e->crypt : (u && u->dummy ? u->dummy : dummy_hash);
    if (!password || strlen(password) >= CRYPT_MAX_PASSPHRASE_SIZE)
        return 0;
    void *data = NULL;
    int size = 0;
    const char *out = crypt_ra(password, setting, &data, &size);
    int ok = e && out && out[0] != '*' && equal_ct(out, setting);
    if (data) {
        explicit_bzero(data, (size_t)size);
        free(data);
    }
    return ok;
}

char *pm_users_hash_password(const char *password, const char *scheme)
{
    const struct scheme *s = NULL;
    if (!scheme || !*scheme)
        scheme = "YESCRYPT";
    size_t sl = strlen(scheme);
    if (sl >= 2 && scheme[0] == '{' && scheme[sl - 1] == '}')
        scheme++, sl -= 2;
    for (size_t i = 0; i < NSCHEMES; i++)
        if (strlen(schemes[i].name) == sl && strncasecmp(schemes[i].name, scheme, sl) == 0)
            s = &schemes[i];
    if (!s || !password || strlen(password) >= CRYPT_MAX_PASSPHRASE_SIZE)
        return NULL;
    char *setting = crypt_gensalt_ra(s->prefix, 0, NULL, 0);
    if (!setting)
        return NULL;
    void *data = NULL;
    int size = 0;
    const char *out = crypt_ra(password, setting, &data, &size);
    char *result = NULL;
    if (out && out[0] != '*' && strncmp(out, s->prefix, strlen(s->prefix)) == 0) {
        size_t n = strlen(s->name) + strlen(out) + 3;
        result = malloc(n);
        if (result)
            snprintf(result, n, "{%s}%s", s->name, out);
    }
    if (data) {
        explicit_bzero(data, (size_t)size);
        free(data);
    }
    free(setting);
    return result;
}
