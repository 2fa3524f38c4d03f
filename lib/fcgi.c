/* fcgi.c: the responder side of FastCGI for a worker thread (fcgi.h). */
#define _GNU_SOURCE /* accept4 */
#include "fcgi.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fastcgi.h> /* libfcgi's: the protocol's numbers (section 8) */
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define REC_MAX FCGI_MAX_LENGTH
/* One whole record (header, content, padding) fits: 65,798 bytes. */
#define IN_CAP (FCGI_HEADER_LEN + REC_MAX + 255)
/* Parameters of one request, all names and values: more is refused. */
#define PARAMS_MAX (256 * 1024)
#define PARAMS_MAX_N 512
/* Queued stdout beyond this is written before more is framed. */
#define OUT_FLUSH (64 * 1024)
/* Storage kept between requests (a large answer's is given back). */
#define OUT_KEEP (16 * 1024)
#define PARAMS_KEEP (8 * 1024)
/*
 * A body left unread when the answer is out is read and dropped, so that
 * the web server's sending it never fails (Apache would log "Broken pipe
 * sending stdin" and answer 503 instead of ours): this much, this long.
 */
#define DRAIN_MAX_BYTES (64 * 1024 * 1024)
#define DRAIN_MS 2000

struct rec {
	int type, id;
	size_t len, pad;
};

/*
 * FCGI_WEB_SERVER_ADDRS (libfcgi's variable, for a TCP socket): the web
 * servers' addresses, comma-separated; read once.
 */
static char *web_servers;
static pthread_once_t web_servers_once = PTHREAD_ONCE_INIT;

static void
read_web_servers(void)
{
	const char *v = getenv("FCGI_WEB_SERVER_ADDRS");

	if (v != NULL && *v != '\0')
		web_servers = gw_xstrdup(v);
}

/* A TCP peer must be on the list when there is one; a unix peer may. */
static int
peer_allowed(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char addr[INET6_ADDRSTRLEN];
	const void *a;
	const char *p;
	size_t n;

	if (web_servers == NULL)
		return 1;
	if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
		return 0;
	if (ss.ss_family == AF_INET)
		a = &((struct sockaddr_in *)&ss)->sin_addr;
	else if (ss.ss_family == AF_INET6)
		a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
	else
		return 1;
	if (inet_ntop(ss.ss_family, a, addr, sizeof(addr)) == NULL)
		return 0;
	n = strlen(addr);
	for (p = web_servers; *p != '\0';) {
		size_t m = strcspn(p, ",");

		while (m > 0 && p[m - 1] == ' ')
			m--;
		if (m == n && memcmp(p, addr, n) == 0)
			return 1;
		p += strcspn(p, ",");
		p += strspn(p, ", ");
	}
	return 0;
}

void
gw_fcgi_init(struct gw_fcgi *c, int listen_fd)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->listen_fd = listen_fd;
	c->rec = GW_FCGI_NO_RECORD;
	pthread_once(&web_servers_once, read_web_servers);
}

static void
put_header(unsigned char *h, int type, int id, size_t len)
{
	h[0] = FCGI_VERSION_1;
	h[1] = (unsigned char)type;
	h[2] = (unsigned char)(id >> 8);
	h[3] = (unsigned char)id;
	h[4] = (unsigned char)(len >> 8);
	h[5] = (unsigned char)len;
	h[6] = 0; /* no padding */
	h[7] = 0;
}

void
gw_fcgi_frame(struct gw_buf *q, size_t *rec, int id, const void *data, size_t n)
{
	const char *p = data;
	size_t have, take;

	while (n > 0) {
		if (*rec == GW_FCGI_NO_RECORD) {
			*rec = q->len;
			gw_buf_extend(q, FCGI_HEADER_LEN);
		}
		have = q->len - *rec - FCGI_HEADER_LEN;
		take = n < REC_MAX - have ? n : REC_MAX - have;
		gw_buf_append(q, p, take);
		have += take;
		put_header((unsigned char *)q->p + *rec, FCGI_STDOUT, id, have);
		if (have == REC_MAX)
			*rec = GW_FCGI_NO_RECORD;
		p += take;
		n -= take;
	}
}

/* FCGI_END_REQUEST at h (16 bytes): appStatus 0, then status. */
static void
put_end(unsigned char *h, int id, int protocol_status)
{
	put_header(h, FCGI_END_REQUEST, id, 8);
	memset(h + FCGI_HEADER_LEN, 0, 8);
	h[FCGI_HEADER_LEN + 4] = (unsigned char)protocol_status;
}

void
gw_fcgi_frame_end(struct gw_buf *q, int id)
{
	unsigned char *h =
	    (unsigned char *)gw_buf_extend(q, FCGI_HEADER_LEN * 3);

	put_header(h, FCGI_STDOUT, id, 0);
	put_end(h + FCGI_HEADER_LEN, id, FCGI_REQUEST_COMPLETE);
}

/* Write all of [p, p+n) (blocking). 0, or -1 with the connection gone. */
static int
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* A management or refusal record, written at once. */
static void
send_record(struct gw_fcgi *c, int type, int id, const void *p, size_t n)
{
	unsigned char m[FCGI_HEADER_LEN + 256];

	if (n > sizeof(m) - FCGI_HEADER_LEN)
		return;
	put_header(m, type, id, n);
	memcpy(m + FCGI_HEADER_LEN, p, n);
	if (write_all(c->fd, (const char *)m, FCGI_HEADER_LEN + n) != 0)
		c->out_err = 1;
}

static void
send_end(struct gw_fcgi *c, int id, int protocol_status)
{
	unsigned char m[FCGI_HEADER_LEN * 2];

	put_end(m, id, protocol_status);
	if (write_all(c->fd, (const char *)m, sizeof(m)) != 0)
		c->out_err = 1;
}

/*
 * read(2), but while draining (c->drain_until set) only as long as the
 * web server keeps sending within the time left.
 */
static ssize_t
read_some(struct gw_fcgi *c, void *dst, size_t n)
{
	if (c->drain_until != 0) {
		int64_t left = c->drain_until - gw_now_mono_us();
		struct pollfd p = {.fd = c->fd, .events = POLLIN};

		if (left <= 0 || poll(&p, 1, (int)(left / 1000) + 1) <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
	}
	return read(c->fd, dst, n);
}

/* At least need bytes at in_off (need <= IN_CAP). 0, or -1: EOF/error. */
static int
fill(struct gw_fcgi *c, size_t need)
{
	if (c->in_off == c->in_len)
		c->in_off = c->in_len = 0;
	if (c->in_off + need > IN_CAP) {
		memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
		c->in_len -= c->in_off;
		c->in_off = 0;
	}
	while (c->in_len - c->in_off < need) {
		ssize_t n = read_some(c, c->in + c->in_len, IN_CAP - c->in_len);

		if (n > 0)
			c->in_len += (size_t)n;
		else if (n < 0 && errno == EINTR)
			continue;
		else
			return -1;
	}
	return 0;
}

/* The next record's header, taken; its content is at in_off. */
static int
next_header(struct gw_fcgi *c, struct rec *r)
{
	const unsigned char *h;

	if (fill(c, FCGI_HEADER_LEN) != 0)
		return -1;
	h = c->in + c->in_off;
	if (h[0] != FCGI_VERSION_1)
		return -1;
	r->type = h[1];
	r->id = (h[2] << 8) | h[3];
	r->len = ((size_t)h[4] << 8) | h[5];
	r->pad = h[6];
	c->in_off += FCGI_HEADER_LEN;
	return 0;
}

/* The record's whole content and padding, buffered (then skip()). */
static int
whole(struct gw_fcgi *c, const struct rec *r)
{
	return fill(c, r->len + r->pad);
}

static void
skip(struct gw_fcgi *c, const struct rec *r)
{
	c->in_off += r->len + r->pad;
}

/* One name-value pair's length at *p (1 or 4 bytes); -1 past end. */
static long
nv_len(const unsigned char **p, const unsigned char *end)
{
	const unsigned char *q = *p;

	if (q >= end)
		return -1;
	if (!(q[0] & 0x80)) {
		*p = q + 1;
		return q[0];
	}
	if (end - q < 4)
		return -1;
	*p = q + 4;
	return ((long)(q[0] & 0x7f) << 24) | ((long)q[1] << 16) |
	       ((long)q[2] << 8) | q[3];
}

/* FCGI_GET_VALUES: what this responder is (one request per connection). */
static void
get_values(struct gw_fcgi *c, const struct rec *r)
{
	static const struct {
		const char *name, *value;
	} known[] = {
	    {FCGI_MAX_CONNS, "1"},
	    {FCGI_MAX_REQS, "1"},
	    {FCGI_MPXS_CONNS, "0"},
	};
	const unsigned char *p = c->in + c->in_off, *end = p + r->len;
	unsigned char out[256];
	size_t o = 0, i;

	while (p < end) {
		long nl = nv_len(&p, end), vl = nv_len(&p, end);

		if (nl < 0 || vl < 0 || end - p < nl + vl)
			break;
		for (i = 0; i < GW_ARRAY_LEN(known); i++) {
			size_t kn = strlen(known[i].name);
			size_t kv = strlen(known[i].value);

			if ((size_t)nl == kn && !memcmp(p, known[i].name, kn) &&
			    o + 2 + kn + kv <= sizeof(out)) {
				out[o++] = (unsigned char)kn;
				out[o++] = (unsigned char)kv;
				memcpy(out + o, known[i].name, kn);
				memcpy(out + o + kn, known[i].value, kv);
				o += kn + kv;
			}
		}
		p += nl + vl;
	}
	send_record(c, FCGI_GET_VALUES_RESULT, 0, out, o);
}

/*
 * A record that is not this request's stdin: management records are
 * answered, another request's begin refused, anything else for another
 * id dropped. Content buffered and skipped. 0, or -1: this request is
 * over (aborted, or the connection broke).
 */
static int
other_record(struct gw_fcgi *c, const struct rec *r)
{
	if (whole(c, r) != 0)
		return -1;
	if (r->id == 0) {
		if (r->type == FCGI_GET_VALUES) {
			get_values(c, r);
		} else {
			unsigned char b[8] = {(unsigned char)r->type};

			send_record(c, FCGI_UNKNOWN_TYPE, 0, b, sizeof(b));
		}
	} else if (r->type == FCGI_BEGIN_REQUEST && r->id != c->id) {
		send_end(c, r->id, FCGI_CANT_MPX_CONN);
	} else if (r->type == FCGI_ABORT_REQUEST && r->id == c->id) {
		skip(c, r);
		return -1;
	}
	skip(c, r);
	return 0;
}

/*
 * The parameters' content, parsed into "NAME=value" strings stored after
 * it in the same buffer: one pass to count, one to copy.
 */
static int
parse_params(struct gw_fcgi *c)
{
	size_t raw = c->params.len, n = 0, bytes = 0, i, k;
	const unsigned char *p, *end;
	char *s;

	/* No parameters at all: an empty list (and no buffer yet). */
	p = (const unsigned char *)(raw > 0 ? c->params.p : "");
	end = p + raw;
	while (p < end) {
		long nl = nv_len(&p, end), vl = nv_len(&p, end);

		if (nl < 0 || vl < 0 || end - p < nl + vl || n == PARAMS_MAX_N)
			return -1;
		p += nl + vl;
		bytes += (size_t)(nl + vl) + 2;
		n++;
	}
	if (n + 1 > c->env_cap) {
		free(c->envv);
		free(c->nlen);
		c->env_cap = n + 1 > 64 ? n + 1 : 64;
		c->envv = gw_xmalloc(c->env_cap * sizeof(*c->envv));
		c->nlen = gw_xmalloc(c->env_cap * sizeof(*c->nlen));
	}
	if (n == 0) {
		c->envv[0] = NULL;
		c->envp = c->envv;
		return 0;
	}
	s = gw_buf_extend(&c->params, bytes); /* may move the raw bytes */
	p = (const unsigned char *)c->params.p;
	end = p + raw;
	for (i = 0, k = 0; i < n; i++) {
		long nl = nv_len(&p, end), vl = nv_len(&p, end);

		/* A name no web server sends ('=' or NUL in it): left out. */
		if (nl == 0 || memchr(p, '=', (size_t)nl) != NULL ||
		    memchr(p, '\0', (size_t)nl) != NULL) {
			p += nl + vl;
			continue;
		}
		c->nlen[k] = (unsigned)nl;
		c->envv[k++] = s;
		memcpy(s, p, (size_t)nl);
		s[nl] = '=';
		memcpy(s + nl + 1, p + nl, (size_t)vl);
		s[nl + 1 + vl] = '\0';
		s += nl + vl + 2;
		p += nl + vl;
	}
	c->envv[k] = NULL;
	c->envp = c->envv;
	return 0;
}

/*
 * Read one request up to its parameters' end on c->fd. 0, or -1 when the
 * connection is of no more use (closed, broken, or refused).
 */
static int
read_request(struct gw_fcgi *c)
{
	struct rec r;
	const unsigned char *b;

	c->id = 0;
	for (;;) {
		if (next_header(c, &r) != 0)
			return -1;
		if (r.type == FCGI_BEGIN_REQUEST && r.id != 0 && c->id == 0) {
			if (r.len < 8 || whole(c, &r) != 0)
				return -1;
			b = c->in + c->in_off;
			if (((b[0] << 8) | b[1]) != FCGI_RESPONDER) {
				send_end(c, r.id, FCGI_UNKNOWN_ROLE);
				skip(c, &r);
				if (!(b[2] & FCGI_KEEP_CONN))
					return -1;
				continue;
			}
			c->id = r.id;
			c->keep = (b[2] & FCGI_KEEP_CONN) != 0;
			skip(c, &r);
			continue;
		}
		if (r.type == FCGI_PARAMS && r.id == c->id && c->id != 0) {
			if (r.len == 0) {
				skip(c, &r);
				return parse_params(c);
			}
			if (c->params.len + r.len > PARAMS_MAX || whole(c, &r))
				return -1;
			gw_buf_append(&c->params, c->in + c->in_off, r.len);
			skip(c, &r);
			continue;
		}
		if (r.type == FCGI_ABORT_REQUEST && r.id == c->id) {
			/* Before it began: nothing to answer but the end. */
			if (whole(c, &r) != 0)
				return -1;
			skip(c, &r);
			send_end(c, c->id, FCGI_REQUEST_COMPLETE);
			if (!c->keep)
				return -1;
			c->id = 0;
			gw_buf_reset(&c->params, PARAMS_KEEP);
			continue;
		}
		if (other_record(c, &r) != 0)
			return -1;
	}
}

/* Per-request state back to empty (the connection's stays). */
static void
reset_request(struct gw_fcgi *c)
{
	c->id = 0;
	c->in_eof = 0;
	c->out_err = 0;
	c->rec_left = c->pad_left = 0;
	c->envp = NULL;
	c->rec = GW_FCGI_NO_RECORD;
	gw_buf_reset(&c->params, PARAMS_KEEP);
	gw_buf_reset(&c->out, OUT_KEEP);
}

static void
drop_conn(struct gw_fcgi *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->keep = 0;
	c->in_off = c->in_len = 0;
}

int
gw_fcgi_accept(struct gw_fcgi *c)
{
	if (c->in == NULL)
		c->in = gw_xmalloc(IN_CAP);
	for (;;) {
		reset_request(c);
		if (c->fd < 0) {
			int fd =
			    accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC);

			if (fd < 0) {
				if (errno == EINTR || errno == ECONNABORTED)
					continue;
				return -1;
			}
			c->fd = fd;
			if (!peer_allowed(fd)) {
				drop_conn(c);
				continue;
			}
		}
		if (read_request(c) == 0)
			return 0;
		drop_conn(c);
	}
}

const char *
gw_fcgi_param(char *const *envp, const char *name)
{
	size_t n = strlen(name);

	if (envp == NULL)
		return NULL;
	for (; *envp != NULL; envp++)
		if (!strncmp(*envp, name, n) && (*envp)[n] == '=')
			return *envp + n + 1;
	return NULL;
}

const char *
gw_fcgi_get(const struct gw_fcgi *c, const char *name)
{
	size_t n, i;

	if (c->envp == NULL || c->envp != c->envv)
		return gw_fcgi_param(c->envp, name);
	n = strlen(name);
	for (i = 0; c->envv[i] != NULL; i++)
		if (c->nlen[i] == n && !memcmp(c->envv[i], name, n))
			return c->envv[i] + n + 1;
	return NULL;
}

ssize_t
gw_fcgi_read(struct gw_fcgi *c, void *dst, size_t n)
{
	struct rec r;

	while (!c->in_eof || c->pad_left > 0) {
		if (c->fd < 0)
			return -1;
		if (c->rec_left > 0) {
			size_t have = c->in_len - c->in_off;
			size_t take = n < c->rec_left ? n : c->rec_left;

			if (take == 0)
				return 0;
			if (have > 0) {
				if (take > have)
					take = have;
				memcpy(dst, c->in + c->in_off, take);
				c->in_off += take;
			} else {
				/* Nothing buffered: straight into dst. */
				ssize_t got = read_some(c, dst, take);

				if (got < 0 && errno == EINTR)
					continue;
				if (got <= 0)
					return -1;
				take = (size_t)got;
			}
			c->rec_left -= take;
			return (ssize_t)take;
		}
		if (c->pad_left > 0) {
			if (fill(c, c->pad_left) != 0)
				return -1;
			c->in_off += c->pad_left;
			c->pad_left = 0;
			if (c->in_eof)
				break;
		}
		if (next_header(c, &r) != 0)
			return -1;
		if (r.type == FCGI_STDIN && r.id == c->id) {
			/* The empty record ends the body, once past its
			 * padding. */
			c->rec_left = r.len;
			c->pad_left = r.pad;
			c->in_eof = r.len == 0;
			continue;
		}
		if (other_record(c, &r) != 0)
			return -1;
	}
	return 0;
}

int
gw_fcgi_flush(struct gw_fcgi *c)
{
	int rc = 0;

	if (c->out.len > 0) {
		if (c->fd < 0 || c->out_err ||
		    write_all(c->fd, c->out.p, c->out.len) != 0) {
			c->out_err = 1;
			rc = -1;
		}
		c->out.len = 0;
		c->rec = GW_FCGI_NO_RECORD;
	}
	return c->out_err ? -1 : rc;
}

int
gw_fcgi_write(struct gw_fcgi *c, const void *p, size_t n)
{
	if (c->out_err)
		return -1;
	gw_fcgi_frame(&c->out, &c->rec, c->id, p, n);
	if (c->out.len >= OUT_FLUSH)
		return gw_fcgi_flush(c);
	return 0;
}

/* The rest of a body the request did not read, dropped (bounded). */
static void
drain_stdin(struct gw_fcgi *c)
{
	char scratch[16 * 1024];
	size_t total = 0;
	ssize_t n;

	c->drain_until = gw_now_mono_us() + DRAIN_MS * 1000LL;
	while (total < DRAIN_MAX_BYTES &&
	       (n = gw_fcgi_read(c, scratch, sizeof(scratch))) > 0)
		total += (size_t)n;
	c->drain_until = 0;
}

void
gw_fcgi_finish(struct gw_fcgi *c)
{
	if (c->fd < 0)
		return;
	gw_fcgi_frame_end(&c->out, c->id);
	gw_fcgi_flush(c);
	if (!c->in_eof && !c->out_err)
		drain_stdin(c);
	/*
	 * Kept only when the body was read to its end: otherwise its rest
	 * would be taken for the next request's records.
	 */
	if (!c->keep || !c->in_eof || c->out_err)
		drop_conn(c);
	reset_request(c);
}

int
gw_fcgi_release(struct gw_fcgi *c)
{
	int fd;

	gw_fcgi_flush(c);
	fd = c->fd;
	c->fd = -1; /* not closed: the new owner's */
	drop_conn(c);
	reset_request(c);
	return fd;
}

void
gw_fcgi_free(struct gw_fcgi *c)
{
	drop_conn(c);
	gw_buf_fini(&c->params);
	gw_buf_fini(&c->out);
	free(c->in);
	free(c->envv);
	free(c->nlen);
	gw_fcgi_init(c, c->listen_fd);
}
