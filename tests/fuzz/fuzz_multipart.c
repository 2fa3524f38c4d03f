/*
 * fuzz_multipart: the multipart/form-data scanner (lib/multipart.c). The
 * input is a Content-Type value up to its first newline, then the body.
 * gw_multipart_boundary must give a boundary of 1 to 70 characters or
 * none; gw_multipart_scan over the body with it (or with "b" when there
 * is none) must hand over parts that lie inside the body, in order, with
 * a NUL-ended name, data that never holds the delimiter, at most
 * GW_MULTIPART_PARTS_MAX of them, and a NUL-ended message on a refusal;
 * stopping at the first part must give that same first part.
 */
#define _GNU_SOURCE /* memmem */
#include "fuzz.h"

#include "multipart.h"

struct check {
	const char *body;
	size_t len;
	char delim[4 + GW_MULTIPART_BOUNDARY_MAX + 1];
	size_t dl;
	size_t last_end; /* where the previous part's data ended */
	int n, stop;
	struct gw_multipart_part first;
};

static int
on_part(void *arg, const struct gw_multipart_part *p)
{
	struct check *c = arg;

	if (memchr(p->name, '\0', sizeof(p->name)) == NULL || !p->name[0])
		FUZZ_FINDING("part name not NUL-ended or empty");
	if (p->head_off < c->last_end || p->head_off > p->data_off ||
	    p->data_off > c->len || p->data_len > c->len - p->data_off)
		FUZZ_FINDING("part outside the body or out of order");
	if (memmem(c->body + p->data_off, p->data_len, c->delim, c->dl))
		FUZZ_FINDING("part data holds the delimiter");
	if (++c->n > GW_MULTIPART_PARTS_MAX)
		FUZZ_FINDING("more than GW_MULTIPART_PARTS_MAX parts");
	if (c->n == 1)
		c->first = *p;
	c->last_end = p->data_off + p->data_len;
	return c->stop;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t clen = nl ? (size_t)(nl - data) : size;
	char *ctype = fuzz_str(data, clen), *body;
	char b[GW_MULTIPART_BOUNDARY_MAX + 1], msg[200];
	struct check c = {0}, c1 = {0};
	size_t blen, bl;
	enum gw_status st;

	if (gw_multipart_boundary(ctype, b, sizeof(b)) == GW_OK) {
		bl = strlen(b);
		if (bl == 0 || bl > GW_MULTIPART_BOUNDARY_MAX)
			FUZZ_FINDING("boundary of %zu characters", bl);
	} else {
		if (b[0] != '\0')
			FUZZ_FINDING("refused boundary left in out");
		strcpy(b, "b");
	}
	blen = nl ? size - clen - 1 : 0;
	body = fuzz_copy(nl ? nl + 1 : data, blen);
	c.body = body;
	c.len = blen;
	memcpy(c.delim, "\r\n--", 4);
	memcpy(c.delim + 4, b, strlen(b));
	c.dl = 4 + strlen(b);
	c1 = c;
	memset(msg, 'x', sizeof(msg));
	st = gw_multipart_scan(body, blen, b, on_part, &c, msg, sizeof(msg));
	if (st != GW_OK && memchr(msg, '\0', sizeof(msg)) == NULL)
		FUZZ_FINDING("message not NUL-ended");
	if (st != GW_OK && st != GW_E_INVALID)
		FUZZ_FINDING("status %d", (int)st);
	c1.stop = 1;
	(void)gw_multipart_scan(body, blen, b, on_part, &c1, msg, sizeof(msg));
	if (c.n > 0 &&
	    (c1.n != 1 || memcmp(&c.first, &c1.first, sizeof(c.first)) != 0))
		FUZZ_FINDING(
		    "the first part differs when the scan stops there");
	free(body);
	free(ctype);
	return 0;
}
