/*
 * budget_reset.h: scheduled budget resets. A key, user or team whose
 * budget_duration ("30d", "1mo", ...) has elapsed since budget_reset_at
 * gets its spend zeroed and its next reset scheduled, and every reset is
 * recorded in budget_resets with the spend it cleared.
 *
 * Every spend writer (shipper.h) calls gw_budget_reset_run every [spend]
 * budget_reset_check_s, but the statement first takes a transaction-level
 * PostgreSQL advisory lock with pg_try_advisory_xact_lock: one writer in
 * the whole database (every host included) resets at a time, and the
 * others' statements end at once without reading a table.
 */
#ifndef GW_BUDGET_RESET_H
#define GW_BUDGET_RESET_H

#include "err.h"
#include "util.h"

struct gw_db;

/*
 * Reset every key, user and team that is due, in one statement through db,
 * unless another writer is doing it right now. GW_OK, or GW_E_DB (logged
 * at warn: the next call tries again).
 */
enum gw_status gw_budget_reset_run(struct gw_db *db) GW_NONNULL(1);

#endif /* GW_BUDGET_RESET_H */
