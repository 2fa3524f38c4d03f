/* Unit tests for lib/scheduler.c: the admission rule, on a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "scheduler.h"
#include "shm_fixture.h"

#define SEC INT64_C(1000000)
#define T0 (INT64_C(1000) * SEC)

static struct gw_cfg cfg;

static int
setup(void **state)
{
	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg.sched_enabled = 1;
	cfg.sched_groups = "";
	cfg.sched_max_wait_s = 30;
	cfg.sched_min_loaded_s = 0;
	cfg.sched_concurrency = 0;
	cfg.sched_queue_max = 100;
	cfg.sched_running_path = "";
	return shm_fixture_attach("sched");
}

static enum gw_scheduler_verdict
enter(struct gw_scheduler_ticket *t, const char *m, int64_t now)
{
	return gw_scheduler_enter(t, &cfg, m, now);
}

static void
test_group_of(void **state)
{
	(void)state;
	assert_int_equal(gw_scheduler_group_of("", "a"), 0);
	assert_int_equal(gw_scheduler_group_of("a, b; c ,d", "a"), 1);
	assert_int_equal(gw_scheduler_group_of("a, b; c ,d", "b"), 1);
	assert_int_equal(gw_scheduler_group_of("a, b; c ,d", "c"), 2);
	assert_int_equal(gw_scheduler_group_of("a, b; c ,d", "d"), 2);
	assert_int_equal(gw_scheduler_group_of("a, b; c ,d", "e"), 0);
	/* Whole names only. */
	assert_int_equal(gw_scheduler_group_of("ab;abc", "a"), 0);
	assert_int_equal(gw_scheduler_group_of("ab;abc", "abc"), 2);
	assert_int_equal(gw_scheduler_group_of(";;x", "x"), 3);
}

static void
test_off(void **state)
{
	struct gw_scheduler_ticket t;

	(void)state;
	cfg.sched_enabled = 0;
	assert_int_equal(enter(&t, "a", T0), GW_SCHEDULER_OFF);
	assert_int_equal(t.slot, 0);
	gw_scheduler_leave(&t, T0); /* a no-op */
}

/* One model alone is never held, and another model alone neither. */
static void
test_lone_model(void **state)
{
	struct gw_scheduler_ticket t[50];
	int i;

	(void)state;
	for (i = 0; i < 50; i++)
		assert_int_equal(enter(&t[i], "a", T0 + i), GW_SCHEDULER_GO);
	for (i = 0; i < 50; i++)
		gw_scheduler_leave(&t[i], T0 + 100);
	/* a is idle: b alone goes at once, and that is a swap. */
	assert_int_equal(enter(&t[0], "b", T0 + 200), GW_SCHEDULER_GO);
	assert_int_equal(t[0].swapped, 1);
	assert_int_equal(t[0].wait_us, 0);
	gw_scheduler_leave(&t[0], T0 + 300);
}

/* b waits while a is busy; a's newcomers keep going; then b's turn. */
static void
test_keep_loaded_busy(void **state)
{
	struct gw_scheduler_ticket a1, a2, b1, b2;

	(void)state;
	assert_int_equal(enter(&a1, "a", T0), GW_SCHEDULER_GO);
	assert_int_equal(enter(&b1, "b", T0 + 1), GW_SCHEDULER_WAIT);
	assert_int_equal(enter(&a2, "a", T0 + 2), GW_SCHEDULER_GO);
	assert_int_equal(enter(&b2, "b", T0 + 3), GW_SCHEDULER_WAIT);
	gw_scheduler_leave(&a1, T0 + SEC);
	assert_int_equal(
	    gw_scheduler_poll(&b1, &cfg, T0 + SEC), GW_SCHEDULER_WAIT);
	gw_scheduler_leave(&a2, T0 + 2 * SEC);
	/* b2 may not pass b1 (no reordering within a model). */
	assert_int_equal(
	    gw_scheduler_poll(&b2, &cfg, T0 + 2 * SEC), GW_SCHEDULER_WAIT);
	assert_int_equal(
	    gw_scheduler_poll(&b1, &cfg, T0 + 2 * SEC), GW_SCHEDULER_GO);
	assert_int_equal(b1.swapped, 1);
	assert_int_equal(b1.wait_us, 2 * SEC - 1);
	assert_int_equal(
	    gw_scheduler_poll(&b2, &cfg, T0 + 2 * SEC), GW_SCHEDULER_GO);
	assert_int_equal(b2.swapped, 0);
	/* Now a waits behind b. */
	assert_int_equal(enter(&a1, "a", T0 + 3 * SEC), GW_SCHEDULER_WAIT);
	gw_scheduler_leave(&b1, T0 + 4 * SEC);
	gw_scheduler_leave(&b2, T0 + 4 * SEC);
	assert_int_equal(
	    gw_scheduler_poll(&a1, &cfg, T0 + 4 * SEC), GW_SCHEDULER_GO);
	gw_scheduler_leave(&a1, T0 + 5 * SEC);
}

/* Requests of one model leave in the order they came. */
static void
test_fifo_within_model(void **state)
{
	struct gw_scheduler_ticket a, b[5];
	int i, j, next = 0;

	(void)state;
	assert_int_equal(enter(&a, "a", T0), GW_SCHEDULER_GO);
	for (i = 0; i < 5; i++)
		assert_int_equal(
		    enter(&b[i], "b", T0 + 1 + i), GW_SCHEDULER_WAIT);
	gw_scheduler_leave(&a, T0 + SEC);
	/* Poll from the newest to the oldest, again and again. */
	for (j = 0; j < 5; j++)
		for (i = 4; i >= 0; i--) {
			if (b[i].slot == 0 || i < next)
				continue;
			enum gw_scheduler_verdict v =
			    gw_scheduler_poll(&b[i], &cfg, T0 + 2 * SEC);
			if (v == GW_SCHEDULER_GO) {
				assert_int_equal(i, next);
				next++;
			}
		}
	assert_int_equal(next, 5);
	for (i = 0; i < 5; i++)
		gw_scheduler_leave(&b[i], T0 + 3 * SEC);
}

/* max_wait_s: the group drains and the starved model gets its turn. */
static void
test_max_wait(void **state)
{
	struct gw_scheduler_ticket a[4], b, late;

	(void)state;
	cfg.sched_max_wait_s = 10;
	assert_int_equal(enter(&a[0], "a", T0), GW_SCHEDULER_GO);
	assert_int_equal(enter(&b, "b", T0 + SEC), GW_SCHEDULER_WAIT);
	/* a keeps coming: it still goes, before b waited 10 s. */
	assert_int_equal(enter(&a[1], "a", T0 + 5 * SEC), GW_SCHEDULER_GO);
	gw_scheduler_leave(&a[0], T0 + 6 * SEC);
	assert_int_equal(enter(&a[2], "a", T0 + 8 * SEC), GW_SCHEDULER_GO);
	assert_int_equal(
	    gw_scheduler_poll(&b, &cfg, T0 + 9 * SEC), GW_SCHEDULER_WAIT);
	/* 10 s: a's newcomer waits now (the group drains). */
	assert_int_equal(enter(&late, "a", T0 + 11 * SEC), GW_SCHEDULER_WAIT);
	assert_int_equal(
	    gw_scheduler_poll(&b, &cfg, T0 + 11 * SEC), GW_SCHEDULER_WAIT);
	gw_scheduler_leave(&a[1], T0 + 12 * SEC);
	assert_int_equal(
	    gw_scheduler_poll(&b, &cfg, T0 + 12 * SEC), GW_SCHEDULER_WAIT);
	assert_int_equal(
	    gw_scheduler_poll(&late, &cfg, T0 + 12 * SEC), GW_SCHEDULER_WAIT);
	gw_scheduler_leave(&a[2], T0 + 13 * SEC);
	/* Drained: b, whose request waited longest, goes first. */
	assert_int_equal(
	    gw_scheduler_poll(&late, &cfg, T0 + 13 * SEC), GW_SCHEDULER_WAIT);
	assert_int_equal(
	    gw_scheduler_poll(&b, &cfg, T0 + 13 * SEC), GW_SCHEDULER_GO);
	assert_int_equal(b.swapped, 1);
	assert_int_equal(b.wait_us, 12 * SEC);
	gw_scheduler_leave(&b, T0 + 14 * SEC);
	assert_int_equal(
	    gw_scheduler_poll(&late, &cfg, T0 + 14 * SEC), GW_SCHEDULER_GO);
	gw_scheduler_leave(&late, T0 + 15 * SEC);
}

/* The queue holds queue_max waiting requests per group, then FULL. */
static void
test_queue_full(void **state)
{
	struct gw_scheduler_ticket a, w[3], x;

	(void)state;
	cfg.sched_queue_max = 2;
	assert_int_equal(enter(&a, "a", T0), GW_SCHEDULER_GO);
	assert_int_equal(enter(&w[0], "b", T0 + 1), GW_SCHEDULER_WAIT);
	assert_int_equal(enter(&w[1], "c", T0 + 2), GW_SCHEDULER_WAIT);
	assert_int_equal(enter(&w[2], "b", T0 + 3), GW_SCHEDULER_FULL);
	assert_int_equal(w[2].slot, 0);
	/* The active model still goes: nothing of it waits. */
	assert_int_equal(enter(&x, "a", T0 + 4), GW_SCHEDULER_GO);
	gw_scheduler_leave(&x, T0 + 5);
	/* A waiter that leaves (its client gone) makes room at once. */
	gw_scheduler_leave(&w[0], T0 + 6);
	assert_int_equal(w[0].wait_us, 5);
	assert_int_equal(enter(&w[0], "b", T0 + 7), GW_SCHEDULER_WAIT);
	gw_scheduler_leave(&a, T0 + 8);
	/* c came before the second b: its turn. */
	assert_int_equal(
	    gw_scheduler_poll(&w[0], &cfg, T0 + 9), GW_SCHEDULER_WAIT);
	assert_int_equal(
	    gw_scheduler_poll(&w[1], &cfg, T0 + 9), GW_SCHEDULER_GO);
	gw_scheduler_leave(&w[1], T0 + 10);
	assert_int_equal(
	    gw_scheduler_poll(&w[0], &cfg, T0 + 11), GW_SCHEDULER_GO);
	gw_scheduler_leave(&w[0], T0 + 12);
}

/* Groups are independent: an embeddings model beside the chat model. */
static void
test_groups(void **state)
{
	struct gw_scheduler_ticket a, b, e;

	(void)state;
	cfg.sched_groups = "a, b; emb";
	assert_int_equal(enter(&a, "a", T0), GW_SCHEDULER_GO);
	assert_int_equal(enter(&e, "emb", T0 + 1), GW_SCHEDULER_GO);
	assert_int_equal(enter(&b, "b", T0 + 2), GW_SCHEDULER_WAIT);
	gw_scheduler_leave(&e, T0 + 3);
	gw_scheduler_leave(&a, T0 + 4);
	assert_int_equal(gw_scheduler_poll(&b, &cfg, T0 + 5), GW_SCHEDULER_GO);
	gw_scheduler_leave(&b, T0 + 6);
}

static void
test_concurrency(void **state)
{
	struct gw_scheduler_ticket a[3];

	(void)state;
	cfg.sched_concurrency = 2;
	assert_int_equal(enter(&a[0], "a", T0), GW_SCHEDULER_GO);
	assert_int_equal(enter(&a[1], "a", T0 + 1), GW_SCHEDULER_GO);
	assert_int_equal(enter(&a[2], "a", T0 + 2), GW_SCHEDULER_WAIT);
	gw_scheduler_leave(&a[0], T0 + 3);
	assert_int_equal(
	    gw_scheduler_poll(&a[2], &cfg, T0 + 4), GW_SCHEDULER_GO);
	gw_scheduler_leave(&a[1], T0 + 5);
	gw_scheduler_leave(&a[2], T0 + 5);
}

static void
test_min_loaded(void **state)
{
	struct gw_scheduler_ticket a, b, a2;

	(void)state;
	cfg.sched_min_loaded_s = 5;
	assert_int_equal(enter(&a, "a", T0), GW_SCHEDULER_GO);
	gw_scheduler_leave(&a, T0 + SEC);
	assert_int_equal(enter(&b, "b", T0 + 2 * SEC), GW_SCHEDULER_WAIT);
	/* a comes back within its residency: no swap. */
	assert_int_equal(enter(&a2, "a", T0 + 3 * SEC), GW_SCHEDULER_GO);
	gw_scheduler_leave(&a2, T0 + 4 * SEC);
	assert_int_equal(
	    gw_scheduler_poll(&b, &cfg, T0 + 4 * SEC), GW_SCHEDULER_WAIT);
	assert_int_equal(
	    gw_scheduler_poll(&b, &cfg, T0 + 5 * SEC), GW_SCHEDULER_GO);
	gw_scheduler_leave(&b, T0 + 6 * SEC);
}

/* A process that died holding slots: they are freed, b goes. */
static void
test_reap_dead(void **state)
{
	struct gw_scheduler_ticket a, b;
	pid_t pid;
	int ws;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		_exit(enter(&a, "a", T0) == GW_SCHEDULER_GO ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &ws, 0), pid);
	assert_int_equal(WEXITSTATUS(ws), 0);
	assert_int_equal(enter(&b, "b", T0 + 2 * SEC), GW_SCHEDULER_GO);
	gw_scheduler_leave(&b, T0 + 3 * SEC);
}

static void
test_status(void **state)
{
	struct gw_scheduler_ticket a, b;
	struct gw_buf out = {0};

	(void)state;
	assert_int_equal(enter(&a, "a", T0), GW_SCHEDULER_GO);
	assert_int_equal(enter(&b, "b\"x", T0 + SEC), GW_SCHEDULER_WAIT);
	gw_scheduler_status(&out, &cfg, T0 + 3 * SEC);
	assert_non_null(strstr(out.p, "\"active\":\"a\""));
	assert_non_null(strstr(out.p, "{\"model\":\"a\",\"in_flight\":1,"
	                              "\"waiting\":0,\"swaps\":0"));
	assert_non_null(strstr(out.p, "{\"model\":\"b\\\"x\",\"in_flight\":0,"
	                              "\"waiting\":1,\"swaps\":0,"
	                              "\"oldest_wait_s\":2.000}"));
	gw_buf_reset(&out, 0);
	gw_scheduler_render_metrics(&out);
	assert_non_null(
	    strstr(out.p, "llmgw_scheduler_queue_depth{model=\"b\\\"x\"} 1\n"));
	assert_non_null(
	    strstr(out.p, "llmgw_scheduler_in_flight{model=\"a\"} 1\n"));
	assert_non_null(strstr(
	    out.p, "llmgw_scheduler_wait_seconds_count{model=\"a\"} 1\n"));
	gw_scheduler_leave(&a, T0 + 4 * SEC);
	assert_int_equal(
	    gw_scheduler_poll(&b, &cfg, T0 + 4 * SEC), GW_SCHEDULER_GO);
	gw_scheduler_leave(&b, T0 + 4 * SEC);
	gw_buf_reset(&out, 0);
	gw_scheduler_render_metrics(&out);
	assert_non_null(
	    strstr(out.p, "llmgw_scheduler_swaps_total{model=\"b\\\"x\"} 1\n"));
	gw_buf_fini(&out);
}

/* llama-swap's /running: an idle group takes what it runs. */
static void
test_running(void **state)
{
	static const char ready_b[] =
	    "{\"running\":[{\"model\":\"b\",\"state\":\"ready\"}]}";
	static const char starting_c[] =
	    "{\"running\":[{\"model\":\"c\",\"state\":\"starting\"}]}";
	struct gw_scheduler_ticket a, b;
	struct gw_buf out = {0};

	(void)state;
	cfg.sched_running_path = "/running";
	assert_int_equal(enter(&a, "a", T0), GW_SCHEDULER_GO);
	/* Busy: nothing to ask. */
	assert_int_equal(gw_scheduler_want_running(&cfg, "a", T0 + 1), 0);
	gw_scheduler_leave(&a, T0 + 2);
	assert_int_equal(gw_scheduler_want_running(&cfg, "a", T0 + 3), 1);
	/* Once a second per group. */
	assert_int_equal(gw_scheduler_want_running(&cfg, "b", T0 + SEC / 2), 0);
	/* Ignored: a group that is not idle, a model still starting, junk. */
	assert_int_equal(enter(&a, "a", T0 + SEC), GW_SCHEDULER_GO);
	gw_scheduler_note_running(&cfg, ready_b, strlen(ready_b), T0 + SEC);
	gw_scheduler_leave(&a, T0 + SEC);
	gw_scheduler_note_running(
	    &cfg, starting_c, strlen(starting_c), T0 + SEC);
	gw_scheduler_note_running(&cfg, "{\"running\":", 11, T0 + SEC);
	gw_scheduler_status(&out, &cfg, T0 + SEC);
	assert_non_null(strstr(out.p, "\"active\":\"a\""));
	/* Idle: b is what runs now, and b's request is no swap. */
	gw_scheduler_note_running(&cfg, ready_b, strlen(ready_b), T0 + 2 * SEC);
	gw_buf_reset(&out, 0);
	gw_scheduler_status(&out, &cfg, T0 + 2 * SEC);
	assert_non_null(strstr(out.p, "\"active\":\"b\""));
	assert_int_equal(enter(&b, "b", T0 + 3 * SEC), GW_SCHEDULER_GO);
	assert_int_equal(b.swapped, 0);
	gw_scheduler_leave(&b, T0 + 4 * SEC);
	/* Off without a path. */
	cfg.sched_running_path = "";
	assert_int_equal(
	    gw_scheduler_want_running(&cfg, "a", T0 + 10 * SEC), 0);
	gw_buf_fini(&out);
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_group_of),
	    T(test_off),
	    T(test_lone_model),
	    T(test_keep_loaded_busy),
	    T(test_fifo_within_model),
	    T(test_max_wait),
	    T(test_queue_full),
	    T(test_groups),
	    T(test_concurrency),
	    T(test_min_loaded),
	    T(test_reap_dead),
	    T(test_status),
	    T(test_running),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
