/*
 * shipper.h: one writer thread per process ships its spool (spool.h) to
 * PostgreSQL every [spend] flush_ms, in batches of up to batch_rows rows,
 * one statement per batch: the rows are inserted with ON CONFLICT
 * (request_id) DO NOTHING and the key, user and team spend totals move by
 * the sum of the rows actually inserted, in the same statement, so a
 * replay can never count a row twice. While PostgreSQL is down the spool
 * grows and is shipped when it is back. A row PostgreSQL refuses as data
 * (SQLSTATE class 22) is found by shipping its batch one row at a time and
 * kept aside (gw_spool_reject); the rest ships. Every 2 s the writer also
 * ships the spools of dead processes, and every budget_reset_check_s it
 * runs budget resets.
 */
#ifndef GW_SHIPPER_H
#define GW_SHIPPER_H

#include <stdint.h>

#include "config.h"

struct gw_db;

/*
 * Start this process's writer thread (idempotent), and hand it cfg when
 * that is newer than its own (a reload): it takes cfg at its next cycle.
 * Called for every spooled row, so a reloaded file reaches the writer with
 * the first request that runs under it.
 */
void gw_shipper_start(const struct gw_cfg *cfg) GW_NONNULL(1);
/*
 * Give the writer up to timeout_ms to ship what is spooled (at exit); when
 * all of it is, the spool file is removed (gw_spool_retire).
 */
void gw_shipper_drain(int timeout_ms);

/*
 * Ship the complete lines of spool file fd from *off, at most max_rows of
 * them, as one batch through db, moving *off past what was shipped (or
 * kept aside as refused). Returns the number of lines shipped (0: nothing
 * to do), or -1 when the database failed (the spool stays for the next
 * try; logged).
 */
int gw_shipper_ship(struct gw_db *db, int fd, uint64_t *off, int max_rows)
    GW_NONNULL(1, 3);

#endif /* GW_SHIPPER_H */
