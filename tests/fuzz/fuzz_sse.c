/*
 * fuzz_sse: the SSE splitter (lib/sse.c gw_sse_feed) with split points
 * the fuzzer chooses. The first 8 bytes seed the chunk sizes, the rest is
 * the stream. Fed in chunks, the stream must give the same events (bytes
 * and lengths) and leave the same bytes pending as when fed at once; the
 * splitter looks at each byte once plus two of overlap per feed
 * (struct gw_sse examined). Every event also goes through gw_sse_data,
 * gw_sse_is_done and gw_sse_has_usage.
 */
#include "fuzz.h"

#include "sse.h"
#include "util.h"

struct events {
	struct gw_buf all; /* each event: its length (size_t), then bytes */
	size_t n;
};

static int
on_event(void *arg, const char *ev, size_t len)
{
	struct events *e = arg;
	const char *json;
	size_t jlen;
	char *copy = fuzz_copy((const uint8_t *)ev, len);

	gw_buf_append(&e->all, (const char *)&len, sizeof(len));
	gw_buf_append(&e->all, copy, len);
	e->n++;
	if (gw_sse_data(copy, len, &json, &jlen) == 0) {
		if (json < copy || json + jlen > copy + len)
			FUZZ_FINDING("gw_sse_data: payload outside the event");
		(void)gw_sse_is_done(json, jlen);
		(void)gw_sse_has_usage(json, jlen);
	}
	free(copy);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gw_sse one = {0}, split = {0};
	struct events e1 = {{0}, 0}, e2 = {{0}, 0};
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	size_t n, off = 0, chunk, feeds = 0;
	char *buf;

	if (size < 8)
		return 0;
	memcpy(&seed, data, 8);
	data += 8;
	size -= 8;
	buf = fuzz_copy(data, size);
	if (gw_sse_feed(&one, buf, size, on_event, &e1) != 0)
		FUZZ_FINDING("one-shot feed stopped");
	while (off < size) {
		char *piece;

		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		/* Mostly small pieces, sometimes large ones. */
		n = (size_t)(seed >> 33);
		chunk = (seed & 3) == 0 ? 1 + n % (size - off)
		                        : 1 + n % (1 + (seed >> 61));
		if (chunk > size - off)
			chunk = size - off;
		piece = fuzz_copy((const uint8_t *)buf + off, chunk);
		if (gw_sse_feed(&split, piece, chunk, on_event, &e2) != 0)
			FUZZ_FINDING("split feed stopped");
		free(piece);
		off += chunk;
		feeds++;
	}
	if (e1.n != e2.n || e1.all.len != e2.all.len ||
	    (e1.all.len > 0 && memcmp(e1.all.p, e2.all.p, e1.all.len) != 0))
		FUZZ_FINDING("events differ: %zu at once, %zu split in %zu",
		    e1.n, e2.n, feeds);
	if (gw_sse_pending(&one) != gw_sse_pending(&split) ||
	    (gw_sse_pending(&one) > 0 && memcmp(one.pending.p, split.pending.p,
	                                     gw_sse_pending(&one)) != 0))
		FUZZ_FINDING("pending differs: %zu at once, %zu split",
		    gw_sse_pending(&one), gw_sse_pending(&split));
	if (one.examined > size)
		FUZZ_FINDING("one-shot looked at %llu bytes of %zu",
		    (unsigned long long)one.examined, size);
	if (split.examined > size + 2 * feeds)
		FUZZ_FINDING("split looked at %llu bytes of %zu in %zu feeds",
		    (unsigned long long)split.examined, size, feeds);
	gw_sse_fini(&one);
	gw_sse_fini(&split);
	gw_buf_fini(&e1.all);
	gw_buf_fini(&e2.all);
	free(buf);
	return 0;
}
