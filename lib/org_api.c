/* org_api.c: users and teams over PostgreSQL (/user/..., /team/...). */
#include "org_api.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "db.h"
#include "json_util.h"
#include "keygen.h"
#include "members.h"
#include "mgmt.h"
#include "req.h"
#include "route.h"
#include "util.h"

/* What differs between users and teams, by the route's arg. */
struct entity {
	const char *table, *id; /* "users", "user_id" */
	const char *name;       /* "User", in messages */
	const char *ids;        /* the list field of delete: "user_ids" */
	const char *deleted;    /* its answer: "deleted_users" */
	const char *plural;     /* "users", in messages */
	enum gw_mgmt_entity fields;
};

static const struct entity entities[] = {
    {"users", "user_id", "User", "user_ids", "deleted_users", "users",
        GW_MGMT_USER},
    {"teams", "team_id", "Team", "team_ids", "deleted_teams", "teams",
        GW_MGMT_TEAM},
};
#define USER (&entities[0])
#define TEAM (&entities[1])

/*
 * INSERT the user or team s describes (id among its columns), in *rows;
 * a 400 with param id when one with that id exists.
 */
static enum gw_status
insert_entity(struct gw_req *req, const struct entity *e, const char *id,
    struct gw_mgmt_stmt *s, struct gw_db_rows **rows, struct gw_mgmt_fail *f)
{
	struct gw_buf sql = {0};
	enum gw_status st;

	gw_buf_printf(&sql,
	    "INSERT INTO %s AS x (%s) VALUES (%s) ON CONFLICT (%s) DO "
	    "NOTHING RETURNING (to_jsonb(x))::text",
	    e->table, s->cols.p, s->vals.p, e->id);
	/* members_with_roles are added after: the team's row is read then. */
	st = gw_mgmt_run(req, sql.p, s->n, s->params, rows, f);
	if (st == GW_OK && gw_db_rows_count(*rows) == 0)
		st = gw_mgmt_invalid(
		    f, e->id, "%s '%.100s' already exists", e->name, id);
	gw_buf_fini(&sql);
	return st;
}

/* The key /user/new makes: the user's models, its alias and duration. */
static json_object *
user_key_body(json_object *body, const char *uid, const char *tid)
{
	static const char *const copied[] = {"key_alias", "duration", "models"};
	json_object *kb = json_object_new_object(), *v;
	size_t i;

	json_object_object_add(kb, "user_id", json_object_new_string(uid));
	if (tid != NULL)
		json_object_object_add(
		    kb, "team_id", json_object_new_string(tid));
	for (i = 0; i < GW_ARRAY_LEN(copied); i++)
		if (json_object_object_get_ex(body, copied[i], &v))
			json_object_object_add(
			    kb, copied[i], json_object_get(v));
	return kb;
}

enum gw_status
gw_org_user_new(struct gw_req *req, struct gw_route_call *c)
{
	static const char *const shown[] = {
	    "token", "expires", "key_name", "key_alias"}; /* jsonb order */
	json_object *body = NULL, *row = NULL, *key = NULL, *ak, *kb = NULL, *v;
	struct gw_mgmt_stmt s = {0};
	struct gw_db_rows *rows = NULL;
	struct gw_mgmt_fail f;
	char id[64], raw[GW_KEYGEN_RAW_SIZE] = "";
	const char *uid, *tid;
	size_t i;
	enum gw_status st;

	if ((st = gw_mgmt_read_object(req, &body, &f)) != GW_OK ||
	    (st = gw_mgmt_take_fields(body, GW_MGMT_USER, &s, &f)) != GW_OK)
		goto out;
	if ((uid = gw_json_get_str(body, "user_id")) == NULL) {
		gw_uuid4(req->ctx->rng, id);
		uid = id;
	}
	if ((st = gw_mgmt_check_id("user_id", uid, &f)) != GW_OK)
		goto out;
	gw_mgmt_stmt_set(&s, "user_id", "$?", uid);
	if ((st = gw_mgmt_begin(req, &f)) != GW_OK)
		goto out;
	tid = gw_json_get_str(body, "team_id");
	if (tid == NULL || (st = gw_mgmt_require_team(req, tid, &f)) == GW_OK)
		st = insert_entity(req, USER, uid, &s, &rows, &f);
	ak = gw_json_get(body, "auto_create_key");
	if (st == GW_OK && (ak == NULL || json_object_get_boolean(ak))) {
		kb = user_key_body(body, uid, tid);
		st = gw_keygen_insert(
		    req, kb, gw_mgmt_caller_name(&c->who), raw, &key, &f);
	}
	if ((st = gw_mgmt_end(req, st, &f)) != GW_OK)
		goto out;
	row = gw_mgmt_row_json(rows, 0, 0);
	if (key != NULL) {
		json_object_object_add(row, "key", json_object_new_string(raw));
		for (i = 0; i < GW_ARRAY_LEN(shown); i++)
			if (json_object_object_get_ex(key, shown[i], &v))
				json_object_object_add(
				    row, shown[i], json_object_get(v));
	}
	gw_reply_json(req, 200, row);
out:
	explicit_bzero(raw, sizeof(raw));
	json_object_put(body);
	json_object_put(kb);
	json_object_put(row);
	json_object_put(key);
	gw_db_rows_free(rows);
	gw_mgmt_stmt_fini(&s);
	return st == GW_OK ? GW_OK : gw_mgmt_reply_fail(req, &f);
}

enum gw_status
gw_org_team_new(struct gw_req *req, struct gw_route_call *c GW_UNUSED)
{
	json_object *body = NULL, *row = NULL, *members;
	struct gw_mgmt_stmt s = {0};
	struct gw_db_rows *rows = NULL;
	struct gw_mgmt_fail f;
	char id[64];
	const char *tid;
	enum gw_status st;

	if ((st = gw_mgmt_read_object(req, &body, &f)) != GW_OK ||
	    (st = gw_mgmt_take_fields(body, GW_MGMT_TEAM, &s, &f)) != GW_OK)
		goto out;
	tid = gw_json_get_str(body, "team_id");
	if (gw_json_get(body, "team_id") != NULL && tid == NULL) {
		st = gw_mgmt_invalid(
		    &f, "team_id", "'team_id' must be a string");
		goto out;
	}
	if (tid == NULL || tid[0] == '\0') {
		gw_uuid4(req->ctx->rng, id);
		tid = id;
	}
	if ((st = gw_mgmt_check_id("team_id", tid, &f)) != GW_OK)
		goto out;
	gw_mgmt_stmt_set(&s, "team_id", "$?", tid);
	members = gw_json_get(body, "members_with_roles");
	if ((st = gw_mgmt_begin(req, &f)) != GW_OK)
		goto out;
	st = insert_entity(req, TEAM, tid, &s, &rows, &f);
	if (st == GW_OK && members != NULL)
		st = gw_members_add(req, tid, members, NULL, &f);
	gw_db_rows_free(rows);
	rows = NULL;
	if (st == GW_OK)
		st = gw_mgmt_run(req,
		    "SELECT " GW_MGMT_TEAM_JSON
		    " FROM teams x WHERE team_id = $1",
		    1, &tid, &rows, &f);
	if ((st = gw_mgmt_end(req, st, &f)) != GW_OK)
		goto out;
	row = gw_mgmt_row_json(rows, 0, 0);
	gw_reply_json(req, 200, row);
out:
	json_object_put(body);
	json_object_put(row);
	gw_db_rows_free(rows);
	gw_mgmt_stmt_fini(&s);
	return st == GW_OK ? GW_OK : gw_mgmt_reply_fail(req, &f);
}

/*
 * The user or team id (its row parsed into *info, a 404 when none) and
 * the keys that belong to it, oldest first, into *keys.
 */
static enum gw_status
load_entity(struct gw_req *req, const struct entity *e, const char *id,
    json_object **info, struct gw_db_rows **keys, struct gw_mgmt_fail *f)
{
	struct gw_db_rows *rows = NULL;
	struct gw_buf sql = {0};
	const char *p[1] = {id};
	enum gw_status st;

	gw_buf_printf(&sql, "SELECT %s FROM %s x WHERE %s = $1",
	    e == TEAM ? GW_MGMT_TEAM_JSON : "(to_jsonb(x))::text", e->table,
	    e->id);
	if ((st = gw_mgmt_run(req, sql.p, 1, p, &rows, f)) != GW_OK)
		goto out;
	if (gw_db_rows_count(rows) == 0) {
		st = gw_mgmt_set_fail(
		    f, 404, "not_found_error", e->id, "%s not found", e->name);
		goto out;
	}
	gw_buf_reset(&sql, 0);
	gw_buf_printf(&sql,
	    "SELECT " GW_MGMT_KEY_JSON " FROM keys k WHERE %s = $1 ORDER BY "
	    "created_at",
	    e->id);
	if ((st = gw_mgmt_run(req, sql.p, 1, p, keys, f)) != GW_OK)
		goto out;
	*info = gw_mgmt_row_json(rows, 0, 0);
out:
	gw_db_rows_free(rows);
	gw_buf_fini(&sql);
	return st;
}

enum gw_status
gw_org_user_info(struct gw_req *req, struct gw_route_call *c)
{
	static const char *const top[] = {"spend", "max_budget", "models",
	    "user_role", "team_id", "user_alias", "user_email"};
	const struct gw_principal *who = &c->who;
	const char *own = who->rec != NULL ? who->rec->user_id : NULL;
	json_object *info = NULL, *out = NULL;
	struct gw_db_rows *keys = NULL, *teams = NULL;
	struct gw_mgmt_fail f;
	char q[GW_MGMT_ID_MAX + 1];
	const char *p[1] = {q};
	enum gw_status st;

	if ((st = gw_mgmt_query_opt(req, "user_id", q, sizeof(q), &f)) != GW_OK)
		goto out;
	if (q[0] == '\0') {
		if (own == NULL) {
			st = gw_mgmt_invalid(&f, "user_id",
			    "Pass ?user_id= (this caller has no user)");
			goto out;
		}
		snprintf(q, sizeof(q), "%s", own);
	} else if (!gw_auth_can_read_all(who) &&
	           (own == NULL || strcmp(own, q) != 0)) {
		st = gw_mgmt_forbidden(&f, "user_id",
		    "Only a proxy_admin or proxy_admin_viewer can read another "
		    "user's info");
		goto out;
	}
	if ((st = load_entity(req, USER, q, &info, &keys, &f)) != GW_OK ||
	    (st = gw_mgmt_run(req,
	         "SELECT (to_jsonb(t))::text FROM teams t WHERE team_id IN "
	         "(SELECT team_id FROM users WHERE user_id = $1 UNION SELECT "
	         "team_id FROM keys WHERE user_id = $1)",
	         1, p, &teams, &f)) != GW_OK)
		goto out;
	out = gw_mgmt_info_new(
	    "user_id", q, top, GW_ARRAY_LEN(top), "user_info", info);
	json_object_object_add(out, "keys", gw_mgmt_rows_json(keys, 0));
	json_object_object_add(out, "teams", gw_mgmt_rows_json(teams, 0));
	gw_reply_json(req, 200, out);
out:
	json_object_put(info);
	json_object_put(out);
	gw_db_rows_free(keys);
	gw_db_rows_free(teams);
	return st == GW_OK ? GW_OK : gw_mgmt_reply_fail(req, &f);
}

/*
 * A member who may not read everything sees a teammate's key without its
 * metadata (#15, 9): alias, spend, models and limits, as the team's
 * budget needs, but not what an owner or an admin wrote on it. Its own
 * keys (by user, or the very key calling) stay whole.
 */
static void
hide_teammates_metadata(const struct gw_principal *who, json_object *keys)
{
	const char *own = gw_mgmt_caller_user(who), *uid, *tok;
	size_t i, n;

	if (gw_auth_can_read_all(who) || keys == NULL ||
	    !json_object_is_type(keys, json_type_array))
		return;
	n = json_object_array_length(keys);
	for (i = 0; i < n; i++) {
		json_object *k = json_object_array_get_idx(keys, i);

		uid = gw_json_get_str(k, "user_id");
		tok = gw_json_get_str(k, "token");
		if ((own != NULL && uid != NULL && strcmp(uid, own) == 0) ||
		    (who->rec != NULL && tok != NULL &&
		        strcmp(tok, who->rec->token) == 0))
			continue;
		json_object_object_del(k, "metadata");
	}
}

enum gw_status
gw_org_team_info(struct gw_req *req, struct gw_route_call *c)
{
	const struct gw_principal *who = &c->who;
	const char *own = who->rec != NULL ? who->rec->team_id : NULL;
	json_object *info = NULL, *out = NULL;
	struct gw_db_rows *keys = NULL;
	struct gw_mgmt_fail f;
	char q[GW_MGMT_ID_MAX + 1];
	enum gw_status st;

	if ((st = gw_mgmt_query_opt(req, "team_id", q, sizeof(q), &f)) != GW_OK)
		goto out;
	if (q[0] == '\0' && own != NULL)
		snprintf(q, sizeof(q), "%s", own);
	if (q[0] == '\0') {
		st = gw_mgmt_invalid(&f, "team_id", "'team_id' is required");
		goto out;
	}
	if (!gw_auth_can_read_all(who) &&
	    (own == NULL || strcmp(own, q) != 0)) {
		const char *uid = gw_mgmt_caller_user(who);
		int yes = 0;

		if (uid != NULL && (st = gw_members_is_member(
		                        req, q, uid, 0, &yes, &f)) != GW_OK)
			goto out;
		if (!yes) {
			st = gw_mgmt_forbidden(&f, "team_id",
			    "Only a proxy_admin, a proxy_admin_viewer or a "
			    "member can read a team's info");
			goto out;
		}
	}
	if ((st = load_entity(req, TEAM, q, &info, &keys, &f)) != GW_OK)
		goto out;
	out = gw_mgmt_info_new("team_id", q, NULL, 0, "team_info", info);
	json_object_object_add(out, "keys", gw_mgmt_rows_json(keys, 0));
	hide_teammates_metadata(who, gw_json_get(out, "keys"));
	gw_reply_json(req, 200, out);
out:
	json_object_put(info);
	json_object_put(out);
	gw_db_rows_free(keys);
	return st == GW_OK ? GW_OK : gw_mgmt_reply_fail(req, &f);
}

enum gw_status
gw_org_update(struct gw_req *req, struct gw_route_call *c)
{
	const struct entity *e = c->route->arg ? TEAM : USER;
	json_object *body = NULL, *row = NULL, *out = NULL;
	struct gw_mgmt_stmt s = {0};
	struct gw_db_rows *rows = NULL;
	struct gw_buf sql = {0};
	struct gw_mgmt_fail f;
	const char *id;
	enum gw_status st;
	int n;

	if ((st = gw_mgmt_read_object(req, &body, &f)) != GW_OK)
		goto out;
	if ((id = gw_json_get_str(body, e->id)) == NULL) {
		st = gw_mgmt_invalid(&f, e->id, "'%s' is required", e->id);
		goto out;
	}
	if ((st = gw_mgmt_take_fields(body, e->fields, &s, &f)) != GW_OK ||
	    (e == USER && (st = gw_mgmt_take_spend(body, &s, &f)) != GW_OK))
		goto out;
	if (s.n == 0) {
		st = gw_mgmt_invalid(&f, NULL, "Nothing to update");
		goto out;
	}
	n = gw_mgmt_stmt_param(&s, id);
	gw_buf_printf(&sql,
	    "UPDATE %s AS x SET %s, updated_at = now() WHERE %s = $%d "
	    "RETURNING %s",
	    e->table, s.sets.p, e->id, n,
	    e == TEAM ? GW_MGMT_TEAM_JSON : "(to_jsonb(x))::text");
	if ((st = gw_mgmt_begin(req, &f)) != GW_OK)
		goto out;
	/* An admin's spend: the old one recorded as a reset would be. */
	if (e == USER && gw_json_get(body, "spend") != NULL)
		st = gw_mgmt_record_reset(req, e->fields, id, &f);
	if (st == GW_OK)
		st = gw_mgmt_run(req, sql.p, s.n, s.params, &rows, &f);
	if (st == GW_OK && gw_db_rows_count(rows) == 0)
		st = gw_mgmt_set_fail(
		    &f, 404, "not_found_error", e->id, "%s not found", e->name);
	if ((st = gw_mgmt_end(req, st, &f)) != GW_OK)
		goto out;
	row = gw_mgmt_row_json(rows, 0, 0);
	if (e == TEAM) {
		/* LiteLLM's {"team_id", "data"}. */
		out = json_object_new_object();
		json_object_object_add(
		    out, "team_id", json_object_new_string(id));
		json_object_object_add(out, "data", json_object_get(row));
		gw_reply_json(req, 200, out);
	} else {
		gw_reply_json(req, 200, row);
	}
out:
	json_object_put(body);
	json_object_put(row);
	json_object_put(out);
	gw_db_rows_free(rows);
	gw_buf_fini(&sql);
	gw_mgmt_stmt_fini(&s);
	return st == GW_OK ? GW_OK : gw_mgmt_reply_fail(req, &f);
}

enum gw_status
gw_org_delete(struct gw_req *req, struct gw_route_call *c)
{
	const struct entity *e = c->route->arg ? TEAM : USER;
	json_object *body = NULL, *list, *out = NULL;
	struct gw_db_rows *rows = NULL;
	struct gw_buf sql = {0}, keys = {0};
	struct gw_mgmt_fail f;
	const char *p[2];
	enum gw_status st;

	if ((st = gw_mgmt_read_object(req, &body, &f)) != GW_OK)
		goto out;
	list = gw_json_get(body, e->ids);
	if (list == NULL || !json_object_is_type(list, json_type_array) ||
	    json_object_array_length(list) == 0) {
		st = gw_mgmt_invalid(
		    &f, e->ids, "'%s' must be a non-empty array", e->ids);
		goto out;
	}
	p[0] = gw_json_str(list, NULL);
	p[1] = gw_mgmt_caller_name(&c->who);
	gw_buf_printf(&sql,
	    "DELETE FROM %s WHERE %s IN (SELECT "
	    "json_array_elements_text($1::json)) RETURNING %s",
	    e->table, e->id, e->id);
	if ((st = gw_mgmt_begin(req, &f)) != GW_OK)
		goto out;
	/*
	 * A team's or a user's keys go with it, kept in deleted_keys
	 * (LiteLLM's way; without this a user's keys went by the foreign
	 * key's cascade and left no trace).
	 */
	gw_buf_printf(&keys,
	    "WITH d AS (DELETE FROM keys WHERE %s IN (SELECT "
	    "json_array_elements_text($1::json)) RETURNING *) INSERT "
	    "INTO deleted_keys (token, key_name, key_alias, user_id, "
	    "team_id, spend, row_data, deleted_by) SELECT token, "
	    "key_name, key_alias, user_id, team_id, spend, to_jsonb(d), "
	    "$2 FROM d",
	    e->id);
	st = gw_mgmt_run(req, keys.p, 2, p, NULL, &f);
	if (st == GW_OK)
		st = gw_mgmt_run(req, sql.p, 1, p, &rows, &f);
	if (st == GW_OK && gw_db_rows_count(rows) == 0)
		st = gw_mgmt_set_fail(&f, 404, "not_found_error", e->ids,
		    "None of the %s given exist", e->plural);
	if ((st = gw_mgmt_end(req, st, &f)) != GW_OK)
		goto out;
	out = json_object_new_object();
	json_object_object_add(out, e->deleted, gw_mgmt_rows_strings(rows, 0));
	gw_reply_json(req, 200, out);
out:
	json_object_put(body);
	json_object_put(out);
	gw_db_rows_free(rows);
	gw_buf_fini(&sql);
	gw_buf_fini(&keys);
	return st == GW_OK ? GW_OK : gw_mgmt_reply_fail(req, &f);
}

enum gw_status
gw_org_user_list(struct gw_req *req, struct gw_route_call *c GW_UNUSED)
{
	json_object *out = NULL;
	struct gw_db_rows *rows = NULL, *cnt = NULL;
	struct gw_mgmt_fail f;
	char role[64], ids[1024], lim[16], off[16];
	const char *p[4] = {NULL, NULL, lim, off};
	long page, size, total;
	enum gw_status st;

	if ((st = gw_mgmt_query_int(req, "page", 1, 1000000, &page, &f)) !=
	        GW_OK ||
	    (st = gw_mgmt_query_int(req, "page_size", 25, 100, &size, &f)) !=
	        GW_OK ||
	    (st = gw_mgmt_query_opt(req, "role", role, sizeof(role), &f)) !=
	        GW_OK ||
	    (st = gw_mgmt_query_opt(req, "user_ids", ids, sizeof(ids), &f)) !=
	        GW_OK)
		goto out;
	p[0] = role[0] ? role : NULL;
	p[1] = ids[0] ? ids : NULL;
	snprintf(lim, sizeof(lim), "%ld", size);
	snprintf(off, sizeof(off), "%ld", (page - 1) * size);
#define USER_WHERE                                                             \
	"($1::text IS NULL OR user_role = $1) AND ($2::text IS NULL OR "       \
	"user_id = ANY (string_to_array($2, ',')))"
	if ((st = gw_mgmt_run(req,
	         "SELECT count(*) FROM users WHERE " USER_WHERE, 2, p, &cnt,
	         &f)) != GW_OK ||
	    (st = gw_mgmt_run(req,
	         "SELECT (to_jsonb(x) || jsonb_build_object('key_count', "
	         "(SELECT count(*) FROM keys k WHERE k.user_id = x.user_id)))"
	         "::text FROM users x WHERE " USER_WHERE
	         " ORDER BY created_at, user_id LIMIT $3::bigint OFFSET "
	         "$4::bigint",
	         4, p, &rows, &f)) != GW_OK)
		goto out;
#undef USER_WHERE
	total = atol(gw_db_rows_get(cnt, 0, 0));
	out = json_object_new_object();
	json_object_object_add(out, "users", gw_mgmt_rows_json(rows, 0));
	json_object_object_add(out, "total", json_object_new_int64(total));
	json_object_object_add(out, "page", json_object_new_int64(page));
	json_object_object_add(out, "page_size", json_object_new_int64(size));
	json_object_object_add(out, "total_pages",
	    json_object_new_int64((total + size - 1) / size));
	gw_reply_json(req, 200, out);
out:
	json_object_put(out);
	gw_db_rows_free(rows);
	gw_db_rows_free(cnt);
	return st == GW_OK ? GW_OK : gw_mgmt_reply_fail(req, &f);
}

enum gw_status
gw_org_team_list(struct gw_req *req, struct gw_route_call *c)
{
	const struct gw_principal *who = &c->who;
	struct gw_db_rows *rows = NULL;
	struct gw_mgmt_fail f;
	json_object *out = NULL;
	char uid[GW_MGMT_ID_MAX + 1];
	const char *p[3] = {NULL, NULL, NULL};
	enum gw_status st;
	size_t i;

	if ((st = gw_mgmt_query_opt(req, "user_id", uid, sizeof(uid), &f)) !=
	    GW_OK)
		goto out;
	p[0] = uid[0] ? uid : NULL;
	if (!gw_auth_can_read_all(who)) {
		const char *own = gw_mgmt_caller_user(who);

		if (uid[0] && (own == NULL || strcmp(uid, own) != 0)) {
			st = gw_mgmt_forbidden(&f, "user_id",
			    "Only a proxy_admin or proxy_admin_viewer can list "
			    "another user's teams");
			goto out;
		}
		/* Its own: the teams it is in, and its key's. */
		p[1] = own != NULL ? own : "";
		p[2] = who->rec != NULL ? who->rec->team_id : NULL;
	}
	if ((st = gw_mgmt_run(req,
	         "SELECT (" GW_MGMT_TEAM_JSON "::jsonb || jsonb_build_object("
	         "'keys', (SELECT COALESCE(jsonb_agg(to_jsonb(k) ORDER BY "
	         "k.created_at), '[]'::jsonb) FROM keys k WHERE k.team_id = "
	         "x.team_id)))::text FROM teams x WHERE ($1::text IS NULL OR "
	         "team_id IN (SELECT team_id FROM team_members WHERE user_id "
	         "= $1)) AND ($2::text IS NULL OR team_id = $3 OR team_id IN "
	         "(SELECT team_id FROM team_members WHERE user_id = $2)) "
	         "ORDER BY created_at, team_id",
	         3, p, &rows, &f)) != GW_OK)
		goto out;
	out = gw_mgmt_rows_json(rows, 0);
	for (i = 0; i < json_object_array_length(out); i++)
		hide_teammates_metadata(who,
		    gw_json_get(json_object_array_get_idx(out, i), "keys"));
	gw_reply_json(req, 200, out);
out:
	json_object_put(out);
	gw_db_rows_free(rows);
	return st == GW_OK ? GW_OK : gw_mgmt_reply_fail(req, &f);
}
