/*
 * fake_db.h: an in-memory stand-in for lib/db.c, the seam for unit tests of
 * code that talks to PostgreSQL (test_shipper, test_spend, test_budget,
 * test_budget_reset). A test includes it once: its gw_db_* definitions are
 * then linked instead of db.o from the archive.
 *
 * Every handle shares one state, fake, so a test sees what a writer thread
 * did through its own handle. The shipping statement (it takes a JSON
 * array of spend rows) is refused as data (22P02) when any row has "bad",
 * and its rows are kept in fake.rows otherwise; any other statement is
 * answered by fake.answer (NULL: no rows). fake.down makes every statement
 * fail as a lost connection would (08006). The shipper's binary columns
 * are declined (gw_spoolcols_build, gw_spoolcols_rollups), so batches
 * come as JSON.
 */
#ifndef GW_TEST_FAKE_DB_H
#define GW_TEST_FAKE_DB_H

#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "spoolcols.h"

#define FAKE_MAX_ROWS 256
#define FAKE_MAX_COLS 8

struct gw_db {
	char sqlstate[6];
};

struct gw_db_rows {
	int ncols;
	char *v[FAKE_MAX_COLS];
};

static struct {
	pthread_mutex_t mu;
	int down;                  /* 1: every statement fails */
	int execs;                 /* statements run */
	char *rows[FAKE_MAX_ROWS]; /* spend rows taken, as JSON text */
	int nrows;
	char *last_sql; /* the last statement */
	/* Answer a statement other than shipping: fill vals, return ncols. */
	int (*answer)(const char *sql, int nparams, const char *const *params,
	    char **vals);
} fake = {PTHREAD_MUTEX_INITIALIZER, 0, 0, {NULL}, 0, NULL, NULL};

struct gw_db *
gw_db_new(const char *conninfo, int connect_timeout_s, int statement_timeout_ms)
{
	(void)conninfo;
	(void)connect_timeout_s;
	(void)statement_timeout_ms;
	return calloc(1, sizeof(struct gw_db));
}

void
gw_db_free(struct gw_db *db)
{
	free(db);
}

const char *
gw_db_last_sqlstate(const struct gw_db *db)
{
	return db->sqlstate;
}

/* The number of spend rows taken so far. */
static inline int
fake_db_nrows(void)
{
	int n;

	pthread_mutex_lock(&fake.mu);
	n = fake.nrows;
	pthread_mutex_unlock(&fake.mu);
	return n;
}

/* Forget the rows taken and the statements counted. */
static inline void
fake_db_reset(void)
{
	int i;

	pthread_mutex_lock(&fake.mu);
	for (i = 0; i < fake.nrows; i++)
		free(fake.rows[i]);
	fake.nrows = 0;
	fake.execs = 0;
	free(fake.last_sql);
	fake.last_sql = NULL;
	pthread_mutex_unlock(&fake.mu);
}

/* Take the rows of a shipping batch; 0, or -1 when one is "bad". */
static inline int
fake_db_ship(const char *batch)
{
	json_object *arr = json_tokener_parse(batch), *o;
	size_t i, n;

	if (arr == NULL || !json_object_is_type(arr, json_type_array)) {
		json_object_put(arr);
		return -1;
	}
	n = json_object_array_length(arr);
	for (i = 0; i < n; i++)
		if (json_object_object_get_ex(
		        json_object_array_get_idx(arr, i), "bad", NULL)) {
			json_object_put(arr);
			return -1;
		}
	for (i = 0; i < n && fake.nrows < FAKE_MAX_ROWS; i++) {
		o = json_object_array_get_idx(arr, i);
		fake.rows[fake.nrows++] = strdup(json_object_to_json_string_ext(
		    o,
		    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	}
	json_object_put(arr);
	return 0;
}

enum gw_status
gw_db_exec(struct gw_db *db, const char *sql, int nparams,
    const char *const *params, int retry, struct gw_db_rows **rows, char *err,
    size_t errlen)
{
	enum gw_status st = GW_OK;
	char *vals[FAKE_MAX_COLS] = {NULL};
	int ncols = 0, i;

	(void)retry;
	if (rows != NULL)
		*rows = NULL;
	db->sqlstate[0] = '\0';
	pthread_mutex_lock(&fake.mu);
	fake.execs++;
	free(fake.last_sql);
	fake.last_sql = strdup(sql);
	if (fake.down) {
		snprintf(db->sqlstate, sizeof(db->sqlstate), "08006");
		snprintf(err, errlen, "server closed the connection");
		st = GW_E_DB;
	} else if (strstr(sql, "INSERT INTO spend_logs") != NULL) {
		if (nparams != 1 || fake_db_ship(params[0]) != 0) {
			snprintf(db->sqlstate, sizeof(db->sqlstate), "22P02");
			/* PostgreSQL's CONTEXT quotes the row's data. */
			snprintf(err, errlen,
			    "invalid input syntax for type integer "
			    "CONTEXT: jsonb_populate_record secret-row-data");
			st = GW_E_DB;
		}
	} else if (fake.answer != NULL) {
		ncols = fake.answer(sql, nparams, params, vals);
	}
	pthread_mutex_unlock(&fake.mu);
	if (st == GW_OK && rows != NULL) {
		*rows = calloc(1, sizeof(**rows));
		(*rows)->ncols = ncols;
		for (i = 0; i < ncols; i++)
			(*rows)->v[i] = vals[i];
	} else {
		for (i = 0; i < ncols; i++)
			free(vals[i]);
	}
	return st;
}

/*
 * The shipper's columns (spoolcols.h) are declined here, so that its
 * batches reach this fake as JSON rows; test_spoolcols checks them.
 */
enum gw_status
gw_spoolcols_build(struct gw_spoolcols *c, const char *lines, size_t len)
{
	(void)lines;
	(void)len;
	memset(c, 0, sizeof(*c));
	return GW_E_INVALID;
}

void
gw_spoolcols_fini(struct gw_spoolcols *c)
{
	(void)c;
}

enum gw_status
gw_spoolcols_rollups(
    struct gw_spoolcols_rollups *a, const struct gw_spoolcols *c)
{
	(void)c;
	memset(a, 0, sizeof(*a));
	return GW_E_INVALID;
}

void
gw_spoolcols_rollups_fini(struct gw_spoolcols_rollups *a)
{
	(void)a;
}

/* The shipper's named statement runs as any other here. */
enum gw_status
gw_db_exec_named(struct gw_db *db, const char *name, const char *sql,
    int nparams, const char *const *params, const int *lengths,
    const int *formats, int retry, struct gw_db_rows **rows, char *err,
    size_t errlen)
{
	(void)name;
	(void)formats;
	if (lengths != NULL)
		abort(); /* binary parameters: spoolcols, declined above */
	return gw_db_exec(db, sql, nparams, params, retry, rows, err, errlen);
}

int
gw_db_rows_count(const struct gw_db_rows *rows)
{
	return rows->ncols > 0;
}

const char *
gw_db_rows_get(const struct gw_db_rows *rows, int row, int col)
{
	if (row != 0 || col < 0 || col >= rows->ncols)
		return NULL;
	return rows->v[col];
}

void
gw_db_rows_free(struct gw_db_rows *rows)
{
	int i;

	if (rows == NULL)
		return;
	for (i = 0; i < rows->ncols; i++)
		free(rows->v[i]);
	free(rows);
}

#endif /* GW_TEST_FAKE_DB_H */
