/*
 * alias.h: client model names to actual upstream models, from [aliases].
 * gpt-4 -> qwen3-30b-a3b (then its fallbacks in order); any other name
 * passes through unchanged.
 */
#ifndef GW_ALIAS_H
#define GW_ALIAS_H

#include <stddef.h>

#include "config.h"

/* The models to try for name, in order, and their count (>= 1). */
struct gw_targets {
	const char *const *models; /* borrowed from cfg, or &name */
	size_t n;
	int aliased;     /* name was an alias */
	const char *one; /* storage for the pass-through case */
};

/*
 * Resolve name. The result borrows from cfg and name: both must outlive
 * it.
 */
void gw_alias_resolve(const struct gw_cfg *cfg, const char *name,
    struct gw_targets *out) GW_NONNULL(1, 2, 3);

#endif /* GW_ALIAS_H */
