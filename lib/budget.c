/* budget.c: the budget cache of keys, users and teams, and budget checks. */
#include "budget.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "db.h"
#include "keystore.h"
#include "util.h"

#define NBUCKETS 1024

/* Entity kinds, in the order of a charge's and a check's arrays. */
enum { E_KEY, E_USER, E_TEAM };

/* A key, user or team: spend as last read, plus this process's unshipped. */
struct entity {
	int kind; /* E_KEY, E_USER, E_TEAM */
	char *id; /* key hash, user id, team id */
	double db_spend;
	double db_budget;   /* < 0: none (users read fresh, for JWTs) */
	int64_t fetched_us; /* 0: never read */
	double pending;     /* spooled here, not yet shipped */
	struct entity *next;
};

/* Cost counted against up to three entities until its row is shipped. */
struct gw_budget_charge {
	struct entity *e[3]; /* NULL-terminated when fewer */
	double cost;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct entity *buckets[NBUCKETS];

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

/* The entity (kind, id), created on first use; lock held. */
static struct entity *
get(int kind, const char *id)
{
	struct entity *e = find(kind, id);
	unsigned b;

	if (e != NULL)
		return e;
	b = bucket_of(kind, id);
	e = gw_xcalloc(1, sizeof(*e));
	e->kind = kind;
	e->id = gw_xstrdup(id);
	e->db_budget = -1;
	e->next = buckets[b];
	buckets[b] = e;
	return e;
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
		c->e[i++] = get(E_KEY, k->token);
	if (k->user_id != NULL)
		c->e[i++] = get(E_USER, k->user_id);
	if (k->team_id != NULL)
		c->e[i++] = get(E_TEAM, k->team_id);
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
		ents[0] = get(E_KEY, k->token);
	if (k->user_id != NULL)
		ents[1] = get(E_USER, k->user_id);
	if (k->team_id != NULL)
		ents[2] = get(E_TEAM, k->team_id);
	pthread_mutex_unlock(&lock);
	refresh(db, cfg, who, ents);
	pthread_mutex_lock(&lock);
	for (i = 0; i < 3; i++) {
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
		if (spend >= b) {
			pthread_mutex_unlock(&lock);
			snprintf(msg, msglen,
			    "Budget has been exceeded! %s%s%sCurrent cost: "
			    "%.10g, Max budget: %.10g",
			    what[i], i ? names[i] : "", i ? " " : "", spend, b);
			return GW_E_INVALID;
		}
	}
	pthread_mutex_unlock(&lock);
	return GW_OK;
}
