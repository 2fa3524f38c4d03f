/* relay.c: the OpenAI relay engine behind the chat and embeddings families. */
#include "relay.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admit.h"
#include "alias.h"
#include "auth.h"
#include "budget.h"
#include "capture.h"
#include "evloop.h"
#include "http_upstream.h"
#include "json_util.h"
#include "log.h"
#include "metrics.h"
#include "price.h"
#include "redact.h"
#include "req.h"
#include "rerank.h"
#include "responses.h"
#include "revoke.h"
#include "route.h"
#include "scheduler.h"
#include "spend.h"
#include "sse.h"
#include "util.h"
#include "validate.h"

#ifndef GW_VERSION
#define GW_VERSION "dev"
#endif

/* Error bodies from the upstream are kept up to this size. */
#define ERROR_BODY_MAX (64 * 1024)
/* A whole (non-streamed) answer is kept up to this size. */
#define ANSWER_MAX (64 * 1024 * 1024)
/*
 * A body of this or more goes upstream in parts of the client's text (libcurl
 * sends a POST over 64 KiB apart from its head anyway, copying it into
 * its upload buffer: one copy, not two). Below, libcurl puts the body in
 * the head's send: a contiguous copy is cheaper than a second send.
 */
#define PARTS_MIN (64 * 1024)

/* Timeouts, keep-alives and disconnects are checked this often. */
#define TICK_US (100 * 1000)
/* A request queued by the scheduler asks again this often. */
#define SCHED_POLL_US (25 * 1000)

/* MODE_RAW: a passthrough answer, relayed as it comes (status, type). */
enum mode { MODE_NONE = 0, MODE_SSE, MODE_BUFFER, MODE_ERROR, MODE_RAW };
enum abort_reason {
	ABORT_NONE = 0,
	ABORT_CLIENT,
	ABORT_FIRST_BYTE,
	ABORT_IDLE,
	ABORT_TOO_BIG,
	ABORT_REVOKED, /* the key was blocked, deleted or expired */
};

/*
 * One attempt upstream: what one POST saw. attempt_reset starts the next
 * from zero in one assignment; only the storage of resp and sse is kept.
 */
struct attempt {
	int up_status; /* its HTTP status, 0 before the head */
	enum mode mode;
	char retry_after[64];
	struct gw_buf resp; /* a buffered answer or error body */
	struct gw_sse sse;
	int64_t t_begin; /* monotonic us */
	int64_t t_last_data;
	int64_t t_last_tick;
	int done_seen; /* data: [DONE] */
	enum abort_reason abort;
	/*
	 * Its client fell behind: the upstream waits, and so do the idle
	 * timeout and keep-alives (lighttpd's write timeout bounds the wait).
	 */
	int paused;
	struct gw_xfer *xfer; /* on the event loop: the transfer running */
};

/* What the request amounted to, over all its attempts. */
struct outcome {
	struct gw_usage usage;
	int64_t chunks; /* streamed chunks relayed */
	int client_gone;
	int64_t t_first_token; /* monotonic us, 0 before one */
	int64_t up_us;         /* time spent on upstream transfers */
	const char *up_error;  /* upstream error kind, for metrics */
	char resp_id[128];     /* the answer's "id" (a stream's first), or "" */
};

struct relay {
	struct gw_req *req;
	const struct gw_cfg *cfg;
	enum gw_call call;
	int stream;               /* the client asked for SSE */
	int client_usage;         /* ... and for the usage chunk */
	int64_t t_start;          /* request start (monotonic us) */
	int64_t t_last_keepalive; /* the client's, over all attempts */
	struct attempt at;        /* the attempt running, or the last one */
	struct outcome out;
	int model_ok;            /* the caller may use the model it named */
	struct gw_principal who; /* released at the end */
	/* The key's, user's and team's limits held (admit.h). */
	struct gw_admit_tickets lim;
	const char *target;    /* the model of the current attempt */
	struct gw_capture cap; /* input/output for Langfuse */
	struct gw_buf tags;    /* the spend row's request_tags, or empty */
	/* The request as relayed, and where its attempts stand. */
	json_object *body;
	/*
	 * Where the client's text names the model: while the tree is as
	 * parsed (doc.spliceable), each attempt's body is that text with
	 * the model replaced (and, add_usage, stream_options added), never
	 * serialized from the tree again.
	 */
	struct gw_json_doc doc;
	int add_usage;
	struct gw_buf sent;
	const char *built_for; /* the target r->post.body names */
	/*
	 * A big body relayed from the thread that holds the client's text
	 * (here): sent as parts of that text around the quoted model (in
	 * qmodel), not copied whole into sent first.
	 */
	int here;
	struct iovec parts[4];
	struct gw_buf qmodel;
	/* body holds only metadata and user (slim_body); the prompt's size */
	int slim;
	size_t prompt_chars;
	char *model, *url;
	struct gw_targets targets;
	size_t t;    /* the target tried now */
	int retries; /* ... retried that many times */
	struct gw_upstream_post post;
	struct gw_upstream_cb cb;
	struct gw_revoke rv;           /* a key's stream, while it runs */
	enum gw_revoke_why revoked;    /* why it was ended, if it was */
	struct gw_scheduler_ticket sq; /* its place ([scheduler]) */
	struct gw_loop_timer sq_timer;
	char *pt_path; /* a passthrough's path ([upstream] passthrough) */
};

/* A stream's client may fall this far behind before its upstream waits. */
#define BACKLOG_MAX (256 * 1024)

char *
gw_relay_url(const char *base, const char *path)
{
	size_t n = strlen(base);

	while (n > 0 && base[n - 1] == '/')
		n--;
	if (n >= 3 && strncmp(base + n - 3, "/v1", 3) == 0)
		return gw_xstrcat3(base, n, "", path);
	return gw_xstrcat3(base, n, "/v1", path);
}

/*
 * {base_url without a trailing /v1}{path}: a passthrough path is the
 * upstream's own (llama-server's /infill is at its root). Caller frees.
 */
static char *
root_url(const char *base, const char *path)
{
	size_t n = strlen(base);

	while (n > 0 && base[n - 1] == '/')
		n--;
	if (n >= 3 && strncmp(base + n - 3, "/v1", 3) == 0)
		n -= 3;
	return gw_xstrcat3(base, n, "", path);
}

static const char *
call_path(enum gw_call call)
{
	switch (call) {
	case GW_CALL_CHAT:
		return "/chat/completions";
	case GW_CALL_COMPLETION:
		return "/completions";
	case GW_CALL_EMBEDDING:
		return "/embeddings";
	case GW_CALL_RERANK:
		return "/rerank";
	case GW_CALL_RESPONSES:
		return "/responses";
	case GW_CALL_PASSTHROUGH:
		return "/pass_through";
	case GW_CALL_TRANSCRIPTION: /* audio.c's: never relayed here */
	case GW_CALL_TRANSLATION:
	case GW_CALL_SPEECH:
		break;
	}
	return "/chat/completions";
}

void
gw_relay_note_usage(struct gw_usage *acc, const struct gw_json_usage *u)
{
	if (!u->known)
		return;
	acc->known = 1;
	/*
	 * A negative count is no count: it would make a negative cost, which
	 * spend_logs refuses (CHECK spend >= 0), and one such row would hold
	 * up its whole batch. The sum saturates (json-c clamps to INT64_MAX).
	 */
	if (u->has[0] && u->v[0] >= 0)
		acc->prompt = u->v[0];
	if (u->has[1] && u->v[1] >= 0)
		acc->completion = u->v[1];
	if (u->has[2] && u->v[2] >= 0)
		acc->total = u->v[2];
	else
		acc->total = acc->prompt > INT64_MAX - acc->completion
		                 ? INT64_MAX
		                 : acc->prompt + acc->completion;
}

/* Keep the answer's "id", the first one seen: the spend row's response_id. */
static void
note_id(struct relay *r, const struct gw_json_usage *u)
{
	if (u->id == NULL || r->out.resp_id[0] != '\0' ||
	    u->id_len >= sizeof(r->out.resp_id))
		return;
	memcpy(r->out.resp_id, u->id, u->id_len);
	r->out.resp_id[u->id_len] = '\0';
}

/* The same from a parsed reply. */
static void
take_usage(struct relay *r, json_object *msg)
{
	struct gw_json_usage u;

	if (r->call == GW_CALL_RESPONSES)
		gw_responses_get_usage(msg, &u);
	else
		gw_json_get_usage(msg, &u);
	gw_relay_note_usage(&r->out.usage, &u);
	note_id(r, &u);
}

/*
 * LiteLLM's headers about the key (its get_custom_headers), on every answer
 * once the caller is known, errors too; limits not set are left out, as
 * LiteLLM leaves out empty values.
 */
static void
key_headers(struct relay *r)
{
	const struct gw_keyrec *k = r->who.rec;
	char n[21], g[32];

	gw_req_add_header_str(r->req, "x-litellm-version", GW_VERSION);
	if (k == NULL)
		return;
	if (k->max_budget >= 0) {
		gw_fmt_g(g, k->max_budget, 10);
		gw_req_add_header_str(r->req, "x-litellm-key-max-budget", g);
	}
	if (k->rpm_limit >= 0) {
		gw_fmt_u64(n, (uint64_t)k->rpm_limit);
		gw_req_add_header_str(r->req, "x-litellm-key-rpm-limit", n);
	}
	if (k->tpm_limit >= 0) {
		gw_fmt_u64(n, (uint64_t)k->tpm_limit);
		gw_req_add_header_str(r->req, "x-litellm-key-tpm-limit", n);
	}
}

/* No printf: this runs on every request. */
void
gw_relay_answer_headers(
    struct gw_req *req, int64_t t_start, size_t fallbacks, const char *target)
{
	int64_t us = gw_now_mono_us() - t_start;
	char d[32];
	size_t n;

	if (us < 0)
		us = 0;
	n = gw_fmt_u64(d, (uint64_t)(us / 1000));
	d[n] = '.';
	d[n + 1] = (char)('0' + us % 1000 / 100);
	d[n + 2] = (char)('0' + us % 100 / 10);
	d[n + 3] = (char)('0' + us % 10);
	d[n + 4] = '\0';
	gw_req_add_header_str(req, "x-litellm-response-duration-ms", d);
	gw_fmt_u64(d, (uint64_t)fallbacks);
	gw_req_add_header_str(req, "x-litellm-attempted-fallbacks", d);
	if (target != NULL)
		gw_req_add_header_str(req, "x-litellm-model-id", target);
}

/*
 * What the answer came from, in the head of every answer after the
 * attempts (JSON, error, or a stream's head before its first chunk).
 */
static void
answer_headers(struct relay *r)
{
	gw_relay_answer_headers(r->req, r->t_start, r->t, r->target);
}

void
gw_relay_cost_headers(
    struct gw_req *req, const struct gw_principal *who, double cost)
{
	double ks = gw_budget_key_spend(who);
	char g[32];

	gw_fmt_g(g, cost, 10);
	gw_req_add_header_str(req, "x-litellm-response-cost", g);
	if (ks >= 0) {
		gw_fmt_g(g, ks + cost, 10);
		gw_req_add_header_str(req, "x-litellm-key-spend", g);
	}
}

/* Commit the client's answer to 200 text/event-stream. */
static void
sse_head(struct relay *r)
{
	if (r->req->head_sent)
		return;
	double ks = gw_budget_key_spend(&r->who);

	answer_headers(r);
	gw_req_add_header(r->req, "Cache-Control", "no-cache");
	gw_req_add_header(r->req, "X-Accel-Buffering", "no");
	if (ks >= 0) {
		char g[32];

		gw_fmt_g(g, ks, 10);
		gw_req_add_header_str(r->req, "x-litellm-key-spend", g);
	}
	gw_req_send_head(r->req, 200, "text/event-stream");
}

/* Write to the client; a failure means it is gone. */
static int
client_write(struct relay *r, const char *p, size_t n)
{
	if (gw_req_write(r->req, p, n) != GW_OK) {
		r->out.client_gone = 1;
		r->at.abort = ABORT_CLIENT;
		return -1;
	}
	return 0;
}

static int
client_flush(struct relay *r)
{
	if (gw_req_flush(r->req) != GW_OK) {
		r->out.client_gone = 1;
		r->at.abort = ABORT_CLIENT;
		return -1;
	}
	return 0;
}

static int
keepalive(struct relay *r, int64_t now)
{
	static const char ka[] = ": keepalive\n\n";

	sse_head(r);
	r->t_last_keepalive = now;
	if (client_write(r, ka, sizeof(ka) - 1) < 0 || client_flush(r) < 0)
		return -1;
	return 0;
}

/* One upstream SSE event: note usage, drop what the client did not ask. */
static int
on_event(void *arg, const char *ev, size_t len)
{
	struct relay *r = arg;
	const char *data;
	char *clean;
	size_t dlen, clen;
	unsigned keys = 0;
	int ret;

	if (gw_sse_data(ev, len, &data, &dlen) == 0) {
		if (gw_sse_is_done(data, dlen)) {
			r->at.done_seen = 1;
		} else {
			if (r->out.t_first_token == 0)
				r->out.t_first_token = gw_now_mono_us();
			r->out.chunks++;
			keys = gw_sse_keys(data, dlen);
			/* Parse only chunks that matter: usage, or capture. */
			int parse = r->cap.on || (keys & GW_SSE_USAGE);

			if (!parse && r->out.chunks == 1) {
				/* The first chunk's id, skimmed, not built. */
				struct gw_json_usage u = {0};

				if (gw_json_top_id(
				        data, dlen, &u.id, &u.id_len) == 0)
					note_id(r, &u);
			}
			if (parse) {
				json_object *o = NULL, *ch;
				char msg[128];
				int usage_only = 0;

				if (gw_json_parse(data, dlen, &o, msg,
				        sizeof(msg)) == GW_OK) {
					take_usage(r, o);
					gw_capture_chunk(&r->cap, o);
					ch = gw_json_get(o, "choices");
					usage_only =
					    ch != NULL &&
					    json_object_is_type(
					        ch, json_type_array) &&
					    json_object_array_length(ch) == 0;
				}
				json_object_put(o);
				if (usage_only) {
					r->out.chunks--;
					if (!r->client_usage)
						return 0;
				}
			}
		}
	}
	/* An error event's message is redacted as an error answer's is. */
	clean = keys & GW_SSE_ERROR
	            ? gw_redact_sse_error_data(ev, len, data, dlen, &clen)
	            : NULL;
	if (clean != NULL)
		ev = clean, len = clen;
	ret = client_write(r, ev, len) < 0 || client_write(r, "\n\n", 2) < 0;
	free(clean);
	return ret ? -1 : 0;
}

static int
on_head(void *arg, int status, const char *ctype, const char *retry_after)
{
	struct relay *r = arg;

	r->at.up_status = status;
	r->at.t_last_data = gw_now_mono_us();
	snprintf(r->at.retry_after, sizeof(r->at.retry_after), "%s",
	    retry_after ? retry_after : "");
	if (r->call == GW_CALL_PASSTHROUGH) {
		/* Relayed as it comes, errors too: the upstream's own answer.
		 */
		r->at.mode = MODE_RAW;
		answer_headers(r);
		gw_req_send_head(r->req, status,
		    ctype != NULL && ctype[0] != '\0'
		        ? ctype
		        : "application/octet-stream");
		return 0;
	}
	if (status >= 200 && status < 300 && r->stream && ctype != NULL &&
	    strncmp(ctype, "text/event-stream", 17) == 0) {
		r->at.mode = MODE_SSE;
		sse_head(r);
	} else if (status >= 200 && status < 300) {
		r->at.mode = MODE_BUFFER;
	} else {
		r->at.mode = MODE_ERROR;
	}
	return 0;
}

static void
on_drained(void *arg)
{
	struct relay *r = arg;

	if (r->at.xfer != NULL)
		gw_upstream_resume(r->at.xfer);
}

static int
on_data(void *arg, const char *p, size_t n)
{
	struct relay *r = arg;
	size_t cap;

	r->at.t_last_data = gw_now_mono_us();
	if (r->at.mode == MODE_RAW)
		return client_write(r, p, n) < 0 || client_flush(r) < 0 ? -1
		                                                        : 0;
	if (r->at.mode == MODE_SSE) {
		/* On the loop, a slow client pauses only its own upstream. */
		if (r->at.xfer != NULL &&
		    gw_req_backlog(r->req) > BACKLOG_MAX) {
			gw_req_on_drain(r->req, on_drained, r);
			gw_metrics_inc(GW_METRIC_SLOW_CLIENT_PAUSES, "", 1);
			r->at.paused = 1;
			/* Its queue must be draining, or no resume comes. */
			if (client_flush(r) < 0)
				return -1;
			return 1;
		}
		r->at.paused = 0;
		if (gw_sse_feed(&r->at.sse, p, n, on_event, r) < 0)
			return -1;
		/*
		 * After [DONE] the end of the request flushes, once the spend
		 * row is spooled: an answer complete means a row recorded. On
		 * the loop, what one read brought goes in one write
		 * (on_read_end), not one per HTTP chunk.
		 */
		return r->at.done_seen || r->at.xfer != NULL ? 0
		                                             : client_flush(r);
	}
	cap = r->at.mode == MODE_ERROR ? ERROR_BODY_MAX : ANSWER_MAX;
	if (r->at.resp.len + n > cap) {
		if (r->at.mode == MODE_ERROR) {
			/* Enough of an error message: keep the head. */
			if (r->at.resp.len < cap)
				gw_buf_append(
				    &r->at.resp, p, cap - r->at.resp.len);
			return 0;
		}
		r->at.abort = ABORT_TOO_BIG;
		return -1;
	}
	gw_buf_append(&r->at.resp, p, n);
	return 0;
}

/* On the loop: the events one read brought, written in one go. */
static int
on_read_end(void *arg)
{
	struct relay *r = arg;

	if (r->at.mode != MODE_SSE || r->at.done_seen)
		return 0;
	return client_flush(r);
}

static int
on_tick(void *arg)
{
	struct relay *r = arg;
	const struct gw_cfg *cfg = r->cfg;
	int64_t now = gw_now_mono_us();
	int64_t ka = (int64_t)cfg->stream_keepalive_s * 1000000;
	int64_t last;

	/*
	 * libcurl calls this on every turn of its loop: the checks below
	 * (a poll(2) among them) run at most every TICK_US.
	 */
	if (now - r->at.t_last_tick < TICK_US)
		return 0;
	r->at.t_last_tick = now;
	/* Its key refused since the stream began (revoke.h). */
	if (r->rv.rec != NULL) {
		r->revoked = gw_revoke_check(&r->rv, gw_now_real_us());
		if (r->revoked != GW_REVOKE_NONE) {
			r->at.abort = ABORT_REVOKED;
			return -1;
		}
	}
	if (gw_req_client_gone(r->req)) {
		r->out.client_gone = 1;
		r->at.abort = ABORT_CLIENT;
		return -1;
	}
	if (r->at.mode == MODE_NONE) {
		if (now - r->at.t_begin >
		    (int64_t)cfg->upstream_first_byte_timeout_s * 1000000) {
			r->at.abort = ABORT_FIRST_BYTE;
			return -1;
		}
	} else if (!r->at.paused &&
	           now - r->at.t_last_data >
	               (int64_t)cfg->upstream_idle_timeout_s * 1000000) {
		r->at.abort = ABORT_IDLE;
		return -1;
	}
	/* Keep a silent stream (cold model load, slow prefill) alive. */
	if (r->stream && ka > 0 && !r->at.paused &&
	    (r->at.mode == MODE_NONE || r->at.mode == MODE_SSE)) {
		last = r->t_last_keepalive > r->at.t_last_data
		           ? r->t_last_keepalive
		           : r->at.t_last_data;
		if (last == 0)
			last = r->t_start;
		if (now - last >= ka && keepalive(r, now) < 0)
			return -1;
	}
	return 0;
}

/* Start the next attempt from zero, keeping only buffer storage. */
static void
attempt_reset(struct relay *r)
{
	int64_t now = gw_now_mono_us();

	gw_buf_reset(&r->at.resp, 64 * 1024);
	gw_sse_reset(&r->at.sse);
	r->at = (struct attempt){.resp = r->at.resp,
	    .sse = r->at.sse,
	    .t_begin = now,
	    .t_last_tick = now};
}

/* A final SSE error event once the stream has started, then the end. */
static void
sse_error(struct relay *r, int status, const char *type, const char *msg)
{
	char *body = gw_err_json_new(status, type, NULL, msg);

	snprintf(r->req->err_type, sizeof(r->req->err_type), "%s", type);
	if (client_write(r, "data: ", 6) == 0 &&
	    client_write(r, body, strlen(body)) == 0 &&
	    client_write(r, "\n\n", 2) == 0)
		client_flush(r);
	free(body);
}

/*
 * The key was refused mid-request: a 401 in the OpenAI error shape, as the
 * last event of a stream under way. Its spend row says why.
 */
static void
end_revoked(struct relay *r)
{
	char msg[160];
	const char *type =
	    gw_revoke_describe(&r->rv, r->revoked, msg, sizeof(msg));

	if (r->req->head_sent)
		sse_error(r, 401, type, msg);
	else
		gw_reply_error_ex(r->req, 401, type, NULL, msg);
	gw_strlcpy(r->req->err_type,
	    r->revoked == GW_REVOKE_EXPIRED ? "key_expired" : "key_revoked",
	    sizeof(r->req->err_type));
}

/* Wraps a plain-text or foreign JSON error. */
void
gw_relay_reply_upstream_error(struct gw_req *req, int status, const char *body,
    size_t len, const char *retry_after)
{
	json_object *o = NULL, *e;
	const char *type = NULL, *param = NULL, *msg = NULL;
	char text[512], m[128], *clean;

	if (len > 0 && gw_json_parse(body, len, &o, m, sizeof(m)) == GW_OK) {
		e = gw_json_get(o, "error");
		if (e != NULL && json_object_is_type(e, json_type_object)) {
			msg = gw_json_get_str(e, "message");
			type = gw_json_get_str(e, "type");
			param = gw_json_get_str(e, "param");
		} else if (e != NULL &&
		           json_object_is_type(e, json_type_string)) {
			msg = json_object_get_string(e);
		} else {
			msg = gw_json_get_str(o, "message");
			if (msg == NULL)
				msg = gw_json_get_str(o, "detail");
		}
	}
	if (msg == NULL && len > 0) {
		snprintf(text, sizeof(text), "%.*s",
		    (int)(len < sizeof(text) - 1 ? len : sizeof(text) - 1),
		    body);
		msg = gw_strtrim(text);
	}
	if (msg == NULL || msg[0] == '\0')
		msg = gw_err_reason(status);
	if (type == NULL || type[0] == '\0')
		type = gw_err_type_for_http(status);
	if (status == 429)
		gw_req_add_header(req, "Retry-After", "%s",
		    retry_after != NULL && retry_after[0] ? retry_after : "1");
	/* Its words, not a key it may quote (#15, 7). */
	clean = gw_redact_new(msg, NULL);
	gw_reply_error_ex(req, status, type, param, clean);
	free(clean);
	json_object_put(o);
}

void
gw_relay_timeout_msg(
    const struct gw_cfg *cfg, int first_byte, char *buf, size_t size)
{
	snprintf(buf, size,
	    first_byte ? "Upstream did not answer within %d s"
	               : "Upstream stalled for more than %d s",
	    first_byte ? cfg->upstream_first_byte_timeout_s
	               : cfg->upstream_idle_timeout_s);
}

void
gw_relay_failed_msg(
    const struct gw_upstream_result *res, char *buf, size_t size)
{
	snprintf(buf, size, "%s: %s",
	    res->connect_failed ? "Upstream unreachable"
	                        : "Upstream connection failed",
	    res->err);
}

static void
reply_answer(struct relay *r)
{
	json_object *o = NULL;
	struct gw_json_usage u;
	char m[256];
	int ok;

	/*
	 * The answer is relayed as it came: unless it is captured, check it
	 * and read its usage without building it (a json-c parse costs more
	 * than the rest of the request).
	 */
	/* A Responses answer's usage has its own names: parsed. */
	if (r->cap.on || r->call == GW_CALL_RESPONSES)
		ok = gw_json_parse(r->at.resp.p, r->at.resp.len, &o, m,
		         sizeof(m)) == GW_OK &&
		     json_object_is_type(o, json_type_object);
	else
		ok = gw_json_scan_usage(r->at.resp.p, r->at.resp.len, &u) ==
		     GW_OK;
	if (!ok) {
		r->out.up_error = "malformed";
		gw_log_warn(r->req->id, "relay",
		    "upstream sent malformed JSON (%zu "
		    "bytes, status %d)",
		    r->at.resp.len, r->at.up_status);
		gw_reply_error_ex(r->req, 502, "upstream_error", NULL,
		    "Upstream returned a malformed response");
		json_object_put(o);
		return;
	}
	if (o != NULL) {
		take_usage(r, o);
		gw_capture_answer(&r->cap, o);
		json_object_put(o);
	} else {
		gw_relay_note_usage(&r->out.usage, &u);
		note_id(r, &u);
	}
	if (r->out.usage.known)
		gw_relay_cost_headers(r->req, &r->who,
		    gw_price_cost(r->cfg, r->target, r->out.usage.prompt,
		        r->out.usage.completion));
	gw_reply(r->req, r->at.up_status, "application/json", r->at.resp.p,
	    r->at.resp.len);
}

enum gw_status
gw_relay_parse_body(enum gw_call call, const char *buf, size_t len,
    size_t max_values, json_object **body, struct gw_json_doc *doc,
    struct gw_verr *e)
{
	struct gw_json_doc mine;

	*body = NULL;
	e->param[0] = '\0';
	if (gw_json_parse_doc(buf, len, max_values, body,
	        doc != NULL ? doc : &mine, e->msg, sizeof(e->msg)) != GW_OK)
		return GW_E_INVALID;
	switch (call) {
	case GW_CALL_CHAT:
		return gw_validate_chat(*body, e);
	case GW_CALL_COMPLETION:
		return gw_validate_completion(*body, e);
	case GW_CALL_EMBEDDING:
		return gw_validate_embedding(*body, e);
	case GW_CALL_RERANK:
		return gw_rerank_validate(*body, e);
	case GW_CALL_RESPONSES:
		return gw_responses_validate(*body, e);
	case GW_CALL_PASSTHROUGH:
		/* Relayed as is: any JSON (gw_relay does not even need that).
		 */
		return GW_OK;
	case GW_CALL_TRANSCRIPTION: /* audio.c's: never relayed here */
	case GW_CALL_TRANSLATION:
	case GW_CALL_SPEECH:
		break;
	}
	return gw_validate_chat(*body, e);
}

static enum gw_status
bad_request(struct gw_req *req, const struct gw_verr *e)
{
	gw_reply_error_ex(req, 400, "invalid_request_error",
	    e->param[0] ? e->param : NULL, e->msg);
	return GW_OK;
}

/* Ask the upstream for usage in streams; remember if the client did. */
static void
force_stream_usage(struct relay *r)
{
	json_object *so = gw_json_get(r->body, "stream_options"), *iu;

	/* None asked for (not even null): added to the text as it is sent. */
	if (!json_object_object_get_ex(r->body, "stream_options", NULL) &&
	    r->doc.spliceable && r->doc.model_end > 0) {
		r->add_usage = 1;
		r->client_usage = 0;
		return;
	}
	r->doc.spliceable = 0; /* the tree changes */
	if (so == NULL || !json_object_is_type(so, json_type_object)) {
		so = json_object_new_object();
		json_object_object_add(r->body, "stream_options", so);
	}
	iu = gw_json_get(so, "include_usage");
	r->client_usage = iu != NULL && json_object_get_boolean(iu);
	json_object_object_add(so, "include_usage", json_object_new_boolean(1));
}

static void
log_outcome(struct relay *r)
{
	gw_req_log_field(r->req, "model", r->model);
	gw_req_log_field(r->req, "target", r->target ? r->target : "-");
	gw_req_log_field(r->req, "stream", r->stream ? "1" : "0");
	if (r->at.up_status)
		gw_req_log_int(r->req, "up_status", r->at.up_status);
	if (r->out.usage.known) {
		gw_req_log_int(r->req, "prompt_tokens", r->out.usage.prompt);
		gw_req_log_int(
		    r->req, "completion_tokens", r->out.usage.completion);
	}
	/* Chunks relayed: what accounting can use when usage is lost. */
	if (r->stream)
		gw_req_log_int(r->req, "chunks", r->out.chunks);
	if (r->out.t_first_token)
		gw_req_log_milli(
		    r->req, "ttft_ms", r->out.t_first_token - r->t_start);
	if (r->out.client_gone)
		gw_req_log_field(r->req, "client_gone", "1");
	if (r->sq.t_enter)
		gw_req_log_milli(r->req, "queue_ms", r->sq.wait_us);
}

/* After the last attempt: answer from what the relay saw. */
static void
finish(struct relay *r, enum gw_status st, const struct gw_upstream_result *res)
{
	struct gw_req *req = r->req;
	char msg[512];

	/* The upstream's failure, if any, by kind (for metrics). */
	if (r->at.abort == ABORT_FIRST_BYTE || r->at.abort == ABORT_IDLE)
		r->out.up_error = "timeout";
	else if (r->at.abort == ABORT_TOO_BIG)
		r->out.up_error = "too_large";
	else if (st != GW_OK && !r->out.client_gone)
		r->out.up_error = res->connect_failed ? "connect"
		                  : req->head_sent    ? "midstream"
		                                      : "connection";
	else if (r->at.mode == MODE_ERROR)
		r->out.up_error = r->at.up_status == 429   ? "status_429"
		                  : r->at.up_status >= 500 ? "status_5xx"
		                                           : "status_4xx";
	if (r->out.client_gone)
		return;
	/* A passthrough's answer under way ends as it ended upstream. */
	if (r->at.mode == MODE_RAW && req->head_sent)
		return;
	if (!req->head_sent)
		answer_headers(r);
	if (r->at.abort == ABORT_REVOKED) {
		end_revoked(r);
		return;
	}
	if (r->at.abort == ABORT_FIRST_BYTE || r->at.abort == ABORT_IDLE) {
		gw_relay_timeout_msg(
		    r->cfg, r->at.abort == ABORT_FIRST_BYTE, msg, sizeof(msg));
		if (req->head_sent)
			sse_error(r, 504, "timeout_error", msg);
		else
			gw_reply_error_ex(req, 504, "timeout_error", NULL, msg);
		return;
	}
	if (r->at.abort == ABORT_TOO_BIG) {
		gw_reply_error_ex(req, 502, "upstream_error", NULL,
		    "Upstream answer is too large");
		return;
	}
	if (st != GW_OK) {
		gw_relay_failed_msg(res, msg, sizeof(msg));
		if (req->head_sent)
			sse_error(r, 502, "upstream_error", msg);
		else
			gw_reply_error_ex(
			    req, 502, "upstream_error", NULL, msg);
		return;
	}
	switch (r->at.mode) {
	case MODE_SSE:
		break;
	case MODE_BUFFER:
		reply_answer(r);
		break;
	case MODE_ERROR:
		if (req->head_sent)
			sse_error(r, r->at.up_status,
			    gw_err_type_for_http(r->at.up_status),
			    "Upstream error");
		else if (r->call == GW_CALL_RESPONSES &&
		         gw_responses_unsupported(
		             r->at.up_status, r->at.resp.p, r->at.resp.len)) {
			snprintf(msg, sizeof(msg),
			    "The upstream does not serve the Responses API "
			    "(POST /v1/responses answered %d); use "
			    "/v1/chat/completions",
			    r->at.up_status);
			gw_reply_error_ex(
			    req, 501, "not_implemented_error", NULL, msg);
		} else
			gw_relay_reply_upstream_error(r->req, r->at.up_status,
			    r->at.resp.p, r->at.resp.len, r->at.retry_after);
		break;
	case MODE_RAW:
		break;
	case MODE_NONE:
		gw_reply_error_ex(req, 502, "upstream_error", NULL,
		    "Upstream sent no answer");
		break;
	}
}

/*
 * Append name="value" (escaped) to the label string buf[0..*off) unless
 * value is NULL or empty: Prometheus reads an empty label as absent, and
 * the short string keeps LiteLLM's many label names under
 * GW_METRICS_LABELS_MAX. *off becomes len when it does not fit.
 */
static void
ll_label(
    char *buf, size_t len, size_t *off, const char *name, const char *value)
{
	size_t o = *off, nl, n;
	const char *v = value;

	if (value == NULL || value[0] == '\0' || o >= len)
		return;
	nl = strlen(name);
	if (o + nl + 4 >= len) {
		*off = len;
		return;
	}
	if (o > 0)
		buf[o++] = ',';
	memcpy(buf + o, name, nl);
	o += nl;
	buf[o++] = '=';
	buf[o++] = '"';
	/* Plain ASCII as is (a key hash, a model name); the rest escaped. */
	while (*v != '\0' && o + 2 < len && (unsigned char)*v < 0x80 &&
	       *v != '"' && *v != '\\' && *v != '\n')
		buf[o++] = *v++;
	if (*v != '\0') {
		n = gw_metrics_label_escape(buf + o, len - o, v);
		if (n + 2 >= len - o) {
			*off = len;
			return;
		}
		o += n;
	}
	if (o + 2 > len - 1) {
		*off = len;
		return;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	*off = o;
}

/* The label string, or NULL (the "other" series) when it did not fit. */
static const char *
ll_done(const char *buf, size_t len, size_t off)
{
	return off < len ? buf : NULL;
}

/* LiteLLM's exception_class for an HTTP status (openai-python's names). */
static const char *
ll_exception_class(int status)
{
	switch (status) {
	case 400:
		return "BadRequestError";
	case 401:
		return "AuthenticationError";
	case 403:
		return "PermissionDeniedError";
	case 404:
		return "NotFoundError";
	case 408:
	case 504:
		return "Timeout";
	case 413:
	case 422:
		return "UnprocessableEntityError";
	case 429:
		return "RateLimitError";
	case 502:
		return "APIConnectionError";
	case 503:
		return "ServiceUnavailableError";
	default:
		return status >= 500 ? "InternalServerError" : "APIError";
	}
}

/*
 * The same request under LiteLLM's metric and label names: the key labels
 * once, then each series' own. Master-key requests carry no key labels.
 */
/*
 * The key labels of the last key this thread counted: a key's requests
 * come in runs, with the same labels each time. A changed key is read into
 * a new record, so (record, time of its read, hash) names its contents;
 * records never read from the database (fetched_us 0) are not kept.
 */
static _Thread_local struct {
	const struct gw_keyrec *rec;
	int64_t fetched_us;
	char token[65];
	size_t n;
	char s[GW_METRICS_LABELS_MAX];
} key_labels;

/* The key labels of k (NULL: none) in the thread's cache; its length. */
static size_t
ll_key_labels(const struct gw_keyrec *k)
{
	size_t n = 0;

	if (k == NULL) {
		key_labels.rec = NULL;
		key_labels.s[0] = '\0';
		return key_labels.n = 0;
	}
	if (k == key_labels.rec && k->fetched_us != 0 &&
	    k->fetched_us == key_labels.fetched_us &&
	    strcmp(k->token, key_labels.token) == 0)
		return key_labels.n;
	key_labels.s[0] = '\0';
	ll_label(
	    key_labels.s, sizeof(key_labels.s), &n, "hashed_api_key", k->token);
	ll_label(key_labels.s, sizeof(key_labels.s), &n, "api_key_alias",
	    k->key_alias);
	ll_label(key_labels.s, sizeof(key_labels.s), &n, "team", k->team_id);
	ll_label(key_labels.s, sizeof(key_labels.s), &n, "user", k->user_id);
	if (n >= sizeof(key_labels.s)) {
		n = 0;
		key_labels.s[0] = '\0';
	}
	key_labels.rec = k;
	key_labels.fetched_us = k->fetched_us;
	memcpy(key_labels.token, k->token, sizeof(key_labels.token));
	return key_labels.n = n;
}

static void
count_litellm(struct relay *r, const struct gw_spend_rec *s, const char *model)
{
	const struct gw_keyrec *k = r->who.rec;
	char l[GW_METRICS_LABELS_MAX], st[21];
	const char *key = key_labels.s;
	size_t kn = ll_key_labels(k), n;
	/* A passthrough counts under its path (a listed one: bounded). */
	const char *route = r->pt_path ? r->pt_path : call_path(r->call);
	double v;

	gw_fmt_u64(st, (uint64_t)(s->status > 0 ? s->status : 0));

	memcpy(l, key, kn + 1);
	n = kn;
	ll_label(l, sizeof(l), &n, "requested_model", r->req->model);
	ll_label(l, sizeof(l), &n, "status_code", st);
	ll_label(l, sizeof(l), &n, "route", route);
	gw_metrics_inc(GW_METRIC_LL_REQUESTS, ll_done(l, sizeof(l), n), 1);
	if (s->status >= 400) {
		memcpy(l, key, kn + 1);
		n = kn;
		ll_label(l, sizeof(l), &n, "requested_model", r->req->model);
		ll_label(l, sizeof(l), &n, "exception_status", st);
		ll_label(l, sizeof(l), &n, "exception_class",
		    ll_exception_class(s->status));
		ll_label(l, sizeof(l), &n, "route", route);
		gw_metrics_inc(
		    GW_METRIC_LL_FAILED, ll_done(l, sizeof(l), n), 1);
	}
	memcpy(l, key, kn + 1);
	n = kn;
	ll_label(l, sizeof(l), &n, "model", model);
	if (s->cost > 0)
		gw_metrics_add_double(
		    GW_METRIC_LL_SPEND, ll_done(l, sizeof(l), n), s->cost);
	ll_label(l, sizeof(l), &n, "requested_model", r->req->model);
	if (s->total_tokens > 0) {
		gw_metrics_inc(GW_METRIC_LL_TOTAL_TOKENS,
		    ll_done(l, sizeof(l), n), (uint64_t)s->total_tokens);
		if (s->prompt_tokens > 0)
			gw_metrics_inc(GW_METRIC_LL_INPUT_TOKENS,
			    ll_done(l, sizeof(l), n),
			    (uint64_t)s->prompt_tokens);
		if (s->completion_tokens > 0)
			gw_metrics_inc(GW_METRIC_LL_OUTPUT_TOKENS,
			    ll_done(l, sizeof(l), n),
			    (uint64_t)s->completion_tokens);
	}
	gw_metrics_observe(GW_HIST_LL_REQUEST, ll_done(l, sizeof(l), n),
	    (double)(s->end_us - s->start_us) / 1e6);
	if (r->at.up_status != 0 || r->out.up_error != NULL)
		gw_metrics_observe(GW_HIST_LL_API, ll_done(l, sizeof(l), n),
		    (double)r->out.up_us / 1e6);
	if (k != NULL && k->max_budget >= 0 &&
	    (v = gw_budget_key_spend(&r->who)) >= 0) {
		n = 0;
		l[0] = '\0';
		ll_label(l, sizeof(l), &n, "hashed_api_key", k->token);
		ll_label(l, sizeof(l), &n, "api_key_alias", k->key_alias);
		gw_metrics_gauge_set(GW_METRIC_LL_KEY_MAX_BUDGET,
		    ll_done(l, sizeof(l), n), k->max_budget);
		gw_metrics_gauge_set(GW_METRIC_LL_KEY_BUDGET_LEFT,
		    ll_done(l, sizeof(l), n), k->max_budget - v);
	}
}

/* Tokens, spend, upstream latency and errors, time to first token. */
static void
count_metrics(struct relay *r, const struct gw_spend_rec *s, const char *model)
{
	char labels[GW_METRICS_LABELS_MAX], n[24];

	if (s->prompt_tokens > 0)
		gw_metrics_inc(GW_METRIC_TOKENS,
		    gw_metrics_labels(labels, sizeof(labels), "model", model,
		        "kind", "prompt", NULL),
		    (uint64_t)s->prompt_tokens);
	if (s->completion_tokens > 0)
		gw_metrics_inc(GW_METRIC_TOKENS,
		    gw_metrics_labels(labels, sizeof(labels), "model", model,
		        "kind", "completion", NULL),
		    (uint64_t)s->completion_tokens);
	if (s->cost > 0)
		gw_metrics_add_double(GW_METRIC_SPEND_USD,
		    gw_metrics_labels(
		        labels, sizeof(labels), "model", model, NULL),
		    s->cost);
	if (r->at.up_status != 0 || r->out.up_error != NULL)
		gw_metrics_observe(GW_HIST_UPSTREAM,
		    gw_metrics_labels(
		        labels, sizeof(labels), "model", model, NULL),
		    (double)r->out.up_us / 1e6);
	if (r->out.up_error != NULL)
		gw_metrics_inc(GW_METRIC_UPSTREAM_ERRORS,
		    gw_metrics_labels(
		        labels, sizeof(labels), "kind", r->out.up_error, NULL),
		    1);
	if (r->stream && s->first_token_us)
		gw_metrics_observe(GW_HIST_TTFT,
		    gw_metrics_labels(
		        labels, sizeof(labels), "model", model, NULL),
		    (double)(s->first_token_us - s->start_us) / 1e6);
	(void)n;
	count_litellm(r, s, model);
}

/*
 * The estimate stored (flagged usage_estimated) when the upstream reported
 * no usage: 4 characters of prompt text per token, and one token per
 * streamed chunk.
 */
static size_t
prompt_chars(json_object *body)
{
	return body == NULL
	           ? 0
	           : gw_capture_text_chars(gw_json_get(body, "messages")) +
	                 gw_capture_text_chars(gw_json_get(body, "prompt")) +
	                 gw_capture_text_chars(gw_json_get(body, "input")) +
	                 gw_capture_text_chars(
	                     gw_json_get(body, "instructions"));
}

static void
estimate_usage(struct relay *r)
{
	size_t chars = r->slim ? r->prompt_chars : prompt_chars(r->body);

	r->out.usage.prompt = (int64_t)((chars + 3) / 4);
	r->out.usage.completion = r->out.chunks;
	r->out.usage.total = r->out.usage.prompt + r->out.usage.completion;
}

/*
 * The spend row's call_type, by enum gw_call: ours for the first three
 * (the spend API answers LiteLLM's acompletion, atext_completion,
 * aembedding for them), LiteLLM's own names for the rest.
 */
static const char *const call_names[] = {"chat", "completion", "embedding",
    "arerank", "aresponses", "pass_through_endpoint",
    /* audio.c records its own rows; here for a complete table */
    "atranscription", "atranscription", "aspeech"};

/*
 * Append s[0, n) to b as a JSON string, trimmed of spaces; not when empty,
 * not a string Langfuse could not take (gw_capture_str_ok), not past
 * GW_CAPTURE_TAGS_MAX tags (*count so far).
 */
static void
put_tag(struct gw_buf *b, const char *s, size_t n, int *count)
{
	char tag[GW_CAPTURE_STR_MAX + 1];

	while (n > 0 && (*s == ' ' || *s == '\t'))
		s++, n--;
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (!gw_capture_str_ok(s, n) || *count >= GW_CAPTURE_TAGS_MAX)
		return;
	memcpy(tag, s, n);
	tag[n] = '\0';
	gw_buf_puts(b, (*count)++ ? "," : "");
	gw_jw_quote(b, tag);
}

/*
 * The request's tags as a JSON array into b: the strings of
 * metadata.tags, then the comma-separated x-litellm-tags header (as
 * LiteLLM takes them). b stays empty when there are none.
 */
static void
spend_tags(struct gw_req *req, json_object *body, struct gw_buf *b)
{
	json_object *t =
	    body ? gw_json_get(gw_json_get(body, "metadata"), "tags") : NULL;
	/* The FastCGI name, not gw_req_header: this runs for every request. */
	const char *h = gw_req_param(req, "HTTP_X_LITELLM_TAGS"), *c;
	size_t i, n;
	int count = 0;

	if (t == NULL && h == NULL)
		return;
	gw_buf_puts(b, "[");
	n = t != NULL && json_object_is_type(t, json_type_array)
	        ? json_object_array_length(t)
	        : 0;
	for (i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(t, i);

		if (json_object_is_type(e, json_type_string))
			put_tag(b, json_object_get_string(e),
			    (size_t)json_object_get_string_len(e), &count);
	}
	for (; h != NULL; h = c ? c + 1 : NULL) {
		c = strchr(h, ',');
		put_tag(b, h, c ? (size_t)(c - h) : strlen(h), &count);
	}
	gw_buf_puts(b, "]");
}

/* The request's metadata and end user, for the spend row. */
static json_object *
spend_metadata(json_object *body)
{
	json_object *m = gw_json_get(body, "metadata"), *out;
	const char *user = gw_json_get_str(body, "user");

	out = json_object_new_object();
	if (m != NULL && json_object_is_type(m, json_type_object)) {
		json_object_object_foreach(m, k, v)
		{
			json_object_object_add(out, k, json_object_get(v));
		}
	}
	if (user != NULL)
		json_object_object_add(
		    out, "end_user", json_object_new_string(user));
	return out;
}

/* Spool the request's spend row (before its answer is complete). */
/*
 * What a model name is counted under in metrics (#15, 5): itself only when
 * the caller may use it and it is known (an alias or one of its targets,
 * or a name the upstream served); else "other", so that invented names
 * cannot push the real series out of the shared table.
 */
static const char *
label_of(const struct relay *r, const char *name, int served)
{
	struct gw_targets t = r->targets;
	size_t i;

	if (name == NULL)
		return "";
	if (!r->model_ok)
		return "other";
	if (served)
		return name;
	/* Resolved already unless the request was refused before it. */
	if (t.n == 0)
		gw_alias_resolve(r->cfg, r->model, &t);
	if (t.aliased) {
		if (strcmp(name, r->model) == 0)
			return name;
		for (i = 0; i < t.n; i++)
			if (strcmp(name, t.models[i]) == 0)
				return name;
	}
	return "other";
}

void
gw_relay_spend_ending(struct gw_spend_rec *s, const struct gw_req *req,
    int64_t t_first_mono, int client_gone)
{
	s->start_us = req->start_real_us;
	s->end_us = gw_now_real_us();
	s->first_token_us =
	    t_first_mono
	        ? req->start_real_us + (t_first_mono - req->start_mono_us)
	        : 0;
	s->status = req->status ? req->status : 499;
	s->error_type = req->err_type[0] ? req->err_type
	                : client_gone    ? "client_disconnected"
	                                 : NULL;
	s->client_disconnected = client_gone;
}

static void
record_spend(struct relay *r)
{
	struct gw_req *req = r->req;
	json_object *body = r->body;
	struct gw_spend_rec s = {0};
	int reached = r->at.up_status >= 200 && r->at.up_status < 300;
	char session[GW_CAPTURE_STR_MAX + 1];

	/*
	 * Estimated when the upstream said nothing, but not for a rerank
	 * (its per-request price counts it) or a passthrough (cost 0).
	 */
	int estimate = !r->out.usage.known && reached &&
	               r->call != GW_CALL_RERANK &&
	               r->call != GW_CALL_PASSTHROUGH;

	if (estimate)
		estimate_usage(r);
	s.request_id = req->id;
	s.who = &r->who;
	s.model = r->model;
	s.actual_model = r->at.up_status ? r->target : NULL;
	s.call_type = call_names[r->call];
	s.usage_estimated = estimate;
	if (r->call == GW_CALL_PASSTHROUGH) {
		/* Counted, never charged: whatever it says is not tokens. */
	} else if (r->out.usage.known || reached) {
		s.prompt_tokens = r->out.usage.prompt;
		s.completion_tokens = r->out.usage.completion;
		s.total_tokens = r->out.usage.total;
	}
	s.cost = r->call == GW_CALL_PASSTHROUGH || !reached
	             ? 0
	             : gw_price_cost(req->cfg, s.actual_model, s.prompt_tokens,
	                   s.completion_tokens);
	gw_relay_spend_ending(
	    &s, req, r->out.t_first_token, r->out.client_gone);
	s.stream = r->stream;
	s.metadata = body ? spend_metadata(body) : NULL;
	/* The scheduler's wait before the upstream call (scheduler.h). */
	if (s.metadata != NULL && r->sq.t_enter)
		json_object_object_add(s.metadata, "queue_time_seconds",
		    json_object_new_double((double)r->sq.wait_us / 1e6));
	s.response_id = r->out.resp_id[0] ? r->out.resp_id : NULL;
	s.request_tags = r->tags.len ? r->tags.p : NULL;
	s.session_id = gw_capture_session_id(body, session) ? session : NULL;
	if (req->cfg->langfuse_enabled) {
		/* The queue wait goes to Langfuse too (issue 21). */
		if (r->sq.t_enter)
			r->cap.sched_queue_wait_us = r->sq.wait_us;
		gw_capture_request(&r->cap, body);
		s.lf_mode = gw_capture_mode_name(&r->cap);
		s.lf_input = gw_capture_input(&r->cap, body);
		s.lf_output = gw_capture_output(&r->cap);
		s.lf_trace = gw_capture_trace(&r->cap, body);
	}
	gw_spend_record(req->cfg, &s);
	gw_strlcpy(
	    req->model, label_of(r, r->model, reached), sizeof(req->model));
	count_metrics(r, &s, label_of(r, s.actual_model, reached));
	json_object_put(s.metadata);
	json_object_put(s.lf_input);
	json_object_put(s.lf_output);
	json_object_put(s.lf_trace);
}

/*
 * r->sent: the client's text with the model set to r->target (and, the
 * first time, stream_options added); after that, r->sent's own text with
 * the model changed again (a fallback: the request may have left the
 * thread that holds the client's text).
 */
static void
splice_target(struct relay *r)
{
	struct gw_buf out = {NULL, 0, 0};

	if (r->sent.p == NULL) {
		gw_json_splice(&r->sent, r->req->body.p, r->req->body.len,
		    &r->doc, r->target,
		    r->add_usage ? "\"stream_options\":{\"include_usage\":true}"
		                 : NULL);
		return;
	}
	gw_json_splice(&out, r->sent.p, r->sent.len, &r->doc, r->target, NULL);
	gw_buf_fini(&r->sent);
	r->sent = out;
}

/*
 * The body as the client's text in parts, the model replaced: the text up
 * to the model, the target quoted, the rest. r->doc keeps the client's
 * text's offsets, so a fallback does the same with its own target.
 */
static void
splice_parts(struct relay *r)
{
	const char *t = r->req->body.p;
	size_t len = r->req->body.len;

	gw_buf_reset(&r->qmodel, SIZE_MAX);
	gw_jw_quote(&r->qmodel, r->target);
	r->parts[0] = (struct iovec){(void *)t, r->doc.model_at};
	r->parts[1] = (struct iovec){r->qmodel.p, r->qmodel.len};
	r->parts[2] = (struct iovec){
	    (void *)(t + r->doc.model_end), len - r->doc.model_end};
	r->post.parts = r->parts;
	r->post.nparts = 3;
	r->post.body = NULL;
	r->post.body_len =
	    r->doc.model_at + r->qmodel.len + (len - r->doc.model_end);
}

/* Aim the next attempts at targets[t]: the body names it. */
static void
set_target(struct relay *r)
{
	r->target = r->targets.models[r->t];
	if (r->call == GW_CALL_PASSTHROUGH) {
		/* The client's bytes, as they came. */
		r->post.body = r->req->body.p ? r->req->body.p : "";
		r->post.body_len = r->req->body.len;
		return;
	}
	if ((r->post.body != NULL || r->post.parts != NULL) &&
	    r->built_for == r->target)
		return; /* built before the request left its thread */
	r->built_for = r->target;
	if (r->here && r->doc.spliceable && r->doc.model_end > 0 &&
	    r->sent.p == NULL && !r->add_usage &&
	    r->req->body.len + strlen(r->target) >= PARTS_MIN) {
		splice_parts(r);
		return;
	}
	r->post.parts = NULL;
	if (r->doc.spliceable && r->doc.model_end > 0) {
		splice_target(r);
		r->post.body = r->sent.p;
		r->post.body_len = r->sent.len;
		return;
	}
	json_object_object_add(
	    r->body, "model", json_object_new_string(r->target));
	r->post.body = gw_json_str(r->body, &r->post.body_len);
}

/*
 * An attempt ended with st: 1 when another follows (the same target
 * again, or the alias's next model), 0 when that was the last.
 */
static int
attempt_next(
    struct relay *r, enum gw_status st, const struct gw_upstream_result *res)
{
	struct gw_req *req = r->req;

	r->out.up_us += gw_now_mono_us() - r->at.t_begin;
	/* Retry only what failed before any byte came back. */
	if (!(st == GW_OK || r->out.client_gone || req->head_sent ||
	        res->bytes > 0 || res->http_status != 0)) {
		gw_log_warn(req->id, "relay", "upstream %s for %s (try %d): %s",
		    res->connect_failed ? "unreachable" : "failed", r->target,
		    r->retries + 1, res->err);
		if (r->retries < r->cfg->upstream_retries) {
			r->retries++;
			return 1;
		}
	}
	if (r->out.client_gone || req->head_sent)
		return 0;
	/* Fall back to the alias's next model on 5xx or no answer. */
	if (r->t + 1 < r->targets.n &&
	    ((st != GW_OK && res->bytes == 0 && r->at.abort == ABORT_NONE) ||
	        (st == GW_OK && r->at.mode == MODE_ERROR &&
	            r->at.up_status >= 500))) {
		gw_log_warn(req->id, "relay", "falling back from %s to %s",
		    r->target, r->targets.models[r->t + 1]);
		r->t++;
		r->retries = 0;
		set_target(r);
		return 1;
	}
	return 0;
}

/* However the request ended: its spend row, its slots back, its memory. */
static void
relay_end(struct relay *r)
{
	struct gw_req *req = r->req;

	gw_revoke_remove(&r->rv);
	if (r->sq.slot)
		gw_scheduler_leave(&r->sq, gw_now_mono_us());
	if (r->who.role != GW_ROLE_NONE)
		record_spend(r);
	gw_admit_done(&r->lim, r->out.usage.total, gw_now_real_us() * 1000);
	gw_auth_release(&r->who);
	json_object_put(r->body);
	gw_buf_fini(&r->sent);
	gw_buf_fini(&r->qmodel);
	gw_buf_fini(&r->at.resp);
	gw_sse_fini(&r->at.sse);
	gw_capture_fini(&r->cap);
	gw_buf_fini(&r->tags);
	free(r->url);
	free(r->model);
	free(r->pt_path);
	if (req->dout != NULL)
		gw_req_done(req);
	free(r);
}

/* The last attempt is over: answer from what the relay saw, and end. */
static void
relay_finish(
    struct relay *r, enum gw_status st, const struct gw_upstream_result *res)
{
	finish(r, st, res);
	log_outcome(r);
	relay_end(r);
}

/* ---- on the event loop: streams hold no thread. */

static struct gw_upstream_multi *loop_multi; /* used by the loop only */

static void loop_done(
    void *arg, enum gw_status st, const struct gw_upstream_result *res);

static void
loop_attempt(struct relay *r)
{
	attempt_reset(r);
	r->at.xfer = gw_upstream_start(loop_multi, &r->post, &r->cb, loop_done);
}

static void
loop_done(void *arg, enum gw_status st, const struct gw_upstream_result *res)
{
	struct relay *r = arg;

	r->at.xfer = NULL;
	if (attempt_next(r, st, res))
		loop_attempt(r);
	else
		relay_finish(r, st, res);
}

/*
 * A stream holds its relay for minutes: once its body's text is built
 * (spliced, so no fallback needs the tree) and no Langfuse capture reads
 * the tree, only what its spend row reads stays (metadata, user) and the
 * prompt's size for an estimate.
 */
static void
slim_body(struct relay *r)
{
	static const char *const keep[] = {"metadata", "user"};
	json_object *slim, *v;
	size_t i;

	if (r->body == NULL || !r->doc.spliceable || r->sent.p == NULL ||
	    r->cap.on || r->cfg->langfuse_enabled)
		return;
	r->prompt_chars = prompt_chars(r->body);
	/* None of them, and no queue wait to note: no object at all. */
	slim = r->sq.t_enter ? json_object_new_object() : NULL;
	for (i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
		if (json_object_object_get_ex(r->body, keep[i], &v)) {
			if (slim == NULL)
				slim = json_object_new_object();
			json_object_object_add(
			    slim, keep[i], json_object_get(v));
		}
	json_object_put(r->body);
	r->body = slim;
	r->slim = 1;
}

/* On the loop thread, with the request that lives on (gw_req_go_async). */
static void
loop_start(struct gw_req *detached, void *arg)
{
	struct relay *r = arg;

	r->req = detached;
	r->post.request_id = detached->id;
	if (loop_multi == NULL)
		loop_multi = gw_upstream_multi_new(gw_loop_get());
	set_target(r);
	loop_attempt(r);
}

/* ---- [scheduler]: a request that waits for its model (scheduler.h). */

/*
 * A queued request asks again: 1 when it may go upstream, 0 to wait on,
 * -1 when it is over (its client left, or the wait outlasted
 * first_byte_timeout_s: answered 504). A stream's client gets keep-alives
 * meanwhile, as during a cold load.
 */
static int
sched_check(struct relay *r, int64_t now)
{
	const struct gw_cfg *cfg = r->cfg;
	int64_t ka = (int64_t)cfg->stream_keepalive_s * 1000000, last;
	char msg[160];

	if (gw_req_client_gone(r->req)) {
		r->out.client_gone = 1;
		gw_scheduler_leave(&r->sq, now);
		return -1;
	}
	if (gw_scheduler_poll(&r->sq, cfg, now) != GW_SCHEDULER_WAIT)
		return 1;
	if (now - r->t_start >
	    (int64_t)cfg->upstream_first_byte_timeout_s * 1000000) {
		gw_scheduler_leave(&r->sq, now);
		snprintf(msg, sizeof(msg),
		    "Model %s was not scheduled within %d s (other models "
		    "held the upstream)",
		    r->targets.models[0], cfg->upstream_first_byte_timeout_s);
		r->out.up_error = "timeout";
		if (r->req->head_sent) {
			sse_error(r, 504, "timeout_error", msg);
		} else {
			answer_headers(r);
			gw_reply_error_ex(
			    r->req, 504, "timeout_error", NULL, msg);
		}
		return -1;
	}
	if (r->stream && ka > 0) {
		last = r->t_last_keepalive ? r->t_last_keepalive : r->t_start;
		if (now - last >= ka && keepalive(r, now) < 0) {
			gw_scheduler_leave(&r->sq, now);
			return -1;
		}
	}
	return 0;
}

/* The loop's timer of a queued request. */
static void
sched_tick(void *arg)
{
	struct relay *r = arg;
	int rc = sched_check(r, gw_now_mono_us());

	if (rc == 0) {
		gw_loop_timer_set(gw_loop_get(), &r->sq_timer, SCHED_POLL_US);
		return;
	}
	if (rc < 0) {
		log_outcome(r);
		relay_end(r);
		return;
	}
	set_target(r);
	loop_attempt(r);
}

/* On the loop thread: a queued request waits there, holding no thread. */
static void
loop_wait(struct gw_req *detached, void *arg)
{
	struct relay *r = arg;

	r->req = detached;
	r->post.request_id = detached->id;
	if (loop_multi == NULL)
		loop_multi = gw_upstream_multi_new(gw_loop_get());
	r->sq_timer.fn = sched_tick;
	r->sq_timer.arg = r;
	sched_tick(r);
}

/*
 * Ask llama-swap what it runs ([scheduler] running_path, at the upstream's
 * root): an idle group takes the model loaded there as its active one.
 * Silent when the upstream has no such path.
 */
static void
running_check(struct relay *r)
{
	const struct gw_cfg *cfg = r->cfg;
	struct gw_buf body = {0};
	char url[2048], err[256];
	size_t n = strlen(cfg->upstream_url);
	int status = 0;

	while (n > 0 && cfg->upstream_url[n - 1] == '/')
		n--;
	if (n >= 3 && strncmp(cfg->upstream_url + n - 3, "/v1", 3) == 0)
		n -= 3;
	snprintf(url, sizeof(url), "%.*s%s", (int)n, cfg->upstream_url,
	    cfg->sched_running_path);
	if (gw_upstream_get(r->req->ctx->up, url,
	        cfg->upstream_connect_timeout_ms,
	        cfg->upstream_health_timeout_ms, &status, &body, 64 * 1024, err,
	        sizeof(err)) == GW_OK &&
	    status == 200 && body.len > 0)
		gw_scheduler_note_running(
		    cfg, body.p, body.len, gw_now_mono_us());
	gw_buf_fini(&body);
}

/*
 * Ask the scheduler before the upstream call: 0 to go on now, 1 when the
 * request went to the loop to wait (GW_DETACHED), -1 when it is over
 * (answered 429 or 504, or its client gone; log_outcome done).
 */
static int
sched_begin(struct relay *r)
{
	struct timespec ts = {0, SCHED_POLL_US * 1000};
	char msg[200];
	int rc;

	if (gw_scheduler_want_running(
	        r->cfg, r->targets.models[0], gw_now_mono_us()))
		running_check(r);
	switch (gw_scheduler_enter(
	    &r->sq, r->cfg, r->targets.models[0], gw_now_mono_us())) {
	case GW_SCHEDULER_FULL:
		snprintf(msg, sizeof(msg),
		    "Too many requests queued for the upstream's models "
		    "([scheduler] queue_max %d); retry later",
		    r->cfg->sched_queue_max);
		gw_req_add_header(r->req, "Retry-After", "%d", 1);
		gw_reply_error_ex(r->req, 429, "rate_limit_error", NULL, msg);
		gw_strlcpy(r->req->err_type, "scheduler_queue_full",
		    sizeof(r->req->err_type));
		log_outcome(r);
		return -1;
	case GW_SCHEDULER_WAIT:
		break;
	default:
		return 0;
	}
	if (gw_req_go_async(r->req, loop_wait, r) == GW_DETACHED)
		return 1;
	/* No loop: wait on this thread. */
	while ((rc = sched_check(r, gw_now_mono_us())) == 0)
		nanosleep(&ts, NULL);
	if (rc < 0)
		log_outcome(r);
	return rc < 0 ? -1 : 0;
}

enum gw_status
gw_relay(struct gw_req *req, enum gw_call call, struct gw_route_call *c)
{
	struct relay *r = gw_xcalloc(1, sizeof(*r));
	struct gw_verr verr = {"", ""};
	struct gw_upstream_result res = {0};
	json_object *sv;
	char msg[512];
	const char *deny = NULL;
	enum gw_status st = GW_OK;

	r->req = req;
	r->cfg = req->cfg;
	r->call = call;
	r->t_start = req->start_mono_us;
	r->cb =
	    (struct gw_upstream_cb){r, on_head, on_data, on_tick, on_read_end};
	gw_capture_init(&r->cap, req->cfg->langfuse_enabled,
	    req->cfg->langfuse_record, call);
	/* The relay may outlive the handler (a stream): the caller is ours. */
	gw_route_take_caller(c, &r->who);
	key_headers(r);
	if ((st = gw_req_read_body(req)) != GW_OK) {
		if (st == GW_E_TOOBIG)
			snprintf(msg, sizeof(msg),
			    "Request body exceeds %ld bytes",
			    req->cfg->max_body_bytes);
		else
			snprintf(msg, sizeof(msg), "Request body incomplete");
		gw_reply_error(req, st, msg);
		goto out;
	}
	if (call == GW_CALL_PASSTHROUGH) {
		/*
		 * Relayed as is: read (when JSON) for its model and the spend
		 * row's tags and metadata only; metadata over the cap is left
		 * out of the row, the bytes sent upstream are the client's.
		 */
		r->pt_path = gw_xstrdup(c->route->path);
		if (gw_json_parse_max(req->body.p ? req->body.p : "",
		        req->body.len, (size_t)req->cfg->max_json_values,
		        &r->body, msg, sizeof(msg)) != GW_OK) {
			json_object_put(r->body);
			r->body = NULL;
		}
		(void)gw_validate_metadata(
		    r->body, (size_t)req->cfg->max_metadata_bytes, &verr);
	} else {
		st = gw_relay_parse_body(call, req->body.p, req->body.len,
		    (size_t)req->cfg->max_json_values, &r->body, &r->doc,
		    &verr);
		/* Too much metadata is refused first, and dropped. */
		if (gw_validate_metadata(r->body,
		        (size_t)req->cfg->max_metadata_bytes, &verr) != GW_OK ||
		    st != GW_OK) {
			bad_request(req, &verr);
			goto out;
		}
	}
	/* Now: the request's headers are not kept once it is detached. */
	spend_tags(req, r->body, &r->tags);
	sv = gw_json_get(r->body, "model");
	r->model =
	    gw_xstrdup(sv != NULL && json_object_is_type(sv, json_type_string)
	                   ? json_object_get_string(sv)
	                   : "");
	/* A passthrough naming no model is not about one. */
	if ((call != GW_CALL_PASSTHROUGH || r->model[0] != '\0') &&
	    gw_auth_model(&r->who, r->model, msg, sizeof(msg), &deny) !=
	        GW_OK) {
		gw_reply_error_ex(req, 401, deny, "model", msg);
		goto out;
	}
	r->model_ok = 1;
	if (gw_budget_check(
	        req->ctx->db, req->cfg, &r->who, msg, sizeof(msg)) != GW_OK) {
		gw_reply_error_ex(req, 400, "budget_exceeded", NULL, msg);
		goto out;
	}
	if (gw_admit_request(req, &r->who, &r->lim) != 0)
		goto out;
	/* Streams: chat, completions, responses (its usage comes anyway). */
	if (call == GW_CALL_CHAT || call == GW_CALL_COMPLETION ||
	    call == GW_CALL_RESPONSES) {
		sv = gw_json_get(r->body, "stream");
		r->stream = sv != NULL && json_object_get_boolean(sv);
		if (r->stream && call != GW_CALL_RESPONSES)
			force_stream_usage(r);
	}
	/* A key's stream ends when the key is refused (revoke.h). */
	if (r->stream && r->who.role == GW_ROLE_KEY && r->who.rec != NULL)
		gw_revoke_add(&r->rv, r->who.rec, req->start_mono_us);
	if (call == GW_CALL_PASSTHROUGH) {
		/* Not aliased: the model, if any, goes as the client named it.
		 */
		r->targets.one = r->model;
		r->targets.models = &r->targets.one;
		r->targets.n = 1;
		r->url = root_url(req->cfg->upstream_url, r->pt_path);
	} else {
		gw_alias_resolve(req->cfg, r->model, &r->targets);
		r->url = gw_relay_url(req->cfg->upstream_url, call_path(call));
	}
	r->post.url = r->url;
	r->post.bearer = req->cfg->upstream_api_key;
	r->post.request_id = req->id;
	r->post.connect_timeout_ms = req->cfg->upstream_connect_timeout_ms;
	/*
	 * The first target's body now, while this thread holds the client's
	 * text: a stream or a queued request leaves it (gw_req_go_async).
	 */
	if (r->stream ||
	    (req->cfg->sched_enabled && call != GW_CALL_PASSTHROUGH))
		set_target(r);
	/* Swap-aware admission: may queue the request (scheduler.h). */
	if (req->cfg->sched_enabled && call != GW_CALL_PASSTHROUGH) {
		switch (sched_begin(r)) {
		case 1:
			return GW_DETACHED;
		case -1:
			goto out;
		default:
			break;
		}
	}
	/*
	 * A stream may last minutes: it goes to the event loop, and this
	 * thread back to accepting.
	 */
	if (r->stream) {
		slim_body(r);
		if (gw_req_go_async(req, loop_start, r) == GW_DETACHED)
			return GW_DETACHED;
	}
	r->here = 1; /* the attempts run here, the client's text at hand */
	set_target(r);
	do {
		attempt_reset(r);
		st = gw_upstream_post(req->ctx->up, &r->post, &r->cb, &res);
	} while (attempt_next(r, st, &res));
	relay_finish(r, st, &res);
	return GW_OK;
out:
	relay_end(r);
	return GW_OK;
}
