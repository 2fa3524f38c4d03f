/* req.c: the FastCGI request wrapper (over fcgi.c). */
#define _GNU_SOURCE /* POLLRDHUP */
#include "req.h"

#include <ctype.h>
#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "evloop.h"
#include "log.h"

/* Buffers above this size are released after a request, not kept. */
#define REQ_KEEP_BYTES (64 * 1024)
/*
 * A detached request keeps this much of its queue's storage once it is
 * written: a stream's chunk fits, its head (larger, once) does not stay.
 */
#define OUT_KEEP_BYTES 512
#define NO_RECORD GW_FCGI_NO_RECORD
/* How long an ended request waits for the web server to take its end. */
#define LINGER_US (30 * 1000000LL)

/* The output of a detached request: FastCGI records, queued. */
struct gw_reqout {
	struct gw_loop *loop;
	struct gw_loop_io io; /* the connection: EPOLLRDHUP, EPOLLOUT */
	struct gw_loop_timer linger;
	int request_id;
	struct gw_buf q; /* framed bytes not yet written */
	size_t off;      /* ... from here */
	size_t rec;      /* the open stdout record's header in q */
	int gone;        /* the web server closed the connection */
	int ending;      /* end records queued: close once written */
	void (*drained)(void *arg);
	void *drained_arg;
	void (*closed)(void); /* hooks->closed, see gw_req_done */
	char method[16];
};

void
gw_req_begin(struct gw_req *req, struct gw_fcgi *fr, struct gw_ctx *ctx,
    const struct gw_cfg *cfg, const struct gw_req_hooks *hooks)
{
	const char *uri;
	char *q;

	req->fr = fr;
	req->hooks = hooks;
	req->async_fn = NULL;
	req->dout = NULL;
	req->ctx = ctx;
	req->cfg = cfg;
	req->status = 0;
	req->head_sent = 0;
	req->bytes_out = 0;
	req->route = "-";
	req->err_type[0] = '\0';
	req->model[0] = '\0';
	req->client[0] = '\0';
	req->start_mono_us = gw_now_mono_us();
	req->start_real_us = gw_now_real_us();
	/* Time-ordered: spend_logs' primary key then grows at its end. */
	gw_uuid7(ctx ? ctx->rng : (uint64_t[2]){0, 0},
	    req->start_real_us / 1000, req->id);
	req->method = gw_fcgi_get(fr, "REQUEST_METHOD");
	if (req->method == NULL)
		req->method = "GET";
	uri = gw_fcgi_get(fr, "REQUEST_URI");
	if (uri == NULL || uri[0] == '\0')
		uri = "/";
	req->path = gw_xstrdup(uri);
	q = strchr(req->path, '?');
	if (q != NULL) {
		*q = '\0';
		req->query = q + 1;
	} else {
		req->query = "";
	}
	gw_buf_reset(&req->hdrs, REQ_KEEP_BYTES);
	gw_buf_reset(&req->body, REQ_KEEP_BYTES);
	gw_buf_reset(&req->logx, REQ_KEEP_BYTES);
}

void
gw_req_end(struct gw_req *req)
{
	if (req->hooks != NULL && req->hooks->end != NULL)
		req->hooks->end(req);
	if (req->cfg != NULL && req->cfg->access_log &&
	    gw_log_enabled(GW_LOG_INFO)) {
		struct gw_buf f = {0};

		gw_buf_puts(&f, "method=");
		gw_log_append_value(&f, req->method);
		gw_buf_puts(&f, " path=");
		gw_log_append_value(&f, req->path);
		gw_buf_puts(&f, " route=");
		gw_buf_puts(&f, req->route);
		gw_buf_puts(&f, " status=");
		gw_buf_put_i64(&f, req->status);
		gw_buf_puts(&f, " bytes=");
		gw_buf_put_i64(&f, (int64_t)req->bytes_out);
		gw_buf_puts(&f, " dur_ms=");
		gw_buf_put_milli(&f, gw_now_mono_us() - req->start_mono_us);
		if (req->logx.len > 0)
			gw_buf_append(&f, req->logx.p, req->logx.len);
		gw_log_fields(GW_LOG_INFO, req->id, "access", f.p);
		gw_buf_fini(&f);
	}
	free(req->path);
	req->path = NULL;
	req->query = "";
	gw_buf_reset(&req->hdrs, REQ_KEEP_BYTES);
	gw_buf_reset(&req->body, REQ_KEEP_BYTES);
	gw_buf_reset(&req->logx, REQ_KEEP_BYTES);
	req->cfg = NULL;
}

void
gw_req_fini(struct gw_req *req)
{
	free(req->path);
	req->path = NULL;
	gw_buf_fini(&req->hdrs);
	gw_buf_fini(&req->body);
	gw_buf_fini(&req->logx);
}

int
gw_req_client_gone(const struct gw_req *req)
{
	struct pollfd p = {.events = POLLRDHUP};

	if (req->dout != NULL)
		return req->dout->gone;
	p.fd = req->fr->fd;
	if (req->fr->fd < 0)
		return 1;
	if (poll(&p, 1, 0) <= 0)
		return 0;
	return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

/* " name=" on the access line; the value follows. */
static struct gw_buf *
log_key(struct gw_req *req, const char *name)
{
	gw_buf_append(&req->logx, " ", 1);
	gw_buf_puts(&req->logx, name);
	gw_buf_append(&req->logx, "=", 1);
	return &req->logx;
}

void
gw_req_log_int(struct gw_req *req, const char *name, int64_t value)
{
	gw_buf_put_i64(log_key(req, name), value);
}

void
gw_req_log_milli(struct gw_req *req, const char *name, int64_t thousandths)
{
	gw_buf_put_milli(log_key(req, name), thousandths);
}

void
gw_req_log_field(struct gw_req *req, const char *name, const char *value)
{
	gw_log_append_value(log_key(req, name), value);
}

const char *
gw_req_param(const struct gw_req *req, const char *name)
{
	return gw_fcgi_get(req->fr, name);
}

const char *
gw_req_header(const struct gw_req *req, const char *name)
{
	char env[128];
	size_t i, o = 0;

	if (!strcasecmp(name, "Content-Type"))
		return gw_req_param(req, "CONTENT_TYPE");
	if (!strcasecmp(name, "Content-Length"))
		return gw_req_param(req, "CONTENT_LENGTH");
	o = (size_t)snprintf(env, sizeof(env), "HTTP_");
	for (i = 0; name[i] != '\0'; i++) {
		if (o + 1 >= sizeof(env))
			return NULL; /* not a name we look up: no prefix match
			              */
		env[o++] = name[i] == '-'
		               ? '_'
		               : (char)toupper((unsigned char)name[i]);
	}
	env[o] = '\0';
	return gw_req_param(req, env);
}

/* 1 when the address text a (n bytes) is inside one of nets. */
static int
in_nets(const char *a, size_t n, const struct gw_net *nets, int count)
{
	unsigned char bin[16];
	char text[64];
	int v6, i, full, rest;

	if (count == 0 || n == 0 || n >= sizeof(text))
		return 0;
	memcpy(text, a, n);
	text[n] = '\0';
	if (inet_pton(AF_INET, text, bin) == 1)
		v6 = 0;
	else if (inet_pton(AF_INET6, text, bin) == 1)
		v6 = 1;
	else
		return 0;
	for (i = 0; i < count; i++) {
		if (nets[i].v6 != v6)
			continue;
		full = nets[i].prefix / 8;
		rest = nets[i].prefix % 8;
		if (memcmp(bin, nets[i].addr, (size_t)full) != 0)
			continue;
		if (rest == 0 || ((bin[full] ^ nets[i].addr[full]) &
		                     (0xff << (8 - rest))) == 0)
			return 1;
	}
	return 0;
}

static void
set_client(struct gw_req *req, const char *a, size_t n)
{
	while (n > 0 && (*a == ' ' || *a == '\t')) {
		a++;
		n--;
	}
	while (n > 0 && (a[n - 1] == ' ' || a[n - 1] == '\t'))
		n--;
	if (n == 0 || n >= sizeof(req->client)) {
		gw_strlcpy(req->client, "-", sizeof(req->client));
		return;
	}
	memcpy(req->client, a, n);
	req->client[n] = '\0';
}

const char *
gw_req_client(struct gw_req *req)
{
	const struct gw_cfg *cfg = req->cfg;
	const char *ra, *xff, *end, *comma, *b, *e;

	if (req->client[0] != '\0')
		return req->client;
	ra = req->fr != NULL ? gw_req_param(req, "REMOTE_ADDR") : NULL;
	if (ra == NULL || ra[0] == '\0') {
		set_client(req, "-", 1);
		return req->client;
	}
	set_client(req, ra, strlen(ra));
	if (!in_nets(ra, strlen(ra), cfg->rl_trusted, cfg->rl_ntrusted) ||
	    (xff = gw_req_header(req, "X-Forwarded-For")) == NULL)
		return req->client;
	/* Right to left: the first hop that is not ours is the client. */
	end = xff + strlen(xff);
	while (end > xff) {
		for (comma = end; comma > xff && comma[-1] != ','; comma--)
			;
		for (b = comma; b < end && (*b == ' ' || *b == '\t'); b++)
			;
		for (e = end; e > b && (e[-1] == ' ' || e[-1] == '\t'); e--)
			;
		if (e > b) {
			set_client(req, b, (size_t)(e - b));
			if (!in_nets(b, (size_t)(e - b), cfg->rl_trusted,
			        cfg->rl_ntrusted))
				break;
		}
		end = comma > xff ? comma - 1 : xff;
	}
	return req->client;
}

enum gw_status
gw_req_query_opt(
    const struct gw_req *req, const char *name, char *out, size_t outlen)
{
	enum gw_status st = gw_req_query(req, name, out, outlen);

	if (st != GW_E_NOTFOUND)
		return st;
	if (outlen > 0)
		out[0] = '\0';
	return GW_OK;
}

enum gw_status
gw_req_query(
    const struct gw_req *req, const char *name, char *out, size_t outlen)
{
	const char *p = req->query, *amp, *eq;
	size_t nlen = strlen(name);

	while (*p != '\0') {
		amp = strchr(p, '&');
		if (amp == NULL)
			amp = p + strlen(p);
		eq = memchr(p, '=', (size_t)(amp - p));
		if ((size_t)((eq ? eq : amp) - p) == nlen &&
		    !strncmp(p, name, nlen)) {
			if (eq == NULL) {
				if (outlen == 0)
					return GW_E_INVALID;
				out[0] = '\0';
				return GW_OK;
			}
			return gw_url_decode(eq + 1, (size_t)(amp - eq - 1),
			           out, outlen, 1) == 0
			           ? GW_OK
			           : GW_E_INVALID;
		}
		p = *amp ? amp + 1 : amp;
	}
	return GW_E_NOTFOUND;
}

enum gw_status
gw_req_read_body(struct gw_req *req)
{
	return gw_req_read_body_max(req, req->cfg->max_body_bytes);
}

enum gw_status
gw_req_read_body_max(struct gw_req *req, long max)
{
	const char *cl = gw_req_param(req, "CONTENT_LENGTH");
	char *end;
	long long want = -1;
	int n;

	gw_buf_reset(&req->body, REQ_KEEP_BYTES);
	if (cl != NULL && cl[0] != '\0') {
		errno = 0;
		want = strtoll(cl, &end, 10);
		if (errno != 0 || *end != '\0' || want < 0)
			return GW_E_INVALID;
		if (want > max)
			return GW_E_TOOBIG;
	}
	/*
	 * Straight into the body buffer, no bounce buffer on the stack: a
	 * stack page touched once stays with the thread (and a stream holds
	 * a thread), so the hot path keeps its frames small.
	 */
	for (;;) {
		/*
		 * What was announced (memory follows the bytes that come, not
		 * the Content-Length claimed), then a small look for the end.
		 */
		size_t room = want > 0 && (size_t)want > req->body.len
		                  ? (size_t)want - req->body.len
		              : want >= 0 ? 64
		                          : 4096;

		if (room > 65536)
			room = 65536;
		char *dst = gw_buf_extend(&req->body, room);

		n = gw_fcgi_read(req->fr, dst, room);
		req->body.len -= room - (size_t)(n > 0 ? n : 0);
		req->body.p[req->body.len] = '\0';
		if (n <= 0)
			break;
		if ((long long)req->body.len > max)
			return GW_E_TOOBIG;
	}
	if (want >= 0 && (long long)req->body.len != want)
		return GW_E_INVALID;
	return GW_OK; /* never NULL: the first gw_buf_extend allocated */
}

void
gw_req_add_header(struct gw_req *req, const char *name, const char *fmt, ...)
{
	char value[1024];
	va_list ap;
	char *c;

	va_start(ap, fmt);
	vsnprintf(value, sizeof(value), fmt, ap);
	va_end(ap);
	/* A header value never carries a line break. */
	for (c = value; *c; c++)
		if (*c == '\r' || *c == '\n')
			*c = ' ';
	gw_buf_puts(&req->hdrs, name);
	gw_buf_append(&req->hdrs, ": ", 2);
	gw_buf_puts(&req->hdrs, value);
	gw_buf_append(&req->hdrs, "\r\n", 2);
}

void
gw_req_add_header_str(struct gw_req *req, const char *name, const char *value)
{
	size_t start, i;

	gw_buf_puts(&req->hdrs, name);
	gw_buf_append(&req->hdrs, ": ", 2);
	start = req->hdrs.len;
	gw_buf_puts(&req->hdrs, value);
	/* A header value never carries a line break. */
	for (i = start; i < req->hdrs.len; i++)
		if (req->hdrs.p[i] == '\r' || req->hdrs.p[i] == '\n')
			req->hdrs.p[i] = ' ';
	gw_buf_append(&req->hdrs, "\r\n", 2);
}

/* Queue n bytes of stdout on a detached request, in records. */
static int
out_put(struct gw_reqout *o, const char *p, size_t n)
{
	if (o->gone)
		return -1;
	gw_fcgi_frame(&o->q, &o->rec, o->request_id, p, n);
	return 0;
}

/* Bytes for the client: into the thread's framing, or a detached queue. */
static int
put(struct gw_req *req, const char *p, size_t n)
{
	if (req->dout != NULL)
		return out_put(req->dout, p, n);
	return gw_fcgi_write(req->fr, p, n);
}

static void
puts_(struct gw_req *req, const char *s)
{
	put(req, s, strlen(s));
}

void
gw_req_send_head(struct gw_req *req, int status, const char *ctype)
{
	char code[21];

	if (req->head_sent)
		return;
	/* Straight into the output buffer: no formatting, no allocation. */
	puts_(req, "Status: ");
	put(req, code, gw_fmt_u64(code, (uint64_t)status));
	puts_(req, " ");
	puts_(req, gw_err_reason(status));
	if (ctype != NULL) {
		puts_(req, "\r\nContent-Type: ");
		puts_(req, ctype);
	}
	puts_(req, "\r\nx-request-id: ");
	puts_(req, req->id);
	puts_(req, "\r\nx-litellm-call-id: ");
	puts_(req, req->id);
	puts_(req, "\r\n");
	if (req->hdrs.len)
		put(req, req->hdrs.p, req->hdrs.len);
	puts_(req, "\r\n");
	req->status = status;
	req->head_sent = 1;
}

enum gw_status
gw_req_write(struct gw_req *req, const void *p, size_t n)
{
	if (!req->head_sent)
		gw_req_send_head(req, 200, NULL);
	if (n == 0)
		return GW_OK;
	if (put(req, p, n) < 0)
		return GW_E_INTERNAL;
	req->bytes_out += n;
	return GW_OK;
}

static void out_close(struct gw_req *req);

/* The web server went away: nothing queued will ever be taken. */
static void
out_gone(struct gw_req *req)
{
	struct gw_reqout *o = req->dout;

	o->gone = 1;
	o->off = 0;
	o->rec = NO_RECORD;
	gw_buf_reset(&o->q, 0);
	gw_loop_watch(o->loop, &o->io, 0);
	if (o->ending)
		out_close(req);
}

/* Write what the queue holds, without blocking; -1 once gone. */
static int
out_drain(struct gw_req *req)
{
	struct gw_reqout *o = req->dout;
	void (*fn)(void *arg);
	ssize_t n;

	if (o->gone)
		return -1;
	o->rec = NO_RECORD; /* what follows starts a new record */
	while (o->off < o->q.len) {
		n = send(o->io.fd, o->q.p + o->off, o->q.len - o->off,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			o->off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			gw_loop_watch(o->loop, &o->io, EPOLLRDHUP | EPOLLOUT);
			return 0;
		}
		out_gone(req);
		return -1;
	}
	o->off = 0;
	gw_buf_reset(&o->q, OUT_KEEP_BYTES);
	if (o->ending) {
		out_close(req);
		return 0;
	}
	gw_loop_watch(o->loop, &o->io, EPOLLRDHUP);
	if ((fn = o->drained) != NULL) {
		o->drained = NULL;
		fn(o->drained_arg);
	}
	return 0;
}

static void
on_conn_event(void *arg, uint32_t events)
{
	struct gw_req *req = arg;

	if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		out_gone(req);
	else if (events & EPOLLOUT)
		out_drain(req);
}

enum gw_status
gw_req_flush(struct gw_req *req)
{
	if (req->dout != NULL)
		return out_drain(req) == 0 ? GW_OK : GW_E_INTERNAL;
	return gw_fcgi_flush(req->fr) == 0 ? GW_OK : GW_E_INTERNAL;
}

/* The web server did not take the end in LINGER_US: give up on it. */
static void
linger_over(void *arg)
{
	out_close(arg);
}

/* The loop's first job for a detached request, before any other. */
static void
watch_conn(void *arg)
{
	struct gw_req *req = arg;
	struct gw_reqout *o = req->dout;

	if (gw_loop_watch(o->loop, &o->io, EPOLLRDHUP) != GW_OK)
		o->gone = 1;
}

enum gw_status
gw_req_go_async(
    struct gw_req *req, void (*start)(struct gw_req *d, void *arg), void *arg)
{
	if (req->fr == NULL || gw_loop_get() == NULL)
		return GW_E_UNAVAILABLE;
	req->async_fn = start;
	req->async_arg = arg;
	return GW_DETACHED;
}

/* The loop's second job for a detached request: what the handler asked. */
static void
run_async(void *arg)
{
	struct gw_req *req = arg;
	void (*fn)(struct gw_req *, void *) = req->async_fn;

	req->async_fn = NULL;
	fn(req, req->async_arg);
}

struct gw_req *
gw_req_detach(struct gw_req *req, struct gw_loop *loop)
{
	struct gw_req *d = gw_xmalloc(sizeof(*d));
	struct gw_reqout *o = gw_xcalloc(1, sizeof(*o));
	struct gw_fcgi *fr = req->fr;

	*d = *req;
	/* Its headers and log fields go with it; the body stays (read). */
	memset(&req->hdrs, 0, sizeof(req->hdrs));
	memset(&req->logx, 0, sizeof(req->logx));
	memset(&d->body, 0, sizeof(d->body));
	req->path = NULL;
	req->fr = NULL;
	o->loop = loop;
	o->io.fn = on_conn_event;
	o->io.arg = d;
	o->linger.fn = linger_over;
	o->linger.arg = d;
	o->request_id = fr->id;
	o->rec = NO_RECORD;
	gw_strlcpy(o->method, d->method, sizeof(o->method));
	d->method = o->method;
	/*
	 * The thread lets the connection go (what is queued written first:
	 * nothing, as a rule); the parameters are gone with it.
	 */
	o->io.fd = gw_fcgi_release(fr);
	d->dout = o;
	d->fr = NULL;
	d->ctx = NULL;
	d->cfg = gw_cfg_ref((struct gw_cfg *)d->cfg);
	/* The loop takes it from here, starting with watching for a hang-up. */
	gw_loop_post(loop, watch_conn, d);
	req->async_fn = NULL;
	if (d->async_fn != NULL)
		gw_loop_post(loop, run_async, d);
	return d;
}

size_t
gw_req_backlog(const struct gw_req *req)
{
	return req->dout != NULL ? req->dout->q.len - req->dout->off : 0;
}

void
gw_req_on_drain(struct gw_req *req, void (*fn)(void *arg), void *arg)
{
	if (req->dout == NULL)
		return;
	req->dout->drained = fn;
	req->dout->drained_arg = arg;
}

static void
free_detached(void *arg)
{
	struct gw_req *req = arg;

	gw_buf_fini(&req->dout->q);
	free(req->dout);
	gw_req_fini(req);
	free(req);
}

/* Close the connection; req is freed after the events at hand. */
static void
out_close(struct gw_req *req)
{
	struct gw_reqout *o = req->dout;

	gw_loop_timer_set(o->loop, &o->linger, -1);
	/* close(2) takes it out of the epoll set. */
	gw_loop_forget(o->loop, &o->io);
	/* Everything queued was written (or can never be): said first. */
	if (o->closed != NULL)
		o->closed();
	if (o->io.fd >= 0)
		close(o->io.fd);
	o->io.fd = -1;
	gw_loop_post(o->loop, free_detached, req);
}

void
gw_req_done(struct gw_req *req)
{
	struct gw_reqout *o = req->dout;
	const struct gw_cfg *cfg = req->cfg;

	gw_req_end(req);
	gw_cfg_unref((struct gw_cfg *)cfg);
	o->drained = NULL;
	o->closed = req->hooks != NULL ? req->hooks->closed : NULL;
	if (o->gone) {
		out_close(req);
		return;
	}
	/* An empty stdout record ends the stream; then the request's end. */
	o->rec = NO_RECORD;
	gw_fcgi_frame_end(&o->q, o->request_id);
	o->ending = 1;
	gw_loop_timer_set(o->loop, &o->linger, LINGER_US);
	out_drain(req);
}

void
gw_reply(struct gw_req *req, int status, const char *ctype, const char *body,
    size_t len)
{
	if (req->head_sent)
		return;
	gw_buf_puts(&req->hdrs, "Content-Length: ");
	gw_buf_put_i64(&req->hdrs, (int64_t)len);
	gw_buf_append(&req->hdrs, "\r\n", 2);
	gw_req_send_head(req, status, ctype);
	gw_req_write(req, body, len);
}

void
gw_reply_json(struct gw_req *req, int status, struct json_object *obj)
{
	size_t len = 0;
	const char *s = json_object_to_json_string_length(
	    obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);

	gw_reply(req, status, "application/json", s, len);
}

void
gw_reply_error_ex(struct gw_req *req, int status, const char *type,
    const char *param, const char *msg)
{
	char *body;

	if (req->head_sent)
		return;
	snprintf(req->err_type, sizeof(req->err_type), "%s",
	    type ? type : "internal_server_error");
	body = gw_err_json_new(status, type, param, msg);
	gw_reply(req, status, "application/json", body, strlen(body));
	free(body);
}

void
gw_reply_error(struct gw_req *req, enum gw_status st, const char *msg)
{
	gw_reply_error_ex(req, gw_err_http_status(st), gw_err_type(st), NULL,
	    msg ? msg : gw_err_default_message(st));
}
