/*
 * revoke.h: open streams end when their key stops being good. Every
 * process keeps a registry of the streams it relays for virtual keys. The
 * auth listener (authcache.c) hands it each change notification; a stream
 * whose key, team or user changed is marked suspect, and the listener
 * re-reads that key on its own connection (gw_revoke_recheck). When the key
 * is now refused (deleted, blocked, its team blocked, expired), the stream
 * is flagged, and its relay sees the flag on its next tick (every 100 ms)
 * and ends it. A key's expiry needs no notification: the relay compares it
 * with the clock at each tick.
 *
 * Nothing here touches the database on a request's path: a stream costs a
 * lock to register and to leave, and an atomic load per tick.
 */
#ifndef GW_REVOKE_H
#define GW_REVOKE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "keystore.h"

struct gw_db;

/* Why a stream's key is refused now; GW_REVOKE_NONE while it is good. */
enum gw_revoke_why {
	GW_REVOKE_NONE = 0,
	GW_REVOKE_DELETED,
	GW_REVOKE_BLOCKED,
	GW_REVOKE_TEAM_BLOCKED,
	GW_REVOKE_EXPIRED,
};

/*
 * One open stream, in the caller's storage (zeroed before gw_revoke_add).
 * Fields are the registry's: read them through gw_revoke_check.
 */
struct gw_revoke {
	const struct gw_keyrec *rec; /* borrowed while registered; NULL: not */
	int64_t expires_us; /* the key's expiry as last read; 0 never */
	int why;            /* enum gw_revoke_why, set by the listener */
	int suspect;        /* to be re-read (registry lock held) */
	struct gw_revoke *next, *prev;
};

/*
 * Register e for the stream of key rec (which must outlive the
 * registration: the request holds it), a record obtained after since (the
 * request's start, monotonic us). When a notification about the key came
 * since then, the key is re-read at once: a change racing with the
 * stream's start is not missed.
 */
void gw_revoke_add(struct gw_revoke *e, const struct gw_keyrec *rec,
    int64_t since) GW_NONNULL(1, 2);
/* Unregister e; a no-op when it is not registered. */
void gw_revoke_remove(struct gw_revoke *e) GW_NONNULL(1);

/*
 * On the stream's own thread: why its key is refused at now_real_us
 * (epoch us), or GW_REVOKE_NONE. An atomic load or two, no lock.
 */
enum gw_revoke_why gw_revoke_check(
    const struct gw_revoke *e, int64_t now_real_us) GW_NONNULL(1);

/*
 * A change notification ("key:<hash>", "team:<id>", "user:<id>"; anything
 * else means everything): mark the streams it concerns for a re-read.
 */
void gw_revoke_note(const char *payload) GW_NONNULL(1);

/*
 * On the listener thread, after notifications: re-read the keys of the
 * suspect streams through db and flag those now refused (the others take
 * the key's new expiry). Returns at once when nothing is suspect. GW_E_DB
 * when a read failed: db may have reconnected, without its LISTEN, so the
 * listener listens again (and every stream is then re-read).
 */
enum gw_status gw_revoke_recheck(struct gw_db *db) GW_NONNULL(1);

/* Why rec (NULL or not found: deleted) is refused at now_real_us. */
enum gw_revoke_why gw_revoke_verdict(
    const struct gw_keyrec *rec, int64_t now_real_us);

/*
 * The client's message for why (as auth.c words a refusal at the start)
 * into msg, and the OpenAI error type ("auth_error", "expired_key").
 */
const char *gw_revoke_describe(const struct gw_revoke *e,
    enum gw_revoke_why why, char *msg, size_t msglen) GW_NONNULL(1, 3);

/* Streams registered in this process (tests, metrics). */
int gw_revoke_count(void);

#endif /* GW_REVOKE_H */
