/*
 * auth.h: who is calling. Every request of every family goes through
 * gw_auth_check: a bearer token that is the master key (compared in
 * constant time). Virtual keys and JWTs plug in here (issue #4).
 */
#ifndef GW_AUTH_H
#define GW_AUTH_H

#include <stddef.h>

#include "err.h"

struct gw_req;

enum gw_role {
	GW_ROLE_NONE = 0,
	GW_ROLE_ADMIN, /* the master key */
};

struct gw_principal {
	enum gw_role role;
	char key_name[16]; /* "sk-...abcd", for logs; never the key */
};

/*
 * Authenticate req. On success *who is filled. On failure GW_E_AUTH with a
 * message for the client in msg (never echoing the token).
 */
enum gw_status gw_auth_check(const struct gw_req *req, struct gw_principal *who,
    char *msg, size_t msglen) GW_NONNULL(1, 2, 3);

/*
 * The token of an "Authorization: Bearer <token>" header (scheme matched
 * case-insensitively), borrowed from the request, or NULL.
 */
const char *gw_auth_bearer(const struct gw_req *req) GW_NONNULL(1);

#endif /* GW_AUTH_H */
