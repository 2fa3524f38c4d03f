/*
 * Unit tests for lib/budget_reset.c: one statement per run, gated by the
 * advisory lock, covering keys, users and teams alike (the database is
 * fake_db.h; what the statement does is tested against PostgreSQL in
 * tests/integration/test_spend.py).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "budget_reset.h"
#include "fake_db.h"
#include "log.h"

static int
count(const char *s, const char *what)
{
	int n = 0;

	while ((s = strstr(s, what)) != NULL) {
		n++;
		s += strlen(what);
	}
	return n;
}

static void
test_one_statement(void **state)
{
	struct gw_db *db = gw_db_new("", 0, 0);
	const char *sql;
	char want[128];
	static const char *const tables[3][3] = {
	    {"key", "keys", "token"},
	    {"user", "users", "user_id"},
	    {"team", "teams", "team_id"},
	};
	int i;

	(void)state;
	fake_db_reset();
	assert_int_equal(gw_budget_reset_run(db), GW_OK);
	assert_int_equal(fake.execs, 1);
	sql = fake.last_sql;
	if (getenv("PRINT_SQL") != NULL)
		printf("%s\n", sql);
	/* Taken once, first; every table's scan waits on it. */
	assert_int_equal(count(sql, "pg_try_advisory_xact_lock("), 1);
	assert_int_equal(strncmp(sql,
	                     "WITH lk AS (SELECT "
	                     "pg_try_advisory_xact_lock(",
	                     40),
	    0);
	assert_int_equal(count(sql, "(SELECT held FROM lk)"), 3);
	assert_int_equal(count(sql, "FOR UPDATE SKIP LOCKED"), 3);
	assert_int_equal(count(sql, "INSERT INTO budget_resets"), 1);
	/* The CTEs joined by single commas, the last one by none. */
	assert_null(strstr(sql, ", ,"));
	assert_non_null(strstr(sql, "next_reset_at) INSERT INTO"));
	for (i = 0; i < 3; i++) {
		snprintf(want, sizeof(want), "FROM %s WHERE", tables[i][1]);
		assert_int_equal(count(sql, want), 1);
		snprintf(want, sizeof(want), "UPDATE %s e SET spend = 0",
		    tables[i][1]);
		assert_int_equal(count(sql, want), 1);
		snprintf(want, sizeof(want), "e.%s = d.id", tables[i][2]);
		assert_int_equal(count(sql, want), 1);
		snprintf(want, sizeof(want), "'%s'::text AS entity_type",
		    tables[i][0]);
		assert_int_equal(count(sql, want), 1);
		snprintf(
		    want, sizeof(want), "SELECT * FROM %s_upd", tables[i][0]);
		assert_int_equal(count(sql, want), 1);
	}
	/* The same statement every time. */
	sql = strdup(sql);
	assert_int_equal(gw_budget_reset_run(db), GW_OK);
	assert_string_equal(fake.last_sql, sql);
	free((char *)sql);
	gw_db_free(db);
}

static void
test_failure(void **state)
{
	struct gw_db *db = gw_db_new("", 0, 0);

	(void)state;
	fake.down = 1;
	assert_int_equal(gw_budget_reset_run(db), GW_E_DB);
	fake.down = 0;
	gw_db_free(db);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_one_statement),
	    cmocka_unit_test(test_failure),
	};

	gw_log_init("unit", GW_LOG_ERR, NULL);
	return cmocka_run_group_tests_name("budget_reset", tests, NULL, NULL);
}
