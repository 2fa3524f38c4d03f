/*
 * ratelimit.h: host-wide rate limits kept in the shared memory region
 * (shm.h), so that they hold across every process and thread of every
 * route family. The common path is a handful of atomic operations and no
 * system call. Without an attached region every call admits (fail open,
 * logged once).
 *
 * Clock: every now_ns must come from one host-wide clock; use
 * CLOCK_MONOTONIC (gw_now_mono_us() * 1000) for the buckets, and for
 * per-entity limits CLOCK_REALTIME (gw_now_real_us() * 1000), whose
 * minutes are the same on every host (shared limits, below).
 *
 * Global bucket (the optional host-wide cap): a token bucket of rate
 * tokens/s and depth burst, kept as
 * GCRA (one 64-bit "theoretical arrival time" updated with one CAS), which
 * admits exactly what a token bucket admits.
 *
 * Per-entity limits (an entity is a string such as "k:<key hash>" or
 * "t:<team id>"): requests per minute, tokens per minute and requests in
 * parallel. Windows are FIXED minute windows aligned to the clock
 * (now_ns / 60 s): counts reset at the window end, which gw_rl_reset_ms
 * gives for x-ratelimit-reset-* headers. A client may therefore get up to
 * twice a limit across a window boundary. A request is admitted while the
 * tokens counted in the current window are below tpm; its tokens are added
 * by gw_rl_done, to the window current when it ends.
 *
 * Capacity: 16384 entity slots, recycled once an entity has nothing
 * counted in the current window and no request in flight (about 12000
 * entities active in one minute fit before one is admitted untracked),
 * and 16384 parallel leases. When either table is full the request is
 * admitted (fail open), logged once per process.
 *
 * Refusals are counted in GW_METRIC_RATELIMITED (metrics.h) with
 * reason="global|rpm|tpm|parallel"; fail-open events in
 * GW_METRIC_RATELIMIT_FAILOPEN.
 */
#ifndef GW_RATELIMIT_H
#define GW_RATELIMIT_H

#include <stdint.h>

#include "config.h"
#include "util.h"

/* Limits of one entity; a negative value means no limit. */
struct gw_rl_limits {
	int64_t rpm;      /* requests per minute */
	int64_t tpm;      /* tokens per minute */
	int64_t parallel; /* requests in flight */
};

/*
 * What gw_rl_admit took, for gw_rl_done / gw_rl_undo. Caller storage;
 * zero-initialise it or pass it to gw_rl_admit first. Fields are private.
 */
struct gw_rl_ticket {
	uint64_t h1, h2;     /* entity identity */
	uint64_t lease_word; /* what the lease slot holds */
	int64_t req_win;     /* window the request was counted in, or -1 */
	int32_t idx;         /* entity slot, or -1 when not tracked */
	int32_t lease;       /* lease slot, or -1 */
	int32_t state;       /* 0 nothing held, 1 held, 2 released */
	int32_t tokens;      /* 1 when gw_rl_done counts tokens */
	int32_t shared;      /* 1 when admitted with the other hosts */
};

enum gw_rl_verdict {
	GW_RL_OK = 0,
	GW_RL_RPM,
	GW_RL_TPM,
	GW_RL_PARALLEL,
};

/*
 * Take one token from the host-wide bucket: rate tokens/s on average, at
 * most burst at once (rate <= 0: no limit, always 1). Returns 1 when
 * admitted; 0 when refused, with *retry_after_s (NULL-ok) set to the whole
 * seconds until a token is available, rounded up, at least 1.
 */
int gw_rl_take_global(
    double rate, double burst, int64_t now_ns, int *retry_after_s);

/*
 * Per-client buckets, one per client source (an address), in a shared
 * table of slots entries (a power of two is used, 8 to 65536; the least
 * recently used source is evicted, GW_METRIC_RATELIMIT_CLIENT_EVICTIONS):
 * a request bucket of rps/s with depth burst, and a bucket of failed
 * authentications (fail_rate/s, depth fail_burst). A rate <= 0 turns a
 * bucket off.
 */
struct gw_rl_client_limits {
	double rps, burst;
	double fail_rate, fail_burst;
	int slots;
};

enum gw_rl_client_verdict {
	GW_RL_CLIENT_OK = 0,
	GW_RL_CLIENT_RATE,          /* its request bucket is empty */
	GW_RL_CLIENT_AUTH_FAILURES, /* it failed to authenticate too often */
};

/*
 * Admit one request of source: its failures must have left a token (none
 * is taken), and one token of its request bucket is taken. On a refusal
 * *retry_after_s (NULL-ok) is set and reason="auth_failures" or "client"
 * counted.
 */
enum gw_rl_client_verdict gw_rl_client_admit(const char *source,
    const struct gw_rl_client_limits *lim, int64_t now_ns, int *retry_after_s)
    GW_NONNULL(1, 2);
/* The limits [rate_limit] sets (rps, burst, auth_failures_*, clients). */
void gw_rl_client_limits_of(
    const struct gw_cfg *cfg, struct gw_rl_client_limits *lim) GW_NONNULL(1, 2);
/* A failed authentication of source: one token of its failure bucket. */
void gw_rl_client_auth_failed(const char *source,
    const struct gw_rl_client_limits *lim, int64_t now_ns) GW_NONNULL(1, 2);

/*
 * Check and take one request for entity under lim. On GW_RL_OK the ticket
 * holds what was taken: end it with gw_rl_done (or gw_rl_undo). On a
 * refusal nothing is held and *retry_after_s (NULL-ok) is set: whole
 * seconds >= 1 until the window ends (rpm, tpm) or 1 (parallel).
 * *remaining_requests and *remaining_tokens (NULL-ok) get what is left in
 * the current window after this request, -1 for no limit. An entity with
 * no limit at all costs nothing and is not tracked.
 */
enum gw_rl_verdict gw_rl_admit(const char *entity,
    const struct gw_rl_limits *lim, int64_t now_ns, struct gw_rl_ticket *t,
    int *retry_after_s, int64_t *remaining_requests, int64_t *remaining_tokens)
    GW_NONNULL(1, 2, 4);

/*
 * The request ended (success, error, timeout, client gone): count its
 * tokens (>= 0) in the current window and release its parallel slot.
 * Idempotent per ticket; a no-op on a refused or zeroed ticket.
 */
void gw_rl_done(struct gw_rl_ticket *t, int64_t tokens, int64_t now_ns)
    GW_NONNULL(1);

/*
 * Take back an admission that never ran, e.g. the key was admitted but its
 * team refused: release the parallel slot and uncount the request (when
 * still in the same window). Idempotent; a no-op after gw_rl_done.
 */
void gw_rl_undo(struct gw_rl_ticket *t, int64_t now_ns) GW_NONNULL(1);

/*
 * Shared limits (rlshare.h): the hosts' admissions of an entity are
 * bounded together by an engine they share (PostgreSQL). A host admits
 * from shared memory while the slice of the window it was granted lasts;
 * when it runs out it asks sync for another, sending the tokens it counted
 * meanwhile, and the same for parallel slots. When sync fails the request
 * is judged by this host's own counts against the whole limit (fail open,
 * as without sharing). Windows must then be minutes of the epoch: pass
 * now_ns from CLOCK_REALTIME (gw_now_real_us() * 1000) to every call.
 */
struct gw_rl_sync {
	uint64_t h1, h2;  /* the entity */
	int64_t win;      /* its window: minutes since the epoch */
	int64_t rpm, tpm; /* its limits (-1: none) */
	int64_t parallel;
	int64_t slice;      /* requests wanted (0: none) */
	int64_t tokens;     /* this host's tokens not sent before (>= 0) */
	int64_t keep;       /* parallel: in flight here now */
	int64_t need;       /* ... slots needed (0: no parallel request) */
	int64_t got;        /* out: requests granted */
	int64_t win_tokens; /* out: the window's tokens, all hosts */
	int64_t held;       /* out: parallel slots held now */
};

struct gw_rl_share {
	/* Ask the shared engine; 0 when it answered, -1 to fail open. */
	int (*sync)(void *arg, struct gw_rl_sync *s);
	void *arg;
	int64_t slice_max; /* requests asked for at once */
	int64_t div;       /* ... at most a div-th of what is left */
	int64_t sync_ns;   /* tokens are sent at least this often */
	int64_t deny_ns;   /* a parallel refusal holds this long */
};

/*
 * gw_rl_admit, bounded with the other hosts through sh (NULL: this host
 * alone, which is gw_rl_admit). sh->sync runs on this thread and may
 * block: once per slice, per sync_ns for tpm and per parallel grant.
 */
enum gw_rl_verdict gw_rl_admit_shared(const char *entity,
    const struct gw_rl_limits *lim, int64_t now_ns, struct gw_rl_ticket *t,
    int *retry_after_s, int64_t *remaining_requests, int64_t *remaining_tokens,
    const struct gw_rl_share *sh) GW_NONNULL(1, 2, 4);

/*
 * For the heartbeat (rlshare.h): an entity with parallel slots granted or
 * in flight on this host, or tokens of window win not yet sent.
 */
struct gw_rl_beat {
	uint64_t h1, h2;
	int64_t held;   /* in flight here: the lease to keep */
	int64_t win;    /* minutes since the epoch */
	int64_t tokens; /* counted here and not yet sent */
	int32_t idx;    /* private */
};

/*
 * Fill b (room for max) with this host's entities to report at now_ns:
 * their parallel grants shrink to what is in flight, their tokens count
 * as sent. Returns how many (the rest wait for the next beat).
 */
int gw_rl_beat_collect(int64_t now_ns, struct gw_rl_beat *b, int max)
    GW_NONNULL(2);
/* The beat of b failed: its tokens are to be sent again. */
void gw_rl_beat_unsent(const struct gw_rl_beat *b, int n) GW_NONNULL(1);
/*
 * 1 when this process should beat now (at most one process per host per
 * interval_ns), else 0.
 */
int gw_rl_beat_due(int64_t now_ns, int64_t interval_ns);
/* This host's id for the shared engine: 16 hex digits and a NUL. */
void gw_rl_host_id(char out[17]) GW_NONNULL(1);

/*
 * Reclaim the parallel slots of processes that died without releasing them
 * (kill -9): scans the lease table and frees leases whose pid is gone.
 * Call about once a second from one thread per process. Returns the number
 * of leases freed. Only leases of reaped processes are freed: a zombie's
 * stay until its parent waits for it.
 */
int gw_rl_reap(void);

/* Milliseconds until the current minute window ends (>= 1). */
int64_t gw_rl_reset_ms(int64_t now_ns);

#endif /* GW_RATELIMIT_H */
