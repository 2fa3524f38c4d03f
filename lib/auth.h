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

struct gw_principal {
	enum gw_role role;
	int admin;             /* master key or admin JWT */
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
 * itself)? GW_OK, or GW_E_AUTH with msg and *type set to
 * "key_model_access_denied" or "team_model_access_denied".
 */
enum gw_status gw_auth_model(const struct gw_principal *who, const char *model,
    char *msg, size_t msglen, const char **type) GW_NONNULL(1, 2, 3, 5);

/*
 * The caller's key, borrowed from the request, or NULL: from
 * x-litellm-api-key (a "Bearer " prefix optional), else from a non-empty
 * "Authorization: Bearer <token>" (scheme in any case), else from api-key,
 * LiteLLM's order.
 */
const char *gw_auth_bearer(const struct gw_req *req) GW_NONNULL(1);

#endif /* GW_AUTH_H */
