/*
 * keystore.h: what authentication needs to know about a virtual key,
 * read from PostgreSQL in one query (the key, its team and its user), or
 * about the team and user a JWT names (gw_keystore_lookup_jwt).
 * Records are shared between threads through the auth cache and are
 * reference counted; they are never modified once built.
 */
#ifndef GW_KEYSTORE_H
#define GW_KEYSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct gw_db;

/* A list of model names (e.g. a key's or a team's allowed models). */
struct gw_strlist {
	char **v;
	size_t n;
};

struct gw_keyrec {
	int refs;
	int found;         /* 0: a cached "no such key" */
	char token[65];    /* lowercase hex SHA-256 of the raw key */
	char key_name[24]; /* "sk-...abcd" */
	char *key_alias;   /* NULL when none; same for the ids below */
	char *user_id;
	char *team_id;
	char *user_role;
	struct gw_strlist models;      /* empty: every model */
	struct gw_strlist team_models; /* empty: every model */
	struct gw_strlist user_models; /* empty: every model */
	int blocked;
	int team_blocked;
	int team_missing;   /* a JWT's team_id has no row in teams */
	int64_t expires_us; /* epoch microseconds; 0: never */
	/* Limits and budgets; -1 (or < 0 budgets) when not set. */
	int64_t tpm_limit, rpm_limit, max_parallel;
	int64_t team_tpm_limit, team_rpm_limit, team_max_parallel;
	int64_t user_tpm_limit, user_rpm_limit, user_max_parallel;
	double max_budget, spend;
	double team_max_budget, team_spend;
	double user_max_budget, user_spend;
	int64_t fetched_us; /* monotonic time of the read */
};

/*
 * Read the key whose hash is token. GW_OK with *out a new record (one
 * reference; found = 0 when no such key), or GW_E_DB.
 */
enum gw_status gw_keystore_lookup(struct gw_db *db, const char *token,
    struct gw_keyrec **out) GW_NONNULL(1, 2, 3);

/*
 * Read the team and the user a JWT names (either NULL-ok, not both): a
 * record (found = 1) whose token is gw_keystore_jwt_token of the pair,
 * with team_id and user_id set as given, team_* fields from the team's
 * row (team_missing = 1 when team_id has none) and user_* fields from the
 * user's row (none when it has none). GW_OK with *out new, or GW_E_DB.
 */
enum gw_status gw_keystore_lookup_jwt(struct gw_db *db, const char *team_id,
    const char *user_id, struct gw_keyrec **out) GW_NONNULL(1, 4);
/*
 * The cache token of a JWT's (team, user) pair: the SHA-256 of
 * "jwt\n<team>\n<user>" (either may be NULL: empty, marked apart from
 * ""), 64 hex digits, never the hash of a key in practice.
 */
void gw_keystore_jwt_token(
    const char *team_id, const char *user_id, char out[65]) GW_NONNULL(3);
/*
 * Copy what the database says of a JWT's team and user (from, a
 * gw_keystore_lookup_jwt record) into to, the record made from its
 * claims (one reference, not shared yet): team models, blocked, missing,
 * limits, budget and spend; user models, limits, budget and spend. The
 * claims' own models, role and ids stay.
 */
void gw_keyrec_merge_jwt(struct gw_keyrec *to, const struct gw_keyrec *from)
    GW_NONNULL(1, 2);

/* Build a record from the JSON object the lookup query returns (tests). */
struct gw_keyrec *gw_keyrec_from_json(const char *json) GW_NONNULL(1);

struct gw_keyrec *gw_keyrec_ref(struct gw_keyrec *r);
/* Drop a reference; NULL-safe. The last one frees. */
void gw_keyrec_unref(struct gw_keyrec *r);

/*
 * 1 when the list allows name: it is empty, holds name, "*",
 * "all-proxy-models" or "all-team-models" (the team's own list is checked
 * beside it, LiteLLM's meaning), or a wildcard entry matching name, where
 * '*' stands for any run ("qwen*", "openai/" then "*", "*-instruct").
 */
int gw_strlist_allows(const struct gw_strlist *l, const char *name)
    GW_NONNULL(1, 2);
/* 1 when name fits pat, '*' in pat standing for any run (even empty). */
int gw_strlist_glob(const char *pat, const char *name) GW_NONNULL(1, 2);

/*
 * The hash of a key as given by an admin: a raw key ("sk-...") is hashed,
 * anything else is taken as a hash already (LiteLLM's rule). out gets 65
 * bytes; GW_E_INVALID when the result is not 64 lowercase hex digits.
 */
enum gw_status gw_keystore_hash_of(const char *key, char out[65])
    GW_NONNULL(1, 2);

#endif /* GW_KEYSTORE_H */
