/*
 * budget.c: the budget cache of keys, users and teams, and budget checks.
 *
 * The cache holds at most GW_BUDGET_CACHE_MAX entities that nothing holds,
 * in LRU order: a spend older than budget_refresh_ms is read again anyway,
 * so an evicted entity costs one read, and a process that sees a great
 * many keys keeps only the recent ones. An entity held by a charge (spend
 * not yet shipped) or by a check in progress is pinned: off the LRU list,
 * never evicted. Pinned entities are few (the rows in flight) except while
 * PostgreSQL is down, when they are bounded by the unshipped rows, each of
 * which holds a charge already.
 */
#include "budget.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "db.h"
#include "keystore.h"
#include "util.h"

#define NBUCKETS GW_BUDGET_CACHE_MAX

/* Entity kinds, in the order of a charge's and a check's arrays. */
enum { E_KEY, E_USER, E_TEAM };

/* A key, user or team: spend as last read, plus this process's unshipped. */
struct entity {
	int kind; /* E_KEY, E_USER, E_TEAM */
	char *id; /* key hash, user id, team id */
	double db_spend;
	double db_budget;    /* < 0: none (users read fresh, for JWTs) */
	int64_t fetched_us;  /* 0: never read */
	double pending;      /* spooled here, not yet shipped */
	int pins;            /* charges and checks holding it */
	struct entity *next; /* in its bucket */
	struct entity *newer, *older; /* on the LRU list when not pinned */
};

/* Cost counted against up to three entities until its row is shipped. */
struct gw_budget_charge {
	struct entity *e[3]; /* NULL-terminated when fewer */
	double cost;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct entity *buckets[NBUCKETS];
/* The LRU list's head: lru.older is the newest, lru.newer the oldest. */
static struct entity lru = {.newer = &lru, .older = &lru};
static size_t nentities;

static unsigned
bucket_of(int kind, const char *id)
{
	return (gw_hash_str(id) ^ (unsigned)kind) % NBUCKETS;
}

/* The entity (kind, id), or NULL; lock held. */
static struct entity *
find(int kind, const char *id)
{
	struct entity *e;

	for (e = buckets[bucket_of(kind, id)]; e != NULL; e = e->next)
		if (e->kind == kind && strcmp(e->id, id) == 0)
			return e;
	return NULL;
}

static void
lru_unlink(struct entity *e)
{
	e->newer->older = e->older;
	e->older->newer = e->newer;
}

/* Put e on the list as the most recently used. */
static void
lru_push(struct entity *e)
{
	e->older = lru.older;
	e->newer = &lru;
	lru.older->newer = e;
	lru.older = e;
}

/* Free the least recently used entities beyond the capacity; lock held. */
static void
evict(void)
{
	struct entity *e, **pp;

	while (nentities > GW_BUDGET_CACHE_MAX && (e = lru.newer) != &lru) {
		lru_unlink(e);
		for (pp = &buckets[bucket_of(e->kind, e->id)]; *pp != e;
		     pp = &(*pp)->next)
			;
		*pp = e->next;
		nentities--;
		free(e->id);
		free(e);
	}
}

/*
 * The entity (kind, id), created on first use, pinned: it stays until
 * unpin. Lock held.
 */
static struct entity *
pin(int kind, const char *id)
{
	struct entity *e = find(kind, id);
	unsigned b;

	if (e == NULL) {
		b = bucket_of(kind, id);
		e = gw_xcalloc(1, sizeof(*e));
		e->kind = kind;
		e->id = gw_xstrdup(id);
		e->db_budget = -1;
		e->next = buckets[b];
		buckets[b] = e;
		e->pins = 1;
		nentities++;
		evict(); /* others: e is not on the list */
		return e;
	}
	if (e->pins++ == 0)
		lru_unlink(e);
	return e;
}

/* Drop a pin: the last one puts e back as the most recent. Lock held. */
static void
unpin(struct entity *e)
{
	if (--e->pins > 0)
		return;
	lru_push(e);
	evict();
}

size_t
gw_budget_cached(void)
{
	size_t n;

	pthread_mutex_lock(&lock);
	n = nentities;
	pthread_mutex_unlock(&lock);
	return n;
}

struct gw_budget_charge *
gw_budget_charge_new(const struct gw_principal *who, double cost)
{
	const struct gw_keyrec *k = who->rec;
	struct gw_budget_charge *c;
	int i = 0;

	if (cost <= 0 || k == NULL)
		return NULL;
	c = gw_xcalloc(1, sizeof(*c));
	c->cost = cost;
	pthread_mutex_lock(&lock);
	if (who->role == GW_ROLE_KEY)
		c->e[i++] = pin(E_KEY, k->token);
	if (k->user_id != NULL)
		c->e[i++] = pin(E_USER, k->user_id);
	if (k->team_id != NULL)
		c->e[i++] = pin(E_TEAM, k->team_id);
	for (i = 0; i < 3 && c->e[i] != NULL; i++)
		c->e[i]->pending += cost;
	pthread_mutex_unlock(&lock);
	return c;
}

void
gw_budget_charge_done(struct gw_budget_charge *c, int shipped)
{
	int i;

	if (c == NULL)
		return;
	pthread_mutex_lock(&lock);
	for (i = 0; i < 3 && c->e[i] != NULL; i++) {
		c->e[i]->pending -= c->cost;
		/*
		 * Now in the database, but not in the spend read before:
		 * count it there until the next read.
		 */
		if (shipped)
			c->e[i]->db_spend += c->cost;
		unpin(c->e[i]);
	}
	pthread_mutex_unlock(&lock);
	free(c);
}

double
gw_budget_key_spend(const struct gw_principal *who)
{
	struct entity *e;
	double s;

	if (who->role != GW_ROLE_KEY || who->rec == NULL)
		return -1;
	pthread_mutex_lock(&lock);
	e = find(E_KEY, who->rec->token);
	s = e != NULL && e->fetched_us ? e->db_spend : who->rec->spend;
	if (e != NULL)
		s += e->pending;
	pthread_mutex_unlock(&lock);
	return s;
}

static const char budget_sql[] =
    "SELECT (SELECT spend FROM keys WHERE token = $1), "
    "(SELECT spend FROM users WHERE user_id = $2), "
    "(SELECT max_budget FROM users WHERE user_id = $2), "
    "(SELECT spend FROM teams WHERE team_id = $3), "
    "(SELECT max_budget FROM teams WHERE team_id = $3), "
    "(SELECT max_budget FROM keys WHERE token = $1)";

/* Re-read spend (and budgets) of the key, user and team when stale. */
static void
refresh(struct gw_db *db, const struct gw_cfg *cfg,
    const struct gw_principal *who, struct entity **ents)
{
	const struct gw_keyrec *k = who->rec;
	struct gw_db_rows *rows = NULL;
	const char *p[3] = {
	    who->role == GW_ROLE_KEY ? k->token : NULL, k->user_id, k->team_id};
	int64_t now = gw_now_mono_us(), stale = 0;
	const char *v;
	char err[256];
	int i;

	pthread_mutex_lock(&lock);
	for (i = 0; i < 3; i++)
		if (ents[i] != NULL &&
		    now - ents[i]->fetched_us >=
		        (int64_t)cfg->budget_refresh_ms * 1000)
			stale = 1;
	pthread_mutex_unlock(&lock);
	if (!stale || gw_db_exec(db, budget_sql, 3, p, 1, &rows, err,
	                  sizeof(err)) != GW_OK)
		goto out; /* fresh, or the database is down: last known */
	pthread_mutex_lock(&lock);
	for (i = 0; i < 3; i++) {
		static const int spend_col[3] = {0, 1, 3};
		static const int budget_col[3] = {5, 2, 4};

		if (ents[i] == NULL)
			continue;
		v = gw_db_rows_get(rows, 0, spend_col[i]);
		ents[i]->db_spend = v ? atof(v) : 0;
		v = gw_db_rows_get(rows, 0, budget_col[i]);
		ents[i]->db_budget = v ? atof(v) : -1;
		ents[i]->fetched_us = now;
	}
	pthread_mutex_unlock(&lock);
out:
	gw_db_rows_free(rows);
}

enum gw_status
gw_budget_check(struct gw_db *db, const struct gw_cfg *cfg,
    const struct gw_principal *who, char *msg, size_t msglen)
{
	const struct gw_keyrec *k = who->rec;
	static const char *const what[3] = {"", "User=", "Team="};
	struct entity *ents[3] = {NULL, NULL, NULL};
	double budget[3], spend;
	const char *names[3];
	enum gw_status st = GW_OK;
	int i, any;

	if (who->admin || k == NULL)
		return GW_OK;
	budget[0] = who->role == GW_ROLE_KEY ? k->max_budget : -1;
	budget[1] = k->user_max_budget;
	budget[2] = k->team_max_budget;
	names[0] = "";
	names[1] = k->user_id;
	names[2] = k->team_id;
	/* A user's budget is always read: a JWT's record carries none. */
	any = (who->role == GW_ROLE_KEY && budget[0] >= 0) ||
	      k->user_id != NULL || (k->team_id != NULL && budget[2] >= 0);
	if (!any)
		return GW_OK;
	pthread_mutex_lock(&lock);
	if (who->role == GW_ROLE_KEY)
		ents[0] = pin(E_KEY, k->token);
	if (k->user_id != NULL)
		ents[1] = pin(E_USER, k->user_id);
	if (k->team_id != NULL)
		ents[2] = pin(E_TEAM, k->team_id);
	pthread_mutex_unlock(&lock);
	refresh(db, cfg, who, ents);
	pthread_mutex_lock(&lock);
	for (i = 0; i < 3 && st == GW_OK; i++) {
		double b;

		if (ents[i] == NULL)
			continue;
		/* Budgets read with the spend are fresher than the cache's. */
		b = ents[i]->fetched_us ? ents[i]->db_budget : budget[i];
		if (b < 0)
			continue;
		spend = (ents[i]->fetched_us ? ents[i]->db_spend
		                             : (i == 0      ? k->spend
		                                   : i == 1 ? k->user_spend
		                                            : k->team_spend)) +
		        ents[i]->pending;
		if (spend >= b && i == 1) {
			/* LiteLLM's words for a user (auth_checks.py). */
			snprintf(msg, msglen,
			    "ExceededBudget: User=%s over budget. Spend=%.10g, "
			    "Budget=%.10g",
			    names[i], spend, b);
			st = GW_E_INVALID;
		} else if (spend >= b) {
			snprintf(msg, msglen,
			    "Budget has been exceeded! %s%s%sCurrent cost: "
			    "%.10g, Max budget: %.10g",
			    what[i], i ? names[i] : "", i ? " " : "", spend, b);
			st = GW_E_INVALID;
		}
	}
	for (i = 0; i < 3; i++)
		if (ents[i] != NULL)
			unpin(ents[i]);
	pthread_mutex_unlock(&lock);
	return st;
}
