/*
 * db.c: the only libpq caller. Whether a statement runs inside a
 * transaction is libpq's PQtransactionStatus, never a flag of ours: a
 * statement outside one may be tried again on a fresh connection, one
 * inside may not (the transaction died with the old connection).
 */
#include "db.h"

#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

/* After a failed connect, wait this long before trying again. */
#define DB_RETRY_US (250 * 1000)
/* Named statements (gw_db_exec_named) one connection keeps prepared. */
#define DB_MAX_PREPARED 4

/*
 * Bumped whenever an established connection of this process breaks. A
 * connection made before the last break may be dead too without knowing
 * it (a link gone dark answers nothing): the next statement outside a
 * transaction makes a fresh one rather than wait out the timeout again.
 */
static unsigned broken_gen;

struct gw_db {
	PGconn *conn;
	char *conninfo;
	char connect_timeout[16];
	char user_timeout[24]; /* ms: connect_timeout, for TCP_USER_TIMEOUT */
	char options[96];
	int64_t next_try_us;
	int was_up;   /* for logging state changes once */
	unsigned gen; /* broken_gen when connected */
	/*
	 * The connection broke inside a transaction: every statement fails
	 * until gw_db_rollback or gw_db_commit ends it, so that none runs on
	 * a fresh connection outside the transaction it belongs to.
	 */
	int tx_lost;
	char sqlstate[6];
	/* The names prepared on conn (static strings), reset with it. */
	const char *prepared[DB_MAX_PREPARED];
	int nprepared;
};

struct gw_db_rows {
	PGresult *res;
};

struct gw_db *
gw_db_new(const char *conninfo, int connect_timeout_s, int statement_timeout_ms)
{
	struct gw_db *db = gw_xcalloc(1, sizeof(*db));

	db->conninfo = gw_xstrdup(conninfo);
	if (connect_timeout_s <= 0)
		connect_timeout_s = 3;
	snprintf(db->connect_timeout, sizeof(db->connect_timeout), "%d",
	    connect_timeout_s);
	snprintf(db->user_timeout, sizeof(db->user_timeout), "%d",
	    connect_timeout_s * 1000);
	/* Timestamps leave the server in UTC (RFC 3339 in JSON answers). */
	if (statement_timeout_ms > 0)
		snprintf(db->options, sizeof(db->options),
		    "-c timezone=UTC -c statement_timeout=%d",
		    statement_timeout_ms);
	else
		snprintf(db->options, sizeof(db->options), "-c timezone=UTC");
	return db;
}

void
gw_db_free(struct gw_db *db)
{
	if (db == NULL)
		return;
	if (db->conn != NULL)
		PQfinish(db->conn);
	free(db->conninfo);
	free(db);
}

/* Copy libpq's message into err without its trailing newline. */
static void
set_err(char *err, size_t errlen, const char *msg, const char *sqlstate)
{
	size_t n;

	if (err == NULL || errlen == 0)
		return;
	if (sqlstate != NULL && sqlstate[0] != '\0')
		snprintf(err, errlen, "%s (SQLSTATE %s)", msg, sqlstate);
	else
		snprintf(err, errlen, "%s", msg);
	n = strlen(err);
	while (n > 0 && (err[n - 1] == '\n' || err[n - 1] == ' '))
		err[--n] = '\0';
	/* Keep it on one line. */
	for (n = 0; err[n]; n++)
		if (err[n] == '\n')
			err[n] = ' ';
}

/* Server notices (e.g. "already exists, skipping") go to the debug log. */
static void
on_notice(void *arg, const char *msg)
{
	(void)arg;
	gw_log_debug(NULL, "db", "notice: %s", msg);
}

/*
 * 1 when the connection has a transaction open, failed or not (libpq
 * answers PQTRANS_UNKNOWN for a broken connection: none).
 */
static int
in_tx(const struct gw_db *db)
{
	PGTransactionStatusType ts;

	if (db->conn == NULL)
		return 0;
	ts = PQtransactionStatus(db->conn);
	return ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR ||
	       ts == PQTRANS_ACTIVE;
}

/* Close the connection; the next statement connects again at once. */
static void
drop(struct gw_db *db)
{
	PQfinish(db->conn);
	db->conn = NULL;
	db->next_try_us = 0;
	db->nprepared = 0;
}

enum gw_status
gw_db_ensure(struct gw_db *db, char *err, size_t errlen)
{
	/* Defaults first, the operator's conninfo (expanded) last to win. */
	const char *kw[9], *val[9];
	int n = 0;
	int64_t now;

	if (db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK &&
	    (db->gen == __atomic_load_n(&broken_gen, __ATOMIC_ACQUIRE) ||
	        in_tx(db)))
		return GW_OK;
	now = gw_now_mono_us();
	db->nprepared = 0;
	if (db->conn != NULL) {
		PQfinish(db->conn);
		db->conn = NULL;
	} else if (now < db->next_try_us) {
		set_err(err, errlen, "database unreachable (retrying)", NULL);
		return GW_E_DB;
	}
	kw[n] = "connect_timeout";
	val[n++] = db->connect_timeout;
	/*
	 * A link that goes dark sends no error: without these a statement
	 * sent into it (a budget read on a request thread, a spend batch)
	 * waits for TCP to give up, many minutes, and an idle connection (the
	 * key listener's) looks alive for hours. With them, data left
	 * unacknowledged for connect_timeout, or a silent peer after
	 * connect_timeout of idleness and the probes, drops the connection:
	 * the statement fails and the next one connects again.
	 */
	kw[n] = "tcp_user_timeout";
	val[n++] = db->user_timeout;
	kw[n] = "keepalives_idle";
	val[n++] = db->connect_timeout;
	kw[n] = "keepalives_interval";
	val[n++] = "1";
	kw[n] = "application_name";
	val[n++] = "llmgw";
	if (db->options[0] != '\0') {
		kw[n] = "options";
		val[n++] = db->options;
	}
	kw[n] = "dbname";
	val[n++] = db->conninfo;
	kw[n] = NULL;
	val[n] = NULL;
	db->conn = PQconnectdbParams(kw, val, 1);
	if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK) {
		char msg[512];

		set_err(msg, sizeof(msg),
		    db->conn ? PQerrorMessage(db->conn) : "out of memory",
		    NULL);
		set_err(err, errlen, msg, NULL);
		if (db->was_up)
			gw_log_warn(NULL, "db", "connection lost: %s", msg);
		db->was_up = 0;
		PQfinish(db->conn);
		db->conn = NULL;
		db->next_try_us = now + DB_RETRY_US;
		return GW_E_DB;
	}
	PQsetNoticeProcessor(db->conn, on_notice, NULL);
	db->gen = __atomic_load_n(&broken_gen, __ATOMIC_ACQUIRE);
	if (!db->was_up)
		gw_log_info(NULL, "db", "connected to PostgreSQL %d",
		    PQserverVersion(db->conn));
	db->was_up = 1;
	return GW_OK;
}

/* The slot of name among the statements prepared on db->conn, or -1. */
static int
prepared_slot(const struct gw_db *db, const char *name)
{
	int i;

	for (i = 0; i < db->nprepared; i++)
		if (strcmp(db->prepared[i], name) == 0)
			return i;
	return -1;
}

/*
 * Run sql by name: prepared on this connection first when it is not yet
 * (the server parses and plans it once, not on every call). NULL: libpq
 * is out of memory, as PQexecParams would answer.
 */
static PGresult *
exec_prepared(struct gw_db *db, const char *name, const char *sql, int nparams,
    const char *const *params, const int *lengths, const int *formats)
{
	PGresult *res;

	if (prepared_slot(db, name) < 0) {
		if (db->nprepared == DB_MAX_PREPARED)
			return PQexecParams(db->conn, sql, nparams, NULL,
			    params, lengths, formats, 0);
		res = PQprepare(db->conn, name, sql, nparams, NULL);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			return res;
		PQclear(res);
		db->prepared[db->nprepared++] = name;
	}
	return PQexecPrepared(
	    db->conn, name, nparams, params, lengths, formats, 0);
}

/* A statement's parameters: text unless lengths and formats say not. */
struct params {
	int n;
	const char *const *values;
	const int *lengths, *formats;
};

static enum gw_status
exec_once(struct gw_db *db, const char *name, const char *sql,
    const struct params *pa, int script, struct gw_db_rows **rows, char *err,
    size_t errlen)
{
	PGresult *res = NULL;
	ExecStatusType rs;
	const char *state;
	enum gw_status st;
	int slot;

	if ((st = gw_db_ensure(db, err, errlen)) != GW_OK)
		return st;
	db->sqlstate[0] = '\0';
	if (script)
		res = PQexec(db->conn, sql);
	else if (name != NULL)
		res = exec_prepared(
		    db, name, sql, pa->n, pa->values, pa->lengths, pa->formats);
	else
		res = PQexecParams(db->conn, sql, pa->n, NULL, pa->values,
		    pa->lengths, pa->formats, 0);
	rs = PQresultStatus(res);
	if (rs == PGRES_COMMAND_OK || rs == PGRES_TUPLES_OK) {
		if (rows != NULL) {
			*rows = gw_xmalloc(sizeof(**rows));
			(*rows)->res = res;
		} else {
			PQclear(res);
		}
		return GW_OK;
	}
	if (PQstatus(db->conn) != CONNECTION_OK)
		__atomic_add_fetch(&broken_gen, 1, __ATOMIC_RELEASE);
	state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	snprintf(db->sqlstate, sizeof(db->sqlstate), "%s", state ? state : "");
	set_err(err, errlen,
	    res ? PQresultErrorMessage(res) : PQerrorMessage(db->conn), state);
	PQclear(res);
	/*
	 * 26000: the server no longer has it (a DISCARD ALL, e.g. by a
	 * pooler); nothing ran. Prepared again by the next call.
	 */
	if (name != NULL && strcmp(db->sqlstate, "26000") == 0 &&
	    (slot = prepared_slot(db, name)) >= 0)
		db->prepared[slot] = db->prepared[--db->nprepared];
	return GW_E_DB;
}

/* The error of every statement after the connection broke in a transaction. */
static void
lost_err(struct gw_db *db, char *err, size_t errlen)
{
	snprintf(db->sqlstate, sizeof(db->sqlstate), "08006");
	set_err(
	    err, errlen, "connection lost inside a transaction", db->sqlstate);
}

/*
 * One statement (or script), tried again on a fresh connection when it
 * ran outside a transaction and the old connection broke: after a server
 * restart the first statement on an old connection fails, with 57P01
 * (terminated before it ran: always safe to run again) or with a broken
 * socket (run again only when retry says it is idempotent).
 */
static enum gw_status
exec_stmt(struct gw_db *db, const char *name, const char *sql,
    const struct params *pa, int script, int retry, struct gw_db_rows **rows,
    char *err, size_t errlen)
{
	enum gw_status st;
	int tx;

	if (rows != NULL)
		*rows = NULL;
	if (db->tx_lost) {
		lost_err(db, err, errlen);
		return GW_E_DB;
	}
	tx = in_tx(db);
	st = exec_once(db, name, sql, pa, script, rows, err, errlen);
	if (st != GW_E_DB || db->conn == NULL)
		return st;
	if (tx) {
		/* The server rolled the transaction back when it broke. */
		if (PQstatus(db->conn) != CONNECTION_OK)
			db->tx_lost = 1;
		return st;
	}
	if (strcmp(db->sqlstate, "26000") == 0 && name != NULL) {
		/* Not run: prepared anew on the same connection. */
		st = exec_once(db, name, sql, pa, script, rows, err, errlen);
	} else if (strncmp(db->sqlstate, "57P", 3) == 0 ||
	           (retry && (PQstatus(db->conn) != CONNECTION_OK ||
	                         strncmp(db->sqlstate, "08", 2) == 0))) {
		drop(db);
		st = exec_once(db, name, sql, pa, script, rows, err, errlen);
	}
	return st;
}

enum gw_status
gw_db_exec(struct gw_db *db, const char *sql, int nparams,
    const char *const *params, int retry, struct gw_db_rows **rows, char *err,
    size_t errlen)
{
	struct params pa = {nparams, params, NULL, NULL};

	return exec_stmt(db, NULL, sql, &pa, 0, retry, rows, err, errlen);
}

enum gw_status
gw_db_exec_named(struct gw_db *db, const char *name, const char *sql,
    int nparams, const char *const *params, const int *lengths,
    const int *formats, int retry, struct gw_db_rows **rows, char *err,
    size_t errlen)
{
	struct params pa = {nparams, params, lengths, formats};

	return exec_stmt(db, name, sql, &pa, 0, retry, rows, err, errlen);
}

/* No parameters. */
static const struct params none = {0, NULL, NULL, NULL};

enum gw_status
gw_db_exec_script(struct gw_db *db, const char *sql, char *err, size_t errlen)
{
	return exec_stmt(db, NULL, sql, &none, 1, 0, NULL, err, errlen);
}

enum gw_status
gw_db_begin(struct gw_db *db, char *err, size_t errlen)
{
	if (in_tx(db) || db->tx_lost) {
		gw_log_err(NULL, "db",
		    "BEGIN inside a transaction: rolling the open one back");
		gw_db_rollback(db);
	}
	/* Nothing is lost when BEGIN meets a broken connection: retried. */
	return exec_stmt(db, NULL, "BEGIN", &none, 0, 1, NULL, err, errlen);
}

enum gw_status
gw_db_commit(struct gw_db *db, char *err, size_t errlen)
{
	enum gw_status st = GW_E_DB;

	if (db->tx_lost) {
		lost_err(db, err, errlen);
	} else if (!in_tx(db)) {
		gw_log_err(NULL, "db", "COMMIT without a transaction");
		set_err(err, errlen, "COMMIT without a transaction", NULL);
	} else if (PQtransactionStatus(db->conn) == PQTRANS_INERROR) {
		/* PostgreSQL would answer this COMMIT with a ROLLBACK. */
		snprintf(db->sqlstate, sizeof(db->sqlstate), "25P02");
		set_err(err, errlen, "transaction aborted by an earlier error",
		    db->sqlstate);
	} else {
		st = exec_stmt(
		    db, NULL, "COMMIT", &none, 0, 0, NULL, err, errlen);
	}
	/* After a failure nothing of the transaction is left open. */
	if (st != GW_OK)
		gw_db_rollback(db);
	return st;
}

void
gw_db_rollback(struct gw_db *db)
{
	PGresult *res = NULL;

	db->tx_lost = 0;
	if (db->conn == NULL)
		return;
	if (PQstatus(db->conn) != CONNECTION_OK) {
		/* The server ended the transaction with the connection. */
		drop(db);
		return;
	}
	if (!in_tx(db))
		return;
	res = PQexec(db->conn, "ROLLBACK");
	if (PQresultStatus(res) != PGRES_COMMAND_OK || in_tx(db)) {
		gw_log_warn(NULL, "db", "ROLLBACK failed, reconnecting: %s",
		    res ? PQresultErrorMessage(res) : PQerrorMessage(db->conn));
		drop(db);
	}
	PQclear(res);
}

const char *
gw_db_last_sqlstate(const struct gw_db *db)
{
	return db->sqlstate;
}

int
gw_db_rows_count(const struct gw_db_rows *rows)
{
	return PQntuples(rows->res);
}

const char *
gw_db_rows_get(const struct gw_db_rows *rows, int row, int col)
{
	if (row < 0 || row >= PQntuples(rows->res) || col < 0 ||
	    col >= PQnfields(rows->res) || PQgetisnull(rows->res, row, col))
		return NULL;
	return PQgetvalue(rows->res, row, col);
}

void
gw_db_rows_free(struct gw_db_rows *rows)
{
	if (rows == NULL)
		return;
	PQclear(rows->res);
	free(rows);
}

enum gw_status
gw_db_listen(struct gw_db *db, const char *channel, char *err, size_t errlen)
{
	char sql[128];

	snprintf(sql, sizeof(sql), "LISTEN %s", channel);
	return gw_db_exec(db, sql, 0, NULL, 0, NULL, err, errlen);
}

enum gw_status
gw_db_wait_notify(struct gw_db *db, int timeout_ms,
    void (*fn)(void *arg, const char *payload), void *arg)
{
	struct pollfd p;
	PGnotify *n;

	if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK)
		return GW_E_DB;
	p.fd = PQsocket(db->conn);
	p.events = POLLIN;
	p.revents = 0;
	if (poll(&p, 1, timeout_ms) < 0)
		return GW_OK; /* EINTR: the caller loops */
	if (p.revents != 0 && !PQconsumeInput(db->conn)) {
		gw_log_warn(NULL, "db", "notification connection lost: %s",
		    PQerrorMessage(db->conn));
		__atomic_add_fetch(&broken_gen, 1, __ATOMIC_RELEASE);
		PQfinish(db->conn);
		db->conn = NULL;
		db->was_up = 0;
		return GW_E_DB;
	}
	while ((n = PQnotifies(db->conn)) != NULL) {
		fn(arg, n->extra);
		PQfreemem(n);
	}
	return GW_OK;
}

void
gw_db_request_done(struct gw_db *db)
{
	if (!in_tx(db))
		return;
	gw_log_err(NULL, "db",
	    "a transaction was left open at the end of a request: rolled back");
	gw_db_rollback(db);
}
