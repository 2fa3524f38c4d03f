/*
 * shm.c: the per-host shared memory region, its header and its areas, and
 * the one lock its users share (struct gw_shm_lock).
 */
#include "shm.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define SHM_MAGIC UINT64_C(0x4c4c4d4757534d31) /* "LLMGWSM1" */
#define SHM_HDR_SIZE 4096
#define SHM_MIN_SIZE ((size_t)64 << 10)
#define SHM_ALIGN 4096
#define SHM_BOOT_ID "/proc/sys/kernel/random/boot_id"
#define LOCK_MAGIC 0x6c6f636bu /* "lock" */
/* area_dir.off: 0 not carved, AREA_FAILED no room, else the offset. */
#define AREA_FAILED UINT64_MAX

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2,
    "64-bit atomics must be lock-free to live in shared memory");

/* Written under shm_hdr.lock; off is read without it (acquire). */
struct area_dir {
	_Atomic uint64_t off;
	_Atomic uint64_t size; /* as requested, before rounding */
};

/* The first page of the file. magic is written last, with release. */
struct shm_hdr {
	_Atomic uint64_t magic;
	uint32_t version;
	uint32_t hdr_size;
	uint64_t size;
	uint64_t used; /* bytes handed out, from the file start; under lock */
	int64_t created_real_us;
	int32_t creator_pid;
	uint32_t pad;
	char boot_id[40];        /* "" when unknown */
	struct gw_shm_lock lock; /* carving areas */
	struct area_dir area[GW_SHM_AREA_MAX];
};
_Static_assert(sizeof(struct shm_hdr) <= SHM_HDR_SIZE, "header too big");

struct gw_shm {
	void *base;
	size_t size;
	char *path;
	_Atomic(void *) cache[GW_SHM_AREA_MAX];
	atomic_int failed[GW_SHM_AREA_MAX];
};

static _Atomic(struct gw_shm *) g_shm;
static pthread_mutex_t attach_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int cached_pid;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void
fork_prepare(void)
{
	pthread_mutex_lock(&attach_lock);
}

static void
fork_parent(void)
{
	pthread_mutex_unlock(&attach_lock);
}

static void
fork_child(void)
{
	pthread_mutex_unlock(&attach_lock);
	atomic_store_explicit(&cached_pid, 0, memory_order_relaxed);
}

static void
register_atfork(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

pid_t
gw_shm_pid(void)
{
	int p = atomic_load_explicit(&cached_pid, memory_order_relaxed);

	if (p != 0)
		return (pid_t)p;
	pthread_once(&atfork_once, register_atfork);
	p = (int)getpid();
	atomic_store_explicit(&cached_pid, p, memory_order_relaxed);
	return (pid_t)p;
}

int
gw_shm_pid_dead(pid_t pid)
{
	int saved = errno, dead;

	/* kill(0 or negative) would signal a process group. */
	if (pid <= 0)
		return 1;
	dead = kill(pid, 0) == -1 && errno == ESRCH;
	errno = saved;
	return dead;
}

void
gw_shm_lock_init(struct gw_shm_lock *l)
{
	pthread_mutexattr_t at;
	int rc;

	memset(l, 0, sizeof(*l));
	rc = pthread_mutexattr_init(&at);
	GW_ASSERT(rc == 0);
	rc = pthread_mutexattr_setpshared(&at, PTHREAD_PROCESS_SHARED);
	if (rc == 0)
		rc = pthread_mutexattr_setrobust(&at, PTHREAD_MUTEX_ROBUST);
	if (rc == 0)
		rc = pthread_mutex_init(&l->mu, &at);
	pthread_mutexattr_destroy(&at);
	GW_ASSERT(rc == 0);
	l->magic = LOCK_MAGIC;
}

int
gw_shm_lock(struct gw_shm_lock *l)
{
	int rc;

	GW_ASSERT(l->magic == LOCK_MAGIC);
	rc = pthread_mutex_lock(&l->mu);
	if (rc == 0)
		return 0;
	if (rc == EOWNERDEAD) {
		/* Ours now, marked inconsistent until gw_shm_unlock. */
		l->repair = 1;
		return 1;
	}
	/*
	 * ENOTRECOVERABLE: someone unlocked without making it consistent,
	 * which gw_shm_unlock never does. The lock lives in the file: remove
	 * it (every family restarted together) to start over.
	 */
	gw_log_err(NULL, "shm", "lock: %s", strerror(rc));
	GW_ASSERT(rc == 0);
	return 0;
}

void
gw_shm_unlock(struct gw_shm_lock *l)
{
	int rc;

	if (l->repair) {
		l->repair = 0;
		rc = pthread_mutex_consistent(&l->mu);
		GW_ASSERT(rc == 0);
	}
	rc = pthread_mutex_unlock(&l->mu);
	GW_ASSERT(rc == 0);
}

/* The kernel's id of this boot, or "" when it cannot be read. */
static void
read_boot_id(char *out, size_t n)
{
	ssize_t r = -1;
	int fd;

	if ((fd = open(SHM_BOOT_ID, O_RDONLY | O_CLOEXEC)) >= 0) {
		r = read(fd, out, n - 1);
		close(fd);
	}
	if (r < 0)
		r = 0;
	out[r] = '\0';
	out[strcspn(out, "\n")] = '\0';
}

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    GW_PRINTF(3, 4);

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/*
 * Create or check the header. Runs under flock(LOCK_EX) on a descriptor of
 * our own, so exactly one process at a time gets here; a process that dies
 * half-way leaves magic unwritten and the next one starts over. The boot
 * ids are compared only when both are known.
 */
static void
init_header(struct shm_hdr *h, size_t size, const char *path, const char *boot)
{
	int same_boot;

	same_boot = boot[0] == '\0' || h->boot_id[0] == '\0' ||
	            strncmp(h->boot_id, boot, sizeof(h->boot_id)) == 0;
	if (atomic_load_explicit(&h->magic, memory_order_acquire) ==
	        SHM_MAGIC &&
	    h->version == GW_SHM_LAYOUT_VERSION &&
	    h->hdr_size == SHM_HDR_SIZE && h->size == size && same_boot)
		return;
	if (atomic_load_explicit(&h->magic, memory_order_relaxed) != 0)
		gw_log_warn(NULL, "shm",
		    "%s: header does not match (version %u size %llu%s, "
		    "want %d and %zu); re-initialising",
		    path, h->version, (unsigned long long)h->size,
		    same_boot ? "" : ", from another boot",
		    GW_SHM_LAYOUT_VERSION, size);
	memset((void *)h, 0, size);
	h->version = GW_SHM_LAYOUT_VERSION;
	h->hdr_size = SHM_HDR_SIZE;
	h->size = size;
	h->used = SHM_HDR_SIZE;
	h->created_real_us = gw_now_real_us();
	h->creator_pid = (int32_t)gw_shm_pid();
	snprintf(h->boot_id, sizeof(h->boot_id), "%s", boot);
	gw_shm_lock_init(&h->lock);
	atomic_store_explicit(&h->magic, SHM_MAGIC, memory_order_release);
}

struct gw_shm *
gw_shm_open(const char *path, size_t size, char *err, size_t errlen)
{
	struct gw_shm *shm = NULL;
	struct stat st;
	void *base = MAP_FAILED;
	char boot[40];
	int fd = -1, rc;

	if (size < SHM_MIN_SIZE) {
		seterr(err, errlen, "size %zu below %zu", size, SHM_MIN_SIZE);
		goto out;
	}
	size = (size + SHM_ALIGN - 1) / SHM_ALIGN * SHM_ALIGN;
	/* Never through a symlink someone else planted. */
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0660);
	if (fd < 0) {
		seterr(err, errlen, "open %s: %s", path, strerror(errno));
		goto out;
	}
	while ((rc = flock(fd, LOCK_EX)) < 0 && errno == EINTR)
		;
	if (rc < 0 || fstat(fd, &st) < 0) {
		seterr(err, errlen, "lock %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		seterr(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	/*
	 * The region steers rate limits and metrics: a file another user
	 * owns, or anyone may read or write, is not ours.
	 */
	if (st.st_uid != geteuid()) {
		seterr(err, errlen,
		    "%s: owned by uid %u, not by this user (uid %u): remove it "
		    "or point [gateway] shm_path elsewhere",
		    path, (unsigned)st.st_uid, (unsigned)geteuid());
		goto out;
	}
	if ((st.st_mode & 0007) != 0) {
		seterr(err, errlen,
		    "%s: mode %04o lets other users in: chmod o= it, or remove "
		    "it",
		    path, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	if ((size_t)st.st_size < size) {
		if (ftruncate(fd, (off_t)size) < 0) {
			seterr(err, errlen, "ftruncate %s: %s", path,
			    strerror(errno));
			goto out;
		}
		/* Reserve the pages now: a full tmpfs must fail here, not
		 * with SIGBUS in the middle of a request. */
		rc = posix_fallocate(fd, 0, (off_t)size);
		if (rc != 0 && rc != EOPNOTSUPP && rc != EINVAL) {
			seterr(err, errlen, "fallocate %s: %s", path,
			    strerror(rc));
			goto out;
		}
	}
	base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		seterr(err, errlen, "mmap %s: %s", path, strerror(errno));
		goto out;
	}
	read_boot_id(boot, sizeof(boot));
	init_header(base, size, path, boot);
	shm = gw_xcalloc(1, sizeof(*shm));
	shm->base = base;
	shm->size = size;
	shm->path = gw_xstrdup(path);
	base = MAP_FAILED;
out:
	if (base != MAP_FAILED)
		munmap(base, size);
	if (fd >= 0) {
		/*
		 * Unlock explicitly: the mapping keeps the open file alive,
		 * and with it a flock that close() alone would not drop.
		 */
		flock(fd, LOCK_UN);
		close(fd);
	}
	return shm;
}

void *
gw_shm_base(const struct gw_shm *shm)
{
	return shm->base;
}

size_t
gw_shm_size(const struct gw_shm *shm)
{
	return shm->size;
}

static uint64_t
round_up(uint64_t n)
{
	return (n + SHM_ALIGN - 1) / SHM_ALIGN * SHM_ALIGN;
}

/*
 * After a carver died holding the lock. Nothing it wrote is published, but
 * it may have moved the cursor (leaking the space) and written into the
 * space after it, which must be zero: the cursor becomes the end of the
 * last published area and everything after it is zeroed again.
 */
static void
repair_carve(struct gw_shm *shm)
{
	struct shm_hdr *h = shm->base;
	uint64_t end = SHM_HDR_SIZE, off;
	int i;

	for (i = 0; i < GW_SHM_AREA_MAX; i++) {
		off =
		    atomic_load_explicit(&h->area[i].off, memory_order_relaxed);
		if (off != 0 && off != AREA_FAILED &&
		    off + round_up(atomic_load(&h->area[i].size)) > end)
			end = off + round_up(atomic_load(&h->area[i].size));
	}
	h->used = end;
	memset((char *)shm->base + end, 0, shm->size - end);
}

/*
 * Carve area id under the header lock: its offset, or AREA_FAILED. The
 * space after the cursor is zero (the whole file is zeroed when the header
 * is initialised, and repair_carve zeroes it again after a dead carver).
 */
static uint64_t
carve_locked(
    struct gw_shm *shm, enum gw_shm_area id, size_t size, void (*init)(void *))
{
	struct shm_hdr *h = shm->base;
	struct area_dir *d = &h->area[id];
	uint64_t want = round_up(size), o = h->used;

	if (want > shm->size || o > shm->size - want) {
		gw_log_err(NULL, "shm",
		    "%s: no room for area %d (%zu bytes, %llu used of %zu)",
		    shm->path, (int)id, size, (unsigned long long)o, shm->size);
		atomic_store_explicit(
		    &d->off, AREA_FAILED, memory_order_release);
		return AREA_FAILED;
	}
	if (init != NULL)
		init((char *)shm->base + o);
	atomic_store_explicit(&d->size, size, memory_order_relaxed);
	h->used = o + want;
	atomic_store_explicit(&d->off, o, memory_order_release);
	return o;
}

/* The slow path of gw_shm_area: returns the area's offset, or 0. */
static uint64_t
carve(
    struct gw_shm *shm, enum gw_shm_area id, size_t size, void (*init)(void *))
{
	struct shm_hdr *h = shm->base;
	struct area_dir *d = &h->area[id];
	uint64_t off;

	off = atomic_load_explicit(&d->off, memory_order_acquire);
	if (off == 0) {
		if (gw_shm_lock(&h->lock))
			repair_carve(shm);
		off = atomic_load_explicit(&d->off, memory_order_relaxed);
		if (off == 0)
			off = carve_locked(shm, id, size, init);
		gw_shm_unlock(&h->lock);
	}
	if (off == AREA_FAILED)
		return 0;
	/* Read back from a file: never trusted past the mapping's end. */
	if (off < SHM_HDR_SIZE || off % SHM_ALIGN != 0 || off > shm->size ||
	    round_up(size) > shm->size - off) {
		gw_log_err(NULL, "shm",
		    "%s: area %d lies outside the region (offset %llu, %zu "
		    "bytes of %zu): refusing it",
		    shm->path, (int)id, (unsigned long long)off, size,
		    shm->size);
		return 0;
	}
	if (atomic_load_explicit(&d->size, memory_order_relaxed) != size) {
		gw_log_err(NULL, "shm",
		    "%s: area %d has %llu bytes, want %zu: bump "
		    "GW_SHM_LAYOUT_VERSION",
		    shm->path, (int)id,
		    (unsigned long long)atomic_load(&d->size), size);
		return 0;
	}
	return off;
}

void *
gw_shm_area(struct gw_shm *shm, enum gw_shm_area id, size_t size,
    void (*init)(void *area))
{
	void *p;
	uint64_t off;

	GW_ASSERT((unsigned)id < GW_SHM_AREA_MAX && size > 0);
	p = atomic_load_explicit(&shm->cache[id], memory_order_acquire);
	if (p != NULL)
		return p;
	if (atomic_load_explicit(&shm->failed[id], memory_order_relaxed))
		return NULL;
	off = carve(shm, id, size, init);
	if (off == 0) {
		atomic_store(&shm->failed[id], 1);
		return NULL;
	}
	p = (char *)shm->base + off;
	atomic_store_explicit(&shm->cache[id], p, memory_order_release);
	return p;
}

void
gw_shm_close(struct gw_shm *shm)
{
	if (shm == NULL)
		return;
	munmap(shm->base, shm->size);
	free(shm->path);
	free(shm);
}

enum gw_status
gw_shm_attach(const char *path)
{
	struct gw_shm *s;
	enum gw_status st = GW_OK;
	char err[256];

	pthread_once(&atfork_once, register_atfork);
	s = atomic_load_explicit(&g_shm, memory_order_acquire);
	if (s == NULL) {
		pthread_mutex_lock(&attach_lock);
		s = atomic_load_explicit(&g_shm, memory_order_acquire);
		if (s == NULL) {
			s = gw_shm_open(path, GW_SHM_SIZE, err, sizeof(err));
			if (s == NULL) {
				gw_log_err(NULL, "shm", "%s", err);
				st = GW_E_INTERNAL;
			} else {
				atomic_store_explicit(
				    &g_shm, s, memory_order_release);
			}
		}
		pthread_mutex_unlock(&attach_lock);
	}
	if (s != NULL && strcmp(s->path, path) != 0) {
		gw_log_err(NULL, "shm",
		    "%s already mapped; keeping it instead of %s (restart to "
		    "change shm_path)",
		    s->path, path);
		st = GW_E_INVALID;
	}
	return st;
}

static uint64_t
fmix64(uint64_t h)
{
	h ^= h >> 33;
	h *= UINT64_C(0xff51afd7ed558ccd);
	h ^= h >> 33;
	h *= UINT64_C(0xc4ceb9fe1a85ec53);
	h ^= h >> 33;
	return h;
}

/* Eight bytes a step, each multiplied into the state, then a finaliser. */
uint64_t
gw_shm_hash(const void *p, size_t n, uint64_t seed)
{
	const unsigned char *s = p;
	const uint64_t k1 = UINT64_C(0x9e3779b97f4a7c15);
	const uint64_t k2 = UINT64_C(0xbf58476d1ce4e5b9);
	uint64_t h = seed ^ ((uint64_t)n * k1), w;

	for (; n >= 8; s += 8, n -= 8) {
		memcpy(&w, s, 8);
		w *= k2;
		w ^= w >> 31;
		h = (h ^ w) * k1;
		h = (h << 27) | (h >> 37);
	}
	if (n > 0) {
		w = 0;
		memcpy(&w, s, n);
		w *= k2;
		w ^= w >> 31;
		h = (h ^ w) * k1;
	}
	return fmix64(h);
}

struct gw_shm *
gw_shm_get(void)
{
	return atomic_load_explicit(&g_shm, memory_order_acquire);
}

void
gw_shm_detach(void)
{
	struct gw_shm *s;

	pthread_mutex_lock(&attach_lock);
	s = atomic_exchange(&g_shm, NULL);
	pthread_mutex_unlock(&attach_lock);
	gw_shm_close(s);
}
