/* rerank.c: the rerank request body (Jina / Cohere shape), checked. */
#include "rerank.h"

#include <stdint.h>
#include <stdio.h>

#include "json_util.h"

enum gw_status
gw_rerank_validate(json_object *body, struct gw_verr *e)
{
	json_object *docs, *d, *v;
	enum gw_status st;
	size_t i, n;
	int64_t top;

	if (body == NULL || !json_object_is_type(body, json_type_object))
		return gw_validate_fail(
		    e, "", "Request body must be a JSON object");
	if ((st = gw_validate_need_string(body, "model", e)) != GW_OK ||
	    (st = gw_validate_need_string(body, "query", e)) != GW_OK)
		return st;
	docs = gw_json_get(body, "documents");
	if (docs == NULL || json_object_is_type(docs, json_type_null))
		return gw_validate_fail(
		    e, "documents", "'documents' is required");
	if (!json_object_is_type(docs, json_type_array))
		return gw_validate_fail(e, "documents",
		    "'documents' must be an array of strings or {\"text\"} "
		    "objects");
	n = json_object_array_length(docs);
	if (n == 0)
		return gw_validate_fail(
		    e, "documents", "'documents' must not be empty");
	if (n > GW_RERANK_DOCS_MAX)
		return gw_validate_fail(e, "documents",
		    "'documents' holds %zu entries; at most %d", n,
		    GW_RERANK_DOCS_MAX);
	for (i = 0; i < n; i++) {
		d = json_object_array_get_idx(docs, i);
		if (json_object_is_type(d, json_type_string))
			continue;
		v = gw_json_get(d, "text");
		if (json_object_is_type(d, json_type_object) && v != NULL &&
		    json_object_is_type(v, json_type_string))
			continue;
		return gw_validate_fail(e, "documents",
		    "'documents[%zu]' must be a string or an object with a "
		    "string 'text'",
		    i);
	}
	v = gw_json_get(body, "top_n");
	if (v != NULL && !json_object_is_type(v, json_type_null)) {
		if (!json_object_is_type(v, json_type_int))
			return gw_validate_fail(
			    e, "top_n", "'top_n' must be an integer");
		top = json_object_get_int64(v);
		if (top < 1 || (uint64_t)top > n)
			return gw_validate_fail(e, "top_n",
			    "'top_n' must be between 1 and the number of "
			    "documents (%zu), got %lld",
			    n, (long long)top);
	}
	v = gw_json_get(body, "return_documents");
	if (v != NULL && !json_object_is_type(v, json_type_null) &&
	    !json_object_is_type(v, json_type_boolean))
		return gw_validate_fail(e, "return_documents",
		    "'return_documents' must be a boolean");
	return GW_OK;
}

size_t
gw_rerank_text_chars(json_object *body)
{
	json_object *docs = gw_json_get(body, "documents"), *d, *q;
	size_t n = 0, i, len;

	q = gw_json_get(body, "query");
	if (q != NULL && json_object_is_type(q, json_type_string))
		n += (size_t)json_object_get_string_len(q);
	len = docs != NULL && json_object_is_type(docs, json_type_array)
	          ? json_object_array_length(docs)
	          : 0;
	for (i = 0; i < len; i++) {
		d = json_object_array_get_idx(docs, i);
		if (!json_object_is_type(d, json_type_string))
			d = gw_json_get(d, "text");
		if (d != NULL && json_object_is_type(d, json_type_string))
			n += (size_t)json_object_get_string_len(d);
	}
	return n;
}
