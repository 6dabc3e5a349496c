/* Writing one message into one Maildir, safely and at most once per (queue id, recipient):
 * tmp/<unique> -> write -> fsync -> link() to new/<name> -> fsync new/. link() refuses to
 * replace an existing file, so two workers racing on a re-dispatched job still leave one
 * copy; a copy already in new/ or cur/ (moved there by a mail reader) counts as delivered
 * once its directory is synced (a killed worker may have linked it and not synced). */
#ifndef DELIVERY_MAILDIR_H
#define DELIVERY_MAILDIR_H
#include <stddef.h>
#include <stdint.h>

enum delivery_write_result {
    DELIVERY_WRITTEN = 0,   /* a new file is in new/ */
    DELIVERY_DUPLICATE = 1, /* this (queue id, recipient) was already delivered */
};

/* The file name "<queue_id>.<index>.<digest>.<hostname>": the queue id must be
 * [A-Za-z0-9]{1,64}; digest is delivery_body_digest's; '/' and ':' in the hostname are
 * written as \057 and \072 (Maildir convention). Returns 0, or -1 if the queue id is
 * unusable. */
int delivery_file_name(const char *queue_id, uint32_t index, const char *digest, const char *hostname, char *dst,
                       size_t size);

/* 8 hex digits of the body's SHA-256. A repeated job (same message) finds its file again;
 * a different message that happens to carry the same queue id (ids of two queue shards
 * differ only by a random tag) gets another name instead of passing for a duplicate. */
#define DELIVERY_DIGEST_LEN 8
void delivery_body_digest(const uint8_t *body, size_t len, char dst[DELIVERY_DIGEST_LEN + 1]);

/* The header lines delivery prepends: "Return-Path: <sender>\r\nDelivered-To: <address>\r\n".
 * CR, LF and NUL in either value are replaced by '?' so nothing can inject a header.
 * Returns a malloc'd string (length in *len) or NULL. */
char *delivery_trace_headers(const char *sender, const char *address, size_t *len);

/* Delivers head + body into maildir (created if missing) as new/<name>.
 * Returns DELIVERY_WRITTEN, DELIVERY_DUPLICATE, or -errno on failure (nothing left in new/). */
int delivery_maildir_write(const char *maildir, const char *name, const char *head, size_t headlen,
                           const uint8_t *body, size_t bodylen);

/* Test hook (POSTMESH_TEST_DELIVERY_STALL): sleep this long after the tmp/ file is synced
 * (at_new = 0) or after the link into new/ (at_new = 1), so a test can kill the worker
 * at a known point of a job. */
void delivery_maildir_set_stall(unsigned seconds, int at_new);

#endif
