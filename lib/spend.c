/*
 * spend.c: spend rows and their writer thread (prices: price.c, the spool:
 * spool.c, budgets: budget.c).
 */
#include "spend.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "budget.h"
#include "db.h"
#include "json_util.h"
#include "keystore.h"
#include "log.h"
#include "spool.h"
#include "util.h"

#define ORPHAN_SCAN_US (2 * 1000000)
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static const struct gw_cfg *start_cfg; /* referenced for the writer */
static int writer_running;

static void
jw_time(struct gw_buf *b, const char *key, int64_t us)
{
	char ts[32];

	if (us == 0) {
		gw_jw_null(b, key);
		return;
	}
	gw_time_rfc3339(us, ts);
	gw_jw_str(b, key, ts);
}

/*
 * The spend_logs row for r, as one JSON line, written directly (this runs
 * for every request). Caller frees.
 */
static char *
row_line(const struct gw_spend_rec *r)
{
	const struct gw_keyrec *k = r->who->rec;
	struct gw_buf b = {0};

	gw_jw_begin(&b);
	gw_jw_str(&b, "request_id", r->request_id);
	gw_jw_str(&b, "api_key",
	    r->who->role == GW_ROLE_KEY && k != NULL ? k->token : "");
	gw_jw_str(&b, "key_alias", k ? k->key_alias : NULL);
	gw_jw_str(&b, "user_id", k ? k->user_id : NULL);
	gw_jw_str(&b, "team_id", k ? k->team_id : NULL);
	gw_jw_str(&b, "model", r->model ? r->model : "");
	gw_jw_str(&b, "actual_model", r->actual_model);
	gw_jw_str(&b, "call_type", r->call_type);
	gw_jw_int(&b, "prompt_tokens", r->prompt_tokens);
	gw_jw_int(&b, "completion_tokens", r->completion_tokens);
	gw_jw_int(&b, "total_tokens", r->total_tokens);
	gw_jw_num(&b, "spend", r->cost);
	gw_jw_bool(&b, "usage_estimated", r->usage_estimated);
	jw_time(&b, "start_time", r->start_us);
	jw_time(&b, "end_time", r->end_us);
	jw_time(&b, "completion_start_time", r->first_token_us);
	if (r->first_token_us)
		gw_jw_num(&b, "ttft_ms",
		    (double)(r->first_token_us - r->start_us) / 1000.0);
	else
		gw_jw_null(&b, "ttft_ms");
	gw_jw_int(&b, "status", r->status);
	gw_jw_str(&b, "error_type", r->error_type);
	gw_jw_bool(&b, "stream", r->stream);
	gw_jw_bool(&b, "client_disconnected", r->client_disconnected);
	gw_jw_raw(&b, "metadata",
	    r->metadata ? gw_json_str(r->metadata, NULL) : "{}");
	if (r->lf_mode != NULL) {
		gw_jw_str(&b, "lf_mode", r->lf_mode);
		gw_jw_raw(&b, "lf_input",
		    r->lf_input ? gw_json_str(r->lf_input, NULL) : "null");
		gw_jw_raw(&b, "lf_output",
		    r->lf_output ? gw_json_str(r->lf_output, NULL) : "null");
	}
	gw_jw_end(&b);
	gw_buf_append(&b, "\n", 1);
	return b.p;
}

enum gw_status
gw_spend_record(const struct gw_cfg *cfg, const struct gw_spend_rec *r)
{
	struct gw_budget_charge *c;
	char *line = row_line(r);
	enum gw_status st;

	gw_spend_start(cfg);
	/* Counted before it is spooled: never shipped and not yet counted. */
	c = gw_budget_charge_new(r->who, r->cost);
	st = gw_spool_append(line, strlen(line), c);
	if (st != GW_OK) {
		gw_log_errno(NULL, "spend", "cannot spool request %s in %s",
		    r->request_id, gw_spool_dir());
		gw_budget_charge_done(c, 0);
	}
	free(line);
	return st;
}

/* A spooled line with a charge is shipped (see gw_spool_shipped). */
static void
charge_shipped(void *tag)
{
	gw_budget_charge_done(tag, 1);
}

/*
 * One batch: a JSON array of spooled lines. Rows go to spend_logs (once:
 * ON CONFLICT DO NOTHING), their Langfuse payloads beside them, and the
 * totals of the key, user and team move by what was actually inserted.
 */
static const char ship_sql[] =
    /*
     * jsonb: the batch is parsed once; json would re-parse each row's text
     * for every -> below and for the record (4 parses per row).
     */
    "WITH src AS (SELECT value AS j FROM jsonb_array_elements($1::jsonb)), "
    /* LATERAL: "(f(j)).*" would expand j once per column. */
    "rows AS (SELECT r.*, src.j->'lf_input' AS lf_input, "
    "src.j->'lf_output' AS lf_output, src.j->>'lf_mode' AS lf_mode FROM "
    "src CROSS JOIN LATERAL jsonb_populate_record(NULL::spend_logs, src.j) "
    "AS r), "
    "ins AS (INSERT INTO spend_logs (request_id, api_key, key_alias, "
    "user_id, team_id, model, actual_model, call_type, prompt_tokens, "
    "completion_tokens, total_tokens, spend, usage_estimated, start_time, "
    "end_time, completion_start_time, ttft_ms, status, error_type, stream, "
    "client_disconnected, metadata) SELECT request_id, "
    "coalesce(api_key, ''), key_alias, user_id, team_id, coalesce(model, "
    "''), actual_model, call_type, coalesce(prompt_tokens, 0), "
    "coalesce(completion_tokens, 0), coalesce(total_tokens, 0), "
    "coalesce(spend, 0), coalesce(usage_estimated, false), start_time, "
    "end_time, completion_start_time, ttft_ms, status, error_type, "
    "coalesce(stream, false), coalesce(client_disconnected, false), "
    "coalesce(metadata, '{}') FROM rows "
    "ON CONFLICT (request_id) DO NOTHING "
    "RETURNING request_id, api_key, user_id, team_id, spend), "
    "pay AS (INSERT INTO request_payloads (request_id, record_mode, input, "
    "output) SELECT r.request_id, r.lf_mode, r.lf_input, "
    "r.lf_output FROM rows r JOIN ins USING (request_id) WHERE "
    "r.lf_mode IS NOT NULL ON CONFLICT (request_id) DO NOTHING RETURNING 1), "
    "k AS (UPDATE keys SET spend = keys.spend + s.total FROM (SELECT "
    "api_key, sum(spend) AS total FROM ins WHERE api_key <> '' GROUP BY "
    "api_key) s WHERE keys.token = s.api_key RETURNING 1), "
    "u AS (INSERT INTO users (user_id, spend) SELECT user_id, sum(spend) "
    "FROM ins WHERE user_id IS NOT NULL GROUP BY user_id ON CONFLICT "
    "(user_id) DO UPDATE SET spend = users.spend + EXCLUDED.spend "
    "RETURNING 1), "
    "t AS (UPDATE teams SET spend = teams.spend + s.total FROM (SELECT "
    "team_id, sum(spend) AS total FROM ins WHERE team_id IS NOT NULL GROUP "
    "BY team_id) s WHERE teams.team_id = s.team_id RETURNING 1) "
    "SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM pay)";

/*
 * Ship the complete lines of fd from *off, at most max_rows of them, as one
 * batch. Returns the number of lines shipped (0: nothing to do), or -1
 * when the database refused (the spool stays for the next try).
 */
static int
ship_from(struct gw_db *db, int fd, uint64_t *off, int max_rows)
{
	struct gw_spool_batch b;
	const char *params[1];
	char err[512];
	int rc = 0;

	gw_spool_read(fd, *off, max_rows, &b);
	if (b.used == 0)
		goto out;
	params[0] = b.json.p;
	if (gw_db_exec(db, ship_sql, 1, params, 0, NULL, err, sizeof(err)) !=
	    GW_OK) {
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
			       (r = ship_from(db, fd, off, 1)) > 0)
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

	while ((r = ship_from(c->db, fd, &off, c->batch_rows)) > 0)
		;
	return r;
}

/* Zero spend whose budget_duration elapsed, recording each reset. */
static void
reset_budgets(struct gw_db *db)
{
	static const char *const sql[] = {
	    "WITH due AS (SELECT token, spend, budget_duration FROM keys WHERE "
	    "budget_reset_at <= now() AND budget_duration IS NOT NULL FOR "
	    "UPDATE SKIP LOCKED), upd AS (UPDATE keys k SET spend = 0, "
	    "budget_reset_at = now() + llmgw_interval(due.budget_duration) "
	    "FROM "
	    "due WHERE k.token = due.token RETURNING k.token, due.spend, "
	    "k.budget_reset_at) INSERT INTO budget_resets (entity_type, "
	    "entity_id, spend_before, next_reset_at) SELECT 'key', token, "
	    "spend, "
	    "budget_reset_at FROM upd",
	    "WITH due AS (SELECT user_id, spend, budget_duration FROM users "
	    "WHERE budget_reset_at <= now() AND budget_duration IS NOT NULL "
	    "FOR "
	    "UPDATE SKIP LOCKED), upd AS (UPDATE users u SET spend = 0, "
	    "budget_reset_at = now() + llmgw_interval(due.budget_duration) "
	    "FROM "
	    "due WHERE u.user_id = due.user_id RETURNING u.user_id, due.spend, "
	    "u.budget_reset_at) INSERT INTO budget_resets (entity_type, "
	    "entity_id, spend_before, next_reset_at) SELECT 'user', user_id, "
	    "spend, budget_reset_at FROM upd",
	    "WITH due AS (SELECT team_id, spend, budget_duration FROM teams "
	    "WHERE budget_reset_at <= now() AND budget_duration IS NOT NULL "
	    "FOR "
	    "UPDATE SKIP LOCKED), upd AS (UPDATE teams t SET spend = 0, "
	    "budget_reset_at = now() + llmgw_interval(due.budget_duration) "
	    "FROM "
	    "due WHERE t.team_id = due.team_id RETURNING t.team_id, due.spend, "
	    "t.budget_reset_at) INSERT INTO budget_resets (entity_type, "
	    "entity_id, spend_before, next_reset_at) SELECT 'team', team_id, "
	    "spend, budget_reset_at FROM upd",
	};
	char err[512];
	size_t i;

	for (i = 0; i < GW_ARRAY_LEN(sql); i++)
		if (gw_db_exec(db, sql[i], 0, NULL, 0, NULL, err,
		        sizeof(err)) != GW_OK) {
			gw_log_warn(
			    NULL, "spend", "budget reset failed: %s", err);
			return;
		}
}

/* The writer: own spool first, then orphans and budget resets. */
static void *
writer(void *arg)
{
	const struct gw_cfg *cfg = arg;
	struct gw_db *db = gw_db_new(cfg->db_conninfo, 3, 30000);
	struct gw_spool_reader rd = GW_SPOOL_READER_INIT;
	struct orphan_ctx oc = {db, cfg->spend_batch_rows};
	int n;
	int64_t next_orphans = 0, next_reset = 0, now;
	struct timespec dl;

	for (;;) {
		gw_spool_follow(&rd);
		n = rd.fd >= 0
		        ? ship_from(db, rd.fd, &rd.off, cfg->spend_batch_rows)
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
		if (now >= next_reset) {
			reset_budgets(db);
			next_reset =
			    now + (int64_t)cfg->budget_reset_check_s * 1000000;
		}
	}
	return NULL;
}

static void
start_writer(void)
{
	pthread_t t;
	pthread_attr_t a;

	gw_spool_init(start_cfg->spool_dir); /* logged */
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&a, 512 * 1024);
	if (pthread_create(&t, &a, writer, (void *)start_cfg) != 0)
		gw_log_errno(NULL, "spend", "cannot start the spend writer");
	else
		writer_running = 1;
	pthread_attr_destroy(&a);
}

void
gw_spend_start(const struct gw_cfg *cfg)
{
	if (start_cfg == NULL) {
		pthread_mutex_lock(&lock);
		if (start_cfg == NULL)
			start_cfg = gw_cfg_ref((struct gw_cfg *)cfg);
		pthread_mutex_unlock(&lock);
	}
	pthread_once(&once, start_writer);
}

void
gw_spend_drain(int timeout_ms)
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
}

void
gw_spend_process_init(const struct gw_cfg *cfg)
{
	gw_spend_start(cfg);
}

void
gw_spend_process_fini(void)
{
	gw_spend_drain(2000);
}
