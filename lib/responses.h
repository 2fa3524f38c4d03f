/*
 * responses.h: the OpenAI Responses API (POST /v1/responses) as the relay
 * needs it: the request body checked, the usage read from an answer or a
 * stream's events (input_tokens / output_tokens / total_tokens, at the
 * top of a JSON answer, under "response" in response.completed), and an
 * upstream that lacks the API told from one that refused the request.
 */
#ifndef GW_RESPONSES_H
#define GW_RESPONSES_H

#include <json-c/json.h>
#include <stddef.h>

#include "err.h"
#include "json_util.h"
#include "validate.h"

/*
 * Check a Responses body: model a non-empty string; input a string or an
 * array (required unless previous_response_id is set); instructions a
 * string; stream a boolean; max_output_tokens an integer >= 1;
 * temperature in [0, 2], top_p in [0, 1]. Other fields pass through.
 * GW_OK, or GW_E_INVALID with *e filled.
 */
enum gw_status gw_responses_validate(json_object *body, struct gw_verr *e)
    GW_NONNULL(2);

/*
 * The usage and id of a Responses answer or stream event into *u, in
 * struct gw_json_usage's order (prompt = input_tokens, completion =
 * output_tokens, total = total_tokens): from msg's own "usage" and "id"
 * (a JSON answer), else from msg.response (response.created, .completed,
 * ...). u->known is 0 when neither holds a usage object.
 */
void gw_responses_get_usage(json_object *msg, struct gw_json_usage *u)
    GW_NONNULL(2);

/*
 * 1 when an upstream answer of status (its body [body, body + len)) says
 * the upstream has no Responses API: 405 or 501, or a 404 that is not
 * about the model (llama-swap's and llama-server's "404 page not found",
 * "File Not Found"); 0 otherwise (its own error is relayed).
 */
int gw_responses_unsupported(int status, const char *body, size_t len);

/*
 * The text a Responses answer produced: each output message's
 * output_text parts, in order, handed to add (for Langfuse capture).
 */
void gw_responses_output_text(json_object *answer,
    void (*add)(void *arg, const char *s, size_t n), void *arg) GW_NONNULL(2);

#endif /* GW_RESPONSES_H */
