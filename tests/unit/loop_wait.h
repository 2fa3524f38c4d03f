/*
 * loop_wait.h: the test's thread waits for what jobs on the event loop's
 * thread signal (cmocka asserts only on the test's thread). Included by
 * the unit tests that post work to gw_loop_get().
 */
#ifndef GW_TEST_LOOP_WAIT_H
#define GW_TEST_LOOP_WAIT_H

#include <pthread.h>
#include <time.h>

static pthread_mutex_t lw_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t lw_cv = PTHREAD_COND_INITIALIZER;
static int lw_count;

/* From the loop thread: one more thing done. */
static void
loop_signal(void)
{
	pthread_mutex_lock(&lw_mu);
	lw_count++;
	pthread_cond_signal(&lw_cv);
	pthread_mutex_unlock(&lw_mu);
}

/* Start counting from 0. */
static void
loop_reset(void)
{
	pthread_mutex_lock(&lw_mu);
	lw_count = 0;
	pthread_mutex_unlock(&lw_mu);
}

/* Wait (at most 5 s) until loop_signal was called n times since reset. */
static void
loop_wait(int n)
{
	struct timespec dl;
	int got;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 5;
	pthread_mutex_lock(&lw_mu);
	while (lw_count < n && pthread_cond_timedwait(&lw_cv, &lw_mu, &dl) == 0)
		;
	got = lw_count;
	pthread_mutex_unlock(&lw_mu);
	assert_true(got >= n);
}

#endif /* GW_TEST_LOOP_WAIT_H */
