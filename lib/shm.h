/*
 * shm.h: one shared memory region per host, a file mapped MAP_SHARED by
 * every process of every route family, for state that must hold across
 * all workers (rate limits, metrics). Hot paths use lock-free atomics. The
 * few slow paths that write more than one word where other processes look
 * (carving an area, claiming a rate-limit or metric slot) hold a
 * struct gw_shm_lock, a process-shared robust mutex, for a few stores; no
 * lock is ever held across a request.
 *
 * Layout: a 4 KiB header {magic, layout version, size, boot id, lock,
 * carve cursor, area directory}, then page-aligned areas carved on first
 * use, one per enum gw_shm_area. A new file, or one whose header does not
 * match (magic, GW_SHM_LAYOUT_VERSION, size or boot id), is zeroed and
 * re-initialised under flock(2), so exactly one process initialises it.
 * Areas start zeroed (their users treat all-zero as the empty state) and
 * are then handed to the init function their user passes, once.
 *
 * Bump GW_SHM_LAYOUT_VERSION whenever an area's layout changes. A changed
 * layout or size re-initialises the file: restart every family together.
 *
 * Dead lock holders: the kernel marks a robust mutex whose owner exits
 * (also by SIGKILL) as it tears the thread down, so the next locker is told
 * (gw_shm_lock returns 1) whatever became of the owner's tid. Only an owner
 * that never exited in this kernel goes unmarked: a file kept from a
 * previous boot (a disk path instead of /dev/shm) or copied while locked.
 * The header records /proc/sys/kernel/random/boot_id, and a region from
 * another boot is re-initialised like one of another layout (its locks may
 * name owners that will never be marked dead, and its CLOCK_MONOTONIC
 * times are from another clock).
 */
#ifndef GW_SHM_H
#define GW_SHM_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"

#define GW_SHM_LAYOUT_VERSION 4
/* The size gw_shm_attach maps: room for every area below with headroom. */
#define GW_SHM_SIZE ((size_t)16 << 20)

enum gw_shm_area {
	GW_SHM_AREA_RATELIMIT = 0,
	GW_SHM_AREA_METRICS,
	GW_SHM_AREA_CLIENTS,   /* ratelimit.c: one bucket per client source */
	GW_SHM_AREA_SCHEDULER, /* scheduler.c: swap groups, their queues */
	GW_SHM_AREA_MAX = 8
};

struct gw_shm;

/*
 * A lock for processes sharing the region: a pthread mutex made
 * PTHREAD_PROCESS_SHARED and PTHREAD_MUTEX_ROBUST. It lives in
 * the region (or other MAP_SHARED memory); its fields are private.
 */
struct gw_shm_lock {
	pthread_mutex_t mu;
	uint32_t magic;  /* set by gw_shm_lock_init */
	uint32_t repair; /* 1 while a holder repairs after a dead owner */
};

/*
 * Open or create the file at path, size it to size bytes (at least 64 KiB)
 * and map it shared, initialising the header once across processes.
 * Returns NULL with a message in err (errlen bytes, may be 0) on failure.
 * Free with gw_shm_close.
 */
struct gw_shm *gw_shm_open(
    const char *path, size_t size, char *err, size_t errlen) GW_NONNULL(1);
/* The start of the mapping (the header) and its size; borrowed. */
void *gw_shm_base(const struct gw_shm *shm) GW_NONNULL(1);
size_t gw_shm_size(const struct gw_shm *shm) GW_NONNULL(1);
/*
 * The area id of size bytes, carved (zeroed, page-aligned) by whichever
 * process asks first and found by the others; lock-free and, after the
 * first call per process, two loads. The carver calls init (NULL-ok) on the
 * zeroed area, under the region's lock and before any other process can
 * see it, e.g. to gw_shm_lock_init the area's locks; init must not call
 * gw_shm_area. A carver that dies half-way leaves nothing behind: the next
 * caller carves the area again from zero. Every caller must pass the same
 * size and init for an id. NULL (logged) when the region is full or the
 * size differs from the carved one (layout version not bumped).
 */
void *gw_shm_area(struct gw_shm *shm, enum gw_shm_area id, size_t size,
    void (*init)(void *area)) GW_NONNULL(1);
/* Unmap and free; NULL-ok. No thread may still use the mapping. */
void gw_shm_close(struct gw_shm *shm);

/*
 * The process-wide region: map path (GW_SHM_SIZE bytes) unless already
 * mapped. Safe from several threads; idempotent, including in a forked
 * child, which inherits its parent's mapping. A different path while one
 * is mapped is refused (GW_E_INVALID, logged); failures are logged.
 */
enum gw_status gw_shm_attach(const char *path) GW_NONNULL(1);
/* The region gw_shm_attach mapped, or NULL; one atomic load. Borrowed. */
struct gw_shm *gw_shm_get(void);
/* Unmap the process-wide region (tests, exit); no thread may still use it. */
void gw_shm_detach(void);

/*
 * A 64-bit hash of n bytes for keys stored in the region: the same in every
 * process and build on a host (no random seed), so not meant to resist
 * keys chosen to collide.
 */
uint64_t gw_shm_hash(const void *p, size_t n, uint64_t seed);

/*
 * Initialise l, in memory shared by the processes that will use it: once,
 * by whoever creates that memory (an area's init function), before another
 * process can reach it; never on a lock that may be in use.
 */
void gw_shm_lock_init(struct gw_shm_lock *l) GW_NONNULL(1);
/*
 * Take l, waiting (in the kernel, not spinning) as long as another thread
 * or process holds it. Returns 0, or 1 when the previous holder died
 * holding it: what l protects may be half-updated, and the caller repairs
 * it before gw_shm_unlock (which then marks l consistent; a caller that
 * dies while repairing leaves the repair to the next holder, told 1 in
 * turn). Not recursive. A lock that is not initialised or not recoverable
 * (only an unlock that skipped the repair makes one) is a broken invariant
 * (GW_ASSERT).
 */
int gw_shm_lock(struct gw_shm_lock *l) GW_NONNULL(1);
/* Release l, held by this thread; marks it consistent after a repair. */
void gw_shm_unlock(struct gw_shm_lock *l) GW_NONNULL(1);

/*
 * getpid() cached per process and refreshed in a fork child (pthread_atfork),
 * so hot paths that tag shared state with the pid make no system call.
 */
pid_t gw_shm_pid(void);
/*
 * 1 when process pid is gone (kill(pid, 0) fails with ESRCH). A zombie not
 * yet reaped by its parent still counts as alive.
 */
int gw_shm_pid_dead(pid_t pid);

#endif /* GW_SHM_H */
