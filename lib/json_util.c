/* json_util.c: strict body parsing and typed accessors over json-c. */
#include "json_util.h"

#include <math.h>
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
	tok = json_tokener_new_ex(JSON_MAX_DEPTH);
	json_tokener_set_flags(
	    tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
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
	*out = o;
	o = NULL;
	st = GW_OK;
out:
	json_object_put(o);
	json_tokener_free(tok);
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
	gw_buf_append(b, ":", 1);
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
	gw_buf_printf(b, "%lld,", (long long)v);
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
