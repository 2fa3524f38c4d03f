/*
 * authcache.c: the per-process key cache and its LISTEN thread. The
 * listener follows [database] conninfo across reloads: requests hand in
 * their configuration, and a new conninfo makes the listener reconnect
 * (and the cache start afresh) within LISTEN_POLL_MS plus a connect.
 */
#include "authcache.h"

#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "log.h"
#include "revoke.h"
#include "util.h"

#define NBUCKETS 4096
#define MAX_ENTRIES 100000
/*
 * "No such key" records: each unknown token asked about costs one, so
 * they are capped apart from the keys (at the cap they all go) and swept
 * once older than key_cache_ttl_s, SWEEP_BUCKETS buckets per insert.
 */
#define MAX_MISSING 4096
#define SWEEP_BUCKETS 16
#define UNTRUSTED_AGE_US 1000000
/*
 * How often the listener looks up from its socket for a new conninfo: a
 * reload's new database is listened on this soon, well inside the 1 s a
 * record is trusted without a listener.
 */
#define LISTEN_POLL_MS 100

struct node {
	struct gw_keyrec *rec;
	struct node *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct node *buckets[NBUCKETS];
static size_t nentries;
static size_t nmissing;     /* of nentries, found == 0 */
static size_t sweep_cursor; /* the next bucket the sweep looks at */
static uint64_t inval_gen;  /* bumped by every invalidation */
static int listener_up;     /* guarded by lock */
static pthread_once_t listener_once = PTHREAD_ONCE_INIT;
/* The database to listen on, from the newest configuration seen. */
static char *listener_conninfo; /* guarded by lock */
static unsigned conninfo_seq;   /* bumped when it changes */
static unsigned seen_gen;       /* gen of the newest configuration seen */

static unsigned
bucket_of(const char *token)
{
	return gw_hash_str(token) % NBUCKETS;
}

/* Take *pp out of its bucket and free it; lock held. */
static void
unlink_node(struct node **pp)
{
	struct node *n = *pp;

	*pp = n->next;
	if (!n->rec->found)
		nmissing--;
	gw_keyrec_unref(n->rec);
	free(n);
	nentries--;
}

/* Free the nodes of bucket b for which drop() says so; lock held. */
static void
drop_in(size_t b, int (*drop)(const struct gw_keyrec *, const void *),
    const void *arg)
{
	struct node **pp = &buckets[b];

	while (*pp != NULL) {
		if (drop((*pp)->rec, arg))
			unlink_node(pp);
		else
			pp = &(*pp)->next;
	}
}

/* Free the nodes for which drop() says so, everywhere; lock held. */
static void
evict_if(int (*drop)(const struct gw_keyrec *, const void *), const void *arg)
{
	size_t b;

	for (b = 0; b < NBUCKETS; b++)
		drop_in(b, drop, arg);
}

/* An invalidation: evict, and tell lookups under way not to cache. */
static void
remove_if(int (*drop)(const struct gw_keyrec *, const void *), const void *arg)
{
	inval_gen++;
	evict_if(drop, arg);
}

static int
drop_all(const struct gw_keyrec *r, const void *arg)
{
	(void)r;
	(void)arg;
	return 1;
}

static int
drop_missing(const struct gw_keyrec *r, const void *arg)
{
	(void)arg;
	return !r->found;
}

/* A "no such key" record fetched before *arg (int64_t, monotonic us). */
static int
drop_old_missing(const struct gw_keyrec *r, const void *arg)
{
	return !r->found && r->fetched_us < *(const int64_t *)arg;
}

static int
drop_team(const struct gw_keyrec *r, const void *team)
{
	return r->team_id != NULL && strcmp(r->team_id, team) == 0;
}

static int
drop_user(const struct gw_keyrec *r, const void *user)
{
	return r->user_id != NULL && strcmp(r->user_id, user) == 0;
}

static void
remove_token(const char *token)
{
	struct node **pp = &buckets[bucket_of(token)], *n;

	inval_gen++;
	while ((n = *pp) != NULL) {
		if (strcmp(n->rec->token, token) == 0) {
			unlink_node(pp);
			return;
		}
		pp = &n->next;
	}
}

/*
 * Room for rec: the whole cache goes at MAX_ENTRIES, the "no such key"
 * records at MAX_MISSING; and a few buckets lose the ones older than the
 * cache's TTL. Lock held.
 */
static void
make_room(const struct gw_keyrec *rec, const struct gw_cfg *cfg, int64_t now)
{
	int64_t before = now - (int64_t)cfg->key_cache_ttl_s * 1000000;
	size_t i;

	if (nentries >= MAX_ENTRIES)
		evict_if(drop_all, NULL);
	else if (!rec->found && nmissing >= MAX_MISSING)
		evict_if(drop_missing, NULL);
	for (i = 0; i < SWEEP_BUCKETS && nmissing > 0; i++) {
		drop_in(sweep_cursor, drop_old_missing, &before);
		sweep_cursor = (sweep_cursor + 1) % NBUCKETS;
	}
}

void
gw_authcache_stats(size_t *entries, size_t *missing)
{
	pthread_mutex_lock(&lock);
	*entries = nentries;
	*missing = nmissing;
	pthread_mutex_unlock(&lock);
}

void
gw_authcache_invalidate(const char *payload)
{
	pthread_mutex_lock(&lock);
	if (strncmp(payload, "key:", 4) == 0)
		remove_token(payload + 4);
	else if (strncmp(payload, "team:", 5) == 0)
		remove_if(drop_team, payload + 5);
	else if (strncmp(payload, "user:", 5) == 0)
		remove_if(drop_user, payload + 5);
	else
		remove_if(drop_all, NULL);
	pthread_mutex_unlock(&lock);
}

static void
on_notify(void *arg, const char *payload)
{
	(void)arg;
	gw_log_debug(NULL, "auth", "invalidate %.12s", payload);
	gw_authcache_invalidate(payload);
	/* Open streams of the key are re-read after the batch (revoke.h). */
	gw_revoke_note(payload);
}

static void
set_listener_up(int up)
{
	pthread_mutex_lock(&lock);
	listener_up = up;
	/*
	 * Back after a gap: whatever is cached may have missed a
	 * notification, so re-read it. Going down keeps the records: they
	 * are re-read when older than 1 s, and used as they are while the
	 * database cannot answer.
	 */
	if (up)
		remove_if(drop_all, NULL);
	pthread_mutex_unlock(&lock);
	/* ... and so may the keys of the open streams. */
	if (up)
		gw_revoke_note("*");
}

/* 1 when the conninfo changed since seq was taken. */
static int
conninfo_changed(unsigned seq)
{
	return __atomic_load_n(&conninfo_seq, __ATOMIC_ACQUIRE) != seq;
}

static void *
listener(void *arg)
{
	struct gw_db *db = NULL;
	char err[512], *conninfo;
	unsigned seq = 0;

	(void)arg;
	for (;;) {
		if (db == NULL || conninfo_changed(seq)) {
			pthread_mutex_lock(&lock);
			conninfo = gw_xstrdup(listener_conninfo);
			seq = conninfo_seq;
			pthread_mutex_unlock(&lock);
			gw_db_free(db);
			db = gw_db_new(conninfo, 3, 0);
			free(conninfo);
		}
		if (gw_db_listen(db, "llmgw_auth", err, sizeof(err)) != GW_OK) {
			sleep(1);
			continue;
		}
		set_listener_up(1);
		while (!conninfo_changed(seq) &&
		       gw_db_wait_notify(db, LISTEN_POLL_MS, on_notify, NULL) ==
		           GW_OK &&
		       gw_revoke_recheck(db) == GW_OK)
			;
		set_listener_up(0);
	}
	return NULL;
}

static void
start_listener(void)
{
	pthread_t t;
	pthread_attr_t a;

	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&a, 256 * 1024);
	if (pthread_create(&t, &a, listener, NULL) != 0)
		gw_log_errno(NULL, "auth", "cannot start the key listener");
	pthread_attr_destroy(&a);
}

/*
 * The first configuration, or a newer one (a reload): a new conninfo goes
 * to the listener, and what was cached from the old database goes. Until
 * the listener is back on the new one, records are trusted for 1 s only.
 */
static void
see_cfg(const struct gw_cfg *cfg)
{
	pthread_mutex_lock(&lock);
	if (seen_gen == 0 || cfg->gen > seen_gen) {
		if (listener_conninfo == NULL ||
		    strcmp(listener_conninfo, cfg->db_conninfo) != 0) {
			if (listener_conninfo != NULL) {
				remove_if(drop_all, NULL);
				listener_up = 0;
			}
			free(listener_conninfo);
			listener_conninfo = gw_xstrdup(cfg->db_conninfo);
			__atomic_add_fetch(&conninfo_seq, 1, __ATOMIC_RELEASE);
		}
		__atomic_store_n(&seen_gen, cfg->gen, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&lock);
}

/* Keys being read from the database right now; lock held. */
#define MAX_FETCHING 64
static char fetching_tokens[MAX_FETCHING][65];
static pthread_cond_t fetched = PTHREAD_COND_INITIALIZER;

static int
fetching(const char *token)
{
	int i;

	for (i = 0; i < MAX_FETCHING; i++)
		if (strcmp(fetching_tokens[i], token) == 0)
			return 1;
	return 0;
}

/* Mark (or clear) token as being read; when the table is full, no mark. */
static void
set_fetching(const char *token, int on)
{
	int i;

	for (i = 0; i < MAX_FETCHING; i++) {
		if (on && fetching_tokens[i][0] == '\0') {
			snprintf(fetching_tokens[i], 65, "%s", token);
			return;
		}
		if (!on && strcmp(fetching_tokens[i], token) == 0) {
			fetching_tokens[i][0] = '\0';
			return;
		}
	}
}

/* Wait for a lookup under way (lock held); -1 after 5 s. */
static int
wait_fetch(void)
{
	struct timespec dl;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 5;
	return pthread_cond_timedwait(&fetched, &lock, &dl) == 0 ? 0 : -1;
}

/* A cached record still good to use at time now; lock held. */
static int
fresh(const struct gw_keyrec *r, const struct gw_cfg *cfg, int64_t now)
{
	int64_t age = now - r->fetched_us;

	if (!listener_up)
		return age < UNTRUSTED_AGE_US;
	return age < (int64_t)cfg->key_cache_ttl_s * 1000000;
}

static struct node *
find(const char *token)
{
	struct node *n;

	for (n = buckets[bucket_of(token)]; n != NULL; n = n->next)
		if (strcmp(n->rec->token, token) == 0)
			return n;
	return NULL;
}

/* What to read on a miss: a key by its hash, or a JWT's team and user. */
struct lookup {
	int jwt;
	const char *team_id, *user_id;
};

static enum gw_status
get(struct gw_db *db, const struct gw_cfg *cfg, const char *token,
    const struct lookup *lk, struct gw_keyrec **out)
{
	struct gw_keyrec *rec = NULL;
	struct node *n;
	enum gw_status st;
	uint64_t gen;
	unsigned seen = __atomic_load_n(&seen_gen, __ATOMIC_ACQUIRE);

	if (seen == 0 || cfg->gen > seen)
		see_cfg(cfg); /* the first, or a reloaded configuration */
	pthread_once(&listener_once, start_listener);
	pthread_mutex_lock(&lock);
	for (;;) {
		n = find(token);
		if (n != NULL && fresh(n->rec, cfg, gw_now_mono_us())) {
			*out = gw_keyrec_ref(n->rec);
			pthread_mutex_unlock(&lock);
			return GW_OK;
		}
		/*
		 * One lookup per key at a time in a process: a burst on a cold
		 * key would otherwise open a connection per thread at once.
		 */
		if (!fetching(token) || wait_fetch() != 0)
			break;
	}
	set_fetching(token, 1);
	gen = inval_gen;
	pthread_mutex_unlock(&lock);

	st = lk->jwt
	         ? gw_keystore_lookup_jwt(db, lk->team_id, lk->user_id, &rec)
	         : gw_keystore_lookup(db, token, &rec);
	pthread_mutex_lock(&lock);
	set_fetching(token, 0);
	pthread_cond_broadcast(&fetched);
	if (st != GW_OK) {
		/* Database down: a stale answer beats refusing every key. */
		n = find(token);
		if (n != NULL && n->rec->found) {
			*out = gw_keyrec_ref(n->rec);
			pthread_mutex_unlock(&lock);
			return GW_OK;
		}
		pthread_mutex_unlock(&lock);
		return st;
	}
	if (gen != inval_gen) {
		/* Something changed while we read: use it, do not keep it. */
		pthread_mutex_unlock(&lock);
		*out = rec;
		return GW_OK;
	}
	remove_token(token);
	make_room(rec, cfg, gw_now_mono_us());
	n = gw_xmalloc(sizeof(*n));
	n->rec = gw_keyrec_ref(rec);
	n->next = buckets[bucket_of(token)];
	buckets[bucket_of(token)] = n;
	nentries++;
	if (!rec->found)
		nmissing++;
	pthread_mutex_unlock(&lock);
	*out = rec;
	return GW_OK;
}

enum gw_status
gw_authcache_get(struct gw_db *db, const struct gw_cfg *cfg, const char *token,
    struct gw_keyrec **out)
{
	static const struct lookup key = {0, NULL, NULL};

	return get(db, cfg, token, &key, out);
}

enum gw_status
gw_authcache_get_jwt(struct gw_db *db, const struct gw_cfg *cfg,
    const char *team_id, const char *user_id, struct gw_keyrec **out)
{
	struct lookup lk = {1, team_id, user_id};
	char token[65];

	gw_keystore_jwt_token(team_id, user_id, token);
	return get(db, cfg, token, &lk, out);
}
