/*
 * admit.h: the rpm, tpm and max_parallel_requests limits of a caller's
 * key, its user and its team, host-wide (ratelimit.h entities "k:<key
 * hash>", "u:<user id>" and "t:<team id>"), and across hosts when
 * [rate_limit] shared is on (rlshare.h). A request is admitted when
 * every level admits it; when one refuses, what the levels before it took
 * is given back (gw_rl_undo) and the request is answered 429 with
 * Retry-After. An admitted request holds its tickets until it ends
 * (gw_admit_done, on every path).
 */
#ifndef GW_ADMIT_H
#define GW_ADMIT_H

#include <stddef.h>
#include <stdint.h>

#include "ratelimit.h"

struct gw_principal;
struct gw_req;

/* What an admitted request holds; caller storage, zero-initialised. */
struct gw_admit_tickets {
	struct gw_rl_ticket key, user, team;
};

enum gw_admit_level {
	GW_ADMIT_KEY = 0,
	GW_ADMIT_USER,
	GW_ADMIT_TEAM,
};

/* Why a request was refused: the level, the limit and the wait. */
struct gw_admit_refusal {
	enum gw_admit_level level;
	enum gw_rl_verdict verdict; /* GW_RL_RPM, _TPM or _PARALLEL */
	int64_t limit;
	int retry_after_s;
	int64_t left_requests, left_tokens; /* the key's, when admitted */
};

/*
 * Take one request for who's key (a virtual key only), user and team at
 * now_ns (CLOCK_REALTIME ns), in that order, with the other hosts through
 * sh (NULL: this host alone). GW_RL_OK with t holding the tickets; else
 * the verdict, nothing held, and *why filled. Admins (and callers without
 * a record) are admitted and hold nothing.
 */
enum gw_rl_verdict gw_admit_take(const struct gw_principal *who, int64_t now_ns,
    struct gw_admit_tickets *t, struct gw_admit_refusal *why,
    const struct gw_rl_share *sh) GW_NONNULL(1, 3, 4);

/*
 * The client's message for a refusal: "Rate limit exceeded for user
 * alice: rpm_limit 2 (requests per minute) reached. Retry in 31 s." The
 * key is named by its short name ("sk-...abcd"), never its hash.
 */
void gw_admit_message(const struct gw_principal *who,
    const struct gw_admit_refusal *why, char *msg, size_t msglen)
    GW_NONNULL(1, 2, 3);

/*
 * gw_admit_take for req, shared with the other hosts when [rate_limit]
 * shared is on (through the thread's database): 0 when admitted (the key's
 * x-ratelimit-* headers added), else -1 with req answered 429 rate_limit_error
 * and Retry-After.
 */
int gw_admit_request(struct gw_req *req, const struct gw_principal *who,
    struct gw_admit_tickets *t) GW_NONNULL(1, 2, 3);

/*
 * The request ended however it ended: count its tokens (>= 0) in the
 * window of now_ns (gw_now_real_us() * 1000) and give its parallel slots
 * back. Idempotent; a no-op on tickets not taken.
 */
void gw_admit_done(struct gw_admit_tickets *t, int64_t tokens, int64_t now_ns)
    GW_NONNULL(1);

#endif /* GW_ADMIT_H */
