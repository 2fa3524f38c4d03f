/*
 * keys_api.c: the /key/... routes, and the route table of the keys family
 * (the /user/... and /team/... handlers are org_api.c's).
 */
#include "keys_api.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "db.h"
#include "json_util.h"
#include "keygen.h"
#include "keystore.h"
#include "log.h"
#include "members.h"
#include "mgmt.h"
#include "org_api.h"
#include "req.h"
#include "route.h"
#include "sha256.h"
#include "util.h"

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

static enum gw_status
key_not_found(struct gw_mgmt_fail *f)
{
	return gw_mgmt_set_fail(
	    f, 404, "not_found_error", "key", "Key not found in database");
}

/*
 * Does the key hash belong to who: its user's, or of a team it is an
 * admin of? *yes 1 or 0; a 404 when there is no such key.
 */
static enum gw_status
owns_key(struct gw_req *req, const struct gw_principal *who, const char *hash,
    int *yes, struct gw_mgmt_fail *f)
{
	struct gw_db_rows *rows = NULL;
	const char *p[2] = {hash, gw_mgmt_caller_user(who)};
	enum gw_status st;

	*yes = 0;
	st = gw_mgmt_run(req,
	    "SELECT COALESCE(k.user_id = $2 OR EXISTS (SELECT 1 FROM "
	    "team_members m WHERE m.team_id = k.team_id AND m.user_id = $2 "
	    "AND m.role = 'admin'), false)::int FROM keys k WHERE k.token = "
	    "$1",
	    2, p, &rows, f);
	if (st == GW_OK && gw_db_rows_count(rows) == 0)
		st = key_not_found(f);
	else if (st == GW_OK)
		*yes = strcmp(gw_db_rows_get(rows, 0, 0), "1") == 0;
	gw_db_rows_free(rows);
	return st;
}

/* A 403 unless who is a proxy_admin or owns the key hash (owns_key). */
static enum gw_status
check_owns_key(struct gw_req *req, const struct gw_principal *who,
    const char *hash, struct gw_mgmt_fail *f)
{
	enum gw_status st;
	int yes;

	if (gw_auth_is_admin(who))
		return GW_OK;
	if ((st = owns_key(req, who, hash, &yes, f)) != GW_OK)
		return st;
	if (!yes)
		return gw_mgmt_forbidden(f, "key",
		    "An internal_user can only manage its own keys, or its "
		    "team's as a team admin; this key is another user's");
	return GW_OK;
}

/*
 * What a caller who is not a proxy_admin may put in a key body: its own
 * user_id (filled in on creation when absent), or a member's of a team it
 * is an admin of; models within its user's; a budget within its user's;
 * never spend or blocked.
 */
static enum gw_status
check_self_body(struct gw_req *req, const struct gw_principal *who,
    json_object *body, int creating, struct gw_mgmt_fail *f)
{
	const char *own = gw_mgmt_caller_user(who), *uid, *tid, *m;
	const struct gw_keyrec *k = who->rec;
	json_object *v;
	enum gw_status st;
	size_t i;
	int yes = 0;

	if (gw_auth_is_admin(who))
		return GW_OK;
	if (json_object_object_get_ex(body, "spend", NULL))
		return gw_mgmt_forbidden(
		    f, "spend", "Only a proxy_admin can set a key's spend");
	if (json_object_object_get_ex(body, "blocked", NULL))
		return gw_mgmt_forbidden(f, "blocked",
		    "Only a proxy_admin can block or unblock a key");
	if (own == NULL || k == NULL)
		return gw_mgmt_forbidden(f, "user_id",
		    "This caller has no user: only a proxy_admin can manage "
		    "keys");
	if (json_object_object_get_ex(body, "user_id", &v) && v == NULL)
		return gw_mgmt_forbidden(f, "user_id",
		    "Only a proxy_admin can take a key from its user");
	uid = gw_json_get_str(body, "user_id");
	tid = gw_json_get_str(body, "team_id");
	if (tid != NULL &&
	    (st = gw_members_check_admin(req, who, tid, f)) != GW_OK)
		return st;
	if (uid != NULL && strcmp(uid, own) != 0) {
		if (tid == NULL)
			return gw_mgmt_forbidden(f, "user_id",
			    "An internal_user can only manage its own keys: "
			    "user_id must be '%.100s' (a proxy_admin can "
			    "make keys for anyone)",
			    own);
		if ((st = gw_members_is_member(req, tid, uid, 0, &yes, f)) !=
		    GW_OK)
			return st;
		if (!yes)
			return gw_mgmt_forbidden(f, "user_id",
			    "User '%.100s' is not a member of team '%.100s' "
			    "(a proxy_admin can make keys for anyone)",
			    uid, tid);
	}
	if (uid == NULL && creating)
		json_object_object_add(
		    body, "user_id", json_object_new_string(own));
	v = gw_json_get(body, "models");
	for (i = 0; v != NULL && json_object_is_type(v, json_type_array) &&
	            i < json_object_array_length(v);
	     i++) {
		m = json_object_get_string(json_object_array_get_idx(v, i));
		if (m != NULL && !gw_strlist_allows(&k->user_models, m))
			return gw_mgmt_forbidden(f, "models",
			    "A key's models must be within its user's: this "
			    "user cannot access model '%.100s' (a proxy_admin "
			    "can grant it)",
			    m);
	}
	v = gw_json_get(body, "max_budget");
	if (v != NULL && k->user_max_budget >= 0 &&
	    (json_object_is_type(v, json_type_double) ||
	        json_object_is_type(v, json_type_int)) &&
	    json_object_get_double(v) > k->user_max_budget)
		return gw_mgmt_forbidden(f, "max_budget",
		    "A key's max_budget cannot exceed its user's "
		    "(%.10g); only a proxy_admin can set more",
		    k->user_max_budget);
	return GW_OK;
}

static enum gw_status
key_generate(struct gw_req *req, struct gw_route_call *c)
{
	json_object *body = NULL, *row = NULL;
	struct gw_mgmt_fail f;
	char raw[GW_KEYGEN_RAW_SIZE] = "";
	const char *alias;
	enum gw_status st;

	if ((st = gw_mgmt_read_object(req, &body, &f)) != GW_OK ||
	    (st = check_self_body(req, &c->who, body, 1, &f)) != GW_OK ||
	    (st = gw_mgmt_begin(req, &f)) != GW_OK)
		goto out;
	st = gw_keygen_insert(
	    req, body, gw_mgmt_caller_name(&c->who), raw, &row, &f);
	if ((st = gw_mgmt_end(req, st, &f)) != GW_OK)
		goto out;
	alias = gw_json_get_str(row, "key_alias");
	gw_log_info(req->id, "keys", "generated key %s (%s)",
	    gw_json_get_str(row, "key_name"), alias ? alias : "no alias");
	reply_new_key(req, row, raw);
out:
	explicit_bzero(raw, sizeof(raw));
	json_object_put(body);
	json_object_put(row);
	return st == GW_OK ? GW_OK : gw_mgmt_reply_fail(req, &f);
}

/* The hash for body's "key" field (raw key or hash). */
static enum gw_status
body_key_hash(json_object *body, char hash[65], struct gw_mgmt_fail *f)
{
	const char *k = gw_json_get_str(body, "key");

	if (k == NULL)
		return gw_mgmt_invalid(
		    f, "key", "'key' is required (a key or its hash)");
	if (gw_keystore_hash_of(k, hash) != GW_OK)
		return gw_mgmt_invalid(f, "key",
		    "'key' must be a key (sk-...) or its 64-digit hash");
	return GW_OK;
}

/*
 * The one key row of rows as the answer, or a 404 when there is none:
 * what update, block and unblock answer.
 */
static enum gw_status
reply_key_row(
    struct gw_req *req, const struct gw_db_rows *rows, struct gw_mgmt_fail *f)
{
	json_object *row;

	if (gw_db_rows_count(rows) == 0)
		return key_not_found(f);
	row = gw_mgmt_row_json(rows, 0, 0);
	gw_reply_json(req, 200, row);
	json_object_put(row);
	return GW_OK;
}

static enum gw_status
key_update(struct gw_req *req, struct gw_route_call *c)
{
	json_object *body = NULL;
	struct gw_mgmt_stmt s = {0};
	struct gw_db_rows *rows = NULL;
	struct gw_buf sql = {0};
	struct gw_mgmt_fail f;
	char hash[65];
	const char *uid, *tid;
	enum gw_status st;

	if ((st = gw_mgmt_read_object(req, &body, &f)) != GW_OK ||
	    (st = body_key_hash(body, hash, &f)) != GW_OK ||
	    (st = gw_mgmt_take_fields(body, GW_MGMT_KEY, &s, &f)) != GW_OK ||
	    (st = gw_mgmt_take_spend(body, &s, &f)) != GW_OK)
		goto out;
	if (s.n == 0) {
		st = gw_mgmt_invalid(&f, NULL, "Nothing to update");
		goto out;
	}
	if ((st = check_owns_key(req, &c->who, hash, &f)) != GW_OK ||
	    (st = check_self_body(req, &c->who, body, 0, &f)) != GW_OK ||
	    (st = gw_mgmt_begin(req, &f)) != GW_OK)
		goto out;
	uid = gw_json_get_str(body, "user_id");
	tid = gw_json_get_str(body, "team_id");
	/* An admin's spend: the old one recorded as a reset would be. */
	if (gw_json_get(body, "spend") != NULL)
		st = gw_mgmt_record_reset(req, GW_MGMT_KEY, hash, &f);
	if (st == GW_OK &&
	    (uid == NULL ||
	        (st = gw_mgmt_ensure_user(req, uid, &f)) == GW_OK) &&
	    (tid == NULL ||
	        (st = gw_mgmt_require_team(req, tid, &f)) == GW_OK)) {
		int n = gw_mgmt_stmt_param(&s, hash);

		gw_buf_printf(&sql,
		    "UPDATE keys AS k SET %s, updated_at = now() WHERE token = "
		    "$%d RETURNING " GW_MGMT_KEY_JSON,
		    s.sets.p, n);
		st = gw_mgmt_run(req, sql.p, s.n, s.params, &rows, &f);
		if (st == GW_OK && gw_db_rows_count(rows) == 0)
			st = key_not_found(&f);
	}
	if ((st = gw_mgmt_end(req, st, &f)) == GW_OK)
		st = reply_key_row(req, rows, &f);
out:
	json_object_put(body);
	gw_db_rows_free(rows);
	gw_buf_fini(&sql);
	gw_mgmt_stmt_fini(&s);
	return st == GW_OK ? GW_OK : gw_mgmt_reply_fail(req, &f);
}

/*
 * "keys": raw keys or hashes; "key_aliases": aliases. Each deleted key
 * moves to deleted_keys, with who deleted it.
 */
static enum gw_status
key_delete(struct gw_req *req, struct gw_route_call *c)
{
	json_object *body = NULL, *list, *match = NULL, *out = NULL;
	struct gw_db_rows *rows = NULL;
	struct gw_buf sql = {0};
	struct gw_mgmt_fail f;
	const char *params[2], *field = "keys", *column = "token";
	char hash[65];
	size_t j, m;
	int by_alias = 0, n;
	enum gw_status st;

	if ((st = gw_mgmt_read_object(req, &body, &f)) != GW_OK)
		goto out;
	if ((list = gw_json_get(body, "keys")) == NULL) {
		list = gw_json_get(body, "key_aliases");
		field = "key_aliases";
		column = "key_alias";
		by_alias = 1;
	}
	if (list == NULL || !json_object_is_type(list, json_type_array) ||
	    json_object_array_length(list) == 0) {
		st = gw_mgmt_invalid(&f, "keys",
		    "'keys' (or 'key_aliases') must be a non-empty array");
		goto out;
	}
	/* What to match in column: hashes for keys, aliases as given. */
	m = json_object_array_length(list);
	match = json_object_new_array();
	for (j = 0; j < m; j++) {
		json_object *it = json_object_array_get_idx(list, j);
		const char *v = json_object_get_string(it);

		if (!json_object_is_type(it, json_type_string) ||
		    (!by_alias && gw_keystore_hash_of(v, hash) != GW_OK)) {
			st = gw_mgmt_invalid(&f, field, "Each entry must be %s",
			    by_alias ? "a string"
			             : "a key (sk-...) or its hash");
			goto out;
		}
		json_object_array_add(
		    match, json_object_new_string(by_alias ? v : hash));
	}
	if (by_alias && !gw_auth_is_admin(&c->who)) {
		st = gw_mgmt_forbidden(&f, "key_aliases",
		    "Only a proxy_admin can delete keys by alias; pass 'keys'");
		goto out;
	}
	/* Someone else's key among them: nothing is deleted. */
	for (j = 0; !by_alias && !gw_auth_is_admin(&c->who) && j < m; j++) {
		const char *h =
		    json_object_get_string(json_object_array_get_idx(match, j));
		int yes;

		st = owns_key(req, &c->who, h, &yes, &f);
		if (st != GW_OK && f.status == 404)
			continue; /* unknown: the delete's answer says so */
		if (st != GW_OK)
			goto out;
		if (!yes) {
			st = gw_mgmt_forbidden(&f, "keys",
			    "An internal_user can only delete its own keys, "
			    "or its team's as a team admin");
			goto out;
		}
	}
	st = GW_OK;
	params[0] = gw_json_str(match, NULL);
	params[1] = gw_mgmt_caller_name(&c->who);
	gw_buf_printf(&sql,
	    "WITH d AS (DELETE FROM keys WHERE %s IN (SELECT "
	    "json_array_elements_text($1::json)) RETURNING *) INSERT INTO "
	    "deleted_keys (token, key_name, key_alias, user_id, team_id, "
	    "spend, row_data, deleted_by) SELECT token, key_name, key_alias, "
	    "user_id, team_id, spend, to_jsonb(d), $2 FROM d RETURNING %s",
	    column, column);
	if ((st = gw_mgmt_run(req, sql.p, 2, params, &rows, &f)) != GW_OK)
		goto out;
	if ((n = gw_db_rows_count(rows)) == 0) {
		st = gw_mgmt_set_fail(&f, 404, "not_found_error", field,
		    "None of the keys given exist");
		goto out;
	}
	/* LiteLLM's answer: what was passed, as it was passed. */
	out = json_object_new_object();
	json_object_object_add(out, "deleted_keys", json_object_get(list));
	gw_log_info(req->id, "keys", "deleted %d key(s)", n);
	gw_reply_json(req, 200, out);
out:
	json_object_put(body);
	json_object_put(match);
	json_object_put(out);
	gw_db_rows_free(rows);
	gw_buf_fini(&sql);
	return st == GW_OK ? GW_OK : gw_mgmt_reply_fail(req, &f);
}

/* /key/block (arg 1) and /key/unblock (arg 0). */
static enum gw_status
key_set_blocked(struct gw_req *req, struct gw_route_call *c)
{
	json_object *body = NULL;
	struct gw_db_rows *rows = NULL;
	struct gw_mgmt_fail f;
	char hash[65];
	const char *p[2] = {hash, c->route->arg ? "true" : "false"};
	enum gw_status st;

	if ((st = gw_mgmt_read_object(req, &body, &f)) != GW_OK ||
	    (st = body_key_hash(body, hash, &f)) != GW_OK ||
	    (st = gw_mgmt_run(req,
	         "UPDATE keys AS k SET blocked = $2::boolean, updated_at = "
	         "now() WHERE token = $1 RETURNING " GW_MGMT_KEY_JSON,
	         2, p, &rows, &f)) != GW_OK)
		goto out;
	st = reply_key_row(req, rows, &f);
out:
	json_object_put(body);
	gw_db_rows_free(rows);
	return st == GW_OK ? GW_OK : gw_mgmt_reply_fail(req, &f);
}

/*
 * A new raw key for an existing one (in the body, or LiteLLM's
 * /key/{key}/regenerate): the old one is refused at once.
 */
static enum gw_status
key_regenerate(struct gw_req *req, struct gw_route_call *c)
{
	json_object *body = NULL, *row = NULL;
	struct gw_db_rows *rows = NULL;
	struct gw_mgmt_fail f;
	char old[65], hash[65], raw[GW_KEYGEN_RAW_SIZE] = "";
	char name[GW_KEYGEN_NAME_SIZE];
	const char *p[3] = {hash, name, old};
	enum gw_status st;

	if ((st = gw_mgmt_read_object(req, &body, &f)) != GW_OK)
		goto out;
	if (c->param[0] != '\0') {
		if (gw_keystore_hash_of(c->param, old) != GW_OK) {
			st = gw_mgmt_invalid(&f, "key",
			    "The path must name a key (sk-...) or its hash");
			goto out;
		}
	} else if ((st = body_key_hash(body, old, &f)) != GW_OK) {
		goto out;
	}
	if ((st = check_owns_key(req, &c->who, old, &f)) != GW_OK)
		goto out;
	gw_keygen_raw(raw);
	gw_sha256_hex(raw, strlen(raw), hash);
	gw_keygen_name(raw, name);
	if ((st = gw_mgmt_run(req,
	         "UPDATE keys AS k SET token = $1, key_name = $2, updated_at = "
	         "now() WHERE token = $3 RETURNING " GW_MGMT_KEY_JSON,
	         3, p, &rows, &f)) != GW_OK)
		goto out;
	if (gw_db_rows_count(rows) == 0) {
		st = key_not_found(&f);
		goto out;
	}
	row = gw_mgmt_row_json(rows, 0, 0);
	gw_log_info(req->id, "keys", "regenerated key, now %s", name);
	reply_new_key(req, row, raw);
out:
	explicit_bzero(raw, sizeof(raw));
	json_object_put(body);
	json_object_put(row);
	gw_db_rows_free(rows);
	return st == GW_OK ? GW_OK : gw_mgmt_reply_fail(req, &f);
}

/*
 * GET /key/info: the caller's own key, or ?key= (raw or hash) for an
 * admin (or for the key itself). The spec's KeyInfo fields at the top,
 * LiteLLM's {"key","info"} beside them.
 */
static enum gw_status
key_info(struct gw_req *req, struct gw_route_call *c)
{
	static const char *const top[] = {"models", "spend", "max_budget",
	    "expires", "user_id", "team_id", "key_name", "key_alias",
	    "blocked"};
	const struct gw_principal *who = &c->who;
	json_object *info = NULL, *out = NULL;
	struct gw_db_rows *rows = NULL;
	struct gw_mgmt_fail f;
	char q[160], hash[65];
	const char *p[1] = {hash};
	enum gw_status st;
	int yes;

	if ((st = gw_mgmt_query_opt(req, "key", q, sizeof(q), &f)) != GW_OK)
		goto out;
	if (q[0] != '\0') {
		if (gw_keystore_hash_of(q, hash) != GW_OK) {
			st = gw_mgmt_invalid(&f, "key",
			    "'key' must be a key (sk-...) or its hash");
			goto out;
		}
	} else if (who->role == GW_ROLE_KEY) {
		snprintf(hash, sizeof(hash), "%s", who->rec->token);
	} else {
		st = gw_mgmt_invalid(&f, "key",
		    "Pass ?key= (the master key and JWTs have no key info)");
		goto out;
	}
	if ((st = gw_mgmt_run(req,
	         "SELECT " GW_MGMT_KEY_JSON " FROM keys k WHERE token = $1", 1,
	         p, &rows, &f)) != GW_OK)
		goto out;
	if (gw_db_rows_count(rows) == 0) {
		st = key_not_found(&f);
		goto out;
	}
	/* Found first (404 for anyone), then whose it is (LiteLLM's order). */
	if (!gw_auth_can_read_all(who) &&
	    (who->role != GW_ROLE_KEY || strcmp(who->rec->token, hash) != 0)) {
		if ((st = owns_key(req, who, hash, &yes, &f)) != GW_OK)
			goto out;
		if (!yes) {
			st = gw_mgmt_forbidden(&f, "key",
			    "Only a proxy_admin or proxy_admin_viewer can read "
			    "another user's key info");
			goto out;
		}
	}
	info = gw_mgmt_row_json(rows, 0, 0);
	out =
	    gw_mgmt_info_new("key", hash, top, GW_ARRAY_LEN(top), "info", info);
	gw_reply_json(req, 200, out);
out:
	json_object_put(info);
	json_object_put(out);
	gw_db_rows_free(rows);
	return st == GW_OK ? GW_OK : gw_mgmt_reply_fail(req, &f);
}

/* The filter of /key/list: $1 user_id, $2 team_id, $3 key_alias (NULL: any). */
#define LIST_WHERE                                                             \
	"($1::text IS NULL OR user_id = $1) AND ($2::text IS NULL OR "         \
	"team_id = $2) AND ($3::text IS NULL OR key_alias = $3)"

/* GET /key/list?page=&size=&user_id=&team_id=&key_alias=&return_full_object= */
static enum gw_status
key_list(struct gw_req *req, struct gw_route_call *c)
{
	json_object *out = NULL;
	struct gw_db_rows *rows = NULL, *cnt = NULL;
	struct gw_mgmt_fail f;
	char uid[GW_MGMT_ID_MAX + 1], tid[GW_MGMT_ID_MAX + 1], alias[256],
	    full[16];
	char lim[16], off[16];
	const char *p[5] = {NULL, NULL, NULL, lim, off};
	long page, size, total;
	enum gw_status st;

	if ((st = gw_mgmt_query_int(req, "page", 1, 1000000, &page, &f)) !=
	        GW_OK ||
	    (st = gw_mgmt_query_int(req, "size", 10, 100, &size, &f)) !=
	        GW_OK ||
	    (st = gw_mgmt_query_opt(req, "user_id", uid, sizeof(uid), &f)) !=
	        GW_OK ||
	    (st = gw_mgmt_query_opt(req, "team_id", tid, sizeof(tid), &f)) !=
	        GW_OK ||
	    (st = gw_mgmt_query_opt(
	         req, "key_alias", alias, sizeof(alias), &f)) != GW_OK ||
	    (st = gw_mgmt_query_opt(
	         req, "return_full_object", full, sizeof(full), &f)) != GW_OK)
		goto out;
	/* Not a reader of all: its own keys, or a team's as its admin. */
	if (!gw_auth_can_read_all(&c->who)) {
		const char *own = gw_mgmt_caller_user(&c->who);

		if (tid[0] != '\0') {
			if ((st = gw_members_check_admin(
			         req, &c->who, tid, &f)) != GW_OK)
				goto out;
		} else if (own == NULL ||
		           (uid[0] != '\0' && strcmp(uid, own) != 0)) {
			st = gw_mgmt_forbidden(&f, "user_id",
			    "An internal_user can only list its own keys, or "
			    "its team's as a team admin");
			goto out;
		} else {
			snprintf(uid, sizeof(uid), "%s", own);
		}
	}
	p[0] = uid[0] ? uid : NULL;
	p[1] = tid[0] ? tid : NULL;
	p[2] = alias[0] ? alias : NULL;
	snprintf(lim, sizeof(lim), "%ld", size);
	snprintf(off, sizeof(off), "%ld", (page - 1) * size);
	if ((st = gw_mgmt_run(req,
	         "SELECT count(*) FROM keys WHERE " LIST_WHERE, 3, p, &cnt,
	         &f)) != GW_OK ||
	    (st = gw_mgmt_run(req,
	         "SELECT token, " GW_MGMT_KEY_JSON
	         " FROM keys k WHERE " LIST_WHERE
	         " ORDER BY created_at DESC, token LIMIT $4::bigint OFFSET "
	         "$5::bigint",
	         5, p, &rows, &f)) != GW_OK)
		goto out;
	total = atol(gw_db_rows_get(cnt, 0, 0));
	out = json_object_new_object();
	json_object_object_add(out, "keys",
	    strcmp(full, "true") == 0 ? gw_mgmt_rows_json(rows, 1)
	                              : gw_mgmt_rows_strings(rows, 0));
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
	return st == GW_OK ? GW_OK : gw_mgmt_reply_fail(req, &f);
}

/*
 * The keys family, one line a route. arg: 1 for block; for /team/... (the
 * same handlers as /user/...).
 */
static const struct gw_route routes[] = {
    {"POST", "/key/generate", GW_ACCESS_SELF, key_generate, NULL, 0, 0},
    {"POST", "/key/update", GW_ACCESS_SELF, key_update, NULL, 0, 0},
    {"POST", "/key/delete", GW_ACCESS_SELF, key_delete, NULL, 0, 0},
    {"GET", "/key/info", GW_ACCESS_CALLER, key_info, NULL, 0, 0},
    {"GET", "/key/list", GW_ACCESS_SELF_READ, key_list, NULL, 0, 0},
    {"POST", "/key/block", GW_ACCESS_ADMIN, key_set_blocked, NULL, 1, 0},
    {"POST", "/key/unblock", GW_ACCESS_ADMIN, key_set_blocked, NULL, 0, 0},
    {"POST", "/key/regenerate", GW_ACCESS_SELF, key_regenerate, NULL, 0, 0},
    /* LiteLLM's /key/{key}/regenerate. */
    {"POST", "/key/{}/regenerate", GW_ACCESS_SELF, key_regenerate,
        "/key/regenerate", 0, GW_ROUTE_SECRET_PARAM},
    {"POST", "/user/new", GW_ACCESS_ADMIN, gw_org_user_new, NULL, 0, 0},
    {"GET", "/user/info", GW_ACCESS_CALLER, gw_org_user_info, NULL, 0, 0},
    {"GET", "/user/list", GW_ACCESS_ADMIN_READ, gw_org_user_list, NULL, 0, 0},
    {"POST", "/user/update", GW_ACCESS_ADMIN, gw_org_update, NULL, 0, 0},
    {"POST", "/user/delete", GW_ACCESS_ADMIN, gw_org_delete, NULL, 0, 0},
    {"POST", "/team/new", GW_ACCESS_ADMIN, gw_org_team_new, NULL, 0, 0},
    {"GET", "/team/info", GW_ACCESS_CALLER, gw_org_team_info, NULL, 0, 0},
    {"GET", "/team/list", GW_ACCESS_CALLER, gw_org_team_list, NULL, 0, 0},
    {"POST", "/team/update", GW_ACCESS_ADMIN, gw_org_update, NULL, 1, 0},
    {"POST", "/team/delete", GW_ACCESS_ADMIN, gw_org_delete, NULL, 1, 0},
    {"POST", "/team/member_add", GW_ACCESS_SELF, gw_members_add_route, NULL, 0,
        0},
    {"POST", "/team/member_delete", GW_ACCESS_SELF, gw_members_delete_route,
        NULL, 0, 0},
    {"POST", "/team/member_update", GW_ACCESS_SELF, gw_members_update_route,
        NULL, 0, 0},
};

/* Every access line says which caller managed what. */
static const struct gw_router router = {NULL, routes, GW_ARRAY_LEN(routes), 1};

enum gw_status
gw_keys_handle(struct gw_req *req)
{
	return gw_dispatch(req, &router);
}
