/*
 * org_api.h: the /user/... and /team/... routes of the keys family, LiteLLM's
 * user and team management. Their lines are in keys_api.c's route table;
 * each handler answers (route.h's handler contract). For update and
 * delete the route's arg says which: 0 users, 1 teams.
 */
#ifndef GW_ORG_API_H
#define GW_ORG_API_H

#include "err.h"

struct gw_req;
struct gw_route_call;

/*
 * POST /user/new: a user (user_id, or a new UUID) and, unless
 * "auto_create_key" is false, a key for it, in one transaction.
 */
enum gw_status gw_org_user_new(struct gw_req *req, struct gw_route_call *c)
    GW_NONNULL(1, 2);
/* GET /user/info[?user_id=]: the caller's user, or any for an admin. */
enum gw_status gw_org_user_info(struct gw_req *req, struct gw_route_call *c)
    GW_NONNULL(1, 2);
/* POST /team/new: a team (team_id, or a new UUID). */
enum gw_status gw_org_team_new(struct gw_req *req, struct gw_route_call *c)
    GW_NONNULL(1, 2);
/*
 * GET /team/info[?team_id=]: any for a proxy_admin(_viewer), else the
 * caller's key's team or one it is a member of.
 */
enum gw_status gw_org_team_info(struct gw_req *req, struct gw_route_call *c)
    GW_NONNULL(1, 2);
/*
 * GET /user/list?page=&page_size=&role=&user_ids=a,b: LiteLLM's
 * {"users", "total", "page", "page_size", "total_pages"}.
 */
enum gw_status gw_org_user_list(struct gw_req *req, struct gw_route_call *c)
    GW_NONNULL(1, 2);
/*
 * GET /team/list[?user_id=]: LiteLLM's array of teams, each with its
 * members_with_roles and keys: every team for a proxy_admin(_viewer), else
 * the caller's key's team and those it is a member of.
 */
enum gw_status gw_org_team_list(struct gw_req *req, struct gw_route_call *c)
    GW_NONNULL(1, 2);
/*
 * POST /user/update, /team/update: {"user_id"|"team_id", fields...};
 * "spend" (users) resets it, recorded in budget_resets. A user answers
 * its row, a team LiteLLM's {"team_id", "data"}.
 */
enum gw_status gw_org_update(struct gw_req *req, struct gw_route_call *c)
    GW_NONNULL(1, 2);
/*
 * POST /user/delete {"user_ids":[...]} (their keys go too) and
 * /team/delete {"team_ids":[...]} (its keys go too, copied to
 * deleted_keys, as LiteLLM does).
 */
enum gw_status gw_org_delete(struct gw_req *req, struct gw_route_call *c)
    GW_NONNULL(1, 2);

#endif /* GW_ORG_API_H */
