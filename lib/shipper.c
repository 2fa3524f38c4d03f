/*
 * shipper.c: the writer thread that ships this process's spool to
 * PostgreSQL, finds refused rows, ships orphan spools and runs budget
 * resets.
 */
#include "shipper.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "budget.h"
#include "budget_reset.h"
#include "db.h"
#include "log.h"
#include "spool.h"
#include "spoolcols.h"
#include "util.h"

#define ORPHAN_SCAN_US (2 * 1000000)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
/* The newest configuration handed in (referenced), and its gen. */
static struct gw_cfg *handed;
static unsigned handed_gen;
static int writer_running;

/* A spooled line with a charge is shipped (see gw_spool_shipped). */
static void
charge_shipped(void *tag)
{
	gw_budget_charge_done(tag, 1);
}

/*
 * One batch: a JSON array of spooled lines. Rows go to spend_logs (once:
 * ON CONFLICT DO NOTHING), their Langfuse payloads beside them, and the
 * totals of the key, user and team move by what was actually inserted, as
 * do the daily aggregates (one upsert per day x key x model x user x team
 * x end user group of the batch, and per tag), so that reports never scan
 * spend_logs.
 */
/* An aggregate row takes in what EXCLUDED adds. */
#define AGG_ADD                                                                \
	"prompt_tokens = d.prompt_tokens + EXCLUDED.prompt_tokens, "           \
	"completion_tokens = d.completion_tokens + "                           \
	"EXCLUDED.completion_tokens, total_tokens = d.total_tokens + "         \
	"EXCLUDED.total_tokens, spend = d.spend + EXCLUDED.spend, "            \
	"api_requests = d.api_requests + EXCLUDED.api_requests, "              \
	"successful_requests = d.successful_requests + "                       \
	"EXCLUDED.successful_requests, failed_requests = d.failed_requests + " \
	"EXCLUDED.failed_requests"

/* The batch's rows (the CTE "rows": spend_logs' columns), inserted. */
#define SHIP_INS_SELECT                                                        \
	"INSERT INTO spend_logs (request_id, api_key, key_alias, "             \
	"user_id, team_id, model, actual_model, call_type, prompt_tokens, "    \
	"completion_tokens, total_tokens, spend, usage_estimated, "            \
	"start_time, end_time, completion_start_time, ttft_ms, status, "       \
	"error_type, stream, client_disconnected, metadata, response_id, "     \
	"request_tags, session_id) SELECT request_id, coalesce(api_key, ''), " \
	"key_alias, user_id, team_id, coalesce(model, ''), actual_model, "     \
	"call_type, coalesce(prompt_tokens, 0), coalesce(completion_tokens, "  \
	"0), coalesce(total_tokens, 0), coalesce(spend, 0), "                  \
	"coalesce(usage_estimated, false), start_time, end_time, "             \
	"completion_start_time, ttft_ms, status, error_type, "                 \
	"coalesce(stream, "                                                    \
	"false), coalesce(client_disconnected, false), coalesce(metadata, "    \
	"'{}'), response_id, CASE WHEN jsonb_typeof(request_tags) = 'array' "  \
	"THEN request_tags ELSE '[]' END, session_id FROM rows"

/*
 * The rows that may have been shipped already go once (ON CONFLICT), and
 * what was inserted is returned for the roll-ups (SHIP_TOTALS).
 */
#define SHIP_INS_ONCE                                                          \
	"ins AS (" SHIP_INS_SELECT " ON CONFLICT (request_id) DO NOTHING "     \
	"RETURNING request_id, api_key, user_id, "                             \
	"team_id, spend, model, (start_time AT TIME ZONE 'UTC')::date AS "     \
	"day, "                                                                \
	"prompt_tokens, completion_tokens, total_tokens, status BETWEEN 200 "  \
	"AND 299 AS ok, coalesce(metadata->>'end_user', '') AS end_user, "     \
	"request_tags), "

/* Their Langfuse payloads, from src (r: request_id, lf_mode and lf_*). */
#define SHIP_PAY(src)                                                          \
	"pay AS (INSERT INTO request_payloads (request_id, record_mode, "      \
	"input, output, trace) SELECT r.request_id, r.lf_mode, r.lf_input, "   \
	"r.lf_output, CASE WHEN jsonb_typeof(r.lf_trace) = 'object' THEN "     \
	"r.lf_trace ELSE '{}' END FROM " src " JOIN ins USING (request_id) "   \
	"WHERE r.lf_mode IS NOT NULL ON CONFLICT (request_id) DO NOTHING "     \
	"RETURNING 1), "

/* The totals and the daily aggregates move by what was inserted. */
#define SHIP_TOTALS                                                            \
	"k AS (UPDATE keys SET spend = keys.spend + s.total FROM (SELECT "     \
	"api_key, sum(spend) AS total FROM ins WHERE api_key <> '' GROUP BY "  \
	"api_key) s WHERE keys.token = s.api_key RETURNING 1), "               \
	"u AS (INSERT INTO users (user_id, spend) SELECT user_id, sum(spend) " \
	"FROM ins WHERE user_id IS NOT NULL GROUP BY user_id ON CONFLICT "     \
	"(user_id) DO UPDATE SET spend = users.spend + EXCLUDED.spend "        \
	"RETURNING 1), "                                                       \
	"t AS (UPDATE teams SET spend = teams.spend + s.total FROM (SELECT "   \
	"team_id, sum(spend) AS total FROM ins WHERE team_id IS NOT NULL "     \
	"GROUP BY team_id) s WHERE teams.team_id = s.team_id RETURNING 1), "   \
	"d AS (INSERT INTO spend_daily AS d SELECT day, api_key, model, "      \
	"coalesce(user_id, ''), coalesce(team_id, ''), end_user, "             \
	"sum(prompt_tokens), sum(completion_tokens), sum(total_tokens), "      \
	"sum(spend), count(*), count(*) FILTER (WHERE ok), count(*) FILTER "   \
	"(WHERE NOT ok) FROM ins GROUP BY 1, 2, 3, 4, 5, 6 ON CONFLICT (day, " \
	"api_key, model, user_id, team_id, end_user) DO UPDATE SET " AGG_ADD   \
	" RETURNING 1), "                                                      \
	"g AS (INSERT INTO spend_daily_tags AS d SELECT day, tag, api_key, "   \
	"coalesce(user_id, ''), coalesce(team_id, ''), sum(prompt_tokens), "   \
	"sum(completion_tokens), sum(total_tokens), sum(spend), count(*), "    \
	"count(*) FILTER (WHERE ok), count(*) FILTER (WHERE NOT ok) FROM ins " \
	"CROSS JOIN LATERAL (SELECT DISTINCT value AS tag FROM "               \
	"jsonb_array_elements_text(ins.request_tags)) x WHERE "                \
	"ins.request_tags <> '[]' GROUP BY 1, 2, 3, 4, 5 ON CONFLICT (day, "   \
	"tag, api_key, user_id, team_id) DO UPDATE "                           \
	"SET " AGG_ADD " RETURNING 1) "

/* What the statement answers: rows inserted, payloads inserted. */
#define SHIP_COUNTS                                                            \
	"SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM pay)"

/*
 * The totals and the daily aggregates move by the roll-ups the writer
 * summed (gw_spoolcols_rollups: $30..$60), when every row is inserted.
 */
#define SHIP_ROLLUPS                                                           \
	"k AS (UPDATE keys SET spend = keys.spend + s.total FROM (SELECT "     \
	"unnest($30::text[]) AS token, unnest($31::float8[]) AS total) s "     \
	"WHERE keys.token = s.token RETURNING 1), "                            \
	"u AS (INSERT INTO users (user_id, spend) SELECT "                     \
	"unnest($32::text[]), unnest($33::float8[]) ON CONFLICT (user_id) DO " \
	"UPDATE SET spend = users.spend + EXCLUDED.spend RETURNING 1), "       \
	"t AS (UPDATE teams SET spend = teams.spend + s.total FROM (SELECT "   \
	"unnest($34::text[]) AS team_id, unnest($35::float8[]) AS total) s "   \
	"WHERE teams.team_id = s.team_id RETURNING 1), "                       \
	"d AS (INSERT INTO spend_daily AS d SELECT unnest($36::date[]), "      \
	"unnest($37::text[]), unnest($38::text[]), unnest($39::text[]), "      \
	"unnest($40::text[]), unnest($41::text[]), unnest($42::int8[]), "      \
	"unnest($43::int8[]), unnest($44::int8[]), unnest($45::float8[]), "    \
	"unnest($46::int8[]), unnest($47::int8[]), unnest($48::int8[]) ON "    \
	"CONFLICT (day, api_key, model, user_id, team_id, end_user) DO "       \
	"UPDATE SET " AGG_ADD " RETURNING 1), "                                \
	"g AS (INSERT INTO spend_daily_tags AS d SELECT unnest($49::date[]), " \
	"unnest($50::text[]), unnest($51::text[]), unnest($52::text[]), "      \
	"unnest($53::text[]), unnest($54::int8[]), unnest($55::int8[]), "      \
	"unnest($56::int8[]), unnest($57::float8[]), unnest($58::int8[]), "    \
	"unnest($59::int8[]), unnest($60::int8[]) ON CONFLICT (day, tag, "     \
	"api_key, user_id, team_id) DO UPDATE SET " AGG_ADD " RETURNING 1) "

/*
 * The batch as columns (spoolcols.h): binary arrays, taken as they are.
 * The payloads read their own columns, so that "rows" has one reader and
 * is not kept aside in a tuplestore for a second.
 *
 * First as new rows, with the writer's roll-ups: a plain INSERT (no ON
 * CONFLICT, which probes the primary key before each row and takes a
 * speculative-insertion lock; the key's own check finds a row shipped
 * before), nothing returned but the request ids the payloads join, and no
 * payload insert when the batch has none. A batch that meets a row
 * already shipped (23505: nothing of it was applied), or whose roll-ups
 * the writer cannot sum as PostgreSQL would, goes as ship_cols_sql: those
 * rows are left out, and the roll-ups group what was inserted.
 */
#define SHIP_COLS_ROWS "WITH rows AS (SELECT * FROM " GW_SPOOLCOLS_SQL "), "
#define SHIP_COLS_PAY                                                          \
	SHIP_PAY("(SELECT unnest($1::text[]) AS request_id, "                  \
	         "unnest($28::text[]) AS lf_mode, unnest($26::jsonb[]) AS "    \
	         "lf_input, unnest($27::jsonb[]) AS lf_output, "               \
	         "unnest($29::jsonb[]) AS lf_trace) r")

static const char ship_new_sql[] =
    SHIP_COLS_ROWS "ins AS (" SHIP_INS_SELECT "), " SHIP_ROLLUPS "SELECT 0, 0";
static const char ship_new_pay_sql[] = SHIP_COLS_ROWS
    "ins AS (" SHIP_INS_SELECT
    " RETURNING request_id), " SHIP_COLS_PAY SHIP_ROLLUPS SHIP_COUNTS;
static const char ship_cols_sql[] =
    SHIP_COLS_ROWS SHIP_INS_ONCE SHIP_COLS_PAY SHIP_TOTALS SHIP_COUNTS;

/*
 * The batch as JSON, when it does not convert (a line of another shape):
 * PostgreSQL reads every value, and refuses what it must.
 */
static const char ship_sql[] =
    /*
     * json, not jsonb: json_to_recordset reads the batch's text as it
     * goes, where jsonb would build every object first (keys sorted) and
     * then look each field up. The columns are spend_logs' and the
     * Langfuse payload's; a line's other fields are ignored.
     */
    "WITH rows AS (SELECT * FROM json_to_recordset($1::json) AS r("
    "request_id text, api_key text, key_alias text, user_id text, team_id "
    "text, model text, actual_model text, call_type text, prompt_tokens "
    "integer, completion_tokens integer, total_tokens integer, spend double "
    "precision, usage_estimated boolean, start_time timestamptz, end_time "
    "timestamptz, completion_start_time timestamptz, ttft_ms double "
    "precision, status integer, error_type text, stream boolean, "
    "client_disconnected boolean, metadata jsonb, response_id text, "
    "request_tags jsonb, session_id text, lf_input jsonb, lf_output jsonb, "
    "lf_mode text, lf_trace jsonb)), " SHIP_INS_ONCE SHIP_PAY("rows r")
        SHIP_TOTALS SHIP_COUNTS;

/*
 * The columns' statement failed with state: try the batch as JSON at
 * once, so that this path is never what holds a batch back (a replay of
 * one that did commit inserts nothing and moves no total)? Not for a
 * refused row (class 22: found below, as for JSON), nor when the
 * database is gone (no state, 08, 57: the next cycle tries again); yes
 * for anything else, a protocol violation (08P01) included.
 */
static int
retry_as_json(const char *state)
{
	return state[0] != '\0' && strncmp(state, "22", 2) != 0 &&
	       (strncmp(state, "08", 2) != 0 || strcmp(state, "08P01") == 0) &&
	       strncmp(state, "57", 2) != 0;
}

int
gw_shipper_ship(struct gw_db *db, int fd, uint64_t *off, int max_rows)
{
	struct gw_spool_batch b;
	struct gw_spoolcols cols;
	struct gw_spoolcols_rollups ru;
	const char *params[1], *vals[GW_SPOOLCOLS_N + GW_SPOOLCOLS_ROLLUPS_N];
	int lens[GW_SPOOLCOLS_N + GW_SPOOLCOLS_ROLLUPS_N];
	int fmts[GW_SPOOLCOLS_N + GW_SPOOLCOLS_ROLLUPS_N];
	char err[512];
	int rc = 0, as_json = 1;
	enum gw_status st = GW_OK;

	memset(&cols, 0, sizeof(cols));
	memset(&ru, 0, sizeof(ru));
	gw_spool_read(fd, *off, max_rows, &b);
	if (b.used == 0)
		goto out;
	if (gw_spoolcols_build(&cols, b.raw, b.used) == GW_OK &&
	    cols.rows == b.rows && b.rows > 0) {
		st = GW_E_INVALID;
		if (gw_spoolcols_rollups(&ru, &cols) == GW_OK) {
			memcpy(vals, cols.values, sizeof(cols.values));
			memcpy(vals + GW_SPOOLCOLS_N, ru.values,
			    sizeof(ru.values));
			memcpy(lens, cols.lengths, sizeof(cols.lengths));
			memcpy(lens + GW_SPOOLCOLS_N, ru.lengths,
			    sizeof(ru.lengths));
			memcpy(fmts, cols.formats, sizeof(cols.formats));
			memcpy(fmts + GW_SPOOLCOLS_N, ru.formats,
			    sizeof(ru.formats));
			st = gw_db_exec_named(db,
			    cols.payloads > 0 ? "gw_ship_new_pay"
			                      : "gw_ship_new",
			    cols.payloads > 0 ? ship_new_pay_sql : ship_new_sql,
			    GW_SPOOLCOLS_N + GW_SPOOLCOLS_ROLLUPS_N, vals, lens,
			    fmts, 0, NULL, err, sizeof(err));
		}
		if (st == GW_E_INVALID ||
		    (st != GW_OK &&
		        strcmp(gw_db_last_sqlstate(db), "23505") == 0))
			st = gw_db_exec_named(db, "gw_ship_cols", ship_cols_sql,
			    GW_SPOOLCOLS_N, cols.values, cols.lengths,
			    cols.formats, 0, NULL, err, sizeof(err));
		as_json = st != GW_OK && retry_as_json(gw_db_last_sqlstate(db));
	}
	if (as_json) {
		params[0] = b.json.p;
		st = gw_db_exec_named(db, "gw_ship", ship_sql, 1, params, NULL,
		    NULL, 0, NULL, err, sizeof(err));
	}
	gw_spoolcols_fini(&cols);
	gw_spoolcols_rollups_fini(&ru);
	if (st != GW_OK) {
		/* PostgreSQL's CONTEXT quotes row data: not for the log. */
		char *ctx = strstr(err, "CONTEXT:");
		int data = strncmp(gw_db_last_sqlstate(db), "22", 2) == 0;

		if (ctx != NULL)
			snprintf(ctx, sizeof(err) - (size_t)(ctx - err),
			    "(SQLSTATE %s)", gw_db_last_sqlstate(db));
		if (data && b.rows > 1) {
			/* Find the refused row: one line at a time. */
			int r, done = 0;

			while (done < b.rows &&
			       (r = gw_shipper_ship(db, fd, off, 1)) > 0)
				done += r;
			rc = done > 0 ? done : -1;
			goto out;
		}
		if (data) {
			gw_spool_reject(b.raw, b.used, err);
			*off += b.used;
			rc = 1;
			goto out;
		}
		gw_log_warn(NULL, "spend",
		    "shipping %d spooled row(s) failed, "
		    "will retry: %s",
		    b.rows, err);
		rc = -1;
		goto out;
	}
	*off += b.used;
	rc = b.rows > 0 ? b.rows : 1;
out:
	gw_spool_batch_fini(&b);
	return rc;
}

struct orphan_ctx {
	struct gw_db *db;
	int batch_rows;
};

/* Ship one orphan spool file to its end (see gw_spool_orphans). */
static int
ship_orphan(void *arg, int fd)
{
	struct orphan_ctx *c = arg;
	uint64_t off = 0;
	int r;

	while ((r = gw_shipper_ship(c->db, fd, &off, c->batch_rows)) > 0)
		;
	return r;
}

/*
 * The configuration the writer should use: the newest handed in, or NULL.
 * A reference is taken for the caller when it is newer than *cur; returns
 * the one it replaces (to release), else NULL.
 */
static struct gw_cfg *
take_newer(struct gw_cfg **cur)
{
	struct gw_cfg *old = NULL;

	pthread_mutex_lock(&lock);
	if (handed != *cur) {
		old = *cur;
		*cur = gw_cfg_ref(handed);
	}
	pthread_mutex_unlock(&lock);
	return old;
}

/*
 * The writer: own spool first, then orphans and budget resets. It takes a
 * reloaded configuration at the top of its next cycle: flush_ms,
 * batch_rows and budget_reset_check_s at once, a new [database] conninfo
 * by reconnecting; spool_dir stays (spool.h).
 */
static void *
writer(void *arg)
{
	struct gw_cfg *cfg = NULL, *old;
	struct gw_db *db = NULL;
	struct gw_spool_reader rd = GW_SPOOL_READER_INIT;
	struct orphan_ctx oc;
	int n;
	int64_t next_orphans = 0, last_reset = 0, now;
	struct timespec dl;

	(void)arg;
	for (;;) {
		if ((old = take_newer(&cfg)) != NULL) {
			gw_log_info(NULL, "spend",
			    "writer took the reloaded configuration: "
			    "flush_ms=%d batch_rows=%d "
			    "budget_reset_check_s=%d%s",
			    cfg->spend_flush_ms, cfg->spend_batch_rows,
			    cfg->budget_reset_check_s,
			    strcmp(old->db_conninfo, cfg->db_conninfo) != 0
			        ? " (new database conninfo: reconnecting)"
			        : "");
			if (strcmp(old->db_conninfo, cfg->db_conninfo) != 0) {
				gw_db_free(db);
				db = NULL;
			}
			gw_cfg_unref(old);
		}
		if (db == NULL)
			db = gw_db_new(cfg->db_conninfo, 3, 30000);
		oc.db = db;
		oc.batch_rows = cfg->spend_batch_rows;
		gw_spool_follow(&rd);
		n = rd.fd >= 0 ? gw_shipper_ship(
		                     db, rd.fd, &rd.off, cfg->spend_batch_rows)
		               : 0;
		if (n > 0)
			gw_spool_shipped(&rd, n, charge_shipped);
		if (n < cfg->spend_batch_rows) {
			/*
			 * Idle, failing, or less than a full batch: let rows
			 * gather for flush_ms (or 1 s after a failure) so that
			 * PostgreSQL sees a few big statements, not many small.
			 */
			clock_gettime(CLOCK_REALTIME, &dl);
			dl.tv_nsec +=
			    (long)(n < 0 ? 1000 : cfg->spend_flush_ms) *
			    1000000L;
			dl.tv_sec += dl.tv_nsec / 1000000000L;
			dl.tv_nsec %= 1000000000L;
			pthread_mutex_lock(&lock);
			pthread_cond_timedwait(&wake, &lock, &dl);
			pthread_mutex_unlock(&lock);
		}
		now = gw_now_mono_us();
		if (now >= next_orphans) {
			gw_spool_orphans(ship_orphan, &oc);
			next_orphans = now + ORPHAN_SCAN_US;
		}
		/* From the last run, so that a shorter interval applies now. */
		if (last_reset == 0 ||
		    now - last_reset >=
		        (int64_t)cfg->budget_reset_check_s * 1000000) {
			gw_budget_reset_run(db);
			last_reset = now;
		}
	}
	return NULL;
}

static void
start_writer(void)
{
	pthread_t t;
	pthread_attr_t a;

	pthread_mutex_lock(&lock);
	gw_spool_init(handed->spool_dir); /* logged */
	pthread_mutex_unlock(&lock);
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&a, 512 * 1024);
	if (pthread_create(&t, &a, writer, NULL) != 0)
		gw_log_errno(NULL, "spend", "cannot start the spend writer");
	else
		writer_running = 1;
	pthread_attr_destroy(&a);
}

/* Keep cfg for the writer if it is newer than what it was handed. */
static void
hand(const struct gw_cfg *cfg)
{
	struct gw_cfg *old = NULL;

	pthread_mutex_lock(&lock);
	if (handed == NULL || cfg->gen > handed->gen) {
		old = handed;
		handed = gw_cfg_ref((struct gw_cfg *)cfg);
		__atomic_store_n(&handed_gen, cfg->gen, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&lock);
	gw_cfg_unref(old);
}

void
gw_shipper_start(const struct gw_cfg *cfg)
{
	unsigned gen = __atomic_load_n(&handed_gen, __ATOMIC_ACQUIRE);

	/*
	 * Requests hand in their configuration: after a reload, the first
	 * one carries the new file to the writer (one comparison else).
	 */
	if (gen == 0 || cfg->gen > gen)
		hand(cfg);
	pthread_once(&once, start_writer);
}

void
gw_shipper_drain(int timeout_ms)
{
	int64_t until = gw_now_mono_us() + (int64_t)timeout_ms * 1000;

	if (!writer_running)
		return;
	while (gw_spool_backlog() > 0 && gw_now_mono_us() < until) {
		pthread_mutex_lock(&lock);
		pthread_cond_signal(&wake);
		pthread_mutex_unlock(&lock);
		usleep(20 * 1000);
	}
	/* All shipped: the file goes, not shipped again at the next start. */
	gw_spool_retire();
}
