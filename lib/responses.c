/* responses.c: the Responses API's body, usage and lack, for the relay. */
#include "responses.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int
absent(json_object *v)
{
	return v == NULL || json_object_is_type(v, json_type_null);
}

enum gw_status
gw_responses_validate(json_object *body, struct gw_verr *e)
{
	json_object *v;
	enum gw_status st;

	if (body == NULL || !json_object_is_type(body, json_type_object))
		return gw_validate_fail(
		    e, "", "Request body must be a JSON object");
	if ((st = gw_validate_need_string(body, "model", e)) != GW_OK)
		return st;
	v = gw_json_get(body, "input");
	if (absent(v) && absent(gw_json_get(body, "previous_response_id")))
		return gw_validate_fail(e, "input", "'input' is required");
	if (!absent(v) && !json_object_is_type(v, json_type_string) &&
	    !json_object_is_type(v, json_type_array))
		return gw_validate_fail(e, "input",
		    "'input' must be a string or an array of input items");
	v = gw_json_get(body, "instructions");
	if (!absent(v) && !json_object_is_type(v, json_type_string))
		return gw_validate_fail(
		    e, "instructions", "'instructions' must be a string");
	v = gw_json_get(body, "stream");
	if (!absent(v) && !json_object_is_type(v, json_type_boolean))
		return gw_validate_fail(
		    e, "stream", "'stream' must be a boolean");
	v = gw_json_get(body, "max_output_tokens");
	if (!absent(v) && (!json_object_is_type(v, json_type_int) ||
	                      json_object_get_int64(v) < 1))
		return gw_validate_fail(e, "max_output_tokens",
		    "'max_output_tokens' must be an integer of at least 1");
	if ((st = gw_validate_number_in(body, "temperature", 0, 2, e)) !=
	        GW_OK ||
	    (st = gw_validate_number_in(body, "top_p", 0, 1, e)) != GW_OK)
		return st;
	return GW_OK;
}

static const char *const usage_keys[3] = {
    "input_tokens", "output_tokens", "total_tokens"};

/* Usage and id of one response object; 1 when it had a usage object. */
static int
from_response(json_object *o, struct gw_json_usage *u)
{
	json_object *us = gw_json_get(o, "usage");
	const char *id = gw_json_get_str(o, "id");
	int i;

	if (id != NULL && u->id == NULL) {
		u->id = id;
		u->id_len = strlen(id);
	}
	if (us == NULL || !json_object_is_type(us, json_type_object))
		return 0;
	u->known = 1;
	for (i = 0; i < 3; i++)
		u->has[i] = gw_json_get_int(us, usage_keys[i], &u->v[i]) == 0;
	return 1;
}

void
gw_responses_get_usage(json_object *msg, struct gw_json_usage *u)
{
	json_object *resp;

	memset(u, 0, sizeof(*u));
	if (msg == NULL)
		return;
	/* An event names its kind; the answer itself is "object":"response". */
	resp = gw_json_get(msg, "response");
	if (resp != NULL && json_object_is_type(resp, json_type_object)) {
		from_response(resp, u);
		return;
	}
	if (gw_json_get_str(msg, "type") == NULL)
		from_response(msg, u);
}

int
gw_responses_unsupported(int status, const char *body, size_t len)
{
	json_object *o = NULL, *err;
	const char *code = NULL, *param = NULL;
	char msg[64];
	int about_model = 0;

	if (status == 405 || status == 501)
		return 1;
	if (status != 404)
		return 0;
	/* A 404 in the OpenAI shape about the model: the model is missing. */
	if (body != NULL && len > 0 &&
	    gw_json_parse(body, len, &o, msg, sizeof(msg)) == GW_OK) {
		err = gw_json_get(o, "error");
		code = gw_json_get_str(err, "code");
		param = gw_json_get_str(err, "param");
		about_model =
		    (code != NULL && strcmp(code, "model_not_found") == 0) ||
		    (param != NULL && strcmp(param, "model") == 0);
	}
	json_object_put(o);
	return !about_model;
}

void
gw_responses_output_text(json_object *answer,
    void (*add)(void *arg, const char *s, size_t n), void *arg)
{
	json_object *out = gw_json_get(answer, "output"), *item, *content, *p;
	const char *type, *text;
	size_t i, j, n, m;

	n = out != NULL && json_object_is_type(out, json_type_array)
	        ? json_object_array_length(out)
	        : 0;
	for (i = 0; i < n; i++) {
		item = json_object_array_get_idx(out, i);
		content = gw_json_get(item, "content");
		m = content != NULL &&
		            json_object_is_type(content, json_type_array)
		        ? json_object_array_length(content)
		        : 0;
		for (j = 0; j < m; j++) {
			p = json_object_array_get_idx(content, j);
			type = gw_json_get_str(p, "type");
			text = gw_json_get_str(p, "text");
			if (type != NULL && strcmp(type, "output_text") == 0 &&
			    text != NULL)
				add(arg, text, strlen(text));
		}
	}
}
