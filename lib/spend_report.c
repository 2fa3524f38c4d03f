/*
 * spend_report.c: spend analytics, computed in PostgreSQL from the daily
 * aggregates (see spend_report.h); each answer is one statement that
 * builds the JSON body, with json (text) functions: jsonb_agg of nested
 * jsonb copies every level again (3x slower on a 30-day report).
 */
#include "spend_report.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "db.h"
#include "keystore.h"
#include "log.h"
#include "req.h"
#include "route.h"
#include "util.h"

int
gw_spend_report_valid_date(const char *s)
{
	static const int mdays[] = {
	    31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int i, y, m, d;

	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return 0;
	for (i = 0; i < 10; i++)
		if (i != 4 && i != 7 && !isdigit((unsigned char)s[i]))
			return 0;
	y = atoi(s);
	m = atoi(s + 5);
	d = atoi(s + 8);
	if (y < 1970 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return 0;
	if (m == 2 && d == 29 &&
	    !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 0;
	return 1;
}

/* Parameters $1..$4 of every statement: the range and the caller's scope. */
#define NBASE 4
#define NMAX 12

struct q {
	const char *p[NMAX];
	int n;
	char start[32], end[32];
	char key[65];   /* the caller's own key hash, or "" */
	char user[256]; /* the caller's own user, or "" */
	char extra[4][512];
};

/* The rows of the range and scope, in spend_daily or spend_daily_tags. */
#define FILT                                                                   \
	"day BETWEEN coalesce($1::date, '-infinity') AND coalesce($2::date, "  \
	"'infinity') AND ($3::text IS NULL OR api_key = $3) AND ($4::text IS " \
	"NULL OR user_id = $4)"

/* LiteLLM's SpendMetrics of a group of aggregate rows. */
#define METRICS                                                                \
	"json_build_object('spend', sum(spend), 'prompt_tokens', "             \
	"sum(prompt_tokens), 'completion_tokens', sum(completion_tokens), "    \
	"'total_tokens', sum(total_tokens), 'api_requests', "                  \
	"sum(api_requests), 'successful_requests', sum(successful_requests), " \
	"'failed_requests', sum(failed_requests), 'cache_read_input_tokens', " \
	"0, 'cache_creation_input_tokens', 0)"

static enum gw_status
bad(struct gw_req *req, int status, const char *param, const char *msg)
{
	gw_reply_error_ex(req, status,
	    status == 403 ? "permission_error" : "invalid_request_error", param,
	    msg);
	return GW_OK;
}

/*
 * The range and the caller's scope into q->p[0..3]: 0, or -1 when it
 * replied (400 on a bad date, 403 for a caller with no spend of its own).
 */
static int
base(struct gw_req *req, const struct gw_principal *who, struct q *q,
    int required)
{
	memset(q, 0, sizeof(*q));
	if (gw_req_query_opt(req, "start_date", q->start, sizeof(q->start)) !=
	        GW_OK ||
	    (q->start[0] && !gw_spend_report_valid_date(q->start)) ||
	    (required && !q->start[0])) {
		bad(req, 400, "start_date",
		    "'start_date' must be a date YYYY-MM-DD (UTC)");
		return -1;
	}
	if (gw_req_query_opt(req, "end_date", q->end, sizeof(q->end)) !=
	        GW_OK ||
	    (q->end[0] && !gw_spend_report_valid_date(q->end)) ||
	    (required && !q->end[0])) {
		bad(req, 400, "end_date",
		    "'end_date' must be a date YYYY-MM-DD (UTC)");
		return -1;
	}
	if (q->start[0] && q->end[0] && strcmp(q->start, q->end) > 0) {
		bad(req, 400, "end_date", "'end_date' is before 'start_date'");
		return -1;
	}
	if (!who->admin) {
		if (who->role == GW_ROLE_KEY && who->rec != NULL) {
			snprintf(q->key, sizeof(q->key), "%s", who->rec->token);
		} else if (who->rec != NULL && who->rec->user_id != NULL) {
			snprintf(
			    q->user, sizeof(q->user), "%s", who->rec->user_id);
		} else {
			bad(req, 403, NULL, "This caller has no spend");
			return -1;
		}
	}
	q->p[0] = q->start[0] ? q->start : NULL;
	q->p[1] = q->end[0] ? q->end : NULL;
	q->p[2] = q->key[0] ? q->key : NULL;
	q->p[3] = q->user[0] ? q->user : NULL;
	q->n = NBASE;
	return 0;
}

/* One more parameter, copied into q (NULL when v is NULL or ""). */
static void
param(struct q *q, const char *v)
{
	int i = q->n - NBASE;

	GW_ASSERT(q->n < NMAX && i < 4);
	if (v == NULL || v[0] == '\0') {
		q->p[q->n++] = NULL;
		return;
	}
	snprintf(q->extra[i], sizeof(q->extra[i]), "%s", v);
	q->p[q->n++] = q->extra[i];
}

/* A comma-separated list as a PostgreSQL text[] literal ("" stays ""). */
static int
list_param(struct gw_req *req, const char *name, char *out, size_t len)
{
	char raw[400];
	struct gw_buf b = {0};
	const char *s, *c;

	if (gw_req_query_opt(req, name, raw, sizeof(raw)) != GW_OK)
		return -1;
	out[0] = '\0';
	if (raw[0] == '\0')
		return 0;
	gw_buf_puts(&b, "{");
	for (s = raw; s != NULL; s = c ? c + 1 : NULL) {
		c = strchr(s, ',');
		gw_buf_puts(&b, s == raw ? "\"" : ",\"");
		for (; *s && s != c; s++) {
			if (*s == '"' || *s == '\\')
				gw_buf_append(&b, "\\", 1);
			gw_buf_append(&b, s, 1);
		}
		gw_buf_puts(&b, "\"");
	}
	gw_buf_puts(&b, "}");
	if (b.len >= len) {
		gw_buf_fini(&b);
		return -1;
	}
	memcpy(out, b.p, b.len + 1);
	gw_buf_fini(&b);
	return 0;
}

/* Run sql (one text cell: the body) and answer it as JSON. */
static enum gw_status
answer(struct gw_req *req, const char *sql, struct q *q)
{
	struct gw_db_rows *rows = NULL;
	char err[512] = "no row";
	const char *body;

	if (gw_db_exec(req->ctx->db, sql, q->n, q->p, 1, &rows, err,
	        sizeof(err)) != GW_OK ||
	    gw_db_rows_count(rows) != 1) {
		gw_log_err(req->id, "spend", "spend report failed: %s", err);
		gw_reply_error_ex(
		    req, 503, "no_db_connection", NULL, "Database unavailable");
		goto out;
	}
	body = gw_db_rows_get(rows, 0, 0);
	gw_reply(req, 200, "application/json", body, strlen(body));
out:
	gw_db_rows_free(rows);
	return GW_OK;
}

/* JSON text of a value that may be NULL (to_json gives NULL for NULL). */
#define JS(x) "coalesce(to_json(" x ")::text, 'null')"

/*
 * [{"group_by_day", <list>: [...]}, ...]: one entry per day with spend.
 * Written as text (string_agg of concat): a report can have 30,000
 * key x model entries, and json_build_object costs twice as much per
 * entry. Numbers print as JSON numbers (float8out, numeric).
 */
static const char report_group_sql[] =
    "WITH f AS (SELECT day, %s AS grp, api_key, model, sum(spend) AS spend, "
    "sum(total_tokens) AS tt FROM spend_daily WHERE " FILT
    " GROUP BY 1, 2, 3, 4), "
    "g AS (SELECT day, grp, sum(spend) AS total, string_agg(concat("
    "'{\"model\":', to_json(model), ',\"spend\":', spend, "
    "',\"total_tokens\":', tt, ',\"api_key\":', to_json(api_key), '}'), "
    "',') AS md FROM f GROUP BY 1, 2), "
    "d AS (SELECT g.day, string_agg(concat(%s, ',\"total_spend\":', "
    "g.total, ',\"metadata\":[', g.md, ']}'), ',' ORDER BY g.total DESC, "
    "g.grp) AS l FROM g %s GROUP BY g.day) "
    "SELECT concat('[', string_agg(concat('{\"group_by_day\":\"', day, "
    "'T00:00:00+00:00\",\"%s\":[', l, ']}'), ',' ORDER BY day), ']') FROM d";

static const char report_key_sql[] =
    "WITH f AS (SELECT day, api_key, model, sum(spend) AS spend, "
    "sum(prompt_tokens) AS p, sum(completion_tokens) AS c FROM spend_daily "
    "WHERE " FILT " GROUP BY 1, 2, 3), "
    "g AS (SELECT day, api_key, sum(spend) AS total, sum(p) AS p, sum(c) "
    "AS c, string_agg(concat('{\"model\":', to_json(model), "
    "',\"total_cost\":', spend, ',\"total_input_tokens\":', p, "
    "',\"total_output_tokens\":', c, '}'), ',') AS md FROM f GROUP BY 1, "
    "2), "
    "d AS (SELECT g.day, string_agg(concat('{\"api_key\":', "
    "to_json(g.api_key), ',\"key_alias\":', " JS(
        "k.key_alias") ", "
                       "',\"total_cost\":', g.total, "
                       "',\"total_input_tokens\":', g.p, "
                       "',\"total_output_tokens\":', g.c, "
                       "',\"model_details\":[', g.md, "
                       "']}'), ',' ORDER BY g.total DESC, g.api_key) AS l FROM "
                       "g LEFT JOIN "
                       "keys k ON k.token = g.api_key GROUP BY g.day) "
                       "SELECT concat('[', "
                       "string_agg(concat('{\"group_by_day\":\"', day, "
                       "'T00:00:00+00:00\",\"api_keys\":[', l, ']}'), ',' "
                       "ORDER BY day), "
                       "']') FROM d";

/* The head of a team's and of a customer's entry. */
static const char team_head[] =
    "'{\"team_name\":', coalesce(to_json(coalesce(t.team_alias, "
    "nullif(g.grp, '')))::text, 'null'), ',\"team_id\":', "
    "coalesce(to_json(nullif(g.grp, ''))::text, 'null')";
static const char cust_head[] =
    "'{\"customer\":', coalesce(to_json(nullif(g.grp, ''))::text, 'null')";

enum gw_status
gw_spend_report_global(struct gw_req *req, struct gw_route_call *c)
{
	struct gw_buf sql = {0};
	struct q q;
	char by[32];

	if (base(req, &c->who, &q, 1) < 0)
		return GW_OK;
	if (gw_req_query_opt(req, "group_by", by, sizeof(by)) != GW_OK)
		by[0] = '?';
	if (by[0] == '\0' || strcmp(by, "team") == 0)
		gw_buf_printf(&sql, report_group_sql, "team_id", team_head,
		    "LEFT JOIN teams t ON t.team_id = g.grp", "teams");
	else if (strcmp(by, "customer") == 0)
		gw_buf_printf(&sql, report_group_sql, "end_user", cust_head, "",
		    "customers");
	else if (strcmp(by, "api_key") == 0)
		gw_buf_puts(&sql, report_key_sql);
	else
		return bad(req, 400, "group_by",
		    "'group_by' must be team, customer or api_key");
	answer(req, sql.p, &q);
	gw_buf_fini(&sql);
	return GW_OK;
}

/*
 * LiteLLM's SpendAnalyticsPaginatedResponse: {"results": [DailySpendData
 * per day, newest first, page_size days a page], "metadata": totals over
 * the whole range and the paging}. %s: the entity column (user_id or
 * team_id), four times.
 */
static const char daily_sql[] =
    "WITH f AS (SELECT * FROM spend_daily WHERE " FILT
    " AND ($5::text[] IS NULL OR %s = ANY($5)) AND ($6::text[] IS NULL OR "
    "%s <> ALL($6)) AND ($7::text IS NULL OR model = $7) AND ($8::text IS "
    "NULL OR api_key = $8)), "
    "days AS (SELECT day, " METRICS " AS m, sum(spend) AS s, "
    "sum(prompt_tokens) AS p, sum(completion_tokens) AS c, "
    "sum(total_tokens) AS t, sum(api_requests) AS a, "
    "sum(successful_requests) AS ok, sum(failed_requests) AS ko FROM f "
    "GROUP BY day), "
    "page AS (SELECT day, m FROM days ORDER BY day DESC LIMIT $9::bigint "
    "OFFSET ($10::bigint - 1) * $9::bigint), "
    "pf AS (SELECT f.* FROM f JOIN page USING (day)), "
    "bm AS (SELECT day, json_object_agg(model, json_build_object("
    "'metrics', m, 'metadata', '{}'::json)) AS o FROM (SELECT day, "
    "model, " METRICS " AS m FROM pf GROUP BY 1, 2) x GROUP BY 1), "
    "bk AS (SELECT x.day, json_object_agg(x.api_key, json_build_object("
    "'metrics', x.m, 'metadata', json_build_object('key_alias', "
    "k.key_alias, 'team_id', k.team_id))) AS o FROM (SELECT day, "
    "api_key, " METRICS
    " AS m FROM pf GROUP BY 1, 2) x LEFT JOIN keys k ON k.token = "
    "x.api_key GROUP BY 1), "
    "be AS (SELECT day, json_object_agg(e, json_build_object('metrics', "
    "m, 'metadata', '{}'::json)) AS o FROM (SELECT day, %s AS e, " METRICS
    " AS m FROM pf GROUP BY 1, 2) x GROUP BY 1), "
    "res AS (SELECT page.day, json_build_object('date', page.day, "
    "'metrics', page.m, 'breakdown', json_build_object('models', "
    "coalesce(bm.o, '{}'), 'providers', '{}'::json, 'api_keys', "
    "coalesce(bk.o, '{}'), 'entities', coalesce(be.o, '{}'))) AS r FROM "
    "page LEFT JOIN bm USING (day) LEFT JOIN bk USING (day) LEFT JOIN be "
    "USING (day)) "
    "SELECT json_build_object('results', coalesce((SELECT json_agg(r "
    "ORDER BY day DESC) FROM res), '[]'), 'metadata', (SELECT "
    "json_build_object('total_spend', coalesce(sum(s), 0), "
    "'total_prompt_tokens', coalesce(sum(p), 0), "
    "'total_completion_tokens', coalesce(sum(c), 0), 'total_tokens', "
    "coalesce(sum(t), 0), 'total_api_requests', coalesce(sum(a), 0), "
    "'total_successful_requests', coalesce(sum(ok), 0), "
    "'total_failed_requests', coalesce(sum(ko), 0), "
    "'total_cache_read_input_tokens', 0, "
    "'total_cache_creation_input_tokens', 0, 'page', $10::bigint, "
    "'total_pages', ceil(count(*) / $9::numeric)::bigint, 'has_more', "
    "$10::bigint * $9::bigint < count(*)) FROM days))::text";

/* ?name= as an integer in [lo, hi] into *v (dflt when absent); 0 or -1. */
static int
int_param(
    struct gw_req *req, const char *name, long lo, long hi, long dflt, long *v)
{
	char s[32], *e;

	if (gw_req_query_opt(req, name, s, sizeof(s)) != GW_OK)
		return -1;
	if (s[0] == '\0') {
		*v = dflt;
		return 0;
	}
	*v = strtol(s, &e, 10);
	return *e == '\0' && *v >= lo && *v <= hi ? 0 : -1;
}

enum gw_status
gw_spend_report_daily(struct gw_req *req, struct gw_route_call *c)
{
	struct gw_buf sql = {0};
	struct q q;
	const char *ent = c->route->arg ? "team_id" : "user_id";
	char in[512], out[512], model[256], key[160], hash[65], ps[24], pg[24];
	long page, size;

	if (base(req, &c->who, &q, 1) < 0)
		return GW_OK;
	if (c->route->arg) {
		if (list_param(req, "team_ids", in, sizeof(in)) < 0)
			return bad(
			    req, 400, "team_ids", "'team_ids' is too long");
		if (list_param(req, "exclude_team_ids", out, sizeof(out)) < 0)
			return bad(req, 400, "exclude_team_ids",
			    "'exclude_team_ids' is too long");
	} else {
		char user[256];

		if (gw_req_query_opt(req, "user_id", user, sizeof(user)) !=
		    GW_OK)
			return bad(
			    req, 400, "user_id", "'user_id' is malformed");
		if (user[0] && q.user[0] && strcmp(user, q.user) != 0)
			return bad(req, 403, "user_id",
			    "Only an admin can read another user's activity");
		if (user[0] && q.key[0] &&
		    (c->who.rec->user_id == NULL ||
		        strcmp(user, c->who.rec->user_id) != 0))
			return bad(req, 403, "user_id",
			    "A key can only read its own activity");
		snprintf(in, sizeof(in), "%s", "");
		if (user[0] && list_param(req, "user_id", in, sizeof(in)) < 0)
			return bad(
			    req, 400, "user_id", "'user_id' is too long");
		out[0] = '\0';
	}
	if (gw_req_query_opt(req, "model", model, sizeof(model)) != GW_OK)
		return bad(req, 400, "model", "'model' is malformed");
	if (gw_req_query_opt(req, "api_key", key, sizeof(key)) != GW_OK ||
	    (key[0] && gw_keystore_hash_of(key, hash) != GW_OK))
		return bad(req, 400, "api_key",
		    "'api_key' must be a key (sk-...) or its hash");
	if (int_param(req, "page", 1, 1000000, 1, &page) < 0)
		return bad(req, 400, "page", "'page' must be an integer >= 1");
	if (int_param(req, "page_size", 1, 1000, 10, &size) < 0)
		return bad(req, 400, "page_size",
		    "'page_size' must be an integer between 1 and 1000");
	snprintf(ps, sizeof(ps), "%ld", size);
	snprintf(pg, sizeof(pg), "%ld", page);
	param(&q, in);
	param(&q, out);
	param(&q, model);
	q.p[q.n++] = key[0] ? hash : NULL;
	q.p[q.n++] = ps;
	q.p[q.n++] = pg;
	gw_buf_printf(&sql, daily_sql, ent, ent, ent);
	answer(req, sql.p, &q);
	gw_buf_fini(&sql);
	return GW_OK;
}

/* [{"individual_request_tag", "log_count", "total_spend"}], by spend. */
static const char tags_sql[] =
    "SELECT coalesce(json_agg(json_build_object('individual_request_tag', "
    "tag, 'log_count', n, 'total_spend', s) ORDER BY s DESC, tag), "
    "'[]')::text FROM (SELECT tag, sum(api_requests) AS n, sum(spend) AS s "
    "FROM spend_daily_tags WHERE " FILT
    " AND ($5::text[] IS NULL OR tag = ANY($5)) GROUP BY tag) x";

enum gw_status
gw_spend_report_tags(struct gw_req *req, struct gw_route_call *c)
{
	struct q q;
	char tags[512];

	if (base(req, &c->who, &q, 0) < 0)
		return GW_OK;
	if (list_param(req, "tags", tags, sizeof(tags)) < 0)
		return bad(req, 400, "tags", "'tags' is too long");
	param(&q, tags);
	return answer(req, tags_sql, &q);
}

static const char *const top_sql[] = {
    /* /global/spend/keys: LiteLLM's [{api_key, total_spend, ...}]. */
    "SELECT coalesce(json_agg(json_build_object('api_key', x.api_key, "
    "'total_spend', x.s, 'key_alias', k.key_alias, 'key_name', "
    "k.key_name) ORDER BY x.s DESC, x.api_key), '[]')::text FROM (SELECT "
    "api_key, sum(spend) AS s FROM spend_daily WHERE " FILT
    " GROUP BY api_key ORDER BY s DESC, api_key LIMIT $5::bigint) x LEFT "
    "JOIN keys k ON k.token = x.api_key",
    /* /global/spend/models: [{model, total_spend}]. */
    "SELECT coalesce(json_agg(json_build_object('model', model, "
    "'total_spend', s) ORDER BY s DESC, model), '[]')::text FROM (SELECT "
    "model, sum(spend) AS s FROM spend_daily WHERE " FILT
    " GROUP BY model ORDER BY s DESC, model LIMIT $5::bigint) x",
    /*
     * /global/spend/teams: {daily_spend: [{date, <team>: spend}], teams,
     * total_spend_per_team: [{team_id, total_spend}]}; a team by its
     * alias, else its id ("" for rows without a team).
     */
    "WITH a AS (SELECT day, team_id, sum(spend) AS s FROM spend_daily "
    "WHERE " FILT " GROUP BY 1, 2), "
    "f AS (SELECT day, coalesce(t.team_alias, a.team_id) AS team, a.s FROM "
    "a LEFT JOIN teams t ON t.team_id = a.team_id) "
    "SELECT json_build_object('daily_spend', coalesce((SELECT "
    "json_agg(o ORDER BY day) FROM (SELECT day, jsonb_build_object("
    "'date', day) || jsonb_object_agg(team, s) AS o FROM f GROUP BY day) "
    "x), '[]'), 'teams', coalesce((SELECT json_agg(DISTINCT team) FROM "
    "f), '[]'), 'total_spend_per_team', coalesce((SELECT json_agg("
    "json_build_object('team_id', team, 'total_spend', s) ORDER BY s "
    "DESC, team) FROM (SELECT team, sum(s) AS s FROM f GROUP BY team) y), "
    "'[]'))::text",
};

enum gw_status
gw_spend_report_top(struct gw_req *req, struct gw_route_call *c)
{
	struct q q;
	char lim[24];
	long limit;

	if (base(req, &c->who, &q, 0) < 0)
		return GW_OK;
	if (int_param(req, "limit", 1, 100000, 100, &limit) < 0)
		return bad(req, 400, "limit",
		    "'limit' must be an integer between 1 and 100000");
	snprintf(lim, sizeof(lim), "%ld", limit);
	param(&q, lim);
	if (c->route->arg == 2)
		q.n = NBASE;
	return answer(req, top_sql[c->route->arg], &q);
}
