/*
 * route.h: one route table shape and one dispatcher for every family.
 *
 * A family lists its routes, one line each:
 *   {"POST", "/key/generate", GW_ACCESS_ADMIN, key_generate},
 * and hands each request to gw_dispatch, which strips the family's prefix
 * and trailing slashes, answers 404 (an unknown path) and 405 (a known
 * path, another method, with Allow) the same way for everyone, sets the
 * route's label for logs and metrics, authenticates the caller as the
 * route asks (403 for a caller whose role the route's access does not
 * hold) and calls the handler with the caller.
 */
#ifndef GW_ROUTE_H
#define GW_ROUTE_H

#include <stddef.h>

#include "auth.h"
#include "err.h"

struct gw_req;
struct gw_route_call;

/*
 * Who may call a route: the set of user roles (auth.h) allowed; anyone
 * else is answered 403, with the roles needed. What a caller may do with
 * another's keys, users or teams is the handler's to check.
 */
enum gw_access {
	GW_ACCESS_PUBLIC = 0, /* nobody is authenticated (health) */
	/* Any authenticated caller: the handler limits it to its own. */
	GW_ACCESS_CALLER = GW_USER_PROXY_ADMIN | GW_USER_PROXY_ADMIN_VIEWER |
	                   GW_USER_INTERNAL | GW_USER_INTERNAL_VIEWER,
	/* Reads of everything: proxy_admin and proxy_admin_viewer. */
	GW_ACCESS_ADMIN_READ = GW_USER_PROXY_ADMIN | GW_USER_PROXY_ADMIN_VIEWER,
	/* Self-service writes: internal_user on its own (handler checks). */
	GW_ACCESS_SELF = GW_USER_PROXY_ADMIN | GW_USER_INTERNAL,
	/* Self-service reads: also proxy_admin_viewer, on everything. */
	GW_ACCESS_SELF_READ =
	    GW_USER_PROXY_ADMIN | GW_USER_PROXY_ADMIN_VIEWER | GW_USER_INTERNAL,
	/* proxy_admin only: the master key, an admin JWT, an admin's key. */
	GW_ACCESS_ADMIN = GW_USER_PROXY_ADMIN,
};

/* Route flags. */
#define GW_ROUTE_SECRET_PARAM 1 /* "{}" is a key: logged as the label */

struct gw_route {
	/* "GET" (which answers HEAD too) or "POST". */
	const char *method;
	/*
	 * Exact ("/key/info"), or with one "{}" matching a non-empty run
	 * that may hold slashes ("/models/{}", "/key/{}/regenerate"): what
	 * it matched is the call's param.
	 */
	const char *path;
	enum gw_access access;
	enum gw_status (*fn)(struct gw_req *req, struct gw_route_call *c);
	/* Label for logs and metrics (static); NULL: the path. */
	const char *label;
	int arg; /* the handler's own (an enum gw_call, say) */
	int flags;
};

/* A route table: what gw_dispatch needs of a family. */
struct gw_router {
	const char *prefix; /* stripped when the path starts with it + "/" */
	const struct gw_route *routes;
	size_t n;
	int log_caller; /* 1: the access line says caller=<key name> */
};

/* What the dispatcher hands a handler. */
struct gw_route_call {
	const struct gw_route *route;
	/*
	 * The caller (role GW_ROLE_NONE on public routes), released after
	 * the handler returns; a handler that keeps it past its return
	 * moves it out (gw_route_take_caller).
	 */
	struct gw_principal who;
	char param[512]; /* what "{}" matched, raw (not URL-decoded), or "" */
};

/*
 * Find the route for method and path (both NUL-ended; path already
 * without prefix and trailing slashes). Returns it, or NULL: then *allow
 * holds the methods of the path ("GET, HEAD", "POST", ...) when the path
 * is known, or "" when it is not. *param_off and *param_len locate what
 * "{}" matched in path (0, 0 for an exact route).
 */
const struct gw_route *gw_route_find(const struct gw_router *rt,
    const char *method, const char *path, size_t *param_off, size_t *param_len,
    char *allow, size_t allowlen) GW_NONNULL(1, 2, 3, 4, 5, 6);

/*
 * Route and answer one request of a family: 404, 405, 401/403/503 from
 * authentication, or the handler's status (GW_OK when it replied,
 * GW_DETACHED when it goes on on the event loop).
 */
enum gw_status gw_dispatch(struct gw_req *req, const struct gw_router *rt)
    GW_NONNULL(1, 2);

/*
 * The 404 every family answers for a path it does not serve, in the
 * OpenAI error shape ("Route not found: GET /x", the path cut at 200).
 */
void gw_route_not_found(struct gw_req *req) GW_NONNULL(1);

/*
 * The refusal of who on a route of access to the route labelled label,
 * LiteLLM's words and the roles needed, into msg: "user not allowed to
 * access this route, role= internal_user_viewer. Trying to access:
 * /key/generate. Needs role proxy_admin or internal_user".
 */
void gw_route_refusal(enum gw_access access, enum gw_user_role role,
    const char *label, char *msg, size_t msglen) GW_NONNULL(3, 4);

/* Move the caller out of c into dst; the dispatcher then releases nothing. */
void gw_route_take_caller(struct gw_route_call *c, struct gw_principal *dst)
    GW_NONNULL(1, 2);

#endif /* GW_ROUTE_H */
