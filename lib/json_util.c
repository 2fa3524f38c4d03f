/*
 * json_util.c: strict JSON parsing (our own pass over the text, building
 * json-c objects), the usage scanner for upstream answers, typed accessors
 * and the direct writer.
 */
#include "json_util.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 64

/*
 * A validating JSON scanner that builds nothing, RFC 8259 to the letter:
 * UTF-8 (no overlong forms, no surrogates), depth 64, nothing trailing.
 * Numbers are checked for their grammar, not converted. It checks
 * upstream answers, which are relayed as they came: only their
 * well-formedness and "usage" matter. gw_json_parse's parser below keeps
 * its rules and shares its whitespace and UTF-8 steps.
 */
#define SC_DIGIT(c) ((c) >= '0' && (c) <= '9')
#define SC_XDIGIT(c)                                                           \
	(SC_DIGIT(c) || ((c) >= 'a' && (c) <= 'f') ||                          \
	    ((c) >= 'A' && (c) <= 'F'))

struct scan {
	const unsigned char *p, *end;
	int escaped; /* the last string scanned held an escape */
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

/*
 * How many of the bytes from p (up to end) are neither a quote, a
 * backslash, a control character nor non-ASCII: a string's common run,
 * 16 bytes a test with SSE2 (in every x86-64), else 8 bytes in a word.
 */
static inline size_t
plain_run(const unsigned char *p, const unsigned char *end)
{
	const unsigned char *at = p;
#ifdef __SSE2__
	const __m128i quote = _mm_set1_epi8('"'), bs = _mm_set1_epi8('\\'),
	              space = _mm_set1_epi8(0x20);

	while (end - at >= 16) {
		__m128i x = _mm_loadu_si128((const __m128i *)(const void *)at);
		/* Signed: a byte >= 0x80 is "less than" a space too. */
		unsigned m = (unsigned)_mm_movemask_epi8(
		    _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote),
		                     _mm_cmpeq_epi8(x, bs)),
		        _mm_cmplt_epi8(x, space)));

		if (m != 0)
			return (size_t)(at - p) + (size_t)__builtin_ctz(m);
		at += 16;
	}
#else
	const uint64_t ones = 0x0101010101010101ULL,
	               highs = 0x8080808080808080ULL;

	while (end - at >= 8) {
		uint64_t x, q, b;

		memcpy(&x, at, sizeof(x));
		q = x ^ (ones * '"');
		b = x ^ (ones * '\\');
		if ((((q - ones) & ~q) | ((b - ones) & ~b) |
		        ((x - ones * 0x20) & ~x) | x) &
		    highs)
			break;
		at += 8;
	}
#endif
	return (size_t)(at - p);
}

size_t
gw_json_plain_run(const char *p, const char *end)
{
	return plain_run((const unsigned char *)p, (const unsigned char *)end);
}

/* A string; [*start, *start + *len) is its raw (still escaped) text. */
static int
sc_string(struct scan *s, const unsigned char **start, size_t *len)
{
	int i, n;

	if (s->p >= s->end || *s->p != '"')
		return -1;
	*start = ++s->p;
	s->escaped = 0;
	while (s->p < s->end) {
		unsigned c;

		s->p += plain_run(s->p, s->end);
		if (s->p >= s->end)
			break;
		c = *s->p;
		if (c == '"') {
			*len = (size_t)(s->p++ - *start);
			return 0;
		}
		if (c < 0x20)
			return -1;
		if (c == '\\') {
			s->escaped = 1;
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

/*
 * A number; *is_int and *v when it is an integer (clamped to int64). A
 * number beyond a double (1e999) is refused, as the parser refuses it:
 * only one whose decimal exponent may reach 308 is given to strtod.
 */
static int
sc_number(struct scan *s, int *is_int, int64_t *v)
{
	const unsigned char *start = s->p;
	uint64_t mag = 0;
	int neg = 0, fits = 1, eneg = 0;
	long nint = 1, exp = 0;

	if (s->p < s->end && *s->p == '-') {
		neg = 1;
		s->p++;
	}
	if (s->p >= s->end || !SC_DIGIT(*s->p))
		return -1;
	if (*s->p == '0')
		s->p++;
	else
		for (nint = 0; s->p < s->end && SC_DIGIT(*s->p); s->p++) {
			if (mag > (UINT64_MAX - 9) / 10)
				fits = 0;
			mag = mag * 10 + (uint64_t)(*s->p - '0');
			nint++;
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
			eneg = *s->p++ == '-';
		if (s->p >= s->end || !SC_DIGIT(*s->p))
			return -1;
		for (; s->p < s->end && SC_DIGIT(*s->p); s->p++)
			if (exp < 100000)
				exp = exp * 10 + (*s->p - '0');
	}
	if (!*is_int && (nint - 1) + (eneg ? -exp : exp) >= 308) {
		size_t n = (size_t)(s->p - start);
		char *text = gw_xstrndup((const char *)start, n);
		double d = strtod(text, NULL);

		free(text);
		if (!isfinite(d))
			return -1;
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
hexval4(const unsigned char *p)
{
	int i, v = 0;

	for (i = 0; i < 4; i++)
		v = v * 16 + (SC_DIGIT(p[i])   ? p[i] - '0'
		                 : p[i] >= 'a' ? p[i] - 'a' + 10
		                               : p[i] - 'A' + 10);
	return v;
}

/*
 * Is the raw (still escaped, already checked) key the ASCII name want, as
 * the parser reads keys? Escapes are decoded, and a key ends at an
 * escaped NUL as json-c's C-string keys do: "usage\u0000x" is "usage".
 */
static int
key_is(const struct scan *s, const unsigned char *key, size_t klen,
    const char *want, size_t wlen)
{
	const unsigned char *p = key, *end = key + klen;
	size_t i = 0;
	int c;

	/* Most keys hold no escape: compared as they are. */
	if (!s->escaped)
		return klen == wlen && memcmp(key, want, klen) == 0;
	while (p < end) {
		c = *p++;
		if (c == '\\') {
			c = *p++;
			if (c == 'u') {
				c = hexval4(p);
				p += 4;
				if (c == 0)
					break; /* the key ends here */
			} else {
				c = c == 'b'   ? '\b'
				    : c == 'f' ? '\f'
				    : c == 'n' ? '\n'
				    : c == 'r' ? '\r'
				    : c == 't' ? '\t'
				               : c; /* " \\ / */
			}
		}
		/* Anything beyond ASCII cannot be one of our names. */
		if (c >= 0x80 || want[i] == '\0' || want[i] != c)
			return 0;
		i++;
	}
	return want[i] == '\0';
}

/* The members of "usage", in struct gw_json_usage's order. */
static const char *const usage_names[3] = {
    "prompt_tokens", "completion_tokens", "total_tokens"};
static const size_t usage_lens[3] = {13, 17, 12};

static int
usage_member(struct scan *s, const unsigned char *key, size_t klen, void *arg)
{
	struct gw_json_usage *u = arg;
	int64_t v;
	int i, is_int;

	for (i = 0; i < 3; i++)
		if (key_is(s, key, klen, usage_names[i], usage_lens[i]))
			break;
	if (i == 3)
		return 1;
	if (!(*s->p == '-' || SC_DIGIT(*s->p))) {
		u->has[i] =
		    0; /* not a number: the last one counts, as in a parse */
		return 1;
	}
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
	const unsigned char *v;
	size_t vlen;

	if (key_is(s, key, klen, "id", 2)) {
		/* The last "id" counts, as in a parse (not a string: none). */
		u->id = NULL;
		u->id_len = 0;
		if (*s->p != '"')
			return 1;
		if (sc_string(s, &v, &vlen) < 0)
			return -1;
		/* One with escapes is not kept. */
		u->id = s->escaped ? NULL : (const char *)v;
		u->id_len = u->id ? vlen : 0;
		return 0;
	}
	if (!key_is(s, key, klen, "usage", 5))
		return 1;
	/* The last "usage" counts, as in a parse. */
	u->known = 0;
	memset(u->has, 0, sizeof(u->has));
	memset(u->v, 0, sizeof(u->v));
	if (*s->p != '{')
		return 1;
	s->p++;
	u->known = 1;
	/* A member of the top object: at depth 2, as the parser counts. */
	return sc_members(s, 2, usage_member, u);
}

/*
 * The parser behind gw_json_parse: one pass over the text that checks it
 * by the scanner's rules (RFC 8259 to the letter, depth 64) and builds the
 * json-c tree as it goes, the tree json_tokener would have built: the
 * last of duplicate members wins (in the first one's place), integers
 * beyond int64 are clamped (positive ones up to uint64, as json-c keeps
 * them), a double keeps its text for serialization, a key ends at an
 * escaped NUL (json-c's keys are C strings), and a lone surrogate escape
 * becomes U+FFFD. Unlike json-c 0.16 it decodes every escaped pair
 * (json-c gave U+FFFD for code points such as U+1D800 or U+2D800, whose
 * low 16 bits look like a surrogate), and nothing carries over from one
 * document to the next (a kept json_tokener remembered a dangling high
 * surrogate of a refused body). Numbers are read in the C locale: nothing
 * in the process calls setlocale(3).
 */
enum perr {
	PE_NONE = 0,
	PE_END,       /* the text ends inside a value */
	PE_CHAR,      /* a byte the grammar does not allow there */
	PE_NUMBER,    /* a number cut short: "1.", "1e", "-" */
	PE_ESCAPE,    /* a backslash escape RFC 8259 does not have */
	PE_CONTROL,   /* a raw control character in a string */
	PE_UTF8,      /* invalid, overlong or surrogate UTF-8 */
	PE_DEPTH,     /* nesting deeper than JSON_MAX_DEPTH */
	PE_NONFINITE, /* NaN, Infinity, or a number beyond a double */
	PE_TOOMANY,   /* more values than the caller allows */
};

static const char *const perr_what[] = {
    [PE_CHAR] = "unexpected character",
    [PE_NUMBER] = "invalid number",
    [PE_ESCAPE] = "invalid escape",
    [PE_CONTROL] = "control character in a string",
    [PE_UTF8] = "invalid utf-8",
};

struct parse {
	struct scan s;
	const unsigned char *buf;
	enum perr err;
	size_t at;          /* where err was found, from buf */
	struct gw_buf text; /* a string's unescaped bytes */
	size_t values;      /* values left to build (containers count) */
	size_t max_values;
	struct gw_json_doc *doc; /* NULL: not asked for */
	int key_escaped;         /* the last string read had an escape */
	int lossy;               /* a lone surrogate escape became U+FFFD */
	int doc_bad;             /* the text does not say what the tree does */
};

/* Note the first failure; always -1. */
static int
p_fail(struct parse *ps, enum perr e, const unsigned char *at)
{
	if (ps->err == PE_NONE) {
		ps->err = at >= ps->s.end ? PE_END : e;
		ps->at = (size_t)(at - ps->buf);
	}
	return -1;
}

/* json-c reports allocation failure as NULL: abort, as gw_xmalloc does. */
static json_object *
made(json_object *o)
{
	GW_ASSERT(o != NULL);
	return o;
}

static unsigned
hex4(const unsigned char *p)
{
	unsigned v = 0;
	int i;

	for (i = 0; i < 4; i++)
		v = v << 4 |
		    (unsigned)(SC_DIGIT(p[i]) ? p[i] - '0'
		                              : (p[i] | 0x20) - 'a' + 10);
	return v;
}

static void
put_utf8(struct gw_buf *b, unsigned cp)
{
	char u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | cp >> 6);
		u[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | cp >> 12);
		u[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | cp >> 18);
		u[1] = (char)(0x80 | (cp >> 12 & 0x3f));
		u[2] = (char)(0x80 | (cp >> 6 & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	gw_buf_append(b, u, n);
}

#define IS_HIGH_SURROGATE(u) (((u)&0xfc00) == 0xd800)
#define IS_LOW_SURROGATE(u) (((u)&0xfc00) == 0xdc00)

/*
 * "\uXXXX" at p (4 hex digits checked) into b, and a low surrogate escape
 * after a high one; returns the bytes of text consumed after the "\u".
 */
static size_t
p_unicode(struct gw_buf *b, const unsigned char *p, const unsigned char *end,
    int *lossy)
{
	unsigned u = hex4(p), lo;

	if (IS_HIGH_SURROGATE(u) && end - p >= 10 && p[4] == '\\' &&
	    p[5] == 'u' && SC_XDIGIT(p[6]) && SC_XDIGIT(p[7]) &&
	    SC_XDIGIT(p[8]) && SC_XDIGIT(p[9]) &&
	    IS_LOW_SURROGATE(lo = hex4(p + 6))) {
		put_utf8(b, ((u & 0x3ff) << 10) + (lo & 0x3ff) + 0x10000);
		return 10;
	}
	if (IS_HIGH_SURROGATE(u) || IS_LOW_SURROGATE(u)) {
		*lossy = 1;
		u = 0xfffd;
	}
	put_utf8(b, u);
	return 4;
}

/*
 * A string (at its opening quote). *str and *len: its bytes, in the
 * document when it has no escapes, else unescaped into ps->text (valid
 * until the next string). Neither is NUL-terminated at *len.
 */
static int
p_string(struct parse *ps, const char **str, size_t *len)
{
	const unsigned char *p = ++ps->s.p, *end = ps->s.end, *run = p;
	int escaped = 0, n;

	while (p < end) {
		unsigned c;

		p += plain_run(p, end);
		if (p == end)
			break;
		c = *p;

		if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
			p++;
			continue;
		}
		if (c == '"') {
			if (escaped) {
				gw_buf_append(
				    &ps->text, run, (size_t)(p - run));
				*str = ps->text.p;
				*len = ps->text.len;
			} else {
				*str = (const char *)run;
				*len = (size_t)(p - run);
			}
			ps->s.p = p + 1;
			ps->key_escaped = escaped;
			return 0;
		}
		if (c < 0x20)
			return p_fail(ps, PE_CONTROL, p);
		if (c >= 0x80) {
			if ((n = sc_utf8(p, end)) == 0)
				return p_fail(ps, PE_UTF8, p);
			p += n;
			continue;
		}
		/* A backslash. */
		if (!escaped) {
			gw_buf_reset(&ps->text, 64 * 1024);
			escaped = 1;
		}
		gw_buf_append(&ps->text, run, (size_t)(p - run));
		if (end - p < 2)
			return p_fail(ps, PE_END, end);
		switch (p[1]) {
		case '"':
		case '\\':
		case '/':
			gw_buf_append(&ps->text, p + 1, 1);
			break;
		case 'b':
			gw_buf_append(&ps->text, "\b", 1);
			break;
		case 'f':
			gw_buf_append(&ps->text, "\f", 1);
			break;
		case 'n':
			gw_buf_append(&ps->text, "\n", 1);
			break;
		case 'r':
			gw_buf_append(&ps->text, "\r", 1);
			break;
		case 't':
			gw_buf_append(&ps->text, "\t", 1);
			break;
		case 'u':
			for (n = 2; n < 6; n++)
				if (p + n >= end || !SC_XDIGIT(p[n]))
					return p_fail(ps, PE_ESCAPE, p + n);
			/* Past "\u" and what p_unicode read; +2 below. */
			p += p_unicode(&ps->text, p + 2, end, &ps->lossy);
			break;
		default:
			return p_fail(ps, PE_ESCAPE, p + 1);
		}
		p += 2;
		run = p;
	}
	return p_fail(ps, PE_END, end);
}

/*
 * A number, as json-c makes it: an integer that fits int64 as one, a
 * larger positive one as uint64 (UINT64_MAX beyond), a more negative one
 * INT64_MIN; anything else a double that keeps its text.
 */
static int
p_number(struct parse *ps, json_object **out)
{
	const unsigned char *start = ps->s.p, *p = start, *end = ps->s.end;
	uint64_t mag = 0;
	unsigned d;
	int neg = 0, over = 0, is_int = 1;
	char small[64], *text;
	size_t n;
	double v;

	if (*p == '-') {
		neg = 1;
		p++;
		if (end - p >= 8 && memcmp(p, "Infinity", 8) == 0)
			return p_fail(ps, PE_NONFINITE, start);
	}
	if (p >= end || !SC_DIGIT(*p))
		return p_fail(ps, p == start ? PE_CHAR : PE_NUMBER, p);
	if (*p == '0')
		p++;
	else
		for (; p < end && SC_DIGIT(*p); p++) {
			d = *p - '0';
			if (mag > (UINT64_MAX - d) / 10)
				over = 1;
			else
				mag = mag * 10 + d;
		}
	if (p < end && *p == '.') {
		is_int = 0;
		if (++p >= end || !SC_DIGIT(*p))
			return p_fail(ps, PE_NUMBER, p);
		while (p < end && SC_DIGIT(*p))
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		is_int = 0;
		if (++p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || !SC_DIGIT(*p))
			return p_fail(ps, PE_NUMBER, p);
		while (p < end && SC_DIGIT(*p))
			p++;
	}
	ps->s.p = p;
	if (is_int) {
		if (!neg)
			*out = over || mag > INT64_MAX
			           ? json_object_new_uint64(
			                 over ? UINT64_MAX : mag)
			           : json_object_new_int64((int64_t)mag);
		else
			*out = json_object_new_int64(
			    over || mag >= (uint64_t)INT64_MAX + 1
			        ? INT64_MIN
			        : -(int64_t)mag);
		made(*out);
		return 0;
	}
	/* strtod needs a C string: the digits, copied. */
	n = (size_t)(p - start);
	text = n < sizeof(small) ? small : gw_xmalloc(n + 1);
	memcpy(text, start, n);
	text[n] = '\0';
	v = strtod(text, NULL);
	if (isfinite(v))
		*out = made(json_object_new_double_s(v, text));
	if (text != small)
		free(text);
	return isfinite(v) ? 0 : p_fail(ps, PE_NONFINITE, start);
}

/* Literal word at the cursor ("true", "NaN", ...): 1 and past it. */
static int
p_word(struct parse *ps, const char *word, size_t n)
{
	if ((size_t)(ps->s.end - ps->s.p) < n || memcmp(ps->s.p, word, n) != 0)
		return 0;
	ps->s.p += n;
	return 1;
}

static int p_value(struct parse *ps, int depth, json_object **out);

/* An object's '}' taken: the top one's place noted. Always 0. */
static int
members_end(struct parse *ps, int depth)
{
	if (depth == 1 && ps->doc != NULL)
		ps->doc->close_at = (size_t)(ps->s.p - 1 - ps->buf);
	return 0;
}

/* The members of an object ('{' already taken) into o. */
static int
p_members(struct parse *ps, int depth, json_object *o)
{
	struct scan *s = &ps->s;
	json_object *v;
	const unsigned char *at = NULL;
	const char *k;
	char small[64], *key;
	size_t klen;
	int r, n;

	if (!sc_ws(s))
		return p_fail(ps, PE_END, s->p);
	if (sc_take(s, '}'))
		return members_end(ps, depth);
	for (;;) {
		if (*s->p != '"')
			return p_fail(ps, PE_CHAR, s->p);
		if (p_string(ps, &k, &klen) < 0)
			return -1;
		if (ps->key_escaped)
			ps->doc_bad = 1;
		/* The key outlives the value's strings: copied. */
		key = klen < sizeof(small) ? small : gw_xmalloc(klen + 1);
		memcpy(key, k, klen);
		key[klen] = '\0';
		v = NULL;
		r = !sc_ws(s) || !sc_take(s, ':') ? p_fail(ps, PE_CHAR, s->p)
		                                  : 0;
		if (r == 0) {
			(void)sc_ws(s); /* p_value says if the text ends */
			at = s->p;
			r = p_value(ps, depth + 1, &v);
		}
		if (r == 0) {
			n = json_object_object_length(o);
			GW_ASSERT(json_object_object_add(o, key, v) == 0);
			if (json_object_object_length(o) == n)
				ps->doc_bad = 1; /* a key twice */
			if (depth == 1 && ps->doc != NULL &&
			    strcmp(key, "model") == 0 &&
			    json_object_is_type(v, json_type_string)) {
				ps->doc->model_at = (size_t)(at - ps->buf);
				ps->doc->model_end = (size_t)(s->p - ps->buf);
			}
		} else
			json_object_put(v); /* a container left half-built */
		if (key != small)
			free(key);
		if (r < 0)
			return -1;
		if (!sc_ws(s))
			return p_fail(ps, PE_END, s->p);
		if (sc_take(s, '}'))
			return members_end(ps, depth);
		if (!sc_take(s, ',') || !sc_ws(s))
			return p_fail(ps, PE_CHAR, s->p);
	}
}

/* The elements of an array ('[' already taken) into a. */
static int
p_elements(struct parse *ps, int depth, json_object *a)
{
	struct scan *s = &ps->s;
	json_object *v;

	if (!sc_ws(s))
		return p_fail(ps, PE_END, s->p);
	if (sc_take(s, ']'))
		return 0;
	for (;;) {
		v = NULL;
		if (p_value(ps, depth + 1, &v) < 0) {
			json_object_put(v); /* a container left half-built */
			return -1;
		}
		GW_ASSERT(json_object_array_add(a, v) == 0);
		if (!sc_ws(s))
			return p_fail(ps, PE_END, s->p);
		if (sc_take(s, ']'))
			return 0;
		if (!sc_take(s, ','))
			return p_fail(ps, PE_CHAR, s->p);
	}
}

/* One value into *out (a new reference; NULL for null). */
static int
p_value(struct parse *ps, int depth, json_object **out)
{
	struct scan *s = &ps->s;
	const unsigned char *at;
	const char *str;
	size_t len;

	if (!sc_ws(s))
		return p_fail(ps, PE_END, s->p);
	if (depth > JSON_MAX_DEPTH)
		return p_fail(ps, PE_DEPTH, s->p);
	/* Each value is built: bounded before it is, not after. */
	if (ps->values-- == 0)
		return p_fail(ps, PE_TOOMANY, s->p);
	switch (*s->p) {
	case '{':
		s->p++;
		*out = made(json_object_new_object());
		return p_members(ps, depth, *out);
	case '[':
		s->p++;
		*out = made(json_object_new_array());
		return p_elements(ps, depth, *out);
	case '"':
		if (p_string(ps, &str, &len) < 0)
			return -1;
		*out = made(json_object_new_string_len(str, (int)len));
		return 0;
	case 't':
		if (!p_word(ps, "true", 4))
			break;
		*out = made(json_object_new_boolean(1));
		return 0;
	case 'f':
		if (!p_word(ps, "false", 5))
			break;
		*out = made(json_object_new_boolean(0));
		return 0;
	case 'n':
		if (!p_word(ps, "null", 4))
			break;
		*out = NULL;
		return 0;
	case 'N':
	case 'I':
		at = s->p;
		if (p_word(ps, "NaN", 3) || p_word(ps, "Infinity", 8))
			return p_fail(ps, PE_NONFINITE, at);
		break;
	default:
		return p_number(ps, out);
	}
	return p_fail(ps, PE_CHAR, s->p);
}

/* The client's message for a failed parse. */
static void
p_describe(const struct parse *ps, char *msg, size_t msglen)
{
	switch (ps->err) {
	case PE_END:
		snprintf(msg, msglen,
		    "Invalid JSON in request body: unexpected end of input");
		break;
	case PE_DEPTH:
		snprintf(msg, msglen,
		    "Invalid JSON in request body: nested deeper than %d at "
		    "byte %zu",
		    JSON_MAX_DEPTH, ps->at);
		break;
	case PE_TOOMANY:
		snprintf(msg, msglen,
		    "Request body holds more than %zu JSON values ([gateway] "
		    "max_json_values)",
		    ps->max_values);
		break;
	case PE_NONFINITE:
		snprintf(msg, msglen,
		    "Invalid JSON in request body: NaN and Infinity are not "
		    "numbers (byte %zu)",
		    ps->at);
		break;
	default:
		snprintf(msg, msglen,
		    "Invalid JSON in request body: not strict JSON (RFC 8259) "
		    "at byte %zu: %s",
		    ps->at, perr_what[ps->err]);
		break;
	}
}

enum gw_status
gw_json_parse(
    const char *buf, size_t len, json_object **out, char *msg, size_t msglen)
{
	return gw_json_parse_max(buf, len, 0, out, msg, msglen);
}

enum gw_status
gw_json_parse_max(const char *buf, size_t len, size_t max_values,
    json_object **out, char *msg, size_t msglen)
{
	struct gw_json_doc doc;

	return gw_json_parse_doc(buf, len, max_values, out, &doc, msg, msglen);
}

enum gw_status
gw_json_parse_doc(const char *buf, size_t len, size_t max_values,
    json_object **out, struct gw_json_doc *doc, char *msg, size_t msglen)
{
	struct parse ps = {{NULL, NULL, 0}, NULL, PE_NONE, 0, {NULL, 0, 0},
	    max_values ? max_values : SIZE_MAX, max_values, doc, 0, 0, 0};
	json_object *o = NULL;
	enum gw_status st = GW_E_INVALID;

	memset(doc, 0, sizeof(*doc));
	*out = NULL;
	if (buf != NULL) {
		ps.buf = ps.s.p = (const unsigned char *)buf;
		ps.s.end = ps.buf + len;
	}
	if (buf == NULL || !sc_ws(&ps.s)) {
		snprintf(msg, msglen,
		    "Request body is empty; expected a JSON object");
		goto out;
	}
	if (p_value(&ps, 1, &o) < 0) {
		p_describe(&ps, msg, msglen);
		goto out;
	}
	if (sc_ws(&ps.s)) {
		snprintf(msg, msglen,
		    "Invalid JSON in request body: trailing data at byte %zu",
		    (size_t)(ps.s.p - ps.buf));
		goto out;
	}
	if (o == NULL) {
		snprintf(msg, msglen,
		    "Invalid JSON in request body: null is not a document");
		goto out;
	}
	*out = o;
	o = NULL;
	doc->spliceable = json_object_is_type(*out, json_type_object) &&
	                  !ps.doc_bad && !ps.lossy;
	st = GW_OK;
out:
	json_object_put(o); /* NULL-safe; a tree left half-built */
	gw_buf_fini(&ps.text);
	return st;
}

void
gw_json_splice(struct gw_buf *b, const char *text, size_t len,
    struct gw_json_doc *doc, const char *model, const char *members)
{
	size_t model_end = doc->model_end, close_at = doc->close_at;

	GW_ASSERT(doc->spliceable && model_end > doc->model_at &&
	          close_at >= model_end && close_at < len && b->p != text);
	gw_buf_reset(b, SIZE_MAX); /* the storage kept */
	gw_buf_append(b, text, doc->model_at);
	gw_jw_quote(b, model);
	doc->model_end = b->len;
	gw_buf_append(b, text + model_end, close_at - model_end);
	if (members != NULL) {
		gw_buf_puts(b, ",");
		gw_buf_puts(b, members);
	}
	doc->close_at = b->len;
	gw_buf_append(b, text + close_at, len - close_at);
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

/* s quoted, then sfx (n bytes: ":" after a key, "," after a value). */
static void
jw_quote_then(struct gw_buf *b, const char *s, const char *sfx, size_t sfxn)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s, *run = p;
	const unsigned char *end = p + strlen(s);
	char esc[6] = {'\\', 'u', '0', '0', 0, 0};

	/*
	 * Most strings need no escape: one copy, quotes included. The scan
	 * goes 16 bytes a step up to the tail or a non-ASCII byte (plain
	 * here), then a byte a step.
	 */
	p += plain_run(p, end);
	while (p < end && *p >= 0x20 && *p != '"' && *p != '\\')
		p++;
	if (p == end) {
		size_t n = (size_t)(p - run);
		char *d = gw_buf_extend(b, n + 2 + sfxn);

		d[0] = '"';
		memcpy(d + 1, run, n);
		d[n + 1] = '"';
		memcpy(d + n + 2, sfx, sfxn);
		return;
	}
	gw_buf_append(b, "\"", 1);
	for (; p < end; p++) {
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
	gw_buf_append(b, sfx, sfxn);
}

void
gw_jw_quote(struct gw_buf *b, const char *s)
{
	jw_quote_then(b, s, "", 0);
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

/*
 * A member's name and its colon. Names are ours (literals of this code,
 * none needing an escape): copied as they are, without the escape scan.
 */
static void
jw_key(struct gw_buf *b, const char *key)
{
	size_t n = strlen(key);
	char *d = gw_buf_extend(b, n + 3);

	d[0] = '"';
	memcpy(d + 1, key, n);
	d[n + 1] = '"';
	d[n + 2] = ':';
}

void
gw_jw_str(struct gw_buf *b, const char *key, const char *value)
{
	jw_key(b, key);
	if (value != NULL)
		jw_quote_then(b, value, ",", 1);
	else
		gw_buf_append(b, "null,", 5);
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
	char d[32];
	size_t n;

	jw_key(b, key);
	if (isfinite(v)) {
		n = gw_fmt_g(d, v, 17);
		d[n] = ',';
		gw_buf_append(b, d, n + 1);
	} else
		gw_buf_append(b, "null,", 5);
}

void
gw_jw_bool(struct gw_buf *b, const char *key, int v)
{
	jw_key(b, key);
	if (v)
		gw_buf_append(b, "true,", 5);
	else
		gw_buf_append(b, "false,", 6);
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
	if ((u->id = gw_json_get_str(msg, "id")) != NULL)
		u->id_len = strlen(u->id);
}

/* The end of the string whose opening quote is at p, or NULL. */
static const char *
skim_string(const char *p, const char *end)
{
	for (p++; p < end; p++) {
		if (*p == '\\')
			p++;
		else if (*p == '"')
			return p;
	}
	return NULL;
}

int
gw_json_top_id(const char *buf, size_t len, const char **id, size_t *id_len)
{
	const char *p = buf, *end = buf + len, *q;
	int depth = 0, key = 0;

	for (; p < end; p++) {
		switch (*p) {
		case '{':
			key = ++depth == 1;
			break;
		case '[':
			depth++;
			break;
		case '}':
		case ']':
			depth--;
			break;
		case ',':
			key = depth == 1;
			break;
		case '"':
			if ((q = skim_string(p, end)) == NULL)
				return -1;
			if (key && q - p == 3 && p[1] == 'i' && p[2] == 'd') {
				for (p = q + 1;
				     p < end &&
				     (*p == ' ' || *p == ':' || *p == '\t' ||
				         *p == '\n' || *p == '\r');
				     p++)
					;
				if (p >= end || *p != '"' ||
				    (q = skim_string(p, end)) == NULL ||
				    memchr(p, '\\', (size_t)(q - p)) != NULL)
					return -1;
				*id = p + 1;
				*id_len = (size_t)(q - p - 1);
				return 0;
			}
			key = 0;
			p = q;
			break;
		}
	}
	return -1;
}

enum gw_status
gw_json_scan_usage(const char *buf, size_t len, struct gw_json_usage *u)
{
	struct scan s = {
	    (const unsigned char *)buf, (const unsigned char *)buf + len, 0};

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
