/* keystore.c: key records, read from PostgreSQL as one JSON object. */
#include "keystore.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "json_util.h"
#include "log.h"
#include "sha256.h"
#include "util.h"

static const char lookup_sql[] =
    "SELECT json_build_object("
    " 'token', k.token, 'key_name', k.key_name, 'key_alias', k.key_alias,"
    " 'user_id', k.user_id, 'team_id', k.team_id, 'models', k.models,"
    " 'blocked', k.blocked, 'expires', extract(epoch FROM k.expires),"
    " 'max_budget', k.max_budget, 'spend', k.spend,"
    " 'tpm_limit', k.tpm_limit, 'rpm_limit', k.rpm_limit,"
    " 'max_parallel_requests', k.max_parallel_requests,"
    " 'team_models', t.models, 'team_blocked', t.blocked,"
    " 'team_max_budget', t.max_budget, 'team_spend', t.spend,"
    " 'team_tpm_limit', t.tpm_limit, 'team_rpm_limit', t.rpm_limit,"
    " 'team_max_parallel_requests', t.max_parallel_requests,"
    " 'user_max_budget', u.max_budget, 'user_spend', u.spend,"
    " 'user_role', u.user_role, 'user_models', u.models,"
    " 'user_tpm_limit', u.tpm_limit, 'user_rpm_limit', u.rpm_limit,"
    " 'user_max_parallel_requests', u.max_parallel_requests)::text"
    " FROM keys k LEFT JOIN teams t ON t.team_id = k.team_id"
    " LEFT JOIN users u ON u.user_id = k.user_id WHERE k.token = $1";

/* A JWT's team and user: one row always, the joins empty when absent. */
static const char jwt_sql[] =
    "SELECT json_build_object("
    " 'team_id', $1::text, 'user_id', $2::text,"
    " 'team_missing', $1::text IS NOT NULL AND t.team_id IS NULL,"
    " 'team_models', t.models, 'team_blocked', t.blocked,"
    " 'team_max_budget', t.max_budget, 'team_spend', t.spend,"
    " 'team_tpm_limit', t.tpm_limit, 'team_rpm_limit', t.rpm_limit,"
    " 'team_max_parallel_requests', t.max_parallel_requests,"
    " 'user_max_budget', u.max_budget, 'user_spend', u.spend,"
    " 'user_models', u.models,"
    " 'user_tpm_limit', u.tpm_limit, 'user_rpm_limit', u.rpm_limit,"
    " 'user_max_parallel_requests', u.max_parallel_requests)::text"
    " FROM (SELECT 1) one LEFT JOIN teams t ON t.team_id = $1::text"
    " LEFT JOIN users u ON u.user_id = $2::text";

static char *
opt_str(json_object *o, const char *key)
{
	const char *s = gw_json_get_str(o, key);

	return s != NULL ? gw_xstrdup(s) : NULL;
}

static void
strlist_from(json_object *o, const char *key, struct gw_strlist *l)
{
	json_object *a = gw_json_get(o, key), *it;
	size_t i, n;

	l->v = NULL;
	l->n = 0;
	if (a == NULL || !json_object_is_type(a, json_type_array))
		return;
	n = json_object_array_length(a);
	l->v = gw_xcalloc(n ? n : 1, sizeof(char *));
	for (i = 0; i < n; i++) {
		it = json_object_array_get_idx(a, i);
		if (json_object_is_type(it, json_type_string))
			l->v[l->n++] = gw_xstrdup(json_object_get_string(it));
	}
}

static void
strlist_free(struct gw_strlist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

struct gw_keyrec *
gw_keyrec_from_json(const char *json)
{
	struct gw_keyrec *r = gw_xcalloc(1, sizeof(*r));
	json_object *o = NULL, *b;
	char msg[128];
	const char *s;

	r->refs = 1;
	r->fetched_us = gw_now_mono_us();
	if (gw_json_parse(json, strlen(json), &o, msg, sizeof(msg)) != GW_OK)
		return r; /* found = 0 */
	r->found = 1;
	if ((s = gw_json_get_str(o, "token")) != NULL)
		snprintf(r->token, sizeof(r->token), "%s", s);
	if ((s = gw_json_get_str(o, "key_name")) != NULL)
		snprintf(r->key_name, sizeof(r->key_name), "%s", s);
	r->key_alias = opt_str(o, "key_alias");
	r->user_id = opt_str(o, "user_id");
	r->team_id = opt_str(o, "team_id");
	r->user_role = opt_str(o, "user_role");
	strlist_from(o, "models", &r->models);
	strlist_from(o, "team_models", &r->team_models);
	strlist_from(o, "user_models", &r->user_models);
	b = gw_json_get(o, "blocked");
	r->blocked = b != NULL && json_object_get_boolean(b);
	b = gw_json_get(o, "team_blocked");
	r->team_blocked = b != NULL && json_object_get_boolean(b);
	b = gw_json_get(o, "team_missing");
	r->team_missing = b != NULL && json_object_get_boolean(b);
	r->expires_us = (int64_t)(gw_json_num_or(o, "expires", 0) * 1e6);
	r->tpm_limit = gw_json_int_or(o, "tpm_limit", -1);
	r->rpm_limit = gw_json_int_or(o, "rpm_limit", -1);
	r->max_parallel = gw_json_int_or(o, "max_parallel_requests", -1);
	r->team_tpm_limit = gw_json_int_or(o, "team_tpm_limit", -1);
	r->team_rpm_limit = gw_json_int_or(o, "team_rpm_limit", -1);
	r->team_max_parallel =
	    gw_json_int_or(o, "team_max_parallel_requests", -1);
	r->user_tpm_limit = gw_json_int_or(o, "user_tpm_limit", -1);
	r->user_rpm_limit = gw_json_int_or(o, "user_rpm_limit", -1);
	r->user_max_parallel =
	    gw_json_int_or(o, "user_max_parallel_requests", -1);
	r->max_budget = gw_json_num_or(o, "max_budget", -1);
	r->spend = gw_json_num_or(o, "spend", 0);
	r->team_max_budget = gw_json_num_or(o, "team_max_budget", -1);
	r->team_spend = gw_json_num_or(o, "team_spend", 0);
	r->user_max_budget = gw_json_num_or(o, "user_max_budget", -1);
	r->user_spend = gw_json_num_or(o, "user_spend", 0);
	json_object_put(o);
	return r;
}

enum gw_status
gw_keystore_lookup(struct gw_db *db, const char *token, struct gw_keyrec **out)
{
	struct gw_db_rows *rows = NULL;
	const char *params[1] = {token};
	char err[512];
	enum gw_status st;

	*out = NULL;
	st = gw_db_exec(db, lookup_sql, 1, params, 1, &rows, err, sizeof(err));
	if (st != GW_OK) {
		gw_log_warn(NULL, "auth", "key lookup failed: %s", err);
		return st;
	}
	if (gw_db_rows_count(rows) == 0) {
		*out = gw_xcalloc(1, sizeof(**out));
		(*out)->refs = 1;
		(*out)->fetched_us = gw_now_mono_us();
		snprintf((*out)->token, sizeof((*out)->token), "%s", token);
	} else {
		*out = gw_keyrec_from_json(gw_db_rows_get(rows, 0, 0));
	}
	gw_db_rows_free(rows);
	return GW_OK;
}

void
gw_keystore_jwt_token(const char *team_id, const char *user_id, char out[65])
{
	char *s;

	/* "-" for absent, "=" before a present id: NULL and "" differ. */
	s = gw_xasprintf("jwt\n%s%s\n%s%s", team_id ? "=" : "-",
	    team_id ? team_id : "", user_id ? "=" : "-",
	    user_id ? user_id : "");
	gw_sha256_hex(s, strlen(s), out);
	free(s);
}

enum gw_status
gw_keystore_lookup_jwt(struct gw_db *db, const char *team_id,
    const char *user_id, struct gw_keyrec **out)
{
	struct gw_db_rows *rows = NULL;
	const char *params[2] = {team_id, user_id};
	const char *json;
	char err[512];
	enum gw_status st;

	*out = NULL;
	st = gw_db_exec(db, jwt_sql, 2, params, 1, &rows, err, sizeof(err));
	if (st != GW_OK) {
		gw_log_warn(
		    NULL, "auth", "JWT team/user lookup failed: %s", err);
		return st;
	}
	json = gw_db_rows_count(rows) > 0 ? gw_db_rows_get(rows, 0, 0) : NULL;
	*out = gw_keyrec_from_json(json != NULL ? json : "{}");
	(*out)->found = 1;
	gw_keystore_jwt_token(team_id, user_id, (*out)->token);
	gw_db_rows_free(rows);
	return GW_OK;
}

static void
strlist_copy(struct gw_strlist *to, const struct gw_strlist *from)
{
	size_t i;

	strlist_free(to);
	to->v = gw_xcalloc(from->n ? from->n : 1, sizeof(char *));
	for (i = 0; i < from->n; i++)
		to->v[i] = gw_xstrdup(from->v[i]);
	to->n = from->n;
}

void
gw_keyrec_merge_jwt(struct gw_keyrec *to, const struct gw_keyrec *from)
{
	strlist_copy(&to->team_models, &from->team_models);
	strlist_copy(&to->user_models, &from->user_models);
	to->team_blocked = from->team_blocked;
	to->team_missing = from->team_missing;
	to->team_tpm_limit = from->team_tpm_limit;
	to->team_rpm_limit = from->team_rpm_limit;
	to->team_max_parallel = from->team_max_parallel;
	to->team_max_budget = from->team_max_budget;
	to->team_spend = from->team_spend;
	to->user_tpm_limit = from->user_tpm_limit;
	to->user_rpm_limit = from->user_rpm_limit;
	to->user_max_parallel = from->user_max_parallel;
	to->user_max_budget = from->user_max_budget;
	to->user_spend = from->user_spend;
}

struct gw_keyrec *
gw_keyrec_ref(struct gw_keyrec *r)
{
	if (r != NULL)
		__atomic_add_fetch(&r->refs, 1, __ATOMIC_RELAXED);
	return r;
}

void
gw_keyrec_unref(struct gw_keyrec *r)
{
	if (r == NULL || __atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL))
		return;
	free(r->key_alias);
	free(r->user_id);
	free(r->team_id);
	free(r->user_role);
	strlist_free(&r->models);
	strlist_free(&r->team_models);
	strlist_free(&r->user_models);
	free(r);
}

int
gw_strlist_glob(const char *pat, const char *name)
{
	const char *star = NULL, *resume = NULL;

	/*
	 * Backtrack to the last '*' only: linear in practice, never worse
	 * than the product of the lengths.
	 */
	while (*name != '\0') {
		if (*pat == '*') {
			star = pat++;
			resume = name;
		} else if (*pat == *name) {
			pat++;
			name++;
		} else if (star != NULL) {
			pat = star + 1;
			name = ++resume;
		} else {
			return 0;
		}
	}
	while (*pat == '*')
		pat++;
	return *pat == '\0';
}

int
gw_strlist_allows(const struct gw_strlist *l, const char *name)
{
	const char *e;
	size_t i;

	if (l->n == 0)
		return 1;
	for (i = 0; i < l->n; i++) {
		e = l->v[i];
		if (strcmp(e, name) == 0)
			return 1;
		if (e[0] == 'a' && (strcmp(e, "all-proxy-models") == 0 ||
		                       strcmp(e, "all-team-models") == 0))
			return 1;
		if (strchr(e, '*') != NULL && gw_strlist_glob(e, name))
			return 1;
	}
	return 0;
}

enum gw_status
gw_keystore_hash_of(const char *key, char out[65])
{
	size_t i;

	if (strncmp(key, "sk-", 3) == 0) {
		gw_sha256_hex(key, strlen(key), out);
		return GW_OK;
	}
	if (strlen(key) != 64)
		return GW_E_INVALID;
	for (i = 0; i < 64; i++) {
		if (!((key[i] >= '0' && key[i] <= '9') ||
		        (key[i] >= 'a' && key[i] <= 'f')))
			return GW_E_INVALID;
		out[i] = key[i];
	}
	out[64] = '\0';
	return GW_OK;
}
