/* sse.c: SSE event splitting without copying complete events. */
#include "sse.h"

#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/*
 * End of the first event in [p, p+n), looking for its blank line from
 * index from on (what comes before is known to hold none): index just
 * past the blank line, with *evlen the event's own length; 0 when no
 * complete event is there.
 */
static size_t
event_end(struct gw_sse *s, const char *p, size_t n, size_t from, size_t *evlen)
{
	const char *nl;
	size_t i;

	for (i = from; i + 1 < n; i++) {
		if ((nl = memchr(p + i, '\n', n - 1 - i)) == NULL) {
			i = n - 1;
			break;
		}
		i = (size_t)(nl - p);
		if (p[i + 1] == '\n') {
			*evlen = i > 0 && p[i - 1] == '\r' ? i - 1 : i;
			s->examined += i + 2 - from;
			return i + 2;
		}
		if (p[i + 1] == '\r' && i + 2 < n && p[i + 2] == '\n') {
			*evlen = i > 0 && p[i - 1] == '\r' ? i - 1 : i;
			s->examined += i + 3 - from;
			return i + 3;
		}
	}
	s->examined += (i > from ? i : from) - from;
	return 0;
}

int
gw_sse_feed(
    struct gw_sse *s, const char *p, size_t n, gw_sse_event_fn fn, void *arg)
{
	size_t end, evlen, off = 0, from;

	if (s->pending.len > 0) {
		/*
		 * What is pending holds no blank line: the search resumes at
		 * its last two bytes (a blank line is up to three), so an
		 * event fed byte by byte is scanned once, not once a byte.
		 */
		from = s->pending.len > 2 ? s->pending.len - 2 : 0;
		gw_buf_append(&s->pending, p, n);
		while ((end = event_end(s, s->pending.p + off,
		            s->pending.len - off, from, &evlen)) != 0) {
			if (fn(arg, s->pending.p + off, evlen) < 0)
				return -1;
			off += end;
			from = 0;
		}
		if (s->pending.len - off > GW_SSE_MAX_EVENT) {
			if (fn(arg, s->pending.p + off, s->pending.len - off) <
			    0)
				return -1;
			off = s->pending.len;
		}
		if (off > 0) {
			memmove(s->pending.p, s->pending.p + off,
			    s->pending.len - off);
			s->pending.len -= off;
			s->pending.p[s->pending.len] = '\0';
		}
		return 0;
	}
	while ((end = event_end(s, p + off, n - off, 0, &evlen)) != 0) {
		if (fn(arg, p + off, evlen) < 0)
			return -1;
		off += end;
	}
	if (off < n)
		gw_buf_append(&s->pending, p + off, n - off);
	return 0;
}

size_t
gw_sse_pending(const struct gw_sse *s)
{
	return s->pending.len;
}

void
gw_sse_reset(struct gw_sse *s)
{
	gw_buf_reset(&s->pending, 64 * 1024);
}

void
gw_sse_fini(struct gw_sse *s)
{
	gw_buf_fini(&s->pending);
}

int
gw_sse_data(const char *ev, size_t len, const char **json, size_t *jlen)
{
	size_t i = 0;

	/* Skip comment and non-data lines ("event:", "id:") before data. */
	while (i < len) {
		const char *nl = memchr(ev + i, '\n', len - i);
		size_t line = nl ? (size_t)(nl - (ev + i)) : len - i;

		if (line >= 5 && memcmp(ev + i, "data:", 5) == 0) {
			i += 5;
			if (i < len && ev[i] == ' ')
				i++;
			*json = ev + i;
			*jlen = (nl ? (size_t)(nl - ev) : len) - i;
			if (*jlen > 0 && (*json)[*jlen - 1] == '\r')
				(*jlen)--;
			return 0;
		}
		i += line + 1;
	}
	return -1;
}

int
gw_sse_is_done(const char *data, size_t len)
{
	while (len > 0 && (data[len - 1] == ' ' || data[len - 1] == '\r'))
		len--;
	return len == 6 && memcmp(data, "[DONE]", 6) == 0;
}

/* What the key at q (a quote) is: a "usage" object, "error", neither. */
static unsigned
key_at(const char *q, const char *end)
{
	if (end - q < 7)
		return 0;
	if (memcmp(q, "\"error\"", 7) == 0)
		return GW_SSE_ERROR;
	if (memcmp(q, "\"usage\"", 7) != 0)
		return 0;
	for (q += 7;
	     q < end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r');
	     q++)
		;
	if (q == end || *q++ != ':')
		return 0;
	while (q < end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r'))
		q++;
	return q < end && *q == '{' ? GW_SSE_USAGE : 0;
}

/*
 * A quote followed by 'u' or 'e' is where either key may start: 16 such
 * pairs tested a step (SSE2), the few found compared in full.
 */
unsigned
gw_sse_keys(const char *data, size_t len)
{
	const char *p = data, *end = data + len;
	unsigned k = 0;

#ifdef __SSE2__
	const __m128i quote = _mm_set1_epi8('"'), u = _mm_set1_epi8('u'),
	              e = _mm_set1_epi8('e');

	while (end - p > 16) {
		__m128i a = _mm_loadu_si128((const __m128i *)(const void *)p);
		__m128i b =
		    _mm_loadu_si128((const __m128i *)(const void *)(p + 1));
		unsigned m = (unsigned)_mm_movemask_epi8(_mm_and_si128(
		    _mm_cmpeq_epi8(a, quote),
		    _mm_or_si128(_mm_cmpeq_epi8(b, u), _mm_cmpeq_epi8(b, e))));

		for (; m != 0; m &= m - 1)
			k |= key_at(p + __builtin_ctz(m), end);
		p += 16;
	}
#endif
	for (; p + 1 < end; p++)
		if (*p == '"' && (p[1] == 'u' || p[1] == 'e'))
			k |= key_at(p, end);
	return k;
}

int
gw_sse_has_usage(const char *data, size_t len)
{
	return (gw_sse_keys(data, len) & GW_SSE_USAGE) != 0;
}
