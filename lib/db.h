/*
 * db.h: the only libpq user. One struct gw_db per worker thread (never
 * shared between threads): connected lazily, reconnected after a failure
 * with a short backoff, so a PostgreSQL restart needs no worker restart.
 * Transactions go through gw_db_begin/commit/rollback; whether one is
 * open is libpq's own state, and nothing in one is ever retried.
 */
#ifndef GW_DB_H
#define GW_DB_H

#include <stddef.h>

#include "err.h"

struct gw_db;
struct gw_db_rows;

/*
 * A handle for conninfo (a libpq connection string or URI). Does not
 * connect. statement_timeout_ms of 0 leaves the server default.
 */
struct gw_db *gw_db_new(const char *conninfo, int connect_timeout_s,
    int statement_timeout_ms) GW_NONNULL(1);
/* Close and free; NULL-safe. */
void gw_db_free(struct gw_db *db);

/*
 * Connect if not connected (or the connection broke). GW_E_DB when the
 * server cannot be reached; err then says why (no password in it).
 */
enum gw_status gw_db_ensure(struct gw_db *db, char *err, size_t errlen)
    GW_NONNULL(1);

/*
 * Run sql with text parameters (params may be NULL when nparams is 0; a
 * NULL entry is SQL NULL). When rows is non-NULL it receives the result
 * (caller frees with gw_db_rows_free). Outside a transaction a broken
 * connection is reconnected and the statement tried once more when retry
 * is set (idempotent statements only); inside one, never (see
 * gw_db_begin). Errors: GW_E_DB with "message (SQLSTATE xxxxx)" in err.
 */
enum gw_status gw_db_exec(struct gw_db *db, const char *sql, int nparams,
    const char *const *params, int retry, struct gw_db_rows **rows, char *err,
    size_t errlen) GW_NONNULL(1, 2);
/*
 * As gw_db_exec, for a statement run often: prepared under name (a string
 * that lives as long as the process) once per connection, then executed
 * by name, so that the server parses and plans it once. A handle keeps 4
 * names; a fifth runs as gw_db_exec would. lengths and formats are
 * libpq's (NULL: text parameters; formats[i] 1: params[i] is binary, of
 * lengths[i] bytes).
 */
enum gw_status gw_db_exec_named(struct gw_db *db, const char *name,
    const char *sql, int nparams, const char *const *params, const int *lengths,
    const int *formats, int retry, struct gw_db_rows **rows, char *err,
    size_t errlen) GW_NONNULL(1, 2, 3);
/*
 * Run a multi-statement script (no parameters), e.g. a migration file.
 * Errors as gw_db_exec; never tried again.
 */
enum gw_status gw_db_exec_script(struct gw_db *db, const char *sql, char *err,
    size_t errlen) GW_NONNULL(1, 2);

/*
 * Transactions. Whether one is open is libpq's PQtransactionStatus. BEGIN
 * is tried again on a fresh connection when the old one broke (nothing is
 * lost yet). When the connection breaks inside the transaction, every
 * later statement fails (SQLSTATE 08006) until gw_db_commit or
 * gw_db_rollback ends it: none runs outside the transaction it belongs
 * to. A transaction still open at gw_db_begin is rolled back (logged).
 */
enum gw_status gw_db_begin(struct gw_db *db, char *err, size_t errlen)
    GW_NONNULL(1);
/*
 * COMMIT. GW_E_DB (err set) when there is no transaction, when a statement
 * in it failed (SQLSTATE 25P02) or when COMMIT fails; the transaction is
 * then rolled back and the handle ready for the next one.
 */
enum gw_status gw_db_commit(struct gw_db *db, char *err, size_t errlen)
    GW_NONNULL(1);
/*
 * ROLLBACK the open transaction, if any; a broken connection is closed
 * (reconnected at the next statement). Never fails: what cannot be rolled
 * back is dropped with the connection.
 */
void gw_db_rollback(struct gw_db *db) GW_NONNULL(1);
/*
 * The request using db is over: a transaction its handler left open is
 * logged and rolled back, so no request inherits another's (server.c).
 */
void gw_db_request_done(struct gw_db *db) GW_NONNULL(1);
/* The SQLSTATE of the last failed statement, or "" (borrowed). */
const char *gw_db_last_sqlstate(const struct gw_db *db) GW_NONNULL(1);

/* LISTEN on channel (a fixed identifier), connecting first. */
enum gw_status gw_db_listen(struct gw_db *db, const char *channel, char *err,
    size_t errlen) GW_NONNULL(1, 2);
/*
 * Wait up to timeout_ms for notifications on a listening handle and call
 * fn with each payload. GW_E_DB when the connection is gone (LISTEN again
 * after gw_db_ensure).
 */
enum gw_status gw_db_wait_notify(struct gw_db *db, int timeout_ms,
    void (*fn)(void *arg, const char *payload), void *arg) GW_NONNULL(1, 3);

/* Rows of a result: count, and a borrowed value (NULL for SQL NULL). */
int gw_db_rows_count(const struct gw_db_rows *rows) GW_NONNULL(1);
const char *gw_db_rows_get(const struct gw_db_rows *rows, int row, int col)
    GW_NONNULL(1);
void gw_db_rows_free(struct gw_db_rows *rows);

#endif /* GW_DB_H */
