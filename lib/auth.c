/* auth.c: master key, JWT and virtual key authentication. */
#include "auth.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "authcache.h"
#include "jwtauth.h"
#include "log.h"
#include "req.h"
#include "sha256.h"
#include "util.h"

/* Skip spaces, then "Bearer " (any case) and spaces: the token, or NULL. */
static const char *
strip_bearer(const char *h, int required)
{
	while (*h == ' ')
		h++;
	if (strncasecmp(h, "Bearer ", 7) == 0)
		h += 7;
	else if (required)
		return NULL;
	while (*h == ' ')
		h++;
	return *h != '\0' ? h : NULL;
}

/*
 * LiteLLM's order (user_api_key_auth.get_api_key): x-litellm-api-key
 * ("Bearer " optional) wins; then a non-empty Authorization, which must be
 * Bearer (a present Authorization of another scheme does not fall through);
 * then api-key, the raw key older Azure clients send.
 */
const char *
gw_auth_bearer(const struct gw_req *req)
{
	const char *h;

	if ((h = gw_req_header(req, "x-litellm-api-key")) != NULL)
		return strip_bearer(h, 0);
	if ((h = gw_req_header(req, "Authorization")) != NULL && h[0] != '\0')
		return strip_bearer(h, 1);
	if ((h = gw_req_header(req, "api-key")) != NULL)
		return strip_bearer(h, 0);
	return NULL;
}

/* "sk-...wxyz" from the last four characters, for logs and messages. */
static void
abbreviate(const char *token, char out[24])
{
	size_t n = strlen(token);

	snprintf(out, 24, "sk-...%s", n >= 4 ? token + n - 4 : "");
}

static enum gw_status
check_key(struct gw_req *req, const char *token, struct gw_principal *who,
    char *msg, size_t msglen)
{
	struct gw_keyrec *rec = NULL;
	char hash[65], when[32];
	enum gw_status st;

	gw_sha256_hex(token, strlen(token), hash);
	st = gw_authcache_get(req->ctx->db, req->cfg, hash, &rec);
	explicit_bzero(hash, sizeof(hash));
	if (st != GW_OK) {
		snprintf(msg, msglen,
		    "Authentication Error, the key could not "
		    "be checked: database unavailable");
		who->err_type = "no_db_connection";
		return GW_E_DB;
	}
	if (!rec->found) {
		/*
		 * LiteLLM echoes the token's end here; a 401 says nothing of
		 * what was sent (it may be a secret pasted in the wrong place).
		 */
		snprintf(msg, msglen,
		    "Authentication Error, Invalid proxy server token passed.");
		gw_keyrec_unref(rec);
		return GW_E_AUTH;
	}
	if (rec->blocked || rec->team_blocked) {
		snprintf(msg, msglen,
		    "Authentication Error, %s is blocked. Update via "
		    "/%s/unblock if you're admin.",
		    rec->blocked ? "Key" : "Team",
		    rec->blocked ? "key" : "team");
		gw_keyrec_unref(rec);
		return GW_E_AUTH;
	}
	if (rec->expires_us != 0 && gw_now_real_us() >= rec->expires_us) {
		gw_time_rfc3339(rec->expires_us, when);
		snprintf(msg, msglen,
		    "Authentication Error - Expired Key. Key Expiry time %s",
		    when);
		who->err_type = "expired_key";
		gw_keyrec_unref(rec);
		return GW_E_AUTH;
	}
	who->role = GW_ROLE_KEY;
	who->rec = rec;
	who->urole = gw_auth_role_parse(rec->user_role);
	if (who->urole == GW_USER_NONE)
		who->urole = GW_USER_INTERNAL_VIEWER;
	return GW_OK;
}

/*
 * A JWT's role: proxy_admin only by the configured admin role (checked
 * by jwtauth.c); a claim of another admin name counts for nothing.
 */
static enum gw_user_role
jwt_role(const struct gw_keyrec *rec, int admin)
{
	enum gw_user_role r;

	if (admin)
		return GW_USER_PROXY_ADMIN;
	r = gw_auth_role_parse(rec != NULL ? rec->user_role : NULL);
	return r == GW_USER_PROXY_ADMIN || r == GW_USER_NONE
	           ? GW_USER_INTERNAL_VIEWER
	           : r;
}

/*
 * A JWT caller's team and user as the database has them (cached like
 * keys): the team's blocked flag, models, limits and budget, the user's
 * models, limits and budget, merged into its record. A team the database
 * does not have is refused, as LiteLLM refuses it ("Team doesn't exist in
 * db"); a user it does not have is not (its spend row creates it). When
 * the database cannot answer and nothing is cached: 503 for a JWT that
 * names a team (it may be blocked), the claims alone for one that does
 * not.
 */
static enum gw_status
check_jwt_db(
    struct gw_req *req, struct gw_principal *who, char *msg, size_t msglen)
{
	struct gw_keyrec *k = who->rec, *db = NULL;

	if (who->admin || (k->team_id == NULL && k->user_id == NULL))
		return GW_OK;
	if (gw_authcache_get_jwt(
	        req->ctx->db, req->cfg, k->team_id, k->user_id, &db) != GW_OK) {
		if (k->team_id == NULL)
			return GW_OK;
		snprintf(msg, msglen,
		    "Authentication Error, the JWT's team could not be "
		    "checked: database unavailable");
		who->err_type = "no_db_connection";
		return GW_E_DB;
	}
	gw_keyrec_merge_jwt(k, db);
	gw_keyrec_unref(db);
	if (k->team_missing) {
		snprintf(msg, msglen,
		    "Authentication Error, Team doesn't exist in db. "
		    "Team=%.200s. Create team via `/team/new` call.",
		    k->team_id);
		return GW_E_AUTH;
	}
	if (k->team_blocked) {
		snprintf(msg, msglen,
		    "Authentication Error, Team is blocked. Update via "
		    "/team/unblock if you're admin.");
		return GW_E_AUTH;
	}
	return GW_OK;
}

enum gw_status
gw_auth_check(
    struct gw_req *req, struct gw_principal *who, char *msg, size_t msglen)
{
	const char *token = gw_auth_bearer(req);
	const char *master = req->cfg->master_key;
	enum gw_status st;
	int admin = 0;

	memset(who, 0, sizeof(*who));
	who->err_type = "auth_error";
	if (token == NULL) {
		snprintf(msg, msglen,
		    "Authentication Error, No api key passed in. Send "
		    "'Authorization: Bearer <key>'.");
		return GW_E_AUTH;
	}
	if (master != NULL && gw_ct_streq(token, master)) {
		/* Not even part of the master key goes into a log line. */
		snprintf(who->key_name, sizeof(who->key_name), "master_key");
		who->role = GW_ROLE_MASTER;
		who->admin = 1;
		who->urole = GW_USER_PROXY_ADMIN;
		return GW_OK;
	}
	abbreviate(token, who->key_name);
	if (gw_jwt_looks_like(token) && gw_jwt_enabled(req->cfg)) {
		snprintf(who->key_name, sizeof(who->key_name), "jwt");
		if (gw_jwt_verify(req->cfg, token, &who->rec, &admin, msg,
		        msglen) != GW_OK)
			return GW_E_AUTH;
		who->role = GW_ROLE_JWT;
		who->admin = admin;
		who->urole = jwt_role(who->rec, admin);
		if ((st = check_jwt_db(req, who, msg, msglen)) != GW_OK)
			gw_auth_release(who);
		return st;
	}
	return check_key(req, token, who, msg, msglen);
}

void
gw_auth_reply(struct gw_req *req, enum gw_status st,
    const struct gw_principal *who, const char *msg)
{
	gw_reply_error_ex(req, gw_err_http_status(st),
	    who->err_type ? who->err_type : gw_err_type(st), NULL, msg);
}

void
gw_auth_release(struct gw_principal *who)
{
	gw_keyrec_unref(who->rec);
	who->rec = NULL;
	who->role = GW_ROLE_NONE;
	who->urole = GW_USER_NONE;
}

static const struct {
	const char *name;
	enum gw_user_role role;
} role_names[] = {
    {"proxy_admin", GW_USER_PROXY_ADMIN},
    {"proxy_admin_viewer", GW_USER_PROXY_ADMIN_VIEWER},
    {"internal_user", GW_USER_INTERNAL},
    {"internal_user_viewer", GW_USER_INTERNAL_VIEWER},
};

enum gw_user_role
gw_auth_role_parse(const char *name)
{
	size_t i;

	for (i = 0; name != NULL && i < GW_ARRAY_LEN(role_names); i++)
		if (strcmp(name, role_names[i].name) == 0)
			return role_names[i].role;
	return GW_USER_NONE;
}

const char *
gw_auth_role_name(enum gw_user_role r)
{
	size_t i;

	for (i = 0; i < GW_ARRAY_LEN(role_names); i++)
		if (role_names[i].role == r)
			return role_names[i].name;
	return "none";
}

int
gw_auth_is_admin(const struct gw_principal *who)
{
	return who->urole == GW_USER_PROXY_ADMIN;
}

int
gw_auth_can_read_all(const struct gw_principal *who)
{
	return (who->urole &
	           (GW_USER_PROXY_ADMIN | GW_USER_PROXY_ADMIN_VIEWER)) != 0;
}

enum gw_status
gw_auth_model(const struct gw_principal *who, const char *model, char *msg,
    size_t msglen, const char **type)
{
	if (who->admin || who->rec == NULL)
		return GW_OK;
	if (!gw_strlist_allows(&who->rec->models, model)) {
		snprintf(msg, msglen,
		    "key not allowed to access model. This key cannot access "
		    "model '%.200s'",
		    model);
		*type = "key_model_access_denied";
		return GW_E_AUTH;
	}
	if (!gw_strlist_allows(&who->rec->user_models, model)) {
		snprintf(msg, msglen,
		    "user not allowed to access model. This user cannot "
		    "access model '%.200s'",
		    model);
		*type = "user_model_access_denied";
		return GW_E_AUTH;
	}
	if (!gw_strlist_allows(&who->rec->team_models, model)) {
		snprintf(msg, msglen,
		    "team not allowed to access model. This team cannot "
		    "access model '%.200s'",
		    model);
		*type = "team_model_access_denied";
		return GW_E_AUTH;
	}
	return GW_OK;
}
