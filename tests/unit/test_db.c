/*
 * Unit tests for lib/db.c: transactions and reconnects, against a fake
 * libpq. The Makefile links this test with -Wl,--wrap for every libpq
 * function db.c calls (DB_WRAP), so db.o talks to the __wrap_ functions
 * below: a "server" that keeps a transaction status per connection and
 * fails the statements a test queues, the way libpq reports a broken
 * socket (no SQLSTATE, CONNECTION_BAD) or a terminated backend (57P01).
 * Results and connections are heap blocks, so valgrind and ASan check
 * that db.c clears and finishes every one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"

/* What the next statements do, in order; then each succeeds. */
enum outcome {
	O_OK = 0,
	O_ERROR,     /* fails with a SQLSTATE; the connection stays */
	O_BREAK,     /* the socket breaks: no SQLSTATE, CONNECTION_BAD */
	O_TERMINATE, /* 57P01 and the connection closed */
};

struct pg_conn {
	int up;
	PGTransactionStatusType ts;
	char prepared[4][32]; /* the names PQprepare made here */
	int nprepared;
};

struct pg_result {
	ExecStatusType status;
	char sqlstate[6];
	char msg[128];
};

static struct {
	struct {
		enum outcome what;
		const char *sqlstate;
	} queue[8];
	int nqueue, next;
	int connects, finishes, fail_connect;
	char sent[1024]; /* the statements the server saw, ";"-separated */
	int nsent;
	struct pg_conn *conn; /* the live one */
} fake;

static void
queue(enum outcome what, const char *sqlstate)
{
	fake.queue[fake.nqueue].what = what;
	fake.queue[fake.nqueue++].sqlstate = sqlstate;
}

static int
setup(void **state)
{
	(void)state;
	memset(&fake, 0, sizeof(fake));
	gw_log_set_level(GW_LOG_ERR);
	return 0;
}

static PGresult *
result(ExecStatusType status, const char *sqlstate, const char *msg)
{
	PGresult *r = calloc(1, sizeof(*r));

	assert_non_null(r);
	r->status = status;
	snprintf(r->sqlstate, sizeof(r->sqlstate), "%s", sqlstate);
	snprintf(r->msg, sizeof(r->msg), "%s", msg);
	return r;
}

/* The server's side of one statement. */
static PGresult *
run(PGconn *c, const char *sql)
{
	enum outcome what = O_OK;
	const char *state = "";

	assert_ptr_equal(c, fake.conn);
	if (!c->up)
		return result(PGRES_FATAL_ERROR, "", "no connection\n");
	if (fake.next < fake.nqueue) {
		what = fake.queue[fake.next].what;
		state = fake.queue[fake.next++].sqlstate;
	}
	if (what == O_BREAK || what == O_TERMINATE) {
		c->up = 0;
		c->ts = PQTRANS_UNKNOWN;
		return what == O_BREAK ? result(PGRES_FATAL_ERROR, "",
		                             "server closed the connection\n")
		                       : result(PGRES_FATAL_ERROR, "57P01",
		                             "terminating connection\n");
	}
	fake.nsent++;
	snprintf(fake.sent + strlen(fake.sent),
	    sizeof(fake.sent) - strlen(fake.sent), "%s;", sql);
	if (strcmp(sql, "ROLLBACK") == 0 || strcmp(sql, "COMMIT") == 0) {
		c->ts = PQTRANS_IDLE;
		return result(PGRES_COMMAND_OK, "", "");
	}
	if (c->ts == PQTRANS_INERROR)
		return result(PGRES_FATAL_ERROR, "25P02", "aborted\n");
	if (what == O_ERROR) {
		if (c->ts == PQTRANS_INTRANS)
			c->ts = PQTRANS_INERROR;
		return result(PGRES_FATAL_ERROR, state, "error\n");
	}
	if (strcmp(sql, "BEGIN") == 0)
		c->ts = PQTRANS_INTRANS;
	return result(PGRES_COMMAND_OK, "", "");
}

PGconn *__wrap_PQconnectdbParams(
    const char *const *kw, const char *const *val, int expand);
PGconn *
__wrap_PQconnectdbParams(
    const char *const *kw, const char *const *val, int expand)
{
	(void)kw;
	(void)val;
	(void)expand;
	assert_null(fake.conn);
	fake.connects++;
	fake.conn = calloc(1, sizeof(*fake.conn));
	assert_non_null(fake.conn);
	fake.conn->up = !fake.fail_connect;
	fake.conn->ts = fake.conn->up ? PQTRANS_IDLE : PQTRANS_UNKNOWN;
	return fake.conn;
}

void __wrap_PQfinish(PGconn *c);
void
__wrap_PQfinish(PGconn *c)
{
	if (c == NULL)
		return;
	assert_ptr_equal(c, fake.conn);
	fake.finishes++;
	free(c);
	fake.conn = NULL;
}

ConnStatusType __wrap_PQstatus(const PGconn *c);
ConnStatusType
__wrap_PQstatus(const PGconn *c)
{
	return c != NULL && c->up ? CONNECTION_OK : CONNECTION_BAD;
}

PGTransactionStatusType __wrap_PQtransactionStatus(const PGconn *c);
PGTransactionStatusType
__wrap_PQtransactionStatus(const PGconn *c)
{
	return c != NULL && c->up ? c->ts : PQTRANS_UNKNOWN;
}

char *__wrap_PQerrorMessage(const PGconn *c);
char *
__wrap_PQerrorMessage(const PGconn *c)
{
	static char msg[] = "connection refused\n";

	(void)c;
	return msg;
}

PQnoticeProcessor __wrap_PQsetNoticeProcessor(
    PGconn *c, PQnoticeProcessor fn, void *arg);
PQnoticeProcessor
__wrap_PQsetNoticeProcessor(PGconn *c, PQnoticeProcessor fn, void *arg)
{
	(void)c;
	(void)fn;
	(void)arg;
	return NULL;
}

int __wrap_PQserverVersion(const PGconn *c);
int
__wrap_PQserverVersion(const PGconn *c)
{
	(void)c;
	return 160000;
}

PGresult *__wrap_PQexec(PGconn *c, const char *sql);
PGresult *
__wrap_PQexec(PGconn *c, const char *sql)
{
	return run(c, sql);
}

PGresult *__wrap_PQexecParams(PGconn *c, const char *sql, int n,
    const Oid *types, const char *const *values, const int *lengths,
    const int *formats, int resultFormat);
PGresult *
__wrap_PQexecParams(PGconn *c, const char *sql, int n, const Oid *types,
    const char *const *values, const int *lengths, const int *formats,
    int resultFormat)
{
	(void)n;
	(void)types;
	(void)values;
	(void)lengths;
	(void)formats;
	(void)resultFormat;
	return run(c, sql);
}

PGresult *__wrap_PQprepare(
    PGconn *c, const char *name, const char *sql, int n, const Oid *types);
PGresult *
__wrap_PQprepare(
    PGconn *c, const char *name, const char *sql, int n, const Oid *types)
{
	char stmt[64];
	PGresult *r;

	(void)sql;
	(void)n;
	(void)types;
	snprintf(stmt, sizeof(stmt), "PREPARE %s", name);
	r = run(c, stmt);
	if (r->status == PGRES_COMMAND_OK) {
		assert_true(c->nprepared < 4);
		snprintf(c->prepared[c->nprepared++], sizeof(c->prepared[0]),
		    "%s", name);
	}
	return r;
}

PGresult *__wrap_PQexecPrepared(PGconn *c, const char *name, int n,
    const char *const *values, const int *lengths, const int *formats,
    int resultFormat);
PGresult *
__wrap_PQexecPrepared(PGconn *c, const char *name, int n,
    const char *const *values, const int *lengths, const int *formats,
    int resultFormat)
{
	char stmt[64];
	int i;

	(void)n;
	(void)values;
	(void)lengths;
	(void)formats;
	(void)resultFormat;
	for (i = 0; i < c->nprepared; i++)
		if (strcmp(c->prepared[i], name) == 0)
			break;
	if (c->up && i == c->nprepared)
		return result(PGRES_FATAL_ERROR, "26000",
		    "prepared statement does not exist\n");
	snprintf(stmt, sizeof(stmt), "EXECUTE %s", name);
	return run(c, stmt);
}

ExecStatusType __wrap_PQresultStatus(const PGresult *r);
ExecStatusType
__wrap_PQresultStatus(const PGresult *r)
{
	return r != NULL ? r->status : PGRES_FATAL_ERROR;
}

char *__wrap_PQresultErrorField(const PGresult *r, int field);
char *
__wrap_PQresultErrorField(const PGresult *r, int field)
{
	assert_int_equal(field, PG_DIAG_SQLSTATE);
	return r->sqlstate[0] ? (char *)r->sqlstate : NULL;
}

char *__wrap_PQresultErrorMessage(const PGresult *r);
char *
__wrap_PQresultErrorMessage(const PGresult *r)
{
	return (char *)r->msg;
}

void __wrap_PQclear(PGresult *r);
void
__wrap_PQclear(PGresult *r)
{
	free(r);
}

/* Rows, notifications: db.c references them; these tests do not call. */
int __wrap_PQntuples(const PGresult *r);
int
__wrap_PQntuples(const PGresult *r)
{
	(void)r;
	return 0;
}

int __wrap_PQnfields(const PGresult *r);
int
__wrap_PQnfields(const PGresult *r)
{
	(void)r;
	return 0;
}

int __wrap_PQgetisnull(const PGresult *r, int row, int col);
int
__wrap_PQgetisnull(const PGresult *r, int row, int col)
{
	(void)r;
	(void)row;
	(void)col;
	return 1;
}

char *__wrap_PQgetvalue(const PGresult *r, int row, int col);
char *
__wrap_PQgetvalue(const PGresult *r, int row, int col)
{
	(void)r;
	(void)row;
	(void)col;
	return NULL;
}

int __wrap_PQsocket(const PGconn *c);
int
__wrap_PQsocket(const PGconn *c)
{
	(void)c;
	return -1;
}

int __wrap_PQconsumeInput(PGconn *c);
int
__wrap_PQconsumeInput(PGconn *c)
{
	(void)c;
	return 0;
}

PGnotify *__wrap_PQnotifies(PGconn *c);
PGnotify *
__wrap_PQnotifies(PGconn *c)
{
	(void)c;
	return NULL;
}

void __wrap_PQfreemem(void *p);
void
__wrap_PQfreemem(void *p)
{
	(void)p;
}

static enum gw_status
exec(struct gw_db *db, const char *sql, int retry, char *err, size_t errlen)
{
	return gw_db_exec(db, sql, 0, NULL, retry, NULL, err, errlen);
}

/* Outside a transaction: a broken socket is retried when retry says so. */
static void
test_retry_outside_a_transaction(void **state)
{
	struct gw_db *db = gw_db_new("dbname=x", 1, 0);
	char err[256];

	(void)state;
	assert_int_equal(exec(db, "SELECT 1", 1, err, sizeof(err)), GW_OK);
	queue(O_BREAK, NULL);
	assert_int_equal(exec(db, "SELECT 2", 1, err, sizeof(err)), GW_OK);
	assert_int_equal(fake.connects, 2);
	assert_string_equal(fake.sent, "SELECT 1;SELECT 2;");
	/* Not idempotent: the error, and a fresh connection next time. */
	queue(O_BREAK, NULL);
	assert_int_equal(exec(db, "INSERT 1", 0, err, sizeof(err)), GW_E_DB);
	assert_string_equal(gw_db_last_sqlstate(db), "");
	assert_int_equal(exec(db, "INSERT 2", 0, err, sizeof(err)), GW_OK);
	assert_int_equal(fake.connects, 3);
	/* Terminated before it ran: always run again. */
	queue(O_TERMINATE, "57P01");
	assert_int_equal(exec(db, "INSERT 3", 0, err, sizeof(err)), GW_OK);
	assert_int_equal(fake.connects, 4);
	assert_string_equal(fake.sent, "SELECT 1;SELECT 2;INSERT 2;INSERT 3;");
	gw_db_free(db);
	assert_int_equal(fake.finishes, 4);
}

/* BEGIN on a connection that broke meanwhile: nothing lost, retried. */
static void
test_begin_is_retried(void **state)
{
	struct gw_db *db = gw_db_new("dbname=x", 1, 0);
	char err[256];

	(void)state;
	assert_int_equal(exec(db, "SELECT 1", 1, err, sizeof(err)), GW_OK);
	queue(O_BREAK, NULL);
	assert_int_equal(gw_db_begin(db, err, sizeof(err)), GW_OK);
	assert_int_equal(fake.connects, 2);
	assert_int_equal(fake.conn->ts, PQTRANS_INTRANS);
	assert_int_equal(exec(db, "INSERT 1", 1, err, sizeof(err)), GW_OK);
	assert_int_equal(gw_db_commit(db, err, sizeof(err)), GW_OK);
	assert_int_equal(fake.conn->ts, PQTRANS_IDLE);
	assert_string_equal(fake.sent, "SELECT 1;BEGIN;INSERT 1;COMMIT;");
	gw_db_free(db);
}

/*
 * Inside a transaction nothing is tried again, not even 57P01, and once
 * the connection broke no statement runs until the transaction ends: on
 * a fresh connection it would run outside the transaction.
 */
static void
test_no_retry_inside_a_transaction(void **state)
{
	char err[256];
	int terminate;

	(void)state;
	for (terminate = 0; terminate < 2; terminate++) {
		struct gw_db *db = gw_db_new("dbname=x", 1, 0);

		memset(&fake, 0, sizeof(fake));
		assert_int_equal(gw_db_begin(db, err, sizeof(err)), GW_OK);
		queue(terminate ? O_TERMINATE : O_BREAK,
		    terminate ? "57P01" : NULL);
		assert_int_equal(
		    exec(db, "INSERT 1", 1, err, sizeof(err)), GW_E_DB);
		assert_int_equal(
		    exec(db, "INSERT 2", 1, err, sizeof(err)), GW_E_DB);
		assert_string_equal(gw_db_last_sqlstate(db), "08006");
		assert_non_null(strstr(err, "inside a transaction"));
		assert_int_equal(
		    gw_db_exec_script(db, "INSERT 3", err, sizeof(err)),
		    GW_E_DB);
		assert_int_equal(fake.connects, 1);
		/* COMMIT fails and ends it; the next statement reconnects. */
		assert_int_equal(gw_db_commit(db, err, sizeof(err)), GW_E_DB);
		assert_string_equal(gw_db_last_sqlstate(db), "08006");
		assert_int_equal(
		    exec(db, "SELECT 1", 0, err, sizeof(err)), GW_OK);
		assert_int_equal(fake.connects, 2);
		assert_string_equal(fake.sent, "BEGIN;SELECT 1;");
		gw_db_free(db);
	}
}

/* ROLLBACK of a broken transaction closes the connection, nothing else. */
static void
test_rollback_after_a_break(void **state)
{
	struct gw_db *db = gw_db_new("dbname=x", 1, 0);
	char err[256];

	(void)state;
	assert_int_equal(gw_db_begin(db, err, sizeof(err)), GW_OK);
	queue(O_BREAK, NULL);
	assert_int_equal(exec(db, "INSERT 1", 1, err, sizeof(err)), GW_E_DB);
	gw_db_rollback(db);
	assert_null(fake.conn);
	assert_int_equal(fake.finishes, 1);
	assert_int_equal(gw_db_begin(db, err, sizeof(err)), GW_OK);
	assert_int_equal(exec(db, "INSERT 2", 1, err, sizeof(err)), GW_OK);
	assert_int_equal(gw_db_commit(db, err, sizeof(err)), GW_OK);
	assert_string_equal(fake.sent, "BEGIN;BEGIN;INSERT 2;COMMIT;");
	gw_db_free(db);
}

/* A failed statement: COMMIT is refused and the transaction rolled back. */
static void
test_commit_after_an_error(void **state)
{
	struct gw_db *db = gw_db_new("dbname=x", 1, 0);
	char err[256];

	(void)state;
	assert_int_equal(gw_db_begin(db, err, sizeof(err)), GW_OK);
	queue(O_ERROR, "23505");
	assert_int_equal(exec(db, "INSERT 1", 1, err, sizeof(err)), GW_E_DB);
	assert_string_equal(gw_db_last_sqlstate(db), "23505");
	assert_non_null(strstr(err, "(SQLSTATE 23505)"));
	assert_int_equal(fake.conn->ts, PQTRANS_INERROR);
	assert_int_equal(gw_db_commit(db, err, sizeof(err)), GW_E_DB);
	assert_string_equal(gw_db_last_sqlstate(db), "25P02");
	assert_int_equal(fake.conn->ts, PQTRANS_IDLE);
	/* The same connection goes on. */
	assert_int_equal(exec(db, "SELECT 1", 1, err, sizeof(err)), GW_OK);
	assert_int_equal(fake.connects, 1);
	assert_string_equal(fake.sent, "BEGIN;INSERT 1;ROLLBACK;SELECT 1;");
	gw_db_free(db);
}

/* ROLLBACK only when a transaction is open; BEGIN inside one ends it. */
static void
test_rollback_and_begin_follow_libpq(void **state)
{
	struct gw_db *db = gw_db_new("dbname=x", 1, 0);
	char err[256];

	(void)state;
	gw_db_rollback(db); /* not connected */
	assert_int_equal(fake.connects, 0);
	assert_int_equal(exec(db, "SELECT 1", 1, err, sizeof(err)), GW_OK);
	gw_db_rollback(db); /* idle */
	assert_int_equal(gw_db_commit(db, err, sizeof(err)), GW_E_DB);
	assert_non_null(strstr(err, "without a transaction"));
	assert_int_equal(gw_db_begin(db, err, sizeof(err)), GW_OK);
	assert_int_equal(gw_db_begin(db, err, sizeof(err)), GW_OK);
	gw_db_rollback(db);
	assert_int_equal(fake.conn->ts, PQTRANS_IDLE);
	/* A transaction begun with plain SQL counts as well. */
	assert_int_equal(exec(db, "BEGIN", 0, err, sizeof(err)), GW_OK);
	assert_int_equal(gw_db_commit(db, err, sizeof(err)), GW_OK);
	assert_string_equal(
	    fake.sent, "SELECT 1;BEGIN;ROLLBACK;BEGIN;ROLLBACK;BEGIN;COMMIT;");
	assert_int_equal(fake.connects, 1);
	gw_db_free(db);
}

/* A request's end rolls back what its handler left open, only that. */
static void
test_request_done_rolls_back_a_leftover(void **state)
{
	struct gw_db *db = gw_db_new("dbname=x", 1, 0);
	char err[256];

	(void)state;
	gw_db_request_done(db); /* not connected: nothing */
	assert_int_equal(exec(db, "SELECT 1", 1, err, sizeof(err)), GW_OK);
	gw_db_request_done(db); /* idle: nothing */
	assert_int_equal(gw_db_begin(db, err, sizeof(err)), GW_OK);
	assert_int_equal(exec(db, "INSERT 1", 0, err, sizeof(err)), GW_OK);
	gw_db_request_done(db);
	assert_int_equal(fake.conn->ts, PQTRANS_IDLE);
	assert_string_equal(fake.sent, "SELECT 1;BEGIN;INSERT 1;ROLLBACK;");
	gw_db_free(db);
}

/*
 * A named statement is prepared once per connection: again after a
 * reconnect, and again when the server lost it (26000, a pooler's DISCARD
 * ALL), which is not an error for the caller (nothing had run).
 */
static void
test_named_prepared_once_per_connection(void **state)
{
	struct gw_db *db = gw_db_new("dbname=x", 1, 0);
	char err[256];

	(void)state;
	assert_int_equal(gw_db_exec_named(db, "s1", "SELECT 1", 0, NULL, NULL,
	                     NULL, 1, NULL, err, sizeof(err)),
	    GW_OK);
	assert_int_equal(gw_db_exec_named(db, "s1", "SELECT 1", 0, NULL, NULL,
	                     NULL, 1, NULL, err, sizeof(err)),
	    GW_OK);
	assert_string_equal(fake.sent, "PREPARE s1;EXECUTE s1;EXECUTE s1;");
	fake.sent[0] = '\0';
	queue(O_BREAK, NULL);
	assert_int_equal(gw_db_exec_named(db, "s1", "SELECT 1", 0, NULL, NULL,
	                     NULL, 1, NULL, err, sizeof(err)),
	    GW_OK);
	assert_int_equal(fake.connects, 2);
	assert_string_equal(fake.sent, "PREPARE s1;EXECUTE s1;");
	fake.sent[0] = '\0';
	fake.conn->nprepared = 0;
	assert_int_equal(gw_db_exec_named(db, "s1", "SELECT 1", 0, NULL, NULL,
	                     NULL, 0, NULL, err, sizeof(err)),
	    GW_OK);
	assert_int_equal(fake.connects, 2);
	assert_string_equal(fake.sent, "PREPARE s1;EXECUTE s1;");
	/* A plain statement between them changes nothing. */
	fake.sent[0] = '\0';
	assert_int_equal(exec(db, "SELECT 2", 1, err, sizeof(err)), GW_OK);
	assert_int_equal(gw_db_exec_named(db, "s1", "SELECT 1", 0, NULL, NULL,
	                     NULL, 0, NULL, err, sizeof(err)),
	    GW_OK);
	assert_string_equal(fake.sent, "SELECT 2;EXECUTE s1;");
	gw_db_free(db);
}

/* Unreachable: GW_E_DB with libpq's reason, and a short backoff. */
static void
test_unreachable(void **state)
{
	struct gw_db *db = gw_db_new("dbname=x", 1, 0);
	char err[256];

	(void)state;
	fake.fail_connect = 1;
	assert_int_equal(exec(db, "SELECT 1", 1, err, sizeof(err)), GW_E_DB);
	assert_string_equal(err, "connection refused");
	assert_int_equal(gw_db_begin(db, err, sizeof(err)), GW_E_DB);
	assert_string_equal(err, "database unreachable (retrying)");
	assert_int_equal(fake.connects, 1);
	assert_int_equal(fake.finishes, 1);
	gw_db_rollback(db);
	gw_db_free(db);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_retry_outside_a_transaction, setup),
	    cmocka_unit_test_setup(test_begin_is_retried, setup),
	    cmocka_unit_test_setup(test_no_retry_inside_a_transaction, setup),
	    cmocka_unit_test_setup(test_rollback_after_a_break, setup),
	    cmocka_unit_test_setup(test_commit_after_an_error, setup),
	    cmocka_unit_test_setup(test_rollback_and_begin_follow_libpq, setup),
	    cmocka_unit_test_setup(
	        test_request_done_rolls_back_a_leftover, setup),
	    cmocka_unit_test_setup(
	        test_named_prepared_once_per_connection, setup),
	    cmocka_unit_test_setup(test_unreachable, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
