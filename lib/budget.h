/*
 * budget.h: max_budget checks against a per-process cache of the spend of
 * keys, users and teams.
 *
 * A request is refused (400 budget_exceeded) when its key, team or user is
 * at or over max_budget. Spend is read from PostgreSQL at most every
 * [spend] budget_refresh_ms per entity and process, plus what this process
 * spooled and did not ship yet (its charges). Overspend is therefore
 * bounded by the cost of requests already in flight, plus what other
 * processes and hosts spent in the last budget_refresh_ms + flush_ms.
 *
 * The cache keeps at most GW_BUDGET_CACHE_MAX entities per process beyond
 * those a charge or a check holds, evicting the least recently used.
 */
#ifndef GW_BUDGET_H
#define GW_BUDGET_H

#include <stddef.h>

#include "config.h"
#include "err.h"

/* Entities cached per process, besides those held (see budget.c). */
#define GW_BUDGET_CACHE_MAX 4096

struct gw_principal;
struct gw_db;
struct gw_budget_charge;

/*
 * GW_OK, or GW_E_INVALID with LiteLLM's "Budget has been exceeded!
 * Current cost: X, Max budget: Y" in msg when who's key, team or user is
 * at or over its budget. Reads stale spend through db (a database error
 * keeps the last known spend).
 */
enum gw_status gw_budget_check(struct gw_db *db, const struct gw_cfg *cfg,
    const struct gw_principal *who, char *msg, size_t msglen)
    GW_NONNULL(1, 2, 3, 4);

/* The key's spend as this process knows it (-1: who is not a key). */
double gw_budget_key_spend(const struct gw_principal *who) GW_NONNULL(1);

/*
 * Count cost against who's key, user and team until the row that says so
 * is shipped: a new charge for gw_budget_charge_done, or NULL when there is
 * nothing to count (cost <= 0, no key record).
 */
struct gw_budget_charge *gw_budget_charge_new(
    const struct gw_principal *who, double cost) GW_NONNULL(1);
/*
 * End a charge and free it (NULL-safe): shipped, its cost counts as spend
 * read from the database until the next read; not shipped (the row could
 * not be spooled), it is dropped.
 */
void gw_budget_charge_done(struct gw_budget_charge *c, int shipped);

/* Entities cached by this process right now (tests, diagnostics). */
size_t gw_budget_cached(void);

#endif /* GW_BUDGET_H */
