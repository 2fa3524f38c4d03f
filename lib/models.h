/*
 * models.h: GET /v1/models and /v1/models/{model}: the upstream's models
 * (fetched at most every [upstream] models_cache_s seconds per worker
 * process, never per request) plus every alias, in the spec's ModelList and
 * Model shapes.
 */
#ifndef GW_MODELS_H
#define GW_MODELS_H

#include "err.h"

struct gw_req;

/* Answer GET /v1/models (authenticated by the caller). */
enum gw_status gw_models_list(struct gw_req *req) GW_NONNULL(1);
/* Answer GET /v1/models/{id}: the Model object or 404. */
enum gw_status gw_models_get(struct gw_req *req, const char *id)
    GW_NONNULL(1, 2);

#endif /* GW_MODELS_H */
