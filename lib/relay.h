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

#include <stddef.h>
#include <stdint.h>

#include "capture.h" /* enum gw_call */
#include "err.h"

struct gw_json_usage;
struct gw_req;
struct gw_route_call;
struct gw_verr;
struct json_object;

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

/*
 * Parse buf (len bytes) once, of at most max_values JSON values (0: no
 * limit), and check it as a body of call: GW_OK with *body, or
 * GW_E_INVALID with e filled (param "" when it is no JSON).
 * *body, when not NULL, is the caller's to put, also on GW_E_INVALID (a
 * refused request's spend row still reads its metadata).
 */
enum gw_status gw_relay_parse_body(enum gw_call call, const char *buf,
    size_t len, size_t max_values, struct json_object **body, struct gw_verr *e)
    GW_NONNULL(5, 6);

/*
 * Note one reply's usage in acc, as chunks arrive: members a chunk lacks
 * keep what an earlier one said; total defaults to prompt + completion.
 * Nothing changes when u->known is 0.
 */
void gw_relay_note_usage(struct gw_usage *acc, const struct gw_json_usage *u)
    GW_NONNULL(1, 2);

#endif /* GW_RELAY_H */
