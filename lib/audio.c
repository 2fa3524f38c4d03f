/* audio.c: transcriptions, translations and speech, relayed (audio.h). */
#include "audio.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admit.h"
#include "alias.h"
#include "auth.h"
#include "budget.h"
#include "evloop.h"
#include "http_upstream.h"
#include "json_util.h"
#include "log.h"
#include "metrics.h"
#include "multipart.h"
#include "price.h"
#include "relay.h"
#include "req.h"
#include "route.h"
#include "spend.h"
#include "util.h"

#ifndef GW_VERSION
#define GW_VERSION "dev"
#endif

/* A transcription's answer is kept (to read its duration) up to this. */
#define ANSWER_MAX (16 * 1024 * 1024)
/* Error bodies from the upstream are kept up to this size. */
#define ERROR_BODY_MAX (64 * 1024)
/* OpenAI's bound on a speech input, in characters. */
#define SPEECH_INPUT_MAX 4096
/* A form's text fields that are read: bytes kept of each. */
#define FIELD_MAX 64
/* Timeouts and disconnects are checked this often. */
#define TICK_US (100 * 1000)
/* A speech client may fall this far behind before its upstream waits. */
#define BACKLOG_MAX (256 * 1024)

enum abort_reason {
	ABORT_NONE = 0,
	ABORT_CLIENT,
	ABORT_FIRST_BYTE,
	ABORT_IDLE,
	ABORT_TOO_BIG,
};

struct audio {
	struct gw_req *req;
	const struct gw_cfg *cfg;
	enum gw_call call;
	struct gw_principal who; /* released at the end */
	struct gw_admit_tickets lim;
	int record;   /* a spend row is written at the end */
	int model_ok; /* the caller may use the model it named */
	char *model;  /* as the client named it */
	struct gw_targets targets;
	size_t t;           /* the target tried now */
	int retries;        /* ... retried that many times */
	const char *target; /* its name */
	char *url;
	struct gw_upstream_post post;
	struct gw_upstream_cb cb;
	/* A transcription: the model field's value in req->body. */
	size_t model_off, model_len;
	char ctype[512]; /* the client's Content-Type (its boundary) */
	/* Speech: the body as relayed. */
	json_object *body;
	int64_t chars; /* its input's characters */
	/* The attempt running, or the last one. */
	int up_status;
	char up_ctype[128];
	char up_retry_after[64]; /* the upstream's Retry-After, or "" */
	int through;             /* the answer goes to the client as it comes */
	struct gw_buf resp;
	int64_t t_begin, t_last_data, t_last_tick;
	enum abort_reason abort;
	struct gw_xfer *xfer; /* on the event loop: the transfer running */
	int paused;           /* ... held back for a client behind */
	/* What the request amounted to. */
	int client_gone;
	int64_t t_first_byte; /* monotonic us, 0 before one */
	uint64_t relayed;     /* answer bytes streamed through */
	double seconds;       /* audio the upstream reported; -1 unknown */
	int64_t prompt_tokens, completion_tokens; /* usage "tokens" */
	int tokens_known;
};

static const char *
call_path(enum gw_call call)
{
	switch (call) {
	case GW_CALL_TRANSLATION:
		return "/audio/translations";
	case GW_CALL_SPEECH:
		return "/audio/speech";
	default:
		return "/audio/transcriptions";
	}
}

/*
 * LiteLLM's CallTypes: "atranscription" for both upload routes (CallTypes
 * has no translation type), "aspeech".
 */
static const char *
call_name(enum gw_call call)
{
	return call == GW_CALL_SPEECH ? "aspeech" : "atranscription";
}

long
gw_audio_chars(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, k, len;
	long chars = 0;
	unsigned cp;

	while (i < n) {
		if (p[i] < 0x80) {
			i++, chars++;
			continue;
		}
		if (p[i] >= 0xc2 && p[i] <= 0xdf)
			len = 2, cp = p[i] & 0x1f;
		else if (p[i] >= 0xe0 && p[i] <= 0xef)
			len = 3, cp = p[i] & 0x0f;
		else if (p[i] >= 0xf0 && p[i] <= 0xf4)
			len = 4, cp = p[i] & 0x07;
		else
			return -1;
		if (n - i < len)
			return -1;
		for (k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return -1;
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		/* Overlong forms, surrogates, beyond U+10FFFF. */
		if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return -1;
		i += len;
		chars++;
	}
	return chars;
}

/* ---- the upstream's answer */

static int
on_head(void *arg, int status, const char *ctype, const char *retry_after)
{
	struct audio *a = arg;

	a->up_status = status;
	gw_strlcpy(a->up_retry_after, retry_after ? retry_after : "",
	    sizeof(a->up_retry_after));
	a->t_last_data = gw_now_mono_us();
	gw_strlcpy(a->up_ctype, ctype ? ctype : "", sizeof(a->up_ctype));
	/*
	 * Speech, and a transcription the upstream streams (SSE), go to the
	 * client as they come; other answers are kept whole (small: text,
	 * and the duration to price them by).
	 */
	a->through =
	    status >= 200 && status < 300 &&
	    (a->call == GW_CALL_SPEECH ||
	        strncasecmp(a->up_ctype, "text/event-stream", 17) == 0);
	return 0;
}

/* What the answer came from, on every answer after the attempts. */
static void
answer_headers(struct audio *a)
{
	gw_relay_answer_headers(a->req, a->req->start_mono_us, a->t, a->target);
}

/* The cost of a successful answer, from what is known of it. */
static double
answer_cost(const struct audio *a)
{
	if (a->tokens_known)
		return gw_price_cost(
		    a->cfg, a->target, a->prompt_tokens, a->completion_tokens);
	if (a->call == GW_CALL_SPEECH)
		return gw_price_cost_units(
		    a->cfg, a->target, GW_PRICE_CHARACTERS, (double)a->chars);
	return gw_price_cost_units(
	    a->cfg, a->target, GW_PRICE_SECONDS, a->seconds);
}

/* The client's head for an answer streamed through. */
static void
through_head(struct audio *a)
{
	if (a->req->head_sent)
		return;
	answer_headers(a);
	if (a->call == GW_CALL_SPEECH)
		gw_relay_cost_headers(a->req, &a->who, answer_cost(a));
	gw_req_add_header(a->req, "Cache-Control", "no-cache");
	gw_req_add_header(a->req, "X-Accel-Buffering", "no");
	gw_req_send_head(a->req, a->up_status,
	    a->up_ctype[0] ? a->up_ctype : "application/octet-stream");
}

static void
on_drained(void *arg)
{
	struct audio *a = arg;

	if (a->xfer != NULL)
		gw_upstream_resume(a->xfer);
}

static int
on_data(void *arg, const char *p, size_t n)
{
	struct audio *a = arg;
	size_t cap;

	a->t_last_data = gw_now_mono_us();
	if (a->t_first_byte == 0)
		a->t_first_byte = a->t_last_data;
	if (a->through) {
		/* On the loop, a slow client pauses only its own upstream. */
		if (a->xfer != NULL && gw_req_backlog(a->req) > BACKLOG_MAX) {
			gw_req_on_drain(a->req, on_drained, a);
			gw_metrics_inc(GW_METRIC_SLOW_CLIENT_PAUSES, "", 1);
			a->paused = 1;
			/* Its queue must be draining, or no resume comes. */
			if (gw_req_flush(a->req) != GW_OK) {
				a->client_gone = 1;
				a->abort = ABORT_CLIENT;
				return -1;
			}
			return 1;
		}
		a->paused = 0;
		/* Each chunk as it arrives: nothing is kept. */
		through_head(a);
		if (gw_req_write(a->req, p, n) != GW_OK ||
		    gw_req_flush(a->req) != GW_OK) {
			a->client_gone = 1;
			a->abort = ABORT_CLIENT;
			return -1;
		}
		a->relayed += n;
		return 0;
	}
	cap = a->up_status >= 200 && a->up_status < 300 ? ANSWER_MAX
	                                                : ERROR_BODY_MAX;
	if (a->resp.len + n > cap) {
		if (cap == ERROR_BODY_MAX) {
			if (a->resp.len < cap)
				gw_buf_append(&a->resp, p, cap - a->resp.len);
			return 0;
		}
		a->abort = ABORT_TOO_BIG;
		return -1;
	}
	gw_buf_append(&a->resp, p, n);
	return 0;
}

static int
on_tick(void *arg)
{
	struct audio *a = arg;
	int64_t now = gw_now_mono_us();

	if (now - a->t_last_tick < TICK_US)
		return 0;
	a->t_last_tick = now;
	if (gw_req_client_gone(a->req)) {
		a->client_gone = 1;
		a->abort = ABORT_CLIENT;
		return -1;
	}
	if (a->up_status == 0) {
		if (now - a->t_begin >
		    (int64_t)a->cfg->upstream_first_byte_timeout_s * 1000000) {
			a->abort = ABORT_FIRST_BYTE;
			return -1;
		}
	} else if (!a->paused &&
	           now - a->t_last_data >
	               (int64_t)a->cfg->upstream_idle_timeout_s * 1000000) {
		a->abort = ABORT_IDLE;
		return -1;
	}
	return 0;
}

/*
 * A transcription's duration and usage: verbose_json's "duration", or
 * usage {"type":"duration","seconds"} (newer OpenAI models), or usage
 * {"type":"tokens","input_tokens","output_tokens"}.
 */
static void
read_usage(struct audio *a)
{
	json_object *o = NULL, *u;
	const char *type;
	char m[128];
	double d;

	if (a->resp.len == 0 || a->resp.p[0] != '{' ||
	    gw_json_parse(a->resp.p, a->resp.len, &o, m, sizeof(m)) != GW_OK)
		return;
	if (!json_object_is_type(o, json_type_object))
		goto out;
	if ((d = gw_json_num_or(o, "duration", -1)) >= 0)
		a->seconds = d;
	u = gw_json_get(o, "usage");
	if (u != NULL && json_object_is_type(u, json_type_object) &&
	    (type = gw_json_get_str(u, "type")) != NULL) {
		if (strcmp(type, "duration") == 0 &&
		    (d = gw_json_num_or(u, "seconds", -1)) >= 0)
			a->seconds = d;
		if (strcmp(type, "tokens") == 0) {
			a->prompt_tokens = gw_json_int_or(u, "input_tokens", 0);
			a->completion_tokens =
			    gw_json_int_or(u, "output_tokens", 0);
			a->tokens_known =
			    a->prompt_tokens >= 0 && a->completion_tokens >= 0;
		}
	}
out:
	json_object_put(o);
}

/* After the last attempt: answer from what it saw. */
static void
finish(struct audio *a, enum gw_status st, const struct gw_upstream_result *res)
{
	struct gw_req *req = a->req;
	char msg[512];

	if (a->client_gone)
		return;
	if (req->head_sent) {
		/* Streamed through: a cut answer cannot be told otherwise. */
		if (st != GW_OK || a->abort != ABORT_NONE)
			gw_log_warn(req->id, "audio",
			    "upstream answer cut after %llu bytes",
			    (unsigned long long)a->relayed);
		return;
	}
	answer_headers(a);
	if (a->abort == ABORT_FIRST_BYTE || a->abort == ABORT_IDLE) {
		gw_relay_timeout_msg(
		    a->cfg, a->abort == ABORT_FIRST_BYTE, msg, sizeof(msg));
		gw_reply_error_ex(req, 504, "timeout_error", NULL, msg);
		return;
	}
	if (a->abort == ABORT_TOO_BIG) {
		gw_reply_error_ex(req, 502, "upstream_error", NULL,
		    "Upstream answer is too large");
		return;
	}
	if (st != GW_OK) {
		gw_relay_failed_msg(res, msg, sizeof(msg));
		gw_reply_error_ex(req, 502, "upstream_error", NULL, msg);
		return;
	}
	if (a->up_status < 200 || a->up_status >= 300) {
		/* A 429 passes the upstream's Retry-After on (else 1). */
		gw_relay_reply_upstream_error(req, a->up_status, a->resp.p,
		    a->resp.len, a->up_retry_after);
		return;
	}
	/* A whole answer, relayed as it came (JSON, text, srt, vtt). */
	read_usage(a);
	gw_relay_cost_headers(a->req, &a->who, answer_cost(a));
	gw_reply(req, a->up_status,
	    a->up_ctype[0] ? a->up_ctype : "application/json", a->resp.p,
	    a->resp.len);
}

/* ---- attempts */

/*
 * Aim the next attempt at targets[t]: a speech body names it; a form's
 * model field gets its value rewritten in place (the rest of the body,
 * boundary and audio, is not touched), only when the name differs.
 */
static void
set_target(struct audio *a)
{
	struct gw_buf *b = &a->req->body;
	const char *name = a->targets.models[a->t];
	size_t nl = strlen(name), old = a->model_len, tail;

	a->target = name;
	if (a->call == GW_CALL_SPEECH) {
		json_object_object_add(
		    a->body, "model", json_object_new_string(name));
		a->post.body = gw_json_str(a->body, &a->post.body_len);
		return;
	}
	if (nl != old || memcmp(b->p + a->model_off, name, nl) != 0) {
		tail = b->len - a->model_off - old;
		if (nl > old)
			gw_buf_extend(b, nl - old);
		memmove(
		    b->p + a->model_off + nl, b->p + a->model_off + old, tail);
		memcpy(b->p + a->model_off, name, nl);
		b->len = a->model_off + nl + tail;
		b->p[b->len] = '\0';
		a->model_len = nl;
	}
	a->post.body = b->p;
	a->post.body_len = b->len;
}

static void
attempt_reset(struct audio *a)
{
	a->up_status = 0;
	a->up_ctype[0] = '\0';
	a->through = 0;
	gw_buf_reset(&a->resp, 64 * 1024);
	a->t_begin = a->t_last_tick = gw_now_mono_us();
	a->t_last_data = 0;
	a->abort = ABORT_NONE;
}

/*
 * An attempt ended with st: 1 when another follows (the same target
 * after a failure to connect or send, or the alias's next model after a
 * 5xx or no answer), 0 when that was the last. Never once a byte reached
 * the client.
 */
static int
attempt_next(
    struct audio *a, enum gw_status st, const struct gw_upstream_result *res)
{
	if (a->client_gone || a->req->head_sent)
		return 0;
	if (st != GW_OK && res->bytes == 0 && res->http_status == 0 &&
	    a->abort == ABORT_NONE) {
		gw_log_warn(a->req->id, "audio",
		    "upstream %s for %s (try %d): %s",
		    res->connect_failed ? "unreachable" : "failed", a->target,
		    a->retries + 1, res->err);
		if (a->retries < a->cfg->upstream_retries) {
			a->retries++;
			return 1;
		}
	}
	if (a->t + 1 < a->targets.n &&
	    ((st != GW_OK && res->bytes == 0 && a->abort == ABORT_NONE) ||
	        (st == GW_OK && a->up_status >= 500))) {
		gw_log_warn(a->req->id, "audio", "falling back from %s to %s",
		    a->target, a->targets.models[a->t + 1]);
		a->t++;
		a->retries = 0;
		set_target(a);
		return 1;
	}
	return 0;
}

/* ---- the request */

/* The spend row: what it cost and how it ended. */
static void
record_spend(struct audio *a)
{
	struct gw_req *req = a->req;
	struct gw_spend_rec s = {0};
	int reached = a->up_status >= 200 && a->up_status < 300;
	json_object *meta = json_object_new_object();
	char labels[GW_METRICS_LABELS_MAX];

	s.request_id = req->id;
	s.who = &a->who;
	s.model = a->model;
	s.actual_model = a->up_status ? a->target : NULL;
	s.call_type = call_name(a->call);
	if (a->tokens_known) {
		s.prompt_tokens = a->prompt_tokens;
		s.completion_tokens = a->completion_tokens;
		s.total_tokens = a->prompt_tokens + a->completion_tokens;
	}
	s.cost = reached && !a->client_gone ? answer_cost(a) : 0;
	gw_relay_spend_ending(&s, req, a->t_first_byte, a->client_gone);
	s.stream = a->through;
	/* The unit it was priced by, for the operator's reports. */
	if (a->call == GW_CALL_SPEECH && a->chars > 0)
		json_object_object_add(
		    meta, "input_characters", json_object_new_int64(a->chars));
	if (a->call != GW_CALL_SPEECH && a->seconds >= 0)
		json_object_object_add(
		    meta, "audio_seconds", json_object_new_double(a->seconds));
	s.metadata = meta;
	gw_spend_record(req->cfg, &s);
	if (s.cost > 0)
		gw_metrics_add_double(GW_METRIC_SPEND_USD,
		    gw_metrics_labels(
		        labels, sizeof(labels), "model", a->target, NULL),
		    s.cost);
	json_object_put(meta);
}

static void
log_outcome(struct audio *a)
{
	struct gw_req *req = a->req;

	if (a->model != NULL)
		gw_req_log_field(req, "model", a->model);
	gw_req_log_field(req, "target", a->target ? a->target : "-");
	if (a->up_status)
		gw_req_log_int(req, "up_status", a->up_status);
	if (a->seconds >= 0)
		gw_req_log_milli(
		    req, "audio_ms", (int64_t)(a->seconds * 1000000.0));
	if (a->chars > 0)
		gw_req_log_int(req, "chars", a->chars);
	if (a->relayed > 0)
		gw_req_log_int(req, "relayed", (int64_t)a->relayed);
	if (a->client_gone)
		gw_req_log_field(req, "client_gone", "1");
}

/* However the request ended: its row, its slots back, its memory. */
static void
audio_end(struct audio *a)
{
	struct gw_req *req = a->req;

	log_outcome(a);
	/* Metrics count the name only when it was served (no invented names).
	 */
	gw_strlcpy(req->model,
	    a->model == NULL ? ""
	    : a->model_ok && a->up_status >= 200 && a->up_status < 300
	        ? a->model
	        : "other",
	    sizeof(req->model));
	if (a->record && a->who.role != GW_ROLE_NONE)
		record_spend(a);
	gw_admit_done(&a->lim, a->prompt_tokens + a->completion_tokens,
	    gw_now_real_us() * 1000);
	gw_auth_release(&a->who);
	json_object_put(a->body);
	gw_buf_fini(&a->resp);
	free(a->url);
	free(a->model);
	if (req->dout != NULL)
		gw_req_done(req);
	free(a);
}

/* ---- speech on the event loop: a long answer holds no thread. */

static struct gw_upstream_multi *loop_multi; /* used by the loop only */

static void loop_done(
    void *arg, enum gw_status st, const struct gw_upstream_result *res);

static void
loop_attempt(struct audio *a)
{
	attempt_reset(a);
	a->xfer = gw_upstream_start(loop_multi, &a->post, &a->cb, loop_done);
}

static void
loop_done(void *arg, enum gw_status st, const struct gw_upstream_result *res)
{
	struct audio *a = arg;

	a->xfer = NULL;
	a->paused = 0;
	if (attempt_next(a, st, res)) {
		loop_attempt(a);
		return;
	}
	finish(a, st, res);
	audio_end(a);
}

/* On the loop thread, with the request that lives on (gw_req_go_async). */
static void
loop_start(struct gw_req *detached, void *arg)
{
	struct audio *a = arg;

	a->req = detached;
	a->post.request_id = detached->id;
	if (loop_multi == NULL)
		loop_multi = gw_upstream_multi_new(gw_loop_get());
	loop_attempt(a);
}

static void
bad_request(struct gw_req *req, const char *param, const char *msg)
{
	gw_reply_error_ex(req, 400, "invalid_request_error", param, msg);
}

/*
 * A body read that failed with st: answered (0 or -1 as read_form and
 * read_speech return). Over the bound: 413 naming max and the key that
 * sets it; cut short: the client left mid-upload, so no upstream call and
 * no spend row (LiteLLM never reaches its call, or its logging, without
 * the whole body either).
 */
static int
read_failed(struct audio *a, enum gw_status st, long max, const char *key)
{
	char msg[200];

	if (st == GW_OK)
		return 0;
	if (st == GW_E_TOOBIG) {
		snprintf(msg, sizeof(msg),
		    "Request body exceeds %ld bytes%s%s%s", max,
		    key ? " ([gateway] " : "", key ? key : "", key ? ")" : "");
		gw_reply_error(a->req, st, msg);
		return -1;
	}
	a->record = 0;
	a->client_gone = 1;
	gw_reply_error(a->req, st, "Request body incomplete");
	return -1;
}

/* A model name the spend row can hold: 0, or -1 when answered 400. */
static int
model_name_ok(struct gw_req *req, const char *s, size_t n)
{
	if (gw_capture_str_ok(s, n))
		return 0;
	bad_request(req, "model",
	    "model must be a name of at most 200 bytes of UTF-8 text");
	return -1;
}

/* What a transcription's form says (its text fields, and its file). */
struct form {
	const char *body;
	int models, files;
	size_t model_off, model_len;
	char bad_param[FIELD_MAX];
	char bad_msg[160];
};

static int
on_part(void *arg, const struct gw_multipart_part *p)
{
	struct form *f = arg;

	if (strcmp(p->name, "model") == 0) {
		/* Two model fields: which one would the upstream read? */
		if (p->is_file || f->models++ > 0) {
			gw_strlcpy(f->bad_param, "model", sizeof(f->bad_param));
			gw_strlcpy(f->bad_msg, "model must be one text field",
			    sizeof(f->bad_msg));
			return 1;
		}
		f->model_off = p->data_off;
		f->model_len = p->data_len;
	} else if (strcmp(p->name, "file") == 0) {
		if (!p->is_file || f->files++ > 0) {
			gw_strlcpy(f->bad_param, "file", sizeof(f->bad_param));
			gw_strlcpy(f->bad_msg,
			    "file must be one uploaded file (a part with a "
			    "filename)",
			    sizeof(f->bad_msg));
			return 1;
		}
	}
	return 0;
}

/*
 * A transcription's request: the form read and checked, the model named.
 * 0, or -1 when it was answered (400, 413) or the client is gone.
 */
static int
read_form(struct audio *a)
{
	struct gw_req *req = a->req;
	const char *ct = gw_req_param(req, "CONTENT_TYPE");
	char boundary[GW_MULTIPART_BOUNDARY_MAX + 1], msg[200];
	struct form f = {0};
	enum gw_status st;

	if (ct == NULL || strlen(ct) >= sizeof(a->ctype) ||
	    gw_multipart_boundary(ct, boundary, sizeof(boundary)) != GW_OK) {
		bad_request(req, NULL,
		    "Content-Type must be multipart/form-data with a "
		    "boundary");
		return -1;
	}
	gw_strlcpy(a->ctype, ct, sizeof(a->ctype));
	st = gw_req_read_body_max(req, a->cfg->max_audio_bytes);
	if (read_failed(a, st, a->cfg->max_audio_bytes, "max_audio_bytes") < 0)
		return -1;
	f.body = req->body.p;
	if (gw_multipart_scan(req->body.p, req->body.len, boundary, on_part, &f,
	        msg, sizeof(msg)) != GW_OK) {
		bad_request(req, NULL, msg);
		return -1;
	}
	if (f.bad_param[0]) {
		bad_request(req, f.bad_param, f.bad_msg);
		return -1;
	}
	if (f.files == 0) {
		bad_request(req, "file",
		    "you must provide a file (an audio "
		    "file part named \"file\")");
		return -1;
	}
	if (f.models == 0 || f.model_len == 0) {
		bad_request(req, "model", "you must provide a model parameter");
		return -1;
	}
	if (model_name_ok(req, req->body.p + f.model_off, f.model_len) < 0)
		return -1;
	a->model_off = f.model_off;
	a->model_len = f.model_len;
	a->model = gw_xmalloc(f.model_len + 1);
	memcpy(a->model, req->body.p + f.model_off, f.model_len);
	a->model[f.model_len] = '\0';
	return 0;
}

/* A string member of o that is either absent or in the list. */
static int
one_of(json_object *o, const char *key, const char *const *list)
{
	const char *v;
	json_object *m = gw_json_get(o, key);

	if (m == NULL)
		return 1;
	if (!json_object_is_type(m, json_type_string))
		return 0;
	v = json_object_get_string(m);
	for (; *list != NULL; list++)
		if (strcmp(v, *list) == 0)
			return 1;
	return 0;
}

/*
 * A speech request: the JSON body read and checked as OpenAI does. 0, or
 * -1 when it was answered (400, 413) or the client is gone.
 */
static int
read_speech(struct audio *a)
{
	static const char *const formats[] = {
	    "mp3", "opus", "aac", "flac", "wav", "pcm", NULL};
	struct gw_req *req = a->req;
	json_object *m, *in, *v, *sp;
	char msg[256];
	const char *model;
	long chars;
	enum gw_status st = gw_req_read_body(req);

	if (read_failed(a, st, a->cfg->max_body_bytes, NULL) < 0)
		return -1;
	if (gw_json_parse_max(req->body.p, req->body.len,
	        (size_t)a->cfg->max_json_values, &a->body, msg,
	        sizeof(msg)) != GW_OK) {
		bad_request(req, NULL, msg);
		return -1;
	}
	if (!json_object_is_type(a->body, json_type_object)) {
		bad_request(req, NULL, "Request body must be a JSON object");
		return -1;
	}
	m = gw_json_get(a->body, "model");
	if (m == NULL || !json_object_is_type(m, json_type_string) ||
	    json_object_get_string_len(m) == 0) {
		bad_request(req, "model", "you must provide a model parameter");
		return -1;
	}
	model = json_object_get_string(m);
	if (model_name_ok(req, model, strlen(model)) < 0)
		return -1;
	in = gw_json_get(a->body, "input");
	if (in == NULL || !json_object_is_type(in, json_type_string) ||
	    (chars = gw_audio_chars(json_object_get_string(in),
	         (size_t)json_object_get_string_len(in))) <= 0) {
		bad_request(req, "input", "input must be a non-empty string");
		return -1;
	}
	if (chars > SPEECH_INPUT_MAX) {
		snprintf(msg, sizeof(msg),
		    "input is %ld characters long; the maximum is %d", chars,
		    SPEECH_INPUT_MAX);
		bad_request(req, "input", msg);
		return -1;
	}
	v = gw_json_get(a->body, "voice");
	if (v == NULL || !json_object_is_type(v, json_type_string) ||
	    json_object_get_string_len(v) == 0) {
		bad_request(req, "voice", "you must provide a voice");
		return -1;
	}
	if (!one_of(a->body, "response_format", formats)) {
		bad_request(req, "response_format",
		    "response_format must be one of mp3, opus, aac, flac, wav, "
		    "pcm");
		return -1;
	}
	sp = gw_json_get(a->body, "speed");
	if (sp != NULL && (!(json_object_is_type(sp, json_type_double) ||
	                       json_object_is_type(sp, json_type_int)) ||
	                      json_object_get_double(sp) < 0.25 ||
	                      json_object_get_double(sp) > 4.0)) {
		bad_request(
		    req, "speed", "speed must be a number from 0.25 to 4.0");
		return -1;
	}
	a->chars = chars;
	a->model = gw_xstrdup(model);
	return 0;
}

enum gw_status
gw_audio_relay(struct gw_req *req, enum gw_call call, struct gw_route_call *c)
{
	struct audio *a = gw_xcalloc(1, sizeof(*a));
	struct gw_upstream_result res = {0};
	const char *deny = NULL;
	char msg[512];
	size_t i;
	enum gw_status st;

	a->req = req;
	a->cfg = req->cfg;
	a->call = call;
	a->record = 1;
	a->seconds = -1;
	a->cb = (struct gw_upstream_cb){a, on_head, on_data, on_tick, NULL};
	gw_route_take_caller(c, &a->who);
	gw_req_add_header_str(req, "x-litellm-version", GW_VERSION);
	if ((call == GW_CALL_SPEECH ? read_speech(a) : read_form(a)) < 0)
		goto out;
	if (gw_auth_model(&a->who, a->model, msg, sizeof(msg), &deny) !=
	    GW_OK) {
		gw_reply_error_ex(req, 401, deny, "model", msg);
		goto out;
	}
	a->model_ok = 1;
	if (gw_budget_check(
	        req->ctx->db, req->cfg, &a->who, msg, sizeof(msg)) != GW_OK) {
		gw_reply_error_ex(req, 400, "budget_exceeded", NULL, msg);
		goto out;
	}
	if (gw_admit_request(req, &a->who, &a->lim) != 0)
		goto out;
	gw_alias_resolve(req->cfg, a->model, &a->targets);
	/* A target that would break the form's framing is refused. */
	for (i = 0; i < a->targets.n; i++) {
		if (strpbrk(a->targets.models[i], "\r\n") != NULL) {
			gw_reply_error_ex(req, 500, "internal_error", NULL,
			    "alias target holds a line break");
			goto out;
		}
	}
	a->url = gw_relay_url(req->cfg->upstream_url, call_path(call));
	a->post.url = a->url;
	a->post.bearer = req->cfg->upstream_api_key;
	a->post.request_id = req->id;
	a->post.connect_timeout_ms = req->cfg->upstream_connect_timeout_ms;
	a->post.content_type = call == GW_CALL_SPEECH ? NULL : a->ctype;
	set_target(a);
	/*
	 * Speech may play for minutes: it goes to the event loop (as a chat
	 * stream), and this thread back to accepting. A transcription stays
	 * here: its form is in this thread's body buffer, its answer small.
	 */
	if (call == GW_CALL_SPEECH &&
	    gw_req_go_async(req, loop_start, a) == GW_DETACHED)
		return GW_DETACHED;
	do {
		attempt_reset(a);
		st = gw_upstream_post(req->ctx->up, &a->post, &a->cb, &res);
	} while (attempt_next(a, st, &res));
	finish(a, st, &res);
out:
	audio_end(a);
	return GW_OK;
}
