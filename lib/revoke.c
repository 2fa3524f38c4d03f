/*
 * revoke.c: the registry of open streams and the listener's re-reads. One
 * lock guards the list and the recent notifications; the stream's own
 * thread only ever loads e->why and e->expires_us.
 */
#include "revoke.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "util.h"

/* Keys re-read per round of gw_revoke_recheck (rounds repeat). */
#define BATCH 32
/*
 * Recent notifications, kept so that a stream registered just after a
 * change to its key is re-read: its request may have read the record
 * before the change.
 */
#define RECENT 32

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct gw_revoke *head; /* the streams registered */
static int nstreams;
static int pending; /* atomic: some stream is suspect */
static struct {
	char payload[80];
	int64_t mono_us;
} recent[RECENT];
static unsigned nrecent; /* notifications seen; recent[] is a ring */

/* Does the notification payload concern rec? Anything unknown does. */
static int
concerns(const struct gw_keyrec *rec, const char *payload)
{
	const char *id;

	if (strncmp(payload, "key:", 4) == 0)
		return strcmp(rec->token, payload + 4) == 0;
	if (strncmp(payload, "team:", 5) == 0) {
		id = rec->team_id;
		return id != NULL && strcmp(id, payload + 5) == 0;
	}
	if (strncmp(payload, "user:", 5) == 0) {
		id = rec->user_id;
		return id != NULL && strcmp(id, payload + 5) == 0;
	}
	return 1;
}

/*
 * Was a notification about rec seen since the request holding it began
 * (since, monotonic)? One seen before had emptied the auth cache's entry
 * first, so the request read the key after the change. Lock held.
 */
static int
changed_since(const struct gw_keyrec *rec, int64_t since)
{
	unsigned i, n = nrecent < RECENT ? nrecent : RECENT;

	for (i = 0; i < n; i++) {
		unsigned j = (nrecent - 1 - i) % RECENT;

		if (recent[j].mono_us < since)
			return 0; /* older ones are older still */
		if (concerns(rec, recent[j].payload))
			return 1;
	}
	/* The ring turned over within the window: assume the worst. */
	return nrecent > RECENT;
}

void
gw_revoke_add(struct gw_revoke *e, const struct gw_keyrec *rec, int64_t since)
{
	e->rec = rec;
	e->expires_us = rec->expires_us;
	e->why = GW_REVOKE_NONE;
	e->suspect = 0;
	e->prev = NULL;
	pthread_mutex_lock(&lock);
	if (nrecent > 0 && changed_since(rec, since)) {
		e->suspect = 1;
		__atomic_store_n(&pending, 1, __ATOMIC_RELEASE);
	}
	e->next = head;
	if (head != NULL)
		head->prev = e;
	head = e;
	nstreams++;
	pthread_mutex_unlock(&lock);
}

void
gw_revoke_remove(struct gw_revoke *e)
{
	if (e->rec == NULL)
		return;
	pthread_mutex_lock(&lock);
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	nstreams--;
	pthread_mutex_unlock(&lock);
	e->rec = NULL;
	e->next = e->prev = NULL;
}

enum gw_revoke_why
gw_revoke_check(const struct gw_revoke *e, int64_t now_real_us)
{
	int why = __atomic_load_n(&e->why, __ATOMIC_ACQUIRE);
	int64_t exp;

	if (why != GW_REVOKE_NONE)
		return (enum gw_revoke_why)why;
	exp = __atomic_load_n(&e->expires_us, __ATOMIC_RELAXED);
	if (exp != 0 && now_real_us >= exp)
		return GW_REVOKE_EXPIRED;
	return GW_REVOKE_NONE;
}

void
gw_revoke_note(const char *payload)
{
	struct gw_revoke *e;
	int any = 0;

	pthread_mutex_lock(&lock);
	gw_strlcpy(recent[nrecent % RECENT].payload, payload,
	    sizeof(recent[0].payload));
	recent[nrecent % RECENT].mono_us = gw_now_mono_us();
	nrecent++;
	for (e = head; e != NULL; e = e->next)
		if (concerns(e->rec, payload)) {
			e->suspect = 1;
			any = 1;
		}
	if (any)
		__atomic_store_n(&pending, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&lock);
}

enum gw_revoke_why
gw_revoke_verdict(const struct gw_keyrec *rec, int64_t now_real_us)
{
	if (rec == NULL || !rec->found)
		return GW_REVOKE_DELETED;
	if (rec->blocked)
		return GW_REVOKE_BLOCKED;
	if (rec->team_blocked)
		return GW_REVOKE_TEAM_BLOCKED;
	if (rec->expires_us != 0 && now_real_us >= rec->expires_us)
		return GW_REVOKE_EXPIRED;
	return GW_REVOKE_NONE;
}

/*
 * Take up to BATCH distinct keys of suspect streams into tokens (their
 * streams are no longer suspect); how many. Lock held.
 */
static int
take_suspects(char tokens[][65])
{
	struct gw_revoke *e;
	int n = 0, i;

	for (e = head; e != NULL; e = e->next) {
		if (!e->suspect)
			continue;
		for (i = 0; i < n; i++)
			if (strcmp(tokens[i], e->rec->token) == 0)
				break;
		if (i == n) {
			if (n == BATCH) {
				/* The rest in the next round. */
				__atomic_store_n(&pending, 1, __ATOMIC_RELEASE);
				break;
			}
			memcpy(tokens[n++], e->rec->token, 65);
		}
		e->suspect = 0;
	}
	return n;
}

/* What the re-read of token found, onto its streams. Lock held. */
static void
apply(const char *token, const struct gw_keyrec *now, enum gw_revoke_why why)
{
	struct gw_revoke *e;

	for (e = head; e != NULL; e = e->next) {
		if (strcmp(e->rec->token, token) != 0)
			continue;
		if (now != NULL)
			__atomic_store_n(
			    &e->expires_us, now->expires_us, __ATOMIC_RELAXED);
		if (why != GW_REVOKE_NONE)
			__atomic_store_n(&e->why, (int)why, __ATOMIC_RELEASE);
	}
}

enum gw_status
gw_revoke_recheck(struct gw_db *db)
{
	char tokens[BATCH][65];
	struct gw_keyrec *rec;
	enum gw_revoke_why why;
	enum gw_status st = GW_OK;
	int n, i;

	while (__atomic_exchange_n(&pending, 0, __ATOMIC_ACQ_REL)) {
		pthread_mutex_lock(&lock);
		n = take_suspects(tokens);
		pthread_mutex_unlock(&lock);
		for (i = 0; i < n; i++) {
			rec = NULL;
			/*
			 * A failed read leaves the stream going: the listener
			 * listens again, and then every stream is re-read.
			 */
			if (gw_keystore_lookup(db, tokens[i], &rec) != GW_OK) {
				st = GW_E_DB;
				continue;
			}
			why = gw_revoke_verdict(rec, gw_now_real_us());
			if (why != GW_REVOKE_NONE)
				gw_log_info(NULL, "revoke",
				    "ending the streams of key %.12s...: %s",
				    tokens[i],
				    why == GW_REVOKE_DELETED   ? "deleted"
				    : why == GW_REVOKE_EXPIRED ? "expired"
				                               : "blocked");
			pthread_mutex_lock(&lock);
			apply(tokens[i], rec, why);
			pthread_mutex_unlock(&lock);
			gw_keyrec_unref(rec);
		}
	}
	return st;
}

const char *
gw_revoke_describe(
    const struct gw_revoke *e, enum gw_revoke_why why, char *msg, size_t msglen)
{
	char when[32];
	int64_t expires_us = __atomic_load_n(&e->expires_us, __ATOMIC_RELAXED);

	switch (why) {
	case GW_REVOKE_EXPIRED:
		gw_time_rfc3339(expires_us, when);
		snprintf(msg, msglen,
		    "Authentication Error - Expired Key. Key Expiry time %s",
		    when);
		return "expired_key";
	case GW_REVOKE_BLOCKED:
	case GW_REVOKE_TEAM_BLOCKED:
		snprintf(msg, msglen,
		    "Authentication Error, %s is blocked. Update via "
		    "/%s/unblock if you're admin.",
		    why == GW_REVOKE_BLOCKED ? "Key" : "Team",
		    why == GW_REVOKE_BLOCKED ? "key" : "team");
		return "auth_error";
	case GW_REVOKE_DELETED:
	case GW_REVOKE_NONE:
		break;
	}
	snprintf(msg, msglen,
	    "Authentication Error, the key was deleted or "
	    "regenerated.");
	return "auth_error";
}

int
gw_revoke_count(void)
{
	int n;

	pthread_mutex_lock(&lock);
	n = nstreams;
	pthread_mutex_unlock(&lock);
	return n;
}
