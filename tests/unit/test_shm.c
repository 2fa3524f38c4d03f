/*
 * Unit tests for lib/shm.c: creation, re-initialisation, areas, attach,
 * and struct gw_shm_lock across processes, owners that die included.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
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
	a = gw_shm_area(s, GW_SHM_AREA_RATELIMIT, 10000, NULL);
	b = gw_shm_area(s, GW_SHM_AREA_METRICS, 5000, NULL);
	assert_non_null(a);
	assert_non_null(b);
	assert_ptr_equal(a, gw_shm_area(s, GW_SHM_AREA_RATELIMIT, 10000, NULL));
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
	a = gw_shm_area(s, GW_SHM_AREA_RATELIMIT, 10000, NULL);
	b = gw_shm_area(s, GW_SHM_AREA_METRICS, 5000, NULL);
	assert_int_equal(atomic_load(a), 42);
	assert_int_equal(atomic_load(b), 7);
	gw_shm_close(s);
	/* A different size for a carved area is refused. */
	s = gw_shm_open(path, 1 << 20, err, sizeof(err));
	assert_null(gw_shm_area(s, GW_SHM_AREA_RATELIMIT, 20000, NULL));
	assert_non_null(gw_shm_area(s, GW_SHM_AREA_METRICS, 5000, NULL));
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
	a = gw_shm_area(s, GW_SHM_AREA_RATELIMIT, 100, NULL);
	atomic_store(a, 42);
	gw_shm_close(s);

	/* A different size re-initialises. */
	s = gw_shm_open(path, 2 << 20, err, sizeof(err));
	assert_non_null(s);
	a = gw_shm_area(s, GW_SHM_AREA_RATELIMIT, 100, NULL);
	assert_int_equal(atomic_load(a), 0);
	atomic_store(a, 43);
	/* So does a damaged header. */
	magic = gw_shm_base(s);
	*magic ^= 1;
	gw_shm_close(s);
	s = gw_shm_open(path, 2 << 20, err, sizeof(err));
	assert_non_null(s);
	a = gw_shm_area(s, GW_SHM_AREA_RATELIMIT, 100, NULL);
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
	assert_null(gw_shm_area(s, GW_SHM_AREA_METRICS, 1 << 20, NULL));
	assert_null(gw_shm_area(s, GW_SHM_AREA_METRICS, 1 << 20, NULL));
	assert_non_null(gw_shm_area(s, GW_SHM_AREA_RATELIMIT, 4096, NULL));
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
			a = gw_shm_area(s, GW_SHM_AREA_METRICS, 64, NULL);
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
	a = gw_shm_area(s, GW_SHM_AREA_METRICS, 64, NULL);
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

/* Shared with children: an anonymous MAP_SHARED page. */
struct lockpage {
	struct gw_shm_lock lock;
	uint64_t counter; /* plain: only touched under lock */
	_Atomic int inits;
	_Atomic int died;
};

static struct lockpage *
lockpage_new(void)
{
	struct lockpage *p = mmap(NULL, sizeof(*p), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	memset(p, 0, sizeof(*p));
	gw_shm_lock_init(&p->lock);
	return p;
}

static int
wait_exit(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* K processes add to a plain counter under the lock: nothing is lost. */
static void
test_lock_exclusion(void **state)
{
	enum { K = 4, N = 20000 };
	struct lockpage *p = lockpage_new();
	pid_t pids[K];
	uint64_t v;
	int i, j;

	(void)state;
	assert_int_equal(gw_shm_lock(&p->lock), 0);
	gw_shm_unlock(&p->lock);
	for (i = 0; i < K; i++) {
		if ((pids[i] = fork()) == 0) {
			for (j = 0; j < N; j++) {
				if (gw_shm_lock(&p->lock) != 0)
					_exit(1);
				v = p->counter;
				if (j % 1000 == 0)
					sched_yield(); /* widen the window */
				p->counter = v + 1;
				gw_shm_unlock(&p->lock);
			}
			_exit(0);
		}
	}
	for (i = 0; i < K; i++)
		assert_int_equal(wait_exit(pids[i]), 0);
	assert_int_equal(p->counter, (uint64_t)K * N);
	munmap(p, sizeof(*p));
}

/*
 * The owner dies holding the lock (_exit, SIGKILL, while another process
 * waits for it): the next holder is told once, repairs, and the lock keeps
 * working. A holder that dies while repairing hands the repair on.
 */
static void
test_lock_dead_owner(void **state)
{
	struct lockpage *p = lockpage_new();
	int sync[2];
	pid_t pid;
	char c;

	(void)state;
	/* _exit without unlocking. */
	if ((pid = fork()) == 0) {
		gw_shm_lock(&p->lock);
		p->counter = 999; /* half an update */
		_exit(0);
	}
	assert_int_equal(wait_exit(pid), 0);
	assert_int_equal(gw_shm_lock(&p->lock), 1);
	p->counter = 0; /* the repair */
	gw_shm_unlock(&p->lock);
	assert_int_equal(gw_shm_lock(&p->lock), 0);
	gw_shm_unlock(&p->lock);

	/* Killed while holding it, by SIGKILL. */
	assert_int_equal(pipe(sync), 0);
	if ((pid = fork()) == 0) {
		gw_shm_lock(&p->lock);
		if (write(sync[1], "x", 1) != 1)
			_exit(1);
		pause();
		_exit(2);
	}
	assert_int_equal(read(sync[0], &c, 1), 1);
	kill(pid, SIGKILL);
	assert_int_equal(wait_exit(pid), 128 + SIGKILL);
	/* The repairer dies too: the next one is told again. */
	if ((pid = fork()) == 0) {
		if (gw_shm_lock(&p->lock) != 1)
			_exit(1);
		_exit(0);
	}
	assert_int_equal(wait_exit(pid), 0);
	assert_int_equal(gw_shm_lock(&p->lock), 1);
	gw_shm_unlock(&p->lock);

	/* We wait in the kernel while the owner dies: woken, and told. */
	if ((pid = fork()) == 0) {
		gw_shm_lock(&p->lock);
		if (write(sync[1], "x", 1) != 1)
			_exit(1);
		usleep(100 * 1000);
		_exit(0);
	}
	assert_int_equal(read(sync[0], &c, 1), 1);
	assert_int_equal(gw_shm_lock(&p->lock), 1);
	assert_int_equal(wait_exit(pid), 0);
	gw_shm_unlock(&p->lock);

	/* And it still excludes: a child waits while we hold it. */
	assert_int_equal(gw_shm_lock(&p->lock), 0);
	if ((pid = fork()) == 0) {
		if (write(sync[1], "x", 1) != 1)
			_exit(1);
		if (gw_shm_lock(&p->lock) != 0 || p->counter != 7)
			_exit(2);
		gw_shm_unlock(&p->lock);
		_exit(0);
	}
	assert_int_equal(read(sync[0], &c, 1), 1);
	usleep(20 * 1000);
	p->counter = 7;
	gw_shm_unlock(&p->lock);
	assert_int_equal(wait_exit(pid), 0);
	close(sync[0]);
	close(sync[1]);
	munmap(p, sizeof(*p));
}

static struct lockpage *init_page;
/* Static, so that a child that dies in init leaks nothing (valgrind). */
static struct gw_shm *tshm;

/* An area's init: count the calls, start the area's lock, mark it. */
static void
area_init(void *area)
{
	uint64_t *u = (void *)((char *)area + sizeof(struct gw_shm_lock));

	atomic_fetch_add(&init_page->inits, 1);
	gw_shm_lock_init(area);
	u[0] = 0x1234;
}

/* An init that dies half-way, holding the region's lock. */
static void
area_init_die(void *area)
{
	memset(area, 0xff, 8192);
	_exit(0);
}

#define AREA_T ((enum gw_shm_area)5)

/* K processes carve one area at once: init runs once, all see it. */
static void
test_area_init(void **state)
{
	enum { K = 8 };
	uint64_t *u;
	pid_t pids[K];
	char err[256];
	int i;

	(void)state;
	init_page = lockpage_new();
	tshm = gw_shm_open(path, 1 << 20, err, sizeof(err));
	assert_non_null(tshm);
	for (i = 0; i < K; i++) {
		if ((pids[i] = fork()) == 0) {
			u = gw_shm_area(tshm, AREA_T, 8192, area_init);
			if (u == NULL)
				_exit(1);
			u = (void *)((char *)u + sizeof(struct gw_shm_lock));
			_exit(u[0] == 0x1234 ? 0 : 2);
		}
	}
	for (i = 0; i < K; i++)
		assert_int_equal(wait_exit(pids[i]), 0);
	assert_int_equal(atomic_load(&init_page->inits), 1);
	u = gw_shm_area(tshm, AREA_T, 8192, area_init);
	assert_non_null(u);
	assert_int_equal(atomic_load(&init_page->inits), 1);
	assert_int_equal(gw_shm_lock((struct gw_shm_lock *)(void *)u), 0);
	gw_shm_unlock((struct gw_shm_lock *)(void *)u);
	gw_shm_close(tshm);
	munmap(init_page, sizeof(*init_page));
}

/* A carver dies in init, holding the region's lock: carved again. */
static void
test_area_dead_carver(void **state)
{
	unsigned char *a, *b;
	char err[256];
	pid_t pid;
	size_t i;

	(void)state;
	init_page = lockpage_new();
	tshm = gw_shm_open(path, 1 << 20, err, sizeof(err));
	assert_non_null(tshm);
	if ((pid = fork()) == 0) {
		gw_shm_area(tshm, AREA_T, 8192, area_init_die);
		_exit(1);
	}
	assert_int_equal(wait_exit(pid), 0);
	a = gw_shm_area(tshm, AREA_T, 8192, area_init);
	assert_non_null(a);
	assert_int_equal(atomic_load(&init_page->inits), 1);
	assert_int_equal(
	    *(uint64_t *)(void *)(a + sizeof(struct gw_shm_lock)), 0x1234);
	for (i = sizeof(struct gw_shm_lock) + 8; i < 8192; i++)
		assert_int_equal(a[i], 0);
	/* The region's lock works on, and no room was lost. */
	b = gw_shm_area(tshm, GW_SHM_AREA_METRICS, 100, NULL);
	assert_ptr_equal(b, a + 8192);
	gw_shm_close(tshm);
	munmap(init_page, sizeof(*init_page));
}

/* Where needle (a C string) is in the first n bytes of p, or NULL. */
static char *
find_str(void *p, size_t n, const char *needle)
{
	size_t k = strlen(needle), i;

	for (i = 0; i + k <= n; i++)
		if (memcmp((char *)p + i, needle, k) == 0)
			return (char *)p + i;
	return NULL;
}

/*
 * A file kept from another boot holds a lock its owner (of that boot)
 * never released, and nothing marked dead: the region is re-initialised,
 * not waited on. Made here by copying a file while a child holds the lock
 * and rewriting the copy's boot id.
 */
static void
test_lock_other_boot(void **state)
{
	static char copy[300];
	unsigned char *a, *base, buf[4096];
	char err[256], boot[64], c;
	int sync[2], fd, in, out;
	ssize_t n;
	pid_t pid;
	char *hit;

	(void)state;
	init_page = lockpage_new();
	fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY);
	if (fd < 0 || (n = read(fd, boot, sizeof(boot) - 1)) < 8) {
		print_message("no boot id: skipped\n");
		if (fd >= 0)
			close(fd);
		return;
	}
	close(fd);
	boot[strcspn(boot, "\n")] = '\0';
	tshm = gw_shm_open(path, 1 << 20, err, sizeof(err));
	assert_non_null(tshm);
	a = gw_shm_area(tshm, AREA_T, 8192, area_init);
	assert_non_null(a);
	assert_int_equal(pipe(sync), 0);
	if ((pid = fork()) == 0) {
		gw_shm_lock((struct gw_shm_lock *)(void *)a);
		if (write(sync[1], "x", 1) != 1)
			_exit(1);
		pause();
		_exit(2);
	}
	assert_int_equal(read(sync[0], &c, 1), 1);
	/* Copy the file while the lock is held. */
	snprintf(copy, sizeof(copy), "%s.copy", path);
	in = open(path, O_RDONLY);
	out = open(copy, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(in >= 0 && out >= 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		assert_int_equal(write(out, buf, (size_t)n), n);
	close(in);
	close(out);
	kill(pid, SIGKILL);
	assert_int_equal(wait_exit(pid), 128 + SIGKILL);
	close(sync[0]);
	close(sync[1]);
	/* The original was marked by the kernel. */
	assert_int_equal(gw_shm_lock((struct gw_shm_lock *)(void *)a), 1);
	gw_shm_unlock((struct gw_shm_lock *)(void *)a);
	gw_shm_close(tshm);

	/* The copy's boot id rewritten: another boot. */
	tshm = gw_shm_open(copy, 1 << 20, err, sizeof(err));
	assert_non_null(tshm);
	base = gw_shm_base(tshm);
	hit = find_str(base, 4096, boot);
	assert_non_null(hit);
	hit[0] = hit[0] == '0' ? '1' : '0';
	gw_shm_close(tshm);
	tshm = gw_shm_open(copy, 1 << 20, err, sizeof(err));
	assert_non_null(tshm);
	assert_non_null(find_str(gw_shm_base(tshm), 4096, boot));
	a = gw_shm_area(tshm, AREA_T, 8192, area_init);
	assert_non_null(a);
	assert_int_equal(atomic_load(&init_page->inits), 2); /* carved anew */
	assert_int_equal(gw_shm_lock((struct gw_shm_lock *)(void *)a), 0);
	gw_shm_unlock((struct gw_shm_lock *)(void *)a);
	gw_shm_close(tshm);
	unlink(copy);
	munmap(init_page, sizeof(*init_page));
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

/* #15, 6: a file that is not ours is refused, with a clear error. */
static void
test_untrusted_files(void **state)
{
	struct gw_shm *s;
	char err[256], link[600];
	int fd;

	(void)state;
	/* A symlink planted where the region goes: refused, target untouched.
	 */
	snprintf(link, sizeof(link), "%s.link", path);
	fd = open(path, O_CREAT | O_RDWR, 0600);
	assert_true(fd >= 0);
	close(fd);
	unlink(link);
	assert_int_equal(symlink(path, link), 0);
	assert_null(gw_shm_open(link, 1 << 20, err, sizeof(err)));
	assert_non_null(strstr(err, "open"));
	unlink(link);
	/* Other users may read or write it: refused until chmod o=. */
	assert_int_equal(chmod(path, 0604), 0);
	assert_null(gw_shm_open(path, 1 << 20, err, sizeof(err)));
	assert_non_null(strstr(err, "lets other users in"));
	assert_int_equal(chmod(path, 0600), 0);
	s = gw_shm_open(path, 1 << 20, err, sizeof(err));
	assert_non_null(s);
	gw_shm_close(s);
	/* Another user's file (root can make one): refused. */
	if (geteuid() == 0) {
		assert_int_equal(chown(path, 65534, 65534), 0);
		assert_null(gw_shm_open(path, 1 << 20, err, sizeof(err)));
		assert_non_null(strstr(err, "owned by uid 65534"));
		assert_int_equal(chown(path, 0, 0), 0);
	}
	unlink(path);
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
	        test_untrusted_files, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_concurrent_init, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_attach_fork, setup, teardown),
	    cmocka_unit_test(test_lock_exclusion),
	    cmocka_unit_test(test_lock_dead_owner),
	    cmocka_unit_test_setup_teardown(test_area_init, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_area_dead_carver, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_lock_other_boot, setup, teardown),
	    cmocka_unit_test(test_hash),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
