/* Unit tests for lib/evloop.c: posting, deferral, timers, fd watches. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "evloop.h"
#include "loop_wait.h"

/* Post fn(arg) and wait (at most 5 s) until it, or what it set up, signals. */
static void
run_and_wait(struct gw_loop *l, void (*fn)(void *), void *arg)
{
	loop_reset();
	gw_loop_post(l, fn, arg);
	loop_wait(1);
}

struct trace {
	struct gw_loop *l;
	int order[8];
	int n;
	int mine;
};

static void
note_mine(void *arg)
{
	struct trace *t = arg;

	t->mine = gw_loop_is_mine(t->l);
	loop_signal();
}

static void
test_post_runs_on_the_loop_thread(void **state)
{
	struct gw_loop *l = gw_loop_get();
	struct trace t = {.l = l};

	(void)state;
	assert_non_null(l);
	assert_ptr_equal(gw_loop_get(), l); /* one per process */
	assert_false(gw_loop_is_mine(l));
	run_and_wait(l, note_mine, &t);
	assert_true(t.mine);
}

static void
later_b(void *arg)
{
	struct trace *t = arg;

	t->order[t->n++] = 2;
	loop_signal();
}

static void
later_a(void *arg)
{
	struct trace *t = arg;

	/* Posted from the loop: runs after this job, not inside it. */
	gw_loop_post(t->l, later_b, t);
	t->order[t->n++] = 1;
}

static void
test_post_from_the_loop_runs_after(void **state)
{
	struct trace t = {.l = gw_loop_get()};

	(void)state;
	run_and_wait(t.l, later_a, &t);
	assert_int_equal(t.n, 2);
	assert_int_equal(t.order[0], 1);
	assert_int_equal(t.order[1], 2);
}

struct timers {
	struct trace *t;
	struct gw_loop_timer tm[4];
	int id[4];
};

static struct timers tms;

static void
fired(void *arg)
{
	int *id = arg;

	tms.t->order[tms.t->n++] = *id;
	if (tms.t->n == 3)
		loop_signal();
}

static void
arm(void *arg)
{
	struct trace *t = arg;
	static const int64_t in_us[4] = {30000, 10000, 20000, 15000};
	int i;

	tms.t = t;
	for (i = 0; i < 4; i++) {
		tms.id[i] = i + 1;
		tms.tm[i].fn = fired;
		tms.tm[i].arg = &tms.id[i];
		gw_loop_timer_set(t->l, &tms.tm[i], in_us[i]);
	}
	/* Disarmed: never fires. Re-armed: moves. */
	gw_loop_timer_set(t->l, &tms.tm[3], -1);
	gw_loop_timer_set(t->l, &tms.tm[1], 25000);
}

static void
test_timers_fire_in_time_order(void **state)
{
	struct trace t = {.l = gw_loop_get()};

	(void)state;
	run_and_wait(t.l, arm, &t);
	usleep(30000); /* the disarmed one would have fired by now */
	assert_int_equal(t.n, 3);
	assert_int_equal(t.order[0], 3); /* 20 ms */
	assert_int_equal(t.order[1], 2); /* moved to 25 ms */
	assert_int_equal(t.order[2], 1); /* 30 ms */
	assert_int_equal(tms.tm[0].due_us, 0);
}

/* As arm, then keep the loop busy past every due time: all fire late. */
static void
arm_late(void *arg)
{
	arm(arg);
	usleep(40000);
}

static void
test_late_timers_fire_in_time_order(void **state)
{
	struct trace t = {.l = gw_loop_get()};

	(void)state;
	run_and_wait(t.l, arm_late, &t);
	assert_int_equal(t.n, 3);
	assert_int_equal(t.order[0], 3); /* due at 20 ms */
	assert_int_equal(t.order[1], 2); /* 25 ms, armed last */
	assert_int_equal(t.order[2], 1); /* 30 ms */
}

struct piped {
	struct gw_loop *l;
	struct gw_loop_io io;
	char got[16];
	int events;
	uint32_t mask;
	enum gw_status watch_st;
};

static void
on_readable(void *arg, uint32_t events)
{
	struct piped *p = arg;
	ssize_t n = read(p->io.fd, p->got, sizeof(p->got) - 1);

	/* Checked by the test's thread: cmocka asserts only there. */
	p->events++;
	p->mask = events;
	p->got[n > 0 ? n : 0] = '\0';
	gw_loop_watch(p->l, &p->io, 0);
	loop_signal();
}

static void
watch(void *arg)
{
	struct piped *p = arg;

	p->watch_st = gw_loop_watch(p->l, &p->io, EPOLLIN);
	loop_signal();
}

static void
test_watch_delivers_readiness(void **state)
{
	struct piped p = {.l = gw_loop_get()};
	int fds[2];

	(void)state;
	assert_int_equal(pipe(fds), 0);
	p.io.fd = fds[0];
	p.io.fn = on_readable;
	p.io.arg = &p;
	run_and_wait(p.l, watch, &p);
	assert_int_equal(p.watch_st, GW_OK);
	loop_reset();
	assert_int_equal(write(fds[1], "ping", 4), 4);
	loop_wait(1);
	assert_string_equal(p.got, "ping");
	assert_int_equal(p.events, 1);
	assert_true(p.mask & EPOLLIN);
	assert_int_equal(p.io.events, 0); /* unwatched in its callback */
	close(fds[0]);
	close(fds[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_post_runs_on_the_loop_thread),
	    cmocka_unit_test(test_post_from_the_loop_runs_after),
	    cmocka_unit_test(test_timers_fire_in_time_order),
	    cmocka_unit_test(test_late_timers_fire_in_time_order),
	    cmocka_unit_test(test_watch_delivers_readiness),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
