/*
 * validate.h: request bodies checked against the spec before anything goes
 * upstream. Fields the spec does not constrain pass through untouched.
 */
#ifndef GW_VALIDATE_H
#define GW_VALIDATE_H

#include <json-c/json.h>
#include <stddef.h>

#include "err.h"

/* Where a request went wrong: the field (OpenAI's "param") and why. */
struct gw_verr {
	char param[96];
	char msg[320];
};

/*
 * Fill e with param and the message fmt makes (cut to fit); returns
 * GW_E_INVALID, for `return gw_validate_fail(e, ...)`.
 */
enum gw_status gw_validate_fail(struct gw_verr *e, const char *param,
    const char *fmt, ...) GW_PRINTF(3, 4) GW_NONNULL(1, 2, 3);

/*
 * body's member key, when present and not null, is a number within
 * [lo, hi]: GW_OK (also when absent), else GW_E_INVALID with e filled.
 */
enum gw_status gw_validate_number_in(json_object *body, const char *key,
    double lo, double hi, struct gw_verr *e) GW_NONNULL(2, 5);

/*
 * body's member key is a non-empty string: GW_OK, else GW_E_INVALID with
 * e filled ("is required" when absent or null).
 */
enum gw_status gw_validate_need_string(
    json_object *body, const char *key, struct gw_verr *e) GW_NONNULL(2, 3);

/* POST /v1/chat/completions body. GW_E_INVALID with *e filled. */
enum gw_status gw_validate_chat(json_object *body, struct gw_verr *e)
    GW_NONNULL(2);
/* POST /v1/completions body. */
enum gw_status gw_validate_completion(json_object *body, struct gw_verr *e)
    GW_NONNULL(2);
/* POST /v1/embeddings body. */
enum gw_status gw_validate_embedding(json_object *body, struct gw_verr *e)
    GW_NONNULL(2);

/*
 * The body's "metadata" (NULL-ok body) at most max_bytes as JSON: else
 * GW_E_INVALID with *e filled, and "metadata" removed from body, so that
 * what answers the refusal (its spend row) does not keep it.
 */
enum gw_status gw_validate_metadata(
    json_object *body, size_t max_bytes, struct gw_verr *e) GW_NONNULL(3);

#endif /* GW_VALIDATE_H */
