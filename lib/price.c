/* price.c: the cost of a request from the [prices] table. */
#include "price.h"

#include <stddef.h>

double
gw_price_cost(const struct gw_cfg *cfg, const char *actual_model,
    int64_t prompt_tokens, int64_t completion_tokens)
{
	const struct gw_price *p;

	if (actual_model == NULL ||
	    (p = gw_cfg_find_price(cfg, actual_model)) == NULL)
		return 0;
	return ((double)prompt_tokens * p->input_per_m +
	           (double)completion_tokens * p->output_per_m) /
	           1e6 +
	       (p->per_request > 0 ? p->per_request : 0);
}

double
gw_price_cost_units(const struct gw_cfg *cfg, const char *actual_model,
    enum gw_price_unit unit, double amount)
{
	const struct gw_price *p;
	double per;

	if (actual_model == NULL ||
	    (p = gw_cfg_find_price(cfg, actual_model)) == NULL)
		return 0;
	per = unit == GW_PRICE_SECONDS ? p->per_second : p->per_character;
	if (per >= 0 && amount >= 0)
		return per * amount;
	return p->per_request >= 0 ? p->per_request : 0;
}
