/*
 * budget_reset.c: one statement resets the keys, users and teams that are
 * due, built from one template per entity table.
 *
 * Which process runs resets: any writer, one at a time. The statement
 * opens with pg_try_advisory_xact_lock (RESET_LOCK below): the writer that
 * gets the lock resets everything due and records it, in the same
 * transaction; a writer that does not get it scans nothing (the lock is a
 * one-time filter on every table's scan). A transaction lock rather than a
 * session lock held by an elected writer: nothing to hand over when that
 * process exits or its connection drops, and a writer that hangs holds the
 * lock only until its statement_timeout (30 s) ends the statement. FOR
 * UPDATE SKIP LOCKED stays, so that a row an admin request is updating is
 * reset at the next check instead of being waited for.
 */
#include "budget_reset.h"

#include <pthread.h>
#include <stdio.h>

#include "db.h"
#include "log.h"
#include "util.h"

/* pg_try_advisory_xact_lock(classid, objid): "llmg" in ASCII, resets. */
#define RESET_LOCK "1819176295, 1"

/* An entity table: its name, its key column, its budget_resets type. */
struct table {
	const char *name;
	const char *id;
	const char *type;
};

static const struct table tables[] = {
    {"keys", "token", "key"},
    {"users", "user_id", "user"},
    {"teams", "team_id", "team"},
};

/*
 * Per table (%1$s its type, %2$s its name, %3$s its key column): the due
 * rows, locked; then their reset, returning what budget_resets records.
 */
#define DUE_AND_RESET                                                          \
	", %1$s_due AS (SELECT %3$s AS id, spend, budget_duration FROM %2$s "  \
	"WHERE (SELECT held FROM lk) AND budget_reset_at <= now() AND "        \
	"budget_duration IS NOT NULL FOR UPDATE SKIP LOCKED), "                \
	"%1$s_upd AS (UPDATE %2$s e SET spend = 0, budget_reset_at = "         \
	"now() + llmgw_interval(d.budget_duration) FROM %1$s_due d WHERE "     \
	"e.%3$s = d.id RETURNING '%1$s'::text AS entity_type, e.%3$s AS "      \
	"entity_id, d.spend AS spend_before, e.budget_reset_at AS "            \
	"next_reset_at)"

static struct gw_buf reset_sql;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void
build_sql(void)
{
	size_t i;

	gw_buf_puts(&reset_sql,
	    "WITH lk AS (SELECT pg_try_advisory_xact_lock(" RESET_LOCK
	    ") AS held)");
	for (i = 0; i < GW_ARRAY_LEN(tables); i++)
		gw_buf_printf(&reset_sql, DUE_AND_RESET, tables[i].type,
		    tables[i].name, tables[i].id);
	gw_buf_puts(&reset_sql, " INSERT INTO budget_resets (entity_type, "
	                        "entity_id, spend_before, next_reset_at) ");
	for (i = 0; i < GW_ARRAY_LEN(tables); i++)
		gw_buf_printf(&reset_sql, "%sSELECT * FROM %s_upd",
		    i > 0 ? " UNION ALL " : "", tables[i].type);
}

enum gw_status
gw_budget_reset_run(struct gw_db *db)
{
	char err[512];

	pthread_once(&once, build_sql);
	if (gw_db_exec(db, reset_sql.p, 0, NULL, 0, NULL, err, sizeof(err)) !=
	    GW_OK) {
		gw_log_warn(NULL, "spend", "budget reset failed: %s", err);
		return GW_E_DB;
	}
	return GW_OK;
}
