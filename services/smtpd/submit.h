/* Handing a finished message to the queue: one Submit over the bus per message, matched
 * to its session by request_id. The client hears 250 only for COMMITTED; a send failure,
 * a TEMPFAIL or silence past smtpd.submit_timeout is a 4xx, never a false 250. */
#ifndef SMTPD_SUBMIT_H
#define SMTPD_SUBMIT_H
#include <stddef.h>
#include <stdint.h>

#include "bus.h"

struct evbuffer;
struct smtpd_session;

/* Sends the session's transaction with msg as body (msg is consumed). The reply to the
 * client follows later (or at once if the send fails). */
void smtpd_submit_message(struct smtpd_session *s, struct evbuffer *msg);

/* The bus handler for queue.endpoint; arg is the server. */
void smtpd_submit_on_bus(struct pm_bus *bus, const uint8_t *peer, size_t peerlen, Postmesh__BusMessage *m, void *arg);

/* The retry timer fired: try sending again (the queue was not connected). */
void smtpd_submit_retry(struct smtpd_session *s);

/* submit_timeout expired: 451 to the client. */
void smtpd_submit_timeout(struct smtpd_session *s);

/* The session is going away: forget its outstanding request (a late reply is logged). */
void smtpd_submit_forget(struct smtpd_session *s);

/* Maps a queue reply to the SMTP reply line (pure; for the tests). */
void smtpd_submit_reply_text(int status, const char *queue_id, const char *text, char *dst, size_t size);

#endif
