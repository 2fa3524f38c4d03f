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

#include "json_util.h"
#include "shm.h"

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
	for (p++; p < end;) {
		/* Plain bytes 16 at a time; a non-ASCII one is plain here. */
		p += gw_json_plain_run(p, end);
		if (p >= end)
			break;
		if (*p == '"')
			return p + 1;
		if (*p == '\\')
			p += 2;
		else if ((unsigned char)*p < 0x20)
			return NULL;
		else
			p++;
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
		size_t run = gw_json_plain_run(p, q);

		/* The plain run in one copy; what stops it, a byte at a time.
		 */
		memcpy(d + n, p, run);
		n += run;
		p += run;
		if (p >= q)
			break;
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

/*
 * Roll-ups (gw_spoolcols_rollups). A text value: bytes, or NULL (p NULL).
 */
struct txt {
	const char *p;
	size_t n;
};

/* One row's share: what the roll-ups read, taken from the columns. */
struct rrow {
	struct txt key, user, team, model;
	int32_t day;
	int64_t pt, ct, tt;
	double spend;
	int ok;
	size_t eu_off, eu_len; /* end user, decoded into the strings buffer */
	int tag0, ntags;       /* its distinct tags, in the tag list */
};

/* A group of one roll-up: its parts (as in the table's key) and sums. */
struct rgroup {
	int32_t day;
	struct txt part[5];
	int64_t pt, ct, tt, n, ok;
	double spend;
};

/* Groups by day and up to 5 text parts, found through an open table. */
struct rtable {
	int nparts;
	struct rgroup *g;
	int ng;
	int *slot; /* group index + 1, 0: free */
	size_t nslots;
};

/* A column's next element: *t (p NULL for NULL); cur moves past it. */
static void
next_elem(const char **cur, struct txt *t)
{
	uint32_t n;
	const unsigned char *u = (const unsigned char *)*cur;

	n = (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 |
	    u[3];
	*cur += 4;
	if (n == 0xffffffffu) {
		t->p = NULL;
		t->n = 0;
		return;
	}
	t->p = *cur;
	t->n = n;
	*cur += n;
}

static uint64_t
get_be64(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | u[i];
	return v;
}

static const char *
skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/*
 * The JSON string [p, q) decoded into s as jsonb would (simple escapes and
 * \u00XX for ASCII, as put_string); *off and *len say where. -1: another
 * escape (left to PostgreSQL: the batch's roll-ups are then its own).
 */
static int
decode_string(
    struct gw_buf *s, const char *p, const char *q, size_t *off, size_t *len)
{
	size_t at = s->len;

	/* put_string writes a 4-byte length first: keep only the bytes. */
	if (put_string(s, p, q) != 0) {
		s->len = at;
		return -1;
	}
	*off = at + 4;
	*len = s->len - at - 4;
	return 0;
}

/*
 * coalesce(metadata->>'end_user', '') of a jsonb text [p, end), into s.
 * Not an object: none. A key with an escape, or an end_user that is not a
 * string or null (its text would be jsonb's rendering): -1.
 */
static int
end_user_of(
    struct gw_buf *s, const char *p, const char *end, size_t *off, size_t *len)
{
	const char *k, *v, *ve, *found = NULL, *found_end = NULL;

	*off = 0;
	*len = 0;
	p = skip_ws(p, end);
	if (p >= end || *p != '{')
		return 0;
	p = skip_ws(p + 1, end);
	if (p < end && *p == '}')
		return 0;
	for (;;) {
		if (p >= end || *p != '"' || (k = string_end(p, end)) == NULL ||
		    memchr(p, '\\', (size_t)(k - p)) != NULL)
			return -1;
		v = skip_ws(k, end);
		if (v >= end || *v != ':')
			return -1;
		v = skip_ws(v + 1, end);
		if ((ve = value_end(v, end)) == NULL)
			return -1;
		if (k - p == 10 && memcmp(p, "\"end_user\"", 10) == 0) {
			found = v; /* the last one counts, as in jsonb */
			found_end = ve;
		}
		p = skip_ws(ve, end);
		if (p < end && *p == ',') {
			p = skip_ws(p + 1, end);
			continue;
		}
		if (p < end && *p == '}')
			break;
		return -1;
	}
	if (found == NULL ||
	    (found_end - found == 4 && memcmp(found, "null", 4) == 0))
		return 0;
	if (*found != '"')
		return -1;
	return decode_string(s, found, found_end, off, len);
}

/*
 * The distinct elements of a request_tags array [p, end) into the tag
 * list (offsets into s). Not an array: none (the statement stores []).
 * An element that is not a string: -1.
 */
static int
tags_of(struct gw_buf *s, struct gw_buf *list, const char *p, const char *end,
    int *ntags)
{
	const char *q;
	size_t off, len, *t, *all;
	int dup, first = (int)(list->len / (2 * sizeof(size_t)));

	*ntags = 0;
	p = skip_ws(p, end);
	if (p >= end || *p != '[')
		return 0;
	p = skip_ws(p + 1, end);
	if (p < end && *p == ']')
		return 0;
	for (;;) {
		if (p >= end || *p != '"' || (q = string_end(p, end)) == NULL ||
		    decode_string(s, p, q, &off, &len) != 0)
			return -1;
		all = (size_t *)(void *)list->p;
		dup = 0;
		for (int i = 0; i < *ntags && !dup; i++) {
			size_t *o = all + 2 * (first + i);

			dup = o[1] == len &&
			      memcmp(s->p + o[0], s->p + off, len) == 0;
		}
		if (!dup) {
			t = (size_t *)(void *)gw_buf_extend(
			    list, 2 * sizeof(size_t));
			t[0] = off;
			t[1] = len;
			(*ntags)++;
		}
		p = skip_ws(q, end);
		if (p < end && *p == ',') {
			p = skip_ws(p + 1, end);
			continue;
		}
		if (p < end && *p == ']')
			return 0;
		return -1;
	}
}

static int
txt_eq(const struct txt *a, const struct txt *b)
{
	return a->n == b->n && (a->n == 0 || memcmp(a->p, b->p, a->n) == 0);
}

/* The group of (day, part[0..nparts)), added when new. */
static struct rgroup *
group_of(struct rtable *t, int32_t day, const struct txt *part)
{
	uint64_t h = gw_shm_hash(&day, sizeof(day), 0);
	size_t i;
	struct rgroup *g;

	for (int j = 0; j < t->nparts; j++) {
		h = gw_shm_hash(&part[j].n, sizeof(part[j].n), h);
		h = gw_shm_hash(part[j].p, part[j].n, h);
	}
	for (i = h & (t->nslots - 1); t->slot[i] != 0;
	     i = (i + 1) & (t->nslots - 1)) {
		int j;

		g = &t->g[t->slot[i] - 1];
		if (g->day != day)
			continue;
		for (j = 0; j < t->nparts && txt_eq(&g->part[j], &part[j]); j++)
			;
		if (j == t->nparts)
			return g;
	}
	g = &t->g[t->ng++];
	memset(g, 0, sizeof(*g));
	g->day = day;
	memcpy(g->part, part, sizeof(*part) * (size_t)t->nparts);
	t->slot[i] = t->ng;
	return g;
}

/* Add a row's share to g, in row order (as PostgreSQL's sum). */
static void
group_add(struct rgroup *g, const struct rrow *r)
{
	g->pt += r->pt;
	g->ct += r->ct;
	g->tt += r->tt;
	g->spend = g->n == 0 ? r->spend : g->spend + r->spend;
	g->n++;
	g->ok += r->ok;
}

static void
table_init(struct rtable *t, int nparts, int rows)
{
	t->nparts = nparts;
	t->ng = 0;
	t->g = gw_xcalloc((size_t)rows + 1, sizeof(*t->g));
	for (t->nslots = 4; t->nslots < 2 * (size_t)rows + 2; t->nslots *= 2)
		;
	t->slot = gw_xcalloc(t->nslots, sizeof(*t->slot));
}

static void
table_fini(struct rtable *t)
{
	free(t->g);
	free(t->slot);
}

/* An array parameter of element type oid, with n elements to come. */
static void
arr_begin(struct gw_buf *b, uint32_t oid)
{
	char *h = gw_buf_extend(b, HDR);

	put_be32(h, 1);
	put_be32(h + 4, 0);
	put_be32(h + 8, oid);
	put_be32(h + 16, 1);
}

static void
arr_end(struct gw_buf *b, int n)
{
	put_be32(b->p + 12, (uint32_t)n);
}

static void
arr_txt(struct gw_buf *b, const struct txt *t)
{
	memcpy(elem(b, t->n), t->n ? t->p : "", t->n);
}

static void
arr_i64(struct gw_buf *b, int64_t v)
{
	put_be64(elem(b, 8), (uint64_t)v);
}

static void
arr_f64(struct gw_buf *b, double v)
{
	uint64_t bits;

	memcpy(&bits, &v, sizeof(bits));
	put_be64(elem(b, 8), bits);
}

static void
arr_day(struct gw_buf *b, int32_t day)
{
	put_be32(elem(b, 4), (uint32_t)day);
}

/* The sums of a daily roll-up, from parameter at on (7 arrays). */
static void
put_sums(struct gw_buf *col, const struct rtable *t)
{
	for (int i = 0; i < 7; i++)
		arr_begin(&col[i], i == 3 ? 701 : 20);
	for (int i = 0; i < t->ng; i++) {
		const struct rgroup *g = &t->g[i];

		arr_i64(&col[0], g->pt);
		arr_i64(&col[1], g->ct);
		arr_i64(&col[2], g->tt);
		arr_f64(&col[3], g->spend);
		arr_i64(&col[4], g->n);
		arr_i64(&col[5], g->ok);
		arr_i64(&col[6], g->n - g->ok);
	}
	for (int i = 0; i < 7; i++)
		arr_end(&col[i], t->ng);
}

/* The parts of a table's groups, one array each (text; day: date). */
static void
put_parts(struct gw_buf *col, const struct rtable *t, int with_day)
{
	int k = 0;

	if (with_day) {
		arr_begin(&col[k], 1082);
		for (int i = 0; i < t->ng; i++)
			arr_day(&col[k], t->g[i].day);
		arr_end(&col[k++], t->ng);
	}
	for (int j = 0; j < t->nparts; j++, k++) {
		arr_begin(&col[k], 25);
		for (int i = 0; i < t->ng; i++)
			arr_txt(&col[k], &t->g[i].part[j]);
		arr_end(&col[k], t->ng);
	}
}

/* The totals of one of keys, users, teams: (id, spend) arrays. */
static void
put_totals(struct gw_buf *col, const struct rtable *t)
{
	arr_begin(&col[0], 25);
	arr_begin(&col[1], 701);
	for (int i = 0; i < t->ng; i++) {
		arr_txt(&col[0], &t->g[i].part[0]);
		arr_f64(&col[1], t->g[i].spend);
	}
	arr_end(&col[0], t->ng);
	arr_end(&col[1], t->ng);
}

/* An int4 element as a number (NULL: 0, as the statement's coalesce). */
static int64_t
int4_or0(const struct txt *t)
{
	const unsigned char *u = (const unsigned char *)t->p;

	if (t->p == NULL)
		return 0;
	return (int32_t)((uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 |
	                 (uint32_t)u[2] << 8 | u[3]);
}

/* A float8 element (NULL: 0). */
static double
float8_or0(const struct txt *t)
{
	uint64_t bits;
	double v;

	if (t->p == NULL)
		return 0;
	bits = get_be64(t->p);
	memcpy(&v, &bits, sizeof(v));
	return v;
}

/* NULL as '' (coalesce(x, '')). */
static struct txt
or_empty(struct txt t)
{
	if (t.p == NULL)
		t.n = 0;
	return t;
}

/* Floor division: days since 2000-01-01 of microseconds since then. */
static int32_t
day_of(int64_t us)
{
	int64_t d = 86400LL * 1000000LL;

	return (int32_t)(us >= 0 ? us / d : -((-us + d - 1) / d));
}

enum gw_status
gw_spoolcols_rollups(
    struct gw_spoolcols_rollups *a, const struct gw_spoolcols *c)
{
	static const int need[] = {
	    1, 3, 4, 5, 8, 9, 10, 11, 13, 17, COL_METADATA, COL_REQUEST_TAGS};
	const char *cur[GW_SPOOLCOLS_N];
	struct rrow *rows = NULL;
	struct gw_buf strs = {0}, tags = {0};
	struct rtable keys, users, teams, daily, dtags;
	struct txt v[GW_SPOOLCOLS_N];
	enum gw_status st = GW_E_INVALID;
	int ntags = 0;

	memset(a, 0, sizeof(*a));
	table_init(&keys, 1, c->rows);
	table_init(&users, 1, c->rows);
	table_init(&teams, 1, c->rows);
	table_init(&daily, 5, c->rows);
	rows = gw_xcalloc((size_t)c->rows + 1, sizeof(*rows));
	gw_buf_extend(&strs, 1); /* offsets from 1: never a NULL base */
	for (size_t j = 0; j < sizeof(need) / sizeof(need[0]); j++)
		cur[need[j]] = c->values[need[j]] + HDR;
	for (int r = 0; r < c->rows; r++) {
		struct rrow *w = &rows[r];

		for (size_t j = 0; j < sizeof(need) / sizeof(need[0]); j++)
			next_elem(&cur[need[j]], &v[need[j]]);
		/* NOT NULL columns: the insert refuses the row itself. */
		if (v[13].p == NULL || v[17].p == NULL)
			goto out;
		w->key = or_empty(v[1]);
		w->user = v[3];
		w->team = v[4];
		w->model = or_empty(v[5]);
		w->pt = int4_or0(&v[8]);
		w->ct = int4_or0(&v[9]);
		w->tt = int4_or0(&v[10]);
		w->spend = float8_or0(&v[11]);
		w->day = day_of((int64_t)get_be64(v[13].p));
		w->ok = int4_or0(&v[17]) >= 200 && int4_or0(&v[17]) <= 299;
		/* jsonb elements: a version byte, then the text. */
		if (v[COL_METADATA].p != NULL &&
		    end_user_of(&strs, v[COL_METADATA].p + 1,
		        v[COL_METADATA].p + v[COL_METADATA].n, &w->eu_off,
		        &w->eu_len) != 0)
			goto out;
		w->tag0 = ntags;
		if (v[COL_REQUEST_TAGS].p != NULL &&
		    tags_of(&strs, &tags, v[COL_REQUEST_TAGS].p + 1,
		        v[COL_REQUEST_TAGS].p + v[COL_REQUEST_TAGS].n,
		        &w->ntags) != 0)
			goto out;
		ntags += w->ntags;
	}
	/* The strings buffer no longer moves: group by its bytes. */
	table_init(&dtags, 4, ntags);
	for (int r = 0; r < c->rows; r++) {
		struct rrow *w = &rows[r];
		const size_t *tg = (const size_t *)(const void *)tags.p;
		struct txt part[5];

		if (w->key.n > 0)
			group_add(group_of(&keys, 0, &w->key), w);
		if (w->user.p != NULL)
			group_add(group_of(&users, 0, &w->user), w);
		if (w->team.p != NULL)
			group_add(group_of(&teams, 0, &w->team), w);
		part[0] = w->key;
		part[1] = w->model;
		part[2] = or_empty(w->user);
		part[3] = or_empty(w->team);
		part[4].p = strs.p + w->eu_off;
		part[4].n = w->eu_len;
		group_add(group_of(&daily, w->day, part), w);
		for (int i = 0; i < w->ntags; i++) {
			part[0].p = strs.p + tg[2 * (w->tag0 + i)];
			part[0].n = tg[2 * (w->tag0 + i) + 1];
			part[1] = w->key;
			part[2] = or_empty(w->user);
			part[3] = or_empty(w->team);
			group_add(group_of(&dtags, w->day, part), w);
		}
	}
	put_totals(&a->col[0], &keys);
	put_totals(&a->col[2], &users);
	put_totals(&a->col[4], &teams);
	put_parts(&a->col[6], &daily, 1);
	put_sums(&a->col[12], &daily);
	put_parts(&a->col[19], &dtags, 1);
	put_sums(&a->col[24], &dtags);
	for (int i = 0; i < GW_SPOOLCOLS_ROLLUPS_N; i++) {
		a->values[i] = a->col[i].p;
		a->lengths[i] = (int)a->col[i].len;
		a->formats[i] = 1;
	}
	table_fini(&dtags);
	st = GW_OK;
out:
	table_fini(&keys);
	table_fini(&users);
	table_fini(&teams);
	table_fini(&daily);
	free(rows);
	gw_buf_fini(&strs);
	gw_buf_fini(&tags);
	return st;
}

void
gw_spoolcols_rollups_fini(struct gw_spoolcols_rollups *a)
{
	for (int i = 0; i < GW_SPOOLCOLS_ROLLUPS_N; i++)
		gw_buf_fini(&a->col[i]);
}
