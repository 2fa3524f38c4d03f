/*
 * authcache.h: each worker process caches key records (and the team and
 * user records of JWT callers), so authentication
 * costs no database round trip per request. A listener thread per process
 * holds its own connection with LISTEN llmgw_auth; the triggers of
 * migration 002 announce every change to a key, team or user, and the
 * listener drops the affected records at once (on every host sharing the
 * database). [auth] key_cache_ttl_s bounds a record's age as a safety net;
 * while the listener is disconnected, records older than 1 s are re-read.
 * When the database cannot be reached, a cached record is used however old
 * it is, so traffic keeps flowing through a PostgreSQL outage. A reload
 * that changes [database] conninfo empties the cache and moves the
 * listener to the new database (the first request under the new file
 * tells it). A token that names no key is remembered as such too (a
 * flood of one wrong key costs one lookup), but at most 4,096 of those
 * and none older than key_cache_ttl_s, so unknown tokens cannot grow the
 * cache.
 */
#ifndef GW_AUTHCACHE_H
#define GW_AUTHCACHE_H

#include "config.h"
#include "err.h"
#include "keystore.h"

struct gw_db;

/*
 * The record for key hash token: cached, or read through db (this
 * thread's connection). GW_OK with *out referenced (found may be 0), or
 * GW_E_DB when neither the cache nor the database has an answer.
 */
enum gw_status gw_authcache_get(struct gw_db *db, const struct gw_cfg *cfg,
    const char *token, struct gw_keyrec **out) GW_NONNULL(1, 2, 3, 4);

/*
 * The database's record of the team and user a JWT names (either NULL-ok,
 * not both; see gw_keystore_lookup_jwt), cached beside the keys and
 * dropped by the same notifications ("team:<id>", "user:<id>"). Errors as
 * gw_authcache_get.
 */
enum gw_status gw_authcache_get_jwt(struct gw_db *db, const struct gw_cfg *cfg,
    const char *team_id, const char *user_id, struct gw_keyrec **out)
    GW_NONNULL(1, 2, 5);

/*
 * How many records the cache holds, and how many of them say "no such
 * key" (capped and swept apart from the keys; for tests and metrics).
 */
void gw_authcache_stats(size_t *entries, size_t *missing) GW_NONNULL(1, 2);

/* Apply one notification payload ("key:<hash>", "team:<id>", "user:<id>"). */
void gw_authcache_invalidate(const char *payload) GW_NONNULL(1);

#endif /* GW_AUTHCACHE_H */
