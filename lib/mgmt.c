/*
 * mgmt.c: what the key, user and team handlers share: errors, the body
 * and query, the field tables and the statements they build, SQL run.
 */
#include "mgmt.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "db.h"
#include "json_util.h"
#include "log.h"
#include "req.h"

static void vfail(struct gw_mgmt_fail *f, int status, const char *type,
    const char *param, const char *fmt, va_list ap) GW_PRINTF(5, 0);

static void
vfail(struct gw_mgmt_fail *f, int status, const char *type, const char *param,
    const char *fmt, va_list ap)
{
	f->status = status;
	f->type = type;
	snprintf(f->param, sizeof(f->param), "%s", param ? param : "");
	vsnprintf(f->msg, sizeof(f->msg), fmt, ap);
}

enum gw_status
gw_mgmt_set_fail(struct gw_mgmt_fail *f, int status, const char *type,
    const char *param, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail(f, status, type, param, fmt, ap);
	va_end(ap);
	return status == 503 ? GW_E_DB : GW_E_INVALID;
}

enum gw_status
gw_mgmt_forbidden(
    struct gw_mgmt_fail *f, const char *param, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail(f, 403, "permission_error", param, fmt, ap);
	va_end(ap);
	return GW_E_INVALID;
}

enum gw_status
gw_mgmt_invalid(struct gw_mgmt_fail *f, const char *param, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail(f, 400, "invalid_request_error", param, fmt, ap);
	va_end(ap);
	return GW_E_INVALID;
}

enum gw_status
gw_mgmt_reply_fail(struct gw_req *req, const struct gw_mgmt_fail *f)
{
	gw_reply_error_ex(
	    req, f->status, f->type, f->param[0] ? f->param : NULL, f->msg);
	return GW_OK;
}

enum gw_status
gw_mgmt_read_object(
    struct gw_req *req, json_object **out, struct gw_mgmt_fail *f)
{
	enum gw_status st;
	char msg[300];

	*out = NULL;
	if ((st = gw_req_read_body(req)) != GW_OK)
		return gw_mgmt_set_fail(f, gw_err_http_status(st),
		    gw_err_type(st), NULL, "%s", gw_err_default_message(st));
	if (req->body.len == 0 ||
	    strspn(req->body.p, " \t\r\n") == req->body.len) {
		*out = json_object_new_object();
		return GW_OK;
	}
	if (gw_json_parse(req->body.p, req->body.len, out, msg, sizeof(msg)) !=
	    GW_OK)
		return gw_mgmt_invalid(f, NULL, "%s", msg);
	if (!json_object_is_type(*out, json_type_object)) {
		json_object_put(*out);
		*out = NULL;
		return gw_mgmt_invalid(
		    f, NULL, "Request body must be a JSON object");
	}
	return GW_OK;
}

enum gw_status
gw_mgmt_query_opt(struct gw_req *req, const char *name, char *out, size_t len,
    struct gw_mgmt_fail *f)
{
	if (gw_req_query_opt(req, name, out, len) != GW_OK)
		return gw_mgmt_invalid(
		    f, name, "Query parameter '%s' is malformed", name);
	return GW_OK;
}

enum gw_status
gw_mgmt_query_int(struct gw_req *req, const char *name, long dflt, long max,
    long *out, struct gw_mgmt_fail *f)
{
	char q[32], *end;
	enum gw_status st;

	if ((st = gw_mgmt_query_opt(req, name, q, sizeof(q), f)) != GW_OK)
		return st;
	if (q[0] == '\0') {
		*out = dflt;
		return GW_OK;
	}
	*out = strtol(q, &end, 10);
	if (*end != '\0' || *out < 1 || *out > max)
		return gw_mgmt_invalid(f, name,
		    "'%s' must be an integer between 1 and %ld", name, max);
	return GW_OK;
}

/*
 * A database failure as the client's error: a duplicate or a missing
 * reference is the client's (400), the rest is logged and a 503 (the
 * database is gone) or a 500.
 */
static enum gw_status
db_fail(struct gw_req *req, const char *err, struct gw_mgmt_fail *f)
{
	const char *state = gw_db_last_sqlstate(req->ctx->db);

	if (strcmp(state, "23505") == 0 && strstr(err, "key_alias") != NULL)
		return gw_mgmt_invalid(f, "key_alias",
		    "key_alias is already in use by another key");
	if (strcmp(state, "23505") == 0)
		return gw_mgmt_invalid(f, NULL, "Already exists");
	if (strcmp(state, "23503") == 0)
		return gw_mgmt_invalid(f, "team_id",
		    "The team or user referenced does not exist, or keys still "
		    "belong to it");
	gw_log_err(req->id, "keys", "query failed: %s", err);
	if (state[0] == '\0' || strncmp(state, "08", 2) == 0)
		return gw_mgmt_set_fail(
		    f, 503, "no_db_connection", NULL, "Database unavailable");
	return gw_mgmt_set_fail(
	    f, 500, "internal_server_error", NULL, "Database error");
}

enum gw_status
gw_mgmt_run(struct gw_req *req, const char *sql, int n,
    const char *const *params, struct gw_db_rows **rows, struct gw_mgmt_fail *f)
{
	char err[512];

	if (gw_db_exec(req->ctx->db, sql, n, params, 1, rows, err,
	        sizeof(err)) == GW_OK)
		return GW_OK;
	return db_fail(req, err, f);
}

enum gw_status
gw_mgmt_begin(struct gw_req *req, struct gw_mgmt_fail *f)
{
	char err[512];

	if (gw_db_begin(req->ctx->db, err, sizeof(err)) == GW_OK)
		return GW_OK;
	return db_fail(req, err, f);
}

enum gw_status
gw_mgmt_end(struct gw_req *req, enum gw_status st, struct gw_mgmt_fail *f)
{
	char err[512];

	if (st != GW_OK) {
		gw_db_rollback(req->ctx->db);
		return st;
	}
	if (gw_db_commit(req->ctx->db, err, sizeof(err)) == GW_OK)
		return GW_OK;
	return db_fail(req, err, f);
}

void
gw_mgmt_stmt_fini(struct gw_mgmt_stmt *s)
{
	int i;

	for (i = 0; i < s->n; i++)
		free(s->owned[i]);
	gw_buf_fini(&s->cols);
	gw_buf_fini(&s->vals);
	gw_buf_fini(&s->sets);
	memset(s, 0, sizeof(*s));
}

int
gw_mgmt_stmt_param(struct gw_mgmt_stmt *s, const char *v)
{
	GW_ASSERT(s->n < GW_MGMT_MAX_PARAMS);
	s->owned[s->n] = v ? gw_xstrdup(v) : NULL;
	s->params[s->n] = s->owned[s->n];
	return ++s->n;
}

void
gw_mgmt_stmt_set(struct gw_mgmt_stmt *s, const char *column, const char *tmpl,
    const char *value)
{
	char expr[160];
	const char *q = strstr(tmpl, "$?");
	int n;

	GW_ASSERT(q != NULL);
	n = gw_mgmt_stmt_param(s, value);
	snprintf(
	    expr, sizeof(expr), "%.*s$%d%s", (int)(q - tmpl), tmpl, n, q + 2);
	if (s->cols.len) {
		gw_buf_puts(&s->cols, ", ");
		gw_buf_puts(&s->vals, ", ");
		gw_buf_puts(&s->sets, ", ");
	}
	gw_buf_puts(&s->cols, column);
	gw_buf_puts(&s->vals, expr);
	gw_buf_printf(&s->sets, "%s = %s", column, expr);
}

enum ftype {
	F_STR,             /* non-empty string or null */
	F_STRLIST,         /* array of non-empty strings, or null ({}) */
	F_BUDGET,          /* number >= 0 or null */
	F_LIMIT,           /* integer >= 0 or null */
	F_BOOL,            /* boolean */
	F_OBJECT,          /* JSON object, or null ({}) */
	F_DURATION,        /* "30d" -> expires = now() + interval, or null */
	F_BUDGET_DURATION, /* "1mo" -> also budget_reset_at */
	F_ROLE,            /* a LiteLLM user role */
	F_SPEND,           /* number >= 0: an admin resets spend to it */
};

struct field {
	const char *name; /* JSON field = column unless noted */
	enum ftype type;
	const char *column;
};

/* Models, budget and limits: keys, users and teams all have them. */
#define BUDGET_AND_LIMITS                                                      \
	{"models", F_STRLIST, "models"},                                       \
	    {"max_budget", F_BUDGET, "max_budget"},                            \
	    {"budget_duration", F_BUDGET_DURATION, "budget_duration"},         \
	    {"tpm_limit", F_LIMIT, "tpm_limit"},                               \
	    {"rpm_limit", F_LIMIT, "rpm_limit"},                               \
	    {"max_parallel_requests", F_LIMIT, "max_parallel_requests"},       \
	{                                                                      \
		"metadata", F_OBJECT, "metadata"                               \
	}

static const struct field key_fields[] = {
    {"key_alias", F_STR, "key_alias"},
    {"user_id", F_STR, "user_id"},
    {"team_id", F_STR, "team_id"},
    BUDGET_AND_LIMITS,
    {"blocked", F_BOOL, "blocked"},
    {"duration", F_DURATION, "expires"},
};

static const struct field user_fields[] = {
    {"user_alias", F_STR, "user_alias"},
    {"user_email", F_STR, "user_email"},
    {"user_role", F_ROLE, "user_role"},
    {"team_id", F_STR, "team_id"},
    BUDGET_AND_LIMITS,
};

static const struct field team_fields[] = {
    {"team_alias", F_STR, "team_alias"},
    BUDGET_AND_LIMITS,
    {"blocked", F_BOOL, "blocked"},
};

static const struct {
	const struct field *v;
	size_t n;
} tables[] = {
    [GW_MGMT_KEY] = {key_fields, GW_ARRAY_LEN(key_fields)},
    [GW_MGMT_USER] = {user_fields, GW_ARRAY_LEN(user_fields)},
    [GW_MGMT_TEAM] = {team_fields, GW_ARRAY_LEN(team_fields)},
};

static const char *const roles[] = {"proxy_admin", "proxy_admin_viewer",
    "internal_user", "internal_user_viewer", "team", "customer"};

/* "'param' must be what" */
static enum gw_status
bad(struct gw_mgmt_fail *f, const char *param, const char *what)
{
	return gw_mgmt_invalid(f, param, "'%s' must be %s", param, what);
}

enum gw_status
gw_mgmt_duration(const char *in, char *out, size_t outlen)
{
	static const struct {
		const char *suffix, *unit;
	} units[] = {{"mo", "months"}, {"s", "seconds"}, {"m", "minutes"},
	    {"h", "hours"}, {"d", "days"}, {"w", "weeks"}};
	const char *p = in;
	size_t i;
	long n;

	while (isdigit((unsigned char)*p))
		p++;
	if (p == in || p - in > 6)
		return GW_E_INVALID;
	n = strtol(in, NULL, 10);
	if (n <= 0)
		return GW_E_INVALID;
	for (i = 0; i < GW_ARRAY_LEN(units); i++) {
		if (strcmp(p, units[i].suffix) == 0) {
			snprintf(out, outlen, "%ld %s", n, units[i].unit);
			return GW_OK;
		}
	}
	return GW_E_INVALID;
}

/* A role from the list, or NULL. */
static const char *
role_of(json_object *v)
{
	size_t j;

	if (!json_object_is_type(v, json_type_string))
		return NULL;
	for (j = 0; j < GW_ARRAY_LEN(roles); j++)
		if (strcmp(json_object_get_string(v), roles[j]) == 0)
			return roles[j];
	return NULL;
}

/* One field's value (v; NULL when JSON null) into s. */
static enum gw_status
take_field(const struct field *fd, json_object *v, struct gw_mgmt_stmt *s,
    struct gw_mgmt_fail *f)
{
	char num[64], iv[64];
	const char *str;
	size_t j;

	switch (fd->type) {
	case F_STR:
		if (v != NULL && !json_object_is_type(v, json_type_string))
			return bad(f, fd->name, "a string");
		if (v != NULL && json_object_get_string_len(v) == 0)
			return bad(f, fd->name, "a non-empty string");
		gw_mgmt_stmt_set(
		    s, fd->column, "$?", v ? json_object_get_string(v) : NULL);
		break;
	case F_ROLE:
		if (v == NULL || (str = role_of(v)) == NULL)
			return bad(f, fd->name,
			    "one of proxy_admin, proxy_admin_viewer, "
			    "internal_user, internal_user_viewer, team, "
			    "customer");
		gw_mgmt_stmt_set(s, fd->column, "$?", str);
		break;
	case F_STRLIST:
		if (v == NULL) {
			gw_mgmt_stmt_set(
			    s, fd->column, "COALESCE($?::text[], '{}')", NULL);
			break;
		}
		if (!json_object_is_type(v, json_type_array))
			return bad(f, fd->name, "an array of strings");
		for (j = 0; j < json_object_array_length(v); j++) {
			json_object *it = json_object_array_get_idx(v, j);

			if (!json_object_is_type(it, json_type_string) ||
			    json_object_get_string_len(it) == 0)
				return bad(f, fd->name,
				    "an array of non-empty strings");
		}
		gw_mgmt_stmt_set(s, fd->column,
		    "ARRAY(SELECT json_array_elements_text($?::json))",
		    gw_json_str(v, NULL));
		break;
	case F_SPEND:
	case F_BUDGET:
	case F_LIMIT:
		if (v == NULL && fd->type == F_SPEND)
			return bad(f, fd->name, "a number >= 0");
		if (v == NULL) {
			gw_mgmt_stmt_set(s, fd->column, "$?", NULL);
			break;
		}
		if (fd->type == F_LIMIT &&
		    !json_object_is_type(v, json_type_int))
			return bad(f, fd->name, "an integer >= 0");
		if (!json_object_is_type(v, json_type_int) &&
		    !json_object_is_type(v, json_type_double))
			return bad(f, fd->name, "a number >= 0");
		if (json_object_get_double(v) < 0)
			return gw_mgmt_invalid(
			    f, fd->name, "'%s' cannot be negative", fd->name);
		if (fd->type == F_LIMIT)
			snprintf(num, sizeof(num), "%lld",
			    (long long)json_object_get_int64(v));
		else
			snprintf(num, sizeof(num), "%.17g",
			    json_object_get_double(v));
		gw_mgmt_stmt_set(s, fd->column,
		    fd->type == F_LIMIT ? "$?::bigint" : "$?::float8", num);
		break;
	case F_BOOL:
		if (v == NULL || !json_object_is_type(v, json_type_boolean))
			return bad(f, fd->name, "true or false");
		gw_mgmt_stmt_set(s, fd->column, "$?::boolean",
		    json_object_get_boolean(v) ? "true" : "false");
		break;
	case F_OBJECT:
		if (v == NULL) {
			gw_mgmt_stmt_set(
			    s, fd->column, "COALESCE($?::jsonb, '{}')", NULL);
			break;
		}
		if (!json_object_is_type(v, json_type_object))
			return bad(f, fd->name, "a JSON object");
		gw_mgmt_stmt_set(
		    s, fd->column, "$?::jsonb", gw_json_str(v, NULL));
		break;
	case F_DURATION:
	case F_BUDGET_DURATION:
		if (v == NULL) {
			gw_mgmt_stmt_set(s, fd->column, "$?", NULL);
			if (fd->type == F_BUDGET_DURATION)
				gw_mgmt_stmt_set(
				    s, "budget_reset_at", "$?", NULL);
			break;
		}
		if (!json_object_is_type(v, json_type_string) ||
		    gw_mgmt_duration(
		        json_object_get_string(v), iv, sizeof(iv)) != GW_OK)
			return bad(f, fd->name,
			    "a number and a unit (s, m, h, d, w, mo), "
			    "e.g. '30s', '15m', '1h', '30d', '1mo'");
		if (fd->type == F_DURATION) {
			gw_mgmt_stmt_set(
			    s, fd->column, "now() + $?::interval", iv);
		} else {
			gw_mgmt_stmt_set(
			    s, fd->column, "$?", json_object_get_string(v));
			gw_mgmt_stmt_set(
			    s, "budget_reset_at", "now() + $?::interval", iv);
		}
		break;
	}
	return GW_OK;
}

enum gw_status
gw_mgmt_take_fields(json_object *body, enum gw_mgmt_entity entity,
    struct gw_mgmt_stmt *s, struct gw_mgmt_fail *f)
{
	const struct field *fields;
	enum gw_status st;
	json_object *v;
	size_t i;

	GW_ASSERT((size_t)entity < GW_ARRAY_LEN(tables));
	fields = tables[entity].v;
	for (i = 0; i < tables[entity].n; i++) {
		if (!json_object_object_get_ex(body, fields[i].name, &v))
			continue;
		if (v != NULL && json_object_is_type(v, json_type_null))
			v = NULL;
		if ((st = take_field(&fields[i], v, s, f)) != GW_OK)
			return st;
	}
	return GW_OK;
}

enum gw_status
gw_mgmt_take_spend(
    json_object *body, struct gw_mgmt_stmt *s, struct gw_mgmt_fail *f)
{
	static const struct field spend = {"spend", F_SPEND, "spend"};
	json_object *v;

	if (!json_object_object_get_ex(body, "spend", &v))
		return GW_OK;
	if (v != NULL && json_object_is_type(v, json_type_null))
		v = NULL;
	return take_field(&spend, v, s, f);
}

const char *
gw_mgmt_caller_name(const struct gw_principal *who)
{
	if (who->role == GW_ROLE_MASTER)
		return "master_key";
	if (who->rec != NULL && who->rec->user_id != NULL)
		return who->rec->user_id;
	return who->role == GW_ROLE_JWT ? "jwt" : "key";
}

enum gw_status
gw_mgmt_check_id(const char *param, const char *id, struct gw_mgmt_fail *f)
{
	if (strlen(id) <= GW_MGMT_ID_MAX)
		return GW_OK;
	return gw_mgmt_invalid(f, param,
	    "'%s' must be at most %d bytes, got %zu", param, GW_MGMT_ID_MAX,
	    strlen(id));
}

enum gw_status
gw_mgmt_ensure_user(
    struct gw_req *req, const char *user_id, struct gw_mgmt_fail *f)
{
	const char *p[1] = {user_id};

	if (gw_mgmt_check_id("user_id", user_id, f) != GW_OK)
		return GW_E_INVALID;
	return gw_mgmt_run(req,
	    "INSERT INTO users (user_id, user_role) VALUES ($1, "
	    "'internal_user_viewer') ON CONFLICT DO NOTHING",
	    1, p, NULL, f);
}

const char *
gw_mgmt_caller_user(const struct gw_principal *who)
{
	return who->rec != NULL ? who->rec->user_id : NULL;
}

enum gw_status
gw_mgmt_require_team(
    struct gw_req *req, const char *team_id, struct gw_mgmt_fail *f)
{
	struct gw_db_rows *rows = NULL;
	const char *p[1] = {team_id};
	enum gw_status st;

	st = gw_mgmt_run(
	    req, "SELECT 1 FROM teams WHERE team_id = $1", 1, p, &rows, f);
	if (st == GW_OK && gw_db_rows_count(rows) == 0)
		st = gw_mgmt_invalid(f, "team_id",
		    "Team '%.100s' does not exist; create it with /team/new",
		    team_id);
	gw_db_rows_free(rows);
	return st;
}

enum gw_status
gw_mgmt_record_reset(struct gw_req *req, enum gw_mgmt_entity entity,
    const char *id, struct gw_mgmt_fail *f)
{
	static const char *const sql[] = {
	    [GW_MGMT_KEY] = "INSERT INTO budget_resets (entity_type, "
	                    "entity_id, spend_before, next_reset_at) SELECT "
	                    "'key', token, spend, budget_reset_at FROM keys "
	                    "WHERE token = $1",
	    [GW_MGMT_USER] = "INSERT INTO budget_resets (entity_type, "
	                     "entity_id, spend_before, next_reset_at) SELECT "
	                     "'user', user_id, spend, budget_reset_at FROM "
	                     "users WHERE user_id = $1",
	    [GW_MGMT_TEAM] = "INSERT INTO budget_resets (entity_type, "
	                     "entity_id, spend_before, next_reset_at) SELECT "
	                     "'team', team_id, spend, budget_reset_at FROM "
	                     "teams WHERE team_id = $1",
	};
	const char *p[1] = {id};

	GW_ASSERT((size_t)entity < GW_ARRAY_LEN(sql));
	return gw_mgmt_run(req, sql[entity], 1, p, NULL, f);
}

json_object *
gw_mgmt_row_json(const struct gw_db_rows *rows, int row, int col)
{
	const char *s = gw_db_rows_get(rows, row, col);
	json_object *o = NULL;
	char msg[64];

	if (s == NULL ||
	    gw_json_parse(s, strlen(s), &o, msg, sizeof(msg)) != GW_OK)
		return json_object_new_object();
	return o;
}

json_object *
gw_mgmt_rows_json(const struct gw_db_rows *rows, int col)
{
	json_object *a = json_object_new_array();
	int i;

	for (i = 0; i < gw_db_rows_count(rows); i++)
		json_object_array_add(a, gw_mgmt_row_json(rows, i, col));
	return a;
}

json_object *
gw_mgmt_rows_strings(const struct gw_db_rows *rows, int col)
{
	json_object *a = json_object_new_array();
	int i;

	for (i = 0; i < gw_db_rows_count(rows); i++)
		json_object_array_add(
		    a, json_object_new_string(gw_db_rows_get(rows, i, col)));
	return a;
}

json_object *
gw_mgmt_info_new(const char *id_name, const char *id, const char *const *top,
    size_t ntop, const char *info_name, json_object *info)
{
	json_object *out = json_object_new_object(), *v;
	size_t i;

	json_object_object_add(out, id_name, json_object_new_string(id));
	for (i = 0; i < ntop; i++)
		if (json_object_object_get_ex(info, top[i], &v))
			json_object_object_add(out, top[i], json_object_get(v));
	json_object_object_add(out, info_name, json_object_get(info));
	return out;
}
