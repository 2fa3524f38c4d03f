/* req.c: the FastCGI request wrapper (fcgiapp.h only, never fcgi_stdio). */
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

#include "log.h"
#include "server.h"

/* Buffers above this size are released after a request, not kept. */
#define REQ_KEEP_BYTES (64 * 1024)

void
gw_req_begin(struct gw_req *req, FCGX_Request *fr, struct gw_thread *th,
    const struct gw_cfg *cfg)
{
	const char *uri;
	char *q;

	req->fr = fr;
	req->th = th;
	req->cfg = cfg;
	req->status = 0;
	req->head_sent = 0;
	req->bytes_out = 0;
	req->route = "-";
	req->err_type[0] = '\0';
	req->model[0] = '\0';
	req->start_mono_us = gw_now_mono_us();
	req->start_real_us = gw_now_real_us();
	/* Time-ordered: spend_logs' primary key then grows at its end. */
	gw_uuid7(th ? th->rng : (uint64_t[2]){0, 0}, req->start_real_us / 1000,
	    req->id);
	req->method = FCGX_GetParam("REQUEST_METHOD", fr->envp);
	if (req->method == NULL)
		req->method = "GET";
	uri = FCGX_GetParam("REQUEST_URI", fr->envp);
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
		gw_log_fields(GW_LOG_INFO, req, "access", f.p);
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
	struct pollfd p = {.fd = req->fr->ipcFd, .events = POLLRDHUP};

	if (req->fr->ipcFd < 0)
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
	return FCGX_GetParam(name, req->fr->envp);
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
	for (i = 0; name[i] != '\0' && o + 1 < sizeof(env); i++)
		env[o++] = name[i] == '-'
		               ? '_'
		               : (char)toupper((unsigned char)name[i]);
	env[o] = '\0';
	return gw_req_param(req, env);
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* URL-decode [s, s+n) into out; -1 when it does not fit or holds NUL. */
static int
url_decode(const char *s, size_t n, char *out, size_t outlen)
{
	size_t i, o = 0;
	int c;

	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c == '+') {
			c = ' ';
		} else if (c == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 &&
		           hexval(s[i + 2]) >= 0) {
			c = hexval(s[i + 1]) * 16 + hexval(s[i + 2]);
			i += 2;
		}
		if (c == 0 || o + 1 >= outlen)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
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
			return url_decode(eq + 1, (size_t)(amp - eq - 1), out,
			           outlen) == 0
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
	const char *cl = gw_req_param(req, "CONTENT_LENGTH");
	long max = req->cfg->max_body_bytes;
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

		n = FCGX_GetStr(dst, (int)room, req->fr->in);
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
gw_req_send_head(struct gw_req *req, int status, const char *ctype)
{
	char code[21];
	FCGX_Stream *out = req->fr->out;

	if (req->head_sent)
		return;
	/* Straight into libfcgi's buffer: no formatting, no allocation. */
	FCGX_PutS("Status: ", out);
	FCGX_PutStr(code, (int)gw_fmt_u64(code, (uint64_t)status), out);
	FCGX_PutS(" ", out);
	FCGX_PutS(gw_err_reason(status), out);
	if (ctype != NULL) {
		FCGX_PutS("\r\nContent-Type: ", out);
		FCGX_PutS(ctype, out);
	}
	FCGX_PutS("\r\nx-request-id: ", out);
	FCGX_PutS(req->id, out);
	FCGX_PutS("\r\nx-litellm-call-id: ", out);
	FCGX_PutS(req->id, out);
	FCGX_PutS("\r\n", out);
	if (req->hdrs.len)
		FCGX_PutStr(req->hdrs.p, (int)req->hdrs.len, out);
	FCGX_PutS("\r\n", out);
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
	if (FCGX_PutStr(p, (int)n, req->fr->out) != (int)n)
		return GW_E_INTERNAL;
	req->bytes_out += n;
	return GW_OK;
}

enum gw_status
gw_req_flush(struct gw_req *req)
{
	return FCGX_FFlush(req->fr->out) == 0 ? GW_OK : GW_E_INTERNAL;
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
