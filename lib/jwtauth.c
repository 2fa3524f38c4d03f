/* jwtauth.c: JWT verification and claim mapping over libjwt. */
#include "jwtauth.h"

#include <json-c/json.h>
#include <jwt.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "json_util.h"
#include "log.h"
#include "util.h"

int
gw_jwt_looks_like(const char *t)
{
	int dots = 0;

	if (strncmp(t, "eyJ", 3) != 0)
		return 0;
	for (; *t; t++) {
		if (*t == '.')
			dots++;
		else if (!((*t >= 'A' && *t <= 'Z') ||
		             (*t >= 'a' && *t <= 'z') ||
		             (*t >= '0' && *t <= '9') || *t == '-' ||
		             *t == '_' || *t == '='))
			return 0;
	}
	return dots == 2;
}

int
gw_jwt_enabled(const struct gw_cfg *cfg)
{
	return cfg->jwt_secret != NULL || cfg->jwt_public_key != NULL;
}

/* Decode the base64url header segment and read its "alg". */
static jwt_alg_t
header_alg(const char *token)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	char out[512];
	const char *dot = strchr(token, '.'), *p, *alg;
	unsigned v = 0;
	int bits = 0;
	size_t o = 0;
	json_object *h = NULL;
	char msg[64];
	jwt_alg_t a = JWT_ALG_INVAL;

	if (dot == NULL)
		return JWT_ALG_INVAL;
	for (p = token; p < dot && o < sizeof(out) - 1; p++) {
		const char *c = strchr(b64, *p);

		if (*p == '=')
			break;
		if (c == NULL || *p == '\0')
			return JWT_ALG_INVAL;
		v = (v << 6) | (unsigned)(c - b64);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)((v >> bits) & 0xff);
		}
	}
	if (gw_json_parse(out, o, &h, msg, sizeof(msg)) == GW_OK &&
	    (alg = gw_json_get_str(h, "alg")) != NULL)
		a = jwt_str_alg(alg);
	json_object_put(h);
	return a;
}

static int
is_hmac(jwt_alg_t a)
{
	return a == JWT_ALG_HS256 || a == JWT_ALG_HS384 || a == JWT_ALG_HS512;
}

static int
is_pubkey(jwt_alg_t a)
{
	return a == JWT_ALG_RS256 || a == JWT_ALG_RS384 || a == JWT_ALG_RS512 ||
	       a == JWT_ALG_ES256 || a == JWT_ALG_ES384 || a == JWT_ALG_ES512;
}

/* aud may be a string or an array of strings. */
static int
audience_ok(json_object *claims, const char *want)
{
	json_object *aud = gw_json_get(claims, "aud");
	size_t i;

	if (aud == NULL)
		return 0;
	if (json_object_is_type(aud, json_type_string))
		return strcmp(json_object_get_string(aud), want) == 0;
	if (!json_object_is_type(aud, json_type_array))
		return 0;
	for (i = 0; i < json_object_array_length(aud); i++) {
		const char *s =
		    json_object_get_string(json_object_array_get_idx(aud, i));

		if (s != NULL && strcmp(s, want) == 0)
			return 1;
	}
	return 0;
}

/* A claim as a string (numbers too), or NULL. */
static const char *
claim_str(json_object *claims, const char *name, char *buf, size_t len)
{
	json_object *v = gw_json_get(claims, name);

	if (v == NULL)
		return NULL;
	if (json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	if (json_object_is_type(v, json_type_int)) {
		snprintf(buf, len, "%lld", (long long)json_object_get_int64(v));
		return buf;
	}
	return NULL;
}

/* The longest user or team id a JWT may name (GW_MGMT_ID_MAX). */
#define JWT_ID_MAX 255

static struct gw_keyrec *
record_from(const struct gw_cfg *cfg, json_object *claims)
{
	struct gw_keyrec *r = gw_xcalloc(1, sizeof(*r));
	json_object *m;
	const char *s;
	char buf[32];
	size_t i, n;

	r->refs = 1;
	r->found = 1;
	r->fetched_us = gw_now_mono_us();
	snprintf(r->key_name, sizeof(r->key_name), "jwt");
	if ((s = claim_str(claims, cfg->jwt_user_id_claim, buf, sizeof(buf))))
		r->user_id = gw_xstrdup(s);
	if ((s = claim_str(claims, cfg->jwt_team_id_claim, buf, sizeof(buf))))
		r->team_id = gw_xstrdup(s);
	if ((s = claim_str(claims, cfg->jwt_role_claim, buf, sizeof(buf))))
		r->user_role = gw_xstrdup(s);
	m = gw_json_get(claims, cfg->jwt_models_claim);
	if (m != NULL && json_object_is_type(m, json_type_array)) {
		n = json_object_array_length(m);
		r->models.v = gw_xcalloc(n ? n : 1, sizeof(char *));
		for (i = 0; i < n; i++) {
			json_object *it = json_object_array_get_idx(m, i);

			if (json_object_is_type(it, json_type_string))
				r->models.v[r->models.n++] =
				    gw_xstrdup(json_object_get_string(it));
		}
	}
	r->tpm_limit = r->rpm_limit = r->max_parallel = -1;
	r->team_tpm_limit = r->team_rpm_limit = r->team_max_parallel = -1;
	r->user_tpm_limit = r->user_rpm_limit = r->user_max_parallel = -1;
	r->max_budget = r->team_max_budget = r->user_max_budget = -1;
	return r;
}

/*
 * A NumericDate claim (RFC 7519 4.1.4): any JSON number, seconds since the
 * epoch (a fraction rounds down). 1 with *v when present, 0 when absent,
 * -1 when present and not a number ("exp": "never" must not mean never).
 */
static int
time_claim(json_object *claims, const char *name, int64_t *v)
{
	json_object *o = gw_json_get(claims, name);
	double d;

	if (o == NULL)
		return 0;
	if (json_object_is_type(o, json_type_int)) {
		*v = json_object_get_int64(o);
		return 1;
	}
	if (!json_object_is_type(o, json_type_double))
		return -1;
	d = json_object_get_double(o);
	*v = d >= 9.2e18    ? INT64_MAX
	     : d <= -9.2e18 ? INT64_MIN
	                    : (int64_t)floor(d);
	return 1;
}

enum gw_status
gw_jwt_verify(const struct gw_cfg *cfg, const char *token,
    struct gw_keyrec **out, int *admin, char *msg, size_t msglen)
{
	jwt_t *jwt = NULL;
	json_object *claims = NULL;
	char *grants = NULL, m[64];
	const unsigned char *key;
	int keylen;
	jwt_alg_t alg = header_alg(token);
	int64_t now = gw_now_real_us() / 1000000, exp = 0, nbf = 0;
	int has_exp, has_nbf;
	const char *iss;
	enum gw_status st = GW_E_AUTH;

	*out = NULL;
	*admin = 0;
	if (is_hmac(alg) && cfg->jwt_secret != NULL) {
		key = (const unsigned char *)cfg->jwt_secret;
		keylen = (int)strlen(cfg->jwt_secret);
	} else if (is_pubkey(alg) && cfg->jwt_public_key != NULL) {
		key = (const unsigned char *)cfg->jwt_public_key;
		keylen = (int)strlen(cfg->jwt_public_key);
	} else {
		snprintf(msg, msglen,
		    "Authentication Error, JWT algorithm "
		    "not accepted");
		return GW_E_AUTH;
	}
	if (jwt_decode(&jwt, token, key, keylen) != 0 || jwt == NULL ||
	    jwt_get_alg(jwt) != alg) {
		snprintf(msg, msglen,
		    "Authentication Error, invalid JWT "
		    "signature");
		goto out;
	}
	grants = jwt_get_grants_json(jwt, NULL);
	if (grants == NULL || gw_json_parse(grants, strlen(grants), &claims, m,
	                          sizeof(m)) != GW_OK) {
		snprintf(
		    msg, msglen, "Authentication Error, invalid JWT claims");
		goto out;
	}
	if ((has_exp = time_claim(claims, "exp", &exp)) < 0 ||
	    (has_nbf = time_claim(claims, "nbf", &nbf)) < 0) {
		snprintf(msg, msglen,
		    "Authentication Error, JWT exp and nbf must be numbers "
		    "(seconds since the epoch)");
		goto out;
	}
	if (!has_exp && cfg->jwt_require_exp) {
		snprintf(msg, msglen,
		    "Authentication Error, JWT has no exp claim (a token "
		    "must expire)");
		goto out;
	}
	if (has_exp && now > exp + cfg->jwt_leeway_s) {
		snprintf(msg, msglen, "Authentication Error, JWT expired");
		goto out;
	}
	if (has_nbf && now + cfg->jwt_leeway_s < nbf) {
		snprintf(
		    msg, msglen, "Authentication Error, JWT not valid yet");
		goto out;
	}
	if (cfg->jwt_issuer[0] != '\0' &&
	    ((iss = gw_json_get_str(claims, "iss")) == NULL ||
	        strcmp(iss, cfg->jwt_issuer) != 0)) {
		snprintf(msg, msglen,
		    "Authentication Error, JWT issuer not "
		    "accepted");
		goto out;
	}
	if (cfg->jwt_audience[0] != '\0' &&
	    !audience_ok(claims, cfg->jwt_audience)) {
		snprintf(msg, msglen,
		    "Authentication Error, JWT audience not "
		    "accepted");
		goto out;
	}
	*out = record_from(cfg, claims);
	*admin = (*out)->user_role != NULL &&
	         strcmp((*out)->user_role, cfg->jwt_admin_role) == 0;
	if ((*out)->user_id == NULL && !*admin) {
		gw_keyrec_unref(*out);
		*out = NULL;
		snprintf(msg, msglen,
		    "Authentication Error, JWT has no '%s' "
		    "claim",
		    cfg->jwt_user_id_claim);
		goto out;
	}
	/*
	 * Ids are at most JWT_ID_MAX bytes, the bound the management API
	 * holds user and team ids to (mgmt.h): a longer one could not be
	 * managed, and would share a limit or budget entry with another id
	 * of the same first bytes wherever an id is cut.
	 */
	if (((*out)->user_id != NULL && strlen((*out)->user_id) > JWT_ID_MAX) ||
	    ((*out)->team_id != NULL && strlen((*out)->team_id) > JWT_ID_MAX)) {
		gw_keyrec_unref(*out);
		*out = NULL;
		snprintf(msg, msglen,
		    "Authentication Error, a JWT's user or team id is longer "
		    "than %d bytes",
		    JWT_ID_MAX);
		goto out;
	}
	st = GW_OK;
out:
	free(grants);
	json_object_put(claims);
	jwt_free(jwt);
	return st;
}

void
gw_jwt_warn_cfg(const struct gw_cfg *cfg)
{
	if (!gw_jwt_enabled(cfg))
		return;
	if (cfg->jwt_issuer[0] == '\0')
		gw_log_warn(NULL, "config",
		    "[auth] jwt_issuer is empty: a JWT from any issuer that "
		    "holds the key is accepted");
	if (cfg->jwt_audience[0] == '\0')
		gw_log_warn(NULL, "config",
		    "[auth] jwt_audience is empty: a JWT meant for another "
		    "service is accepted");
	if (!cfg->jwt_require_exp)
		gw_log_warn(NULL, "config",
		    "[auth] jwt_require_exp is off: a JWT without exp never "
		    "expires");
}
