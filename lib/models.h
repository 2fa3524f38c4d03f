/*
 * models.h: GET /v1/models and /v1/models/{model}: the upstream's models
 * (fetched at most every [upstream] models_cache_s seconds per worker
 * process, never per request) plus every alias, in the spec's ModelList and
 * Model shapes.
 */
#ifndef GW_MODELS_H
#define GW_MODELS_H

#include <json-c/json.h>

#include "err.h"

struct gw_req;
struct gw_principal;

/*
 * The Model objects ({id, object, created, owned_by}) who may call, as a
 * new json-c array (the caller puts it): every alias, then each upstream
 * model no alias shadows.
 */
json_object *gw_models_list_new(
    struct gw_req *req, const struct gw_principal *who) GW_NONNULL(1, 2);

/* Answer GET /v1/models with the models who may call. */
enum gw_status gw_models_list(
    struct gw_req *req, const struct gw_principal *who) GW_NONNULL(1, 2);
/* Answer GET /v1/models/{id}: the Model object, or 404 (also when who may
 * not call it). */
enum gw_status gw_models_get(struct gw_req *req, const struct gw_principal *who,
    const char *id) GW_NONNULL(1, 2, 3);

#endif /* GW_MODELS_H */
