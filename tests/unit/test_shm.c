/* Unit tests for lib/shm.c: creation, re-initialisation, areas, attach. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm_fixture.h"

static int
setup(void **state)
{
	(void)state;
	if (shm_fixture_file("shm") != 0)
		return -1;
	unlink(path); /* gw_shm_open creates it */
	return 0;
}

static void
test_create_reopen(void **state)
{
	struct gw_shm *s;
	struct stat st;
	_Atomic uint64_t *a, *b;
	char err[256];

	(void)state;
	s = gw_shm_open(path, 1 << 20, err, sizeof(err));
	assert_non_null(s);
	assert_int_equal(gw_shm_size(s), 1 << 20);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 1 << 20);
	a = gw_shm_area(s, GW_SHM_AREA_RATELIMIT, 10000);
	b = gw_shm_area(s, GW_SHM_AREA_METRICS, 5000);
	assert_non_null(a);
	assert_non_null(b);
	assert_ptr_equal(a, gw_shm_area(s, GW_SHM_AREA_RATELIMIT, 10000));
	/* page-aligned, after the header, not overlapping */
	assert_int_equal(((char *)a - (char *)gw_shm_base(s)) % 4096, 0);
	assert_true((char *)a - (char *)gw_shm_base(s) >= 4096);
	assert_true((char *)b >= (char *)a + 10000);
	assert_int_equal(atomic_load(a), 0);
	atomic_store(a, 42);
	atomic_store(b, 7);
	gw_shm_close(s);

	/* Same size and version: the data survives. */
	s = gw_shm_open(path, 1 << 20, err, sizeof(err));
	assert_non_null(s);
	a = gw_shm_area(s, GW_SHM_AREA_RATELIMIT, 10000);
	b = gw_shm_area(s, GW_SHM_AREA_METRICS, 5000);
	assert_int_equal(atomic_load(a), 42);
	assert_int_equal(atomic_load(b), 7);
	gw_shm_close(s);
	/* A different size for a carved area is refused. */
	s = gw_shm_open(path, 1 << 20, err, sizeof(err));
	assert_null(gw_shm_area(s, GW_SHM_AREA_RATELIMIT, 20000));
	assert_non_null(gw_shm_area(s, GW_SHM_AREA_METRICS, 5000));
	gw_shm_close(s);
}

static void
test_reinit(void **state)
{
	struct gw_shm *s;
	_Atomic uint64_t *a;
	uint64_t *magic;
	char err[256];

	(void)state;
	s = gw_shm_open(path, 1 << 20, err, sizeof(err));
	a = gw_shm_area(s, GW_SHM_AREA_RATELIMIT, 100);
	atomic_store(a, 42);
	gw_shm_close(s);

	/* A different size re-initialises. */
	s = gw_shm_open(path, 2 << 20, err, sizeof(err));
	assert_non_null(s);
	a = gw_shm_area(s, GW_SHM_AREA_RATELIMIT, 100);
	assert_int_equal(atomic_load(a), 0);
	atomic_store(a, 43);
	/* So does a damaged header. */
	magic = gw_shm_base(s);
	*magic ^= 1;
	gw_shm_close(s);
	s = gw_shm_open(path, 2 << 20, err, sizeof(err));
	assert_non_null(s);
	a = gw_shm_area(s, GW_SHM_AREA_RATELIMIT, 100);
	assert_int_equal(atomic_load(a), 0);
	gw_shm_close(s);
}

static void
test_errors(void **state)
{
	struct gw_shm *s;
	char err[256];

	(void)state;
	assert_null(gw_shm_open(path, 100, err, sizeof(err)));
	assert_non_null(strstr(err, "below"));
	assert_null(
	    gw_shm_open("/nonexistent-dir/x", 1 << 20, err, sizeof(err)));
	assert_non_null(strstr(err, "open"));
	assert_null(gw_shm_open("/tmp", 1 << 20, err, sizeof(err)));
	/* No room: the area is refused, repeatedly, without crashing. */
	s = gw_shm_open(path, 64 << 10, err, sizeof(err));
	assert_non_null(s);
	assert_null(gw_shm_area(s, GW_SHM_AREA_METRICS, 1 << 20));
	assert_null(gw_shm_area(s, GW_SHM_AREA_METRICS, 1 << 20));
	assert_non_null(gw_shm_area(s, GW_SHM_AREA_RATELIMIT, 4096));
	gw_shm_close(s);
}

/* K processes open a new file at once: one initialises, none wipes. */
static void
test_concurrent_init(void **state)
{
	enum { K = 12 };
	struct gw_shm *s;
	_Atomic uint64_t *a;
	int go[2], i, status;
	pid_t pids[K];
	char err[256], c;

	(void)state;
	assert_int_equal(pipe(go), 0);
	for (i = 0; i < K; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			close(go[1]);
			if (read(go[0], &c, 1) != 0)
				_exit(2);
			s = gw_shm_open(path, 1 << 20, err, sizeof(err));
			if (s == NULL)
				_exit(3);
			a = gw_shm_area(s, GW_SHM_AREA_METRICS, 64);
			if (a == NULL)
				_exit(4);
			atomic_fetch_add(a, 1);
			gw_shm_close(s);
			_exit(0);
		}
	}
	close(go[0]);
	close(go[1]); /* everyone starts now */
	for (i = 0; i < K; i++) {
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	s = gw_shm_open(path, 1 << 20, err, sizeof(err));
	a = gw_shm_area(s, GW_SHM_AREA_METRICS, 64);
	assert_int_equal(atomic_load(a), K);
	gw_shm_close(s);
}

static void
test_attach_fork(void **state)
{
	struct gw_shm *s;
	int status;
	pid_t pid;

	(void)state;
	assert_null(gw_shm_get());
	assert_int_equal(gw_shm_attach(path), GW_OK);
	s = gw_shm_get();
	assert_non_null(s);
	assert_int_equal(gw_shm_size(s), GW_SHM_SIZE);
	assert_int_equal(gw_shm_attach(path), GW_OK);
	assert_ptr_equal(gw_shm_get(), s);
	assert_int_equal(gw_shm_attach("/tmp/other-path"), GW_E_INVALID);
	assert_ptr_equal(gw_shm_get(), s);
	assert_int_equal(gw_shm_pid(), getpid());
	pid = fork();
	if (pid == 0) {
		/* Inherited mapping; attach again is a no-op; pid refreshed. */
		if (gw_shm_attach(path) != GW_OK || gw_shm_get() != s)
			_exit(1);
		if (gw_shm_pid() != getpid())
			_exit(2);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_false(gw_shm_pid_dead(getpid()));
	assert_true(gw_shm_pid_dead(pid));
	assert_true(gw_shm_pid_dead(0));
}

static void
test_hash(void **state)
{
	(void)state;
	assert_int_equal(gw_shm_hash("abc", 3, 1), gw_shm_hash("abc", 3, 1));
	assert_int_not_equal(
	    gw_shm_hash("abc", 3, 1), gw_shm_hash("abc", 3, 2));
	assert_int_not_equal(
	    gw_shm_hash("abcdefgh1", 9, 1), gw_shm_hash("abcdefgh2", 9, 1));
	assert_int_not_equal(gw_shm_hash("", 0, 1), gw_shm_hash("\0", 1, 1));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_create_reopen, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reinit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_concurrent_init, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_attach_fork, setup, teardown),
	    cmocka_unit_test(test_hash),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
