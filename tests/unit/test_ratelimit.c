/*
 * Unit tests for lib/ratelimit.c. The file is included to reach its
 * statics: collisions need chosen hashes and a full lease table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../lib/ratelimit.c"
#include "shm_fixture.h"

#define SEC INT64_C(1000000000)
/* A fake clock 15 s into a minute window. */
#define T0 (INT64_C(1000) * 60 * SEC + 15 * SEC)

static int
setup(void **state)
{
	(void)state;
	return shm_fixture_attach("rl");
}

static const struct gw_rl_limits none = {-1, -1, -1};

static int64_t
refused_count(const char *reason)
{
	char l[64];

	snprintf(l, sizeof(l), "reason=\"%s\"", reason);
	return (int64_t)gw_metrics_value(GW_METRIC_RATELIMITED, l);
}

static int64_t
failopen_count(void)
{
	return (int64_t)(gw_metrics_value(GW_METRIC_RATELIMIT_FAILOPEN,
	                     "reason=\"entity_table_full\"") +
	                 gw_metrics_value(GW_METRIC_RATELIMIT_FAILOPEN,
	                     "reason=\"lease_table_full\""));
}

static void
test_global_bucket(void **state)
{
	int64_t now = T0;
	int i, ok = 0, retry = 0;

	(void)state;
	/* Burst 200 at once, then refused with Retry-After 1. */
	for (i = 0; i < 300; i++)
		ok += gw_rl_take_global(100, 200, now, &retry);
	assert_int_equal(ok, 200);
	assert_int_equal(retry, 1);
	/* 10 ms later one token is back, and only one. */
	now += SEC / 100;
	assert_int_equal(gw_rl_take_global(100, 200, now, NULL), 1);
	assert_int_equal(gw_rl_take_global(100, 200, now, NULL), 0);
	/* Steady state: 100 a second. */
	now += SEC;
	for (ok = 0, i = 0; i < 300; i++)
		ok += gw_rl_take_global(100, 200, now, NULL);
	assert_int_equal(ok, 100);
	/* Idle long enough refills to the burst, never beyond. */
	now += 60 * SEC;
	for (ok = 0, i = 0; i < 300; i++)
		ok += gw_rl_take_global(100, 200, now, NULL);
	assert_int_equal(ok, 200);
	assert_int_equal(refused_count("global"), 401);
	/* rate 0: off */
	for (i = 0; i < 1000; i++)
		assert_int_equal(gw_rl_take_global(0, 200, now, NULL), 1);
}

static void
test_global_retry_after(void **state)
{
	int64_t now = T0;
	int retry = 0;

	(void)state;
	/* One token every 10 s: Retry-After 10, then less as time goes. */
	assert_int_equal(gw_rl_take_global(0.1, 1, now, &retry), 1);
	assert_int_equal(gw_rl_take_global(0.1, 1, now, &retry), 0);
	assert_int_equal(retry, 10);
	assert_int_equal(
	    gw_rl_take_global(0.1, 1, now + 2500000000, &retry), 0);
	assert_int_equal(retry, 8); /* 7.5 s rounded up */
	assert_int_equal(gw_rl_take_global(0.1, 1, now + 10 * SEC, &retry), 1);
	/* 1.5 s a token: 2. */
	now += 100 * SEC;
	assert_int_equal(gw_rl_take_global(1 / 1.5, 2, now, &retry), 1);
	assert_int_equal(gw_rl_take_global(1 / 1.5, 2, now, &retry), 1);
	assert_int_equal(gw_rl_take_global(1 / 1.5, 2, now, &retry), 0);
	assert_int_equal(retry, 2);
	/* A burst below 1 still lets one through. */
	now += 100 * SEC;
	assert_int_equal(gw_rl_take_global(1, 0, now, &retry), 1);
	assert_int_equal(gw_rl_take_global(1, 0, now, &retry), 0);
}

static void
test_rpm(void **state)
{
	struct gw_rl_limits lim = {3, -1, -1};
	struct gw_rl_ticket t;
	int64_t rr, rt;
	int retry = 0, i;

	(void)state;
	for (i = 0; i < 3; i++) {
		assert_int_equal(
		    gw_rl_admit("k:a", &lim, T0, &t, &retry, &rr, &rt),
		    GW_RL_OK);
		assert_int_equal(rr, 2 - i);
		assert_int_equal(rt, -1);
		gw_rl_done(&t, 10, T0);
	}
	assert_int_equal(
	    gw_rl_admit("k:a", &lim, T0, &t, &retry, &rr, &rt), GW_RL_RPM);
	assert_int_equal(retry, 45); /* the window ends 45 s later */
	assert_int_equal(rr, 0);
	gw_rl_done(&t, 10, T0); /* refused: a no-op */
	assert_int_equal(gw_rl_reset_ms(T0), 45000);
	assert_int_equal(gw_rl_reset_ms(T0 + 44 * SEC + 1), 1000);
	/* Another entity is not affected. */
	assert_int_equal(
	    gw_rl_admit("k:b", &lim, T0, &t, NULL, NULL, NULL), GW_RL_OK);
	/* The next window starts afresh. */
	assert_int_equal(
	    gw_rl_admit("k:a", &lim, T0 + 45 * SEC, &t, &retry, &rr, &rt),
	    GW_RL_OK);
	assert_int_equal(rr, 2);
	/* rpm 0 refuses everything. */
	lim.rpm = 0;
	assert_int_equal(
	    gw_rl_admit("k:z", &lim, T0, &t, &retry, &rr, NULL), GW_RL_RPM);
	assert_int_equal(refused_count("rpm"), 2);
}

static void
test_tpm(void **state)
{
	struct gw_rl_limits lim = {-1, 100, -1};
	struct gw_rl_ticket t;
	int64_t rr, rt;
	int retry = 0;

	(void)state;
	assert_int_equal(
	    gw_rl_admit("t:team", &lim, T0, &t, &retry, &rr, &rt), GW_RL_OK);
	assert_int_equal(rt, 100);
	assert_int_equal(rr, -1);
	gw_rl_done(&t, 60, T0);
	gw_rl_done(&t, 60, T0); /* idempotent */
	assert_int_equal(
	    gw_rl_admit("t:team", &lim, T0, &t, &retry, &rr, &rt), GW_RL_OK);
	assert_int_equal(rt, 40);
	gw_rl_done(&t, 50, T0 + SEC);
	/* 110 used: refused until the window ends. */
	assert_int_equal(
	    gw_rl_admit("t:team", &lim, T0 + 2 * SEC, &t, &retry, &rr, &rt),
	    GW_RL_TPM);
	assert_int_equal(retry, 43);
	assert_int_equal(rt, 0);
	assert_int_equal(
	    gw_rl_admit("t:team", &lim, T0 + 45 * SEC, &t, &retry, &rr, &rt),
	    GW_RL_OK);
	assert_int_equal(rt, 100);
	/* Tokens land in the window current when the request ends. */
	gw_rl_done(&t, 100, T0 + 106 * SEC);
	assert_int_equal(
	    gw_rl_admit("t:team", &lim, T0 + 106 * SEC, &t, &retry, &rr, &rt),
	    GW_RL_TPM);
	assert_int_equal(refused_count("tpm"), 2);
}

static void
test_parallel(void **state)
{
	struct gw_rl_limits lim = {-1, -1, 2};
	struct gw_rl_ticket a, b, c;
	int retry = 0;

	(void)state;
	assert_int_equal(
	    gw_rl_admit("k:p", &lim, T0, &a, &retry, NULL, NULL), GW_RL_OK);
	assert_int_equal(
	    gw_rl_admit("k:p", &lim, T0, &b, &retry, NULL, NULL), GW_RL_OK);
	assert_int_equal(gw_rl_admit("k:p", &lim, T0, &c, &retry, NULL, NULL),
	    GW_RL_PARALLEL);
	assert_int_equal(retry, 1);
	gw_rl_done(&a, 0, T0);
	gw_rl_done(&a, 0, T0); /* must not free b's slot */
	assert_int_equal(
	    gw_rl_admit("k:p", &lim, T0, &c, &retry, NULL, NULL), GW_RL_OK);
	assert_int_equal(gw_rl_admit("k:p", &lim, T0, &a, &retry, NULL, NULL),
	    GW_RL_PARALLEL);
	/* Slots do not depend on windows. */
	assert_int_equal(
	    gw_rl_admit("k:p", &lim, T0 + 3600 * SEC, &a, &retry, NULL, NULL),
	    GW_RL_PARALLEL);
	gw_rl_done(&b, 0, T0);
	gw_rl_done(&c, 0, T0);
	assert_int_equal(
	    gw_rl_admit("k:p", &lim, T0, &a, &retry, NULL, NULL), GW_RL_OK);
	gw_rl_done(&a, 0, T0);
	assert_int_equal(refused_count("parallel"), 3);
}

/* Key admitted, team refused: the key's request and slot are given back. */
static void
test_undo(void **state)
{
	struct gw_rl_limits key = {1, -1, 1}, team = {-1, -1, 0};
	struct gw_rl_ticket tk, tt;
	int64_t rr;

	(void)state;
	assert_int_equal(
	    gw_rl_admit("k:u", &key, T0, &tk, NULL, &rr, NULL), GW_RL_OK);
	assert_int_equal(rr, 0);
	assert_int_equal(gw_rl_admit("t:u", &team, T0, &tt, NULL, NULL, NULL),
	    GW_RL_PARALLEL);
	gw_rl_undo(&tk, T0);
	gw_rl_undo(&tk, T0); /* idempotent */
	assert_int_equal(
	    gw_rl_admit("k:u", &key, T0, &tk, NULL, &rr, NULL), GW_RL_OK);
	assert_int_equal(rr, 0);
	gw_rl_done(&tk, 5, T0);
	gw_rl_undo(&tk, T0); /* after done: a no-op */
	assert_int_equal(
	    gw_rl_admit("k:u", &key, T0, &tk, NULL, NULL, NULL), GW_RL_RPM);
	/* A refusal on parallel gives the rpm count back itself. */
	key.rpm = 2;
	assert_int_equal(
	    gw_rl_admit("k:v", &key, T0, &tk, NULL, &rr, NULL), GW_RL_OK);
	assert_int_equal(
	    gw_rl_admit("k:v", &key, T0, &tt, NULL, &rr, NULL), GW_RL_PARALLEL);
	assert_int_equal(rr, 1);
	gw_rl_done(&tk, 0, T0);
	assert_int_equal(
	    gw_rl_admit("k:v", &key, T0, &tk, NULL, &rr, NULL), GW_RL_OK);
	assert_int_equal(rr, 0);
}

static void
test_unlimited(void **state)
{
	struct gw_rl_ticket t;
	int64_t rr = 0, rt = 0;

	(void)state;
	assert_int_equal(
	    gw_rl_admit("k:free", &none, T0, &t, NULL, &rr, &rt), GW_RL_OK);
	assert_int_equal(rr, -1);
	assert_int_equal(rt, -1);
	assert_int_equal(t.state, 0);
	assert_int_equal(t.idx, -1);
	gw_rl_done(&t, 100, T0);
	gw_rl_undo(&t, T0);
}

static void
test_collisions(void **state)
{
	struct gw_rl_limits lim = {1, -1, -1};
	struct gw_rl_ticket t;
	struct rl_area *a = area();
	uint64_t h1, h2, g1, g2, win = win_of(T0);
	char e1[32], e2[32];
	int i, j, x, y;

	(void)state;
	/* Two entities with the same home slot. */
	snprintf(e1, sizeof(e1), "k:0");
	entity_hash(e1, &h1, &h2);
	for (i = 1;; i++) {
		snprintf(e2, sizeof(e2), "k:%d", i);
		entity_hash(e2, &g1, &g2);
		if ((g1 & RL_MASK) == (h1 & RL_MASK))
			break;
	}
	assert_int_equal(
	    gw_rl_admit(e1, &lim, T0, &t, NULL, NULL, NULL), GW_RL_OK);
	assert_int_equal(
	    gw_rl_admit(e2, &lim, T0, &t, NULL, NULL, NULL), GW_RL_OK);
	assert_int_equal(
	    gw_rl_admit(e1, &lim, T0, &t, NULL, NULL, NULL), GW_RL_RPM);
	assert_int_equal(
	    gw_rl_admit(e2, &lim, T0, &t, NULL, NULL, NULL), GW_RL_RPM);
	/* The same h1 and a different h2: two entities. */
	x = entry_get(a, 12345, 1, win);
	y = entry_get(a, 12345, 2, win);
	assert_true(x >= 0 && y >= 0 && x != y);
	assert_int_equal(entry_get(a, 12345, 1, win), x);
	unpin(&a->ent[x]);
	unpin(&a->ent[x]);
	unpin(&a->ent[y]);
	/* Many entities: each keeps its own count. */
	for (j = 0; j < 2; j++)
		for (i = 0; i < 3000; i++) {
			snprintf(e1, sizeof(e1), "t:team-%d", i);
			assert_int_equal(
			    gw_rl_admit(e1, &lim, T0, &t, NULL, NULL, NULL),
			    j == 0 ? GW_RL_OK : GW_RL_RPM);
		}
	assert_int_equal(failopen_count(), 0);
}

/* Stale entries are recycled: the table holds more entities over time. */
static void
test_recycle(void **state)
{
	struct gw_rl_limits lim = {1, 1000, -1};
	struct gw_rl_ticket t;
	char e[32];
	int i, w;

	(void)state;
	for (w = 0; w < 4; w++)
		for (i = 0; i < 5000; i++) {
			snprintf(e, sizeof(e), "k:w%d-%d", w, i);
			assert_int_equal(gw_rl_admit(e, &lim, T0 + w * 60 * SEC,
			                     &t, NULL, NULL, NULL),
			    GW_RL_OK);
			gw_rl_done(&t, 1, T0 + w * 60 * SEC);
			assert_int_equal(gw_rl_admit(e, &lim, T0 + w * 60 * SEC,
			                     &t, NULL, NULL, NULL),
			    GW_RL_RPM);
		}
	assert_int_equal(failopen_count(), 0);
	/* Tokens of a request whose entity was recycled meanwhile still
	 * reach that entity. */
	lim.rpm = -1;
	assert_int_equal(gw_rl_admit("k:long", &lim, T0 + 4 * 60 * SEC, &t,
	                     NULL, NULL, NULL),
	    GW_RL_OK);
	for (i = 0; i < 6000; i++) {
		struct gw_rl_ticket u;

		snprintf(e, sizeof(e), "k:x-%d", i);
		gw_rl_admit(e, &lim, T0 + 6 * 60 * SEC, &u, NULL, NULL, NULL);
		gw_rl_done(&u, 1, T0 + 6 * 60 * SEC);
	}
	gw_rl_done(&t, 5000, T0 + 6 * 60 * SEC);
	assert_int_equal(gw_rl_admit("k:long", &lim, T0 + 6 * 60 * SEC, &t,
	                     NULL, NULL, NULL),
	    GW_RL_TPM);
}

/* A child takes a parallel slot and dies: gw_rl_reap gives it back. */
static void
test_reap_dead(void **state)
{
	struct gw_rl_limits lim = {-1, -1, 1};
	struct gw_rl_ticket t;
	int status, p[2];
	pid_t pid;
	char c = 0;

	(void)state;
	assert_int_equal(pipe(p), 0);
	pid = fork();
	if (pid == 0) {
		close(p[0]);
		if (gw_rl_admit("k:dead", &lim, T0, &t, NULL, NULL, NULL) !=
		    GW_RL_OK)
			_exit(1);
		if (write(p[1], "x", 1) != 1)
			_exit(2);
		pause(); /* killed, never releases */
		_exit(3);
	}
	close(p[1]);
	assert_int_equal(read(p[0], &c, 1), 1);
	close(p[0]);
	/* Alive: its lease stays. */
	assert_int_equal(gw_rl_reap(), 0);
	assert_int_equal(gw_rl_admit("k:dead", &lim, T0, &t, NULL, NULL, NULL),
	    GW_RL_PARALLEL);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(gw_rl_reap(), 1);
	assert_int_equal(gw_rl_reap(), 0);
	assert_int_equal(
	    gw_rl_admit("k:dead", &lim, T0, &t, NULL, NULL, NULL), GW_RL_OK);
	/* Our own lease is never reaped. */
	assert_int_equal(gw_rl_reap(), 0);
	gw_rl_done(&t, 0, T0);
	assert_int_equal(
	    gw_rl_admit("k:dead", &lim, T0, &t, NULL, NULL, NULL), GW_RL_OK);
	gw_rl_done(&t, 0, T0);
}

/*
 * A claimer dies holding its stripe's lock, with a slot locked: the next
 * thread to meet the slot waits on that lock, is told the holder died and
 * repairs the slot. Not yet rewritten: the entity and its count survive.
 * Half rewritten: a tombstone, recycled for the next entity.
 */
static void
test_dead_claimer(void **state)
{
	struct gw_rl_limits lim = {1, -1, -1};
	struct gw_rl_ticket t;
	struct rl_area *a = area();
	uint64_t h1, h2, zero, win = win_of(T0);
	uint32_t st;
	int idx, cand = -1;
	pid_t pid;

	(void)state;
	assert_int_equal(
	    gw_rl_admit("k:live", &lim, T0, &t, NULL, NULL, NULL), GW_RL_OK);
	entity_hash("k:live", &h1, &h2);
	idx = walk(a, h1, h2, win, NULL, 1, -1);
	assert_true(idx >= 0);
	st = stripe_of(h1);
	if ((pid = fork()) == 0) {
		/* claim() up to the check that would find the slot in use */
		stripe_lock(a, st);
		a->stripe[st].claiming = (uint32_t)idx + 1;
		zero = 0;
		if (!atomic_compare_exchange_strong(
		        &a->ent[idx].ref, &zero, REF_LOCK | st))
			_exit(1);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	assert_int_equal(atomic_load(&a->ent[idx].ref), REF_LOCK | st);
	assert_int_equal(gw_rl_admit("k:live", &lim, T0, &t, NULL, NULL, NULL),
	    GW_RL_RPM); /* its count of 1 is still there */
	assert_int_equal(atomic_load(&a->ent[idx].ref), 0);
	assert_true(matches(&a->ent[idx], h1, h2));

	entity_hash("k:new", &h1, &h2);
	assert_int_equal(walk(a, h1, h2, win, &cand, 1, -1), -1);
	assert_true(cand >= 0);
	st = stripe_of(h1);
	if ((pid = fork()) == 0) {
		stripe_lock(a, st);
		a->stripe[st].claiming = (uint32_t)cand + 1;
		zero = 0;
		if (!atomic_compare_exchange_strong(
		        &a->ent[cand].ref, &zero, REF_LOCK | st))
			_exit(1);
		a->stripe[st].writing = 1;
		atomic_store(&a->ent[cand].h2, h2);
		atomic_store(&a->ent[cand].req, pack(win, 5)); /* half done */
		_exit(0);
	}
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	assert_int_equal(
	    gw_rl_admit("k:new", &lim, T0, &t, NULL, NULL, NULL), GW_RL_OK);
	assert_int_equal(
	    gw_rl_admit("k:new", &lim, T0, &t, NULL, NULL, NULL), GW_RL_RPM);
	assert_true(matches(&a->ent[cand], h1, h2));
	assert_int_equal(atomic_load(&a->ent[cand].ref), 0);
	/* And the stripe's lock works on. */
	stripe_lock(a, st);
	assert_int_equal(a->stripe[st].claiming, 0);
	stripe_unlock(a, st);
	assert_int_equal(failopen_count(), 0);
}

/* Full lease table: admit anyway (fail open), count it. */
static void
test_lease_table_full(void **state)
{
	struct gw_rl_limits lim = {-1, -1, 1};
	struct gw_rl_ticket t, u;
	struct rl_area *a = area();
	int i;

	(void)state;
	for (i = 0; i < RL_LEASES; i++)
		atomic_store(&a->lease[i], UINT64_C(0xffff) << 16);
	assert_int_equal(
	    gw_rl_admit("k:f", &lim, T0, &t, NULL, NULL, NULL), GW_RL_OK);
	assert_int_equal(t.lease, -1);
	assert_int_equal(
	    gw_rl_admit("k:f", &lim, T0, &u, NULL, NULL, NULL), GW_RL_OK);
	assert_int_equal(failopen_count(), 2);
	gw_rl_done(&t, 0, T0);
	gw_rl_done(&u, 0, T0);
	for (i = 0; i < RL_LEASES; i++)
		atomic_store(&a->lease[i], 0);
	assert_int_equal(
	    gw_rl_admit("k:f", &lim, T0, &t, NULL, NULL, NULL), GW_RL_OK);
	assert_int_equal(
	    gw_rl_admit("k:f", &lim, T0, &u, NULL, NULL, NULL), GW_RL_PARALLEL);
}

/* Results children report through an anonymous shared mapping. */
struct shared {
	_Atomic int64_t ok, refused, inflight, max_inflight;
};

static struct shared *
shared_new(void)
{
	struct shared *s = mmap(NULL, sizeof(*s), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	assert_true(s != MAP_FAILED);
	memset(s, 0, sizeof(*s));
	return s;
}

static void
wait_all(pid_t *pids, int n)
{
	int i, status;

	for (i = 0; i < n; i++) {
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
}

/* K processes hammer the global bucket at one instant: exactly burst. */
static void
test_cross_process_global(void **state)
{
	enum { K = 8, N = 20000, BURST = 50000 };
	struct shared *sh = shared_new();
	pid_t pids[K];
	int i, j, ok;

	(void)state;
	for (i = 0; i < K; i++) {
		if ((pids[i] = fork()) == 0) {
			for (ok = 0, j = 0; j < N; j++)
				ok += gw_rl_take_global(0.001, BURST, T0, NULL);
			atomic_fetch_add(&sh->ok, ok);
			_exit(0);
		}
	}
	wait_all(pids, K);
	assert_int_equal(atomic_load(&sh->ok), BURST);
	munmap(sh, sizeof(*sh));
}

/* K processes on one entity: exact rpm, parallel never exceeded. */
static void
test_cross_process_entity(void **state)
{
	enum { K = 8, N = 5000, RPM = 12345, PAR = 3 };
	struct gw_rl_limits rpm = {RPM, -1, -1}, par = {-1, 1000000, PAR};
	struct shared *sh = shared_new();
	struct gw_rl_ticket t;
	pid_t pids[K];
	int64_t in, mx;
	int i, j;

	(void)state;
	for (i = 0; i < K; i++) {
		if ((pids[i] = fork()) == 0) {
			for (j = 0; j < N; j++) {
				if (gw_rl_admit("k:shared", &rpm, T0, &t, NULL,
				        NULL, NULL) == GW_RL_OK)
					atomic_fetch_add(&sh->ok, 1);
				if (gw_rl_admit("t:shared", &par, T0, &t, NULL,
				        NULL, NULL) != GW_RL_OK)
					continue;
				in = atomic_fetch_add(&sh->inflight, 1) + 1;
				mx = atomic_load(&sh->max_inflight);
				while (
				    in > mx && !atomic_compare_exchange_weak(
				                   &sh->max_inflight, &mx, in))
					;
				atomic_fetch_sub(&sh->inflight, 1);
				gw_rl_done(&t, 1, T0);
			}
			_exit(0);
		}
	}
	wait_all(pids, K);
	assert_int_equal(atomic_load(&sh->ok), RPM);
	assert_true(atomic_load(&sh->max_inflight) <= PAR);
	assert_true(atomic_load(&sh->max_inflight) >= 1);
	/* Every slot came back. */
	for (i = 0; i < PAR; i++)
		assert_int_equal(
		    gw_rl_admit("t:shared", &par, T0, &t, NULL, NULL, NULL),
		    GW_RL_OK);
	assert_int_equal(
	    gw_rl_admit("t:shared", &par, T0, &t, NULL, NULL, NULL),
	    GW_RL_PARALLEL);
	assert_int_equal(gw_rl_reap(), 0);
	munmap(sh, sizeof(*sh));
}

/*
 * Two processes add the same new entity at once, with clocks a window
 * apart, behind an entity of the same home slot counted only in the first
 * window: one sees the home slot in use and takes the next, the other sees
 * it stale and recycles it. Claims of one entity are serialised by its
 * stripe lock, so the second finds the first's slot: never two slots.
 */
static void
test_claim_once(void **state)
{
	enum { N = 300 };
	struct gw_rl_limits lim = {1000000, -1, -1};
	struct rl_area *a = area();
	struct gw_rl_ticket t;
	_Atomic int *arrive;
	uint64_t h1, h2, g1, g2;
	pid_t pids[2];
	int i, j, k, n, dup = 0;
	char e[32], b[32];

	(void)state;
	arrive = mmap(NULL, N * sizeof(*arrive), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(arrive != MAP_FAILED);
	for (j = 0; j < N; j++) {
		snprintf(e, sizeof(e), "k:race-%d", j);
		entity_hash(e, &h1, &h2);
		for (k = 0;; k++) {
			snprintf(b, sizeof(b), "k:blk-%d-%d", j, k);
			entity_hash(b, &g1, &g2);
			if ((g1 & RL_MASK) == (h1 & RL_MASK))
				break;
		}
		if (walk(a, g1, g2, win_of(T0), NULL, 1, -1) < 0)
			assert_int_equal(
			    gw_rl_admit(b, &lim, T0, &t, NULL, NULL, NULL),
			    GW_RL_OK);
		atomic_store(&arrive[j], 0);
	}
	for (i = 0; i < 2; i++) {
		if ((pids[i] = fork()) == 0) {
			for (j = 0; j < N; j++) {
				snprintf(e, sizeof(e), "k:race-%d", j);
				atomic_fetch_add(&arrive[j], 1);
				while (atomic_load(&arrive[j]) < 2)
					;
				gw_rl_admit(e, &lim, T0 + i * 60 * SEC, &t,
				    NULL, NULL, NULL);
			}
			_exit(0);
		}
	}
	wait_all(pids, 2);
	for (j = 0; j < N; j++) {
		snprintf(e, sizeof(e), "k:race-%d", j);
		entity_hash(e, &h1, &h2);
		for (n = 0, i = 0; i < RL_ENTRIES; i++)
			n += matches(&a->ent[i], h1, h2);
		dup += n > 1;
	}
	munmap(arrive, N * sizeof(*arrive));
	assert_int_equal(dup, 0);
}

/* No region: everything is admitted. */
static void
test_no_shm(void **state)
{
	struct gw_rl_limits lim = {0, 0, 0};
	struct gw_rl_ticket t;

	(void)state;
	gw_shm_detach();
	assert_int_equal(gw_rl_take_global(1, 1, T0, NULL), 1);
	assert_int_equal(gw_rl_take_global(1, 1, T0, NULL), 1);
	assert_int_equal(
	    gw_rl_admit("k:x", &lim, T0, &t, NULL, NULL, NULL), GW_RL_OK);
	gw_rl_done(&t, 1, T0);
	assert_int_equal(gw_rl_reap(), 0);
}

static int64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * SEC + ts.tv_nsec;
}

/*
 * The common path of one request: global take, admit key and team, a few
 * metric updates, done for both. Prints ns per request.
 */
static void
test_perf(void **state)
{
	enum { N = 200000 };
	struct gw_rl_limits key = {1000000000, 1000000000, 100},
	                    team = {1000000000, 1000000000, 1000};
	const char *kent = "k:0123456789abcdef0123456789abcdef"
	                   "0123456789abcdef0123456789abcdef";
	struct gw_rl_ticket tk, tt;
	int64_t t0, t1, t2, now = T0;
	int i;

	(void)state;
	t0 = mono_ns();
	for (i = 0; i < N; i++, now += 1000) {
		gw_rl_take_global(1e9, 1e9, now, NULL);
		gw_rl_admit(kent, &key, now, &tk, NULL, NULL, NULL);
		gw_rl_admit("t:team-1", &team, now, &tt, NULL, NULL, NULL);
		gw_rl_done(&tt, 42, now);
		gw_rl_done(&tk, 42, now);
	}
	t1 = mono_ns();
	for (i = 0; i < N; i++, now += 1000) {
		gw_rl_take_global(1e9, 1e9, now, NULL);
		gw_rl_admit(kent, &key, now, &tk, NULL, NULL, NULL);
		gw_rl_admit("t:team-1", &team, now, &tt, NULL, NULL, NULL);
		gw_metrics_gauge_add_pid(GW_METRIC_IN_FLIGHT, 1);
		gw_metrics_inc(GW_METRIC_REQUESTS,
		    "route=\"chat\",model=\"gpt-4o\",status=\"200\"", 1);
		gw_metrics_inc(
		    GW_METRIC_TOKENS, "model=\"gpt-4o\",kind=\"prompt\"", 30);
		gw_metrics_inc(GW_METRIC_TOKENS,
		    "model=\"gpt-4o\",kind=\"completion\"", 12);
		gw_metrics_add_double(
		    GW_METRIC_SPEND_USD, "model=\"gpt-4o\"", 0.00042);
		gw_metrics_observe(
		    GW_HIST_REQUEST, "route=\"chat\",model=\"gpt-4o\"", 0.25);
		gw_metrics_gauge_add_pid(GW_METRIC_IN_FLIGHT, -1);
		gw_rl_done(&tt, 42, now);
		gw_rl_done(&tk, 42, now);
	}
	t2 = mono_ns();
	print_message("perf: ratelimit path %.0f ns/request; with 7 metric "
	              "updates %.0f ns/request\n",
	    (double)(t1 - t0) / N, (double)(t2 - t1) / N);
}

/* Take one request of src under rps 1, burst 3, no failure limit. */
static int
take(const char *src, int64_t now)
{
	struct gw_rl_client_limits lim = {1, 3, 0, 1, 8};

	return gw_rl_client_admit(src, &lim, now, NULL) == GW_RL_CLIENT_OK;
}

/* Per-client buckets: each source has its own; a full table evicts LRU. */
static void
test_client_buckets(void **state)
{
	struct gw_rl_client_limits off = {0, 1, 0, 1, 8};
	int64_t now = T0, ev0;
	int i;
	char src[32];

	(void)state;
	/* Source a: a burst of 3, then refused; b is untouched by it. */
	for (i = 0; i < 3; i++)
		assert_true(take("10.0.0.1", now));
	assert_false(take("10.0.0.1", now));
	assert_true(take("10.0.0.2", now));
	/* A second later a's one token is back. */
	assert_true(take("10.0.0.1", now + SEC));
	assert_false(take("10.0.0.1", now + SEC));
	/* 8 slots: eight more sources push out the least recently used. */
	ev0 =
	    (int64_t)gw_metrics_value(GW_METRIC_RATELIMIT_CLIENT_EVICTIONS, "");
	for (i = 0; i < 8; i++) {
		snprintf(src, sizeof(src), "192.0.2.%d", i);
		assert_true(take(src, now + 2 * SEC + i));
	}
	assert_true((int64_t)gw_metrics_value(
	                GW_METRIC_RATELIMIT_CLIENT_EVICTIONS, "") -
	                ev0 >=
	            2);
	/* a was evicted: it comes back with a full bucket (only helps it). */
	for (i = 0; i < 3; i++)
		assert_true(take("10.0.0.1", now + 3 * SEC));
	/* rate <= 0: no limit. */
	for (i = 0; i < 1000; i++)
		assert_int_equal(
		    gw_rl_client_admit("10.0.0.9", &off, now, NULL),
		    GW_RL_CLIENT_OK);
}

static void
test_client_auth_failures(void **state)
{
	struct gw_rl_client_limits lim = {1000, 1000, 0.1, 5, 64};
	int64_t now = T0 + 30 * SEC;
	int i, retry = 0;

	(void)state;
	/* Admission takes no failure; each failure takes one of 5. */
	for (i = 0; i < 20; i++)
		assert_int_equal(
		    gw_rl_client_admit("10.1.0.1", &lim, now, &retry),
		    GW_RL_CLIENT_OK);
	for (i = 0; i < 5; i++)
		gw_rl_client_auth_failed("10.1.0.1", &lim, now);
	assert_int_equal(gw_rl_client_admit("10.1.0.1", &lim, now, &retry),
	    GW_RL_CLIENT_AUTH_FAILURES);
	assert_int_equal(retry, 10); /* one failure back every 10 s */
	assert_int_equal(
	    gw_rl_client_admit("10.1.0.2", &lim, now, NULL), GW_RL_CLIENT_OK);
	assert_int_equal(
	    gw_rl_client_admit("10.1.0.1", &lim, now + 10 * SEC, NULL),
	    GW_RL_CLIENT_OK);
}

/*
 * Shared limits (gw_rl_admit_shared) against a fake engine that does what
 * migration 010's functions do, for one entity; "other" is what the
 * other hosts took or hold.
 */
struct fake_engine {
	int calls, fail;
	int64_t win, used, tokens, others_par, mine_par, sent;
};

static int
fake_sync(void *arg, struct gw_rl_sync *s)
{
	struct fake_engine *f = arg;
	int64_t g = 0, left, h;

	f->calls++;
	if (f->fail)
		return -1;
	if (s->win != f->win) {
		f->win = s->win;
		f->used = f->tokens = 0;
	}
	left = s->rpm - f->used;
	if (s->rpm >= 0 && s->slice > 0 && left > 0) {
		g = left / 4 < 1 ? 1 : left / 4;
		g = g > s->slice ? s->slice : g > left ? left : g;
	}
	f->used += g;
	f->tokens += s->tokens;
	f->sent += s->tokens;
	s->got = g;
	s->win_tokens = f->tokens;
	if (s->need > 0) {
		if (f->mine_par >= s->need)
			h = f->mine_par;
		else if (f->others_par + s->need <= s->parallel)
			h = s->need +
			    (s->parallel - f->others_par - s->need) / 4;
		else
			h = f->mine_par > s->keep ? f->mine_par : s->keep;
		f->mine_par = h;
	}
	s->held = f->mine_par;
	return 0;
}

static struct gw_rl_share
share_of(struct fake_engine *f)
{
	return (struct gw_rl_share){fake_sync, f, 100, 4, SEC, SEC / 5};
}

/* A real clock's minute: windows are minutes of the epoch. */
#define W0 (INT64_C(29000000) * 60 * SEC + 15 * SEC)

static void
test_shared_rpm_slices(void **state)
{
	struct fake_engine f = {0};
	struct gw_rl_share sh = share_of(&f);
	struct gw_rl_limits lim = {20, -1, -1};
	struct gw_rl_ticket t;
	int i, ok = 0;

	(void)state;
	/* The other hosts took 8 of 20 before us. */
	f.win = W0 / (60 * SEC);
	f.used = 8;
	for (i = 0; i < 30; i++)
		if (gw_rl_admit_shared("k:slices", &lim, W0, &t, NULL, NULL,
		        NULL, &sh) == GW_RL_OK) {
			ok++;
			gw_rl_done(&t, 0, W0);
		}
	/* Exactly what was left; slices of 3, 2, 1, 1, ... then one asking
	 * in vain: a round trip per slice, none after the window ran dry. */
	assert_int_equal(ok, 12);
	assert_int_equal(f.used, 20);
	assert_int_equal(f.calls, 10);
	assert_int_equal(gw_rl_admit_shared("k:slices", &lim, W0 + SEC, &t,
	                     NULL, NULL, NULL, &sh),
	    GW_RL_RPM);
	assert_int_equal(f.calls, 10);
	/* The next window asks again. */
	assert_int_equal(gw_rl_admit_shared("k:slices", &lim, W0 + 60 * SEC, &t,
	                     NULL, NULL, NULL, &sh),
	    GW_RL_OK);
	assert_int_equal(f.calls, 11);
}

static void
test_shared_unlimited_costs_nothing(void **state)
{
	struct fake_engine f = {0};
	struct gw_rl_share sh = share_of(&f);
	struct gw_rl_ticket t;

	(void)state;
	assert_int_equal(
	    gw_rl_admit_shared("k:free", &none, W0, &t, NULL, NULL, NULL, &sh),
	    GW_RL_OK);
	assert_int_equal(f.calls, 0);
	assert_int_equal(t.idx, -1);
}

static void
test_shared_fail_open(void **state)
{
	struct fake_engine f = {.fail = 1};
	struct gw_rl_share sh = share_of(&f);
	struct gw_rl_limits lim = {5, -1, -1};
	struct gw_rl_ticket t;
	double before = gw_metrics_value(
	    GW_METRIC_RATELIMIT_FAILOPEN, "reason=\"shared_unavailable\"");
	int i, ok = 0;

	(void)state;
	/* The engine is down: this host's counts against the whole limit. */
	for (i = 0; i < 8; i++)
		if (gw_rl_admit_shared("k:down", &lim, W0, &t, NULL, NULL, NULL,
		        &sh) == GW_RL_OK)
			ok++;
	assert_int_equal(ok, 5);
	assert_true(gw_metrics_value(GW_METRIC_RATELIMIT_FAILOPEN,
	                "reason=\"shared_unavailable\"") >= before + 5);
}

static void
test_shared_tpm(void **state)
{
	struct fake_engine f = {0};
	struct gw_rl_share sh = share_of(&f);
	struct gw_rl_limits lim = {-1, 1000, -1};
	struct gw_rl_ticket t;
	int64_t left = 0;

	(void)state;
	/* The other hosts counted 900 tokens: seen at the first admission. */
	f.win = W0 / (60 * SEC);
	f.tokens = 900;
	assert_int_equal(
	    gw_rl_admit_shared("k:tpm", &lim, W0, &t, NULL, NULL, &left, &sh),
	    GW_RL_OK);
	assert_int_equal(f.calls, 1);
	assert_int_equal(left, 100);
	gw_rl_done(&t, 30, W0);
	/* 30 unsent is over a quarter of what is left (70): sent first, and
	 * the other hosts' 100 more are seen: over tpm. */
	f.tokens += 100;
	assert_int_equal(gw_rl_admit_shared(
	                     "k:tpm", &lim, W0 + 1, &t, NULL, NULL, NULL, &sh),
	    GW_RL_TPM);
	assert_int_equal(f.calls, 2);
	assert_int_equal(f.sent, 30);
	/* Over tpm, refusals make no round trip (this host's view is never
	 * above the truth); the heartbeat sends what is counted meanwhile. */
	assert_int_equal(gw_rl_admit_shared("k:tpm", &lim, W0 + 2 * SEC, &t,
	                     NULL, NULL, NULL, &sh),
	    GW_RL_TPM);
	assert_int_equal(f.calls, 2);
}

/*
 * While a sync's round trip lasts, the host's other threads still count
 * the tokens it is sending: they left "unsent" but the engine has not
 * answered yet (in the two-host test, a thread admitting then saw up to a
 * slice fewer and went past the documented bound).
 */
static int64_t during_left = -2;

static int
never_sync(void *arg, struct gw_rl_sync *s)
{
	(void)arg;
	(void)s;
	fail_msg("a second thread's admission made a round trip");
	return -1;
}

static int
sync_and_look(void *arg, struct gw_rl_sync *s)
{
	static const struct gw_rl_limits lim = {-1, 1000, -1};
	struct gw_rl_share quiet = {
	    never_sync, NULL, 100, 1000000, 1000 * SEC, SEC / 5};
	struct gw_rl_ticket t2;

	/* Another thread of this host admits mid-trip. */
	if (s->tokens > 0)
		assert_int_equal(gw_rl_admit_shared("k:trip", &lim, W0 + 2, &t2,
		                     NULL, NULL, &during_left, &quiet),
		    GW_RL_OK);
	return fake_sync(arg, s);
}

static void
test_shared_tpm_view_holds_during_sync(void **state)
{
	struct fake_engine f = {0};
	struct gw_rl_share sh = {sync_and_look, &f, 100, 4, SEC, SEC / 5};
	struct gw_rl_limits lim = {-1, 1000, -1};
	struct gw_rl_ticket t;
	int64_t left = 0;

	(void)state;
	f.win = W0 / (60 * SEC);
	assert_int_equal(
	    gw_rl_admit_shared("k:trip", &lim, W0, &t, NULL, NULL, &left, &sh),
	    GW_RL_OK);
	assert_int_equal(left, 1000);
	gw_rl_done(&t, 400, W0);
	/* 400 unsent: over a quarter of what is left, so sent. */
	assert_int_equal(gw_rl_admit_shared("k:trip", &lim, W0 + 1, &t, NULL,
	                     NULL, &left, &sh),
	    GW_RL_OK);
	assert_int_equal(f.sent, 400);
	assert_int_equal(during_left, 600);
	assert_int_equal(left, 600);
	/* A failed trip gives them back as unsent: still counted once. */
	f.fail = 1;
	gw_rl_done(&t, 100, W0 + 1);
	assert_int_equal(gw_rl_admit_shared("k:trip", &lim, W0 + 2, &t, NULL,
	                     NULL, &left, &sh),
	    GW_RL_OK);
	assert_int_equal(left, 500);
}

static void
test_shared_parallel(void **state)
{
	struct fake_engine f = {.others_par = 1};
	struct gw_rl_share sh = share_of(&f);
	struct gw_rl_limits lim = {-1, -1, 2};
	struct gw_rl_ticket a, b;

	(void)state;
	/* Another host holds 1 of 2: one for us. */
	assert_int_equal(
	    gw_rl_admit_shared("k:par", &lim, W0, &a, NULL, NULL, NULL, &sh),
	    GW_RL_OK);
	assert_int_equal(f.calls, 1);
	assert_int_equal(
	    gw_rl_admit_shared("k:par", &lim, W0, &b, NULL, NULL, NULL, &sh),
	    GW_RL_PARALLEL);
	assert_int_equal(f.calls, 2);
	/* A refusal holds deny_ns without asking again. */
	assert_int_equal(gw_rl_admit_shared("k:par", &lim, W0 + SEC / 10, &b,
	                     NULL, NULL, NULL, &sh),
	    GW_RL_PARALLEL);
	assert_int_equal(f.calls, 2);
	/* The other host let go: asked again after deny_ns. */
	f.others_par = 0;
	assert_int_equal(gw_rl_admit_shared("k:par", &lim, W0 + SEC, &b, NULL,
	                     NULL, NULL, &sh),
	    GW_RL_OK);
	assert_int_equal(f.calls, 3);
	gw_rl_done(&a, 0, W0 + SEC);
	gw_rl_done(&b, 0, W0 + SEC);
	/* Within the grant no round trip. */
	assert_int_equal(gw_rl_admit_shared("k:par", &lim, W0 + SEC, &a, NULL,
	                     NULL, NULL, &sh),
	    GW_RL_OK);
	assert_int_equal(f.calls, 3);
	gw_rl_done(&a, 0, W0 + SEC);
}

static void
test_beat_collect(void **state)
{
	struct fake_engine f = {0};
	struct gw_rl_share sh = share_of(&f);
	struct gw_rl_limits lim = {-1, 1000000, 4};
	struct gw_rl_ticket a, b;
	struct gw_rl_beat beat[8];
	int n;

	(void)state;
	assert_int_equal(
	    gw_rl_admit_shared("k:beat", &lim, W0, &a, NULL, NULL, NULL, &sh),
	    GW_RL_OK);
	assert_int_equal(
	    gw_rl_admit_shared("k:beat", &lim, W0, &b, NULL, NULL, NULL, &sh),
	    GW_RL_OK);
	gw_rl_done(&b, 40, W0);
	/* One in flight, 40 tokens unsent, a grant of 2. */
	n = gw_rl_beat_collect(W0, beat, 8);
	assert_int_equal(n, 1);
	assert_int_equal(beat[0].held, 1);
	assert_int_equal(beat[0].tokens, 40);
	assert_int_equal(beat[0].win, W0 / (60 * SEC));
	assert_int_equal(atomic_load(&area()->ent[beat[0].idx].gpar), 1);
	/* Sent: not again; unless the beat failed. */
	n = gw_rl_beat_collect(W0, beat, 8);
	assert_int_equal(beat[0].tokens, 0);
	gw_rl_beat_unsent(beat, n);
	gw_rl_done(&a, 2, W0);
	n = gw_rl_beat_collect(W0, beat, 8);
	assert_int_equal(n, 1);
	assert_int_equal(beat[0].held, 0);
	assert_int_equal(beat[0].tokens, 2);
	gw_rl_beat_unsent(beat, n);
	n = gw_rl_beat_collect(W0, beat, 8);
	assert_int_equal(beat[0].tokens, 2);
	/* Nothing held nor unsent: nothing to say. */
	assert_int_equal(gw_rl_beat_collect(W0, beat, 8), 0);
	assert_int_equal(gw_rl_beat_due(W0, SEC), 1);
	assert_int_equal(gw_rl_beat_due(W0 + SEC / 2, SEC), 0);
	assert_int_equal(gw_rl_beat_due(W0 + SEC, SEC), 1);
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_client_buckets),
	    T(test_client_auth_failures),
	    T(test_global_bucket),
	    T(test_global_retry_after),
	    T(test_rpm),
	    T(test_tpm),
	    T(test_parallel),
	    T(test_undo),
	    T(test_unlimited),
	    T(test_collisions),
	    T(test_recycle),
	    T(test_reap_dead),
	    T(test_dead_claimer),
	    T(test_lease_table_full),
	    T(test_cross_process_global),
	    T(test_cross_process_entity),
	    T(test_claim_once),
	    T(test_no_shm),
	    T(test_perf),
	    T(test_shared_rpm_slices),
	    T(test_shared_unlimited_costs_nothing),
	    T(test_shared_fail_open),
	    T(test_shared_tpm),
	    T(test_shared_tpm_view_holds_during_sync),
	    T(test_shared_parallel),
	    T(test_beat_collect),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
