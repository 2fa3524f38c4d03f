/*
 * ratelimit.c: the host-wide global bucket, per-entity rpm/tpm/parallel
 * limits and the parallel-slot leases, all in the shared memory area
 * GW_SHM_AREA_RATELIMIT.
 *
 * Entities live in an open-addressing table of RL_ENTRIES slots probed
 * linearly from hash & mask; a walk ends at the first never-used slot
 * (h1 == 0). Slots are never emptied again, only recycled in place: a slot
 * may be taken over by another entity when nothing in it matters any more
 * (no pins, no parallel leases, no count in the current window). Identity
 * is two independent 64-bit hashes of the entity string (h1 picks the home
 * slot; both must match), so a false match needs a 128-bit collision.
 *
 * Each slot has a ref word: REF_LOCK|stripe while a thread (re)claims the
 * slot for an entity, else the number of threads that pinned it. Admission
 * pins the slot, re-checks its identity, works on its counters and unpins,
 * all lock-free; recycling needs ref == 0, so an entity cannot change under
 * a pinned slot or under a held parallel lease (par > 0).
 *
 * Claiming (adding an entity, a slow path) holds the gw_shm_lock of the
 * entity's stripe (home slot % RL_STRIPES), so two claims of one entity
 * are serialised and the second finds the first's slot. A thread that
 * meets a slot being claimed waits by taking the stripe lock named in its
 * ref word. A claimer that dies holding the lock is repaired by the next
 * holder (gw_shm_lock returns 1): the slot it had locked is unlocked as it
 * was if the claimer had not begun rewriting it, else turned into a
 * tombstone (h1 == H1_TOMB), which is recyclable.
 *
 * Counts are words of (minute window << 40 | count) so that one CAS both
 * resets a stale window and counts; a count in another window reads as 0.
 *
 * XXX: a process killed while it pins a slot (a few instructions inside
 * gw_rl_admit) leaves the pin behind: the slot keeps working but is never
 * recycled. A dead process's pid reused before gw_rl_reap runs keeps its
 * leases until the new process exits.
 */
#include "ratelimit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "shm.h"

#define RL_ENTRIES 16384
#define RL_MASK (RL_ENTRIES - 1)
#define RL_LEASES 16384
#define RL_MAXPROBE 128
#define RL_STRIPES 64
#define WIN_NS INT64_C(60000000000)
#define CNT_BITS 40
#define CNT_MASK ((UINT64_C(1) << CNT_BITS) - 1)
#define WIN_MASK ((UINT64_C(1) << 24) - 1)
#define REF_LOCK (UINT64_C(1) << 63)
#define H1_TOMB 1 /* real h1 values are >= 2; 0 is never used */

struct rl_entry {
	_Atomic uint64_t h1;
	_Atomic uint64_t h2;
	_Atomic uint64_t ref; /* REF_LOCK|stripe, or the number of pins */
	_Atomic uint64_t par; /* parallel leases held */
	_Atomic uint64_t req; /* window << 40 | requests */
	_Atomic uint64_t tok; /* window << 40 | tokens */
	/* Shared limits (gw_rl_admit_shared): what this host was granted. */
	_Atomic uint64_t greq;    /* window << 40 | requests granted */
	_Atomic uint64_t gdry;    /* window + 1 once none is left, or 0 */
	_Atomic uint64_t gpar;    /* parallel slots held */
	_Atomic uint64_t gtok;    /* window << 40 | all hosts' tokens seen */
	_Atomic uint64_t ftok;    /* window << 40 | our tokens sent */
	_Atomic int64_t sync_ns;  /* tokens last sent */
	_Atomic int64_t pdeny_ns; /* a parallel refusal holds until */
	uint64_t pad[3];
};
_Static_assert(sizeof(struct rl_entry) == 128, "two cache lines per entity");

/*
 * The lock of the entities whose home slot is i % RL_STRIPES, and what its
 * holder is doing, for the repair if it dies: the slot it locked (ref ==
 * REF_LOCK|stripe), and whether it has begun rewriting that slot.
 */
struct rl_stripe {
	_Alignas(64) struct gw_shm_lock lock;
	uint32_t claiming; /* slot + 1, or 0 */
	uint32_t writing;
};

/*
 * A lease is (pid << 32 | (entity slot + 1) << 16 | sequence); 0 is free.
 * The sequence tells two leases of one thread on one slot apart.
 */
struct rl_area {
	_Atomic int64_t tat;     /* GCRA theoretical arrival time, ns */
	_Atomic uint64_t host;   /* this host's id for shared limits */
	_Atomic int64_t beat_ns; /* the last heartbeat's start */
	char pad[40];
	struct rl_stripe stripe[RL_STRIPES];
	struct rl_entry ent[RL_ENTRIES];
	_Atomic uint64_t lease[RL_LEASES];
	/* Entities with shared state for the heartbeat: one bit each. */
	_Atomic uint64_t beat[RL_ENTRIES / 64];
};

static int warned_noshm, warned_full, warned_leases;
static _Thread_local uint32_t lease_cursor;
static _Thread_local uint16_t lease_seq;

/* A random id for this host (this shared memory region), never 0. */
static uint64_t
host_new(void)
{
	uint64_t v = 0, t = (uint64_t)gw_now_real_us();
	int fd;

	if ((fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)) >= 0) {
		if (read(fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
			v = 0;
		close(fd);
	}
	v ^= gw_shm_hash(&t, sizeof(t), (uint64_t)gw_shm_pid());
	return v != 0 ? v : 1;
}

/* gw_shm_area's init: the area is zeroed, its locks are not yet. */
static void
area_init(void *p)
{
	struct rl_area *a = p;
	int i;

	for (i = 0; i < RL_STRIPES; i++)
		gw_shm_lock_init(&a->stripe[i].lock);
	atomic_store(&a->host, host_new());
}

static struct rl_area *
area(void)
{
	struct gw_shm *s = gw_shm_get();
	struct rl_area *a = NULL;

	if (s != NULL)
		a = gw_shm_area(
		    s, GW_SHM_AREA_RATELIMIT, sizeof(*a), area_init);
	if (a == NULL)
		gw_log_warn_once(&warned_noshm, "ratelimit",
		    "no shared memory region: rate limits are not enforced");
	return a;
}

static uint64_t
win_of(int64_t now_ns)
{
	return (uint64_t)((now_ns < 0 ? 0 : now_ns) / WIN_NS) & WIN_MASK;
}

static uint64_t
cnt_in(uint64_t word, uint64_t win)
{
	return (word >> CNT_BITS) == win ? (word & CNT_MASK) : 0;
}

static uint64_t
pack(uint64_t win, uint64_t n)
{
	return win << CNT_BITS | (n > CNT_MASK ? CNT_MASK : n);
}

/* Whole seconds in ns, rounded up, at least 1. */
static int
ceil_s(int64_t ns)
{
	int64_t s = (ns + 999999999) / 1000000000;

	if (s < 1)
		return 1;
	return s > 86400 ? 86400 : (int)s;
}

int64_t
gw_rl_reset_ms(int64_t now_ns)
{
	int64_t left = WIN_NS - (now_ns < 0 ? 0 : now_ns) % WIN_NS;

	return (left + 999999) / 1000000;
}

/*
 * GCRA: with T = 1/rate, a request at now is admitted when
 * max(tat, now) - now <= (burst - 1) * T, and then tat = max(tat, now) + T.
 * That is a token bucket holding burst - (tat - now) / T tokens, with the
 * whole state in one word.
 */
int
gw_rl_take_global(double rate, double burst, int64_t now_ns, int *retry_after_s)
{
	struct rl_area *a;
	double tf, tauf;
	int64_t t, tau, tat, base;

	if (!(rate > 0))
		return 1;
	if ((a = area()) == NULL)
		return 1;
	tf = 1e9 / rate;
	t = tf < 1 ? 1 : tf > 1e15 ? (int64_t)1e15 : (int64_t)(tf + 0.5);
	tauf = (!(burst >= 1) ? 0 : burst - 1) * (double)t;
	tau = tauf > 4e18 ? (int64_t)4e18 : (int64_t)tauf;
	tat = atomic_load_explicit(&a->tat, memory_order_relaxed);
	do {
		base = tat > now_ns ? tat : now_ns;
		if (base - now_ns > tau) {
			if (retry_after_s != NULL)
				*retry_after_s = ceil_s(base - now_ns - tau);
			gw_metrics_inc(
			    GW_METRIC_RATELIMITED, "reason=\"global\"", 1);
			return 0;
		}
	} while (!atomic_compare_exchange_weak_explicit(&a->tat, &tat, base + t,
	    memory_order_relaxed, memory_order_relaxed));
	return 1;
}

static void
entity_hash(const char *entity, uint64_t *h1, uint64_t *h2)
{
	size_t n = strlen(entity);

	*h1 = gw_shm_hash(entity, n, UINT64_C(0x6c6c6d67772d726c));
	*h2 = gw_shm_hash(entity, n, UINT64_C(0x2d6b65792d696432));
	if (*h1 < 2)
		*h1 += 2;
}

static uint32_t
stripe_of(uint64_t h1)
{
	return (uint32_t)h1 & RL_MASK & (RL_STRIPES - 1);
}

/*
 * Take the lock of stripe st. After a holder that died (gw_shm_lock says
 * so), repair the slot it had locked, if it is still locked: unlocked as
 * it was when the claimer had not begun rewriting it, else a tombstone.
 */
static void
stripe_lock(struct rl_area *a, uint32_t st)
{
	struct rl_stripe *p = &a->stripe[st];
	struct rl_entry *e;

	if (gw_shm_lock(&p->lock) && p->claiming != 0 &&
	    p->claiming <= RL_ENTRIES) {
		e = &a->ent[p->claiming - 1];
		if (atomic_load(&e->ref) == (REF_LOCK | st)) {
			if (p->writing) {
				atomic_store(&e->h2, 0);
				atomic_store(&e->req, 0);
				atomic_store(&e->tok, 0);
				atomic_store(&e->h1, H1_TOMB);
			}
			atomic_store_explicit(&e->ref, 0, memory_order_release);
		}
	}
	p->claiming = 0;
	p->writing = 0;
}

static void
stripe_unlock(struct rl_area *a, uint32_t st)
{
	a->stripe[st].claiming = 0;
	a->stripe[st].writing = 0;
	gw_shm_unlock(&a->stripe[st].lock);
}

/*
 * Wait until e is not being claimed and return its ref word. The claimer
 * holds the lock of the stripe its ref word names: taking that lock waits
 * for it, in the kernel, and repairs the slot if the claimer died.
 */
static uint64_t
claim_wait(struct rl_area *a, struct rl_entry *e)
{
	uint64_t r;
	uint32_t st;

	while ((r = atomic_load_explicit(&e->ref, memory_order_acquire)) &
	       REF_LOCK) {
		st = (uint32_t)r & (RL_STRIPES - 1);
		stripe_lock(a, st);
		stripe_unlock(a, st);
	}
	return r;
}

static void
pin(struct rl_area *a, struct rl_entry *e)
{
	uint64_t r = atomic_load_explicit(&e->ref, memory_order_relaxed);

	for (;;) {
		if (r & REF_LOCK)
			r = claim_wait(a, e);
		if (atomic_compare_exchange_weak_explicit(&e->ref, &r, r + 1,
		        memory_order_acq_rel, memory_order_relaxed))
			return;
	}
}

static void
unpin(struct rl_entry *e)
{
	atomic_fetch_sub_explicit(&e->ref, 1, memory_order_release);
}

static int
matches(struct rl_entry *e, uint64_t h1, uint64_t h2)
{
	return atomic_load_explicit(&e->h1, memory_order_acquire) == h1 &&
	       atomic_load_explicit(&e->h2, memory_order_relaxed) == h2;
}

/* Nothing in e matters any more in window win (the caller holds no pin). */
static int
recyclable(struct rl_entry *e, uint64_t win)
{
	if (atomic_load(&e->ref) != 0 || atomic_load(&e->par) != 0)
		return 0;
	if (atomic_load(&e->h1) == H1_TOMB)
		return 1;
	return cnt_in(atomic_load(&e->req), win) == 0 &&
	       cnt_in(atomic_load(&e->tok), win) == 0;
}

/*
 * Walk the chain of h1 for (h1, h2): its slot, or -1. When cand is set it
 * gets the first slot the entity could take (never used or recyclable),
 * or stays -1. wait: wait for slots being claimed; without it (a claimer
 * re-checking, which holds its stripe lock and must not wait for another)
 * such slots, and the slot skip, are passed over: they are being claimed
 * for entities of other stripes.
 */
static int
walk(struct rl_area *a, uint64_t h1, uint64_t h2, uint64_t win, int *cand,
    int wait, int skip)
{
	uint32_t i = (uint32_t)h1 & RL_MASK;
	struct rl_entry *e;
	uint64_t k;
	int n;

	for (n = 0; n < RL_MAXPROBE; n++, i = (i + 1) & RL_MASK) {
		e = &a->ent[i];
		if ((int)i == skip)
			continue;
		if (atomic_load_explicit(&e->ref, memory_order_acquire) &
		    REF_LOCK) {
			if (!wait)
				continue;
			claim_wait(a, e);
		}
		k = atomic_load_explicit(&e->h1, memory_order_acquire);
		if (k == h1 &&
		    atomic_load_explicit(&e->h2, memory_order_relaxed) == h2)
			return (int)i;
		if (k == 0) {
			if (cand != NULL && *cand < 0)
				*cand = (int)i;
			return -1;
		}
		if (cand != NULL && *cand < 0 && recyclable(e, win))
			*cand = (int)i;
	}
	return -1;
}

/*
 * Take slot c for (h1, h2) under the entity's stripe lock: lock the slot,
 * check it is still free to take, look again for the entity (added by the
 * previous holder of the stripe lock, perhaps), then write the identity.
 * Returns the pinned slot of the entity, or -1 to walk again.
 */
static int
claim(struct rl_area *a, int c, uint64_t h1, uint64_t h2, uint64_t win)
{
	struct rl_entry *e = &a->ent[c];
	uint32_t st = stripe_of(h1);
	uint64_t zero = 0, k;
	int f = -1, got = -1;

	stripe_lock(a, st);
	a->stripe[st].claiming = (uint32_t)c + 1;
	if (!atomic_compare_exchange_strong(&e->ref, &zero, REF_LOCK | st))
		goto out;
	k = atomic_load(&e->h1);
	if (k != 0 && (atomic_load(&e->par) != 0 ||
	                  (k != H1_TOMB &&
	                      (cnt_in(atomic_load(&e->req), win) != 0 ||
	                          cnt_in(atomic_load(&e->tok), win) != 0)))) {
		atomic_store_explicit(&e->ref, 0, memory_order_release);
		goto out;
	}
	f = walk(a, h1, h2, win, NULL, 0, c);
	if (f >= 0) {
		atomic_store_explicit(&e->ref, 0, memory_order_release);
		goto out;
	}
	a->stripe[st].writing = 1;
	atomic_store(&e->h2, h2);
	atomic_store(&e->req, 0);
	atomic_store(&e->tok, 0);
	atomic_store(&e->greq, 0);
	atomic_store(&e->gdry, 0);
	atomic_store(&e->gpar, 0);
	atomic_store(&e->gtok, 0);
	atomic_store(&e->ftok, 0);
	atomic_store(&e->sync_ns, 0);
	atomic_store(&e->pdeny_ns, 0);
	atomic_store_explicit(&e->h1, h1, memory_order_release);
	/* Unlock, keeping one pin for the caller. */
	atomic_store_explicit(&e->ref, 1, memory_order_release);
	got = c;
out:
	stripe_unlock(a, st);
	if (f >= 0) {
		pin(a, &a->ent[f]);
		if (matches(&a->ent[f], h1, h2))
			return f;
		unpin(&a->ent[f]);
	}
	return got;
}

/* The slot of (h1, h2), created when missing and returned pinned; -1 full. */
static int
entry_get(struct rl_area *a, uint64_t h1, uint64_t h2, uint64_t win)
{
	int attempt, i, cand;

	for (attempt = 0; attempt < 32; attempt++) {
		cand = -1;
		i = walk(a, h1, h2, win, &cand, 1, -1);
		if (i >= 0) {
			pin(a, &a->ent[i]);
			if (matches(&a->ent[i], h1, h2))
				return i;
			unpin(&a->ent[i]);
			continue;
		}
		if (cand < 0)
			return -1;
		if ((i = claim(a, cand, h1, h2, win)) >= 0)
			return i;
	}
	return -1;
}

/* Decrement a count word if it is in window win and above 0. */
static void
uncount(_Atomic uint64_t *p, uint64_t win)
{
	uint64_t w = atomic_load_explicit(p, memory_order_relaxed);

	do {
		if (cnt_in(w, win) == 0)
			return;
	} while (!atomic_compare_exchange_weak_explicit(
	    p, &w, w - 1, memory_order_relaxed, memory_order_relaxed));
}

static void
count_add(_Atomic uint64_t *p, uint64_t win, uint64_t n)
{
	uint64_t w = atomic_load_explicit(p, memory_order_relaxed);

	while (!atomic_compare_exchange_weak_explicit(p, &w,
	    pack(win, cnt_in(w, win) + n), memory_order_relaxed,
	    memory_order_relaxed))
		;
}

/* Decrement a parallel count, never below 0. */
static void
par_release(struct rl_entry *e)
{
	uint64_t w = atomic_load_explicit(&e->par, memory_order_relaxed);

	do {
		if (w == 0)
			return;
	} while (!atomic_compare_exchange_weak_explicit(
	    &e->par, &w, w - 1, memory_order_release, memory_order_relaxed));
}

/* Record a held parallel slot of entity slot idx; the lease index or -1. */
static int
lease_take(struct rl_area *a, int idx, uint64_t *word)
{
	uintptr_t self = (uintptr_t)&lease_cursor;
	uint32_t n, i;
	uint64_t w, zero;

	/* Threads start their searches at different places. */
	if (lease_cursor == 0)
		lease_cursor = (uint32_t)gw_shm_hash(
		    &self, sizeof(self), (uint64_t)gw_shm_pid());
	w = (uint64_t)(uint32_t)gw_shm_pid() << 32 | (uint64_t)(idx + 1) << 16 |
	    ++lease_seq;
	for (n = 0; n < RL_LEASES; n++) {
		i = (lease_cursor + n) & (RL_LEASES - 1);
		if (atomic_load_explicit(&a->lease[i], memory_order_relaxed))
			continue;
		zero = 0;
		if (atomic_compare_exchange_strong(&a->lease[i], &zero, w)) {
			lease_cursor = i + 1;
			*word = w;
			return (int)i;
		}
	}
	return -1;
}

static void
refused_metric(enum gw_rl_verdict v)
{
	static const char *const reasons[] = {
	    [GW_RL_RPM] = "reason=\"rpm\"",
	    [GW_RL_TPM] = "reason=\"tpm\"",
	    [GW_RL_PARALLEL] = "reason=\"parallel\"",
	};

	gw_metrics_inc(GW_METRIC_RATELIMITED, reasons[v], 1);
}

static void
fail_open(int *flag, const char *reason, const char *msg)
{
	gw_log_warn_once(flag, "ratelimit", msg);
	gw_metrics_inc(GW_METRIC_RATELIMIT_FAILOPEN, reason, 1);
}

/* Raise a count word to at least n in window win. */
static void
count_max(_Atomic uint64_t *p, uint64_t win, uint64_t n)
{
	uint64_t w = atomic_load_explicit(p, memory_order_relaxed);

	do {
		if ((w >> CNT_BITS) == win && cnt_in(w, win) >= n)
			return;
	} while (!atomic_compare_exchange_weak_explicit(
	    p, &w, pack(win, n), memory_order_relaxed, memory_order_relaxed));
}

/* Take n back from a count word, if it is still in window win. */
static void
count_sub(_Atomic uint64_t *p, uint64_t win, uint64_t n)
{
	uint64_t w = atomic_load_explicit(p, memory_order_relaxed), c;

	do {
		if ((c = cnt_in(w, win)) == 0)
			return;
	} while (!atomic_compare_exchange_weak_explicit(p, &w,
	    pack(win, c > n ? c - n : 0), memory_order_relaxed,
	    memory_order_relaxed));
}

/*
 * Mark e's tokens of window win as sent: how many were not yet (0 when
 * another thread took them first).
 */
static uint64_t
tokens_claim(struct rl_entry *e, uint64_t win)
{
	uint64_t f = atomic_load(&e->ftok), t, sent;

	do {
		t = cnt_in(atomic_load(&e->tok), win);
		sent = cnt_in(f, win);
		if (t <= sent)
			return 0;
	} while (!atomic_compare_exchange_weak(&e->ftok, &f, pack(win, t)));
	return t - sent;
}

/* The window's tokens as this host sees them: all hosts' and ours unsent. */
static int64_t
tokens_seen(struct rl_entry *e, uint64_t win, int shared)
{
	uint64_t t = cnt_in(atomic_load(&e->tok), win), f;

	if (!shared)
		return (int64_t)t;
	f = cnt_in(atomic_load(&e->ftok), win);
	return (
	    int64_t)(cnt_in(atomic_load(&e->gtok), win) + (t > f ? t - f : 0));
}

/*
 * Entity slot idx has shared state (a lease, tokens to send): the
 * heartbeat looks at it (gw_rl_beat_collect) until it has none.
 */
static void
beat_mark(struct rl_area *a, int idx)
{
	uint64_t bit = UINT64_C(1) << (idx & 63);
	_Atomic uint64_t *w = &a->beat[idx >> 6];

	if (!(atomic_load_explicit(w, memory_order_relaxed) & bit))
		atomic_fetch_or(w, bit);
}

/*
 * Ask the shared engine for s, sending e's unsent tokens with it; given
 * back when it fails. 0, or -1 (the request is then judged by this host
 * alone, counted in GW_METRIC_RATELIMIT_FAILOPEN).
 */
static int
share_sync(struct rl_entry *e, const struct gw_rl_share *sh,
    struct gw_rl_sync *s, uint64_t win, int64_t now_ns)
{
	uint64_t sent = tokens_claim(e, win);

	/*
	 * Counted as all hosts' at once, as the heartbeat does: while the
	 * round trip lasts, this host's other threads must not see its own
	 * tokens vanish from its view (they are no longer unsent).
	 */
	if (sent > 0)
		count_add(&e->gtok, win, sent);
	s->tokens = (int64_t)sent;
	s->got = s->win_tokens = s->held = 0;
	if (sh->sync(sh->arg, s) != 0) {
		count_sub(&e->ftok, win, sent);
		count_sub(&e->gtok, win, sent);
		gw_metrics_inc(GW_METRIC_RATELIMIT_FAILOPEN,
		    "reason=\"shared_unavailable\"", 1);
		return -1;
	}
	beat_mark(area(), (int)(e - area()->ent));
	count_max(
	    &e->gtok, win, (uint64_t)(s->win_tokens < 0 ? 0 : s->win_tokens));
	atomic_store(&e->sync_ns, now_ns);
	return 0;
}

/*
 * The engine granted held slots: this host's grant only grows here (two
 * threads may ask at once); the heartbeat shrinks it.
 */
static void
par_grant(struct rl_entry *e, int64_t held)
{
	uint64_t g = atomic_load(&e->gpar), h = held < 0 ? 0 : (uint64_t)held;

	while (g < h && !atomic_compare_exchange_weak(&e->gpar, &g, h))
		;
}

/* Tokens are to be sent (and the others' read) before judging tpm. */
static int
tokens_due(struct rl_entry *e, const struct gw_rl_share *sh, int64_t tpm,
    int64_t seen, uint64_t win, int64_t now_ns)
{
	uint64_t t = cnt_in(atomic_load(&e->tok), win);
	uint64_t f = cnt_in(atomic_load(&e->ftok), win);
	int64_t slice = (tpm - seen) / (sh->div > 0 ? sh->div : 1);

	if (now_ns - atomic_load(&e->sync_ns) >= sh->sync_ns)
		return 1;
	return t > f && (int64_t)(t - f) >= (slice < 1 ? 1 : slice);
}

enum gw_rl_verdict
gw_rl_admit(const char *entity, const struct gw_rl_limits *lim, int64_t now_ns,
    struct gw_rl_ticket *t, int *retry_after_s, int64_t *remaining_requests,
    int64_t *remaining_tokens)
{
	return gw_rl_admit_shared(entity, lim, now_ns, t, retry_after_s,
	    remaining_requests, remaining_tokens, NULL);
}

enum gw_rl_verdict
gw_rl_admit_shared(const char *entity, const struct gw_rl_limits *lim,
    int64_t now_ns, struct gw_rl_ticket *t, int *retry_after_s,
    int64_t *remaining_requests, int64_t *remaining_tokens,
    const struct gw_rl_share *sh)
{
	enum gw_rl_verdict v = GW_RL_OK;
	struct rl_area *a;
	struct rl_entry *e = NULL;
	struct gw_rl_sync s;
	uint64_t h1, h2, win, w, n = 0;
	int64_t rr = lim->rpm < 0 ? -1 : lim->rpm;
	int64_t rt = lim->tpm < 0 ? -1 : lim->tpm;
	int64_t used;
	int idx, shared = sh != NULL && sh->sync != NULL, syncs = 0;

	memset(t, 0, sizeof(*t));
	t->idx = -1;
	t->lease = -1;
	t->req_win = -1;
	if (lim->rpm < 0 && lim->tpm < 0 && lim->parallel < 0)
		goto out;
	if ((a = area()) == NULL)
		goto out;
	win = win_of(now_ns);
	entity_hash(entity, &h1, &h2);
	if ((idx = entry_get(a, h1, h2, win)) < 0) {
		fail_open(&warned_full, "reason=\"entity_table_full\"",
		    "entity table full: admitting without per-key limits");
		goto out;
	}
	e = &a->ent[idx];
	if (shared) {
		memset(&s, 0, sizeof(s));
		s.h1 = h1;
		s.h2 = h2;
		s.win = (now_ns < 0 ? 0 : now_ns) / WIN_NS;
		s.rpm = lim->rpm;
		s.tpm = lim->tpm;
		s.parallel = lim->parallel;
	}
	if (lim->tpm >= 0) {
		used = tokens_seen(e, win, shared);
		if (shared && used < lim->tpm &&
		    tokens_due(e, sh, lim->tpm, used, win, now_ns)) {
			syncs++;
			if (share_sync(e, sh, &s, win, now_ns) != 0)
				shared = 0;
			used = tokens_seen(e, win, shared);
		}
		rt = used >= lim->tpm ? 0 : lim->tpm - used;
		if (rt == 0) {
			v = GW_RL_TPM;
			n = cnt_in(atomic_load(&e->req), win);
			if (lim->rpm >= 0)
				rr = (int64_t)n >= lim->rpm
				         ? 0
				         : lim->rpm - (int64_t)n;
			goto refused;
		}
	}
	if (lim->rpm >= 0) {
		w = atomic_load_explicit(&e->req, memory_order_relaxed);
		for (;;) {
			n = cnt_in(w, win);
			if ((int64_t)n >= lim->rpm) {
				v = GW_RL_RPM;
				rr = 0;
				goto refused;
			}
			if (shared && n >= cnt_in(atomic_load(&e->greq), win)) {
				/* This host's slice is used up: another. */
				if (atomic_load(&e->gdry) == win + 1 ||
				    syncs > 3) {
					v = GW_RL_RPM;
					rr = 0;
					goto refused;
				}
				syncs++;
				s.slice = sh->slice_max > 0 ? sh->slice_max : 1;
				s.need = 0;
				if (share_sync(e, sh, &s, win, now_ns) != 0)
					shared = 0;
				else if (s.got > 0)
					count_add(
					    &e->greq, win, (uint64_t)s.got);
				else
					atomic_store(&e->gdry, win + 1);
				s.slice = 0;
				w = atomic_load_explicit(
				    &e->req, memory_order_relaxed);
				continue;
			}
			if (atomic_compare_exchange_weak_explicit(&e->req, &w,
			        pack(win, n + 1), memory_order_relaxed,
			        memory_order_relaxed))
				break;
		}
		rr = lim->rpm - (int64_t)n - 1;
		t->req_win = (int64_t)win;
	}
	if (lim->parallel >= 0) {
		w = atomic_load_explicit(&e->par, memory_order_relaxed);
		for (;;) {
			if ((int64_t)w >= lim->parallel ||
			    (shared && w >= atomic_load(&e->gpar) &&
			        (atomic_load(&e->pdeny_ns) > now_ns ||
			            syncs > 3))) {
				v = GW_RL_PARALLEL;
				if (t->req_win >= 0) {
					uncount(&e->req, win);
					rr++;
				}
				goto refused;
			}
			if (shared && w >= atomic_load(&e->gpar)) {
				/* Ask for one slot more than in flight here. */
				syncs++;
				s.keep = (int64_t)w;
				s.need = (int64_t)w + 1;
				if (share_sync(e, sh, &s, win, now_ns) != 0) {
					shared = 0;
				} else {
					par_grant(e, s.held);
					if (s.held < s.need)
						atomic_store(&e->pdeny_ns,
						    now_ns + sh->deny_ns);
				}
				s.need = 0;
				w = atomic_load_explicit(
				    &e->par, memory_order_relaxed);
				continue;
			}
			if (atomic_compare_exchange_weak_explicit(&e->par, &w,
			        w + 1, memory_order_acquire,
			        memory_order_relaxed))
				break;
		}
		if ((t->lease = lease_take(a, idx, &t->lease_word)) < 0) {
			par_release(e);
			fail_open(&warned_leases, "reason=\"lease_table_full\"",
			    "lease table full: admitting without a parallel "
			    "slot");
		}
	}
	t->h1 = h1;
	t->h2 = h2;
	t->idx = idx;
	t->state = 1;
	t->tokens = lim->tpm >= 0;
	t->shared = shared;
	unpin(e);
	goto out;
refused:
	unpin(e);
	t->req_win = -1;
	if (retry_after_s != NULL)
		*retry_after_s = v == GW_RL_PARALLEL
		                     ? 1
		                     : ceil_s(gw_rl_reset_ms(now_ns) * 1000000);
	refused_metric(v);
out:
	if (remaining_requests != NULL)
		*remaining_requests = rr;
	if (remaining_tokens != NULL)
		*remaining_tokens = rt;
	return v;
}

/* Add tokens to the ticket's entity, wherever it lives now. */
static void
add_tokens(struct rl_area *a, const struct gw_rl_ticket *t, uint64_t tokens,
    uint64_t win)
{
	struct rl_entry *e = &a->ent[t->idx];
	int idx;

	if (t->lease >= 0) {
		/* Our lease keeps the slot from being recycled. */
		count_add(&e->tok, win, tokens);
		return;
	}
	pin(a, e);
	if (!matches(e, t->h1, t->h2)) {
		unpin(e);
		if ((idx = entry_get(a, t->h1, t->h2, win)) < 0)
			return;
		e = &a->ent[idx];
	}
	count_add(&e->tok, win, tokens);
	unpin(e);
}

static void
lease_release(struct rl_area *a, const struct gw_rl_ticket *t)
{
	uint64_t w = t->lease_word;

	if (atomic_compare_exchange_strong(&a->lease[t->lease], &w, 0))
		par_release(&a->ent[t->idx]);
}

/* Close a held ticket, once: its table, or NULL when nothing is left. */
static struct rl_area *
ticket_close(struct gw_rl_ticket *t)
{
	if (t->state != 1)
		return NULL;
	t->state = 2;
	return area();
}

void
gw_rl_done(struct gw_rl_ticket *t, int64_t tokens, int64_t now_ns)
{
	struct rl_area *a;

	if ((a = ticket_close(t)) == NULL)
		return;
	if (t->tokens && tokens > 0) {
		add_tokens(a, t, (uint64_t)tokens, win_of(now_ns));
		/* XXX: the slot's, even if add_tokens found it elsewhere. */
		if (t->shared)
			beat_mark(a, t->idx);
	}
	if (t->lease >= 0)
		lease_release(a, t);
}

void
gw_rl_undo(struct gw_rl_ticket *t, int64_t now_ns)
{
	struct rl_area *a;

	if ((a = ticket_close(t)) == NULL)
		return;
	if (t->lease >= 0)
		lease_release(a, t);
	/* The window check makes this safe even if the slot was recycled:
	 * a new entity's counts are in a later window. */
	if (t->req_win >= 0 && (uint64_t)t->req_win == win_of(now_ns))
		uncount(&a->ent[t->idx].req, (uint64_t)t->req_win);
}

int
gw_rl_reap(void)
{
	struct {
		pid_t pid;
		int dead;
	} seen[64];
	struct rl_area *a;
	uint64_t w;
	pid_t me = gw_shm_pid(), pid;
	int nseen = 0, freed = 0, i, j, dead, idx;

	if ((a = area()) == NULL)
		return 0;
	for (i = 0; i < RL_LEASES; i++) {
		w = atomic_load_explicit(&a->lease[i], memory_order_relaxed);
		if (w == 0 || (pid = (pid_t)(w >> 32)) == me)
			continue;
		for (j = 0; j < nseen && seen[j].pid != pid; j++)
			;
		if (j < nseen) {
			dead = seen[j].dead;
		} else {
			dead = gw_shm_pid_dead(pid);
			if (nseen < (int)GW_ARRAY_LEN(seen)) {
				seen[nseen].pid = pid;
				seen[nseen++].dead = dead;
			}
		}
		if (!dead ||
		    !atomic_compare_exchange_strong(&a->lease[i], &w, 0))
			continue;
		idx = (int)((w >> 16) & 0xffff) - 1;
		if (idx >= 0 && idx < RL_ENTRIES)
			par_release(&a->ent[idx]);
		freed++;
	}
	if (freed > 0)
		gw_log_info(NULL, "ratelimit",
		    "freed %d parallel slots held by dead processes", freed);
	return freed;
}

/*
 * Per-client buckets: one GCRA word for requests and one for failed
 * authentications per client source (an address), in a table of
 * [rate_limit] clients slots (a power of two, at most CL_SLOTS_MAX) in
 * area GW_SHM_AREA_CLIENTS. A source lives in one group of CL_GROUP slots
 * picked by its hash; a new source takes a free slot of its group, else
 * the least recently used one (counted as an eviction: the evicted source
 * starts again with a full bucket, which only helps it).
 *
 * XXX: a thread that read a slot's key just before another evicted it may
 * charge its one token to the newcomer: rare (the table must be full) and
 * worth one request at most.
 */
#define CL_SLOTS_MAX 65536
#define CL_GROUP 8

struct cl_entry {
	_Atomic uint64_t key; /* the source's hash (never 0); 0: free */
	_Atomic int64_t tat;  /* GCRA of its requests */
	_Atomic int64_t fail; /* GCRA of its failed authentications */
	_Atomic int64_t used; /* last use, ns: the least recent is evicted */
};

struct cl_area {
	struct cl_entry e[CL_SLOTS_MAX];
};

static struct cl_area *
cl_area(void)
{
	struct gw_shm *s = gw_shm_get();

	return s != NULL ? gw_shm_area(s, GW_SHM_AREA_CLIENTS,
	                       sizeof(struct cl_area), NULL)
	                 : NULL;
}

/*
 * GCRA on one word: take one token of a bucket of rate/s and depth burst
 * (take = 0: only look). 1 when there was one; else 0 and *retry_s.
 */
static int
gcra(_Atomic int64_t *word, double rate, double burst, int64_t now_ns, int take,
    int *retry_s)
{
	double tf = 1e9 / rate, tauf;
	int64_t t, tau, tat, base;

	t = tf < 1 ? 1 : tf > 1e15 ? (int64_t)1e15 : (int64_t)(tf + 0.5);
	tauf = (!(burst >= 1) ? 0 : burst - 1) * (double)t;
	tau = tauf > 4e18 ? (int64_t)4e18 : (int64_t)tauf;
	tat = atomic_load_explicit(word, memory_order_relaxed);
	do {
		base = tat > now_ns ? tat : now_ns;
		if (base - now_ns > tau) {
			if (retry_s != NULL)
				*retry_s = ceil_s(base - now_ns - tau);
			return 0;
		}
		if (!take)
			return 1;
	} while (!atomic_compare_exchange_weak_explicit(
	    word, &tat, base + t, memory_order_relaxed, memory_order_relaxed));
	return 1;
}

/* The slot of source (claimed if new), or NULL: no table. */
static struct cl_entry *
cl_slot(const char *source, int slots, int64_t now_ns)
{
	struct cl_area *a = cl_area();
	uint64_t h, key, none;
	unsigned n = CL_SLOTS_MAX, g, i, victim;
	int64_t oldest, used;
	int tries;

	if (a == NULL)
		return NULL;
	while (n > (unsigned)CL_GROUP && n > (unsigned)slots)
		n >>= 1;
	/* One 64-bit hash: its low bits pick the group, all of it is the key.
	 */
	h = gw_shm_hash(source, strlen(source), UINT64_C(0x636c69656e742d72)) |
	    1;
	g = (unsigned)((h >> 1) % (n / CL_GROUP)) * CL_GROUP;
	for (tries = 0; tries < 4; tries++) {
		victim = g;
		oldest = INT64_MAX;
		for (i = g; i < g + CL_GROUP; i++) {
			key = atomic_load_explicit(
			    &a->e[i].key, memory_order_acquire);
			if (key == h) {
				atomic_store_explicit(&a->e[i].used, now_ns,
				    memory_order_relaxed);
				return &a->e[i];
			}
			if (key == 0) {
				victim = i;
				oldest = INT64_MIN;
				break;
			}
			used = atomic_load_explicit(
			    &a->e[i].used, memory_order_relaxed);
			if (used < oldest) {
				oldest = used;
				victim = i;
			}
		}
		none = atomic_load_explicit(
		    &a->e[victim].key, memory_order_acquire);
		if (oldest != INT64_MIN && none == 0)
			continue; /* freed meanwhile: look again */
		if (oldest == INT64_MIN && none != 0)
			continue; /* taken meanwhile */
		if (atomic_compare_exchange_strong_explicit(&a->e[victim].key,
		        &none, h, memory_order_acq_rel, memory_order_acquire)) {
			/* Ours: a newcomer starts with full buckets. */
			atomic_store_explicit(
			    &a->e[victim].tat, 0, memory_order_relaxed);
			atomic_store_explicit(
			    &a->e[victim].fail, 0, memory_order_relaxed);
			atomic_store_explicit(
			    &a->e[victim].used, now_ns, memory_order_relaxed);
			if (none != 0)
				gw_metrics_inc(
				    GW_METRIC_RATELIMIT_CLIENT_EVICTIONS, "",
				    1);
			return &a->e[victim];
		}
	}
	return NULL; /* contended four times over: admitted untracked */
}

void
gw_rl_client_limits_of(
    const struct gw_cfg *cfg, struct gw_rl_client_limits *lim)
{
	lim->rps = (double)cfg->rate_limit_rps;
	lim->burst = (double)cfg->rate_limit_burst;
	lim->fail_rate = cfg->rl_auth_fail_per_min / 60.0;
	lim->fail_burst = (double)cfg->rl_auth_fail_burst;
	lim->slots = cfg->rl_clients;
}

enum gw_rl_client_verdict
gw_rl_client_admit(const char *source, const struct gw_rl_client_limits *lim,
    int64_t now_ns, int *retry_after_s)
{
	struct cl_entry *e;

	if ((!(lim->rps > 0) && !(lim->fail_rate > 0)) ||
	    (e = cl_slot(source, lim->slots, now_ns)) == NULL)
		return GW_RL_CLIENT_OK;
	if (lim->fail_rate > 0 &&
	    !gcra(&e->fail, lim->fail_rate, lim->fail_burst, now_ns, 0,
	        retry_after_s)) {
		gw_metrics_inc(
		    GW_METRIC_RATELIMITED, "reason=\"auth_failures\"", 1);
		return GW_RL_CLIENT_AUTH_FAILURES;
	}
	if (lim->rps > 0 &&
	    !gcra(&e->tat, lim->rps, lim->burst, now_ns, 1, retry_after_s)) {
		gw_metrics_inc(GW_METRIC_RATELIMITED, "reason=\"client\"", 1);
		return GW_RL_CLIENT_RATE;
	}
	return GW_RL_CLIENT_OK;
}

void
gw_rl_client_auth_failed(
    const char *source, const struct gw_rl_client_limits *lim, int64_t now_ns)
{
	struct cl_entry *e;

	if (lim->fail_rate > 0 &&
	    (e = cl_slot(source, lim->slots, now_ns)) != NULL)
		(void)gcra(
		    &e->fail, lim->fail_rate, lim->fail_burst, now_ns, 1, NULL);
}

int
gw_rl_beat_collect(int64_t now_ns, struct gw_rl_beat *b, int max)
{
	struct rl_area *a;
	struct rl_entry *e;
	uint64_t win = win_of(now_ns), h1, gp, p, p2, sent, bits, bit;
	int w, i, n = 0;

	if ((a = area()) == NULL)
		return 0;
	for (w = 0; w < RL_ENTRIES / 64 && n < max; w++) {
		bits = atomic_load(&a->beat[w]);
		for (; bits != 0 && n < max; bits &= bits - 1) {
			i = w * 64 + __builtin_ctzll(bits);
			bit = UINT64_C(1) << (i & 63);
			e = &a->ent[i];
			/* Cleared first: state added after is marked again. */
			atomic_fetch_and(&a->beat[w], ~bit);
			if ((h1 = atomic_load(&e->h1)) < 2)
				continue;
			gp = atomic_load(&e->gpar);
			p = atomic_load(&e->par);
			if (gp == 0 && p == 0 &&
			    cnt_in(atomic_load(&e->tok), win) <=
			        cnt_in(atomic_load(&e->ftok), win))
				continue;
			/* The grant shrinks to what is in flight. */
			if (gp > p)
				atomic_compare_exchange_strong(
				    &e->gpar, &gp, p);
			p2 = atomic_load(&e->par);
			sent = tokens_claim(e, win);
			if (sent > 0)
				count_add(&e->gtok, win, sent);
			if (p2 > 0 || p > 0)
				beat_mark(a, i);
			b[n].h1 = h1;
			b[n].h2 = atomic_load(&e->h2);
			b[n].held = (int64_t)(p2 > p ? p2 : p);
			b[n].win = (now_ns < 0 ? 0 : now_ns) / WIN_NS;
			b[n].tokens = (int64_t)sent;
			b[n].idx = i;
			n++;
		}
	}
	return n;
}

void
gw_rl_beat_unsent(const struct gw_rl_beat *b, int n)
{
	struct rl_area *a;
	uint64_t win;
	int i;

	if ((a = area()) == NULL)
		return;
	for (i = 0; i < n; i++) {
		if (b[i].tokens <= 0 || b[i].idx < 0 || b[i].idx >= RL_ENTRIES)
			continue;
		win = (uint64_t)b[i].win & WIN_MASK;
		count_sub(&a->ent[b[i].idx].ftok, win, (uint64_t)b[i].tokens);
		count_sub(&a->ent[b[i].idx].gtok, win, (uint64_t)b[i].tokens);
		beat_mark(a, b[i].idx);
	}
}

int
gw_rl_beat_due(int64_t now_ns, int64_t interval_ns)
{
	struct rl_area *a;
	int64_t last;

	if ((a = area()) == NULL)
		return 0;
	last = atomic_load(&a->beat_ns);
	if (last != 0 && now_ns - last < interval_ns && now_ns >= last)
		return 0;
	return atomic_compare_exchange_strong(&a->beat_ns, &last, now_ns);
}

void
gw_rl_host_id(char out[17])
{
	struct rl_area *a = area();

	snprintf(out, 17, "%016llx",
	    (unsigned long long)(a != NULL ? atomic_load(&a->host) : 0));
}
