/*
 * fuzz_http1: the HTTP/1.x answer reader (lib/http1.c) with split points
 * and pauses the fuzzer chooses. The first 8 bytes seed the piece sizes
 * and which body pieces are held back once (on_body returning 1, as a
 * paused stream does), the rest is the upstream's answer. Read in pieces,
 * the answer must give what it gives read at once: the same result, the
 * same bytes taken, one head with the same status, headers and framing,
 * and the same body bytes; every body piece lies inside what was fed.
 */
#include "fuzz.h"

#include "http1.h"
#include "util.h"

struct seen {
	struct gw_buf body;
	int heads, status, close;
	char ctype[128], retry[64];
	uint64_t seed; /* pauses: a bit a body call */
	int held;
	const char *lo, *hi; /* the piece being fed */
};

static int
on_head(void *arg, const struct gw_http1 *h)
{
	struct seen *s = arg;

	s->heads++;
	s->status = h->status;
	s->close = h->close;
	if (strlen(h->content_type) >= sizeof(s->ctype) ||
	    strlen(h->retry_after) >= sizeof(s->retry))
		FUZZ_FINDING("a header value not NUL-ended in its buffer");
	memcpy(s->ctype, h->content_type, sizeof(s->ctype));
	memcpy(s->retry, h->retry_after, sizeof(s->retry));
	return 0;
}

static int
on_body(void *arg, const char *p, size_t n)
{
	struct seen *s = arg;

	if (n == 0 || p < s->lo || p + n > s->hi)
		FUZZ_FINDING("a body piece outside what was fed");
	/* Held back at most once in a row: the same bytes come again. */
	if (s->seed != 0 && !s->held) {
		int hold = (int)(s->seed & 1);

		s->seed = s->seed >> 1 | (s->seed & 1) << 63;
		if (hold) {
			s->held = 1;
			return 1;
		}
	}
	s->held = 0;
	gw_buf_append(&s->body, p, n);
	return 0;
}

/* Feed data[0..size) in pieces (seed 0: at once): the last rc, *taken. */
static enum gw_http1_rc
feed_all(struct gw_http1 *h, struct seen *s, const char *buf, size_t size,
    uint64_t seed, size_t *taken)
{
	const struct gw_http1_cb cb = {s, on_head, on_body};
	enum gw_http1_rc rc = GW_HTTP1_MORE;
	size_t off = 0, chunk, used;
	int stuck = 0;

	*taken = 0;
	while (off < size) {
		char *piece;

		chunk = size - off;
		if (seed != 0) {
			seed = seed * 6364136223846793005ULL +
			       1442695040888963407ULL;
			chunk = 1 + (size_t)(seed >> 33) % (1 + (seed >> 60));
			if (chunk > size - off)
				chunk = size - off;
		}
		piece = fuzz_copy((const uint8_t *)buf + off, chunk);
		s->lo = piece;
		s->hi = piece + chunk;
		rc = gw_http1_feed(h, piece, chunk, &used, &cb);
		free(piece);
		if (used > chunk)
			FUZZ_FINDING("took %zu of %zu", used, chunk);
		off += used;
		*taken += used;
		if (rc == GW_HTTP1_PAUSE) {
			/* The same bytes again; a pause always lets go next. */
			if (used > 0)
				stuck = 0;
			else if (++stuck > 1)
				FUZZ_FINDING(
				    "paused twice in a row on nothing");
			continue;
		}
		stuck = 0;
		if (rc != GW_HTTP1_MORE)
			return rc;
		if (used != chunk)
			FUZZ_FINDING(
			    "MORE after taking %zu of %zu", used, chunk);
	}
	return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct gw_http1 one, split; /* zeroed once: big kept */
	struct seen a = {{0}}, b = {{0}};
	uint64_t seed;
	size_t ta, tb;
	enum gw_http1_rc ra, rb;
	char *buf;

	if (size < 8)
		return 0;
	memcpy(&seed, data, 8);
	data += 8;
	size -= 8;
	buf = fuzz_copy(data, size);
	gw_http1_init(&one, 0);
	gw_http1_init(&split, 0);
	ra = feed_all(&one, &a, buf, size, 0, &ta);
	b.seed = seed | 1;
	rb = feed_all(&split, &b, buf, size, seed | 1, &tb);
	/* Refused: where it was seen depends on the pieces, not the rest. */
	if (ra != rb || (ra != GW_HTTP1_BAD && ta != tb))
		FUZZ_FINDING("at once rc %d took %zu; split rc %d took %zu",
		    (int)ra, ta, (int)rb, tb);
	if (a.heads > 1 || a.heads != b.heads || a.status != b.status ||
	    a.close != b.close || strcmp(a.ctype, b.ctype) != 0 ||
	    strcmp(a.retry, b.retry) != 0)
		FUZZ_FINDING("heads differ");
	if ((a.body.len != b.body.len ||
	        (a.body.len > 0 &&
	            memcmp(a.body.p, b.body.p, a.body.len) != 0)))
		FUZZ_FINDING("body differs: %zu at once, %zu split", a.body.len,
		    b.body.len);
	if (ra == GW_HTTP1_MORE && gw_http1_eof(&one) != gw_http1_eof(&split))
		FUZZ_FINDING("the end reads differently");
	if (a.heads == 1 && (a.status < 100 || a.status > 599))
		FUZZ_FINDING("status %d", a.status);
	gw_buf_fini(&a.body);
	gw_buf_fini(&b.body);
	free(buf);
	return 0;
}
