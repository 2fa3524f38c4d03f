/* json_util.c: strict body parsing and typed accessors over json-c. */
#include "json_util.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define JSON_MAX_DEPTH 64

/* 1 when every number under o is finite (json-c accepts NaN/Infinity). */
static int
all_finite(json_object *o)
{
	size_t i, n;

	switch (json_object_get_type(o)) {
	case json_type_double:
		return isfinite(json_object_get_double(o));
	case json_type_array:
		n = json_object_array_length(o);
		for (i = 0; i < n; i++)
			if (!all_finite(json_object_array_get_idx(o, i)))
				return 0;
		return 1;
	case json_type_object: {
		json_object_object_foreach(o, k, v)
		{
			(void)k;
			if (!all_finite(v))
				return 0;
		}
		return 1;
	}
	default:
		return 1;
	}
}

/*
 * A validating JSON scanner that builds nothing, RFC 8259 to the letter:
 * UTF-8 (no overlong forms, no surrogates), depth 64, nothing trailing.
 * Numbers are checked for their grammar, not converted. It backs up
 * json-c in gw_json_parse, and checks upstream answers, which are relayed
 * as they came: only their well-formedness and "usage" matter.
 */
#define SC_DIGIT(c) ((c) >= '0' && (c) <= '9')
#define SC_XDIGIT(c)                                                           \
	(SC_DIGIT(c) || ((c) >= 'a' && (c) <= 'f') ||                          \
	    ((c) >= 'A' && (c) <= 'F'))

struct scan {
	const unsigned char *p, *end;
};

static int
sc_ws(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' ||
	                            *s->p == '\n' || *s->p == '\r'))
		s->p++;
	return s->p < s->end;
}

static int
sc_cont(const unsigned char *p, const unsigned char *end, int n)
{
	int i;

	if (end - p < n)
		return 0;
	for (i = 0; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return 1;
}

/* Length of the UTF-8 sequence at p (c >= 0x80), 0 when invalid. */
static int
sc_utf8(const unsigned char *p, const unsigned char *end)
{
	unsigned c = p[0], c1 = end - p > 1 ? p[1] : 0;

	if (c >= 0xc2 && c <= 0xdf)
		return sc_cont(p + 1, end, 1) ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 > 0x9f))
			return 0;
		return sc_cont(p + 1, end, 2) ? 3 : 0;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if ((c == 0xf0 && c1 < 0x90) || (c == 0xf4 && c1 > 0x8f))
			return 0;
		return sc_cont(p + 1, end, 3) ? 4 : 0;
	}
	return 0;
}

/* A string; [*start, *start + *len) is its raw (still escaped) text. */
static int
sc_string(struct scan *s, const unsigned char **start, size_t *len)
{
	int i, n;

	if (s->p >= s->end || *s->p != '"')
		return -1;
	*start = ++s->p;
	while (s->p < s->end) {
		unsigned c = *s->p;

		if (c == '"') {
			*len = (size_t)(s->p++ - *start);
			return 0;
		}
		if (c < 0x20)
			return -1;
		if (c == '\\') {
			if (++s->p >= s->end)
				return -1;
			c = *s->p++;
			if (c == 'u') {
				if (s->end - s->p < 4)
					return -1;
				for (i = 0; i < 4; i++)
					if (!SC_XDIGIT(s->p[i]))
						return -1;
				s->p += 4;
			} else if (strchr("\"\\/bfnrt", (int)c) == NULL ||
			           c == 0)
				return -1;
			continue;
		}
		if (c < 0x80) {
			s->p++;
			continue;
		}
		if ((n = sc_utf8(s->p, s->end)) == 0)
			return -1;
		s->p += n;
	}
	return -1;
}

/* A number; *is_int and *v when it is an integer that fits int64. */
static int
sc_number(struct scan *s, int *is_int, int64_t *v)
{
	uint64_t mag = 0;
	int neg = 0, fits = 1;

	if (s->p < s->end && *s->p == '-') {
		neg = 1;
		s->p++;
	}
	if (s->p >= s->end || !SC_DIGIT(*s->p))
		return -1;
	if (*s->p == '0')
		s->p++;
	else
		for (; s->p < s->end && SC_DIGIT(*s->p); s->p++) {
			if (mag > (UINT64_MAX - 9) / 10)
				fits = 0;
			mag = mag * 10 + (uint64_t)(*s->p - '0');
		}
	*is_int = 1;
	if (s->p < s->end && *s->p == '.') {
		*is_int = 0;
		if (++s->p >= s->end || !SC_DIGIT(*s->p))
			return -1;
		while (s->p < s->end && SC_DIGIT(*s->p))
			s->p++;
	}
	if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
		*is_int = 0;
		if (++s->p < s->end && (*s->p == '+' || *s->p == '-'))
			s->p++;
		if (s->p >= s->end || !SC_DIGIT(*s->p))
			return -1;
		while (s->p < s->end && SC_DIGIT(*s->p))
			s->p++;
	}
	if (mag > (uint64_t)INT64_MAX + (uint64_t)neg)
		fits = 0;
	/* Out of range: clamped, as json-c does (both readers agree). */
	if (*is_int)
		*v = !fits ? (neg ? INT64_MIN : INT64_MAX)
		     : neg ? (int64_t)(0 - mag)
		           : (int64_t)mag;
	return 0;
}

static int sc_value(struct scan *s, int depth);

/* 1 and past it when the next byte is c (whitespace already skipped). */
static int
sc_take(struct scan *s, int c)
{
	if (*s->p != c)
		return 0;
	s->p++;
	return 1;
}

static int
sc_literal(struct scan *s, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
		return -1;
	s->p += n;
	return 0;
}

/*
 * The members of an object ('{' already taken). on_member, when set, is
 * offered each member first: it scans the value itself and returns 0, or
 * returns 1 to leave it to the generic scan.
 */
typedef int (*sc_member_fn)(
    struct scan *s, const unsigned char *key, size_t klen, void *arg);

static int
sc_members(struct scan *s, int depth, sc_member_fn on_member, void *arg)
{
	const unsigned char *key;
	size_t klen;
	int r;

	if (!sc_ws(s))
		return -1;
	if (sc_take(s, '}'))
		return 0;
	for (;;) {
		if (sc_string(s, &key, &klen) < 0 || !sc_ws(s) ||
		    !sc_take(s, ':') || !sc_ws(s))
			return -1;
		r = on_member ? on_member(s, key, klen, arg) : 1;
		if (r < 0 || (r == 1 && sc_value(s, depth + 1) < 0) ||
		    !sc_ws(s))
			return -1;
		if (sc_take(s, '}'))
			return 0;
		if (!sc_take(s, ',') || !sc_ws(s))
			return -1;
	}
}

static int
sc_value(struct scan *s, int depth)
{
	const unsigned char *str;
	size_t len;
	int64_t v;
	int is_int;

	if (depth > JSON_MAX_DEPTH || !sc_ws(s))
		return -1;
	switch (*s->p) {
	case '{':
		s->p++;
		return sc_members(s, depth, NULL, NULL);
	case '[':
		s->p++;
		if (!sc_ws(s))
			return -1;
		if (sc_take(s, ']'))
			return 0;
		for (;;) {
			if (sc_value(s, depth + 1) < 0 || !sc_ws(s))
				return -1;
			if (sc_take(s, ']'))
				return 0;
			if (!sc_take(s, ','))
				return -1;
		}
	case '"':
		return sc_string(s, &str, &len);
	case 't':
		return sc_literal(s, "true");
	case 'f':
		return sc_literal(s, "false");
	case 'n':
		return sc_literal(s, "null");
	default:
		return sc_number(s, &is_int, &v);
	}
}

static int
key_is(const unsigned char *key, size_t klen, const char *want)
{
	return klen == strlen(want) && memcmp(key, want, klen) == 0;
}

/* The members of "usage", in struct gw_json_usage's order. */
static const char *const usage_names[3] = {
    "prompt_tokens", "completion_tokens", "total_tokens"};

static int
usage_member(struct scan *s, const unsigned char *key, size_t klen, void *arg)
{
	struct gw_json_usage *u = arg;
	int64_t v;
	int i, is_int;

	for (i = 0; i < 3; i++)
		if (key_is(key, klen, usage_names[i]))
			break;
	if (i == 3 || !(*s->p == '-' || SC_DIGIT(*s->p)))
		return 1;
	if (sc_number(s, &is_int, &v) < 0)
		return -1;
	if (is_int) {
		u->has[i] = 1;
		u->v[i] = v;
	} else
		u->has[i] = 0; /* the last one counts, as in a parse */
	return 0;
}

static int
top_member(struct scan *s, const unsigned char *key, size_t klen, void *arg)
{
	struct gw_json_usage *u = arg;

	if (!key_is(key, klen, "usage"))
		return 1;
	/* The last "usage" counts, as in a parse. */
	memset(u, 0, sizeof(*u));
	if (*s->p != '{')
		return 1;
	s->p++;
	u->known = 1;
	return sc_members(s, 1, usage_member, u);
}

/* SIZE_MAX when buf is one strict JSON value, else where it is not. */
static size_t
sc_document(const char *buf, size_t len)
{
	struct scan s = {
	    (const unsigned char *)buf, (const unsigned char *)buf + len};

	if (sc_value(&s, 1) < 0 || sc_ws(&s))
		return (size_t)(s.p - (const unsigned char *)buf);
	return SIZE_MAX;
}

/* One tokener per thread, kept: making one allocates its whole stack. */
static pthread_key_t tok_key;
static pthread_once_t tok_once = PTHREAD_ONCE_INIT;

static void
tok_free(void *tok)
{
	json_tokener_free(tok);
}

static void
tok_key_init(void)
{
	GW_ASSERT(pthread_key_create(&tok_key, tok_free) == 0);
}

static struct json_tokener *
thread_tokener(void)
{
	struct json_tokener *tok;

	pthread_once(&tok_once, tok_key_init);
	tok = pthread_getspecific(tok_key);
	if (tok == NULL) {
		tok = json_tokener_new_ex(JSON_MAX_DEPTH);
		GW_ASSERT(tok != NULL);
		json_tokener_set_flags(
		    tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
		GW_ASSERT(pthread_setspecific(tok_key, tok) == 0);
	}
	return tok;
}

enum gw_status
gw_json_parse(
    const char *buf, size_t len, json_object **out, char *msg, size_t msglen)
{
	struct json_tokener *tok = NULL;
	json_object *o = NULL;
	enum json_tokener_error e;
	enum gw_status st = GW_E_INVALID;
	size_t i;

	*out = NULL;
	if (buf == NULL)
		len = 0;
	for (i = 0; i < len && strchr(" \t\r\n", buf[i]) != NULL; i++)
		;
	if (i == len) {
		snprintf(msg, msglen,
		    "Request body is empty; expected a JSON "
		    "object");
		return GW_E_INVALID;
	}
	tok = thread_tokener();
	o = json_tokener_parse_ex(tok, buf, (int)len);
	e = json_tokener_get_error(tok);
	if (o == NULL || e != json_tokener_success) {
		if (e == json_tokener_continue)
			snprintf(msg, msglen,
			    "Invalid JSON in request body: unexpected end of "
			    "input");
		else
			snprintf(msg, msglen,
			    "Invalid JSON in request body: %s at byte %zu",
			    json_tokener_error_desc(e),
			    json_tokener_get_parse_end(tok));
		goto out;
	}
	/* The strict tokener stops at trailing garbage; whitespace is fine. */
	for (i = json_tokener_get_parse_end(tok); i < len; i++) {
		if (strchr(" \t\r\n", buf[i]) == NULL) {
			snprintf(msg, msglen,
			    "Invalid JSON in request body: trailing data at "
			    "byte %zu",
			    i);
			goto out;
		}
	}
	if (!all_finite(o)) {
		snprintf(msg, msglen,
		    "Invalid JSON in request body: NaN and "
		    "Infinity are not numbers");
		goto out;
	}
	/*
	 * json-c lets through what RFC 8259 does not: 'single quotes', "1.",
	 * raw control characters in strings, overlong UTF-8 (which
	 * PostgreSQL would then refuse in a spend row).
	 */
	if ((i = sc_document(buf, len)) != SIZE_MAX) {
		snprintf(msg, msglen,
		    "Invalid JSON in request body: not strict JSON (RFC "
		    "8259) at byte %zu",
		    i);
		goto out;
	}
	*out = o;
	o = NULL;
	st = GW_OK;
out:
	json_object_put(o);
	json_tokener_reset(tok);
	return st;
}

json_object *
gw_json_get(json_object *obj, const char *key)
{
	json_object *v = NULL;

	if (obj == NULL || !json_object_is_type(obj, json_type_object))
		return NULL;
	return json_object_object_get_ex(obj, key, &v) ? v : NULL;
}

const char *
gw_json_get_str(json_object *obj, const char *key)
{
	json_object *v = gw_json_get(obj, key);

	return v != NULL && json_object_is_type(v, json_type_string)
	           ? json_object_get_string(v)
	           : NULL;
}

int
gw_json_get_int(json_object *obj, const char *key, int64_t *out)
{
	json_object *v = gw_json_get(obj, key);

	if (v == NULL || !json_object_is_type(v, json_type_int))
		return -1;
	*out = json_object_get_int64(v);
	return 0;
}

int64_t
gw_json_int_or(json_object *obj, const char *key, int64_t dflt)
{
	int64_t v;

	return gw_json_get_int(obj, key, &v) == 0 ? v : dflt;
}

double
gw_json_num_or(json_object *obj, const char *key, double dflt)
{
	json_object *v = gw_json_get(obj, key);

	if (v == NULL || !(json_object_is_type(v, json_type_double) ||
	                     json_object_is_type(v, json_type_int)))
		return dflt;
	return json_object_get_double(v);
}

const char *
gw_json_str(json_object *obj, size_t *len)
{
	size_t n = 0;
	const char *s = json_object_to_json_string_length(
	    obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);

	if (len != NULL)
		*len = n;
	return s;
}

void
gw_jw_quote(struct gw_buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s, *run = p;
	char esc[6] = {'\\', 'u', '0', '0', 0, 0};

	/* Most strings need no escape: one copy, quotes included. */
	while (*p >= 0x20 && *p != '"' && *p != '\\')
		p++;
	if (*p == '\0') {
		size_t n = (size_t)(p - run);
		char *d = gw_buf_extend(b, n + 2);

		d[0] = '"';
		memcpy(d + 1, run, n);
		d[n + 1] = '"';
		return;
	}
	gw_buf_append(b, "\"", 1);
	for (; *p; p++) {
		if (*p >= 0x20 && *p != '"' && *p != '\\')
			continue;
		gw_buf_append(b, run, (size_t)(p - run));
		run = p + 1;
		if (*p == '"')
			gw_buf_append(b, "\\\"", 2);
		else if (*p == '\\')
			gw_buf_append(b, "\\\\", 2);
		else if (*p == '\n')
			gw_buf_append(b, "\\n", 2);
		else if (*p == '\t')
			gw_buf_append(b, "\\t", 2);
		else if (*p == '\r')
			gw_buf_append(b, "\\r", 2);
		else {
			esc[4] = hex[*p >> 4];
			esc[5] = hex[*p & 15];
			gw_buf_append(b, esc, 6);
		}
	}
	gw_buf_append(b, run, (size_t)(p - run));
	gw_buf_append(b, "\"", 1);
}

void
gw_jw_begin(struct gw_buf *b)
{
	gw_buf_append(b, "{", 1);
}

void
gw_jw_end(struct gw_buf *b)
{
	if (b->len > 0 && b->p[b->len - 1] == ',')
		b->p[b->len - 1] = '}';
	else
		gw_buf_append(b, "}", 1);
}

static void
jw_key(struct gw_buf *b, const char *key)
{
	gw_jw_quote(b, key);
	*gw_buf_extend(b, 1) = ':';
}

void
gw_jw_str(struct gw_buf *b, const char *key, const char *value)
{
	jw_key(b, key);
	if (value != NULL)
		gw_jw_quote(b, value);
	else
		gw_buf_append(b, "null", 4);
	gw_buf_append(b, ",", 1);
}

void
gw_jw_int(struct gw_buf *b, const char *key, int64_t v)
{
	jw_key(b, key);
	gw_buf_put_i64(b, v);
	gw_buf_append(b, ",", 1);
}

void
gw_jw_num(struct gw_buf *b, const char *key, double v)
{
	jw_key(b, key);
	if (isfinite(v))
		gw_buf_printf(b, "%.17g,", v);
	else
		gw_buf_append(b, "null,", 5);
}

void
gw_jw_bool(struct gw_buf *b, const char *key, int v)
{
	jw_key(b, key);
	gw_buf_puts(b, v ? "true," : "false,");
}

void
gw_jw_null(struct gw_buf *b, const char *key)
{
	jw_key(b, key);
	gw_buf_append(b, "null,", 5);
}

/*
 * PostgreSQL's text and jsonb cannot hold U+0000: one "\u0000" in a spooled
 * row would make every batch holding it fail forever. Escapes are the only
 * backslashes in serialized JSON, so walking them pairwise is exact.
 */
void
gw_jw_raw(struct gw_buf *b, const char *key, const char *json)
{
	const char *p = json, *run = json;

	jw_key(b, key);
	while ((p = strchr(p, '\\')) != NULL && p[1] != '\0') {
		if (strncmp(p + 1, "u0000", 5) == 0) {
			gw_buf_append(b, run, (size_t)(p - run));
			gw_buf_append(b, "\\ufffd", 6);
			run = p += 6;
		} else
			p += 2;
	}
	gw_buf_puts(b, run);
	gw_buf_append(b, ",", 1);
}

void
gw_json_get_usage(json_object *msg, struct gw_json_usage *u)
{
	json_object *o = gw_json_get(msg, "usage");
	int i;

	memset(u, 0, sizeof(*u));
	u->known = o != NULL && json_object_is_type(o, json_type_object);
	for (i = 0; u->known && i < 3; i++)
		u->has[i] = gw_json_get_int(o, usage_names[i], &u->v[i]) == 0;
}

enum gw_status
gw_json_scan_usage(const char *buf, size_t len, struct gw_json_usage *u)
{
	struct scan s = {
	    (const unsigned char *)buf, (const unsigned char *)buf + len};

	memset(u, 0, sizeof(*u));
	if (buf == NULL || !sc_ws(&s) || *s.p != '{')
		return GW_E_INVALID;
	s.p++;
	if (sc_members(&s, 1, top_member, u) < 0 || sc_ws(&s)) {
		memset(u, 0, sizeof(*u));
		return GW_E_INVALID;
	}
	return GW_OK;
}
