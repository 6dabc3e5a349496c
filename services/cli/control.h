/* The CLI's side of queue.control with shards: one ControlRequest to every shard's control
 * endpoint (cfg->queue.controls) at once, each answer kept with the shard it came from. A
 * shard that does not answer in time costs that time once, not once per shard. */
#ifndef CLI_CONTROL_H
#define CLI_CONTROL_H
#include "config.h"
#include "postmesh.pb-c.h"

struct cli_answer {
    const char *control;                /* the shard's control endpoint (the config's string) */
    Postmesh__BusMessage *msg;          /* NULL: no (usable) answer */
    const Postmesh__ControlReply *reply; /* inside msg, for a ControlRequest */
};

/* Asks every shard; *out gets one answer per shard in config order (free with
 * cli_answers_free). Returns the number of shards, or -1 (printed) if nothing could be
 * asked at all. */
/* The same for any request (request_id is set per shard), keeping answers of kind want. */
int cli_ask_shards(const struct pm_config *cfg, Postmesh__BusMessage *msg, Postmesh__BusMessage__BodyCase want,
                   int timeout_ms, struct cli_answer **out);
int cli_control_all(const struct pm_config *cfg, Postmesh__ControlRequest__Command command, const char *queue_id,
                    int timeout_ms, struct cli_answer **out);
void cli_answers_free(struct cli_answer *a, int n);

/* `queue list` streamed: each shard in turn is asked page after page (LIST with a limit,
 * items after the last id seen) and every page handed to page() as it arrives, so the CLI
 * never holds more than one page. done() is called once per shard with whether its listing
 * was complete. Returns the number of shards, or -1 (printed) if nothing could be asked. */
typedef void (*cli_page_fn)(int shard, const char *control, const Postmesh__ControlReply *reply, void *arg);
typedef void (*cli_shard_done_fn)(int shard, const char *control, int complete, const Postmesh__ControlReply *refusal,
                                  void *arg);
int cli_list_pages(const struct pm_config *cfg, unsigned page_size, int timeout_ms, cli_page_fn page,
                   cli_shard_done_fn done, void *arg);

#endif
