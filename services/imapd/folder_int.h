/* Shared by folder.c (names, LIST, STATUS, first login), folder_ops.c (CREATE, DELETE,
 * RENAME) and subs.c (subscriptions). Nobody else includes this. */
#ifndef IMAP_FOLDER_INT_H
#define IMAP_FOLDER_INT_H
#include <stddef.h>

#include "folder.h"

/* dst = the Maildir++ directory name of a valid name: "" for INBOX, ".a.b" for "a/b"
 * (a first component spelling inbox becomes "INBOX"). 0 or -1. */
int imap_folder_dirname(const char *name, size_t len, char *dst, size_t size);
/* dst = the IMAP name of a directory entry (".a.b" -> "a/b"). 0, or -1 if the entry is no
 * folder name (".", "..", "..x", ".a..b", an invalid component, ".INBOX"). */
int imap_folder_from_dirname(const char *entry, char *dst, size_t size);
/* dst = name in canonical spelling (INBOX upper-cased as first component, one trailing '/'
 * dropped if drop_slash). 0, or -1 if invalid. */
int imap_folder_canon(const char *name, size_t len, int drop_slash, char *dst, size_t size);

/* The names of the existing folders (not INBOX), malloc'd, at most IMAP_FOLDER_MAX. 0 or -1. */
int imap_folder_names(const char *maildir, char ***names, size_t *n);
void imap_folder_names_free(char **names, size_t n);

/* Subscriptions as canonical names. 0 (a missing file is none) or -1. */
int imap_subs_read(const char *maildir, char ***names, size_t *n);
/* Replaces the file (tmp + rename) with names[0..n). 0 or -1. */
int imap_subs_write(const char *maildir, char *const *names, size_t n);
/* The subscriptions' lock (a read-modify-write of the file by two sessions must not lose
 * one's change). fd or -1; close to release. */
int imap_subs_lock(const char *maildir);

#endif
