/*
 * model_info.h: LiteLLM's model catalogue routes, GET /model/info (also
 * /v1/model/info) and GET /model_group/info, built from [aliases], [prices]
 * and the upstream's model list, and filtered per caller like /v1/models.
 * An entry names the actual target (litellm_params.model) and never a
 * secret: no upstream key, no upstream URL.
 */
#ifndef GW_MODEL_INFO_H
#define GW_MODEL_INFO_H

#include "err.h"

struct gw_req;
struct gw_principal;

/*
 * Answer /model/info: {"data": [{model_name, litellm_params: {model},
 * model_info: {id, key, mode, input_cost_per_token, output_cost_per_token,
 * fallbacks, ...}}]}, the models who may call; ?litellm_model_id= keeps the
 * entries whose model_info.id (the actual target) is that.
 */
enum gw_status gw_model_info_list(
    struct gw_req *req, const struct gw_principal *who) GW_NONNULL(1, 2);
/*
 * Answer /model_group/info: {"data": [{model_group, providers, mode,
 * input_cost_per_token, output_cost_per_token, ...}]}; ?model_group= keeps
 * that group only.
 */
enum gw_status gw_model_info_groups(
    struct gw_req *req, const struct gw_principal *who) GW_NONNULL(1, 2);

#endif /* GW_MODEL_INFO_H */
