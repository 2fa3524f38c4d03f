/* util.c: small helpers with no dependency beyond libc. */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static void
stderr_fatal(const char *mod, const char *msg)
{
	fprintf(stderr, "lvl=err mod=%s msg=\"%s\"\n", mod, msg);
}

static void (*fatal_fn)(const char *mod, const char *msg) = stderr_fatal;

void
gw_util_set_fatal(void (*fn)(const char *mod, const char *msg))
{
	fatal_fn = fn != NULL ? fn : stderr_fatal;
}

void
gw_assert_fail(const char *expr, const char *file, int line)
{
	char msg[512];

	snprintf(msg, sizeof(msg), "assertion failed: %s at %s:%d", expr, file,
	    line);
	fatal_fn("assert", msg);
	abort();
}

static void
oom(size_t n)
{
	char msg[80];

	snprintf(msg, sizeof(msg), "out of memory allocating %zu bytes", n);
	fatal_fn("mem", msg);
	abort();
}

void *
gw_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		oom(n);
	return p;
}

void *
gw_xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);

	if (p == NULL)
		oom(nmemb * size);
	return p;
}

void *
gw_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (q == NULL)
		oom(n);
	return q;
}

char *
gw_xstrdup(const char *s)
{
	return gw_xstrndup(s, strlen(s));
}

char *
gw_xstrcat3(const char *a, size_t n, const char *b, const char *c)
{
	size_t lb = strlen(b), lc = strlen(c);
	char *s = gw_xmalloc(n + lb + lc + 1);

	memcpy(s, a, n);
	memcpy(s + n, b, lb);
	memcpy(s + n + lb, c, lc + 1);
	return s;
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

int
gw_url_decode(const char *s, size_t n, char *out, size_t outlen, int form)
{
	size_t i, o = 0;
	int c;

	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c == '+' && form) {
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
	if (outlen == 0)
		return -1;
	out[o] = '\0';
	return 0;
}

void
gw_strlcpy(char *dst, const char *src, size_t n)
{
	size_t len = strnlen(src, n - 1);

	memcpy(dst, src, len);
	dst[len] = '\0';
}

char *
gw_xstrndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p = gw_xmalloc(len + 1);

	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *
gw_xasprintf(const char *fmt, ...)
{
	va_list ap;
	int n;
	char *p;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	GW_ASSERT(n >= 0);
	p = gw_xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

static __attribute__((noinline)) void
buf_grow(struct gw_buf *b, size_t extra)
{
	size_t need = b->len + extra + 1;
	size_t cap = b->cap ? b->cap : 256;

	while (cap < need)
		cap *= 2;
	b->p = gw_xrealloc(b->p, cap);
	b->cap = cap;
}

/* Room for extra more bytes and the NUL: the check inline, growth not. */
static inline __attribute__((always_inline)) void
buf_reserve(struct gw_buf *b, size_t extra)
{
	if (b->len + extra + 1 > b->cap)
		buf_grow(b, extra);
}

void
gw_buf_reserve(struct gw_buf *b, size_t n)
{
	buf_reserve(b, n);
}

char *
gw_buf_extend(struct gw_buf *b, size_t n)
{
	char *p;

	buf_reserve(b, n);
	p = b->p + b->len;
	b->len += n;
	b->p[b->len] = '\0';
	return p;
}

void
gw_buf_append(struct gw_buf *b, const void *data, size_t n)
{
	char *p = gw_buf_extend(b, n);

	if (n)
		memcpy(p, data, n);
}

void
gw_buf_puts(struct gw_buf *b, const char *s)
{
	gw_buf_append(b, s, strlen(s));
}

size_t
gw_fmt_u64(char out[21], uint64_t v)
{
	char tmp[20];
	size_t n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	for (i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	out[n] = '\0';
	return n;
}

static const uint64_t pow10_u64[20] = {1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL,
    100000ULL, 1000000ULL, 10000000ULL, 100000000ULL, 1000000000ULL,
    10000000000ULL, 100000000000ULL, 1000000000000ULL, 10000000000000ULL,
    100000000000000ULL, 1000000000000000ULL, 10000000000000000ULL,
    100000000000000000ULL, 1000000000000000000ULL, 10000000000000000000ULL};

/*
 * The prec digits of v = m * 2^-sh rounded at 10^-k, for the decimal
 * exponent *x: exact, in 128 bits (m < 2^53, 10^k <= 10^22, sh < 127),
 * ties to even as printf rounds. -1 when out of that range.
 */
static int
g_digits(uint64_t m, int sh, int prec, int *x, uint64_t *digits)
{
	unsigned __int128 num, rem, half, n;
	int k, tries;

	for (tries = 0; tries < 4; tries++) {
		k = prec - 1 - *x;
		if (k < 0 || k > 22)
			return -1;
		num = (unsigned __int128)m * pow10_u64[k < 19 ? k : 19];
		if (k > 19)
			num *= pow10_u64[k - 19];
		n = num >> sh;
		rem = num & ((((unsigned __int128)1) << sh) - 1);
		half = ((unsigned __int128)1) << (sh - 1);
		if (rem > half || (rem == half && (n & 1) != 0))
			n++;
		if (n >= pow10_u64[prec]) {
			(*x)++;
			continue;
		}
		if (n < pow10_u64[prec - 1]) {
			(*x)--;
			continue;
		}
		*digits = (uint64_t)n;
		return 0;
	}
	return -1;
}

size_t
gw_fmt_g(char out[32], double v, int prec)
{
	uint64_t u, m, digits;
	char d[17];
	size_t n = 0;
	int bexp, sh, x, nd, i, ax;

	memcpy(&u, &v, sizeof(u));
	bexp = (int)((u >> 52) & 0x7ff);
	m = u & ((1ULL << 52) - 1);
	if (prec < 1 || prec > 17 || bexp == 0x7ff || (bexp == 0 && m != 0))
		goto slow;
	if (u >> 63)
		out[n++] = '-';
	if (bexp == 0) {
		out[n++] = '0';
		out[n] = '\0';
		return n;
	}
	m |= 1ULL << 52;
	sh = 1075 - bexp; /* v = m * 2^-sh */
	if (sh <= 0 || sh >= 127)
		goto slow;
	/* floor(log10(2^(52 - sh))), one off at most: g_digits corrects. */
	x = (int)(((int64_t)(52 - sh) * 78913) >> 18);
	if (g_digits(m, sh, prec, &x, &digits) < 0)
		goto slow;
	for (i = prec - 1; i >= 0; i--) {
		d[i] = (char)('0' + digits % 10);
		digits /= 10;
	}
	for (nd = prec; nd > 1 && d[nd - 1] == '0'; nd--)
		;
	if (x < -4 || x >= prec) {
		out[n++] = d[0];
		if (nd > 1) {
			out[n++] = '.';
			memcpy(out + n, d + 1, (size_t)nd - 1);
			n += (size_t)nd - 1;
		}
		out[n++] = 'e';
		out[n++] = x < 0 ? '-' : '+';
		ax = x < 0 ? -x : x;
		if (ax >= 100)
			out[n++] = (char)('0' + ax / 100);
		out[n++] = (char)('0' + ax / 10 % 10);
		out[n++] = (char)('0' + ax % 10);
	} else if (x >= 0) {
		memcpy(out + n, d, (size_t)x + 1);
		n += (size_t)x + 1;
		if (nd > x + 1) {
			out[n++] = '.';
			memcpy(out + n, d + x + 1, (size_t)(nd - x - 1));
			n += (size_t)(nd - x - 1);
		}
	} else {
		out[n++] = '0';
		out[n++] = '.';
		for (i = 0; i < -x - 1; i++)
			out[n++] = '0';
		memcpy(out + n, d, (size_t)nd);
		n += (size_t)nd;
	}
	out[n] = '\0';
	return n;
slow:
	return (size_t)snprintf(out, 32, "%.*g", prec, v);
}

void
gw_buf_put_i64(struct gw_buf *b, int64_t v)
{
	char d[22];
	size_t n = 0;

	if (v < 0) {
		d[n++] = '-';
		n += gw_fmt_u64(d + 1, 0 - (uint64_t)v);
	} else
		n = gw_fmt_u64(d, (uint64_t)v);
	gw_buf_append(b, d, n);
}

void
gw_buf_put_milli(struct gw_buf *b, int64_t thousandths)
{
	uint64_t a =
	    thousandths < 0 ? 0 - (uint64_t)thousandths : (uint64_t)thousandths;
	char frac[4] = {(char)('0' + a / 100 % 10), (char)('0' + a / 10 % 10),
	    (char)('0' + a % 10), '\0'};

	if (thousandths < 0)
		gw_buf_append(b, "-", 1);
	gw_buf_put_i64(b, (int64_t)(a / 1000));
	gw_buf_append(b, ".", 1);
	gw_buf_append(b, frac, 3);
}

void
gw_buf_printf(struct gw_buf *b, const char *fmt, ...)
{
	va_list ap;
	size_t room;
	int n;

	/* Format once into the room there is; again only when it did not fit.
	 */
	buf_reserve(b, 64);
	room = b->cap - b->len;
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, room, fmt, ap);
	va_end(ap);
	GW_ASSERT(n >= 0);
	if ((size_t)n >= room) {
		buf_reserve(b, (size_t)n);
		va_start(ap, fmt);
		vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

void
gw_buf_reset(struct gw_buf *b, size_t keep_cap)
{
	if (b->cap > keep_cap) {
		free(b->p);
		b->p = NULL;
		b->cap = 0;
	}
	b->len = 0;
	if (b->p)
		b->p[0] = '\0';
}

void
gw_buf_fini(struct gw_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

static int64_t
clock_us(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
gw_now_mono_us(void)
{
	return clock_us(CLOCK_MONOTONIC);
}

int64_t
gw_now_real_us(void)
{
	return clock_us(CLOCK_REALTIME);
}

static void
put2(char *p, int v)
{
	p[0] = (char)('0' + v / 10 % 10);
	p[1] = (char)('0' + v % 10);
}

void
gw_time_rfc3339(int64_t real_us, char out[32])
{
	time_t secs = (time_t)(real_us / 1000000);
	int ms = (int)((real_us % 1000000) / 1000);
	struct tm tm;

	/* By hand: strftime and printf cost more than the rest of a line. */
	gmtime_r(&secs, &tm);
	if (tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999 || ms < 0) {
		snprintf(out, 32, "%04d-01-01T00:00:00.000Z",
		    tm.tm_year + 1900 < 0 ? 0 : 9999);
		return;
	}
	put2(out, (tm.tm_year + 1900) / 100);
	put2(out + 2, (tm.tm_year + 1900) % 100);
	out[4] = '-';
	put2(out + 5, tm.tm_mon + 1);
	out[7] = '-';
	put2(out + 8, tm.tm_mday);
	out[10] = 'T';
	put2(out + 11, tm.tm_hour);
	out[13] = ':';
	put2(out + 14, tm.tm_min);
	out[16] = ':';
	put2(out + 17, tm.tm_sec);
	out[19] = '.';
	out[20] = (char)('0' + ms / 100);
	put2(out + 21, ms % 100);
	out[23] = 'Z';
	out[24] = '\0';
}

int
gw_ct_memeq(const void *a, const void *b, size_t n)
{
	const volatile unsigned char *x = a, *y = b;
	unsigned char d = 0;
	size_t i;

	for (i = 0; i < n; i++)
		d |= x[i] ^ y[i];
	return d == 0;
}

int
gw_ct_streq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	const volatile unsigned char *x = (const unsigned char *)a;
	const volatile unsigned char *y = (const unsigned char *)b;
	unsigned char d = la != lb;
	size_t i;

	/* Walk the longer length; index the shorter one modulo its size. */
	for (i = 0; i < (la > lb ? la : lb); i++)
		d |= x[la ? i % la : 0] ^ y[lb ? i % lb : 0];
	return d == 0;
}

void
gw_random_bytes(void *buf, size_t n)
{
	unsigned char *p = buf;

	while (n > 0) {
		ssize_t r = getrandom(p, n, 0);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			char msg[160];

			snprintf(
			    msg, sizeof(msg), "getrandom: %s", strerror(errno));
			fatal_fn("util", msg);
			abort();
		}
		p += r;
		n -= (size_t)r;
	}
}

static uint64_t
xorshift128p(uint64_t s[2])
{
	uint64_t a = s[0];
	const uint64_t b = s[1];

	s[0] = b;
	a ^= a << 23;
	s[1] = a ^ b ^ (a >> 17) ^ (b >> 26);
	return s[1] + b;
}

static void
uuid_format(const unsigned char r[16], char out[37])
{
	static const char hex[] = "0123456789abcdef";
	int i, o = 0;

	for (i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[r[i] >> 4];
		out[o++] = hex[r[i] & 15];
	}
	out[o] = '\0';
}

static void
uuid_random(uint64_t state[2], unsigned char r[16])
{
	uint64_t a, b;

	if (state[0] == 0 && state[1] == 0)
		gw_random_bytes(state, 2 * sizeof(uint64_t));
	a = xorshift128p(state);
	b = xorshift128p(state);
	memcpy(r, &a, 8);
	memcpy(r + 8, &b, 8);
	r[8] = (unsigned char)((r[8] & 0x3f) | 0x80); /* RFC 9562 variant */
}

void
gw_uuid4(uint64_t state[2], char out[37])
{
	unsigned char r[16];

	uuid_random(state, r);
	r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
	uuid_format(r, out);
}

void
gw_uuid7(uint64_t state[2], int64_t unix_ms, char out[37])
{
	unsigned char r[16];
	int i;

	uuid_random(state, r);
	for (i = 0; i < 6; i++)
		r[i] = (unsigned char)((uint64_t)unix_ms >> (40 - 8 * i));
	r[6] = (unsigned char)((r[6] & 0x0f) | 0x70);
	uuid_format(r, out);
}

char *
gw_strtrim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		e--;
	*e = '\0';
	return s;
}

uint32_t
gw_hash_str(const char *s)
{
	uint32_t h = 2166136261u;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h;
}
