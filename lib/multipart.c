/* multipart.c: a bounded multipart/form-data scanner (names, not data). */
#define _GNU_SOURCE /* memmem */
#include "multipart.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* RFC 2046 bcharsnospace, and the space (not as the last character). */
static int
is_bchar(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	       (c >= 'A' && c <= 'Z') ||
	       (c != '\0' && strchr("'()+_,-./:=? ", c));
}

/* RFC 7230 tchar: a token's characters. */
static int
is_tchar(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	       (c >= 'A' && c <= 'Z') ||
	       (c != '\0' && strchr("!#$%&'*+-.^_`|~", c));
}

static const char *
skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

/*
 * One parameter "; name=value" of a header value at *pp (before end):
 * name into [*n, *n + *nl), value into out (NUL-ended, unquoted, its
 * backslashes kept as they are; *bs says whether it has one). 1 when one
 * was read, 0 at the end, -1 when malformed: a quoted value with a control
 * character or a backslash before a quote (quoted-pairs are read
 * differently by different parsers: where one ends a value at a quote and
 * another does not, they would split the header differently), or a value
 * longer than outlen - 1.
 */
static int
next_param(const char **pp, const char *end, const char **n, size_t *nl,
    char *out, size_t outlen, int *bs)
{
	const char *p = skip_ws(*pp, end), *v;
	size_t len;

	if (p == end)
		return 0;
	if (*p != ';')
		return -1;
	p = skip_ws(p + 1, end);
	*n = p;
	while (p < end && is_tchar((unsigned char)*p))
		p++;
	*nl = (size_t)(p - *n);
	p = skip_ws(p, end);
	if (*nl == 0 || p == end || *p != '=')
		return -1;
	p = skip_ws(p + 1, end);
	if (p < end && *p == '"') {
		v = ++p;
		*bs = 0;
		/* qdtext: no control characters either (no CR, LF). */
		while (p < end && *p != '"' &&
		       ((unsigned char)*p >= 0x20 || *p == '\t') &&
		       *p != 0x7f) {
			if (*p == '\\') {
				if (p + 1 < end && p[1] == '"')
					return -1;
				*bs = 1;
			}
			p++;
		}
		if (p == end || *p != '"')
			return -1;
		len = (size_t)(p - v);
		p++;
	} else {
		v = p;
		*bs = 0;
		while (p < end && is_tchar((unsigned char)*p))
			p++;
		len = (size_t)(p - v);
		if (len == 0)
			return -1;
	}
	if (len >= outlen)
		return -1;
	memcpy(out, v, len);
	out[len] = '\0';
	*pp = p;
	return 1;
}

enum gw_status
gw_multipart_boundary(const char *ctype, char *out, size_t outlen)
{
	static const char mt[] = "multipart/form-data";
	const char *p = ctype, *end = ctype + strlen(ctype), *n;
	char v[GW_MULTIPART_BOUNDARY_MAX + 2];
	size_t nl, i, len;
	int rc, found = 0, bs;

	out[0] = '\0';
	p = skip_ws(p, end);
	if ((size_t)(end - p) < sizeof(mt) - 1 ||
	    strncasecmp(p, mt, sizeof(mt) - 1) != 0)
		return GW_E_INVALID;
	p += sizeof(mt) - 1;
	while ((rc = next_param(&p, end, &n, &nl, v, sizeof(v), &bs)) == 1) {
		if (nl != 8 || strncasecmp(n, "boundary", 8) != 0)
			continue;
		if (bs)
			goto bad; /* which bytes: with the backslash or not? */
		if (found)
			goto bad; /* two boundaries: which one? */
		len = strlen(v);
		if (len == 0 || len > GW_MULTIPART_BOUNDARY_MAX ||
		    v[len - 1] == ' ' || len >= outlen)
			goto bad;
		for (i = 0; i < len; i++)
			if (!is_bchar((unsigned char)v[i]))
				goto bad;
		memcpy(out, v, len + 1);
		found = 1;
	}
	if (rc == 0 && found)
		return GW_OK;
bad:
	out[0] = '\0';
	return GW_E_INVALID;
}

/*
 * The Content-Disposition value [p, end) of a part: "form-data" and its
 * name (and filename) into part. 0, or -1 when it is not that or has a
 * parameter twice or one this scanner does not take ("name*").
 */
static int
disposition(const char *p, const char *end, struct gw_multipart_part *part)
{
	char v[GW_MULTIPART_HEAD_MAX];
	const char *n;
	size_t nl;
	int rc, have_name = 0, have_file = 0, bs;

	p = skip_ws(p, end);
	if (end - p < 9 || strncasecmp(p, "form-data", 9) != 0)
		return -1;
	p += 9;
	while ((rc = next_param(&p, end, &n, &nl, v, sizeof(v), &bs)) == 1) {
		if (nl == 4 && strncasecmp(n, "name", 4) == 0) {
			/* A backslash: "mo\\del" is "model" to some parsers. */
			if (have_name || bs || strlen(v) >= sizeof(part->name))
				return -1;
			memcpy(part->name, v, strlen(v) + 1);
			have_name = 1;
		} else if (nl == 8 && strncasecmp(n, "filename", 8) == 0) {
			if (have_file)
				return -1;
			have_file = 1;
		} else if (nl == 9 && strncasecmp(n, "filename*", 9) == 0) {
			have_file = 1; /* RFC 5987 name of the file: a file */
		} else if (nl == 5 && strncasecmp(n, "name*", 5) == 0) {
			return -1;
		}
	}
	if (rc < 0 || !have_name || part->name[0] == '\0')
		return -1;
	part->is_file = have_file;
	return 0;
}

/*
 * The headers [p, end) of a part, CRLF-ended lines: its disposition into
 * part. 0, or -1 with msg (a folded line, a line without a colon, none or
 * two dispositions).
 */
static int
part_headers(const char *p, const char *end, struct gw_multipart_part *part,
    char *msg, size_t msglen)
{
	const char *eol, *colon;
	int seen = 0;

	while (p < end) {
		eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		if (eol == NULL)
			eol = end;
		if (*p == ' ' || *p == '\t') {
			snprintf(msg, msglen, "multipart: folded part header");
			return -1;
		}
		colon = memchr(p, ':', (size_t)(eol - p));
		if (colon == NULL || colon == p) {
			snprintf(
			    msg, msglen, "multipart: malformed part header");
			return -1;
		}
		if (colon - p == 19 &&
		    strncasecmp(p, "Content-Disposition", 19) == 0) {
			if (seen++ || disposition(colon + 1, eol, part) < 0) {
				snprintf(msg, msglen,
				    "multipart: each part needs one "
				    "'Content-Disposition: form-data; "
				    "name=\"...\"' (a name up to %d bytes)",
				    GW_MULTIPART_NAME_MAX - 1);
				return -1;
			}
		}
		p = eol + 2;
	}
	if (!seen) {
		snprintf(msg, msglen,
		    "multipart: a part has no Content-Disposition");
		return -1;
	}
	return 0;
}

enum gw_status
gw_multipart_scan(const char *body, size_t len, const char *boundary,
    int (*fn)(void *arg, const struct gw_multipart_part *part), void *arg,
    char *msg, size_t msglen)
{
	/* "\r\n--" boundary: the delimiter inside the body. */
	char d[4 + GW_MULTIPART_BOUNDARY_MAX + 1];
	size_t bl = strlen(boundary), dl, pos, hlen, nparts = 0;
	const char *q, *hend;
	struct gw_multipart_part part;

	if (msglen > 0)
		msg[0] = '\0';
	if (bl == 0 || bl > GW_MULTIPART_BOUNDARY_MAX) {
		snprintf(msg, msglen, "multipart: bad boundary");
		return GW_E_INVALID;
	}
	memcpy(d, "\r\n--", 4);
	memcpy(d + 4, boundary, bl);
	dl = 4 + bl;
	if (body == NULL)
		len = 0;
	/* The first delimiter: at the start, or after a preamble. */
	if (len >= dl - 2 && memcmp(body, d + 2, dl - 2) == 0) {
		pos = dl - 2;
	} else if (len > 0 && (q = memmem(body, len, d, dl)) != NULL) {
		pos = (size_t)(q - body) + dl;
	} else {
		snprintf(msg, msglen,
		    "multipart: the body does not start with its boundary");
		return GW_E_INVALID;
	}
	for (;;) {
		/* After a delimiter: "--" ends the body, else CRLF. */
		if (len - pos >= 2 && body[pos] == '-' && body[pos + 1] == '-')
			return GW_OK;
		while (pos < len && (body[pos] == ' ' || body[pos] == '\t'))
			pos++;
		if (len - pos < 2 || body[pos] != '\r' || body[pos + 1] != '\n')
			break;
		pos += 2;
		if (nparts++ == GW_MULTIPART_PARTS_MAX) {
			snprintf(msg, msglen, "multipart: more than %d parts",
			    GW_MULTIPART_PARTS_MAX);
			return GW_E_INVALID;
		}
		memset(&part, 0, sizeof(part));
		part.head_off = pos;
		/* Headers end at an empty line, within HEAD_MAX bytes. */
		if (len - pos >= 2 && body[pos] == '\r' &&
		    body[pos + 1] == '\n') {
			hlen = 0;
			part.data_off = pos + 2;
		} else {
			size_t look = len - pos < GW_MULTIPART_HEAD_MAX + 4
			                  ? len - pos
			                  : GW_MULTIPART_HEAD_MAX + 4;

			hend = memmem(body + pos, look, "\r\n\r\n", 4);
			if (hend == NULL) {
				snprintf(msg, msglen,
				    "multipart: part headers unended or "
				    "longer than %d bytes",
				    GW_MULTIPART_HEAD_MAX);
				return GW_E_INVALID;
			}
			hlen = (size_t)(hend - (body + pos));
			part.data_off = pos + hlen + 4;
		}
		/* A delimiter inside the headers: not a part of ours. */
		if (hlen + 2 >= dl && memmem(body + pos, hlen + 2, d, dl)) {
			snprintf(msg, msglen, "multipart: empty part");
			return GW_E_INVALID;
		}
		if (part_headers(
		        body + pos, body + pos + hlen, &part, msg, msglen) < 0)
			return GW_E_INVALID;
		/* The data: up to the next delimiter, never looked into. */
		q = memmem(body + part.data_off, len - part.data_off, d, dl);
		if (q == NULL)
			break;
		part.data_len = (size_t)(q - body) - part.data_off;
		if (fn(arg, &part) != 0)
			return GW_OK;
		pos = (size_t)(q - body) + dl;
	}
	snprintf(msg, msglen,
	    "multipart: the body does not end with its close delimiter");
	return GW_E_INVALID;
}
