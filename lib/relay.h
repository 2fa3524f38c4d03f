/*
 * relay.h: one OpenAI request relayed to the upstream: authenticate, read
 * and validate the body (parsed once), rewrite the model alias, POST on the
 * thread's kept-alive connection, and answer: JSON as a whole, SSE chunk by
 * chunk as the upstream emits them. Retries connection failures, falls
 * back through an alias's models on 5xx before any byte reached the client,
 * keeps a silent stream alive with ": keepalive" comments, and always learns
 * the usage (asking the upstream for it in streams).
 */
#ifndef GW_RELAY_H
#define GW_RELAY_H

#include <stdint.h>

#include "capture.h" /* enum gw_call */
#include "err.h"

struct gw_req;
struct gw_route_call;

/* Token counts the upstream reported (known = 0 when it reported none). */
struct gw_usage {
	int64_t prompt;
	int64_t completion;
	int64_t total;
	int known;
};

/*
 * Relay one POST of kind call for the caller the dispatcher authenticated
 * (taken from c: the relay releases it); always replies (or the client is
 * gone). GW_DETACHED when a stream goes on on the event loop.
 */
enum gw_status gw_relay(struct gw_req *req, enum gw_call call,
    struct gw_route_call *c) GW_NONNULL(1, 3);

/*
 * {base_url}/v1{path}: the upstream URL for an OpenAI path such as
 * "/chat/completions" (no doubled "/v1" when base_url ends with it).
 * Caller frees.
 */
char *gw_relay_url(const char *base_url, const char *path) GW_NONNULL(1, 2);

#endif /* GW_RELAY_H */
