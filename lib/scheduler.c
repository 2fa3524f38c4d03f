/*
 * scheduler.c: swap-aware admission (scheduler.h), its shared area and the
 * rule. Every decision scans the slot table under the area's lock: at most
 * SCHED_SLOTS entries of 32 bytes, a few microseconds, taken only when
 * [scheduler] is on.
 */
#include "scheduler.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "json_util.h"
#include "log.h"
#include "metrics.h"
#include "shm.h"

#define SCHED_MODELS 64
#define SCHED_SLOTS 1024
#define SCHED_NAME 128
#define SCHED_GROUPS (GW_SCHEDULER_GROUPS_MAX + 1)
#define SCHED_BUCKETS 13
/* Slots of dead processes are looked for at most this often. */
#define REAP_EVERY_US (1000 * 1000)
/* llama-swap's /running is asked at most this often per group. */
#define RUNNING_EVERY_US (1000 * 1000)

static const double bucket_le[SCHED_BUCKETS] = {
    0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};

enum { S_FREE = 0, S_WAITING, S_RUNNING };

struct smodel {
	char name[SCHED_NAME]; /* "" when free */
	uint32_t group;        /* as last configured */
	uint32_t pad;
	uint64_t swaps; /* times its group switched to it */
	uint64_t wait_count;
	uint64_t wait_bucket[SCHED_BUCKETS]; /* not cumulative */
	double wait_sum;
};

struct sgroup {
	int32_t active; /* model index + 1; 0: none yet */
	int32_t
	    draining; /* a starved waiter: the active model admits no more */
	int64_t since_us; /* when active became what it is */
	uint64_t swaps;
	int32_t fresh; /* swapped in, its first request not yet admitted */
	int32_t pad;
	int64_t running_at; /* monotonic us of the last /running asked */
};

struct sslot {
	uint32_t state;
	uint32_t model;
	uint32_t group;
	int32_t pid;
	uint64_t seq;
	int64_t t_arrive_us;
};

struct area {
	struct gw_shm_lock lock;
	uint64_t seq; /* the last sequence number handed out */
	uint32_t hi;  /* slots [0, hi) may be in use */
	uint32_t pad;
	int64_t last_reap; /* monotonic us */
	struct sgroup group[SCHED_GROUPS];
	struct smodel model[SCHED_MODELS];
	struct sslot slot[SCHED_SLOTS];
};

/* Per-model facts of one group, gathered in one scan. */
struct view {
	uint32_t inflight[SCHED_MODELS];
	uint32_t waiting[SCHED_MODELS];
	uint64_t oldest_seq[SCHED_MODELS]; /* 0: none waiting */
	int64_t oldest_t[SCHED_MODELS];
	uint32_t nwaiting; /* the whole group's */
};

static void
area_init(void *p)
{
	struct area *a = p;

	gw_shm_lock_init(&a->lock);
}

static struct area *
area_get(void)
{
	struct gw_shm *s = gw_shm_get();

	return s != NULL ? gw_shm_area(s, GW_SHM_AREA_SCHEDULER,
	                       sizeof(struct area), area_init)
	                 : NULL;
}

/* Trim blanks from [*s, *s + *n). */
static void
trim(const char **s, size_t *n)
{
	while (*n > 0 && (**s == ' ' || **s == '\t'))
		(*s)++, (*n)--;
	while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
		(*n)--;
}

int
gw_scheduler_group_of(const char *groups, const char *model)
{
	const char *p = groups, *e;
	size_t mlen = strlen(model), n;
	int g = 1;

	while (*p != '\0') {
		e = p + strcspn(p, ",;");
		n = (size_t)(e - p);
		trim(&p, &n);
		if (n == mlen && n > 0 && memcmp(p, model, n) == 0)
			return g <= GW_SCHEDULER_GROUPS_MAX ? g : 0;
		if (*e == ';')
			g++;
		p = *e != '\0' ? e + 1 : e;
	}
	return 0;
}

static void
lock(struct area *a)
{
	/* A holder that died left at most one slot half-written: harmless. */
	(void)gw_shm_lock(&a->lock);
}

/* Free the slots of processes that are gone (under the lock). */
static void
reap(struct area *a, int64_t now)
{
	uint32_t i;

	if (now - a->last_reap < REAP_EVERY_US)
		return;
	a->last_reap = now;
	for (i = 0; i < a->hi; i++)
		if (a->slot[i].state != S_FREE &&
		    gw_shm_pid_dead((pid_t)a->slot[i].pid)) {
			gw_log_warn(NULL, "scheduler",
			    "freeing a slot of model %s left by pid %d",
			    a->model[a->slot[i].model].name,
			    (int)a->slot[i].pid);
			a->slot[i].state = S_FREE;
		}
	while (a->hi > 0 && a->slot[a->hi - 1].state == S_FREE)
		a->hi--;
}

static void
scan(const struct area *a, uint32_t group, struct view *v)
{
	uint32_t i, m;

	memset(v, 0, sizeof(*v));
	for (i = 0; i < a->hi; i++) {
		const struct sslot *s = &a->slot[i];

		if (s->state == S_FREE || s->group != group)
			continue;
		m = s->model;
		if (s->state == S_RUNNING) {
			v->inflight[m]++;
			continue;
		}
		v->waiting[m]++;
		v->nwaiting++;
		if (v->oldest_seq[m] == 0 || s->seq < v->oldest_seq[m]) {
			v->oldest_seq[m] = s->seq;
			v->oldest_t[m] = s->t_arrive_us;
		}
	}
}

/* The model of the group's oldest waiting request, or -1. */
static int
oldest_waiter(const struct view *v)
{
	uint64_t best = 0;
	int m, w = -1;

	for (m = 0; m < SCHED_MODELS; m++)
		if (v->oldest_seq[m] != 0 &&
		    (best == 0 || v->oldest_seq[m] < best))
			best = v->oldest_seq[m], w = m;
	return w;
}

static void
switch_to(struct area *a, struct sgroup *g, int m, int64_t now)
{
	if (g->active != 0 && g->active != m + 1) {
		g->swaps++;
		a->model[m].swaps++;
		g->fresh = 1;
	}
	g->active = m + 1;
	g->draining = 0;
	g->since_us = now;
}

static int rule(
    struct area *a, uint32_t i, const struct gw_cfg *cfg, int64_t now);

/*
 * May slot i (waiting) go now? The first request admitted after a swap is
 * told so (*swapped): it is the one that pays for the load.
 */
static int
may_go(struct area *a, uint32_t i, const struct gw_cfg *cfg, int64_t now,
    int *swapped)
{
	struct sgroup *g = &a->group[a->slot[i].group];

	if (!rule(a, i, cfg, now))
		return 0;
	*swapped = g->fresh;
	g->fresh = 0;
	return 1;
}

/*
 * The rule of scheduler.h for slot i, under the lock; it may switch the
 * group's active model as a side effect.
 */
static int
rule(struct area *a, uint32_t i, const struct gw_cfg *cfg, int64_t now)
{
	struct sslot *s = &a->slot[i];
	struct sgroup *g = &a->group[s->group];
	struct view v;
	int m = (int)s->model, act = g->active - 1, w, k;
	int64_t max_wait = (int64_t)cfg->sched_max_wait_s * 1000000;

	scan(a, s->group, &v);
	/* Same model: first come, first served. */
	if (v.oldest_seq[m] != s->seq)
		return 0;
	if (cfg->sched_concurrency > 0 &&
	    v.inflight[m] >= (uint32_t)cfg->sched_concurrency)
		return 0;
	if (act < 0) {
		switch_to(a, g, m, now);
		return 1;
	}
	/* Someone else starved: drain the active model. */
	for (k = 0; k < SCHED_MODELS && !g->draining; k++)
		if (k != act && v.oldest_seq[k] != 0 &&
		    now - v.oldest_t[k] >= max_wait)
			g->draining = 1;
	if (!g->draining) {
		if (m == act)
			return 1;
		if (v.inflight[act] > 0 || v.waiting[act] > 0)
			return 0;
		if (now - g->since_us <
		    (int64_t)cfg->sched_min_loaded_s * 1000000)
			return 0;
	} else if (v.inflight[act] > 0) {
		return 0;
	}
	/* The active model is idle (or drained): the oldest waiter's turn. */
	w = oldest_waiter(&v);
	if (w != act && w >= 0) {
		switch_to(a, g, w, now);
	} else {
		g->draining = 0;
	}
	return w == m;
}

/* A model's index, added when new (recycling one nobody uses); or -1. */
static int
model_index(struct area *a, const char *name, uint32_t group)
{
	int m, freem = -1;
	uint32_t i, g;

	for (m = 0; m < SCHED_MODELS; m++) {
		if (strcmp(a->model[m].name, name) == 0) {
			a->model[m].group = group;
			return m;
		}
		if (freem < 0 && a->model[m].name[0] == '\0')
			freem = m;
	}
	/* Full: take one with no slot that no group has active. */
	for (m = 0; freem < 0 && m < SCHED_MODELS; m++) {
		int used = 0;

		for (i = 0; i < a->hi && !used; i++)
			used = a->slot[i].state != S_FREE &&
			       a->slot[i].model == (uint32_t)m;
		for (g = 0; g < SCHED_GROUPS && !used; g++)
			used = a->group[g].active == m + 1;
		if (!used)
			freem = m;
	}
	if (freem < 0)
		return -1;
	memset(&a->model[freem], 0, sizeof(a->model[freem]));
	gw_strlcpy(a->model[freem].name, name, SCHED_NAME);
	a->model[freem].group = group;
	return freem;
}

static void
note_wait(
    struct area *a, struct gw_scheduler_ticket *t, uint32_t m, int64_t now)
{
	struct smodel *sm = &a->model[m];
	double s;
	int b;

	t->wait_us = now - t->t_enter;
	if (t->wait_us < 0)
		t->wait_us = 0;
	s = (double)t->wait_us / 1e6;
	for (b = 0; b < SCHED_BUCKETS && s > bucket_le[b]; b++)
		;
	if (b < SCHED_BUCKETS)
		sm->wait_bucket[b]++;
	sm->wait_count++;
	sm->wait_sum += s;
}

enum gw_scheduler_verdict
gw_scheduler_enter(struct gw_scheduler_ticket *t, const struct gw_cfg *cfg,
    const char *model, int64_t now_us)
{
	static int warned_models, warned_slots;
	struct area *a;
	struct view v;
	uint32_t group, i;
	int m, swapped = 0;
	enum gw_scheduler_verdict vd = GW_SCHEDULER_OFF;

	memset(t, 0, sizeof(*t));
	if (!cfg->sched_enabled || strlen(model) >= SCHED_NAME ||
	    (a = area_get()) == NULL)
		return GW_SCHEDULER_OFF;
	t->t_enter = now_us;
	group = (uint32_t)gw_scheduler_group_of(cfg->sched_groups, model);
	lock(a);
	reap(a, now_us);
	if ((m = model_index(a, model, group)) < 0) {
		gw_log_warn_once(&warned_models, "scheduler",
		    "model table full: requests of new models pass through");
		goto out;
	}
	for (i = 0; i < SCHED_SLOTS && a->slot[i].state != S_FREE; i++)
		;
	if (i == SCHED_SLOTS) {
		gw_log_warn_once(&warned_slots, "scheduler",
		    "slot table full: requests pass through unscheduled");
		goto out;
	}
	scan(a, group, &v);
	a->slot[i] = (struct sslot){S_WAITING, (uint32_t)m, group,
	    (int32_t)gw_shm_pid(), ++a->seq, now_us};
	if (i >= a->hi)
		a->hi = i + 1;
	t->slot = (int)i + 1;
	t->seq = a->seq;
	if (may_go(a, i, cfg, now_us, &swapped)) {
		a->slot[i].state = S_RUNNING;
		t->swapped = swapped;
		note_wait(a, t, (uint32_t)m, now_us);
		vd = GW_SCHEDULER_GO;
	} else if (v.nwaiting >= (uint32_t)cfg->sched_queue_max) {
		a->slot[i].state = S_FREE;
		t->slot = 0;
		vd = GW_SCHEDULER_FULL;
	} else {
		t->waited = 1;
		vd = GW_SCHEDULER_WAIT;
	}
out:
	gw_shm_unlock(&a->lock);
	return vd;
}

/* The ticket's slot when it is still its own, or NULL (under the lock). */
static struct sslot *
own_slot(struct area *a, const struct gw_scheduler_ticket *t)
{
	struct sslot *s;

	if (t->slot <= 0 || t->slot > SCHED_SLOTS)
		return NULL;
	s = &a->slot[t->slot - 1];
	return s->state != S_FREE && s->seq == t->seq ? s : NULL;
}

enum gw_scheduler_verdict
gw_scheduler_poll(
    struct gw_scheduler_ticket *t, const struct gw_cfg *cfg, int64_t now_us)
{
	struct area *a = area_get();
	struct sslot *s;
	int swapped = 0;
	enum gw_scheduler_verdict vd = GW_SCHEDULER_WAIT;

	if (a == NULL || t->slot == 0)
		return GW_SCHEDULER_OFF;
	lock(a);
	reap(a, now_us);
	if ((s = own_slot(a, t)) == NULL) {
		t->slot = 0;
		vd = GW_SCHEDULER_OFF;
	} else if (s->state == S_RUNNING) {
		vd = GW_SCHEDULER_GO;
	} else if (may_go(a, (uint32_t)(t->slot - 1), cfg, now_us, &swapped)) {
		s->state = S_RUNNING;
		t->swapped = swapped;
		note_wait(a, t, s->model, now_us);
		vd = GW_SCHEDULER_GO;
	}
	gw_shm_unlock(&a->lock);
	return vd;
}

void
gw_scheduler_leave(struct gw_scheduler_ticket *t, int64_t now_us)
{
	struct area *a;
	struct sslot *s;

	if (t->slot == 0 || (a = area_get()) == NULL)
		return;
	lock(a);
	if ((s = own_slot(a, t)) != NULL) {
		/* Left the queue without being admitted: its wait still counts.
		 */
		if (s->state == S_WAITING)
			t->wait_us = now_us - t->t_enter;
		s->state = S_FREE;
		while (a->hi > 0 && a->slot[a->hi - 1].state == S_FREE)
			a->hi--;
	}
	t->slot = 0;
	gw_shm_unlock(&a->lock);
}

int
gw_scheduler_want_running(
    const struct gw_cfg *cfg, const char *model, int64_t now_us)
{
	struct area *a;
	struct sgroup *g;
	struct view v;
	uint32_t group, m;
	int want = 0;

	if (!cfg->sched_enabled || cfg->sched_running_path[0] == '\0' ||
	    (a = area_get()) == NULL)
		return 0;
	group = (uint32_t)gw_scheduler_group_of(cfg->sched_groups, model);
	g = &a->group[group];
	lock(a);
	if (now_us - g->running_at >= RUNNING_EVERY_US) {
		scan(a, group, &v);
		want = v.nwaiting == 0;
		for (m = 0; m < SCHED_MODELS && want; m++)
			want = v.inflight[m] == 0;
		if (want)
			g->running_at = now_us;
	}
	gw_shm_unlock(&a->lock);
	return want;
}

void
gw_scheduler_note_running(
    const struct gw_cfg *cfg, const char *body, size_t len, int64_t now_us)
{
	struct area *a = area_get();
	json_object *o = NULL, *run, *e;
	struct view v;
	const char *name, *state;
	char msg[128];
	uint32_t group, m;
	size_t i, n;
	int idx, busy;

	if (a == NULL ||
	    gw_json_parse(body, len, &o, msg, sizeof(msg)) != GW_OK)
		goto out;
	run = gw_json_get(o, "running");
	if (run == NULL || !json_object_is_type(run, json_type_array))
		goto out;
	n = json_object_array_length(run);
	lock(a);
	for (i = 0; i < n && i < 64; i++) {
		e = json_object_array_get_idx(run, i);
		name = gw_json_get_str(e, "model");
		state = gw_json_get_str(e, "state");
		if (name == NULL || strlen(name) >= SCHED_NAME ||
		    (state != NULL && strcmp(state, "ready") != 0))
			continue;
		group =
		    (uint32_t)gw_scheduler_group_of(cfg->sched_groups, name);
		scan(a, group, &v);
		for (m = 0, busy = v.nwaiting > 0; m < SCHED_MODELS; m++)
			busy |= v.inflight[m] > 0;
		/* Only an idle group: what it runs now is what it admitted. */
		if (busy || (idx = model_index(a, name, group)) < 0 ||
		    a->group[group].active == idx + 1)
			continue;
		a->group[group].active = idx + 1;
		a->group[group].draining = 0;
		a->group[group].fresh = 0;
		a->group[group].since_us = now_us;
	}
	gw_shm_unlock(&a->lock);
out:
	json_object_put(o);
}

/* A copy of the area taken under the lock: rendering holds no lock. */
static int
snapshot(struct area *copy)
{
	struct area *a = area_get();

	if (a == NULL)
		return -1;
	lock(a);
	memcpy(copy, a, sizeof(*copy));
	gw_shm_unlock(&a->lock);
	return 0;
}

static void
put_seconds(struct gw_buf *b, int64_t us)
{
	gw_buf_put_milli(b, us > 0 ? us / 1000 : 0);
}

void
gw_scheduler_status(
    struct gw_buf *out, const struct gw_cfg *cfg, int64_t now_us)
{
	static struct area snap; /* big: not on a thread's stack */
	static pthread_mutex_t snap_mu = PTHREAD_MUTEX_INITIALIZER;
	struct view v;
	uint32_t g, inflight;
	int m, first_g = 1, first_m;

	gw_buf_printf(out,
	    "{\"enabled\":%s,\"max_wait_s\":%d,"
	    "\"min_loaded_s\":%d,\"concurrency\":%d,"
	    "\"queue_max\":%d,\"groups\":[",
	    cfg->sched_enabled ? "true" : "false", cfg->sched_max_wait_s,
	    cfg->sched_min_loaded_s, cfg->sched_concurrency,
	    cfg->sched_queue_max);
	pthread_mutex_lock(&snap_mu);
	if (snapshot(&snap) != 0)
		goto done;
	for (g = 0; g < SCHED_GROUPS; g++) {
		struct sgroup *sg = &snap.group[g];
		int any = sg->active != 0;

		for (m = 0; m < SCHED_MODELS && !any; m++)
			any = snap.model[m].name[0] && snap.model[m].group == g;
		if (!any)
			continue;
		scan(&snap, g, &v);
		for (m = 0, inflight = 0; m < SCHED_MODELS; m++)
			inflight += v.inflight[m];
		gw_buf_puts(out, first_g ? "{\"group\":" : ",{\"group\":");
		first_g = 0;
		gw_buf_put_i64(out, g);
		gw_buf_puts(out, ",\"active\":");
		if (sg->active != 0)
			gw_jw_quote(out, snap.model[sg->active - 1].name);
		else
			gw_buf_puts(out, "null");
		gw_buf_puts(out, ",\"active_for_s\":");
		put_seconds(out, sg->active != 0 ? now_us - sg->since_us : 0);
		gw_buf_printf(out,
		    ",\"draining\":%s,\"swaps\":%llu,"
		    "\"in_flight\":%u,\"waiting\":%u,"
		    "\"models\":[",
		    sg->draining ? "true" : "false",
		    (unsigned long long)sg->swaps, inflight, v.nwaiting);
		first_m = 1;
		for (m = 0; m < SCHED_MODELS; m++) {
			if (snap.model[m].name[0] == '\0' ||
			    snap.model[m].group != g)
				continue;
			gw_buf_puts(
			    out, first_m ? "{\"model\":" : ",{\"model\":");
			first_m = 0;
			gw_jw_quote(out, snap.model[m].name);
			gw_buf_printf(out,
			    ",\"in_flight\":%u,\"waiting\":%u,\"swaps\":%llu,"
			    "\"oldest_wait_s\":",
			    v.inflight[m], v.waiting[m],
			    (unsigned long long)snap.model[m].swaps);
			put_seconds(out,
			    v.oldest_seq[m] != 0 ? now_us - v.oldest_t[m] : 0);
			gw_buf_puts(out, "}");
		}
		gw_buf_puts(out, "]}");
	}
done:
	pthread_mutex_unlock(&snap_mu);
	gw_buf_puts(out, "]}");
}

/* model="<escaped>" into l. */
static const char *
model_label(char *l, size_t n, const char *name)
{
	char esc[SCHED_NAME * 2 + 8];

	gw_metrics_label_escape(esc, sizeof(esc), name);
	snprintf(l, n, "model=\"%s\"", esc);
	return l;
}

void
gw_scheduler_render_metrics(struct gw_buf *out)
{
	static struct area snap;
	static pthread_mutex_t snap_mu = PTHREAD_MUTEX_INITIALIZER;
	static struct view v[SCHED_GROUPS];
	char l[SCHED_NAME * 2 + 32];
	uint32_t g;
	uint64_t cum;
	int m, b;

	pthread_mutex_lock(&snap_mu);
	if (snapshot(&snap) != 0)
		goto out;
	for (g = 0; g < SCHED_GROUPS; g++)
		scan(&snap, g, &v[g]);
	gw_buf_puts(out, "# HELP llmgw_scheduler_swaps_total Times a swap "
	                 "group switched to this model ([scheduler]).\n"
	                 "# TYPE llmgw_scheduler_swaps_total counter\n");
	for (m = 0; m < SCHED_MODELS; m++)
		if (snap.model[m].name[0])
			gw_buf_printf(out,
			    "llmgw_scheduler_swaps_total{%s} %llu\n",
			    model_label(l, sizeof(l), snap.model[m].name),
			    (unsigned long long)snap.model[m].swaps);
	gw_buf_puts(out, "# HELP llmgw_scheduler_queue_depth Requests waiting "
	                 "for their model to be scheduled.\n"
	                 "# TYPE llmgw_scheduler_queue_depth gauge\n");
	for (m = 0; m < SCHED_MODELS; m++)
		if (snap.model[m].name[0])
			gw_buf_printf(out,
			    "llmgw_scheduler_queue_depth{%s} %u\n",
			    model_label(l, sizeof(l), snap.model[m].name),
			    v[snap.model[m].group % SCHED_GROUPS].waiting[m]);
	gw_buf_puts(out, "# HELP llmgw_scheduler_in_flight Requests admitted "
	                 "by the scheduler and not yet over.\n"
	                 "# TYPE llmgw_scheduler_in_flight gauge\n");
	for (m = 0; m < SCHED_MODELS; m++)
		if (snap.model[m].name[0])
			gw_buf_printf(out, "llmgw_scheduler_in_flight{%s} %u\n",
			    model_label(l, sizeof(l), snap.model[m].name),
			    v[snap.model[m].group % SCHED_GROUPS].inflight[m]);
	gw_buf_puts(out, "# HELP llmgw_scheduler_wait_seconds Time a request "
	                 "waited for its model before going upstream.\n"
	                 "# TYPE llmgw_scheduler_wait_seconds histogram\n");
	for (m = 0; m < SCHED_MODELS; m++) {
		const struct smodel *sm = &snap.model[m];

		if (sm->name[0] == '\0')
			continue;
		model_label(l, sizeof(l), sm->name);
		for (b = 0, cum = 0; b < SCHED_BUCKETS; b++) {
			cum += sm->wait_bucket[b];
			gw_buf_printf(out,
			    "llmgw_scheduler_wait_seconds_bucket{%s,le=\"%g\"} "
			    "%llu\n",
			    l, bucket_le[b], (unsigned long long)cum);
		}
		gw_buf_printf(out,
		    "llmgw_scheduler_wait_seconds_bucket{%s,le=\"+Inf\"} %llu\n"
		    "llmgw_scheduler_wait_seconds_sum{%s} %.6f\n"
		    "llmgw_scheduler_wait_seconds_count{%s} %llu\n",
		    l, (unsigned long long)sm->wait_count, l, sm->wait_sum, l,
		    (unsigned long long)sm->wait_count);
	}
out:
	pthread_mutex_unlock(&snap_mu);
}
