/*
 * req.h: one FastCGI request: its parameters, its body (capped), the
 * response head and body, the request id, and the access log line.
 * struct gw_req lives in the worker thread and is reused request after
 * request; gw_req_end frees what the request owned.
 */
#ifndef GW_REQ_H
#define GW_REQ_H

#include <stdint.h>

#include "config.h"
#include "err.h"
#include "fcgi.h"
#include "util.h"

struct gw_db;
struct gw_req;
struct gw_upstream;
struct gw_loop;
struct gw_reqout;
struct json_object;

/*
 * What a handler may use of the thread it runs on, handed to it with the
 * request: owned by the server's worker thread, never shared between
 * threads. A detached request has none (its ctx is NULL).
 */
struct gw_ctx {
	struct gw_db *db;       /* PostgreSQL (it connects on first use) */
	struct gw_upstream *up; /* one reused libcurl handle */
	uint64_t rng[2];        /* request ids and other UUIDs */
};

/*
 * How the owner of the process model (server.c) hears of a request's
 * end; the same hooks on the thread path and on the event loop.
 */
struct gw_req_hooks {
	/* The request ends, just before its access line (either path). */
	void (*end)(struct gw_req *req);
	/* A detached request's connection is closed (its last bytes out). */
	void (*closed)(void);
};

struct gw_req {
	struct gw_fcgi *fr;               /* borrowed from the worker thread */
	const struct gw_req_hooks *hooks; /* NULL-ok, static */
	struct gw_ctx *ctx;       /* borrowed: the thread's db, upstream, rng */
	const struct gw_cfg *cfg; /* held for the whole request */
	char id[37];              /* x-request-id, a UUIDv7 (time-ordered) */
	const char *method;       /* borrowed from the FastCGI params */
	char *path;               /* REQUEST_URI up to '?', owned */
	const char *query;        /* after '?' (or ""), inside the same copy */
	const char *route;        /* a static label for logs and metrics */
	int64_t start_mono_us;
	int64_t start_real_us;
	int status; /* HTTP status sent, 0 before the head */
	int head_sent;
	uint64_t bytes_out;
	struct gw_buf hdrs; /* response headers added before the head */
	struct gw_buf body; /* request body once read */
	struct gw_buf logx; /* extra logfmt fields for the access line */
	char err_type[48];  /* type of the error answered, or "" */
	char model[96];     /* the model asked for, for metrics ("" if none) */
	char client[48];    /* gw_req_client's answer, "" until asked */
	struct gw_reqout *dout; /* after gw_req_detach: its own output */
	/* Set by gw_req_go_async: run on the loop once detached. */
	void (*async_fn)(struct gw_req *detached, void *arg);
	void *async_arg;
};

/*
 * Start a request accepted on fr: take the request id, split the URI.
 * ctx (NULL-ok: ids then come from a zero seed), cfg and hooks (NULL-ok)
 * stay borrowed by req until gw_req_end.
 */
void gw_req_begin(struct gw_req *req, struct gw_fcgi *fr, struct gw_ctx *ctx,
    const struct gw_cfg *cfg, const struct gw_req_hooks *hooks)
    GW_NONNULL(1, 2, 4);
/*
 * End a request on its thread: hooks->end, the access log line, and
 * release what the request owned.
 */
void gw_req_end(struct gw_req *req) GW_NONNULL(1);
/* Free buffers kept for reuse (at thread exit). */
void gw_req_fini(struct gw_req *req) GW_NONNULL(1);

/* A FastCGI parameter (e.g. "REQUEST_METHOD"), borrowed, or NULL. */
const char *gw_req_param(const struct gw_req *req, const char *name)
    GW_NONNULL(1, 2);
/*
 * A request header by its HTTP name (e.g. "Authorization"), borrowed, or
 * NULL. Content-Type and Content-Length are found too.
 */
const char *gw_req_header(const struct gw_req *req, const char *name)
    GW_NONNULL(1, 2);
/*
 * Copy the URL-decoded value of query parameter name into out (NUL-ended).
 * GW_OK when present, GW_E_NOTFOUND when absent, GW_E_INVALID when the
 * value does not fit or decodes to a NUL byte.
 */
enum gw_status gw_req_query(const struct gw_req *req, const char *name,
    char *out, size_t outlen) GW_NONNULL(1, 2, 3);
/*
 * The client source for per-client limits: REMOTE_ADDR, or, when that is
 * one of [rate_limit] trusted_proxies, the right-most address of
 * X-Forwarded-For that is not (the left-most when all are): what Traefik,
 * lighttpd or Apache in front saw. Borrowed, computed once per request;
 * "-" when the web server said nothing.
 */
const char *gw_req_client(struct gw_req *req) GW_NONNULL(1);
/*
 * An optional query parameter: as gw_req_query, but an absent one is ""
 * (GW_OK); GW_E_INVALID only when it is malformed or does not fit.
 */
enum gw_status gw_req_query_opt(const struct gw_req *req, const char *name,
    char *out, size_t outlen) GW_NONNULL(1, 2, 3);
/*
 * Read the whole body into req->body. GW_E_TOOBIG when CONTENT_LENGTH or
 * the bytes received exceed cfg->max_body_bytes, GW_E_INVALID when the
 * body is shorter than announced.
 */
enum gw_status gw_req_read_body(struct gw_req *req) GW_NONNULL(1);
/*
 * The same with its own cap of max bytes (an audio upload's, [gateway]
 * max_audio_bytes): GW_E_TOOBIG before reading when CONTENT_LENGTH says
 * more, else as soon as more has arrived.
 */
enum gw_status gw_req_read_body_max(struct gw_req *req, long max) GW_NONNULL(1);

/* Add a response header ("Name: value") before the head is sent. */
void gw_req_add_header(struct gw_req *req, const char *name, const char *fmt,
    ...) GW_PRINTF(3, 4) GW_NONNULL(1, 2, 3);
/*
 * The same for a plain value, without printf (on every relayed request):
 * line breaks in value become spaces.
 */
void gw_req_add_header_str(struct gw_req *req, const char *name,
    const char *value) GW_NONNULL(1, 2, 3);
/*
 * Send the response head: Status, Content-Type (if non-NULL), the request
 * id headers and every added header. A second call does nothing.
 */
void gw_req_send_head(struct gw_req *req, int status, const char *ctype)
    GW_NONNULL(1);
/* Write body bytes (sending a 200 head first if none was sent). */
enum gw_status gw_req_write(struct gw_req *req, const void *p, size_t n)
    GW_NONNULL(1);
/*
 * 1 when the web server has closed this request's connection (the client
 * went away): checked without blocking.
 */
int gw_req_client_gone(const struct gw_req *req) GW_NONNULL(1);
/* Append " name=value" (value logfmt-quoted) to the access line. */
void gw_req_log_field(struct gw_req *req, const char *name, const char *value)
    GW_NONNULL(1, 2, 3);
/* The same for an integer value. */
void gw_req_log_int(struct gw_req *req, const char *name, int64_t value)
    GW_NONNULL(1, 2);
/* The same for thousandths, written with three decimals (ms from us). */
void gw_req_log_milli(struct gw_req *req, const char *name, int64_t thousandths)
    GW_NONNULL(1, 2);
/* Push buffered bytes to the web server now (for SSE chunks). */
enum gw_status gw_req_flush(struct gw_req *req) GW_NONNULL(1);

/*
 * From a handler: let the rest of this request run on the process's event
 * loop, holding no thread. Returns GW_DETACHED, which the handler returns
 * as it is; the server then detaches req (gw_req_detach) and start(d,
 * arg) runs on the loop thread with d, the request that lives on, to be
 * ended there with gw_req_done. GW_E_UNAVAILABLE when there is no loop
 * (or req is already detached): the handler carries on on its thread.
 */
enum gw_status gw_req_go_async(struct gw_req *req,
    void (*start)(struct gw_req *d, void *arg), void *arg) GW_NONNULL(1, 2);
/*
 * Take the request off its thread, onto the event loop: returns the
 * request (heap) that now owns the FastCGI connection, the response
 * headers and log fields added so far and a reference to its
 * configuration; req keeps the body's buffer (the body was read to its
 * end, and is empty in the returned request) for its thread's next
 * accept (req->fr is NULL then). What gw_req_go_async asked for is run on
 * the loop next.
 * From then on, on the loop thread only, output is queued and written
 * without blocking, and gw_req_client_gone costs no system call.
 */
struct gw_req *gw_req_detach(struct gw_req *req, struct gw_loop *loop)
    GW_NONNULL(1, 2);
/* Bytes of a detached request queued for the web server, not yet taken. */
size_t gw_req_backlog(const struct gw_req *req) GW_NONNULL(1);
/*
 * fn(arg) once the queue of a detached request is written out (NULL:
 * forget it). Called at most once per call of this.
 */
void gw_req_on_drain(struct gw_req *req, void (*fn)(void *arg), void *arg)
    GW_NONNULL(1);
/*
 * A detached request is done: hooks->end and the access line (as
 * gw_req_end), then the FastCGI end records; the connection closes once
 * they are written (at most 30 s later), hooks->closed is called and req
 * is freed. A callback set with gw_req_on_drain is not called any more.
 */
void gw_req_done(struct gw_req *req) GW_NONNULL(1);

/* A complete response with a body given as text. */
void gw_reply(struct gw_req *req, int status, const char *ctype,
    const char *body, size_t len) GW_NONNULL(1, 3, 4);
/* A complete JSON response; obj is serialized, not consumed. */
void gw_reply_json(struct gw_req *req, int status, struct json_object *obj)
    GW_NONNULL(1, 3);
/*
 * The OpenAI error shape for st with message msg (NULL: a default one).
 * Only mains and handlers' top levels call this; nothing is sent when the
 * head already went out.
 */
void gw_reply_error(struct gw_req *req, enum gw_status st, const char *msg)
    GW_NONNULL(1);
/* As gw_reply_error with an explicit HTTP status, type and param. */
void gw_reply_error_ex(struct gw_req *req, int status, const char *type,
    const char *param, const char *msg) GW_NONNULL(1);

#endif /* GW_REQ_H */
