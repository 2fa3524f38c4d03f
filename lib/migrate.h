/*
 * migrate.h: apply migrations/NNN_name.sql in order, each in its own
 * transaction together with its row in schema_migrations, under a
 * PostgreSQL advisory lock so that two hosts never migrate at once.
 * Migration files must not contain BEGIN/COMMIT themselves.
 */
#ifndef GW_MIGRATE_H
#define GW_MIGRATE_H

#include <stdio.h>

#include "err.h"

struct gw_db;

/*
 * Apply every migration of dir not yet recorded. Progress lines go to out
 * (may be NULL); *applied receives how many ran. The first failure stops
 * the run, leaving earlier migrations applied: GW_E_DB (or GW_E_INVALID
 * for a bad directory) with "NNN_name.sql: <PostgreSQL error>" in err.
 */
enum gw_status gw_migrate_apply(struct gw_db *db, const char *dir, FILE *out,
    int *applied, char *err, size_t errlen) GW_NONNULL(1, 2, 4, 5);

/* Print each migration of dir as "applied" or "pending" to out. */
enum gw_status gw_migrate_status(struct gw_db *db, const char *dir, FILE *out,
    char *err, size_t errlen) GW_NONNULL(1, 2, 3, 4);

#endif /* GW_MIGRATE_H */
