/* members.c: team members, their team role, and team admins. */
#include "members.h"

#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "db.h"
#include "json_util.h"
#include "mgmt.h"
#include "req.h"
#include "route.h"
#include "util.h"

enum gw_status
gw_members_is_member(struct gw_req *req, const char *team_id,
    const char *user_id, int admin, int *yes, struct gw_mgmt_fail *f)
{
	struct gw_db_rows *rows = NULL;
	const char *p[3] = {team_id, user_id, admin ? "admin" : NULL};
	enum gw_status st;

	*yes = 0;
	st = gw_mgmt_run(req,
	    "SELECT 1 FROM team_members WHERE team_id = $1 AND user_id = $2 "
	    "AND ($3::text IS NULL OR role = $3)",
	    3, p, &rows, f);
	if (st == GW_OK)
		*yes = gw_db_rows_count(rows) > 0;
	gw_db_rows_free(rows);
	return st;
}

enum gw_status
gw_members_check_admin(struct gw_req *req, const struct gw_principal *who,
    const char *team_id, struct gw_mgmt_fail *f)
{
	const char *uid = gw_mgmt_caller_user(who);
	enum gw_status st;
	int yes = 0;

	if (gw_auth_is_admin(who))
		return GW_OK;
	if (uid != NULL &&
	    (st = gw_members_is_member(req, team_id, uid, 1, &yes, f)) != GW_OK)
		return st;
	if (!yes)
		return gw_mgmt_forbidden(f, "team_id",
		    "Only a proxy_admin or an admin of team '%.100s' can do "
		    "this",
		    team_id);
	return GW_OK;
}

/* A member's user_id: given, or the user with that email (into buf). */
static enum gw_status
member_user(struct gw_req *req, json_object *m, char *buf, size_t len,
    const char **uid, struct gw_mgmt_fail *f)
{
	struct gw_db_rows *rows = NULL;
	const char *email = gw_json_get_str(m, "user_email"), *p[1];
	enum gw_status st;

	if ((*uid = gw_json_get_str(m, "user_id")) != NULL && (*uid)[0])
		return GW_OK;
	if (email == NULL)
		return gw_mgmt_invalid(f, "member",
		    "Each member needs a 'user_id' or a 'user_email'");
	p[0] = email;
	st = gw_mgmt_run(req,
	    "SELECT user_id FROM users WHERE user_email = $1 ORDER BY "
	    "created_at LIMIT 1",
	    1, p, &rows, f);
	if (st == GW_OK && gw_db_rows_count(rows) == 0)
		st = gw_mgmt_invalid(f, "user_email",
		    "No user has the email '%.100s'; give a 'user_id'", email);
	if (st == GW_OK) {
		snprintf(buf, len, "%s", gw_db_rows_get(rows, 0, 0));
		*uid = buf;
	}
	gw_db_rows_free(rows);
	return st;
}

/* "admin" or "user" (the default), else NULL. */
static const char *
member_role(json_object *m)
{
	const char *r = gw_json_get_str(m, "role");

	if (r == NULL || strcmp(r, "user") == 0)
		return "user";
	return strcmp(r, "admin") == 0 ? "admin" : NULL;
}

enum gw_status
gw_members_add(struct gw_req *req, const char *team_id, json_object *members,
    json_object **users, struct gw_mgmt_fail *f)
{
	struct gw_db_rows *rows = NULL;
	json_object *one = NULL, *list = members, *m;
	char buf[256];
	const char *uid, *p[3];
	enum gw_status st = GW_OK;
	size_t i, n;

	if (users != NULL)
		*users = json_object_new_array();
	if (json_object_is_type(members, json_type_object)) {
		one = json_object_new_array();
		json_object_array_add(one, json_object_get(members));
		list = one;
	}
	if (!json_object_is_type(list, json_type_array)) {
		st = gw_mgmt_invalid(f, "member",
		    "'member' must be an object or an array of them");
		goto out;
	}
	n = json_object_array_length(list);
	for (i = 0; i < n && st == GW_OK; i++) {
		m = json_object_array_get_idx(list, i);
		if (!json_object_is_type(m, json_type_object)) {
			st = gw_mgmt_invalid(
			    f, "member", "Each member must be an object");
			break;
		}
		if ((p[2] = member_role(m)) == NULL) {
			st = gw_mgmt_invalid(
			    f, "role", "'role' must be 'admin' or 'user'");
			break;
		}
		if ((st = member_user(req, m, buf, sizeof(buf), &uid, f)) !=
		        GW_OK ||
		    (st = gw_mgmt_ensure_user(req, uid, f)) != GW_OK)
			break;
		p[0] = team_id;
		p[1] = uid;
		gw_db_rows_free(rows);
		rows = NULL;
		st = gw_mgmt_run(req,
		    "WITH ins AS (INSERT INTO team_members (team_id, user_id, "
		    "role) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING "
		    "RETURNING "
		    "user_id) SELECT (to_jsonb(u))::text FROM users u, ins "
		    "WHERE u.user_id = ins.user_id",
		    3, p, &rows, f);
		if (st == GW_OK && gw_db_rows_count(rows) == 0)
			st = gw_mgmt_set_fail(f, 400,
			    "team_member_already_in_team", "member",
			    "User '%.100s' is already a member of team "
			    "'%.100s'",
			    uid, team_id);
		if (st == GW_OK && users != NULL)
			json_object_array_add(
			    *users, gw_mgmt_row_json(rows, 0, 0));
	}
out:
	json_object_put(one);
	gw_db_rows_free(rows);
	return st;
}

/* The team's row (GW_MGMT_TEAM_JSON) as a new object; a 404 when none. */
static enum gw_status
team_row(struct gw_req *req, const char *team_id, json_object **out,
    struct gw_mgmt_fail *f)
{
	struct gw_db_rows *rows = NULL;
	const char *p[1] = {team_id};
	enum gw_status st;

	*out = NULL;
	st = gw_mgmt_run(req,
	    "SELECT " GW_MGMT_TEAM_JSON " FROM teams x WHERE team_id = $1", 1,
	    p, &rows, f);
	if (st == GW_OK && gw_db_rows_count(rows) == 0)
		st = gw_mgmt_set_fail(
		    f, 404, "not_found_error", "team_id", "Team not found");
	if (st == GW_OK)
		*out = gw_mgmt_row_json(rows, 0, 0);
	gw_db_rows_free(rows);
	return st;
}

/*
 * The body and its team: read, the team required and the caller its
 * admin. *tid is borrowed from *body.
 */
static enum gw_status
begin_member_call(struct gw_req *req, const struct gw_principal *who,
    json_object **body, const char **tid, struct gw_mgmt_fail *f)
{
	enum gw_status st;
	json_object *team = NULL;

	if ((st = gw_mgmt_read_object(req, body, f)) != GW_OK)
		return st;
	if ((*tid = gw_json_get_str(*body, "team_id")) == NULL)
		return gw_mgmt_invalid(f, "team_id", "'team_id' is required");
	if ((st = team_row(req, *tid, &team, f)) == GW_OK)
		st = gw_members_check_admin(req, who, *tid, f);
	json_object_put(team);
	return st;
}

enum gw_status
gw_members_add_route(struct gw_req *req, struct gw_route_call *c)
{
	json_object *body = NULL, *users = NULL, *row = NULL, *m;
	struct gw_mgmt_fail f;
	const char *tid;
	enum gw_status st;

	if ((st = begin_member_call(req, &c->who, &body, &tid, &f)) != GW_OK)
		goto out;
	if ((m = gw_json_get(body, "member")) == NULL) {
		st = gw_mgmt_invalid(&f, "member", "'member' is required");
		goto out;
	}
	if ((st = gw_mgmt_begin(req, &f)) != GW_OK)
		goto out;
	st = gw_members_add(req, tid, m, &users, &f);
	if ((st = gw_mgmt_end(req, st, &f)) != GW_OK ||
	    (st = team_row(req, tid, &row, &f)) != GW_OK)
		goto out;
	/* LiteLLM's TeamAddMemberResponse: the team and who was added. */
	json_object_object_add(row, "updated_users", json_object_get(users));
	json_object_object_add(
	    row, "updated_team_memberships", json_object_new_array());
	gw_reply_json(req, 200, row);
out:
	json_object_put(body);
	json_object_put(users);
	json_object_put(row);
	return st == GW_OK ? GW_OK : gw_mgmt_reply_fail(req, &f);
}

enum gw_status
gw_members_delete_route(struct gw_req *req, struct gw_route_call *c)
{
	json_object *body = NULL, *row = NULL;
	struct gw_db_rows *rows = NULL;
	struct gw_mgmt_fail f;
	char buf[256];
	const char *tid, *uid, *p[2];
	enum gw_status st;

	if ((st = begin_member_call(req, &c->who, &body, &tid, &f)) != GW_OK ||
	    (st = member_user(req, body, buf, sizeof(buf), &uid, &f)) != GW_OK)
		goto out;
	p[0] = tid;
	p[1] = uid;
	if ((st = gw_mgmt_run(req,
	         "DELETE FROM team_members WHERE team_id = $1 AND user_id = "
	         "$2 RETURNING user_id",
	         2, p, &rows, &f)) != GW_OK)
		goto out;
	if (gw_db_rows_count(rows) == 0) {
		st = gw_mgmt_set_fail(&f, 400, "invalid_request_error",
		    "user_id", "User '%.100s' is not a member of team '%.100s'",
		    uid, tid);
		goto out;
	}
	if ((st = team_row(req, tid, &row, &f)) != GW_OK)
		goto out;
	gw_reply_json(req, 200, row);
out:
	json_object_put(body);
	json_object_put(row);
	gw_db_rows_free(rows);
	return st == GW_OK ? GW_OK : gw_mgmt_reply_fail(req, &f);
}

enum gw_status
gw_members_update_route(struct gw_req *req, struct gw_route_call *c)
{
	json_object *body = NULL, *out = NULL;
	struct gw_db_rows *rows = NULL;
	struct gw_mgmt_fail f;
	char buf[256];
	const char *tid, *uid, *p[3];
	enum gw_status st;

	if ((st = begin_member_call(req, &c->who, &body, &tid, &f)) != GW_OK ||
	    (st = member_user(req, body, buf, sizeof(buf), &uid, &f)) != GW_OK)
		goto out;
	if ((p[2] = member_role(body)) == NULL) {
		st = gw_mgmt_invalid(
		    &f, "role", "'role' must be 'admin' or 'user'");
		goto out;
	}
	p[0] = tid;
	p[1] = uid;
	if ((st = gw_mgmt_run(req,
	         "UPDATE team_members SET role = $3 WHERE team_id = $1 AND "
	         "user_id = $2 RETURNING role",
	         3, p, &rows, &f)) != GW_OK)
		goto out;
	if (gw_db_rows_count(rows) == 0) {
		st = gw_mgmt_set_fail(&f, 400, "invalid_request_error",
		    "user_id", "User '%.100s' is not a member of team '%.100s'",
		    uid, tid);
		goto out;
	}
	/* LiteLLM's TeamMemberUpdateResponse, with the role. */
	out = json_object_new_object();
	json_object_object_add(out, "team_id", json_object_new_string(tid));
	json_object_object_add(out, "user_id", json_object_new_string(uid));
	json_object_object_add(out, "role", json_object_new_string(p[2]));
	gw_reply_json(req, 200, out);
out:
	json_object_put(body);
	json_object_put(out);
	gw_db_rows_free(rows);
	return st == GW_OK ? GW_OK : gw_mgmt_reply_fail(req, &f);
}
