/*
 * jwtauth.h: JWT bearer tokens through libjwt. HS256/384/512 with the
 * shared secret of [auth] jwt_secret_file, RS256/384/512 and ES256/384/512
 * with the PEM public key of [auth] jwt_public_key_file. The algorithm
 * family is chosen from the configured key, never from the token alone
 * (no "none", no HMAC keyed with a public key). exp and nbf are checked
 * (with jwt_leeway_s), iss and aud when configured.
 */
#ifndef GW_JWTAUTH_H
#define GW_JWTAUTH_H

#include <stddef.h>

#include "config.h"
#include "err.h"
#include "keystore.h"

/* 1 when token has the shape of a JWT (three base64url parts). */
int gw_jwt_looks_like(const char *token) GW_NONNULL(1);

/* 1 when the configuration accepts JWTs at all. */
int gw_jwt_enabled(const struct gw_cfg *cfg) GW_NONNULL(1);
/*
 * At start: warn (logged) when JWTs are accepted with no issuer or
 * audience checked, or without a required exp.
 */
void gw_jwt_warn_cfg(const struct gw_cfg *cfg) GW_NONNULL(1);

/*
 * Verify token. On success *out is a new key record made from the claims
 * (user_id, team_id, models; found = 1; not cached) and *admin is 1 when
 * the role claim names the admin role. GW_E_AUTH with a reason in msg.
 */
enum gw_status gw_jwt_verify(const struct gw_cfg *cfg, const char *token,
    struct gw_keyrec **out, int *admin, char *msg, size_t msglen)
    GW_NONNULL(1, 2, 3, 4, 5);

#endif /* GW_JWTAUTH_H */
