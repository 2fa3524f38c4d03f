/*
 * members.h: team members and their role in the team (LiteLLM's
 * members_with_roles): /team/member_add, /team/member_delete,
 * /team/member_update, and whether a caller is a team's admin, which
 * lets it manage the team's keys and members.
 */
#ifndef GW_MEMBERS_H
#define GW_MEMBERS_H

#include <json-c/json.h>

#include "err.h"

struct gw_mgmt_fail;
struct gw_principal;
struct gw_req;
struct gw_route_call;

/*
 * GW_OK when who is a proxy_admin or an admin member of team_id; else f:
 * a 403 naming the team, or the database's failure.
 */
enum gw_status gw_members_check_admin(struct gw_req *req,
    const struct gw_principal *who, const char *team_id, struct gw_mgmt_fail *f)
    GW_NONNULL(1, 2, 3, 4);

/*
 * Is user_id a member of team_id (with the role admin, when admin)? *yes
 * gets 1 or 0. GW_OK, or the database's failure in f.
 */
enum gw_status gw_members_is_member(struct gw_req *req, const char *team_id,
    const char *user_id, int admin, int *yes, struct gw_mgmt_fail *f)
    GW_NONNULL(1, 2, 3, 5, 6);

/*
 * Add members (a JSON object or array of {"user_id" or "user_email",
 * "role": "admin"|"user"}) to team_id in the caller's transaction, each
 * user created when unknown. *users (may be NULL) gets their rows (a new
 * array). A member already in the team: a 400
 * (team_member_already_in_team).
 */
enum gw_status gw_members_add(struct gw_req *req, const char *team_id,
    json_object *members, json_object **users, struct gw_mgmt_fail *f)
    GW_NONNULL(1, 2, 3, 5);

/* POST /team/member_add {"team_id", "member": {...} or [...]}. */
enum gw_status gw_members_add_route(struct gw_req *req, struct gw_route_call *c)
    GW_NONNULL(1, 2);
/* POST /team/member_delete {"team_id", "user_id" or "user_email"}. */
enum gw_status gw_members_delete_route(
    struct gw_req *req, struct gw_route_call *c) GW_NONNULL(1, 2);
/* POST /team/member_update {"team_id", "user_id", "role"}. */
enum gw_status gw_members_update_route(
    struct gw_req *req, struct gw_route_call *c) GW_NONNULL(1, 2);

#endif /* GW_MEMBERS_H */
