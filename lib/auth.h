/*
 * auth.h: who is calling. Every request of every family goes through
 * gw_auth_check with its bearer token, which is one of:
 *   - the master key (compared in constant time): an admin;
 *   - a JWT (see jwtauth.h): a user, or an admin by its role claim;
 *   - a virtual key: looked up by its SHA-256 in the per-process cache
 *     (authcache.h), refused when unknown, blocked, expired, or its team
 *     blocked.
 */
#ifndef GW_AUTH_H
#define GW_AUTH_H

#include <stddef.h>

#include "err.h"
#include "keystore.h"

struct gw_req;

enum gw_role {
	GW_ROLE_NONE = 0,
	GW_ROLE_MASTER, /* the master key */
	GW_ROLE_KEY,    /* a virtual key */
	GW_ROLE_JWT,    /* a verified JWT */
};

/*
 * LiteLLM's user roles (LitellmUserRoles), as bits so that a route's
 * access (route.h) is the set of roles that may call it.
 */
enum gw_user_role {
	GW_USER_NONE = 0,
	GW_USER_PROXY_ADMIN = 1,        /* "proxy_admin": everything */
	GW_USER_PROXY_ADMIN_VIEWER = 2, /* reads everything, writes nothing */
	GW_USER_INTERNAL = 4,           /* "internal_user": its own keys */
	GW_USER_INTERNAL_VIEWER = 8,    /* reads only its own */
};

struct gw_principal {
	enum gw_role role;
	/*
	 * Master key or admin JWT: no key, user or team limit, budget or
	 * model list applies. A proxy_admin user's key is an admin of the
	 * management routes (urole) but keeps its own limits.
	 */
	int admin;
	/*
	 * The caller's role: master key and admin JWT proxy_admin; a key
	 * its user's role (internal_user_viewer without a user); a JWT
	 * its role claim (internal_user_viewer unless it names
	 * internal_user or proxy_admin_viewer).
	 */
	enum gw_user_role urole;
	char key_name[24];     /* "sk-...abcd" or "jwt", for logs */
	struct gw_keyrec *rec; /* KEY and JWT (referenced); else NULL */
	const char *err_type;  /* on failure: "auth_error", "expired_key"... */
};

/*
 * Authenticate req. GW_OK with *who filled (release with
 * gw_auth_release). GW_E_AUTH (401) or GW_E_DB (503: the key could not be
 * checked) with a message for the client in msg, never echoing the token
 * or its hash. Answer failures with gw_auth_reply.
 */
enum gw_status gw_auth_check(struct gw_req *req, struct gw_principal *who,
    char *msg, size_t msglen) GW_NONNULL(1, 2, 3);
/* Send the failure of gw_auth_check in the OpenAI error shape. */
void gw_auth_reply(struct gw_req *req, enum gw_status st,
    const struct gw_principal *who, const char *msg) GW_NONNULL(1, 3, 4);
/* Drop what who holds; who may be reused. */
void gw_auth_release(struct gw_principal *who) GW_NONNULL(1);

/*
 * May who call model (the name the client sent: an alias counts as
 * itself)? The key's, its user's and its team's lists are checked
 * (gw_strlist_allows: "*", "all-proxy-models", "all-team-models" and
 * wildcards such as "qwen*"). GW_OK, or GW_E_AUTH with msg and *type set
 * to "key_model_access_denied", "user_model_access_denied" or
 * "team_model_access_denied".
 */
enum gw_status gw_auth_model(const struct gw_principal *who, const char *model,
    char *msg, size_t msglen, const char **type) GW_NONNULL(1, 2, 3, 5);

/*
 * The role a LiteLLM role name stands for ("proxy_admin" ...), or
 * GW_USER_NONE (NULL, unknown, "team", "customer").
 */
enum gw_user_role gw_auth_role_parse(const char *name);
/* The LiteLLM name of one role ("internal_user"); "none" for others. */
const char *gw_auth_role_name(enum gw_user_role r);
/* May who act as proxy_admin on the management routes? */
int gw_auth_is_admin(const struct gw_principal *who) GW_NONNULL(1);
/*
 * May who read every key, user, team and spend row (proxy_admin and
 * proxy_admin_viewer)? Others read only their own.
 */
int gw_auth_can_read_all(const struct gw_principal *who) GW_NONNULL(1);

/*
 * The caller's key, borrowed from the request, or NULL: from
 * x-litellm-api-key (a "Bearer " prefix optional), else from a non-empty
 * "Authorization: Bearer <token>" (scheme in any case), else from api-key,
 * LiteLLM's order.
 */
const char *gw_auth_bearer(const struct gw_req *req) GW_NONNULL(1);

#endif /* GW_AUTH_H */
