/*
 * spoolcols.c: spooled spend lines as PostgreSQL binary arrays (see
 * spoolcols.h). The wire formats are array_recv's (ndim, has-null flag,
 * element type, then length and lower bound per dimension, then each
 * element as a 4-byte length, -1 for NULL, and its bytes) and the element
 * types' *_recv: text as is, int4 and float8 big-endian, bool one byte,
 * timestamptz microseconds since 2000-01-01 UTC, jsonb a version byte (1)
 * and the JSON text.
 */
#include "spoolcols.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum kind { K_TEXT, K_INT4, K_FLOAT8, K_BOOL, K_TSTZ, K_JSONB };

/* Element type OIDs (pg_type.h), by kind. */
static const uint32_t elem_oid[] = {25, 23, 701, 16, 1184, 3802};

/* In GW_SPOOLCOLS_SQL's order. */
static const struct {
	const char *name;
	enum kind kind;
} cols[GW_SPOOLCOLS_N] = {
    {"request_id", K_TEXT},
    {"api_key", K_TEXT},
    {"key_alias", K_TEXT},
    {"user_id", K_TEXT},
    {"team_id", K_TEXT},
    {"model", K_TEXT},
    {"actual_model", K_TEXT},
    {"call_type", K_TEXT},
    {"prompt_tokens", K_INT4},
    {"completion_tokens", K_INT4},
    {"total_tokens", K_INT4},
    {"spend", K_FLOAT8},
    {"usage_estimated", K_BOOL},
    {"start_time", K_TSTZ},
    {"end_time", K_TSTZ},
    {"completion_start_time", K_TSTZ},
    {"ttft_ms", K_FLOAT8},
    {"status", K_INT4},
    {"error_type", K_TEXT},
    {"stream", K_BOOL},
    {"client_disconnected", K_BOOL},
    {"metadata", K_JSONB},
    {"response_id", K_TEXT},
    {"request_tags", K_JSONB},
    {"session_id", K_TEXT},
    {"lf_input", K_JSONB},
    {"lf_output", K_JSONB},
    {"lf_mode", K_TEXT},
    {"lf_trace", K_JSONB},
};

/* Some columns, by index. */
#define COL_METADATA 21
#define COL_REQUEST_TAGS 23
#define COL_LF_MODE 27 /* not null: the row has a Langfuse payload */

/*
 * The JSON text that goes as NULL, by column: what the statement stores
 * for NULL (coalesce), so that PostgreSQL has no JSON to parse for it.
 */
static const char *const none_json[GW_SPOOLCOLS_N] = {
    [COL_METADATA] = "{}",
    [COL_REQUEST_TAGS] = "[]",
};

/* Array header: ndim, flags, element type, length, lower bound. */
#define HDR 20

static void
put_be32(char *d, uint32_t v)
{
	d[0] = (char)(v >> 24);
	d[1] = (char)(v >> 16);
	d[2] = (char)(v >> 8);
	d[3] = (char)v;
}

static void
put_be64(char *d, uint64_t v)
{
	put_be32(d, (uint32_t)(v >> 32));
	put_be32(d + 4, (uint32_t)v);
}

/* One element: its length, then n bytes (returned, to fill). */
static char *
elem(struct gw_buf *b, size_t n)
{
	char *d = gw_buf_extend(b, 4 + n);

	put_be32(d, (uint32_t)n);
	return d + 4;
}

/* The end of the JSON string starting at p (its '"'), or NULL. */
static const char *
string_end(const char *p, const char *end)
{
	for (p++; p < end; p++) {
		if (*p == '"')
			return p + 1;
		if (*p == '\\')
			p++;
		else if ((unsigned char)*p < 0x20)
			return NULL;
	}
	return NULL;
}

/*
 * Decode the JSON string [p, q) (quotes included) into an element of b.
 * Simple escapes only, and \u00XX for ASCII; any other \u (which
 * PostgreSQL may refuse, e.g. \u0000) is left to it: -1.
 */
static int
put_string(struct gw_buf *b, const char *p, const char *q)
{
	size_t at = b->len, n = 0;
	char *d;
	int v;

	d = elem(b, (size_t)(q - p - 2));
	for (p++, q--; p < q; p++) {
		if (*p != '\\') {
			d[n++] = *p;
			continue;
		}
		switch (*++p) {
		case '"':
		case '\\':
		case '/':
			d[n++] = *p;
			break;
		case 'b':
			d[n++] = '\b';
			break;
		case 'f':
			d[n++] = '\f';
			break;
		case 'n':
			d[n++] = '\n';
			break;
		case 'r':
			d[n++] = '\r';
			break;
		case 't':
			d[n++] = '\t';
			break;
		case 'u':
			if (q - p < 5 || p[1] != '0' || p[2] != '0')
				return -1;
			v = 0;
			for (int i = 3; i <= 4; i++) {
				char c = p[i];

				v = v * 16 +
				    (c >= '0' && c <= '9'      ? c - '0'
				        : c >= 'a' && c <= 'f' ? c - 'a' + 10
				        : c >= 'A' && c <= 'F' ? c - 'A' + 10
				                               : -256);
			}
			if (v <= 0 || v >= 0x80)
				return -1;
			d[n++] = (char)v;
			p += 4;
			break;
		default:
			return -1;
		}
	}
	/* Escapes made it shorter: the element's real length. */
	put_be32(b->p + at, (uint32_t)n);
	b->len = at + 4 + n;
	b->p[b->len] = '\0';
	return 0;
}

/* The end of a JSON number at p (JSON's grammar exactly), or NULL. */
static const char *
number_end(const char *p, const char *end, int *integer)
{
	*integer = 1;
	if (p < end && *p == '-')
		p++;
	if (p >= end || *p < '0' || *p > '9')
		return NULL;
	if (*p == '0')
		p++;
	else
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	if (p < end && *p == '.') {
		*integer = 0;
		if (++p >= end || *p < '0' || *p > '9')
			return NULL;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		*integer = 0;
		if (++p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || *p < '0' || *p > '9')
			return NULL;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	return p;
}

/*
 * The end of the JSON value at p: a string, number, literal, or an object
 * or array taken whole (its content is PostgreSQL's to check, as jsonb).
 */
static const char *
value_end(const char *p, const char *end)
{
	int depth = 0, integer;

	if (p >= end)
		return NULL;
	if (*p == '"')
		return string_end(p, end);
	if (*p == '-' || (*p >= '0' && *p <= '9'))
		return number_end(p, end, &integer);
	if (*p != '{' && *p != '[') {
		static const char *const lits[] = {"true", "false", "null"};

		for (size_t i = 0; i < 3; i++) {
			size_t n = strlen(lits[i]);

			if ((size_t)(end - p) >= n &&
			    memcmp(p, lits[i], n) == 0)
				return p + n;
		}
		return NULL;
	}
	for (; p < end; p++) {
		if (*p == '"') {
			if ((p = string_end(p, end)) == NULL)
				return NULL;
			p--;
		} else if (*p == '{' || *p == '[') {
			depth++;
		} else if (*p == '}' || *p == ']') {
			if (--depth == 0)
				return p + 1;
		}
	}
	return NULL;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian). */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	return era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
}

static int
digits(const char *p, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v;
}

/*
 * "YYYY-MM-DDTHH:MM:SS.fffZ" (gw_time_rfc3339's, 1 to 6 decimals), years
 * 1970 to 9999, as microseconds since 2000-01-01 UTC; -1 for anything
 * else (PostgreSQL reads the rest).
 */
static int
put_time(struct gw_buf *b, const char *p, const char *q)
{
	static const int mdays[] = {
	    31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int y, mo, d, h, mi, s, frac = 0, nf;
	size_t n = (size_t)(q - p - 2);
	int64_t us;

	p++;
	if (n < 22 || n > 27 || p[4] != '-' || p[7] != '-' || p[10] != 'T' ||
	    p[13] != ':' || p[16] != ':' || p[19] != '.' || p[n - 1] != 'Z')
		return -1;
	nf = (int)n - 21;
	if ((y = digits(p, 4)) < 1970 || (mo = digits(p + 5, 2)) < 1 ||
	    mo > 12 || (d = digits(p + 8, 2)) < 1 || d > mdays[mo - 1] ||
	    (h = digits(p + 11, 2)) < 0 || h > 23 ||
	    (mi = digits(p + 14, 2)) < 0 || mi > 59 ||
	    (s = digits(p + 17, 2)) < 0 || s > 59 ||
	    (frac = digits(p + 20, nf)) < 0)
		return -1;
	/* 29 February of a year that has none. */
	if (mo == 2 && d == 29 && (y % 4 != 0 || (y % 100 == 0 && y % 400)))
		return -1;
	for (int i = nf; i < 6; i++)
		frac *= 10;
	us = ((days_from_civil(y, mo, d) - 10957) * 86400 + h * 3600 + mi * 60 +
	         s) *
	         1000000 +
	     frac;
	put_be64(elem(b, 8), (uint64_t)us);
	return 0;
}

/* Column i of the row takes the JSON value [p, q). 0, or -1: refused. */
static int
put_value(struct gw_buf *b, int i, const char *p, const char *q)
{
	int integer;
	char num[64], *e;
	long long v;
	double x;
	size_t n = (size_t)(q - p);

	if ((n == 4 && memcmp(p, "null", 4) == 0) ||
	    (none_json[i] != NULL && strlen(none_json[i]) == n &&
	        memcmp(p, none_json[i], n) == 0)) {
		put_be32(gw_buf_extend(b, 4), 0xffffffffu);
		return 1;
	}
	switch (cols[i].kind) {
	case K_TEXT:
		return *p == '"' ? put_string(b, p, q) : -1;
	case K_TSTZ:
		return *p == '"' ? put_time(b, p, q) : -1;
	case K_BOOL:
		if (n == 4 && memcmp(p, "true", 4) == 0)
			*elem(b, 1) = 1;
		else if (n == 5 && memcmp(p, "false", 5) == 0)
			*elem(b, 1) = 0;
		else
			return -1;
		return 0;
	case K_JSONB:
		e = elem(b, n + 1);
		e[0] = 1;
		memcpy(e + 1, p, n);
		return 0;
	case K_INT4:
	case K_FLOAT8:
		if (n >= sizeof(num) || number_end(p, q, &integer) != q)
			return -1;
		memcpy(num, p, n);
		num[n] = '\0';
		errno = 0;
		if (cols[i].kind == K_INT4) {
			v = strtoll(num, &e, 10);
			if (!integer || errno != 0 || *e != '\0' ||
			    v < INT32_MIN || v > INT32_MAX)
				return -1;
			put_be32(elem(b, 4), (uint32_t)(int32_t)v);
			return 0;
		}
		/* strtod, as float8in; its range errors are PostgreSQL's. */
		x = strtod(num, &e);
		if (errno != 0 || *e != '\0' || !isfinite(x))
			return -1;
		{
			uint64_t bits;

			memcpy(&bits, &x, sizeof(bits));
			put_be64(elem(b, 8), bits);
		}
		return 0;
	}
	return -1;
}

/*
 * The column named [p, q) (a JSON string without escapes), or -1. Lines
 * list them in cols' order: the one after the last (hint) first.
 */
static int
column_of(const char *p, const char *q, int hint)
{
	size_t n = (size_t)(q - p - 2);

	for (int j = 0; j < GW_SPOOLCOLS_N; j++) {
		int i = (hint + j) % GW_SPOOLCOLS_N;

		if (strlen(cols[i].name) == n &&
		    memcmp(cols[i].name, p + 1, n) == 0)
			return i;
	}
	return -1;
}

/* One line [p, end) into the columns. 0, or -1: not of the shape. */
static int
put_line(struct gw_spoolcols *c, const char *p, const char *end)
{
	unsigned char seen[GW_SPOOLCOLS_N] = {0};
	const char *k, *v;
	int i = -1, r;

	if (p >= end || *p++ != '{')
		return -1;
	if (p < end && *p == '}')
		p++;
	else
		for (;;) {
			if (p >= end || *p != '"' ||
			    (k = string_end(p, end)) == NULL ||
			    memchr(p, '\\', (size_t)(k - p)) != NULL ||
			    (i = column_of(p, k, i + 1)) < 0 || seen[i] ||
			    k >= end || *k != ':' ||
			    (v = value_end(k + 1, end)) == NULL)
				return -1;
			seen[i] = 1;
			if ((r = put_value(&c->col[i], i, k + 1, v)) < 0)
				return -1;
			if (r > 0)
				c->col[i].p[HDR - 16 + 3] = 1; /* has nulls */
			else if (i == COL_LF_MODE)
				c->payloads++;
			p = v;
			if (p < end && *p == ',') {
				p++;
				continue;
			}
			if (p < end && *p == '}') {
				p++;
				break;
			}
			return -1;
		}
	if (p != end)
		return -1;
	/* A key the line lacks is NULL, as json_to_recordset has it. */
	for (i = 0; i < GW_SPOOLCOLS_N; i++)
		if (!seen[i]) {
			put_be32(gw_buf_extend(&c->col[i], 4), 0xffffffffu);
			c->col[i].p[HDR - 16 + 3] = 1;
		}
	return 0;
}

enum gw_status
gw_spoolcols_build(struct gw_spoolcols *c, const char *lines, size_t len)
{
	const char *p = lines, *end = lines + len, *nl;
	int i;

	memset(c, 0, sizeof(*c));
	for (i = 0; i < GW_SPOOLCOLS_N; i++) {
		char *h = gw_buf_extend(&c->col[i], HDR);

		put_be32(h, 1);
		put_be32(h + 4, 0);
		put_be32(h + 8, elem_oid[cols[i].kind]);
		put_be32(h + 16, 1);
	}
	while (p < end) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		if (nl > p) {
			if (put_line(c, p, nl) != 0)
				return GW_E_INVALID;
			c->rows++;
		}
		p = nl + 1;
	}
	for (i = 0; i < GW_SPOOLCOLS_N; i++) {
		put_be32(c->col[i].p + 12, (uint32_t)c->rows);
		c->values[i] = c->col[i].p;
		c->lengths[i] = (int)c->col[i].len;
		c->formats[i] = 1;
	}
	return GW_OK;
}

void
gw_spoolcols_fini(struct gw_spoolcols *c)
{
	for (int i = 0; i < GW_SPOOLCOLS_N; i++)
		gw_buf_fini(&c->col[i]);
}
