/*
 * redact.c: key-shaped substrings replaced in foreign text.
 *
 * One pass, left to right; at each word start (a character not preceded
 * by a letter or digit, so "risk-assessment" or "task-12345678" never
 * match "sk-") the shapes are tried in turn and the first that matches is
 * replaced. What counts as a token: a run long enough with a digit in it
 * (real keys are random), or long enough that no word is that long.
 *
 * Linear in the length of the text: the scans that may fail are bounded
 * (20 characters for a key) or not tried again inside a run that failed
 * (a JWT's first part, base64).
 */
#include "redact.h"

#include <ctype.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "json_util.h"
#include "sse.h"

#define MARK "[redacted]"
#define KEY_MIN 8  /* with a digit */
#define KEY_ANY 20 /* without */
#define HEX_MIN 32 /* a SHA-256 is 64, an MD5 32 */
#define B64_MIN 40 /* an AWS secret key is 40 */

static int
is_alnum(char c)
{
	return isalnum((unsigned char)c) != 0;
}

/* The characters of a key after its prefix (base64url). */
static int
is_key_char(char c)
{
	return is_alnum(c) || c == '-' || c == '_';
}

/* The characters of an RFC 6750 bearer token. */
static int
is_token_char(char c)
{
	return is_alnum(c) || (c != '\0' && strchr("-._~+/=", c) != NULL);
}

static int
is_hex(char c)
{
	return isxdigit((unsigned char)c) != 0;
}

static int
is_b64(char c)
{
	return is_alnum(c) || c == '+' || c == '/' || c == '_';
}

/* Length of the run of class at s, at most max; *digit if it has one. */
static size_t
run(const char *s, int (*in)(char), size_t max, int *digit)
{
	size_t n = 0;

	*digit = 0;
	for (; n < max && s[n] != '\0' && in(s[n]); n++)
		if (isdigit((unsigned char)s[n]))
			*digit = 1;
	return n;
}

/*
 * A token of class at s that looks secret (KEY_MIN with a digit, or
 * KEY_ANY of anything): its whole length, else 0.
 */
static size_t
token_len(const char *s, int (*in)(char))
{
	int d;
	size_t n = run(s, in, KEY_ANY, &d);

	if (n < KEY_ANY && (n < KEY_MIN || !d))
		return 0;
	return n + run(s + n, in, SIZE_MAX, &d);
}

/*
 * "eyJ<b64url>.eyJ<b64url>.<b64url>": the length, or 0; *tried is the
 * length of its first part (every start inside that fails as well).
 */
static size_t
jwt_len(const char *s, size_t *tried)
{
	size_t n, m;
	int d;

	*tried = 0;
	if (strncmp(s, "eyJ", 3) != 0)
		return 0;
	*tried = n = run(s, is_key_char, SIZE_MAX, &d);
	if (n < 10 || s[n] != '.' || strncmp(s + n + 1, "eyJ", 3) != 0)
		return 0;
	n++;
	m = run(s + n, is_key_char, SIZE_MAX, &d);
	if (m < 10 || s[n + m] != '.')
		return 0;
	n += m + 1;
	return n + run(s + n, is_key_char, SIZE_MAX, &d);
}

/* 32+ hex digits ending at a non-alphanumeric: the length, or 0. */
static size_t
hex_len(const char *s)
{
	int d;
	size_t n = run(s, is_hex, SIZE_MAX, &d);

	return n >= HEX_MIN && !is_alnum(s[n]) ? n : 0;
}

/*
 * 40+ base64 (padded or not) with both cases and a digit, not part of a longer
 * name (a
 * '-' or '.' after it): the length, or 0; *tried is the run's length.
 */
static size_t
b64_len(const char *s, size_t *tried)
{
	size_t n, i;
	int d, up = 0, lo = 0;

	*tried = n = run(s, is_b64, SIZE_MAX, &d);
	for (i = 0; i < 2 && s[n] == '='; i++)
		n++; /* padding */
	if (n < B64_MIN || s[n] == '-' || s[n] == '.')
		return 0;
	for (i = 0; i < n; i++) {
		up |= isupper((unsigned char)s[i]) != 0;
		lo |= islower((unsigned char)s[i]) != 0;
	}
	return up && lo && d ? n : 0;
}

/* Where a failed scan of a JWT or base64 run says to try again. */
struct skips {
	const char *jwt, *b64;
};

/*
 * The secret starting at word start p, its replacement appended to b:
 * its length, or 0 when none starts there.
 */
static size_t
secret_at(const char *p, struct gw_buf *b, struct skips *k)
{
	size_t len, sp, tried;

	if (strncmp(p, "sk-", 3) == 0 &&
	    (len = token_len(p + 3, is_key_char)) > 0) {
		gw_buf_puts(b, "sk-" MARK);
		return 3 + len;
	}
	if (strncasecmp(p, "bearer", 6) == 0 &&
	    (sp = strspn(p + 6, " \t")) > 0 &&
	    (len = token_len(p + 6 + sp, is_token_char)) > 0) {
		gw_buf_append(b, p, 6 + sp);
		gw_buf_puts(b, MARK);
		return 6 + sp + len;
	}
	if (p >= k->jwt) {
		if ((len = jwt_len(p, &tried)) > 0) {
			gw_buf_puts(b, MARK);
			return len;
		}
		k->jwt = p + tried;
	}
	if ((len = hex_len(p)) > 0) {
		gw_buf_puts(b, MARK);
		return len;
	}
	if (p >= k->b64) {
		if ((len = b64_len(p, &tried)) > 0) {
			gw_buf_puts(b, MARK);
			return len;
		}
		k->b64 = p + tried;
	}
	return 0;
}

char *
gw_redact_new(const char *s, int *n)
{
	struct gw_buf b = {0};
	struct skips k = {s, s};
	const char *p = s;
	size_t len;
	int count = 0;

	gw_buf_puts(&b, "");
	while (*p != '\0') {
		/* Inside a word no secret starts. */
		len = p > s && is_alnum(p[-1]) ? 0 : secret_at(p, &b, &k);
		if (len > 0) {
			p += len;
			count++;
		} else {
			gw_buf_append(&b, p++, 1);
		}
	}
	if (n != NULL)
		*n = count;
	return b.p;
}

/* Redact the string member key of o in place: the replacements made. */
static int
redact_member(json_object *o, const char *key)
{
	json_object *v = gw_json_get(o, key);
	char *clean;
	int n = 0;

	if (v == NULL || !json_object_is_type(v, json_type_string))
		return 0;
	clean = gw_redact_new(json_object_get_string(v), &n);
	if (n > 0)
		json_object_object_add(o, key, json_object_new_string(clean));
	free(clean);
	return n;
}

char *
gw_redact_sse_error_new(const char *ev, size_t len, size_t *outlen)
{
	const char *data;
	size_t dlen;

	/* Most events: no "error" in them, nothing parsed. */
	if (gw_sse_data(ev, len, &data, &dlen) != 0 ||
	    !(gw_sse_keys(data, dlen) & GW_SSE_ERROR))
		return NULL;
	return gw_redact_sse_error_data(ev, len, data, dlen, outlen);
}

char *
gw_redact_sse_error_data(
    const char *ev, size_t len, const char *data, size_t dlen, size_t *outlen)
{
	json_object *o = NULL, *e;
	struct gw_buf b = {0};
	char msg[64];
	int n;

	if (gw_json_parse(data, dlen, &o, msg, sizeof(msg)) != GW_OK)
		return NULL;
	e = gw_json_get(o, "error");
	n = e != NULL && json_object_is_type(e, json_type_object)
	        ? redact_member(e, "message")
	        : redact_member(o, "error");
	if (n > 0) {
		gw_buf_append(&b, ev, (size_t)(data - ev));
		gw_buf_puts(&b, gw_json_str(o, NULL));
		gw_buf_append(
		    &b, data + dlen, (size_t)(ev + len - (data + dlen)));
		*outlen = b.len;
	}
	json_object_put(o);
	return b.p;
}
