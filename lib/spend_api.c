/* spend_api.c: the spend family's routes, and GET /spend/logs. */
#include "spend_api.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "db.h"
#include "json_util.h"
#include "keystore.h"
#include "log.h"
#include "req.h"
#include "route.h"
#include "spend_report.h"
#include "util.h"

/* The largest ?offset= taken: far past any table, far from LONG_MAX. */
#define GW_SPEND_OFFSET_MAX 1000000000L

static enum gw_status
bad(struct gw_req *req, int status, const char *type, const char *param,
    const char *msg)
{
	gw_reply_error_ex(req, status, type, param, msg);
	return GW_OK;
}

static const char where_sql[] =
    " FROM spend_logs s WHERE ($1::date IS NULL OR s.start_time >= "
    "$1::date::timestamptz) AND ($2::date IS NULL OR s.start_time < "
    "($2::date + 1)::timestamptz) AND ($3::text IS NULL OR s.user_id = $3) "
    "AND ($4::text IS NULL OR s.api_key = $4) AND ($5::text IS NULL OR "
    "(s.request_id = $5 OR s.response_id = $5)) AND ($6::text IS NULL OR "
    "s.model = $6 OR "
    "s.actual_model = $6) AND ($7::text IS NULL OR s.session_id = $7)";

/*
 * LiteLLM's SpendLogs names beside ours: its call_type values, "user"
 * (the key's user), end_user, and the metadata its UI reads.
 */
#define LITELLM_FIELDS                                                         \
	"jsonb_build_object('startTime', s.start_time, 'endTime', "            \
	"s.end_time, 'completionStartTime', s.completion_start_time, "         \
	"'user', coalesce(s.user_id, ''), 'end_user', "                        \
	"coalesce(s.metadata->>'end_user', ''), 'call_type', CASE "            \
	"s.call_type WHEN 'chat' THEN 'acompletion' WHEN 'completion' THEN "   \
	"'atext_completion' WHEN 'embedding' THEN 'aembedding' ELSE "          \
	"s.call_type END, 'metadata', s.metadata || jsonb_build_object("       \
	"'user_api_key_alias', s.key_alias, 'user_api_key_team_id', "          \
	"s.team_id, 'user_api_key_user_id', s.user_id, 'tags', "               \
	"s.request_tags))"

static enum gw_status
logs(struct gw_req *req, const struct gw_principal *who)
{
	struct gw_db *db = req->ctx->db;
	struct gw_db_rows *rows = NULL, *cnt = NULL;
	struct gw_buf body = {0}, sql = {0};
	char start[32], end[32], user[256], key[160], rid[128], model[256];
	char lim[32], off[32], hash[65], err[512], *e, session[256];
	const char *p[9];
	long limit, offset = 0, total;
	int i, paged;
	enum gw_status st = GW_OK;

	if (gw_req_query_opt(req, "start_date", start, sizeof(start)) !=
	        GW_OK ||
	    (start[0] && !gw_spend_report_valid_date(start)))
		return bad(req, 400, "invalid_request_error", "start_date",
		    "'start_date' must be a date YYYY-MM-DD (UTC)");
	if (gw_req_query_opt(req, "end_date", end, sizeof(end)) != GW_OK ||
	    (end[0] && !gw_spend_report_valid_date(end)))
		return bad(req, 400, "invalid_request_error", "end_date",
		    "'end_date' must be a date YYYY-MM-DD (UTC)");
	if (start[0] && end[0] && strcmp(start, end) > 0)
		return bad(req, 400, "invalid_request_error", "end_date",
		    "'end_date' is before 'start_date'");
	if (gw_req_query_opt(req, "user_id", user, sizeof(user)) != GW_OK)
		return bad(req, 400, "invalid_request_error", "user_id",
		    "'user_id' is malformed");
	if (gw_req_query_opt(req, "api_key", key, sizeof(key)) != GW_OK ||
	    (key[0] && gw_keystore_hash_of(key, hash) != GW_OK))
		return bad(req, 400, "invalid_request_error", "api_key",
		    "'api_key' must be a key (sk-...) or its hash");
	if (gw_req_query_opt(req, "request_id", rid, sizeof(rid)) != GW_OK)
		return bad(req, 400, "invalid_request_error", "request_id",
		    "'request_id' is malformed");
	if (gw_req_query_opt(req, "model", model, sizeof(model)) != GW_OK)
		return bad(req, 400, "invalid_request_error", "model",
		    "'model' is malformed");
	if (gw_req_query_opt(req, "session_id", session, sizeof(session)) !=
	    GW_OK)
		return bad(req, 400, "invalid_request_error", "session_id",
		    "'session_id' is malformed");
	/*
	 * No limit: the whole range, up to logs_max_limit rows; beyond that
	 * a 400 says so (never a silently cut list).
	 */
	limit = req->cfg->spend_logs_max_limit;
	if (gw_req_query_opt(req, "limit", lim, sizeof(lim)) != GW_OK ||
	    (lim[0] && ((limit = strtol(lim, &e, 10)) < 1 || *e != '\0' ||
	                   limit > req->cfg->spend_logs_max_limit))) {
		snprintf(err, sizeof(err),
		    "'limit' must be an integer between 1 and %d",
		    req->cfg->spend_logs_max_limit);
		return bad(req, 400, "invalid_request_error", "limit", err);
	}
	/* Bounded so that offset + limit cannot overflow (UBSan caught it). */
	errno = 0;
	if (gw_req_query_opt(req, "offset", off, sizeof(off)) != GW_OK ||
	    (off[0] && ((offset = strtol(off, &e, 10)) < 0 || *e != '\0' ||
	                   errno != 0 || offset > GW_SPEND_OFFSET_MAX)))
		return bad(req, 400, "invalid_request_error", "offset",
		    "'offset' must be an integer from 0 to 1000000000");
	/* Who may see what. */
	if (!gw_auth_can_read_all(who)) {
		const char *own_user = who->rec ? who->rec->user_id : NULL;

		if (user[0] &&
		    (own_user == NULL || strcmp(user, own_user) != 0))
			return bad(req, 403, "permission_error", "user_id",
			    "Only an admin can filter by another user_id");
		if (who->role == GW_ROLE_KEY) {
			if (key[0] && strcmp(hash, who->rec->token) != 0)
				return bad(req, 403, "permission_error",
				    "api_key",
				    "A key can only read its own spend logs");
			snprintf(hash, sizeof(hash), "%s", who->rec->token);
			key[0] = 'k';
		} else if (own_user != NULL) {
			snprintf(user, sizeof(user), "%s", own_user);
		} else {
			return bad(req, 403, "permission_error", NULL,
			    "This caller has no spend logs");
		}
	}
	paged = lim[0] != '\0';
	snprintf(lim, sizeof(lim), "%ld", limit);
	snprintf(off, sizeof(off), "%ld", offset);
	p[0] = start[0] ? start : NULL;
	p[1] = end[0] ? end : NULL;
	p[2] = user[0] ? user : NULL;
	p[3] = key[0] ? hash : NULL;
	p[4] = rid[0] ? rid : NULL;
	p[5] = model[0] ? model : NULL;
	p[6] = session[0] ? session : NULL;
	p[7] = lim;
	p[8] = off;
	gw_buf_printf(&sql, "SELECT count(*)%s", where_sql);
	if ((st = gw_db_exec(db, sql.p, 7, p, 1, &cnt, err, sizeof(err))) !=
	    GW_OK)
		goto dberr;
	gw_buf_reset(&sql, 0);
	gw_buf_printf(&sql,
	    "SELECT (to_jsonb(s) || jsonb_build_object('tokens', "
	    "s.total_tokens, 'cost', s.spend, 'timestamp', s.start_time) "
	    "|| " LITELLM_FIELDS ")::text"
	    "%s ORDER BY s.start_time DESC, s.request_id LIMIT $8::bigint "
	    "OFFSET $9::bigint",
	    where_sql);
	if ((st = gw_db_exec(db, sql.p, 9, p, 1, &rows, err, sizeof(err))) !=
	    GW_OK)
		goto dberr;
	total = atol(gw_db_rows_get(cnt, 0, 0));
	if (!paged && total > limit) {
		snprintf(err, sizeof(err),
		    "%ld spend logs match, more than logs_max_limit (%ld): "
		    "page with limit and offset, or narrow the dates",
		    total, limit);
		bad(req, 400, "invalid_request_error", "limit", err);
		goto out;
	}
	gw_buf_puts(&body, "[");
	for (i = 0; i < gw_db_rows_count(rows); i++) {
		if (i)
			gw_buf_puts(&body, ",");
		gw_buf_puts(&body, gw_db_rows_get(rows, i, 0));
	}
	gw_buf_puts(&body, "]");
	gw_req_add_header(req, "X-Total-Count", "%ld", total);
	gw_req_add_header(req, "X-Limit", "%ld", limit);
	gw_req_add_header(req, "X-Offset", "%ld", offset);
	if (offset + limit < total)
		gw_req_add_header(req, "Link",
		    "<%s?%s%soffset=%ld>; rel=\"next\"", req->path, req->query,
		    req->query[0] ? "&" : "", offset + limit);
	gw_reply(req, 200, "application/json", body.p, body.len);
	goto out;
dberr:
	gw_log_err(req->id, "spend", "spend logs query failed: %s", err);
	gw_reply_error_ex(
	    req, 503, "no_db_connection", NULL, "Database unavailable");
	st = GW_OK;
out:
	gw_buf_fini(&body);
	gw_buf_fini(&sql);
	gw_db_rows_free(rows);
	gw_db_rows_free(cnt);
	return st;
}

static enum gw_status
spend_logs(struct gw_req *req, struct gw_route_call *c)
{
	return logs(req, &c->who);
}

static const struct gw_route routes[] = {
    {"GET", "/spend/logs", GW_ACCESS_CALLER, spend_logs, "spend_logs", 0, 0},
    {"GET", "/spend/tags", GW_ACCESS_CALLER, gw_spend_report_tags, "spend_tags",
        0, 0},
    {"GET", "/global/spend/report", GW_ACCESS_CALLER, gw_spend_report_global,
        "global_spend_report", 0, 0},
    {"GET", "/global/spend/tags", GW_ACCESS_CALLER, gw_spend_report_tags,
        "global_spend_tags", 0, 0},
    {"GET", "/global/spend/keys", GW_ACCESS_CALLER, gw_spend_report_top,
        "global_spend_keys", 0, 0},
    {"GET", "/global/spend/models", GW_ACCESS_CALLER, gw_spend_report_top,
        "global_spend_models", 1, 0},
    {"GET", "/global/spend/teams", GW_ACCESS_CALLER, gw_spend_report_top,
        "global_spend_teams", 2, 0},
    {"GET", "/user/daily/activity", GW_ACCESS_CALLER, gw_spend_report_daily,
        "user_daily_activity", 0, 0},
    {"GET", "/team/daily/activity", GW_ACCESS_CALLER, gw_spend_report_daily,
        "team_daily_activity", 1, 0},
};

static const struct gw_router router = {NULL, routes, GW_ARRAY_LEN(routes), 0};

enum gw_status
gw_spend_handle(struct gw_req *req)
{
	return gw_dispatch(req, &router);
}
