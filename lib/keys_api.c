/* keys_api.c: key, user and team management over PostgreSQL. */
#include "keys_api.h"

#include <ctype.h>
#include <stdarg.h>
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
#include "sha256.h"
#include "util.h"

#define MAX_PARAMS 40
#define LIST_MAX 1000

/* The JSON of one key row as every answer shows it (no raw key, ever). */
#define KEY_JSON "(to_jsonb(k))::text"

enum ftype {
	F_STR,             /* string or null */
	F_STRLIST,         /* array of strings */
	F_BUDGET,          /* number >= 0 or null */
	F_LIMIT,           /* integer >= 0 or null */
	F_BOOL,            /* boolean */
	F_OBJECT,          /* JSON object */
	F_DURATION,        /* "30d" -> expires = now() + interval, or null */
	F_BUDGET_DURATION, /* "1mo" -> also budget_reset_at */
	F_ROLE,            /* a LiteLLM user role */
};

struct field {
	const char *name; /* JSON field = column unless noted */
	enum ftype type;
	const char *column;
};

static const struct field key_fields[] = {
    {"key_alias", F_STR, "key_alias"},
    {"user_id", F_STR, "user_id"},
    {"team_id", F_STR, "team_id"},
    {"models", F_STRLIST, "models"},
    {"max_budget", F_BUDGET, "max_budget"},
    {"budget_duration", F_BUDGET_DURATION, "budget_duration"},
    {"tpm_limit", F_LIMIT, "tpm_limit"},
    {"rpm_limit", F_LIMIT, "rpm_limit"},
    {"max_parallel_requests", F_LIMIT, "max_parallel_requests"},
    {"metadata", F_OBJECT, "metadata"},
    {"blocked", F_BOOL, "blocked"},
    {"duration", F_DURATION, "expires"},
};

static const struct field user_fields[] = {
    {"user_alias", F_STR, "user_alias"},
    {"user_email", F_STR, "user_email"},
    {"user_role", F_ROLE, "user_role"},
    {"team_id", F_STR, "team_id"},
    {"models", F_STRLIST, "models"},
    {"max_budget", F_BUDGET, "max_budget"},
    {"budget_duration", F_BUDGET_DURATION, "budget_duration"},
    {"tpm_limit", F_LIMIT, "tpm_limit"},
    {"rpm_limit", F_LIMIT, "rpm_limit"},
    {"max_parallel_requests", F_LIMIT, "max_parallel_requests"},
    {"metadata", F_OBJECT, "metadata"},
};

static const struct field team_fields[] = {
    {"team_alias", F_STR, "team_alias"},
    {"models", F_STRLIST, "models"},
    {"max_budget", F_BUDGET, "max_budget"},
    {"budget_duration", F_BUDGET_DURATION, "budget_duration"},
    {"tpm_limit", F_LIMIT, "tpm_limit"},
    {"rpm_limit", F_LIMIT, "rpm_limit"},
    {"max_parallel_requests", F_LIMIT, "max_parallel_requests"},
    {"metadata", F_OBJECT, "metadata"},
    {"blocked", F_BOOL, "blocked"},
};

static const char *const roles[] = {"proxy_admin", "proxy_admin_viewer",
    "internal_user", "internal_user_viewer", "team", "customer"};

/* A statement under construction: SQL text and its text parameters. */
struct stmt {
	struct gw_buf cols; /* "a, b" for INSERT */
	struct gw_buf vals; /* "$1, now() + $2::interval" */
	struct gw_buf sets; /* "a = $1, b = $2" for UPDATE */
	const char *params[MAX_PARAMS];
	char *owned[MAX_PARAMS];
	int n;
};

/* An error for the client: status, type, param and message. */
struct fail {
	int status;
	const char *type;
	char param[64];
	char msg[400];
};

static void
stmt_fini(struct stmt *s)
{
	int i;

	for (i = 0; i < s->n; i++)
		free(s->owned[i]);
	gw_buf_fini(&s->cols);
	gw_buf_fini(&s->vals);
	gw_buf_fini(&s->sets);
}

/* Add a parameter (copied; NULL is SQL NULL); returns its number. */
static int
stmt_param(struct stmt *s, const char *v)
{
	GW_ASSERT(s->n < MAX_PARAMS);
	s->owned[s->n] = v ? gw_xstrdup(v) : NULL;
	s->params[s->n] = s->owned[s->n];
	return ++s->n;
}

/* column = expr, where "$?" in expr stands for the parameter's number. */
static void
stmt_set(
    struct stmt *s, const char *column, const char *tmpl, const char *value)
{
	char expr[160];
	const char *q = strstr(tmpl, "$?");
	int n = stmt_param(s, value);

	GW_ASSERT(q != NULL);
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

static enum gw_status GW_PRINTF(5, 6) set_fail(struct fail *f, int status,
    const char *type, const char *param, const char *fmt, ...)
{
	va_list ap;

	f->status = status;
	f->type = type;
	snprintf(f->param, sizeof(f->param), "%s", param ? param : "");
	va_start(ap, fmt);
	vsnprintf(f->msg, sizeof(f->msg), fmt, ap);
	va_end(ap);
	return status == 503 ? GW_E_DB : GW_E_INVALID;
}

/* "'param' must be what" */
static enum gw_status
bad(struct fail *f, const char *param, const char *what)
{
	return set_fail(f, 400, "invalid_request_error", param,
	    "'%s' must be %s", param, what);
}

enum gw_status
gw_keys_duration(const char *in, char *out, size_t outlen)
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
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(p, units[i].suffix) == 0) {
			snprintf(out, outlen, "%ld %s", n, units[i].unit);
			return GW_OK;
		}
	}
	return GW_E_INVALID;
}

/*
 * Check every known field present in body and add it to s. Fields that
 * are not in the table are ignored (LiteLLM scripts send many).
 */
static enum gw_status
take_fields(json_object *body, const struct field *fields, size_t nfields,
    struct stmt *s, struct fail *f)
{
	char num[64], iv[64];
	json_object *v, *it;
	const char *str;
	size_t i, j;

	for (i = 0; i < nfields; i++) {
		const struct field *fd = &fields[i];
		int null;

		if (!json_object_object_get_ex(body, fd->name, &v))
			continue;
		null = v == NULL || json_object_is_type(v, json_type_null);
		switch (fd->type) {
		case F_STR:
			if (!null && !json_object_is_type(v, json_type_string))
				return bad(f, fd->name, "a string");
			if (!null && json_object_get_string_len(v) == 0)
				return bad(f, fd->name, "a non-empty string");
			stmt_set(s, fd->column, "$?",
			    null ? NULL : json_object_get_string(v));
			break;
		case F_ROLE:
			str = null ? NULL : json_object_get_string(v);
			for (j = 0; str != NULL &&
			            j < sizeof(roles) / sizeof(roles[0]);
			     j++)
				if (json_object_is_type(v, json_type_string) &&
				    strcmp(str, roles[j]) == 0)
					break;
			if (str == NULL ||
			    j == sizeof(roles) / sizeof(roles[0]))
				return bad(f, fd->name,
				    "one of proxy_admin, proxy_admin_viewer, "
				    "internal_user, internal_user_viewer, "
				    "team, "
				    "customer");
			stmt_set(s, fd->column, "$?", str);
			break;
		case F_STRLIST:
			if (null) {
				stmt_set(s, fd->column,
				    "COALESCE($?::text[], '{}')", NULL);
				break;
			}
			if (!json_object_is_type(v, json_type_array))
				return bad(f, fd->name, "an array of strings");
			for (j = 0; j < json_object_array_length(v); j++) {
				it = json_object_array_get_idx(v, j);
				if (!json_object_is_type(
				        it, json_type_string) ||
				    json_object_get_string_len(it) == 0)
					return bad(f, fd->name,
					    "an array of non-empty strings");
			}
			stmt_set(s, fd->column,
			    "ARRAY(SELECT json_array_elements_text($?::json))",
			    gw_json_str(v, NULL));
			break;
		case F_BUDGET:
		case F_LIMIT:
			if (null) {
				stmt_set(s, fd->column, "$?", NULL);
				break;
			}
			if (fd->type == F_LIMIT &&
			    !json_object_is_type(v, json_type_int))
				return bad(f, fd->name, "an integer >= 0");
			if (!json_object_is_type(v, json_type_int) &&
			    !json_object_is_type(v, json_type_double))
				return bad(f, fd->name, "a number >= 0");
			if (json_object_get_double(v) < 0)
				return set_fail(f, 400, "invalid_request_error",
				    fd->name, "'%s' cannot be negative",
				    fd->name);
			if (fd->type == F_LIMIT)
				snprintf(num, sizeof(num), "%lld",
				    (long long)json_object_get_int64(v));
			else
				snprintf(num, sizeof(num), "%.17g",
				    json_object_get_double(v));
			stmt_set(s, fd->column,
			    fd->type == F_LIMIT ? "$?::bigint" : "$?::float8",
			    num);
			break;
		case F_BOOL:
			if (!json_object_is_type(v, json_type_boolean))
				return bad(f, fd->name, "true or false");
			stmt_set(s, fd->column, "$?::boolean",
			    json_object_get_boolean(v) ? "true" : "false");
			break;
		case F_OBJECT:
			if (null) {
				stmt_set(s, fd->column,
				    "COALESCE($?::jsonb, '{}')", NULL);
				break;
			}
			if (!json_object_is_type(v, json_type_object))
				return bad(f, fd->name, "a JSON object");
			stmt_set(
			    s, fd->column, "$?::jsonb", gw_json_str(v, NULL));
			break;
		case F_DURATION:
		case F_BUDGET_DURATION:
			if (null) {
				stmt_set(s, fd->column, "$?", NULL);
				if (fd->type == F_BUDGET_DURATION)
					stmt_set(
					    s, "budget_reset_at", "$?", NULL);
				break;
			}
			if (!json_object_is_type(v, json_type_string) ||
			    gw_keys_duration(json_object_get_string(v), iv,
			        sizeof(iv)) != GW_OK)
				return bad(f, fd->name,
				    "a number and a unit (s, m, h, d, w, mo), "
				    "e.g. '30s', '15m', '1h', '30d', '1mo'");
			if (fd->type == F_DURATION) {
				stmt_set(
				    s, fd->column, "now() + $?::interval", iv);
			} else {
				stmt_set(s, fd->column, "$?",
				    json_object_get_string(v));
				stmt_set(s, "budget_reset_at",
				    "now() + $?::interval", iv);
			}
			break;
		}
	}
	return GW_OK;
}

/*
 * A database failure as the client's error: a 503 (or a caller-chosen
 * 400) in f, logged unless it is the client's.
 */
static enum gw_status
db_fail(struct gw_req *req, const char *err, struct fail *f)
{
	const char *state = gw_db_last_sqlstate(req->ctx->db);

	if (strcmp(state, "23505") == 0 && strstr(err, "key_alias") != NULL)
		return set_fail(f, 400, "invalid_request_error", "key_alias",
		    "key_alias is already in use by another key");
	if (strcmp(state, "23505") == 0)
		return set_fail(
		    f, 400, "invalid_request_error", "", "Already exists");
	if (strcmp(state, "23503") == 0)
		return set_fail(f, 400, "invalid_request_error", "team_id",
		    "The team or user referenced does not exist, or keys still "
		    "belong to it");
	gw_log_err(req->id, "keys", "query failed: %s", err);
	if (state[0] == '\0' || strncmp(state, "08", 2) == 0)
		return set_fail(
		    f, 503, "no_db_connection", NULL, "Database unavailable");
	return set_fail(
	    f, 500, "internal_server_error", NULL, "Database error");
}

/*
 * Run SQL; a failure becomes f (db_fail). db.c tries a statement on its
 * own again on a fresh connection when the old one broke (a PostgreSQL
 * restart); one inside a transaction it does not.
 */
static enum gw_status
run(struct gw_req *req, const char *sql, int n, const char *const *params,
    struct gw_db_rows **rows, struct fail *f)
{
	char err[512];

	if (gw_db_exec(req->ctx->db, sql, n, params, 1, rows, err,
	        sizeof(err)) == GW_OK)
		return GW_OK;
	return db_fail(req, err, f);
}

static enum gw_status
tx_begin(struct gw_req *req, struct fail *f)
{
	char err[512];

	if (gw_db_begin(req->ctx->db, err, sizeof(err)) == GW_OK)
		return GW_OK;
	return db_fail(req, err, f);
}

/*
 * End the transaction: COMMIT when st is GW_OK, else ROLLBACK. Returns st,
 * or the failure of COMMIT (in f).
 */
static enum gw_status
tx_end(struct gw_req *req, enum gw_status st, struct fail *f)
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

/* A new raw key: "sk-" + 32 random bytes in URL-safe base64 (43 chars). */
static void
new_raw_key(char out[48])
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn"
	                          "opqrstuvwxyz0123456789-_";
	unsigned char r[33];
	int i, o = 3;

	gw_random_bytes(r, 32);
	r[32] = 0;
	memcpy(out, "sk-", 3);
	for (i = 0; i < 32; i += 3) {
		uint32_t v = (uint32_t)r[i] << 16 |
		             (uint32_t)(i + 1 < 33 ? r[i + 1] : 0) << 8 |
		             (uint32_t)(i + 2 < 32 ? r[i + 2] : 0);

		out[o++] = b64[(v >> 18) & 63];
		out[o++] = b64[(v >> 12) & 63];
		if (i + 1 < 32)
			out[o++] = b64[(v >> 6) & 63];
		if (i + 2 < 32)
			out[o++] = b64[v & 63];
	}
	out[o] = '\0';
	explicit_bzero(r, sizeof(r));
}

static void
key_name_of(const char *raw, char out[24])
{
	snprintf(out, 24, "sk-...%s", raw + strlen(raw) - 4);
}

/* Parse a row's JSON text (our own SQL built it). */
static json_object *
row_json(const struct gw_db_rows *rows, int row, int col)
{
	const char *s = gw_db_rows_get(rows, row, col);
	json_object *o = NULL;
	char msg[64];

	if (s == NULL ||
	    gw_json_parse(s, strlen(s), &o, msg, sizeof(msg)) != GW_OK)
		return json_object_new_object();
	return o;
}

static enum gw_status
reply_fail(struct gw_req *req, const struct fail *f)
{
	gw_reply_error_ex(
	    req, f->status, f->type, f->param[0] ? f->param : NULL, f->msg);
	return GW_OK;
}

/* The request body as a JSON object ({} when empty). */
static enum gw_status
read_object(struct gw_req *req, json_object **out, struct fail *f)
{
	enum gw_status st;
	char msg[300];

	*out = NULL;
	if ((st = gw_req_read_body(req)) != GW_OK)
		return set_fail(f, gw_err_http_status(st), gw_err_type(st),
		    NULL, "%s", gw_err_default_message(st));
	if (req->body.len == 0 ||
	    strspn(req->body.p, " \t\r\n") == req->body.len) {
		*out = json_object_new_object();
		return GW_OK;
	}
	if (gw_json_parse(req->body.p, req->body.len, out, msg, sizeof(msg)) !=
	    GW_OK)
		return set_fail(
		    f, 400, "invalid_request_error", NULL, "%s", msg);
	if (!json_object_is_type(*out, json_type_object)) {
		json_object_put(*out);
		*out = NULL;
		return set_fail(f, 400, "invalid_request_error", NULL,
		    "Request body must be a JSON object");
	}
	return GW_OK;
}

/* Who did it, for created_by/deleted_by: never a fragment of a secret. */
static const char *
caller_name(const struct gw_principal *who)
{
	if (who->role == GW_ROLE_MASTER)
		return "master_key";
	if (who->rec != NULL && who->rec->user_id != NULL)
		return who->rec->user_id;
	return who->role == GW_ROLE_JWT ? "jwt" : "key";
}

/* Make sure user_id exists (created on the spot, as LiteLLM does). */
static enum gw_status
ensure_user(struct gw_req *req, const char *user_id, struct fail *f)
{
	const char *p[1] = {user_id};

	return run(req,
	    "INSERT INTO users (user_id) VALUES ($1) ON CONFLICT DO NOTHING", 1,
	    p, NULL, f);
}

static enum gw_status
require_team(struct gw_req *req, const char *team_id, struct fail *f)
{
	struct gw_db_rows *rows = NULL;
	const char *p[1] = {team_id};
	enum gw_status st;

	st = run(req, "SELECT 1 FROM teams WHERE team_id = $1", 1, p, &rows, f);
	if (st == GW_OK && gw_db_rows_count(rows) == 0)
		st = set_fail(f, 400, "invalid_request_error", "team_id",
		    "Team '%.100s' does not exist; create it with /team/new",
		    team_id);
	gw_db_rows_free(rows);
	return st;
}

/*
 * The key answer of generate and regenerate: the row, plus the raw key
 * (shown this once) and LiteLLM's field names beside the spec's.
 */
static void
reply_new_key(struct gw_req *req, json_object *row, const char *raw)
{
	json_object *v;

	json_object_object_add(row, "key", json_object_new_string(raw));
	if (json_object_object_get_ex(row, "token", &v))
		json_object_object_add(row, "token_id", json_object_get(v));
	gw_reply_json(req, 200, row);
}

/* Insert a key for body's fields (in an open transaction). */
static enum gw_status
insert_key(struct gw_req *req, json_object *body, const char *created_by,
    char raw[48], json_object **row, struct fail *f)
{
	struct stmt s = {0};
	struct gw_db_rows *rows = NULL;
	struct gw_buf sql = {0};
	char hash[65], kname[24];
	const char *uid, *tid;
	enum gw_status st;

	if ((st = take_fields(
	         body, key_fields, GW_ARRAY_LEN(key_fields), &s, f)) != GW_OK)
		goto out;
	uid = gw_json_get_str(body, "user_id");
	tid = gw_json_get_str(body, "team_id");
	if ((uid != NULL && (st = ensure_user(req, uid, f)) != GW_OK) ||
	    (tid != NULL && (st = require_team(req, tid, f)) != GW_OK))
		goto out;
	new_raw_key(raw);
	gw_sha256_hex(raw, strlen(raw), hash);
	key_name_of(raw, kname);
	stmt_set(&s, "token", "$?", hash);
	stmt_set(&s, "key_name", "$?", kname);
	stmt_set(&s, "created_by", "$?", created_by);
	gw_buf_printf(&sql,
	    "INSERT INTO keys AS k (%s) VALUES (%s) RETURNING " KEY_JSON,
	    s.cols.p, s.vals.p);
	if ((st = run(req, sql.p, s.n, s.params, &rows, f)) != GW_OK)
		goto out;
	*row = row_json(rows, 0, 0);
out:
	gw_db_rows_free(rows);
	gw_buf_fini(&sql);
	stmt_fini(&s);
	return st;
}

static enum gw_status
key_generate(struct gw_req *req, struct gw_route_call *c)
{
	const struct gw_principal *who = &c->who;
	json_object *body = NULL, *row = NULL;
	struct fail f;
	char raw[48] = "";
	enum gw_status st;

	if ((st = read_object(req, &body, &f)) != GW_OK ||
	    (st = tx_begin(req, &f)) != GW_OK)
		goto out;
	st = insert_key(req, body, caller_name(who), raw, &row, &f);
	st = tx_end(req, st, &f);
	if (st == GW_OK) {
		gw_log_info(req->id, "keys", "generated key %s (%s)",
		    gw_json_get_str(row, "key_name"),
		    gw_json_get_str(row, "key_alias")
		        ? gw_json_get_str(row, "key_alias")
		        : "no alias");
		reply_new_key(req, row, raw);
	}
out:
	explicit_bzero(raw, sizeof(raw));
	json_object_put(body);
	json_object_put(row);
	return st == GW_OK ? GW_OK : reply_fail(req, &f);
}

/* The hash for body's "key" field (raw key or hash). */
static enum gw_status
body_key_hash(json_object *body, char hash[65], struct fail *f)
{
	const char *k = gw_json_get_str(body, "key");

	if (k == NULL)
		return set_fail(f, 400, "invalid_request_error", "key",
		    "'key' is required (a key or its hash)");
	if (gw_keystore_hash_of(k, hash) != GW_OK)
		return set_fail(f, 400, "invalid_request_error", "key",
		    "'key' must be a key (sk-...) or its 64-digit hash");
	return GW_OK;
}

static enum gw_status
key_not_found(struct fail *f)
{
	return set_fail(
	    f, 404, "not_found_error", "key", "Key not found in database");
}

static enum gw_status
key_update(struct gw_req *req, struct gw_route_call *c GW_UNUSED)
{
	json_object *body = NULL, *row = NULL;
	struct stmt s = {0};
	struct gw_db_rows *rows = NULL;
	struct gw_buf sql = {0};
	struct fail f;
	char hash[65];
	const char *uid, *tid;
	enum gw_status st;

	if ((st = read_object(req, &body, &f)) != GW_OK ||
	    (st = body_key_hash(body, hash, &f)) != GW_OK ||
	    (st = take_fields(
	         body, key_fields, GW_ARRAY_LEN(key_fields), &s, &f)) != GW_OK)
		goto out;
	if (s.n == 0) {
		st = set_fail(&f, 400, "invalid_request_error", NULL,
		    "Nothing to update");
		goto out;
	}
	if ((st = tx_begin(req, &f)) != GW_OK)
		goto out;
	uid = gw_json_get_str(body, "user_id");
	tid = gw_json_get_str(body, "team_id");
	if ((uid == NULL || (st = ensure_user(req, uid, &f)) == GW_OK) &&
	    (tid == NULL || (st = require_team(req, tid, &f)) == GW_OK)) {
		int n = stmt_param(&s, hash);

		gw_buf_printf(&sql,
		    "UPDATE keys AS k SET %s, updated_at = now() WHERE token = "
		    "$%d RETURNING " KEY_JSON,
		    s.sets.p, n);
		st = run(req, sql.p, s.n, s.params, &rows, &f);
		if (st == GW_OK && gw_db_rows_count(rows) == 0)
			st = key_not_found(&f);
	}
	st = tx_end(req, st, &f);
	if (st == GW_OK) {
		row = row_json(rows, 0, 0);
		gw_reply_json(req, 200, row);
	}
out:
	json_object_put(body);
	json_object_put(row);
	gw_db_rows_free(rows);
	gw_buf_fini(&sql);
	stmt_fini(&s);
	return st == GW_OK ? GW_OK : reply_fail(req, &f);
}

/* "keys": raw keys or hashes; "key_aliases": aliases. */
static enum gw_status
key_delete(struct gw_req *req, struct gw_route_call *c)
{
	const struct gw_principal *who = &c->who;
	json_object *body = NULL, *list, *hashes = NULL, *out = NULL, *done;
	struct gw_db_rows *rows = NULL;
	struct fail f;
	const char *params[2];
	char hash[65];
	int by_alias = 0, i, n;
	size_t j, m;

	enum gw_status st;

	if ((st = read_object(req, &body, &f)) != GW_OK)
		goto out;
	list = gw_json_get(body, "keys");
	if (list == NULL) {
		list = gw_json_get(body, "key_aliases");
		by_alias = 1;
	}
	if (list == NULL || !json_object_is_type(list, json_type_array) ||
	    json_object_array_length(list) == 0) {
		st = set_fail(&f, 400, "invalid_request_error", "keys",
		    "'keys' (or 'key_aliases') must be a non-empty array");
		goto out;
	}
	m = json_object_array_length(list);
	hashes = json_object_new_array();
	for (j = 0; j < m; j++) {
		json_object *it = json_object_array_get_idx(list, j);

		if (!json_object_is_type(it, json_type_string) ||
		    (!by_alias &&
		        gw_keystore_hash_of(json_object_get_string(it), hash) !=
		            GW_OK)) {
			st = set_fail(&f, 400, "invalid_request_error",
			    by_alias ? "key_aliases" : "keys",
			    "Each entry must be %s",
			    by_alias ? "a string"
			             : "a key (sk-...) or its hash");
			goto out;
		}
		json_object_array_add(
		    hashes, json_object_new_string(
		                by_alias ? json_object_get_string(it) : hash));
	}
	params[0] = gw_json_str(hashes, NULL);
	params[1] = caller_name(who);
	st = run(req,
	    by_alias
	        ? "WITH d AS (DELETE FROM keys WHERE key_alias IN (SELECT "
	          "json_array_elements_text($1::json)) RETURNING *) INSERT "
	          "INTO "
	          "deleted_keys (token, key_name, key_alias, user_id, team_id, "
	          "spend, row_data, deleted_by) SELECT token, key_name, "
	          "key_alias, user_id, team_id, spend, to_jsonb(d), $2 FROM d "
	          "RETURNING key_alias"
	        : "WITH d AS (DELETE FROM keys WHERE token IN (SELECT "
	          "json_array_elements_text($1::json)) RETURNING *) INSERT "
	          "INTO "
	          "deleted_keys (token, key_name, key_alias, user_id, team_id, "
	          "spend, row_data, deleted_by) SELECT token, key_name, "
	          "key_alias, user_id, team_id, spend, to_jsonb(d), $2 FROM d "
	          "RETURNING token",
	    2, params, &rows, &f);
	if (st != GW_OK)
		goto out;
	n = gw_db_rows_count(rows);
	if (n == 0) {
		st = set_fail(&f, 404, "not_found_error",
		    by_alias ? "key_aliases" : "keys",
		    "None of the keys given exist");
		goto out;
	}
	/*
	 * Answer with what was deleted: hashes for keys (never a raw key
	 * again, even one the caller sent), the aliases as given.
	 */
	out = json_object_new_object();
	done = json_object_new_array();
	for (i = 0; i < n; i++)
		json_object_array_add(
		    done, json_object_new_string(gw_db_rows_get(rows, i, 0)));
	json_object_object_add(out, "deleted_keys", done);
	gw_log_info(req->id, "keys", "deleted %d key(s)", n);
	gw_reply_json(req, 200, out);
out:
	json_object_put(body);
	json_object_put(hashes);
	json_object_put(out);
	gw_db_rows_free(rows);
	return st == GW_OK ? GW_OK : reply_fail(req, &f);
}

static enum gw_status
key_set_blocked(struct gw_req *req, struct gw_route_call *c)
{
	int blocked = c->route->arg;
	json_object *body = NULL, *row = NULL;
	struct gw_db_rows *rows = NULL;
	struct fail f;
	char hash[65];
	const char *p[2] = {hash, blocked ? "true" : "false"};
	enum gw_status st;

	if ((st = read_object(req, &body, &f)) != GW_OK ||
	    (st = body_key_hash(body, hash, &f)) != GW_OK ||
	    (st = run(req,
	         "UPDATE keys AS k SET blocked = $2::boolean, updated_at = "
	         "now() WHERE token = $1 RETURNING " KEY_JSON,
	         2, p, &rows, &f)) != GW_OK)
		goto out;
	if (gw_db_rows_count(rows) == 0) {
		st = key_not_found(&f);
		goto out;
	}
	row = row_json(rows, 0, 0);
	gw_reply_json(req, 200, row);
out:
	json_object_put(body);
	json_object_put(row);
	gw_db_rows_free(rows);
	return st == GW_OK ? GW_OK : reply_fail(req, &f);
}

/* New raw key for an existing one: the old one is refused at once. */
static enum gw_status
key_regenerate(struct gw_req *req, struct gw_route_call *c)
{
	const char *path_key =
	    c->param[0] ? c->param : NULL; /* /key/{}/regenerate */
	json_object *body = NULL, *row = NULL;
	struct gw_db_rows *rows = NULL;
	struct fail f;
	char old[65], hash[65], raw[48] = "", kname[24];
	const char *p[3] = {hash, kname, old};
	enum gw_status st;

	if ((st = read_object(req, &body, &f)) != GW_OK)
		goto out;
	if (path_key != NULL) {
		if (gw_keystore_hash_of(path_key, old) != GW_OK) {
			st = set_fail(&f, 400, "invalid_request_error", "key",
			    "The path must name a key (sk-...) or its hash");
			goto out;
		}
	} else if ((st = body_key_hash(body, old, &f)) != GW_OK) {
		goto out;
	}
	new_raw_key(raw);
	gw_sha256_hex(raw, strlen(raw), hash);
	key_name_of(raw, kname);
	if ((st = run(req,
	         "UPDATE keys AS k SET token = $1, key_name = $2, updated_at = "
	         "now() WHERE token = $3 RETURNING " KEY_JSON,
	         3, p, &rows, &f)) != GW_OK)
		goto out;
	if (gw_db_rows_count(rows) == 0) {
		st = key_not_found(&f);
		goto out;
	}
	row = row_json(rows, 0, 0);
	gw_log_info(req->id, "keys", "regenerated key, now %s", kname);
	reply_new_key(req, row, raw);
out:
	explicit_bzero(raw, sizeof(raw));
	json_object_put(body);
	json_object_put(row);
	gw_db_rows_free(rows);
	return st == GW_OK ? GW_OK : reply_fail(req, &f);
}

/* ?name= into out; absent leaves out empty. GW_E_INVALID when bad. */
static enum gw_status
query_opt(
    struct gw_req *req, const char *name, char *out, size_t len, struct fail *f)
{
	enum gw_status st = gw_req_query(req, name, out, len);

	if (st == GW_E_NOTFOUND) {
		out[0] = '\0';
		return GW_OK;
	}
	if (st != GW_OK)
		return set_fail(f, 400, "invalid_request_error", name,
		    "Query parameter '%s' is malformed", name);
	return GW_OK;
}

/*
 * GET /key/info: the caller's own key, or ?key= (raw or hash) for an
 * admin (or for the key itself). The spec's KeyInfo fields at the top,
 * LiteLLM's {"key","info"} beside them.
 */
static enum gw_status
key_info(struct gw_req *req, struct gw_route_call *c)
{
	const struct gw_principal *who = &c->who;
	json_object *info = NULL, *out = NULL, *v;
	struct gw_db_rows *rows = NULL;
	struct fail f;
	char q[160], hash[65];
	const char *p[1] = {hash};
	static const char *const top[] = {"models", "spend", "max_budget",
	    "expires", "user_id", "team_id", "key_name", "key_alias", "blocked",
	    "token"};
	size_t i;
	enum gw_status st;

	if ((st = query_opt(req, "key", q, sizeof(q), &f)) != GW_OK)
		goto out;
	if (q[0] != '\0') {
		if (gw_keystore_hash_of(q, hash) != GW_OK) {
			st = set_fail(&f, 400, "invalid_request_error", "key",
			    "'key' must be a key (sk-...) or its hash");
			goto out;
		}
		if (!who->admin && (who->role != GW_ROLE_KEY ||
		                       strcmp(who->rec->token, hash) != 0)) {
			st = set_fail(&f, 403, "permission_error", "key",
			    "Only an admin can read another key's info");
			goto out;
		}
	} else if (who->role == GW_ROLE_KEY) {
		snprintf(hash, sizeof(hash), "%s", who->rec->token);
	} else {
		st = set_fail(&f, 400, "invalid_request_error", "key",
		    "Pass ?key= (the master key and JWTs have no key info)");
		goto out;
	}
	if ((st = run(req, "SELECT " KEY_JSON " FROM keys k WHERE token = $1",
	         1, p, &rows, &f)) != GW_OK)
		goto out;
	if (gw_db_rows_count(rows) == 0) {
		st = key_not_found(&f);
		goto out;
	}
	info = row_json(rows, 0, 0);
	out = json_object_new_object();
	json_object_object_add(out, "key", json_object_new_string(hash));
	for (i = 0; i < GW_ARRAY_LEN(top); i++)
		if (json_object_object_get_ex(info, top[i], &v) &&
		    strcmp(top[i], "token") != 0)
			json_object_object_add(out, top[i], json_object_get(v));
	json_object_object_add(out, "info", json_object_get(info));
	gw_reply_json(req, 200, out);
out:
	json_object_put(info);
	json_object_put(out);
	gw_db_rows_free(rows);
	return st == GW_OK ? GW_OK : reply_fail(req, &f);
}

/* ?name= as a positive integer within [1, max], or dflt when absent. */
static enum gw_status
query_int(struct gw_req *req, const char *name, long dflt, long max, long *out,
    struct fail *f)
{
	char q[32], *end;
	enum gw_status st;

	if ((st = query_opt(req, name, q, sizeof(q), f)) != GW_OK)
		return st;
	if (q[0] == '\0') {
		*out = dflt;
		return GW_OK;
	}
	*out = strtol(q, &end, 10);
	if (*end != '\0' || *out < 1 || *out > max)
		return set_fail(f, 400, "invalid_request_error", name,
		    "'%s' must be an integer between 1 and %ld", name, max);
	return GW_OK;
}

/* GET /key/list?page=&size=&user_id=&team_id=&key_alias=&return_full_object= */
static enum gw_status
key_list(struct gw_req *req, struct gw_route_call *c GW_UNUSED)
{
	json_object *out = NULL, *keys;
	struct gw_db_rows *rows = NULL, *cnt = NULL;
	struct fail f;
	char uid[256], tid[256], alias[256], full[16], lim[16], off[16];
	const char *p[5] = {NULL, NULL, NULL, lim, off};
	long page, size, total;
	int i;
	enum gw_status st;

	if ((st = query_int(req, "page", 1, 1000000, &page, &f)) != GW_OK ||
	    (st = query_int(req, "size", 10, 100, &size, &f)) != GW_OK ||
	    (st = query_opt(req, "user_id", uid, sizeof(uid), &f)) != GW_OK ||
	    (st = query_opt(req, "team_id", tid, sizeof(tid), &f)) != GW_OK ||
	    (st = query_opt(req, "key_alias", alias, sizeof(alias), &f)) !=
	        GW_OK ||
	    (st = query_opt(
	         req, "return_full_object", full, sizeof(full), &f)) != GW_OK)
		goto out;
	p[0] = uid[0] ? uid : NULL;
	p[1] = tid[0] ? tid : NULL;
	p[2] = alias[0] ? alias : NULL;
	snprintf(lim, sizeof(lim), "%ld", size);
	snprintf(off, sizeof(off), "%ld", (page - 1) * size);
	if ((st = run(req,
	         "SELECT count(*) FROM keys WHERE ($1::text IS NULL OR user_id "
	         "= $1) AND ($2::text IS NULL OR team_id = $2) AND ($3::text "
	         "IS "
	         "NULL OR key_alias = $3)",
	         3, p, &cnt, &f)) != GW_OK ||
	    (st = run(req,
	         "SELECT token, " KEY_JSON " FROM keys k WHERE ($1::text IS "
	         "NULL OR user_id = $1) AND ($2::text IS NULL OR team_id = $2) "
	         "AND ($3::text IS NULL OR key_alias = $3) ORDER BY created_at "
	         "DESC, token LIMIT $4::bigint OFFSET $5::bigint",
	         5, p, &rows, &f)) != GW_OK)
		goto out;
	total = atol(gw_db_rows_get(cnt, 0, 0));
	out = json_object_new_object();
	keys = json_object_new_array();
	for (i = 0; i < gw_db_rows_count(rows); i++)
		json_object_array_add(keys,
		    strcmp(full, "true") == 0
		        ? row_json(rows, i, 1)
		        : json_object_new_string(gw_db_rows_get(rows, i, 0)));
	json_object_object_add(out, "keys", keys);
	json_object_object_add(
	    out, "total_count", json_object_new_int64(total));
	json_object_object_add(
	    out, "current_page", json_object_new_int64(page));
	json_object_object_add(out, "total_pages",
	    json_object_new_int64((total + size - 1) / size));
	gw_reply_json(req, 200, out);
out:
	json_object_put(out);
	gw_db_rows_free(rows);
	gw_db_rows_free(cnt);
	return st == GW_OK ? GW_OK : reply_fail(req, &f);
}

/* POST /user/new: a user, and by default a key for it. */
static enum gw_status
user_new(struct gw_req *req, struct gw_route_call *c)
{
	const struct gw_principal *who = &c->who;
	json_object *body = NULL, *row = NULL, *key = NULL, *ak, *kb = NULL, *v;
	struct stmt s = {0};
	struct gw_db_rows *rows = NULL;
	struct gw_buf sql = {0};
	struct fail f;
	char id[64], raw[48] = "";
	const char *uid, *tid;
	enum gw_status st;

	if ((st = read_object(req, &body, &f)) != GW_OK ||
	    (st = take_fields(body, user_fields, GW_ARRAY_LEN(user_fields), &s,
	         &f)) != GW_OK)
		goto out;
	uid = gw_json_get_str(body, "user_id");
	if (uid == NULL) {
		gw_uuid4(req->ctx->rng, id);
		uid = id;
	}
	stmt_set(&s, "user_id", "$?", uid);
	if ((st = tx_begin(req, &f)) != GW_OK)
		goto out;
	tid = gw_json_get_str(body, "team_id");
	if (tid == NULL || (st = require_team(req, tid, &f)) == GW_OK) {
		gw_buf_printf(&sql,
		    "INSERT INTO users AS u (%s) VALUES (%s) ON CONFLICT "
		    "(user_id) DO NOTHING RETURNING (to_jsonb(u))::text",
		    s.cols.p, s.vals.p);
		st = run(req, sql.p, s.n, s.params, &rows, &f);
		if (st == GW_OK && gw_db_rows_count(rows) == 0)
			st = set_fail(&f, 400, "invalid_request_error",
			    "user_id", "User '%.100s' already exists", uid);
	}
	ak = gw_json_get(body, "auto_create_key");
	if (st == GW_OK && (ak == NULL || json_object_get_boolean(ak))) {
		/* The key takes the user's models, limits and budget. */
		kb = json_object_new_object();
		json_object_object_add(
		    kb, "user_id", json_object_new_string(uid));
		if (tid != NULL)
			json_object_object_add(
			    kb, "team_id", json_object_new_string(tid));
		if (json_object_object_get_ex(body, "key_alias", &v))
			json_object_object_add(
			    kb, "key_alias", json_object_get(v));
		if (json_object_object_get_ex(body, "duration", &v))
			json_object_object_add(
			    kb, "duration", json_object_get(v));
		if (json_object_object_get_ex(body, "models", &v))
			json_object_object_add(
			    kb, "models", json_object_get(v));
		st = insert_key(req, kb, caller_name(who), raw, &key, &f);
	}
	st = tx_end(req, st, &f);
	if (st != GW_OK)
		goto out;
	row = row_json(rows, 0, 0);
	if (key != NULL) {
		json_object_object_add(row, "key", json_object_new_string(raw));
		json_object_object_foreach(key, k, kv)
		{
			if (strcmp(k, "key_name") == 0 ||
			    strcmp(k, "token") == 0 ||
			    strcmp(k, "expires") == 0 ||
			    strcmp(k, "key_alias") == 0)
				json_object_object_add(
				    row, k, json_object_get(kv));
		}
	}
	gw_reply_json(req, 200, row);
out:
	explicit_bzero(raw, sizeof(raw));
	json_object_put(body);
	json_object_put(kb);
	json_object_put(row);
	json_object_put(key);
	gw_db_rows_free(rows);
	gw_buf_fini(&sql);
	stmt_fini(&s);
	return st == GW_OK ? GW_OK : reply_fail(req, &f);
}

/* The JSON array of rows of a query (column 0 holds each row's JSON). */
static json_object *
rows_array(const struct gw_db_rows *rows)
{
	json_object *a = json_object_new_array();
	int i;

	for (i = 0; i < gw_db_rows_count(rows); i++)
		json_object_array_add(a, row_json(rows, i, 0));
	return a;
}

/* GET /user/info: the caller's user, or ?user_id= for an admin. */
static enum gw_status
user_info(struct gw_req *req, struct gw_route_call *c)
{
	const struct gw_principal *who = &c->who;
	json_object *info = NULL, *out = NULL, *v;
	struct gw_db_rows *rows = NULL, *keys = NULL, *teams = NULL;
	struct fail f;
	char q[256];
	const char *p[1] = {q};
	static const char *const top[] = {"spend", "max_budget", "models",
	    "user_role", "team_id", "user_alias", "user_email"};
	size_t i;
	enum gw_status st;

	if ((st = query_opt(req, "user_id", q, sizeof(q), &f)) != GW_OK)
		goto out;
	if (q[0] == '\0') {
		if (who->rec == NULL || who->rec->user_id == NULL) {
			st = set_fail(&f, 400, "invalid_request_error",
			    "user_id",
			    "Pass ?user_id= (this caller has no "
			    "user)");
			goto out;
		}
		snprintf(q, sizeof(q), "%s", who->rec->user_id);
	} else if (!who->admin &&
	           (who->rec == NULL || who->rec->user_id == NULL ||
	               strcmp(who->rec->user_id, q) != 0)) {
		st = set_fail(&f, 403, "permission_error", "user_id",
		    "Only an admin can read another user's info");
		goto out;
	}
	if ((st = run(req,
	         "SELECT (to_jsonb(u))::text FROM users u WHERE user_id = $1",
	         1, p, &rows, &f)) != GW_OK)
		goto out;
	if (gw_db_rows_count(rows) == 0) {
		st = set_fail(
		    &f, 404, "not_found_error", "user_id", "User not found");
		goto out;
	}
	if ((st = run(req,
	         "SELECT " KEY_JSON " FROM keys k WHERE user_id = $1 ORDER BY "
	         "created_at",
	         1, p, &keys, &f)) != GW_OK ||
	    (st = run(req,
	         "SELECT (to_jsonb(t))::text FROM teams t WHERE team_id IN "
	         "(SELECT team_id FROM users WHERE user_id = $1 UNION SELECT "
	         "team_id FROM keys WHERE user_id = $1)",
	         1, p, &teams, &f)) != GW_OK)
		goto out;
	info = row_json(rows, 0, 0);
	out = json_object_new_object();
	json_object_object_add(out, "user_id", json_object_new_string(q));
	for (i = 0; i < GW_ARRAY_LEN(top); i++)
		if (json_object_object_get_ex(info, top[i], &v))
			json_object_object_add(out, top[i], json_object_get(v));
	json_object_object_add(out, "user_info", json_object_get(info));
	json_object_object_add(out, "keys", rows_array(keys));
	json_object_object_add(out, "teams", rows_array(teams));
	gw_reply_json(req, 200, out);
out:
	json_object_put(info);
	json_object_put(out);
	gw_db_rows_free(rows);
	gw_db_rows_free(keys);
	gw_db_rows_free(teams);
	return st == GW_OK ? GW_OK : reply_fail(req, &f);
}

/* POST /user/update and /team/update: {"user_id"|"team_id", fields...}. */
static enum gw_status
entity_update(struct gw_req *req, struct gw_route_call *c)
{
	int team = c->route->arg;
	json_object *body = NULL, *row = NULL;
	struct stmt s = {0};
	struct gw_db_rows *rows = NULL;
	struct gw_buf sql = {0};
	struct fail f;
	const char *idname = team ? "team_id" : "user_id", *id;
	enum gw_status st;
	int n;

	if ((st = read_object(req, &body, &f)) != GW_OK)
		goto out;
	if ((id = gw_json_get_str(body, idname)) == NULL) {
		st = set_fail(&f, 400, "invalid_request_error", idname,
		    "'%s' is required", idname);
		goto out;
	}
	if ((st = take_fields(body, team ? team_fields : user_fields,
	         team ? GW_ARRAY_LEN(team_fields) : GW_ARRAY_LEN(user_fields),
	         &s, &f)) != GW_OK)
		goto out;
	if (s.n == 0) {
		st = set_fail(&f, 400, "invalid_request_error", NULL,
		    "Nothing to update");
		goto out;
	}
	n = stmt_param(&s, id);
	gw_buf_printf(&sql,
	    "UPDATE %s AS x SET %s, updated_at = now() WHERE %s = $%d "
	    "RETURNING (to_jsonb(x))::text",
	    team ? "teams" : "users", s.sets.p, idname, n);
	if ((st = run(req, sql.p, s.n, s.params, &rows, &f)) != GW_OK)
		goto out;
	if (gw_db_rows_count(rows) == 0) {
		st = set_fail(&f, 404, "not_found_error", idname,
		    "%s not found", team ? "Team" : "User");
		goto out;
	}
	row = row_json(rows, 0, 0);
	gw_reply_json(req, 200, row);
out:
	json_object_put(body);
	json_object_put(row);
	gw_db_rows_free(rows);
	gw_buf_fini(&sql);
	stmt_fini(&s);
	return st == GW_OK ? GW_OK : reply_fail(req, &f);
}

/*
 * POST /user/delete {"user_ids":[...]} (their keys go too) and
 * /team/delete {"team_ids":[...]} (refused while keys belong to it).
 */
static enum gw_status
entity_delete(struct gw_req *req, struct gw_route_call *c)
{
	int team = c->route->arg;
	json_object *body = NULL, *list, *out = NULL, *done;
	struct gw_db_rows *rows = NULL;
	struct fail f;
	const char *field = team ? "team_ids" : "user_ids", *p[1];
	enum gw_status st;
	int i;

	if ((st = read_object(req, &body, &f)) != GW_OK)
		goto out;
	list = gw_json_get(body, field);
	if (list == NULL || !json_object_is_type(list, json_type_array) ||
	    json_object_array_length(list) == 0) {
		st = set_fail(&f, 400, "invalid_request_error", field,
		    "'%s' must be a non-empty array", field);
		goto out;
	}
	p[0] = gw_json_str(list, NULL);
	st = run(req,
	    team ? "DELETE FROM teams WHERE team_id IN (SELECT "
	           "json_array_elements_text($1::json)) RETURNING team_id"
	         : "DELETE FROM users WHERE user_id IN (SELECT "
	           "json_array_elements_text($1::json)) RETURNING user_id",
	    1, p, &rows, &f);
	if (st != GW_OK)
		goto out;
	if (gw_db_rows_count(rows) == 0) {
		st = set_fail(&f, 404, "not_found_error", field,
		    "None of the %s given exist", team ? "teams" : "users");
		goto out;
	}
	out = json_object_new_object();
	done = json_object_new_array();
	for (i = 0; i < gw_db_rows_count(rows); i++)
		json_object_array_add(
		    done, json_object_new_string(gw_db_rows_get(rows, i, 0)));
	json_object_object_add(
	    out, team ? "deleted_teams" : "deleted_users", done);
	gw_reply_json(req, 200, out);
out:
	json_object_put(body);
	json_object_put(out);
	gw_db_rows_free(rows);
	return st == GW_OK ? GW_OK : reply_fail(req, &f);
}

static enum gw_status
team_new(struct gw_req *req, struct gw_route_call *c GW_UNUSED)
{
	json_object *body = NULL, *row = NULL;
	struct stmt s = {0};
	struct gw_db_rows *rows = NULL;
	struct gw_buf sql = {0};
	struct fail f;
	char id[64];
	const char *tid;
	enum gw_status st;

	if ((st = read_object(req, &body, &f)) != GW_OK ||
	    (st = take_fields(body, team_fields, GW_ARRAY_LEN(team_fields), &s,
	         &f)) != GW_OK)
		goto out;
	if (gw_json_get(body, "team_id") != NULL &&
	    gw_json_get_str(body, "team_id") == NULL) {
		st = set_fail(&f, 400, "invalid_request_error", "team_id",
		    "'team_id' must be a string");
		goto out;
	}
	tid = gw_json_get_str(body, "team_id");
	if (tid == NULL || tid[0] == '\0') {
		gw_uuid4(req->ctx->rng, id);
		tid = id;
	}
	stmt_set(&s, "team_id", "$?", tid);
	gw_buf_printf(&sql,
	    "INSERT INTO teams AS t (%s) VALUES (%s) ON CONFLICT (team_id) DO "
	    "NOTHING RETURNING (to_jsonb(t))::text",
	    s.cols.p, s.vals.p);
	if ((st = run(req, sql.p, s.n, s.params, &rows, &f)) != GW_OK)
		goto out;
	if (gw_db_rows_count(rows) == 0) {
		st = set_fail(&f, 400, "invalid_request_error", "team_id",
		    "Team '%.100s' already exists", tid);
		goto out;
	}
	row = row_json(rows, 0, 0);
	gw_reply_json(req, 200, row);
out:
	json_object_put(body);
	json_object_put(row);
	gw_db_rows_free(rows);
	gw_buf_fini(&sql);
	stmt_fini(&s);
	return st == GW_OK ? GW_OK : reply_fail(req, &f);
}

/* GET /team/info?team_id=: admins, or callers of that team. */
static enum gw_status
team_info(struct gw_req *req, struct gw_route_call *c)
{
	const struct gw_principal *who = &c->who;
	json_object *info = NULL, *out = NULL;
	struct gw_db_rows *rows = NULL, *keys = NULL;
	struct fail f;
	char q[256];
	const char *p[1] = {q};
	enum gw_status st;

	if ((st = query_opt(req, "team_id", q, sizeof(q), &f)) != GW_OK)
		goto out;
	if (q[0] == '\0' && who->rec != NULL && who->rec->team_id != NULL)
		snprintf(q, sizeof(q), "%s", who->rec->team_id);
	if (q[0] == '\0') {
		st = set_fail(&f, 400, "invalid_request_error", "team_id",
		    "'team_id' is required");
		goto out;
	}
	if (!who->admin && (who->rec == NULL || who->rec->team_id == NULL ||
	                       strcmp(who->rec->team_id, q) != 0)) {
		st = set_fail(&f, 403, "permission_error", "team_id",
		    "Only an admin or a member can read a team's info");
		goto out;
	}
	if ((st = run(req,
	         "SELECT (to_jsonb(t))::text FROM teams t WHERE team_id = $1",
	         1, p, &rows, &f)) != GW_OK)
		goto out;
	if (gw_db_rows_count(rows) == 0) {
		st = set_fail(
		    &f, 404, "not_found_error", "team_id", "Team not found");
		goto out;
	}
	if ((st = run(req,
	         "SELECT " KEY_JSON " FROM keys k WHERE team_id = $1 ORDER BY "
	         "created_at",
	         1, p, &keys, &f)) != GW_OK)
		goto out;
	info = row_json(rows, 0, 0);
	out = json_object_new_object();
	json_object_object_add(out, "team_id", json_object_new_string(q));
	json_object_object_add(out, "team_info", json_object_get(info));
	json_object_object_add(out, "keys", rows_array(keys));
	gw_reply_json(req, 200, out);
out:
	json_object_put(info);
	json_object_put(out);
	gw_db_rows_free(rows);
	gw_db_rows_free(keys);
	return st == GW_OK ? GW_OK : reply_fail(req, &f);
}

/* arg: 1 for block, for teams (entity_update, entity_delete). */
static const struct gw_route routes[] = {
    {"POST", "/key/generate", GW_ACCESS_ADMIN, key_generate, NULL, 0, 0},
    {"POST", "/key/update", GW_ACCESS_ADMIN, key_update, NULL, 0, 0},
    {"POST", "/key/delete", GW_ACCESS_ADMIN, key_delete, NULL, 0, 0},
    {"GET", "/key/info", GW_ACCESS_CALLER, key_info, NULL, 0, 0},
    {"GET", "/key/list", GW_ACCESS_ADMIN, key_list, NULL, 0, 0},
    {"POST", "/key/block", GW_ACCESS_ADMIN, key_set_blocked, NULL, 1, 0},
    {"POST", "/key/unblock", GW_ACCESS_ADMIN, key_set_blocked, NULL, 0, 0},
    {"POST", "/key/regenerate", GW_ACCESS_ADMIN, key_regenerate, NULL, 0, 0},
    /* LiteLLM's /key/{key}/regenerate. */
    {"POST", "/key/{}/regenerate", GW_ACCESS_ADMIN, key_regenerate,
        "/key/regenerate", 0, GW_ROUTE_SECRET_PARAM},
    {"POST", "/user/new", GW_ACCESS_ADMIN, user_new, NULL, 0, 0},
    {"GET", "/user/info", GW_ACCESS_CALLER, user_info, NULL, 0, 0},
    {"POST", "/user/update", GW_ACCESS_ADMIN, entity_update, NULL, 0, 0},
    {"POST", "/user/delete", GW_ACCESS_ADMIN, entity_delete, NULL, 0, 0},
    {"POST", "/team/new", GW_ACCESS_ADMIN, team_new, NULL, 0, 0},
    {"GET", "/team/info", GW_ACCESS_CALLER, team_info, NULL, 0, 0},
    {"POST", "/team/update", GW_ACCESS_ADMIN, entity_update, NULL, 1, 0},
    {"POST", "/team/delete", GW_ACCESS_ADMIN, entity_delete, NULL, 1, 0},
};

/* Every access line says which caller managed what. */
static const struct gw_router router = {NULL, routes, GW_ARRAY_LEN(routes), 1};

enum gw_status
gw_keys_handle(struct gw_req *req)
{
	return gw_dispatch(req, &router);
}
