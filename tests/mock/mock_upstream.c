/*
 * mock_upstream.c: a small OpenAI-compatible mock upstream standing in for
 * llama-swap in llmgw's integration tests and benchmarks.
 *
 * One process, one thread: epoll, non-blocking sockets, HTTP/1.1 keep-alive,
 * delays driven by a binary heap of deadlines and the epoll_wait timeout.
 * Endpoints, options and fault injection are described in README.md.
 */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#define HEAD_MAX (64 * 1024)		/* request line + headers */
#define BODY_MAX (32 * 1024 * 1024)	/* request body (audio uploads) */
#define IN_MAX (HEAD_MAX + BODY_MAX + 4096)
#define MAX_HDRS 100
#define MAX_EVENTS 256
#define LINGER_MS 2000
#define FAIL_SLOTS 64
#define MAX_INPUTS 2048			/* embedding inputs per request */
#define MAX_DIMS 4096

struct buf {
	char *p;
	size_t len;
	size_t cap;
	size_t off;	/* output buffers: bytes already written */
};

/* Per-request options; -1 means "not set". */
enum { O_DELAY, O_CHUNKS, O_CHUNK_DELAY, O_REASONING, O_DIMS, O_FAULT,
	O_STATUS, O_FAIL_TIMES, O_NO_RESPONSES, O_NO_USAGE, O_COUNT };
static const char *const opt_names[O_COUNT] = {"delay_ms", "chunks",
    "chunk_delay_ms", "reasoning_chunks", "dims", "fault", "status",
    "fail_times", "no_responses", "no_usage"};
static const int opt_max[O_COUNT] = {3600000, 100000, 3600000, 100000,
    MAX_DIMS, 0, 599, 1000000, 1, 1};

enum { F_NONE, F_500, F_503, F_400, F_429, F_404, F_TEXT500, F_DROP_BEFORE,
	F_RESET_BEFORE, F_DROP_MID, F_MALFORMED, F_HANG, F_KEYLEAK,
	F_KEYLEAK_MID, F_COUNT };
static const char *const fault_names[F_COUNT] = {"none", "500", "503", "400",
    "429", "404", "text500", "drop_before", "reset_before", "drop_mid",
    "malformed", "hang", "keyleak", "keyleak_mid"};

struct opts {
	int v[O_COUNT];
};

/* fault=keyleak: an upstream that quotes the credentials it was sent. */
#define MOCK_KEYLEAK_MSG "Incorrect API key provided: " \
    "sk-mockLEAK0123456789abcdefXYZ. Authorization: Bearer " \
    "mock-bearer-0123456789abcdef; token " \
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtb2NrIn0.bW9ja3NpZ25hdHVyZQ"

enum route { R_NONE, R_BADMETHOD, R_HEALTH, R_MODELS, R_CHAT, R_COMPL,
	R_EMBED, R_LAST, R_STATS, R_RESET, R_CONTROL, R_RUNNING, R_RERANK,
	R_RESPONSES, R_TOKENIZE, R_TRANSCRIBE, R_TRANSLATE, R_SPEECH };

enum state { S_READ, S_DELAY, S_HANG, S_WRITE, S_STREAM, S_LINGER,
	S_QUEUED };
enum close_mode { C_KEEP, C_GRACEFUL, C_ABRUPT };
enum body_mode { B_NONE, B_LENGTH, B_CHUNKED };
enum chunk_state { CK_SIZE, CK_DATA, CK_CRLF, CK_TRAILER };
enum phase { P_ROLE, P_REASON, P_CONTENT, P_FINAL, P_USAGE, P_DONE, P_END };

struct hdr {
	uint32_t no, nl, vo, vl;	/* name/value offsets into the head */
};

struct req {
	size_t head_len;
	uint32_t mo, ml, to, tl;	/* method, target */
	int minor;			/* HTTP/1.minor */
	int nh;
	struct hdr h[MAX_HDRS];
};

struct stream {
	int chat;		/* chat.completion.chunk or text_completion */
	int phase, idx;
	int n, reasoning, delay, drop_at, usage, chunked, prompt;
	const char *finish;
	char id[64];
	long long created;
	struct buf model;		/* JSON-encoded model string */
	int speech;			/* a WAV answer (speech_step) */
};

struct conn {
	int fd;
	enum state state;
	uint32_t ev;			/* current epoll interest */
	struct conn *prev, *next;
	long tidx;		/* index in the timer heap, -1 if none */
	int64_t deadline;
	int tick;			/* stream: chunk delay elapsed */
	struct buf in, out, body;
	struct req req;
	int head_done;
	size_t scan;		/* where to resume looking for CRLFCRLF */
	enum body_mode bmode;
	size_t clen;
	enum chunk_state ck;
	size_t ck_rem;
	size_t consumed;	/* input bytes of the finished request */
	const char *bodyp;
	size_t bodyn;
	int keep, peer_eof;
	enum close_mode close_mode;
	enum route route;
	struct json_object *json;	/* parsed request body (or NULL) */
	int json_bad, want_stream;
	struct opts opt;
	size_t resp_body, resp_body_n;	/* body of the last full response */
	struct stream st;
	/* --swap-ms: the request's swap group, -1 when not swap-managed */
	int sw_group, sw_active;
	char sw_model[128];
	struct conn *sw_next;		/* in its group's queue */
};

struct stats {
	unsigned long requests, chat, completions, embeddings, models, health;
	unsigned long streams_started, streams_completed, streams_aborted;
	unsigned long connections;
	/* --swap-ms: loads (into an empty group), swaps (another model was
	 * loaded), requests aborted by a swap (--swap-policy abort) */
	unsigned long loads, swaps, swap_aborted;
	unsigned long audio;	/* transcriptions, translations, speech */
};

/*
 * --swap-ms: llama-swap's behaviour. One model loaded at a time per group
 * (--swap-groups "a,b;c", models not named share group 0); a request for
 * another model queues (first come, first served, as llama-swap) and the
 * swap takes swap_ms once the group is free (policy wait, llama-swap) or
 * at once, aborting the loaded model's requests (policy abort, llama.cpp's
 * router).
 */
#define SW_GROUPS 16
static struct swgroup {
	char loaded[128];	/* "" when nothing is loaded */
	char target[128];	/* the model being loaded */
	int swapping, inflight;
	int64_t swap_due;	/* now_ms() when the load completes */
	struct conn *q, *q_tail;
} g_sw[SW_GROUPS];
static int g_swap_ms = -1;	/* -1: off */
static int g_swap_abort;
static const char *g_swap_groups = "";

static struct stats g_st;
static unsigned long g_open;
static struct opts g_defaults;
static struct buf g_models_body;
static long long g_start;
static int g_quiet;
static volatile sig_atomic_t g_stop;
static int g_epfd = -1;
static struct conn *g_conns;
static struct buf g_tmp;
static struct buf g_last_head, g_last_body;
static struct req g_last_req;
static int g_have_last;
static struct {
	uint64_t key;
	int count;
} g_fail[FAIL_SLOTS];
static unsigned g_fail_next;
static unsigned long g_id;
static json_tokener *g_tok;
static struct conn **g_heap;
static size_t g_heap_n, g_heap_cap;

static void conn_run(struct conn *c);
static void conn_close(struct conn *c);

/* ---- small utilities ---- */

static void
die(const char *what)
{
	fprintf(stderr, "mock-upstream: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
buf_reserve(struct buf *b, size_t extra)
{
	size_t cap = b->cap ? b->cap : 256;
	char *p;

	if (b->len + extra <= b->cap)
		return;
	while (cap < b->len + extra)
		cap *= 2;
	if (!(p = realloc(b->p, cap)))
		die("realloc");
	b->p = p;
	b->cap = cap;
}

static void
buf_add(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	buf_reserve(b, n);
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void
buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static void buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	buf_reserve(b, 64);
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= b->cap - b->len) {
		buf_reserve(b, (size_t)n + 1);
		va_start(ap, fmt);
		vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

static void
buf_free(struct buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* Append s as a JSON string literal, quotes included. */
static void
buf_json(struct buf *b, const char *s, size_t n)
{
	size_t i;

	buf_reserve(b, n + 2);
	b->p[b->len++] = '"';
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '"' || ch == '\\') {
			buf_reserve(b, 2);
			b->p[b->len++] = '\\';
			b->p[b->len++] = (char)ch;
		} else if (ch < 0x20) {
			buf_printf(b, "\\u%04x", ch);
		} else {
			buf_reserve(b, 1);
			b->p[b->len++] = (char)ch;
		}
	}
	buf_add(b, "\"", 1);
}

static uint64_t
fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;

	while (n--) {
		h ^= *s++;
		h *= 0x100000001b3ULL;
	}
	return h;
}

#define FNV_INIT 0xcbf29ce484222325ULL

static int
is_ws(int ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' ||
	    ch == '\f' || ch == '\v';
}

/* The mock tokenizer: one token per whitespace-separated word. */
static int
count_words(const char *s, size_t n)
{
	int words = 0, inword = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		int sp = is_ws((unsigned char)s[i]);

		if (!sp && !inword)
			words++;
		inword = !sp;
	}
	return words;
}

static const char *
reason_phrase(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Status";
	}
}

/* ---- timers: a binary min-heap of connections keyed by deadline ---- */

static void
heap_swap(size_t a, size_t b)
{
	struct conn *t = g_heap[a];

	g_heap[a] = g_heap[b];
	g_heap[b] = t;
	g_heap[a]->tidx = (long)a;
	g_heap[b]->tidx = (long)b;
}

static void
heap_up(size_t i)
{
	while (i > 0) {
		size_t p = (i - 1) / 2;

		if (g_heap[p]->deadline <= g_heap[i]->deadline)
			break;
		heap_swap(i, p);
		i = p;
	}
}

static void
heap_down(size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < g_heap_n && g_heap[l]->deadline < g_heap[m]->deadline)
			m = l;
		if (r < g_heap_n && g_heap[r]->deadline < g_heap[m]->deadline)
			m = r;
		if (m == i)
			break;
		heap_swap(i, m);
		i = m;
	}
}

static void
timer_clear(struct conn *c)
{
	size_t i, last;

	if (c->tidx < 0)
		return;
	i = (size_t)c->tidx;
	last = --g_heap_n;
	if (i != last) {
		g_heap[i] = g_heap[last];
		g_heap[i]->tidx = (long)i;
		heap_down(i);
		heap_up(i);
	}
	c->tidx = -1;
}

static void
timer_set(struct conn *c, int ms)
{
	timer_clear(c);
	if (g_heap_n == g_heap_cap) {
		size_t cap = g_heap_cap ? g_heap_cap * 2 : 64;
		struct conn **h = realloc(g_heap, cap * sizeof(*h));

		if (!h)
			die("realloc");
		g_heap = h;
		g_heap_cap = cap;
	}
	c->deadline = now_ms() + ms;
	c->tidx = (long)g_heap_n;
	g_heap[g_heap_n++] = c;
	heap_up(g_heap_n - 1);
}

static int
timers_timeout(void)
{
	int64_t d;

	if (!g_heap_n)
		return -1;
	d = g_heap[0]->deadline - now_ms();
	return d < 0 ? 0 : d > INT_MAX ? INT_MAX : (int)d;
}

/* ---- options ---- */

static void
opts_clear(struct opts *o)
{
	int i;

	for (i = 0; i < O_COUNT; i++)
		o->v[i] = -1;
}

static int
opt_get(const struct opts *o, int k, int def)
{
	return o->v[k] >= 0 ? o->v[k] : def;
}

static void
trim(const char **s, size_t *n)
{
	while (*n && is_ws((unsigned char)**s)) {
		(*s)++;
		(*n)--;
	}
	while (*n && is_ws((unsigned char)(*s)[*n - 1]))
		(*n)--;
}

/* Set one option; '-' in keys is read as '_' (for header names). */
static int
opt_set(struct opts *o, const char *k, size_t kl, const char *v, size_t vl,
    char *err, size_t errsz)
{
	char key[32];
	size_t i;
	int idx, f;
	long val = 0;

	trim(&k, &kl);
	trim(&v, &vl);
	if (kl == 0 || kl >= sizeof(key))
		goto badkey;
	for (i = 0; i < kl; i++)
		key[i] = k[i] == '-' ? '_' : (char)tolower((unsigned char)k[i]);
	key[kl] = '\0';
	for (idx = 0; idx < O_COUNT; idx++)
		if (!strcmp(key, opt_names[idx]))
			break;
	if (idx == O_COUNT)
		goto badkey;
	if (idx == O_FAULT) {
		for (f = 0; f < F_COUNT; f++)
			if (strlen(fault_names[f]) == vl &&
			    !strncasecmp(fault_names[f], v, vl)) {
				o->v[idx] = f;
				return 0;
			}
		snprintf(err, errsz, "mock: unknown fault '%.*s'", (int)vl, v);
		return -1;
	}
	for (i = 0; i < vl && i < 10; i++) {
		if (v[i] < '0' || v[i] > '9')
			break;
		val = val * 10 + (v[i] - '0');
	}
	if (vl == 0 || i != vl || val > opt_max[idx] ||
	    (idx == O_STATUS && val < 200)) {
		snprintf(err, errsz, "mock: bad value '%.*s' for option %s",
		    (int)vl, v, key);
		return -1;
	}
	o->v[idx] = (int)val;
	return 0;
badkey:
	snprintf(err, errsz, "mock: unknown option '%.*s'", (int)kl, k);
	return -1;
}

/* Parse "k=v,k=v" (the part of a model name after '@'). */
static int
opts_parse_list(struct opts *o, const char *s, size_t n, char *err,
    size_t errsz)
{
	while (n > 0) {
		const char *comma = memchr(s, ',', n);
		size_t il = comma ? (size_t)(comma - s) : n;
		const char *eq = memchr(s, '=', il);

		if (eq) {
			if (opt_set(o, s, (size_t)(eq - s), eq + 1,
				il - (size_t)(eq - s) - 1, err, errsz) < 0)
				return -1;
		} else if (count_words(s, il) > 0) {
			snprintf(err, errsz, "mock: option '%.*s' needs a "
			    "value", (int)il, s);
			return -1;
		}
		s += il;
		n -= il;
		if (n) {
			s++;
			n--;
		}
	}
	return 0;
}

static void
opts_json(struct buf *b, const struct opts *o)
{
	const char *sep = "";
	int i;

	buf_str(b, "{");
	for (i = 0; i < O_COUNT; i++) {
		if (o->v[i] < 0)
			continue;
		if (i == O_FAULT)
			buf_printf(b, "%s\"%s\":\"%s\"", sep, opt_names[i],
			    fault_names[o->v[i]]);
		else
			buf_printf(b, "%s\"%s\":%d", sep, opt_names[i],
			    o->v[i]);
		sep = ",";
	}
	buf_str(b, "}");
}

/* ---- HTTP request parsing ---- */

static int
is_tchar(int ch)
{
	return ch > 0x20 && ch < 0x7f && !strchr("\"(),/:;<=>?@[\\]{}", ch);
}

/* Parse request line and headers; lowercases header names in place. */
static int
parse_head(char *p, size_t len, struct req *r)
{
	size_t pos = 0, i;
	int first = 1;

	r->nh = 0;
	r->head_len = len;
	while (pos < len) {
		char *ls = p + pos, *nl = memchr(ls, '\n', len - pos);
		size_t ll;

		if (!nl)
			return 400;
		ll = (size_t)(nl - ls);
		pos += ll + 1;
		if (ll && ls[ll - 1] == '\r')
			ll--;
		if (first) {
			/* METHOD SP /target SP HTTP/1.x */
			for (i = 0; i < ll && is_tchar((unsigned char)ls[i]);
			     i++)
				;
			if (i == 0 || i >= ll || ls[i] != ' ')
				return 400;
			r->mo = (uint32_t)(ls - p);
			r->ml = (uint32_t)i;
			r->to = (uint32_t)(ls - p + (long)i + 1);
			for (i++; i < ll && ls[i] > 0x20 && ls[i] < 0x7f; i++)
				;
			r->tl = (uint32_t)(ls - p + (long)i) - r->to;
			if (r->tl == 0 || p[r->to] != '/' || i + 9 != ll ||
			    ls[i] != ' ' || memcmp(ls + i + 1, "HTTP/1.", 7) ||
			    (ls[i + 8] != '0' && ls[i + 8] != '1'))
				return 400;
			r->minor = ls[i + 8] - '0';
			first = 0;
			continue;
		}
		if (ll == 0)
			break;
		{
			char *colon = memchr(ls, ':', ll);
			const char *v;
			size_t vl, nlen;
			struct hdr *h;

			if (!colon || colon == ls)
				return 400;
			nlen = (size_t)(colon - ls);
			for (i = 0; i < nlen; i++) {
				if (!is_tchar((unsigned char)ls[i]))
					return 400;
				ls[i] = (char)tolower((unsigned char)ls[i]);
			}
			v = colon + 1;
			vl = ll - nlen - 1;
			trim(&v, &vl);
			for (i = 0; i < vl; i++)
				if ((unsigned char)v[i] < 0x20 && v[i] != '\t')
					return 400;
			if (r->nh == MAX_HDRS)
				return 431;
			h = &r->h[r->nh++];
			h->no = (uint32_t)(ls - p);
			h->nl = (uint32_t)nlen;
			h->vo = (uint32_t)(v - p);
			h->vl = (uint32_t)vl;
		}
	}
	return first ? 400 : 0;
}

static const struct hdr *
req_hdr(const char *base, const struct req *r, const char *lname)
{
	size_t n = strlen(lname);
	int i;

	for (i = 0; i < r->nh; i++)
		if (r->h[i].nl == n && !memcmp(base + r->h[i].no, lname, n))
			return &r->h[i];
	return NULL;
}

/* Does a comma-separated header value contain token tok? */
static int
hdr_has_token(const char *base, const struct hdr *h, const char *tok)
{
	const char *s = base + h->vo;
	size_t n = h->vl, tl = strlen(tok);

	while (n > 0) {
		const char *comma = memchr(s, ',', n);
		size_t il = comma ? (size_t)(comma - s) : n;
		const char *t = s;
		size_t tn = il;

		trim(&t, &tn);
		if (tn == tl && !strncasecmp(t, tok, tl))
			return 1;
		s += il;
		n -= il;
		if (n) {
			s++;
			n--;
		}
	}
	return 0;
}

/* Decode a chunked request body incrementally into c->body. */
static int
chunk_decode(struct conn *c)
{
	char *p = c->in.p;
	size_t head = c->req.head_len, pos = head, end = c->in.len;
	int rc = 0;

	while (rc == 0) {
		if (c->ck == CK_SIZE || c->ck == CK_TRAILER) {
			char *line = p + pos, *nl;
			size_t ll, v = 0, i;

			nl = memchr(line, '\n', end - pos);

			if (!nl) {
				if (end - pos > 4096)
					rc = 400;
				break;
			}
			ll = (size_t)(nl - line);
			pos += ll + 1;
			if (ll && line[ll - 1] == '\r')
				ll--;
			if (c->ck == CK_TRAILER) {
				if (ll == 0)
					rc = 1;
				continue;
			}
			for (i = 0; i < ll && isxdigit((unsigned char)line[i]);
			     i++) {
				int ch = tolower((unsigned char)line[i]);

				v = v * 16 + (size_t)(ch <= '9' ? ch - '0' :
				    ch - 'a' + 10);
				if (v > BODY_MAX)
					break;
			}
			if (i == 0)
				rc = 400;
			else if (v > BODY_MAX || c->body.len + v > BODY_MAX)
				rc = 413;
			else if (v == 0)
				c->ck = CK_TRAILER;
			else {
				c->ck_rem = v;
				c->ck = CK_DATA;
			}
		} else if (c->ck == CK_DATA) {
			size_t take = end - pos < c->ck_rem ? end - pos
							    : c->ck_rem;

			if (take == 0)
				break;
			buf_add(&c->body, p + pos, take);
			pos += take;
			c->ck_rem -= take;
			if (c->ck_rem == 0)
				c->ck = CK_CRLF;
		} else {
			if (pos < end && p[pos] == '\n') {
				pos++;
			} else if (end - pos >= 2) {
				if (p[pos] != '\r' || p[pos + 1] != '\n')
					rc = 400;
				pos += 2;
			} else {
				break;
			}
			c->ck = CK_SIZE;
		}
	}
	/* drop the consumed framing so raw input never piles up */
	memmove(p + head, p + pos, end - pos);
	c->in.len = head + (end - pos);
	if (rc == 1) {
		c->bodyp = c->body.p;
		c->bodyn = c->body.len;
		c->consumed = head;
	}
	return rc;
}

/* 0: need more input, 1: request complete, >1: HTTP error status. */
static int
try_parse(struct conn *c)
{
	if (!c->head_done) {
		const struct hdr *te, *cl, *ex;
		size_t i, end;
		char *base;
		int rc;

		for (i = c->scan; i + 4 <= c->in.len; i++)
			if (!memcmp(c->in.p + i, "\r\n\r\n", 4))
				break;
		if (i + 4 > c->in.len) {
			c->scan = c->in.len > 3 ? c->in.len - 3 : 0;
			return c->in.len > HEAD_MAX ? 431 : 0;
		}
		end = i + 4;
		if (end > HEAD_MAX)
			return 431;
		if ((rc = parse_head(c->in.p, end, &c->req)) != 0)
			return rc;
		c->head_done = 1;
		base = c->in.p;
		te = req_hdr(base, &c->req, "transfer-encoding");
		cl = req_hdr(base, &c->req, "content-length");
		c->bmode = B_NONE;
		if (te) {
			if (cl)
				return 400;
			if (te->vl != 7 ||
			    strncasecmp(base + te->vo, "chunked", 7))
				return 501;
			c->bmode = B_CHUNKED;
			c->ck = CK_SIZE;
			c->body.len = 0;
		} else if (cl) {
			size_t v = 0;

			if (cl->vl == 0)
				return 400;
			for (i = 0; i < cl->vl; i++) {
				char ch = base[cl->vo + i];

				if (ch < '0' || ch > '9')
					return 400;
				if (v <= BODY_MAX)
					v = v * 10 + (size_t)(ch - '0');
			}
			if (v > BODY_MAX)
				return 413;
			c->bmode = B_LENGTH;
			c->clen = v;
		}
		ex = req_hdr(base, &c->req, "expect");
		if (ex && c->req.minor == 1 && hdr_has_token(base, ex,
		    "100-continue") && c->in.len == end &&
		    (c->bmode == B_CHUNKED || (c->bmode == B_LENGTH &&
		    c->clen)))
			buf_str(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
	}
	switch (c->bmode) {
	case B_NONE:
		c->bodyp = NULL;
		c->bodyn = 0;
		c->consumed = c->req.head_len;
		return 1;
	case B_LENGTH:
		if (c->in.len - c->req.head_len < c->clen)
			return c->in.len >= IN_MAX ? 413 : 0;
		c->bodyp = c->in.p + c->req.head_len;
		c->bodyn = c->clen;
		c->consumed = c->req.head_len + c->clen;
		return 1;
	case B_CHUNKED:
		return chunk_decode(c);
	}
	return 400;
}

/* ---- responses ---- */

static void
log_req(struct conn *c, int status, const char *note)
{
	const char *b = c->in.p;

	if (g_quiet)
		return;
	if (!c->head_done)
		fprintf(stderr, "- - %d\n", status);
	else if (note)
		fprintf(stderr, "%.*s %.*s %s\n", (int)c->req.ml, b + c->req.mo,
		    (int)c->req.tl, b + c->req.to, note);
	else
		fprintf(stderr, "%.*s %.*s %d\n", (int)c->req.ml, b + c->req.mo,
		    (int)c->req.tl, b + c->req.to, status);
}

static void
respond_full(struct conn *c, int status, const char *ctype, const char *extra,
    const char *body, size_t n)
{
	buf_printf(&c->out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\n%s%s\r\n", status, reason_phrase(status),
	    ctype, n, extra ? extra : "",
	    !c->keep ? "Connection: close\r\n"
	    : c->req.minor == 0 ? "Connection: keep-alive\r\n" : "");
	c->resp_body = c->out.len;
	c->resp_body_n = n;
	buf_add(&c->out, body, n);
	c->state = S_WRITE;
	c->close_mode = c->keep ? C_KEEP : C_GRACEFUL;
	log_req(c, status, NULL);
}

static void
respond_json(struct conn *c, int status, const struct buf *b)
{
	respond_full(c, status, "application/json", NULL, b->p, b->len);
}

/* OpenAI error shape; param and code may be NULL (JSON null). */
static void
respond_error(struct conn *c, int status, const char *msg, const char *type,
    const char *param, const char *code, const char *extra)
{
	struct buf *t = &g_tmp;

	t->len = 0;
	buf_str(t, "{\"error\":{\"message\":");
	buf_json(t, msg, strlen(msg));
	buf_printf(t, ",\"type\":\"%s\",\"param\":", type);
	if (param)
		buf_json(t, param, strlen(param));
	else
		buf_str(t, "null");
	buf_str(t, ",\"code\":");
	if (code)
		buf_printf(t, "\"%s\"", code);
	else
		buf_str(t, "null");
	buf_str(t, "}}");
	respond_full(c, status, "application/json", extra, t->p, t->len);
}

static void
respond_status(struct conn *c, int status)
{
	char msg[64], code[16];

	snprintf(msg, sizeof(msg), "mock status %d", status);
	snprintf(code, sizeof(code), "%d", status);
	respond_error(c, status, status == 400 ? "mock bad request" : msg,
	    status >= 500 ? "server_error" : "invalid_request_error", NULL,
	    code, NULL);
}

/* Errors found while reading the request: answer and close. */
static void
respond_http_error(struct conn *c, int status)
{
	static const char *const msgs[] = {"malformed HTTP request",
	    "request body too large", "request headers too large",
	    "transfer-encoding not supported"};
	const char *m = status == 413 ? msgs[1] : status == 431 ? msgs[2]
	    : status == 501 ? msgs[3] : msgs[0];

	c->keep = 0;
	respond_error(c, status, m, "invalid_request_error", NULL, NULL, NULL);
}

/* ---- streaming ---- */

static void
sse_event(struct conn *c, const char *data, size_t n)
{
	if (c->st.chunked)
		buf_printf(&c->out, "%zx\r\n", n + 8);
	buf_add(&c->out, "data: ", 6);
	buf_add(&c->out, data, n);
	buf_add(&c->out, "\n\n", 2);
	if (c->st.chunked)
		buf_add(&c->out, "\r\n", 2);
}

static void
chunk_head(struct conn *c, struct buf *t)
{
	struct stream *s = &c->st;

	t->len = 0;
	buf_printf(t, "{\"id\":\"%s\",\"object\":\"%s\",\"created\":%lld,"
	    "\"model\":", s->id, s->chat ? "chat.completion.chunk"
	    : "text_completion", s->created);
	buf_add(t, s->model.p, s->model.len);
	buf_str(t, ",\"choices\":[");
}

/* payload: the delta object (chat) or the text string (completions). */
static void
stream_choice(struct conn *c, const char *payload, const char *finish)
{
	struct buf *t = &g_tmp;

	chunk_head(c, t);
	buf_printf(t, "{\"index\":0,\"%s\":%s,\"logprobs\":null,"
	    "\"finish_reason\":%s}]%s}", c->st.chat ? "delta" : "text", payload,
	    finish ? finish : "null", c->st.usage ? ",\"usage\":null" : "");
	sse_event(c, t->p, t->len);
}

static void
stream_start(struct conn *c)
{
	c->st.chunked = c->req.minor == 1;
	if (!c->st.chunked)
		c->keep = 0;
	buf_printf(&c->out, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream"
	    "\r\nCache-Control: no-cache\r\n%s%s\r\n",
	    c->st.chunked ? "Transfer-Encoding: chunked\r\n" : "",
	    c->keep ? "" : "Connection: close\r\n");
	log_req(c, 200, NULL);
}

/* Emit the next SSE event, arm the chunk timer, or cut the stream. */
static void
stream_step(struct conn *c)
{
	struct stream *s = &c->st;
	struct buf *t = &g_tmp;
	char tmp[64];

	if (s->phase == P_REASON && s->idx >= s->reasoning) {
		s->phase = P_CONTENT;
		s->idx = 0;
	}
	if (s->phase == P_CONTENT && s->idx == s->drop_at) {
		c->state = S_WRITE;	/* drop_mid: flush, then close hard */
		c->close_mode = C_ABRUPT;
		return;
	}
	if (s->phase == P_CONTENT && s->idx >= s->n)
		s->phase = P_FINAL;
	if (s->phase == P_USAGE && !s->usage)
		s->phase = P_DONE;
	if ((s->phase == P_REASON || s->phase == P_CONTENT) && s->delay > 0 &&
	    !c->tick) {
		timer_set(c, s->delay);
		return;
	}
	c->tick = 0;
	switch (s->phase) {
	case P_ROLE:
		stream_choice(c, "{\"role\":\"assistant\",\"content\":\"\"}",
		    NULL);
		s->phase = P_REASON;
		s->idx = 0;
		break;
	case P_REASON:
		stream_choice(c, "{\"reasoning_content\":"
		    "\"loading\xe2\x80\xa6\"}", NULL);
		s->idx++;
		break;
	case P_CONTENT:
		s->idx++;
		snprintf(tmp, sizeof(tmp), s->chat ? "{\"content\":\"tok%d \"}"
		    : "\"tok%d \"", s->idx);
		stream_choice(c, tmp, NULL);
		break;
	case P_FINAL:
		stream_choice(c, s->chat ? "{}" : "\"\"", s->finish);
		s->phase = P_USAGE;
		break;
	case P_USAGE:
		chunk_head(c, t);
		buf_printf(t, "],\"usage\":{\"prompt_tokens\":%d,"
		    "\"completion_tokens\":%d,\"total_tokens\":%d}}", s->prompt,
		    s->n, s->prompt + s->n);
		sse_event(c, t->p, t->len);
		s->phase = P_DONE;
		break;
	case P_DONE:
		sse_event(c, "[DONE]", 6);
		if (s->chunked)
			buf_add(&c->out, "0\r\n\r\n", 5);
		s->phase = P_END;
		break;
	default:
		break;
	}
}

/* ---- endpoint handlers ---- */

static int
get_bool(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) &&
	    json_object_is_type(v, json_type_boolean) &&
	    json_object_get_boolean(v);
}

/* Words in a string, or ints in an array (token ids), or a mix in arrays. */
static int
count_prompt(struct json_object *v, int depth)
{
	size_t i, n;
	int sum = 0;

	if (json_object_is_type(v, json_type_string))
		return count_words(json_object_get_string(v),
		    (size_t)json_object_get_string_len(v));
	if (json_object_is_type(v, json_type_int))
		return 1;
	if (!json_object_is_type(v, json_type_array) || depth > 1)
		return 0;
	n = json_object_array_length(v);
	for (i = 0; i < n; i++)
		sum += count_prompt(json_object_array_get_idx(v, i), depth + 1);
	return sum;
}

/* A chat message's content: a string or an array of {type,text} parts. */
static int
count_content(struct json_object *v)
{
	struct json_object *part, *type, *text;
	size_t i, n;
	int sum = 0;

	if (json_object_is_type(v, json_type_string))
		return count_prompt(v, 0);
	if (!json_object_is_type(v, json_type_array))
		return 0;
	n = json_object_array_length(v);
	for (i = 0; i < n; i++) {
		part = json_object_array_get_idx(v, i);
		if (json_object_object_get_ex(part, "type", &type) &&
		    !strcmp(json_object_get_string(type), "text") &&
		    json_object_object_get_ex(part, "text", &text) &&
		    json_object_is_type(text, json_type_string))
			sum += count_prompt(text, 0);
	}
	return sum;
}

static int
model_of(struct conn *c, const char **m, size_t *n)
{
	struct json_object *v;

	if (!c->json || !json_object_object_get_ex(c->json, "model", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    json_object_get_string_len(v) == 0)
		return -1;
	*m = json_object_get_string(v);
	*n = (size_t)json_object_get_string_len(v);
	return 0;
}

static int
require_model(struct conn *c, const char **m, size_t *n)
{
	if (model_of(c, m, n) == 0)
		return 0;
	respond_error(c, 400, "you must provide a model parameter",
	    "invalid_request_error", "model", NULL, NULL);
	return -1;
}

static void
handle_generate(struct conn *c, int chat)
{
	struct stream *s = &c->st;
	struct json_object *v, *so, *msgs;
	struct buf *t = &g_tmp;
	const char *model;
	size_t mlen, i;
	int n, finish_len = 0;

	if (require_model(c, &model, &mlen) < 0)
		return;
	n = opt_get(&c->opt, O_CHUNKS, 5);
	if ((chat && json_object_object_get_ex(c->json,
		"max_completion_tokens", &v) &&
	    json_object_is_type(v, json_type_int)) ||
	    (json_object_object_get_ex(c->json, "max_tokens", &v) &&
	    json_object_is_type(v, json_type_int))) {
		int64_t mt = json_object_get_int64(v);

		if (mt >= 0 && mt < n) {
			n = (int)mt;
			finish_len = 1;
		}
	}
	s->chat = chat;
	s->speech = 0;
	s->n = n;
	s->finish = finish_len ? "\"length\"" : "\"stop\"";
	s->prompt = 0;
	if (chat && json_object_object_get_ex(c->json, "messages", &msgs) &&
	    json_object_is_type(msgs, json_type_array)) {
		for (i = 0; i < json_object_array_length(msgs); i++)
			if (json_object_object_get_ex(json_object_array_get_idx(
				msgs, i), "content", &v))
				s->prompt += count_content(v);
	} else if (!chat && json_object_object_get_ex(c->json, "prompt", &v)) {
		s->prompt = count_prompt(v, 0);
	}
	/* The pid keeps ids unique across mock processes (real ids are). */
	snprintf(s->id, sizeof(s->id), "%s-mock-%ld-%lu",
	    chat ? "chatcmpl" : "cmpl", (long)getpid(), ++g_id);
	s->created = (long long)time(NULL);
	s->model.len = 0;
	buf_json(&s->model, model, mlen);

	if (c->want_stream) {
		s->usage = json_object_object_get_ex(c->json, "stream_options",
		    &so) && get_bool(so, "include_usage");
		s->reasoning = chat ? opt_get(&c->opt, O_REASONING, 0) : 0;
		s->delay = opt_get(&c->opt, O_CHUNK_DELAY, 0);
		s->drop_at = c->opt.v[O_FAULT] == F_DROP_MID ? n / 2 : -1;
		s->phase = chat ? P_ROLE : P_CONTENT;
		s->idx = 0;
		c->tick = 0;
		stream_start(c);
		c->state = S_STREAM;
		g_st.streams_started++;
		return;
	}
	t->len = 0;
	buf_printf(t, "{\"id\":\"%s\",\"object\":\"%s\",\"created\":%lld,"
	    "\"model\":", s->id, chat ? "chat.completion" : "text_completion",
	    s->created);
	buf_add(t, s->model.p, s->model.len);
	buf_str(t, chat ? ",\"choices\":[{\"index\":0,\"message\":{\"role\":"
	    "\"assistant\",\"content\":\"" : ",\"choices\":[{\"index\":0,"
	    "\"text\":\"");
	for (i = 1; i <= (size_t)n; i++)
		buf_printf(t, "tok%zu ", i);
	buf_printf(t, "\"%s,\"logprobs\":null,\"finish_reason\":%s}],"
	    "\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,"
	    "\"total_tokens\":%d}}", chat ? "}" : "", s->finish, s->prompt, n,
	    s->prompt + n);
	respond_json(c, 200, t);
}

static void
base64(struct buf *b, const unsigned char *p, size_t n)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
				  "qrstuvwxyz0123456789+/";
	size_t i;

	buf_reserve(b, (n + 2) / 3 * 4);
	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 |
		    p[i + 2];

		b->p[b->len++] = tab[v >> 18];
		b->p[b->len++] = tab[(v >> 12) & 63];
		b->p[b->len++] = tab[(v >> 6) & 63];
		b->p[b->len++] = tab[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)p[i] << 16 |
		    (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);

		b->p[b->len++] = tab[v >> 18];
		b->p[b->len++] = tab[(v >> 12) & 63];
		b->p[b->len++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
		b->p[b->len++] = '=';
	}
}

/* Deterministic unit vector from h, rounded to 6 decimals. */
static void
embed_one(struct buf *b, int index, uint64_t h, int dims, int b64)
{
	static double vec[MAX_DIMS];
	static unsigned char raw[MAX_DIMS * 4];
	double sum = 0, norm;
	int i, k;

	for (i = 0; i < dims; i++) {
		uint64_t z = (h += 0x9e3779b97f4a7c15ULL);

		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
		z ^= z >> 31;
		vec[i] = (double)(z >> 11) / 9007199254740992.0 * 2.0 - 1.0;
		sum += vec[i] * vec[i];
	}
	norm = sum > 1.0 ? sum : 1.0;	/* Newton's method: no libm needed */
	for (k = 0; k < 60 && sum > 0; k++)
		norm = 0.5 * (norm + sum / norm);
	buf_printf(b, "{\"object\":\"embedding\",\"index\":%d,\"embedding\":%s",
	    index, b64 ? "\"" : "[");
	for (i = 0; i < dims; i++) {
		double x = sum > 0 ? vec[i] / norm : 0;
		long long q = (long long)(x * 1e6 + (x >= 0 ? 0.5 : -0.5));
		long long a = q < 0 ? -q : q;

		if (b64) {
			float f = (float)((double)q / 1e6);
			uint32_t u;

			memcpy(&u, &f, 4);
			for (k = 0; k < 4; k++)
				raw[i * 4 + k] = (unsigned char)(u >> (8 * k));
			continue;
		}
		buf_printf(b, "%s%s%lld", i ? "," : "", q < 0 ? "-" : "",
		    a / 1000000);
		if (a % 1000000) {
			char frac[8];
			int len = 6;

			snprintf(frac, sizeof(frac), "%06lld", a % 1000000);
			while (frac[len - 1] == '0')
				len--;
			buf_printf(b, ".%.*s", len, frac);
		}
	}
	if (b64)
		base64(b, raw, (size_t)dims * 4);
	buf_str(b, b64 ? "\"}" : "]}");
}

static uint64_t
hash_item(struct json_object *v, int *tokens)
{
	uint64_t h = FNV_INIT;
	size_t i, n;

	if (json_object_is_type(v, json_type_string)) {
		*tokens += count_prompt(v, 0);
		return fnv1a(h, json_object_get_string(v),
		    (size_t)json_object_get_string_len(v));
	}
	n = json_object_array_length(v);
	for (i = 0; i < n; i++) {
		int64_t x;
		unsigned char le[8];
		int k;

		x = json_object_get_int64(json_object_array_get_idx(v, i));
		for (k = 0; k < 8; k++)
			le[k] = (unsigned char)((uint64_t)x >> (8 * k));
		h = fnv1a(h, le, 8);
	}
	*tokens += (int)n;
	return h;
}

/* 1: string, 2: array of ints, 0: anything else. */
static int
input_kind(struct json_object *v)
{
	size_t i, n;

	if (json_object_is_type(v, json_type_string))
		return 1;
	if (!json_object_is_type(v, json_type_array))
		return 0;
	n = json_object_array_length(v);
	for (i = 0; i < n; i++)
		if (!json_object_is_type(json_object_array_get_idx(v, i),
			json_type_int))
			return 0;
	return n ? 2 : 0;
}

static void
handle_embed(struct conn *c)
{
	struct json_object *in, *fmt, *items[MAX_INPUTS];
	struct buf *t = &g_tmp;
	const char *model;
	size_t mlen, n, i;
	int dims = opt_get(&c->opt, O_DIMS, 8), tokens = 0, b64;

	if (require_model(c, &model, &mlen) < 0)
		return;
	if (!json_object_object_get_ex(c->json, "input", &in)) {
		respond_error(c, 400, "'input' is a required property",
		    "invalid_request_error", "input", NULL, NULL);
		return;
	}
	if (input_kind(in)) {		/* one string or one token array */
		items[0] = in;
		n = 1;
	} else if (json_object_is_type(in, json_type_array) &&
	    json_object_array_length(in) > 0 &&
	    json_object_array_length(in) <= MAX_INPUTS) {
		n = json_object_array_length(in);
		for (i = 0; i < n; i++) {
			items[i] = json_object_array_get_idx(in, i);
			if (!input_kind(items[i]))
				break;
		}
		if (i < n)
			n = 0;
	} else {
		n = 0;
	}
	if (n == 0) {
		respond_error(c, 400, "'input' must be a string, an array of "
		    "strings, an array of tokens or an array of token arrays "
		    "(at most 2048 items)", "invalid_request_error", "input",
		    NULL, NULL);
		return;
	}
	b64 = json_object_object_get_ex(c->json, "encoding_format", &fmt) &&
	    !strcmp(json_object_get_string(fmt), "base64");
	if (dims < 1)
		dims = 1;
	t->len = 0;
	buf_str(t, "{\"object\":\"list\",\"data\":[");
	for (i = 0; i < n; i++) {
		if (i)
			buf_str(t, ",");
		embed_one(t, (int)i, hash_item(items[i], &tokens), dims, b64);
	}
	buf_str(t, "],\"model\":");
	buf_json(t, model, mlen);
	buf_printf(t, ",\"usage\":{\"prompt_tokens\":%d,\"total_tokens\":%d}}",
	    tokens, tokens);
	respond_json(c, 200, t);
}

/* ---- control / inspection endpoints ---- */

/* ---- audio: transcriptions, translations, speech ---- */

/* The value of parameter name (lowercase) in a header value, or NULL. */
static const char *
hdr_param(const char *v, size_t vl, const char *name, size_t *outl)
{
	size_t nl = strlen(name), i;

	for (i = 0; i + nl + 1 < vl; i++) {
		if (strncasecmp(v + i, name, nl) || v[i + nl] != '=' ||
		    (i > 0 && v[i - 1] != ' ' && v[i - 1] != ';'))
			continue;
		v += i + nl + 1;
		vl -= i + nl + 1;
		if (vl > 0 && *v == '"') {
			const char *e = memchr(v + 1, '"', vl - 1);

			if (!e)
				return NULL;
			*outl = (size_t)(e - v - 1);
			return v + 1;
		}
		for (i = 0; i < vl && v[i] != ';' && v[i] != ' '; i++)
			;
		*outl = i;
		return v;
	}
	return NULL;
}

/* One form part: its data, and whether it has a filename. */
struct mpart {
	const char *data;
	size_t len;
	int file;
};

/*
 * The part named name of the multipart body (boundary bd), found plainly
 * (the mock checks what the gateway relays; lib/multipart.c is the
 * careful one). 0 when found.
 */
static int
mp_find(const char *body, size_t n, const char *bd, size_t bl,
    const char *name, struct mpart *out)
{
	char delim[128], want[96];
	const char *p = body, *end = body + n, *h, *he, *d;
	size_t dl;

	if (bl + 4 >= sizeof(delim))
		return -1;
	memcpy(delim, "\r\n--", 4);
	memcpy(delim + 4, bd, bl);
	dl = bl + 4;
	snprintf(want, sizeof(want), "name=\"%s\"", name);
	if (n < dl - 2 || memcmp(p, delim + 2, dl - 2))
		return -1;
	p += dl - 2;
	while (p + 2 <= end && !(p[0] == '-' && p[1] == '-')) {
		h = p + 2;
		he = memmem(h, (size_t)(end - h), "\r\n\r\n", 4);
		if (!he)
			return -1;
		d = he + 4;
		p = memmem(d, (size_t)(end - d), delim, dl);
		if (!p)
			return -1;
		if (memmem(h, (size_t)(he - h), want, strlen(want))) {
			out->data = d;
			out->len = (size_t)(p - d);
			out->file = memmem(h, (size_t)(he - h), "filename=", 9)
			    != NULL;
			return 0;
		}
		p += dl;
	}
	return -1;
}

static uint32_t
le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

/* Seconds of a PCM WAV file (RIFF, fmt byte rate, data size); -1 if none. */
static double
wav_seconds(const unsigned char *p, size_t n)
{
	size_t off = 12;
	uint32_t rate = 0, sz;

	if (n < 12 || memcmp(p, "RIFF", 4) || memcmp(p + 8, "WAVE", 4))
		return -1;
	while (off + 8 <= n) {
		sz = le32(p + off + 4);
		if (!memcmp(p + off, "fmt ", 4) && sz >= 16 && off + 24 <= n)
			rate = le32(p + off + 16);
		else if (!memcmp(p + off, "data", 4))
			return rate ? (double)sz / rate : -1;
		off += 8 + sz + (sz & 1);
	}
	return -1;
}

/*
 * A transcription (or translation): the form must hold a file part and a
 * model; the answer follows response_format (json by default; text, srt,
 * vtt as text; verbose_json with the duration of the WAV sent). The model
 * it got is echoed in the text and, in JSON, in "model".
 */
static void
handle_transcribe(struct conn *c, int translate)
{
	const struct hdr *h = req_hdr(c->in.p, &c->req, "content-type");
	const char *v, *bd;
	size_t vl, bl;
	struct mpart file, model, fmt = {"json", 4, 0};
	struct buf *t = &g_tmp;
	char text[256];
	double secs;

	if (!h || (vl = h->vl) < 19 ||
	    strncasecmp((v = c->in.p + h->vo), "multipart/form-data", 19) ||
	    !(bd = hdr_param(v, vl, "boundary", &bl))) {
		respond_error(c, 400, "mock: expected multipart/form-data",
		    "invalid_request_error", NULL, NULL, NULL);
		return;
	}
	if (mp_find(c->bodyp, c->bodyn, bd, bl, "file", &file) || !file.file) {
		respond_error(c, 400, "mock: no file part",
		    "invalid_request_error", "file", NULL, NULL);
		return;
	}
	if (mp_find(c->bodyp, c->bodyn, bd, bl, "model", &model) ||
	    model.len == 0 || model.len > 150) {
		respond_error(c, 400, "mock: no model field",
		    "invalid_request_error", "model", NULL, NULL);
		return;
	}
	mp_find(c->bodyp, c->bodyn, bd, bl, "response_format", &fmt);
	secs = wav_seconds((const unsigned char *)file.data, file.len);
	snprintf(text, sizeof(text), "mock %s by %.*s of %zu bytes",
	    translate ? "translation" : "transcription", (int)model.len,
	    model.data, file.len);
	t->len = 0;
	if ((fmt.len == 4 && !memcmp(fmt.data, "text", 4)) ||
	    (fmt.len == 3 && !memcmp(fmt.data, "srt", 3)) ||
	    (fmt.len == 3 && !memcmp(fmt.data, "vtt", 3))) {
		if (fmt.len == 3)
			buf_printf(t, "%s1\n00:00:00.000 --> 00:00:01.000\n",
			    fmt.data[0] == 'v' ? "WEBVTT\n\n" : "");
		buf_printf(t, "%s\n", text);
		respond_full(c, 200, fmt.data[0] == 'v' ? "text/vtt"
		    : "text/plain; charset=utf-8", NULL, t->p, t->len);
		return;
	}
	buf_str(t, "{\"text\":");
	buf_json(t, text, strlen(text));
	buf_str(t, ",\"model\":");
	buf_json(t, model.data, model.len);
	if (fmt.len == 12 && !memcmp(fmt.data, "verbose_json", 12))
		buf_printf(t, ",\"task\":\"%s\",\"language\":\"english\","
		    "\"duration\":%.3f,\"segments\":[]", translate ? "translate"
		    : "transcribe", secs >= 0 ? secs : 0);
	buf_str(t, "}");
	respond_json(c, 200, t);
}

#define SPEECH_RATE 16000	/* Hz, 16-bit mono */
#define SPEECH_CHUNK 3200	/* bytes a chunk: 0.1 s */

/*
 * Speech: model, input and voice required; the answer is a WAV of
 * `chunks` pieces (4 by default) of 0.1 s each, sent one by one with
 * `chunk_delay_ms` between them (the first holds the header), chunked,
 * as audio/wav (audio/mpeg for other formats: the same bytes).
 */
static void
handle_speech(struct conn *c)
{
	struct stream *s = &c->st;
	struct json_object *v;
	const char *model, *ctype = "audio/wav";
	size_t mlen;

	if (c->json_bad) {
		respond_error(c, 400, "mock: expected a JSON object",
		    "invalid_request_error", NULL, NULL, NULL);
		return;
	}
	if (require_model(c, &model, &mlen) < 0)
		return;
	if (!json_object_object_get_ex(c->json, "input", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    !json_object_object_get_ex(c->json, "voice", &v)) {
		respond_error(c, 400, "mock: input and voice are required",
		    "invalid_request_error", "input", NULL, NULL);
		return;
	}
	if (json_object_object_get_ex(c->json, "response_format", &v) &&
	    json_object_is_type(v, json_type_string) &&
	    strcmp(json_object_get_string(v), "wav"))
		ctype = "audio/mpeg";
	memset(s, 0, offsetof(struct stream, model));
	s->speech = 1;
	s->n = opt_get(&c->opt, O_CHUNKS, 4);
	s->delay = opt_get(&c->opt, O_CHUNK_DELAY, 0);
	s->phase = P_CONTENT;
	s->chunked = c->req.minor == 1;
	if (!s->chunked)
		c->keep = 0;
	buf_printf(&c->out, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\n"
	    "x-mock-model: %.*s\r\n%s%s\r\n", ctype, (int)(mlen < 150 ? mlen
	    : 150), model, s->chunked ? "Transfer-Encoding: chunked\r\n" : "",
	    c->keep ? "" : "Connection: close\r\n");
	log_req(c, 200, NULL);
	c->tick = 1;	/* the first piece at once */
	c->state = S_STREAM;
	g_st.streams_started++;
}

static void
put_le(struct buf *b, uint32_t v, int n)
{
	unsigned char x[4] = {v & 0xff, v >> 8 & 0xff, v >> 16 & 0xff,
	    v >> 24 & 0xff};

	buf_add(b, x, (size_t)n);
}

/* The next piece of a speech answer, after its delay. */
static void
speech_step(struct conn *c)
{
	struct stream *s = &c->st;
	struct buf *t = &g_tmp;
	uint32_t data = (uint32_t)s->n * SPEECH_CHUNK;
	int i;

	if (s->idx >= s->n) {
		if (s->chunked)
			buf_add(&c->out, "0\r\n\r\n", 5);
		s->phase = P_END;
		return;
	}
	if (s->delay > 0 && !c->tick) {
		timer_set(c, s->delay);
		return;
	}
	c->tick = 0;
	t->len = 0;
	if (s->idx == 0) {
		buf_add(t, "RIFF", 4);
		put_le(t, 36 + data, 4);
		buf_add(t, "WAVEfmt ", 8);
		put_le(t, 16, 4);
		put_le(t, 1, 2);		/* PCM */
		put_le(t, 1, 2);		/* mono */
		put_le(t, SPEECH_RATE, 4);
		put_le(t, SPEECH_RATE * 2, 4);
		put_le(t, 2, 2);
		put_le(t, 16, 2);
		buf_add(t, "data", 4);
		put_le(t, data, 4);
	}
	/* A square wave, a different pitch each piece. */
	for (i = 0; i < SPEECH_CHUNK / 2; i++)
		put_le(t, (i / (8 + s->idx)) & 1 ? 0x2000 : 0xe000, 2);
	if (s->chunked)
		buf_printf(&c->out, "%zx\r\n", t->len);
	buf_add(&c->out, t->p, t->len);
	if (s->chunked)
		buf_add(&c->out, "\r\n", 2);
	s->idx++;
}

static void
handle_last(struct conn *c)
{
	const char *b = g_last_head.p, *s;
	struct json_object *o, *hs, *prev;
	size_t len;
	int i;

	if (!g_have_last) {
		respond_full(c, 200, "application/json", NULL, "{}", 2);
		return;
	}
	o = json_object_new_object();
	hs = json_object_new_object();
	json_object_object_add(o, "method", json_object_new_string_len(
	    b + g_last_req.mo, (int)g_last_req.ml));
	json_object_object_add(o, "path", json_object_new_string_len(
	    b + g_last_req.to, (int)g_last_req.tl));
	for (i = 0; i < g_last_req.nh; i++) {
		const struct hdr *h = &g_last_req.h[i];
		char name[256];
		struct buf v = {0};

		snprintf(name, sizeof(name), "%.*s", (int)h->nl, b + h->no);
		if (json_object_object_get_ex(hs, name, &prev)) {
			buf_str(&v, json_object_get_string(prev));
			buf_str(&v, ", ");
		}
		buf_add(&v, b + h->vo, h->vl);
		json_object_object_add(hs, name,
		    json_object_new_string_len(v.p, (int)v.len));
		buf_free(&v);
	}
	json_object_object_add(o, "headers", hs);
	json_object_object_add(o, "body", json_object_new_string_len(
	    g_last_body.p ? g_last_body.p : "", (int)g_last_body.len));
	s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	respond_full(c, 200, "application/json", NULL, s, len);
	json_object_put(o);
}

static void
handle_stats(struct conn *c)
{
	struct buf *t = &g_tmp;

	t->len = 0;
	buf_printf(t, "{\"requests\":%lu,\"chat\":%lu,\"completions\":%lu,"
	    "\"embeddings\":%lu,\"models\":%lu,\"health\":%lu,"
	    "\"streams_started\":%lu,\"streams_completed\":%lu,"
	    "\"streams_aborted\":%lu,\"connections\":%lu,"
	    "\"connections_open\":%lu,\"loads\":%lu,\"swaps\":%lu,"
	    "\"swap_aborted\":%lu,\"audio\":%lu}", g_st.requests, g_st.chat,
	    g_st.completions, g_st.embeddings, g_st.models, g_st.health,
	    g_st.streams_started, g_st.streams_completed, g_st.streams_aborted,
	    g_st.connections, g_open, g_st.loads, g_st.swaps,
	    g_st.swap_aborted, g_st.audio);
	respond_json(c, 200, t);
}

static void
handle_control(struct conn *c)
{
	struct opts o;
	char err[160], num[32];

	opts_clear(&o);
	if (c->json_bad && c->bodyn > 0) {
		respond_error(c, 400, "invalid JSON body",
		    "invalid_request_error", NULL, NULL, NULL);
		return;
	}
	if (c->json) {
		json_object_object_foreach(c->json, key, val) {
			const char *s = num;

			if (json_object_is_type(val, json_type_null))
				continue;
			if (json_object_is_type(val, json_type_int))
				snprintf(num, sizeof(num), "%" PRId64,
				    json_object_get_int64(val));
			else if (json_object_is_type(val, json_type_string))
				s = json_object_get_string(val);
			else
				s = "?";
			if (opt_set(&o, key, strlen(key), s, strlen(s), err,
				sizeof(err)) < 0) {
				respond_error(c, 400, err,
				    "invalid_request_error", key, NULL, NULL);
				return;
			}
		}
	}
	g_defaults = o;
	g_tmp.len = 0;
	opts_json(&g_tmp, &g_defaults);
	respond_json(c, 200, &g_tmp);
}

/* ---- rerank, the Responses API, llama-server's /tokenize ---- */

/* Words of a that b holds too (case-insensitive): the mock's relevance. */
static int
overlap(const char *a, const char *b)
{
	const char *p = a, *q;
	size_t n, m;
	int hits = 0;

	while (*p) {
		while (*p && is_ws((unsigned char)*p))
			p++;
		for (n = 0; p[n] && !is_ws((unsigned char)p[n]); n++)
			;
		if (n == 0)
			break;
		for (q = b; *q;) {
			while (*q && is_ws((unsigned char)*q))
				q++;
			for (m = 0; q[m] && !is_ws((unsigned char)q[m]); m++)
				;
			if (m == n && !strncasecmp(p, q, n)) {
				hits++;
				break;
			}
			q += m;
		}
		p += n;
	}
	return hits;
}

static const char *
doc_text(struct json_object *d)
{
	struct json_object *t;

	if (json_object_is_type(d, json_type_string))
		return json_object_get_string(d);
	if (json_object_object_get_ex(d, "text", &t) &&
	    json_object_is_type(t, json_type_string))
		return json_object_get_string(t);
	return NULL;
}

/*
 * POST /v1/rerank as llama-server answers it: results sorted by score
 * (query words found in the document over the document's words), top_n
 * of them, usage {prompt_tokens, total_tokens} unless no_usage=1.
 */
static void
handle_rerank(struct conn *c)
{
	struct json_object *q, *docs, *v;
	struct buf *t = &g_tmp;
	const char *model, *query, *text;
	size_t mlen, n, i, j;
	int top, tokens, words;
	double score[256], tmp;
	int idx[256], ti;

	if (require_model(c, &model, &mlen) < 0)
		return;
	if (!json_object_object_get_ex(c->json, "query", &q) ||
	    !json_object_is_type(q, json_type_string) ||
	    !json_object_object_get_ex(c->json, "documents", &docs) ||
	    !json_object_is_type(docs, json_type_array) ||
	    (n = json_object_array_length(docs)) == 0 || n > 256) {
		respond_error(c, 400, "query and 1 to 256 documents needed",
		    "invalid_request_error", NULL, NULL, NULL);
		return;
	}
	query = json_object_get_string(q);
	tokens = count_words(query, strlen(query));
	for (i = 0; i < n; i++) {
		text = doc_text(json_object_array_get_idx(docs, i));
		if (text == NULL)
			text = "";
		words = count_words(text, strlen(text));
		tokens += words;
		score[i] = (double)overlap(query, text) / (words + 1);
		idx[i] = (int)i;
	}
	/* Highest first; equal scores keep the documents' order. */
	for (i = 1; i < n; i++)
		for (j = i; j > 0 && score[j] > score[j - 1]; j--) {
			tmp = score[j], score[j] = score[j - 1], score[j - 1] = tmp;
			ti = idx[j], idx[j] = idx[j - 1], idx[j - 1] = ti;
		}
	top = (int)n;
	if (json_object_object_get_ex(c->json, "top_n", &v) &&
	    json_object_is_type(v, json_type_int) &&
	    json_object_get_int(v) > 0 && json_object_get_int(v) < top)
		top = json_object_get_int(v);
	t->len = 0;
	buf_str(t, "{\"model\":");
	buf_json(t, model, mlen);
	buf_str(t, ",\"object\":\"list\",");
	if (opt_get(&c->opt, O_NO_USAGE, 0) == 0)
		buf_printf(t, "\"usage\":{\"prompt_tokens\":%d,"
		    "\"total_tokens\":%d},", tokens, tokens);
	buf_str(t, "\"results\":[");
	for (i = 0; i < (size_t)top; i++)
		buf_printf(t, "%s{\"index\":%d,\"relevance_score\":%.6f}",
		    i ? "," : "", idx[i], score[i]);
	buf_str(t, "]}");
	respond_json(c, 200, t);
}

/* Words of a Responses "input": a string, or items' content or text. */
static int
count_input(struct json_object *v)
{
	struct json_object *it, *content;
	size_t i, n;
	int sum = 0;

	if (json_object_is_type(v, json_type_string))
		return count_prompt(v, 0);
	if (!json_object_is_type(v, json_type_array))
		return 0;
	n = json_object_array_length(v);
	for (i = 0; i < n; i++) {
		it = json_object_array_get_idx(v, i);
		if (json_object_object_get_ex(it, "content", &content)) {
			if (json_object_is_type(content, json_type_array)) {
				size_t k;
				struct json_object *part, *text;

				for (k = 0; k < json_object_array_length(
				    content); k++) {
					part = json_object_array_get_idx(
					    content, k);
					if (json_object_object_get_ex(part,
					    "text", &text))
						sum += count_prompt(text, 0);
				}
			} else {
				sum += count_prompt(content, 0);
			}
		}
	}
	return sum;
}

/* One SSE event with its type line, as the Responses API streams them. */
static void
resp_event(struct buf *out, const char *type, const struct buf *data)
{
	buf_printf(out, "event: %s\ndata: ", type);
	buf_add(out, data->p, data->len);
	buf_str(out, "\n\n");
}

/* The response object; status "completed" with usage, or in progress. */
static void
resp_object(struct buf *t, const char *id, long long created,
    const struct buf *model, const char *msg_id, int n, int prompt, int done)
{
	int i;

	buf_printf(t, "{\"id\":\"%s\",\"object\":\"response\","
	    "\"created_at\":%lld,\"status\":\"%s\",\"model\":", id, created,
	    done ? "completed" : "in_progress");
	buf_add(t, model->p, model->len);
	buf_str(t, ",\"output\":[");
	if (done) {
		buf_printf(t, "{\"type\":\"message\",\"id\":\"%s\","
		    "\"status\":\"completed\",\"role\":\"assistant\","
		    "\"content\":[{\"type\":\"output_text\",\"text\":\"",
		    msg_id);
		for (i = 1; i <= n; i++)
			buf_printf(t, "tok%d ", i);
		buf_str(t, "\",\"annotations\":[]}]}");
	}
	buf_str(t, "],\"usage\":");
	if (done)
		buf_printf(t, "{\"input_tokens\":%d,\"output_tokens\":%d,"
		    "\"total_tokens\":%d}", prompt, n, prompt + n);
	else
		buf_str(t, "null");
	buf_str(t, "}");
}

/*
 * POST /v1/responses: "tok1 tok2 ..." (chunks=N words), as JSON or as
 * the Responses event stream, usage in the answer and in
 * response.completed; no_responses=1 answers as an upstream without the
 * API does (llama-swap: 404 page not found, plain text).
 */
static void
handle_responses(struct conn *c)
{
	struct json_object *v;
	struct buf model = {0}, ev = {0}, d = {0};
	const char *m;
	char id[80], msg_id[80];
	size_t mlen;
	long long created = (long long)time(NULL);
	int n = opt_get(&c->opt, O_CHUNKS, 5), prompt = 0, i, seq = 0;

	if (opt_get(&c->opt, O_NO_RESPONSES, 0)) {
		respond_full(c, 404, "text/plain; charset=utf-8", NULL,
		    "404 page not found", 18);
		return;
	}
	if (c->json_bad) {
		respond_error(c, 400, "invalid JSON body",
		    "invalid_request_error", NULL, NULL, NULL);
		return;
	}
	if (require_model(c, &m, &mlen) < 0)
		return;
	if (json_object_object_get_ex(c->json, "input", &v))
		prompt += count_input(v);
	if (json_object_object_get_ex(c->json, "instructions", &v))
		prompt += count_prompt(v, 0);
	buf_json(&model, m, mlen);
	snprintf(id, sizeof(id), "resp_mock_%ld_%lu", (long)getpid(), ++g_id);
	snprintf(msg_id, sizeof(msg_id), "msg_mock_%ld_%lu", (long)getpid(),
	    g_id);
	if (!c->want_stream) {
		resp_object(&d, id, created, &model, msg_id, n, prompt, 1);
		respond_full(c, 200, "application/json", NULL, d.p, d.len);
		goto out;
	}
	buf_printf(&d, "{\"type\":\"response.created\",\"sequence_number\":"
	    "%d,\"response\":", seq++);
	resp_object(&d, id, created, &model, msg_id, n, prompt, 0);
	buf_str(&d, "}");
	resp_event(&ev, "response.created", &d);
	d.len = 0;
	buf_printf(&d, "{\"type\":\"response.output_item.added\","
	    "\"sequence_number\":%d,\"output_index\":0,\"item\":{\"type\":"
	    "\"message\",\"id\":\"%s\",\"status\":\"in_progress\",\"role\":"
	    "\"assistant\",\"content\":[]}}", seq++, msg_id);
	resp_event(&ev, "response.output_item.added", &d);
	for (i = 1; i <= n; i++) {
		d.len = 0;
		buf_printf(&d, "{\"type\":\"response.output_text.delta\","
		    "\"sequence_number\":%d,\"item_id\":\"%s\","
		    "\"output_index\":0,\"content_index\":0,\"delta\":"
		    "\"tok%d \"}", seq++, msg_id, i);
		resp_event(&ev, "response.output_text.delta", &d);
	}
	d.len = 0;
	buf_printf(&d, "{\"type\":\"response.completed\",\"sequence_number\":"
	    "%d,\"response\":", seq++);
	resp_object(&d, id, created, &model, msg_id, n, prompt, 1);
	buf_str(&d, "}");
	resp_event(&ev, "response.completed", &d);
	respond_full(c, 200, "text/event-stream", NULL, ev.p, ev.len);
out:
	buf_free(&model);
	buf_free(&ev);
	buf_free(&d);
}

/* llama-server's POST /tokenize: one token id per word of "content". */
static void
handle_tokenize(struct conn *c)
{
	struct json_object *v;
	struct buf *t = &g_tmp;
	const char *s;
	int n, i;

	if (c->json_bad || !json_object_object_get_ex(c->json, "content", &v) ||
	    !json_object_is_type(v, json_type_string)) {
		respond_error(c, 400, "\"content\" must be a string",
		    "invalid_request_error", "content", NULL, NULL);
		return;
	}
	s = json_object_get_string(v);
	n = count_words(s, strlen(s));
	t->len = 0;
	buf_str(t, "{\"tokens\":[");
	for (i = 0; i < n; i++)
		buf_printf(t, "%s%d", i ? "," : "", 100 + i);
	buf_str(t, "]}");
	respond_full(c, 200, "application/json; charset=utf-8", NULL, t->p,
	    t->len);
}

/* ---- request dispatch ---- */

static enum route
route_of(const char *m, size_t ml, const char *p, size_t pl)
{
	static const struct {
		const char *path;
		const char *method;
		enum route r;
	} routes[] = {{"/health", "GET", R_HEALTH},
	    {"/models", "GET", R_MODELS},
	    {"/chat/completions", "POST", R_CHAT},
	    {"/completions", "POST", R_COMPL},
	    {"/embeddings", "POST", R_EMBED}, {"/__last", "GET", R_LAST},
	    {"/__stats", "GET", R_STATS}, {"/__reset", "POST", R_RESET},
	    {"/__control", "POST", R_CONTROL}, {"/running", "GET", R_RUNNING},
	    {"/rerank", "POST", R_RERANK}, {"/responses", "POST", R_RESPONSES},
	    {"/tokenize", "POST", R_TOKENIZE},
	    {"/audio/transcriptions", "POST", R_TRANSCRIBE},
	    {"/audio/translations", "POST", R_TRANSLATE},
	    {"/audio/speech", "POST", R_SPEECH}};
	size_t i;

	if (pl >= 4 && !memcmp(p, "/v1/", 4)) {
		p += 3;
		pl -= 3;
	}
	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (strlen(routes[i].path) != pl ||
		    memcmp(routes[i].path, p, pl))
			continue;
		if (strlen(routes[i].method) != ml ||
		    memcmp(routes[i].method, m, ml))
			return R_BADMETHOD;
		return routes[i].r;
	}
	return R_NONE;
}

/* Parse the body as a JSON object into c->json (c->json_bad on failure). */
static void
parse_body(struct conn *c)
{
	struct json_object *o;
	size_t end;

	c->json_bad = 1;
	if (c->bodyn == 0)
		return;
	json_tokener_reset(g_tok);
	o = json_tokener_parse_ex(g_tok, c->bodyp, (int)c->bodyn);
	if (!o)
		return;
	for (end = json_tokener_get_parse_end(g_tok); end < c->bodyn; end++)
		if (!is_ws((unsigned char)c->bodyp[end]))
			break;
	if (end < c->bodyn || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return;
	}
	c->json = o;
	c->json_bad = 0;
	c->want_stream = get_bool(o, "stream");
}

/* fail_times bookkeeping: 1 if this request should still fail. */
static int
fail_counter(struct conn *c, const char *model, size_t mlen)
{
	uint64_t key = fnv1a(FNV_INIT, model, mlen);
	int i;

	for (i = 0; i < c->req.nh; i++) {
		const struct hdr *h = &c->req.h[i];

		if (h->nl > 7 && !memcmp(c->in.p + h->no, "x-mock-", 7)) {
			key = fnv1a(key, c->in.p + h->no, h->nl + 1);
			key = fnv1a(key, c->in.p + h->vo, h->vl);
		}
	}
	for (i = 0; i < FAIL_SLOTS; i++)
		if (g_fail[i].count && g_fail[i].key == key)
			break;
	if (i == FAIL_SLOTS) {
		i = (int)(g_fail_next++ % FAIL_SLOTS);
		g_fail[i].key = key;
		g_fail[i].count = 0;
	}
	return ++g_fail[i].count <= c->opt.v[O_FAIL_TIMES];
}

/* Answer a request whose delay (if any) has elapsed. */
static void
respond(struct conn *c)
{
	int fault = opt_get(&c->opt, O_FAULT, F_NONE);
	int status = c->opt.v[O_STATUS];
	const char *model = NULL;
	size_t mlen = 0;
	char msg[300];

	switch (fault) {
	case F_500:
		respond_error(c, 500, "mock internal error", "server_error",
		    NULL, "500", NULL);
		return;
	case F_503:
		respond_error(c, 503, "mock service unavailable",
		    "server_error", NULL, "503", NULL);
		return;
	case F_400:
		respond_error(c, 400, "mock bad request",
		    "invalid_request_error", NULL, "400", NULL);
		return;
	case F_429:
		respond_error(c, 429, "mock rate limit exceeded, retry later",
		    "requests", NULL, "rate_limit_exceeded",
		    "Retry-After: 7\r\n");
		return;
	case F_404:
		if (model_of(c, &model, &mlen) == 0 && memchr(model, '@', mlen))
			mlen = (size_t)((const char *)memchr(model, '@', mlen) -
			    model);
		snprintf(msg, sizeof(msg), "The model `%.*s` does not exist",
		    (int)(mlen < 200 ? mlen : 200), model ? model : "");
		respond_error(c, 404, msg, "invalid_request_error", "model",
		    "model_not_found", NULL);
		return;
	case F_TEXT500:
		respond_full(c, 500, "text/plain; charset=utf-8", NULL,
		    "upstream exploded", 17);
		return;
	case F_KEYLEAK_MID:
		if (c->want_stream) {
			static const char ev[] = "{\"error\":{\"message\":\""
			    MOCK_KEYLEAK_MSG "\",\"type\":\"server_error\","
			    "\"param\":null,\"code\":null}}";

			stream_start(c);
			sse_event(c, ev, sizeof(ev) - 1);
			sse_event(c, "[DONE]", 6);
			if (c->st.chunked)
				buf_add(&c->out, "0\r\n\r\n", 5);
			c->state = S_WRITE;
			c->close_mode = c->keep ? C_KEEP : C_GRACEFUL;
			return;
		}
		/* FALLTHROUGH */
	case F_KEYLEAK:
		respond_error(c, 401, MOCK_KEYLEAK_MSG, "invalid_request_error",
		    NULL, "invalid_api_key", NULL);
		return;
	case F_MALFORMED:
		if (!c->want_stream) {
			respond_full(c, 200, "application/json", NULL,
			    "{\"id\": \"x\", \"choices\": [", 24);
			return;
		}
		stream_start(c);
		sse_event(c, "{\"id\": \"x\", \"choices\": [", 24);
		sse_event(c, "[DONE]", 6);
		if (c->st.chunked)
			buf_add(&c->out, "0\r\n\r\n", 5);
		c->state = S_WRITE;
		c->close_mode = c->keep ? C_KEEP : C_GRACEFUL;
		return;
	default:
		break;
	}
	if (fault == F_NONE && status >= 0) {
		respond_status(c, status);
		return;
	}
	if (c->json_bad && c->route >= R_CHAT && c->route <= R_EMBED) {
		respond_error(c, 400, "We could not parse the JSON body of "
		    "your request: expected a JSON object",
		    "invalid_request_error", NULL, NULL, NULL);
		return;
	}
	switch (c->route) {
	case R_HEALTH:
		respond_full(c, 200, "text/plain; charset=utf-8", NULL, "OK",
		    2);
		break;
	case R_MODELS:
		respond_json(c, 200, &g_models_body);
		break;
	case R_CHAT:
	case R_COMPL:
		handle_generate(c, c->route == R_CHAT);
		break;
	case R_EMBED:
		handle_embed(c);
		break;
	case R_RERANK:
		handle_rerank(c);
		break;
	case R_RESPONSES:
		handle_responses(c);
		break;
	case R_TOKENIZE:
		handle_tokenize(c);
		break;
	case R_TRANSCRIBE:
	case R_TRANSLATE:
		handle_transcribe(c, c->route == R_TRANSLATE);
		break;
	case R_SPEECH:
		handle_speech(c);
		break;
	case R_BADMETHOD:
		respond_error(c, 405, "method not allowed",
		    "invalid_request_error", NULL, NULL, NULL);
		break;
	default:
		respond_error(c, 404, "not found", "invalid_request_error",
		    NULL, NULL, NULL);
		break;
	}
	if (fault == F_DROP_MID && c->state == S_WRITE) {
		c->out.len = c->resp_body + c->resp_body_n / 2;
		c->close_mode = C_ABRUPT;
	}
}

/* ---- --swap-ms: one model loaded per group, as llama-swap ---- */

/* The group of model[0, n) under --swap-groups ("a,b;c"); 0 when unnamed. */
static int
sw_group_of(const char *model, size_t n)
{
	const char *p = g_swap_groups, *e;
	size_t l;
	int g = 1;

	while (*p) {
		e = p + strcspn(p, ",;");
		l = (size_t)(e - p);
		trim(&p, &l);
		if (l == n && l > 0 && !memcmp(p, model, n))
			return g < SW_GROUPS ? g : 0;
		if (*e == ';')
			g++;
		p = *e ? e + 1 : e;
	}
	return 0;
}

/* The rest of dispatch once a request may run: its delay, or its answer. */
static void
go_on(struct conn *c)
{
	int delay = opt_get(&c->opt, O_DELAY, 0);

	if (delay > 0) {
		c->state = S_DELAY;
		timer_set(c, delay);
		return;
	}
	c->state = S_READ;
	respond(c);
}

/* Close every request the group's model is answering (--swap-policy abort). */
static void
sw_abort(int gi)
{
	struct conn *c, **v = NULL;
	size_t n = 0, i;

	for (c = g_conns; c; c = c->next)
		n += c->sw_active && c->sw_group == gi;
	if (!n || !(v = calloc(n, sizeof(*v))))
		return;
	for (n = 0, c = g_conns; c; c = c->next)
		if (c->sw_active && c->sw_group == gi)
			v[n++] = c;
	for (i = 0; i < n; i++) {
		g_st.swap_aborted++;
		log_req(v[i], 0, "swap_abort");
		conn_close(v[i]);
	}
	free(v);
}

/*
 * Start what each group can start: the queue's head when its model is
 * loaded, else a swap to it once the group is free (wait) or at once
 * (abort). self is the request being dispatched (its conn_run goes on).
 */
static void
sw_pump(struct conn *self)
{
	static int busy, again;
	struct swgroup *g;
	struct conn *h;
	int gi;

	if (busy) {
		again = 1;
		return;
	}
	busy = 1;
	do {
		again = 0;
		for (gi = 0; gi < SW_GROUPS; gi++) {
			g = &g_sw[gi];
			while ((h = g->q) != NULL && !g->swapping) {
				if (!strcmp(h->sw_model, g->loaded)) {
					g->q = h->sw_next;
					if (!g->q)
						g->q_tail = NULL;
					h->sw_next = NULL;
					h->sw_active = 1;
					g->inflight++;
					go_on(h);
					if (h != self)
						conn_run(h);
					continue;
				}
				if (g->inflight > 0) {
					if (!g_swap_abort)
						break;
					sw_abort(gi);
					continue;
				}
				if (g->loaded[0])
					g_st.swaps++;
				else
					g_st.loads++;
				g->loaded[0] = '\0';
				snprintf(g->target, sizeof(g->target), "%s",
				    h->sw_model);
				g->swapping = 1;
				g->swap_due = now_ms() + g_swap_ms;
			}
		}
	} while (again);
	busy = 0;
}

/* A request of a swap group is over (answered, or its connection gone). */
static void
sw_done(struct conn *c)
{
	struct swgroup *g;
	struct conn **pp;

	if (c->sw_group < 0)
		return;
	g = &g_sw[c->sw_group];
	if (c->sw_active) {
		c->sw_active = 0;
		g->inflight--;
	} else if (c->state == S_QUEUED) {
		for (pp = &g->q; *pp && *pp != c; pp = &(*pp)->sw_next)
			;
		if (*pp)
			*pp = c->sw_next;
		g->q_tail = NULL;
		for (pp = &g->q; *pp; pp = &(*pp)->sw_next)
			g->q_tail = *pp;
		c->sw_next = NULL;
	}
	c->sw_group = -1;
	sw_pump(NULL);
}

/* Dispatch's end for a request of a swap group: now, or queued. */
static void
sw_admit(struct conn *c, const char *model, size_t mlen)
{
	const char *at = memchr(model, '@', mlen);
	struct swgroup *g;

	if (at)
		mlen = (size_t)(at - model);
	if (mlen >= sizeof(c->sw_model))
		mlen = sizeof(c->sw_model) - 1;
	memcpy(c->sw_model, model, mlen);
	c->sw_model[mlen] = '\0';
	c->sw_group = sw_group_of(c->sw_model, mlen);
	g = &g_sw[c->sw_group];
	if (!g->q && !g->swapping && !strcmp(g->loaded, c->sw_model)) {
		c->sw_active = 1;
		g->inflight++;
		go_on(c);
		return;
	}
	c->state = S_QUEUED;
	c->sw_next = NULL;
	if (g->q_tail)
		g->q_tail->sw_next = c;
	else
		g->q = c;
	g->q_tail = c;
	sw_pump(c);
}

/* Loads that are complete; the ms until the next one is (or -1). */
static int
sw_tick(void)
{
	int64_t now = now_ms(), d, next = -1;
	int gi, any = 0;

	for (gi = 0; gi < SW_GROUPS; gi++) {
		struct swgroup *g = &g_sw[gi];

		if (g->swapping && g->swap_due <= now) {
			g->swapping = 0;
			memcpy(g->loaded, g->target, sizeof(g->loaded));
			any = 1;
		}
	}
	if (any)
		sw_pump(NULL);
	for (gi = 0; gi < SW_GROUPS; gi++)
		if (g_sw[gi].swapping) {
			d = g_sw[gi].swap_due - now;
			if (d < 0)
				d = 0;
			if (next < 0 || d < next)
				next = d;
		}
	return next > INT_MAX ? INT_MAX : (int)next;
}

/* GET /running, as llama-swap: {"running":[{"model","state"}]}. */
static void
handle_running(struct conn *c)
{
	struct buf *t = &g_tmp;
	int gi, first = 1;

	t->len = 0;
	buf_str(t, "{\"running\":[");
	for (gi = 0; gi < SW_GROUPS; gi++) {
		const char *m = g_sw[gi].swapping ? g_sw[gi].target
		    : g_sw[gi].loaded;

		if (!m[0])
			continue;
		buf_str(t, first ? "{\"model\":" : ",{\"model\":");
		first = 0;
		buf_json(t, m, strlen(m));
		buf_str(t, g_sw[gi].swapping ? ",\"state\":\"starting\"}"
		    : ",\"state\":\"ready\"}");
	}
	buf_str(t, "]}");
	respond_json(c, 200, t);
}

/* Close without answering (drop_before / reset_before). */
static void
conn_drop(struct conn *c, int rst)
{
	if (rst) {
		struct linger lg = {1, 0};

		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	log_req(c, 0, rst ? "reset_before" : "drop_before");
	conn_close(c);
}

/* A complete request is buffered; returns -1 if c was closed. */
static int
dispatch(struct conn *c)
{
	const char *b = c->in.p, *path = b + c->req.to, *q;
	const struct hdr *h = req_hdr(b, &c->req, "connection");
	size_t plen = c->req.tl, mlen = 0;
	const char *model = NULL;
	char err[160];
	int i;

	if ((q = memchr(path, '?', plen)))
		plen = (size_t)(q - path);
	c->keep = !c->peer_eof && (c->req.minor == 1
	    ? !(h && hdr_has_token(b, h, "close"))
	    : (h && hdr_has_token(b, h, "keep-alive")));
	c->route = route_of(b + c->req.mo, c->req.ml, path, plen);
	c->json = NULL;
	c->json_bad = 0;
	c->want_stream = 0;
	opts_clear(&c->opt);
	if (c->route == R_CONTROL)
		parse_body(c);
	switch (c->route) {
	case R_LAST: handle_last(c); return 0;
	case R_STATS: handle_stats(c); return 0;
	case R_CONTROL: handle_control(c); return 0;
	case R_RESET:
		memset(&g_st, 0, sizeof(g_st));
		memset(g_fail, 0, sizeof(g_fail));
		g_have_last = 0;
		respond_full(c, 200, "application/json", NULL, "{\"ok\":true}",
		    11);
		return 0;
	default:
		break;
	}

	/* an API request: count it and remember it for /__last */
	g_st.requests++;
	g_st.health += c->route == R_HEALTH;
	g_st.models += c->route == R_MODELS;
	g_st.chat += c->route == R_CHAT;
	g_st.completions += c->route == R_COMPL;
	g_st.embeddings += c->route == R_EMBED;
	g_st.audio += c->route >= R_TRANSCRIBE && c->route <= R_SPEECH;
	g_last_head.len = 0;
	buf_add(&g_last_head, b, c->req.head_len);
	g_last_req = c->req;
	g_last_body.len = 0;
	buf_add(&g_last_body, c->bodyp ? c->bodyp : "", c->bodyn);
	g_have_last = 1;
	if (c->route == R_HEALTH) {
		respond(c);
		return 0;
	}
	if (c->route == R_RUNNING) {
		handle_running(c);
		return 0;
	}
	if (c->route >= R_CHAT && c->route <= R_EMBED)
		parse_body(c);
	/* JSON bodies; not the audio uploads (multipart) */
	if ((c->route >= R_RERANK && c->route <= R_TOKENIZE) ||
	    c->route == R_SPEECH)
		parse_body(c);

	/* options: defaults < model suffix < x-mock-* headers */
	c->opt = g_defaults;
	if (model_of(c, &model, &mlen) == 0 && (q = memchr(model, '@', mlen)) &&
	    opts_parse_list(&c->opt, q + 1, mlen - (size_t)(q + 1 - model),
		err, sizeof(err)) < 0)
		goto bad_option;
	for (i = 0; i < c->req.nh; i++) {
		const struct hdr *x = &c->req.h[i];

		if (x->nl > 7 && !memcmp(b + x->no, "x-mock-", 7) &&
		    opt_set(&c->opt, b + x->no + 7, x->nl - 7, b + x->vo, x->vl,
			err, sizeof(err)) < 0)
			goto bad_option;
	}
	if (c->opt.v[O_FAIL_TIMES] >= 0 && (c->opt.v[O_FAULT] > F_NONE ||
	    c->opt.v[O_STATUS] >= 0) && !fail_counter(c, model ? model : "",
	    mlen)) {
		c->opt.v[O_FAULT] = F_NONE;
		c->opt.v[O_STATUS] = -1;
	}
	switch (c->opt.v[O_FAULT]) {
	case F_DROP_BEFORE:
		conn_drop(c, 0);
		return -1;
	case F_RESET_BEFORE:
		conn_drop(c, 1);
		return -1;
	case F_HANG:
		log_req(c, 0, "hang");
		c->state = S_HANG;
		return 0;
	default:
		break;
	}
	if (g_swap_ms >= 0 && c->route >= R_CHAT && c->route <= R_EMBED &&
	    model != NULL && !c->json_bad) {
		sw_admit(c, model, mlen);
		return 0;
	}
	go_on(c);
	return 0;
bad_option:
	respond_error(c, 400, err, "invalid_request_error", NULL, NULL, NULL);
	return 0;
}

/* ---- connections ---- */

static int
conn_flush(struct conn *c)
{
	while (c->out.off < c->out.len) {
		ssize_t n = send(c->fd, c->out.p + c->out.off,
		    c->out.len - c->out.off, MSG_NOSIGNAL);

		if (n > 0)
			c->out.off += (size_t)n;
		else if (n < 0 && errno == EINTR)
			continue;
		else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		else
			return -1;
	}
	c->out.len = c->out.off = 0;
	return 0;
}

static int
conn_read(struct conn *c, int drain)
{
	for (;;) {
		size_t room;
		ssize_t n;

		if (c->in.len >= IN_MAX)
			return 0;
		buf_reserve(&c->in, 16384);
		room = c->in.cap - c->in.len;
		if (room > IN_MAX - c->in.len)
			room = IN_MAX - c->in.len;
		n = read(c->fd, c->in.p + c->in.len, room);
		if (n > 0) {
			c->in.len += (size_t)n;
			if ((size_t)n < room && !drain)
				return 0;
		} else if (n == 0) {
			c->peer_eof = 1;
			return 0;
		} else if (errno == EINTR) {
			continue;
		} else {
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
		}
	}
}

/* Forget the finished request, keep any bytes that follow it. */
static void
conn_next(struct conn *c)
{
	size_t rest = c->in.len - c->consumed;

	memmove(c->in.p, c->in.p + c->consumed, rest);
	c->in.len = rest;
	if (c->in.cap > 256 * 1024 && rest == 0)
		buf_free(&c->in);
	if (c->body.cap > 256 * 1024)
		buf_free(&c->body);
	if (c->out.cap > 256 * 1024)
		buf_free(&c->out);
	c->body.len = 0;
	c->head_done = 0;
	c->scan = 0;
	c->bodyp = NULL;
	c->bodyn = 0;
	json_object_put(c->json);
	c->json = NULL;
	c->state = S_READ;
}

static void
conn_want(struct conn *c)
{
	uint32_t ev = 0;
	struct epoll_event e;

	if (c->state == S_READ || c->state == S_LINGER)
		ev |= EPOLLIN;
	if (!c->peer_eof)
		ev |= EPOLLRDHUP;
	if (c->out.off < c->out.len)
		ev |= EPOLLOUT;
	if (ev == c->ev)
		return;
	e.events = ev;
	e.data.ptr = c;
	if (epoll_ctl(g_epfd, EPOLL_CTL_MOD, c->fd, &e) == 0)
		c->ev = ev;
}

static void
conn_run(struct conn *c)
{
	int rc;

	for (;;) {
		if (c->out.off < c->out.len && conn_flush(c) < 0) {
			conn_close(c);
			return;
		}
		switch (c->state) {
		case S_READ:
			rc = try_parse(c);
			if (rc == 0 && c->peer_eof) {
				conn_close(c);
				return;
			}
			if (rc == 0)
				goto wait;
			if (rc > 1)
				respond_http_error(c, rc);
			else if (dispatch(c) < 0)
				return;
			continue;
		case S_WRITE:
			if (c->out.off < c->out.len)
				goto wait;
			sw_done(c);
			if (c->close_mode == C_ABRUPT ||
			    (c->close_mode == C_GRACEFUL && c->peer_eof)) {
				conn_close(c);
				return;
			}
			if (c->close_mode == C_GRACEFUL) {
				/* read what the client still sends, so our
				 * answer is not destroyed by an RST */
				shutdown(c->fd, SHUT_WR);
				c->state = S_LINGER;
				timer_set(c, LINGER_MS);
				goto wait;
			}
			conn_next(c);
			continue;
		case S_STREAM:
			if (c->out.off < c->out.len || c->tidx >= 0)
				goto wait;
			if (c->st.phase == P_END) {
				g_st.streams_completed++;
				c->state = S_WRITE;
				c->close_mode = c->keep ? C_KEEP : C_GRACEFUL;
				continue;
			}
			if (c->st.speech)
				speech_step(c);
			else
				stream_step(c);
			continue;
		case S_HANG:
			if (c->peer_eof) {
				conn_close(c);
				return;
			}
			goto wait;
		case S_DELAY:
		case S_LINGER:
		case S_QUEUED:
			goto wait;
		}
	}
wait:
	conn_want(c);
}

static void
conn_event(struct conn *c, uint32_t ev)
{
	if (ev & (EPOLLERR | EPOLLHUP)) {
		conn_close(c);
		return;
	}
	if (c->state == S_READ) {
		if ((ev & (EPOLLIN | EPOLLRDHUP)) &&
		    conn_read(c, !!(ev & EPOLLRDHUP)) < 0) {
			conn_close(c);
			return;
		}
	} else if (c->state == S_LINGER) {
		char sink[16384];
		ssize_t n;

		while ((n = read(c->fd, sink, sizeof(sink))) > 0)
			;
		if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			conn_close(c);
			return;
		}
	} else if (ev & EPOLLRDHUP) {
		/* the client went away: abandon delays, hangs and streams */
		if (c->state != S_WRITE) {
			conn_close(c);
			return;
		}
		c->peer_eof = 1;
		if (c->close_mode == C_KEEP)
			c->close_mode = C_GRACEFUL;
	}
	conn_run(c);
}

static void
conn_timer(struct conn *c)
{
	switch (c->state) {
	case S_DELAY:
		respond(c);
		break;
	case S_STREAM:
		c->tick = 1;
		break;
	case S_LINGER:
		conn_close(c);
		return;
	default:
		break;
	}
	conn_run(c);
}

static void
conn_close(struct conn *c)
{
	if (c->state == S_STREAM)
		g_st.streams_aborted++;
	sw_done(c);
	timer_clear(c);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		g_conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	g_open--;
	buf_free(&c->in);
	buf_free(&c->out);
	buf_free(&c->body);
	buf_free(&c->st.model);
	json_object_put(c->json);
	free(c);
}

static void
accept_all(int lfd)
{
	for (;;) {
		struct epoll_event e;
		struct conn *c;
		int fd = accept(lfd, NULL, NULL), one = 1;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				fprintf(stderr, "mock-upstream: accept: %s\n",
				    strerror(errno));
			return;
		}
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		fcntl(fd, F_SETFD, FD_CLOEXEC);
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (!(c = calloc(1, sizeof(*c))))
			die("calloc");
		c->fd = fd;
		c->tidx = -1;
		c->sw_group = -1;
		c->state = S_READ;
		c->ev = EPOLLIN | EPOLLRDHUP;
		e.events = c->ev;
		e.data.ptr = c;
		if (epoll_ctl(g_epfd, EPOLL_CTL_ADD, fd, &e) < 0)
			die("epoll_ctl");
		c->next = g_conns;
		if (g_conns)
			g_conns->prev = c;
		g_conns = c;
		g_st.connections++;
		g_open++;
	}
}

/* ---- setup ---- */

static void
on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

static void
usage(void)
{
	fprintf(stderr, "usage: mock-upstream [--host 127.0.0.1] [--port N] "
	    "[--models a,b,c] [--port-file PATH] [--quiet]\n"
	    "       [--swap-ms N [--swap-policy wait|abort] "
	    "[--swap-groups \"a,b;c\"]] [--id-base N]\n");
	exit(2);
}

static void
build_models(const char *list)
{
	const char *s = list, *sep = "";

	buf_str(&g_models_body, "{\"object\":\"list\",\"data\":[");
	while (*s) {
		size_t n = strcspn(s, ",");

		if (n) {
			buf_printf(&g_models_body, "%s{\"id\":", sep);
			buf_json(&g_models_body, s, n);
			buf_printf(&g_models_body, ",\"object\":\"model\","
			    "\"created\":%lld,\"owned_by\":\"llama-swap\"}",
			    g_start);
			sep = ",";
		}
		s += n + (s[n] == ',');
	}
	buf_str(&g_models_body, "]}");
}

/* Bind and listen; returns the socket, the bound port goes to *bound. */
static int
listen_on(const char *host, const char *port, char *addr, size_t asz,
    int *bound)
{
	struct addrinfo hints = {0}, *res, *ai;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char ip[INET6_ADDRSTRLEN];
	int fd = -1, one = 1, rc;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
		fprintf(stderr, "mock-upstream: %s: %s\n", host,
		    gai_strerror(rc));
		exit(1);
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		/* 4096: make bench's (d) opens 10,000 streams in seconds,
		 * each a new upstream connection (somaxconn caps it) */
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, 4096) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		die("bind");
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		die("getsockname");
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &a6->sin6_addr, ip, sizeof(ip));
		*bound = ntohs(a6->sin6_port);
		snprintf(addr, asz, "[%s]:%d", ip, *bound);
	} else {
		struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &a4->sin_addr, ip, sizeof(ip));
		*bound = ntohs(a4->sin_port);
		snprintf(addr, asz, "%s:%d", ip, *bound);
	}
	return fd;
}

static void
write_port_file(const char *path, int port)
{
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (!(f = fopen(tmp, "w")) || fprintf(f, "%d\n", port) < 0 ||
	    fclose(f) != 0 || rename(tmp, path) < 0)
		die(path);
}

int
main(int argc, char **argv)
{
	const char *host = "127.0.0.1", *port = "0", *port_file = NULL;
	const char *models = "qwen3-30b-a3b,qwen2.5-14b-instruct,"
			     "nomic-embed-text-v1.5";
	struct epoll_event evs[MAX_EVENTS], e;
	struct sigaction sa;
	sigset_t block, orig;
	char addr[128];
	int i, lfd, p;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *eq = strchr(a, '=');
		const char *val = eq ? eq + 1
		    : i + 1 < argc ? argv[i + 1] : NULL;
		size_t kl = eq ? (size_t)(eq - a) : strlen(a);

#define ARG(name) (kl == strlen(name) && !strncmp(a, name, kl))
		if (ARG("--quiet") && !eq) {
			g_quiet = 1;
			continue;
		}
		if (!val)
			usage();
		if (ARG("--host"))
			host = val;
		else if (ARG("--port"))
			port = val;
		else if (ARG("--models"))
			models = val;
		else if (ARG("--port-file"))
			port_file = val;
		else if (ARG("--swap-ms"))
			g_swap_ms = atoi(val) < 0 ? 0 : atoi(val);
		else if (ARG("--swap-policy") && (!strcmp(val, "wait") ||
		    !strcmp(val, "abort")))
			g_swap_abort = !strcmp(val, "abort");
		else if (ARG("--swap-groups"))
			g_swap_groups = val;
		else if (ARG("--id-base"))
			g_id = strtoul(val, NULL, 10);
		else
			usage();
#undef ARG
		if (!eq)
			i++;
	}

	signal(SIGPIPE, SIG_IGN);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &orig);
	sigdelset(&orig, SIGINT);
	sigdelset(&orig, SIGTERM);

	g_start = (long long)time(NULL);
	opts_clear(&g_defaults);
	build_models(models);
	if (!(g_tok = json_tokener_new()))
		die("json_tokener_new");
	lfd = listen_on(host, port, addr, sizeof(addr), &p);
	if ((g_epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
		die("epoll_create1");
	e.events = EPOLLIN;
	e.data.ptr = NULL;
	if (epoll_ctl(g_epfd, EPOLL_CTL_ADD, lfd, &e) < 0)
		die("epoll_ctl");
	if (port_file)
		write_port_file(port_file, p);
	printf("listening %s\n", addr);
	fflush(stdout);

	while (!g_stop) {
		int to = timers_timeout(), sw = sw_tick();
		int n = epoll_pwait(g_epfd, evs, MAX_EVENTS,
		    sw >= 0 && (to < 0 || sw < to) ? sw : to, &orig);
		int64_t now;

		if (n < 0 && errno != EINTR)
			die("epoll_wait");
		for (i = 0; i < n; i++) {
			if (!evs[i].data.ptr)
				accept_all(lfd);
			else
				conn_event(evs[i].data.ptr, evs[i].events);
		}
		now = now_ms();
		while (g_heap_n && g_heap[0]->deadline <= now) {
			struct conn *c = g_heap[0];

			timer_clear(c);
			conn_timer(c);
		}
		sw_tick();
	}

	while (g_conns) {
		g_conns->state = S_READ;	/* not an aborted stream */
		conn_close(g_conns);
	}
	close(lfd);
	close(g_epfd);
	json_tokener_free(g_tok);
	free(g_heap);
	buf_free(&g_tmp);
	buf_free(&g_models_body);
	buf_free(&g_last_head);
	buf_free(&g_last_body);
	return 0;
}
