/* Handing a finished message to the queue: one Submit over the bus per message, matched
 * to its session by request_id (pending.h). The client hears 250 only for COMMITTED; a send failure,
 * a TEMPFAIL or silence past smtpd.submit_timeout is a 4xx, never a false 250.
 *
 * With several queue shards (queue.endpoint as a list) submissions go round robin over the
 * shards that are up (common/queueset.h). A submission whose shard is not connected goes to
 * the next one; one whose shard lost its connection, or did not answer within a short
 * per-shard timeout, is sent again to another shard that is up. Only when no shard takes
 * or answers it does the client get 451. */
#ifndef SMTPD_SUBMIT_H
#define SMTPD_SUBMIT_H
#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "pending.h"

struct evbuffer;
struct smtpd_session;

/* Sends the session's transaction with msg as body (msg is consumed). The reply to the
 * client follows later (or at once if the send fails). */
void smtpd_submit_message(struct smtpd_session *s, struct evbuffer *msg);

/* Its row in the table of requests waiting for answers (pending.c). */
extern const struct smtpd_pending_kind smtpd_submit_kind;

/* The retry timer fired: try sending again (the queue was not connected). */
void smtpd_submit_retry(struct smtpd_session *s);

/* The submit timer fired: another shard after the per-shard timeout, 451 to the client
 * after submit_timeout. */
void smtpd_submit_timeout(struct smtpd_session *s);

/* The session is going away: forget its outstanding request (a late reply is logged). */
void smtpd_submit_forget(struct smtpd_session *s);

/* Maps a queue reply to the SMTP reply line (pure; for the tests). */
void smtpd_submit_reply_text(int status, const char *queue_id, const char *text, char *dst, size_t size);

#endif
