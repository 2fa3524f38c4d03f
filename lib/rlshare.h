/*
 * rlshare.h: per-key, per-user and per-team limits held across hosts
 * through PostgreSQL ([rate_limit] shared; migration 010). The engine
 * behind gw_rl_admit_shared (ratelimit.h): a host takes slices of an
 * entity's minute window (llmgw_rl_take) and parallel slots
 * (llmgw_rl_par_take) with one round trip each, and renews its leases once
 * a second (llmgw_rl_beat), sending the tokens it counted since. When
 * PostgreSQL cannot be reached, requests are judged by each host alone
 * for a second before it is tried again (fail open, logged once per
 * outage).
 */
#ifndef GW_RLSHARE_H
#define GW_RLSHARE_H

#include "config.h"
#include "db.h"
#include "ratelimit.h"

/* What gw_rlshare_sync needs: caller storage for one admission. */
struct gw_rlshare_arg {
	struct gw_db *db;
	const struct gw_cfg *cfg;
};

/*
 * Fill sh (and arg) for an admission on a thread owning db: sh, or NULL
 * when cfg's [rate_limit] shared is off or db is NULL.
 */
const struct gw_rl_share *gw_rlshare_get(struct gw_rl_share *sh,
    struct gw_rlshare_arg *arg, const struct gw_cfg *cfg, struct gw_db *db)
    GW_NONNULL(1, 2, 3);

/* gw_rl_share's sync: arg is a struct gw_rlshare_arg. 0 or -1. */
int gw_rlshare_sync(void *arg, struct gw_rl_sync *s) GW_NONNULL(1, 2);

/*
 * The heartbeat, about once a second from one thread per process (at
 * most one process per host beats in a second): renews this host's
 * parallel leases, sends its tokens. *db is that thread's handle, made
 * when NULL (gw_db_free it at the end).
 */
void gw_rlshare_beat(struct gw_db **db, const struct gw_cfg *cfg)
    GW_NONNULL(1, 2);

#endif /* GW_RLSHARE_H */
