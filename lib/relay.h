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

struct gw_cfg;
struct gw_json_usage;
struct gw_principal;
struct gw_req;
struct gw_route_call;
struct gw_spend_rec;
struct gw_upstream_result;
struct gw_verr;
struct json_object;
struct gw_json_doc;

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
 * refused request's spend row still reads its metadata). doc, when not
 * NULL, says where the text's model is (gw_json_parse_doc).
 */
enum gw_status gw_relay_parse_body(enum gw_call call, const char *buf,
    size_t len, size_t max_values, struct json_object **body,
    struct gw_json_doc *doc, struct gw_verr *e) GW_NONNULL(5, 7);

/*
 * Note one reply's usage in acc, as chunks arrive: members a chunk lacks
 * keep what an earlier one said; total defaults to prompt + completion.
 * Nothing changes when u->known is 0.
 */
void gw_relay_note_usage(struct gw_usage *acc, const struct gw_json_usage *u)
    GW_NONNULL(1, 2);

/*
 * The pieces of an answer the relay and audio.c (its calls relayed the
 * same way) share. They only add headers or answer on req.
 */

/*
 * The head of every answer after the attempts: the time since t_start
 * (monotonic us) in ms as "12.345", the fallbacks tried, and the model
 * that answered (target; left out when NULL).
 */
void gw_relay_answer_headers(struct gw_req *req, int64_t t_start,
    size_t fallbacks, const char *target) GW_NONNULL(1);

/*
 * A priced answer's x-litellm-response-cost, and x-litellm-key-spend (the
 * key's spend with cost) when who's spend is known.
 */
void gw_relay_cost_headers(struct gw_req *req, const struct gw_principal *who,
    double cost) GW_NONNULL(1, 2);

/*
 * The upstream said no (status 4xx/5xx, its body[0, len), NULL-ok when len
 * is 0): answer the same status with its message, type and param in the
 * OpenAI error shape, redacted; a 429 carries Retry-After: retry_after
 * (NULL or "": 1).
 */
void gw_relay_reply_upstream_error(struct gw_req *req, int status,
    const char *body, size_t len, const char *retry_after) GW_NONNULL(1);

/*
 * How the request ended, into its spend row s: start and end times, the
 * first byte's (t_first_mono, monotonic us; 0: none came), the status
 * answered (499 when none: the client left), the error type, and whether
 * the client left (client_gone).
 */
void gw_relay_spend_ending(struct gw_spend_rec *s, const struct gw_req *req,
    int64_t t_first_mono, int client_gone) GW_NONNULL(1, 2);

/*
 * The message (into buf[size]) for an upstream that timed out: with no
 * first byte within [upstream] first_byte_timeout_s (first_byte 1), or
 * silent for idle_timeout_s (0).
 */
void gw_relay_timeout_msg(const struct gw_cfg *cfg, int first_byte, char *buf,
    size_t size) GW_NONNULL(1, 3);

/* The message (into buf[size]) for a transfer that failed (res->err). */
void gw_relay_failed_msg(const struct gw_upstream_result *res, char *buf,
    size_t size) GW_NONNULL(1, 2);

#endif /* GW_RELAY_H */
