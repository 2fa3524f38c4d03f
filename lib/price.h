/*
 * price.h: what a request cost, from the [prices] table of the loaded
 * configuration (USD per 1M tokens of the actual model). Pure arithmetic:
 * no state, no locks.
 */
#ifndef GW_PRICE_H
#define GW_PRICE_H

#include <stdint.h>

#include "config.h"

/*
 * USD for prompt_tokens and completion_tokens on actual_model, plus its
 * per-request price (input_cost_per_request / input_cost_per_query): 0
 * when actual_model is NULL or not listed in [prices].
 */
double gw_price_cost(const struct gw_cfg *cfg, const char *actual_model,
    int64_t prompt_tokens, int64_t completion_tokens) GW_NONNULL(1);

/* The units of a call not counted in tokens (gw_price_cost_units). */
enum gw_price_unit {
	GW_PRICE_SECONDS = 0, /* audio transcribed: input_cost_per_second */
	GW_PRICE_CHARACTERS,  /* text spoken: input_cost_per_character */
};

/*
 * USD for amount of unit on actual_model (amount < 0: unknown): amount
 * times the model's price of that unit when both are known, else its
 * input_cost_per_request, else 0 (also when actual_model is NULL or not
 * listed in [prices]).
 */
double gw_price_cost_units(const struct gw_cfg *cfg, const char *actual_model,
    enum gw_price_unit unit, double amount) GW_NONNULL(1);

#endif /* GW_PRICE_H */
