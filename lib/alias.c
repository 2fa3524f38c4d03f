/* alias.c: model alias resolution (a lookup in the loaded config). */
#include "alias.h"

void
gw_alias_resolve(
    const struct gw_cfg *cfg, const char *name, struct gw_targets *out)
{
	const struct gw_alias *a = gw_cfg_find_alias(cfg, name);

	if (a != NULL) {
		out->models = (const char *const *)a->targets;
		out->n = a->ntargets;
		out->aliased = 1;
		out->one = NULL;
		return;
	}
	out->one = name;
	out->models = &out->one;
	out->n = 1;
	out->aliased = 0;
}
