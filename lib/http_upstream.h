/*
 * http_upstream.h: the only libcurl user. One struct gw_upstream per worker
 * thread holds one CURL easy handle that is reused request after request,
 * so connections to the upstream stay alive (no per-request connect).
 */
#ifndef GW_HTTP_UPSTREAM_H
#define GW_HTTP_UPSTREAM_H

#include <stddef.h>
#include <sys/uio.h>
#include <stdint.h>

#include "err.h"
#include "util.h"

struct gw_upstream;

/* Call once per process before any thread starts; GW_OK or GW_E_INTERNAL. */
enum gw_status gw_upstream_global_init(void);

/* A handle for one thread; caller frees with gw_upstream_free. */
struct gw_upstream *gw_upstream_new(void);
void gw_upstream_free(struct gw_upstream *up);

/*
 * GET url with the given timeouts. *http_status receives the answer's
 * status (0 when none came). When body is non-NULL, up to cap bytes of the
 * answer are kept there. Errors: GW_E_UPSTREAM (refused, reset, DNS...)
 * or GW_E_TIMEOUT, with curl's own words in err.
 */
enum gw_status gw_upstream_get(struct gw_upstream *up, const char *url,
    int connect_timeout_ms, int timeout_ms, int *http_status,
    struct gw_buf *body, size_t cap, char *err, size_t errlen)
    GW_NONNULL(1, 2, 5);

/*
 * What the caller hears during a POST. Every callback may be NULL and may
 * return -1 to abort the transfer at once.
 */
struct gw_upstream_cb {
	void *arg;
	/*
	 * The answer's status line and headers are in. retry_after is the
	 * Retry-After header or NULL; content_type may be NULL.
	 */
	int (*on_head)(void *arg, int status, const char *content_type,
	    const char *retry_after);
	/*
	 * Body bytes, as they arrive. On the event loop only, 1 holds them
	 * back: the transfer pauses until gw_upstream_resume, which hands the
	 * same bytes again.
	 */
	int (*on_data)(void *arg, const char *p, size_t n);
	/* Called several times a second, also while no byte arrives. */
	int (*on_tick)(void *arg);
	/*
	 * On the event loop, when not NULL: libcurl has handed over what one
	 * read brought (several on_data calls, one per HTTP chunk), so bytes
	 * kept for the client can go in one write. -1 ends the transfer.
	 */
	int (*on_read_end)(void *arg);
};

struct gw_upstream_post {
	const char *url;
	const char *body;
	size_t body_len; /* with parts: their sum */
	/*
	 * Or, parts != NULL: the body is these nparts pieces in order, read
	 * by libcurl as it sends (a big body changed in one place goes
	 * without being copied whole first). They must stay until the POST
	 * returns.
	 */
	const struct iovec *parts;
	size_t nparts;
	const char *bearer;     /* Authorization: Bearer ..., or NULL */
	const char *request_id; /* sent as x-request-id, or NULL */
	int connect_timeout_ms;
	int timeout_ms;      /* whole transfer; 0: none */
	const char *userpwd; /* HTTP basic auth "user:password", or NULL */
	const char *const *headers; /* more "Name: value" lines, NULL-ended */
	/* The body's Content-Type (a multipart's, with its boundary); NULL:
	 * application/json. */
	const char *content_type;
};

struct gw_upstream_result {
	int http_status;    /* 0 when no status line came */
	uint64_t bytes;     /* body bytes received */
	int aborted;        /* a callback returned -1 */
	int connect_failed; /* refused, unreachable or connect timeout */
	char err[256];      /* curl's words when the transfer failed */
};

/*
 * POST a JSON body on this thread's kept-alive connection and stream the
 * answer into cb. GW_OK when an answer was read to its end (any HTTP
 * status) or a callback aborted it (res->aborted); GW_E_UPSTREAM when the
 * transfer failed (res->connect_failed tells a failure to connect, and
 * res->bytes == 0 one before any byte).
 */
enum gw_status gw_upstream_post(struct gw_upstream *up,
    const struct gw_upstream_post *p, const struct gw_upstream_cb *cb,
    struct gw_upstream_result *res) GW_NONNULL(1, 2, 3, 4);

/*
 * Transfers on the process's event loop (evloop.h), so a long answer holds
 * no thread: one libcurl multi drives them all, with kept-alive
 * connections and spare easy handles shared by every transfer. Everything
 * here runs on the loop thread.
 */
struct gw_loop;
struct gw_upstream_multi;
struct gw_xfer;

/* The loop's multi; lives as long as the process. */
struct gw_upstream_multi *gw_upstream_multi_new(struct gw_loop *loop)
    GW_NONNULL(1);

/*
 * Start the POST p (p and everything it points at must stay valid until
 * done is called). cb is heard as in gw_upstream_post, on_tick every
 * 100 ms; done(cb->arg, st, res) is called once at the end, with what
 * gw_upstream_post would have returned, and the transfer is gone then.
 */
struct gw_xfer *gw_upstream_start(struct gw_upstream_multi *um,
    const struct gw_upstream_post *p, const struct gw_upstream_cb *cb,
    void (*done)(void *arg, enum gw_status st,
        const struct gw_upstream_result *res)) GW_NONNULL(1, 2, 3, 4);

/* Go on with a transfer that on_data paused. */
void gw_upstream_resume(struct gw_xfer *x) GW_NONNULL(1);

#endif /* GW_HTTP_UPSTREAM_H */
