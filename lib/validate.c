/* validate.c: types and ranges of OpenAI request fields. */
#include "validate.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "json_util.h"

enum gw_status
gw_validate_fail(struct gw_verr *e, const char *param, const char *fmt, ...)
{
	va_list ap;

	snprintf(e->param, sizeof(e->param), "%s", param);
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return GW_E_INVALID;
}

static int
is_number(json_object *v)
{
	return json_object_is_type(v, json_type_int) ||
	       json_object_is_type(v, json_type_double);
}

enum gw_status
gw_validate_number_in(
    json_object *body, const char *key, double lo, double hi, struct gw_verr *e)
{
	json_object *v = gw_json_get(body, key);
	double d;

	if (v == NULL || json_object_is_type(v, json_type_null))
		return GW_OK;
	if (!is_number(v))
		return gw_validate_fail(e, key, "'%s' must be a number", key);
	d = json_object_get_double(v);
	if (d < lo || d > hi)
		return gw_validate_fail(e, key,
		    "'%s' must be between %g and %g, got %g", key, lo, hi, d);
	return GW_OK;
}

enum gw_status
gw_validate_need_string(json_object *body, const char *key, struct gw_verr *e)
{
	json_object *v = gw_json_get(body, key);

	if (v == NULL || json_object_is_type(v, json_type_null))
		return gw_validate_fail(e, key, "'%s' is required", key);
	if (!json_object_is_type(v, json_type_string))
		return gw_validate_fail(e, key, "'%s' must be a string", key);
	if (json_object_get_string_len(v) == 0)
		return gw_validate_fail(e, key, "'%s' must not be empty", key);
	return GW_OK;
}

/* An optional integer field within [lo, hi]. */
static enum gw_status
integer_min(json_object *body, const char *key, int64_t lo, int64_t hi,
    struct gw_verr *e)
{
	json_object *v = gw_json_get(body, key);
	int64_t n;

	if (v == NULL || json_object_is_type(v, json_type_null))
		return GW_OK;
	if (!json_object_is_type(v, json_type_int))
		return gw_validate_fail(e, key, "'%s' must be an integer", key);
	n = json_object_get_int64(v);
	if (n < lo)
		return gw_validate_fail(e, key,
		    "'%s' must be at least %lld, got %lld", key, (long long)lo,
		    (long long)n);
	if (n > hi)
		return gw_validate_fail(e, key,
		    "'%s' must be at most %lld, got %lld", key, (long long)hi,
		    (long long)n);
	return GW_OK;
}

static enum gw_status
optional_type(json_object *body, const char *key, enum json_type t,
    const char *what, struct gw_verr *e)
{
	json_object *v = gw_json_get(body, key);

	if (v == NULL || json_object_is_type(v, json_type_null) ||
	    json_object_is_type(v, t))
		return GW_OK;
	return gw_validate_fail(e, key, "'%s' must be %s", key, what);
}

static enum gw_status
check_model(json_object *body, struct gw_verr *e)
{
	json_object *v;

	if (!json_object_is_type(body, json_type_object))
		return gw_validate_fail(
		    e, "", "Request body must be a JSON object");
	v = gw_json_get(body, "model");
	if (v == NULL)
		return gw_validate_fail(e, "model", "'model' is required");
	if (!json_object_is_type(v, json_type_string))
		return gw_validate_fail(e, "model", "'model' must be a string");
	if (json_object_get_string_len(v) == 0)
		return gw_validate_fail(
		    e, "model", "'model' must not be empty");
	return GW_OK;
}

/* Sampling fields shared by chat and completions. */
static enum gw_status
check_sampling(json_object *body, struct gw_verr *e)
{
	json_object *stop;
	enum gw_status st;
	size_t i, n;

	if ((st = gw_validate_number_in(body, "temperature", 0, 2, e)) !=
	        GW_OK ||
	    (st = gw_validate_number_in(body, "top_p", 0, 1, e)) != GW_OK ||
	    (st = gw_validate_number_in(body, "presence_penalty", -2, 2, e)) !=
	        GW_OK ||
	    (st = gw_validate_number_in(body, "frequency_penalty", -2, 2, e)) !=
	        GW_OK ||
	    (st = integer_min(body, "max_tokens", 1, INT64_MAX, e)) != GW_OK ||
	    (st = integer_min(
	         body, "max_completion_tokens", 1, INT64_MAX, e)) != GW_OK ||
	    (st = integer_min(body, "n", 1, 128, e)) != GW_OK ||
	    (st = integer_min(body, "seed", INT64_MIN, INT64_MAX, e)) !=
	        GW_OK ||
	    (st = optional_type(
	         body, "stream", json_type_boolean, "a boolean", e)) != GW_OK ||
	    (st = optional_type(body, "stream_options", json_type_object,
	         "an object", e)) != GW_OK ||
	    (st = optional_type(
	         body, "user", json_type_string, "a string", e)) != GW_OK)
		return st;
	stop = gw_json_get(body, "stop");
	if (stop != NULL && !json_object_is_type(stop, json_type_null) &&
	    !json_object_is_type(stop, json_type_string)) {
		if (!json_object_is_type(stop, json_type_array))
			return gw_validate_fail(e, "stop",
			    "'stop' must be a string or an array of strings");
		n = json_object_array_length(stop);
		if (n > 4)
			return gw_validate_fail(
			    e, "stop", "'stop' takes at most 4 sequences");
		for (i = 0; i < n; i++)
			if (!json_object_is_type(
			        json_object_array_get_idx(stop, i),
			        json_type_string))
				return gw_validate_fail(e, "stop",
				    "'stop' must be a string or an array of "
				    "strings");
	}
	return GW_OK;
}

static const char *const roles[] = {
    "system", "user", "assistant", "tool", "function", "developer"};

static enum gw_status
check_message(json_object *m, size_t i, struct gw_verr *e)
{
	char p[64];
	json_object *role, *content;
	const char *r;
	size_t k;

	/* The parameter's name is formatted only for an error. */
#define PARAM(suffix) (snprintf(p, sizeof(p), "messages[%zu]" suffix, i), p)
	if (!json_object_is_type(m, json_type_object))
		return gw_validate_fail(
		    e, PARAM(""), "'%s' must be an object", p);
	role = gw_json_get(m, "role");
	if (role == NULL || !json_object_is_type(role, json_type_string))
		return gw_validate_fail(e, PARAM(".role"),
		    "'%s' is required and must be a string", p);
	r = json_object_get_string(role);
	for (k = 0; k < sizeof(roles) / sizeof(roles[0]); k++)
		if (strcmp(r, roles[k]) == 0)
			break;
	if (k == sizeof(roles) / sizeof(roles[0]))
		return gw_validate_fail(e, PARAM(".role"),
		    "'%s' must be one of system, user, assistant, tool, "
		    "function, developer; got '%.40s'",
		    p, r);
	content = gw_json_get(m, "content");
	if (content == NULL || json_object_is_type(content, json_type_null)) {
		/* Only an assistant turn (tool calls) may omit content. */
		if (strcmp(r, "assistant") == 0)
			return GW_OK;
		return gw_validate_fail(e, PARAM(".content"),
		    "'%s' is required for role '%s'", p, r);
	}
	if (!json_object_is_type(content, json_type_string) &&
	    !json_object_is_type(content, json_type_array))
		return gw_validate_fail(e, PARAM(".content"),
		    "'%s' must be a string or an array of parts", p);
#undef PARAM
	return GW_OK;
}

enum gw_status
gw_validate_chat(json_object *body, struct gw_verr *e)
{
	json_object *msgs;
	enum gw_status st;
	size_t i, n;

	if ((st = check_model(body, e)) != GW_OK)
		return st;
	msgs = gw_json_get(body, "messages");
	if (msgs == NULL)
		return gw_validate_fail(
		    e, "messages", "'messages' is required");
	if (!json_object_is_type(msgs, json_type_array))
		return gw_validate_fail(
		    e, "messages", "'messages' must be an array");
	n = json_object_array_length(msgs);
	if (n == 0)
		return gw_validate_fail(
		    e, "messages", "'messages' must not be empty");
	for (i = 0; i < n; i++)
		if ((st = check_message(
		         json_object_array_get_idx(msgs, i), i, e)) != GW_OK)
			return st;
	if ((st = integer_min(body, "top_logprobs", 0, 20, e)) != GW_OK ||
	    (st = optional_type(body, "logprobs", json_type_boolean,
	         "a boolean", e)) != GW_OK ||
	    (st = optional_type(
	         body, "tools", json_type_array, "an array", e)) != GW_OK ||
	    (st = optional_type(body, "response_format", json_type_object,
	         "an object", e)) != GW_OK)
		return st;
	return check_sampling(body, e);
}

/* A string, or a non-empty array of strings, integers or integer arrays. */
static enum gw_status
check_text_input(json_object *body, const char *key, int allow_empty_string,
    struct gw_verr *e)
{
	json_object *v = gw_json_get(body, key), *it;
	size_t i, n;

	if (v == NULL || json_object_is_type(v, json_type_null))
		return gw_validate_fail(e, key, "'%s' is required", key);
	if (json_object_is_type(v, json_type_string)) {
		if (!allow_empty_string && json_object_get_string_len(v) == 0)
			return gw_validate_fail(
			    e, key, "'%s' must not be empty", key);
		return GW_OK;
	}
	if (!json_object_is_type(v, json_type_array))
		return gw_validate_fail(e, key,
		    "'%s' must be a string or an array of strings or token "
		    "arrays",
		    key);
	n = json_object_array_length(v);
	if (n == 0)
		return gw_validate_fail(e, key, "'%s' must not be empty", key);
	for (i = 0; i < n; i++) {
		it = json_object_array_get_idx(v, i);
		if (json_object_is_type(it, json_type_string) ||
		    json_object_is_type(it, json_type_int))
			continue;
		if (json_object_is_type(it, json_type_array) &&
		    json_object_array_length(it) > 0)
			continue;
		return gw_validate_fail(e, key,
		    "'%s' must be a string or an array of strings or token "
		    "arrays",
		    key);
	}
	return GW_OK;
}

enum gw_status
gw_validate_completion(json_object *body, struct gw_verr *e)
{
	enum gw_status st;

	if ((st = check_model(body, e)) != GW_OK ||
	    (st = check_text_input(body, "prompt", 1, e)) != GW_OK ||
	    (st = integer_min(body, "logprobs", 0, 5, e)) != GW_OK ||
	    (st = integer_min(body, "best_of", 1, 20, e)) != GW_OK ||
	    (st = optional_type(
	         body, "echo", json_type_boolean, "a boolean", e)) != GW_OK ||
	    (st = optional_type(
	         body, "suffix", json_type_string, "a string", e)) != GW_OK)
		return st;
	return check_sampling(body, e);
}

enum gw_status
gw_validate_embedding(json_object *body, struct gw_verr *e)
{
	const char *fmt;
	enum gw_status st;

	if ((st = check_model(body, e)) != GW_OK ||
	    (st = check_text_input(body, "input", 0, e)) != GW_OK ||
	    (st = integer_min(body, "dimensions", 1, INT64_MAX, e)) != GW_OK ||
	    (st = optional_type(
	         body, "user", json_type_string, "a string", e)) != GW_OK)
		return st;
	if (gw_json_get(body, "encoding_format") != NULL) {
		fmt = gw_json_get_str(body, "encoding_format");
		if (fmt == NULL ||
		    (strcmp(fmt, "float") != 0 && strcmp(fmt, "base64") != 0))
			return gw_validate_fail(e, "encoding_format",
			    "'encoding_format' must be 'float' or 'base64'");
	}
	return GW_OK;
}

enum gw_status
gw_validate_metadata(json_object *body, size_t max_bytes, struct gw_verr *e)
{
	json_object *m = gw_json_get(body, "metadata");
	size_t len = 0;

	if (m == NULL)
		return GW_OK;
	json_object_to_json_string_length(m, JSON_C_TO_STRING_PLAIN, &len);
	if (len <= max_bytes)
		return GW_OK;
	/* Refused, it is not kept either: the spend row reads the body. */
	json_object_object_del(body, "metadata");
	return gw_validate_fail(e, "metadata",
	    "'metadata' must be at most %zu bytes as JSON, got %zu "
	    "([gateway] max_metadata_bytes)",
	    max_bytes, len);
}
