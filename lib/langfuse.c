/* langfuse.c: Langfuse export in OTLP/HTTP JSON or legacy batch form. */
#include "langfuse.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "http_upstream.h"
#include "json_util.h"
#include "log.h"
#include "sha256.h"
#include "util.h"

/* Langfuse documents 3.5 MB per batch: stay well below. */
#define BATCH_BYTES (3 * 1000 * 1000)
/* One request's events may not take more than this; bigger are cut. */
#define ITEM_BYTES (1000 * 1000)
#define ANSWER_MAX (1024 * 1024)
/* A request Langfuse refused this many times is left alone. */
#define TRIES 3
#define LOCK_KEY "7412903"

static const char queue_sql[] =
    "SELECT (to_jsonb(s) || jsonb_build_object("
    "'lf_input', p.input, 'lf_output', p.output, 'lf_mode', p.record_mode,"
    " 'lf_trace', p.trace,"
    " 'accepted_events', to_jsonb(p.accepted_events),"
    " 'created_us', (extract(epoch FROM p.created_at) * 1e6)::bigint,"
    " 'start_us', (extract(epoch FROM s.start_time) * 1e6)::bigint,"
    " 'end_us', (extract(epoch FROM s.end_time) * 1e6)::bigint,"
    " 'first_us', (extract(epoch FROM s.completion_start_time) * 1e6)"
    "::bigint))::text, p.created_at, p.request_id"
    " FROM request_payloads p JOIN spend_logs s USING (request_id)"
    " WHERE p.exported_at IS NULL AND p.attempts < 10"
    " AND (p.created_at, p.request_id) > ($1::timestamptz, $2)"
    " ORDER BY p.created_at, p.request_id LIMIT $3::bigint";

/* Trace id (32 hex) and span id (16 hex) derived from the request id. */
static void
derive_ids(const char *rid, char trace[33], char span[17])
{
	char h[65];

	gw_sha256_hex(rid, strlen(rid), h);
	memcpy(trace, h, 32);
	trace[32] = '\0';
	memcpy(span, h + 32, 16);
	span[16] = '\0';
}

static const char *
str_or(json_object *row, const char *key, const char *dflt)
{
	const char *s = gw_json_get_str(row, key);

	return s != NULL ? s : dflt;
}

static int
failed_row(json_object *row)
{
	return gw_json_int_or(row, "status", 200) >= 400 ||
	       gw_json_get_str(row, "error_type") != NULL;
}

static void
status_message(json_object *row, char *out, size_t len)
{
	snprintf(out, len, "HTTP %lld%s%s",
	    (long long)gw_json_int_or(row, "status", 0),
	    gw_json_get_str(row, "error_type") ? ": " : "",
	    str_or(row, "error_type", ""));
}

/* Cut a row's input and output when its events would be too big. */
static void
bound_row(json_object *row)
{
	size_t len = 0;
	json_object *m;

	gw_json_str(row, &len);
	if (len <= ITEM_BYTES)
		return;
	m = json_object_new_string("[llmgw: truncated, too large to export]");
	json_object_object_add(row, "lf_input", json_object_get(m));
	json_object_object_add(row, "lf_output", m);
	/* Metadata as big as [gateway] max_metadata_bytes lets it be. */
	gw_json_str(row, &len);
	if (len <= ITEM_BYTES)
		return;
	json_object_object_add(row, "metadata", json_object_new_object());
	if ((m = gw_json_get(row, "lf_trace")) != NULL &&
	    json_object_is_type(m, json_type_object))
		json_object_object_del(m, "trace_metadata");
}

static json_object *
usage_details(json_object *row)
{
	json_object *u = json_object_new_object();

	json_object_object_add(u, "input",
	    json_object_new_int64(gw_json_int_or(row, "prompt_tokens", 0)));
	json_object_object_add(u, "output",
	    json_object_new_int64(gw_json_int_or(row, "completion_tokens", 0)));
	json_object_object_add(u, "total",
	    json_object_new_int64(gw_json_int_or(row, "total_tokens", 0)));
	return u;
}

static json_object *
cost_details(json_object *row)
{
	json_object *c = json_object_new_object();

	json_object_object_add(c, "total",
	    json_object_new_double(gw_json_num_or(row, "spend", 0)));
	return c;
}

/* The row's Langfuse keys (gw_capture_trace), or NULL. */
static json_object *
trace_of(json_object *row)
{
	json_object *t = gw_json_get(row, "lf_trace");

	return t != NULL && json_object_is_type(t, json_type_object) ? t : NULL;
}

static const char *
tstr(json_object *row, const char *key)
{
	json_object *t = trace_of(row);

	return t != NULL ? gw_json_get_str(t, key) : NULL;
}

/* The request joined a trace it does not own (existing_trace_id). */
static int
joins_trace(json_object *row)
{
	json_object *t = trace_of(row), *v;

	return t != NULL && (v = gw_json_get(t, "existing_trace")) != NULL &&
	       json_object_get_boolean(v);
}

static const char *
gen_name(json_object *row)
{
	const char *s = tstr(row, "generation_name");

	return s != NULL ? s : str_or(row, "call_type", "llm");
}

static const char *
trace_name(json_object *row)
{
	const char *s = tstr(row, "trace_name");

	return s != NULL ? s : str_or(row, "call_type", "llm");
}

/* trace_user_id, else the request's "user", else the key's user. */
static const char *
user_of(json_object *row)
{
	const char *s = tstr(row, "user_id");

	return s != NULL ? s : gw_json_get_str(row, "user_id");
}

static const char *
trace_version(json_object *row)
{
	const char *s = tstr(row, "trace_version");

	return s != NULL ? s : tstr(row, "version");
}

/* The request's trace_release, else [langfuse] release. */
static const char *
release_of(json_object *row)
{
	const char *s = tstr(row, "trace_release");

	if (s == NULL)
		s = gw_json_get_str(row, "lf_release");
	return s != NULL && s[0] ? s : NULL;
}

static const char *
environment_of(json_object *row)
{
	const char *s = gw_json_get_str(row, "lf_environment");

	return s != NULL && s[0] ? s : NULL;
}

/* The request's tags (request_tags: metadata.tags, x-litellm-tags). */
static json_object *
tags_of(json_object *row)
{
	json_object *t = gw_json_get(row, "request_tags");

	return t != NULL && json_object_is_type(t, json_type_array) &&
	               json_object_array_length(t) > 0
	           ? t
	           : NULL;
}

static json_object *
model_params(json_object *row)
{
	json_object *t = trace_of(row), *p;

	p = t != NULL ? gw_json_get(t, "model_parameters") : NULL;
	return p != NULL && json_object_is_type(p, json_type_object) &&
	               json_object_object_length(p) > 0
	           ? p
	           : NULL;
}

/* Metadata keys Langfuse gets as fields of their own, not as metadata. */
static int
interpreted(const char *k)
{
	static const char *const keys[] = {"generation_name", "generation_id",
	    "trace_id", "existing_trace_id", "trace_name", "trace_user_id",
	    "session_id", "tags", "trace_metadata", "version", "trace_version",
	    "trace_release", "mask_input", "mask_output",
	    "parent_observation_id"};
	size_t i;

	for (i = 0; i < GW_ARRAY_LEN(keys); i++)
		if (strcmp(k, keys[i]) == 0)
			return 1;
	return 0;
}

/*
 * Metadata Langfuse shows beside the generation. The key is named by its
 * SHA-256 (what spend_logs keeps), never by itself.
 */
static json_object *
lf_metadata(json_object *row)
{
	json_object *m = json_object_new_object(), *v, *rm, *t = trace_of(row);
	static const char *const keys[] = {"request_id", "key_alias", "team_id",
	    "model", "actual_model", "call_type", "status", "stream",
	    "client_disconnected", "usage_estimated", "api_key", "ttft_ms",
	    "response_id"};
	static const char *const tkeys[] = {"trace_id", "generation_id",
	    "queue_wait_ms", "cold_load_ms", "mask_input", "mask_output"};
	static const char *const tnames[] = {"client_trace_id",
	    "client_generation_id", "queue_wait_ms", "cold_load_ms",
	    "mask_input", "mask_output"};
	size_t i;

	for (i = 0; i < GW_ARRAY_LEN(keys); i++) {
		const char *name = keys[i];

		if ((v = gw_json_get(row, keys[i])) == NULL ||
		    json_object_is_type(v, json_type_null))
			continue;
		if (strcmp(name, "model") == 0)
			name = "requested_model";
		else if (strcmp(name, "api_key") == 0)
			name = "user_api_key_hash";
		json_object_object_add(m, name, json_object_get(v));
	}
	for (i = 0; t != NULL && i < GW_ARRAY_LEN(tkeys); i++)
		if ((v = gw_json_get(t, tkeys[i])) != NULL)
			json_object_object_add(
			    m, tnames[i], json_object_get(v));
	if ((v = gw_json_get(row, "metadata")) != NULL &&
	    json_object_is_type(v, json_type_object)) {
		rm = json_object_new_object();
		json_object_object_foreach(v, k, x)
		{
			if (!interpreted(k))
				json_object_object_add(
				    rm, k, json_object_get(x));
		}
		json_object_object_add(m, "request_metadata", rm);
	}
	return m;
}

/*
 * The trace's metadata: the client's trace_metadata, then what says whose
 * request it was (these win: a client cannot pose as another key).
 */
static json_object *
lf_trace_metadata(json_object *row)
{
	json_object *m = json_object_new_object(), *t = trace_of(row), *tm, *v;
	static const char *const keys[] = {"key_alias", "team_id", "model"};
	size_t i;

	tm = t != NULL ? gw_json_get(t, "trace_metadata") : NULL;
	if (tm != NULL && json_object_is_type(tm, json_type_object)) {
		json_object_object_foreach(tm, k, x)
		{
			json_object_object_add(m, k, json_object_get(x));
		}
	}
	for (i = 0; i < GW_ARRAY_LEN(keys); i++) {
		v = gw_json_get(row, keys[i]);
		json_object_object_add(m, i == 2 ? "requested_model" : keys[i],
		    v != NULL ? json_object_get(v) : NULL);
	}
	return m;
}

/* OTLP attribute {key, value:{stringValue|intValue|doubleValue|boolValue}}. */
static void
attr(json_object *attrs, const char *key, const char *type, json_object *val)
{
	json_object *a = json_object_new_object(),
	            *v = json_object_new_object();

	json_object_object_add(v, type, val);
	json_object_object_add(a, "key", json_object_new_string(key));
	json_object_object_add(a, "value", v);
	json_object_array_add(attrs, a);
}

static void
attr_str(json_object *attrs, const char *key, const char *s)
{
	if (s != NULL)
		attr(attrs, key, "stringValue", json_object_new_string(s));
}

static void
attr_int(json_object *attrs, const char *key, int64_t n)
{
	char b[32];

	snprintf(b, sizeof(b), "%lld", (long long)n);
	attr(attrs, key, "intValue", json_object_new_string(b));
}

/* A JSON value as a string attribute (Langfuse parses it back). */
static void
attr_json(json_object *attrs, const char *key, json_object *v)
{
	if (v != NULL && !json_object_is_type(v, json_type_null))
		attr_str(attrs, key, gw_json_str(v, NULL));
}

/* A list of strings as an arrayValue attribute (Langfuse's tags). */
static void
attr_strs(json_object *attrs, const char *key, json_object *list)
{
	json_object *arr = json_object_new_object(),
	            *vals = json_object_new_array(), *v;
	size_t i;

	for (i = 0; i < json_object_array_length(list); i++) {
		const char *s =
		    json_object_get_string(json_object_array_get_idx(list, i));

		v = json_object_new_object();
		json_object_object_add(
		    v, "stringValue", json_object_new_string(s ? s : ""));
		json_object_array_add(vals, v);
	}
	json_object_object_add(arr, "values", vals);
	attr(attrs, key, "arrayValue", arr);
}

/*
 * The trace and span ids of a row: the client's (trace_id or
 * existing_trace_id, generation_id; normalized by gw_capture_trace_id),
 * else derived from the request id.
 */
static void
row_ids(json_object *row, char trace[33], char span[17])
{
	const char *t = tstr(row, "otel_trace_id"),
	           *s = tstr(row, "otel_span_id");

	derive_ids(str_or(row, "request_id", ""), trace, span);
	if (t != NULL && strlen(t) == 32)
		memcpy(trace, t, 33);
	if (s != NULL && strlen(s) == 16)
		memcpy(span, s, 17);
}

static void
ns_string(int64_t us, char out[32])
{
	snprintf(out, 32, "%lld000", (long long)us);
}

char *
gw_lf_otlp_body(json_object *row)
{
	json_object *root = json_object_new_object(), *rs, *res, *rattrs,
	            *scope_spans, *ss, *scope, *spans, *span, *attrs, *status,
	            *tmp;
	char trace[33], sid[17], ns[32], msg[160], ts[32];
	const char *parent;
	int64_t first = gw_json_int_or(row, "first_us", 0);
	int failed = failed_row(row);
	char *out;

	bound_row(row);
	row_ids(row, trace, sid);
	span = json_object_new_object();
	json_object_object_add(span, "traceId", json_object_new_string(trace));
	json_object_object_add(span, "spanId", json_object_new_string(sid));
	if ((parent = tstr(row, "otel_parent_span_id")) != NULL &&
	    strlen(parent) == 16 && strcmp(parent, sid) != 0)
		json_object_object_add(
		    span, "parentSpanId", json_object_new_string(parent));
	json_object_object_add(
	    span, "name", json_object_new_string(gen_name(row)));
	json_object_object_add(span, "kind", json_object_new_int(3));
	ns_string(gw_json_int_or(row, "start_us", 0), ns);
	json_object_object_add(
	    span, "startTimeUnixNano", json_object_new_string(ns));
	ns_string(
	    gw_json_int_or(row, "end_us", gw_json_int_or(row, "start_us", 0)),
	    ns);
	json_object_object_add(
	    span, "endTimeUnixNano", json_object_new_string(ns));
	attrs = json_object_new_array();
	attr_str(attrs, "langfuse.observation.type", "generation");
	attr_str(attrs, "langfuse.observation.model.name",
	    str_or(row, "actual_model", str_or(row, "model", "")));
	attr_str(attrs, "gen_ai.request.model", str_or(row, "model", ""));
	attr_str(attrs, "gen_ai.response.model",
	    str_or(row, "actual_model", str_or(row, "model", "")));
	attr_str(attrs, "gen_ai.operation.name", str_or(row, "call_type", ""));
	attr_int(attrs, "gen_ai.usage.input_tokens",
	    gw_json_int_or(row, "prompt_tokens", 0));
	attr_int(attrs, "gen_ai.usage.output_tokens",
	    gw_json_int_or(row, "completion_tokens", 0));
	tmp = usage_details(row);
	attr_json(attrs, "langfuse.observation.usage_details", tmp);
	json_object_put(tmp);
	tmp = cost_details(row);
	attr_json(attrs, "langfuse.observation.cost_details", tmp);
	json_object_put(tmp);
	attr_json(
	    attrs, "langfuse.observation.model.parameters", model_params(row));
	attr_str(attrs, "langfuse.version",
	    tstr(row, "version") ? tstr(row, "version") : trace_version(row));
	attr_str(attrs, "langfuse.release", release_of(row));
	attr_str(attrs, "langfuse.environment", environment_of(row));
	if (first > 0) {
		gw_time_rfc3339(first, ts);
		attr_str(
		    attrs, "langfuse.observation.completion_start_time", ts);
	}
	attr_json(
	    attrs, "langfuse.observation.input", gw_json_get(row, "lf_input"));
	attr_json(attrs, "langfuse.observation.output",
	    gw_json_get(row, "lf_output"));
	attr_str(
	    attrs, "langfuse.observation.level", failed ? "ERROR" : "DEFAULT");
	status = json_object_new_object();
	if (failed) {
		status_message(row, msg, sizeof(msg));
		attr_str(attrs, "langfuse.observation.status_message", msg);
		json_object_object_add(status, "code", json_object_new_int(2));
		json_object_object_add(
		    status, "message", json_object_new_string(msg));
	} else {
		json_object_object_add(status, "code", json_object_new_int(1));
	}
	tmp = lf_metadata(row);
	attr_json(attrs, "langfuse.observation.metadata", tmp);
	json_object_put(tmp);
	/* A call joining a trace (existing_trace_id) leaves the trace be. */
	if (!joins_trace(row)) {
		attr_str(attrs, "langfuse.trace.name", trace_name(row));
		attr_str(attrs, "user.id", user_of(row));
		attr_str(attrs, "session.id", tstr(row, "session_id"));
		if (tags_of(row) != NULL)
			attr_strs(attrs, "langfuse.trace.tags", tags_of(row));
		tmp = lf_trace_metadata(row);
		attr_json(attrs, "langfuse.trace.metadata", tmp);
		json_object_put(tmp);
	}
	json_object_object_add(span, "attributes", attrs);
	json_object_object_add(span, "status", status);

	spans = json_object_new_array();
	json_object_array_add(spans, span);
	scope = json_object_new_object();
	json_object_object_add(scope, "name", json_object_new_string("llmgw"));
	ss = json_object_new_object();
	json_object_object_add(ss, "scope", scope);
	json_object_object_add(ss, "spans", spans);
	scope_spans = json_object_new_array();
	json_object_array_add(scope_spans, ss);
	rattrs = json_object_new_array();
	attr_str(rattrs, "service.name", "llmgw");
	res = json_object_new_object();
	json_object_object_add(res, "attributes", rattrs);
	rs = json_object_new_object();
	json_object_object_add(rs, "resource", res);
	json_object_object_add(rs, "scopeSpans", scope_spans);
	tmp = json_object_new_array();
	json_object_array_add(tmp, rs);
	json_object_object_add(root, "resourceSpans", tmp);
	out = gw_xstrdup(gw_json_str(root, NULL));
	json_object_put(root);
	return out;
}

static int
accepted(json_object *row, const char *kind)
{
	json_object *a = gw_json_get(row, "accepted_events");
	size_t i;

	if (a == NULL || !json_object_is_type(a, json_type_array))
		return 0;
	for (i = 0; i < json_object_array_length(a); i++)
		if (strcmp(
		        json_object_get_string(json_object_array_get_idx(a, i)),
		        kind) == 0)
			return 1;
	return 0;
}

static json_object *
event(const char *rid, const char *kind, const char *type, const char *ts,
    json_object *body)
{
	json_object *e = json_object_new_object();
	char id[200];

	snprintf(id, sizeof(id), "%s-%s", rid, kind);
	json_object_object_add(e, "id", json_object_new_string(id));
	json_object_object_add(e, "timestamp", json_object_new_string(ts));
	json_object_object_add(e, "type", json_object_new_string(type));
	json_object_object_add(e, "body", body);
	return e;
}

static void
add_copy(json_object *dst, const char *key, json_object *v)
{
	if (v != NULL && !json_object_is_type(v, json_type_null))
		json_object_object_add(dst, key, json_object_get(v));
}

static void
add_str(json_object *dst, const char *key, const char *s)
{
	if (s != NULL)
		json_object_object_add(dst, key, json_object_new_string(s));
}

void
gw_lf_legacy_events(json_object *row, json_object *events)
{
	const char *rid = str_or(row, "request_id", "");
	const char *tid = tstr(row, "trace_id"),
	           *gid = tstr(row, "generation_id");
	char start[32], end[32], first[32], gen_id[160], msg[160];
	json_object *b;
	int64_t f = gw_json_int_or(row, "first_us", 0);

	bound_row(row);
	/* Ids are any string of 1..800 characters: the client's as it gave
	 * them (checked, at most 200 bytes), else the request id's. */
	if (tid == NULL)
		tid = rid;
	if (gid == NULL) {
		snprintf(gen_id, sizeof(gen_id), "%s-gen", rid);
		gid = gen_id;
	}
	gw_time_rfc3339(gw_json_int_or(row, "start_us", 0), start);
	gw_time_rfc3339(
	    gw_json_int_or(row, "end_us", gw_json_int_or(row, "start_us", 0)),
	    end);
	/* A call joining a trace (existing_trace_id) leaves the trace be. */
	if (!accepted(row, "trace") && !joins_trace(row)) {
		b = json_object_new_object();
		json_object_object_add(b, "id", json_object_new_string(tid));
		json_object_object_add(
		    b, "timestamp", json_object_new_string(start));
		json_object_object_add(
		    b, "name", json_object_new_string(trace_name(row)));
		add_str(b, "userId", user_of(row));
		add_str(b, "sessionId", tstr(row, "session_id"));
		add_str(b, "version", trace_version(row));
		add_str(b, "release", release_of(row));
		add_str(b, "environment", environment_of(row));
		add_copy(b, "input", gw_json_get(row, "lf_input"));
		add_copy(b, "output", gw_json_get(row, "lf_output"));
		json_object_object_add(b, "metadata", lf_trace_metadata(row));
		add_copy(b, "tags", tags_of(row));
		json_object_array_add(
		    events, event(rid, "trace", "trace-create", start, b));
	}
	if (!accepted(row, "generation")) {
		b = json_object_new_object();
		json_object_object_add(b, "id", json_object_new_string(gid));
		json_object_object_add(
		    b, "traceId", json_object_new_string(tid));
		add_str(b, "parentObservationId",
		    tstr(row, "parent_observation_id"));
		json_object_object_add(
		    b, "name", json_object_new_string(gen_name(row)));
		json_object_object_add(
		    b, "startTime", json_object_new_string(start));
		json_object_object_add(
		    b, "endTime", json_object_new_string(end));
		if (f > 0) {
			gw_time_rfc3339(f, first);
			json_object_object_add(b, "completionStartTime",
			    json_object_new_string(first));
		}
		json_object_object_add(b, "model",
		    json_object_new_string(
		        str_or(row, "actual_model", str_or(row, "model", ""))));
		add_copy(b, "modelParameters", model_params(row));
		add_str(b, "version", tstr(row, "version"));
		add_str(b, "environment", environment_of(row));
		add_copy(b, "input", gw_json_get(row, "lf_input"));
		add_copy(b, "output", gw_json_get(row, "lf_output"));
		json_object_object_add(b, "usageDetails", usage_details(row));
		json_object_object_add(b, "costDetails", cost_details(row));
		json_object_object_add(b, "level",
		    json_object_new_string(
		        failed_row(row) ? "ERROR" : "DEFAULT"));
		if (failed_row(row)) {
			status_message(row, msg, sizeof(msg));
			json_object_object_add(
			    b, "statusMessage", json_object_new_string(msg));
		}
		json_object_object_add(b, "metadata", lf_metadata(row));
		json_object_array_add(events,
		    event(rid, "generation", "generation-create", start, b));
	}
}

/* The answer of one POST: status and (bounded) body. */
struct answer {
	int status;
	char retry_after[32];
	struct gw_buf body;
};

static int
ans_head(void *arg, int status, const char *ctype, const char *retry_after)
{
	struct answer *a = arg;

	(void)ctype;
	a->status = status;
	snprintf(a->retry_after, sizeof(a->retry_after), "%s",
	    retry_after ? retry_after : "");
	return 0;
}

static int
ans_data(void *arg, const char *p, size_t n)
{
	struct answer *a = arg;

	if (a->body.len + n <= ANSWER_MAX)
		gw_buf_append(&a->body, p, n);
	return 0;
}

/*
 * POST body to path with Langfuse's auth; retries 429/5xx/transport
 * failures with backoff. GW_OK with a->status 2xx/4xx, or GW_E_UPSTREAM.
 */
static enum gw_status
post(const struct gw_cfg *cfg, struct gw_upstream *up, const char *path,
    const char *body, int otel, struct answer *a, FILE *log)
{
	const char *hdrs[] = {"x-langfuse-ingestion-version: 4", NULL};
	struct gw_upstream_cb cb = {a, ans_head, ans_data, NULL, NULL};
	struct gw_upstream_post p = {0};
	struct gw_upstream_result res;
	char *url = NULL, *userpwd = NULL;
	size_t n = strlen(cfg->langfuse_host);
	int try, delay_ms = 500;
	enum gw_status st = GW_E_UPSTREAM;

	while (n > 0 && cfg->langfuse_host[n - 1] == '/')
		n--;
	url = gw_xasprintf("%.*s%s", (int)n, cfg->langfuse_host, path);
	userpwd = gw_xasprintf("%s:%s", cfg->langfuse_public_key,
	    cfg->langfuse_secret_key ? cfg->langfuse_secret_key : "");
	p.url = url;
	p.body = body;
	p.body_len = strlen(body);
	p.connect_timeout_ms = 5000;
	p.timeout_ms = 30000;
	p.userpwd = userpwd;
	p.headers = otel ? hdrs : NULL;
	for (try = 1; try <= TRIES; try++) {
		a->status = 0;
		gw_buf_reset(&a->body, ANSWER_MAX);
		if (gw_upstream_post(up, &p, &cb, &res) == GW_OK &&
		    a->status != 429 && a->status < 500) {
			st = GW_OK;
			break;
		}
		if (log != NULL)
			fprintf(log, "langfuse: %s: %s (try %d of %d)\n", url,
			    a->status ? gw_err_reason(a->status) : res.err, try,
			    TRIES);
		if (try < TRIES) {
			int wait = delay_ms;

			if (a->retry_after[0] && atoi(a->retry_after) > 0)
				wait = atoi(a->retry_after) * 1000;
			usleep((useconds_t)(wait > 5000 ? 5000 : wait) * 1000);
			delay_ms *= 2;
		}
	}
	explicit_bzero(userpwd, strlen(userpwd));
	free(userpwd);
	free(url);
	return st;
}

/* Mark request ids (a JSON array) exported, or count a failed attempt. */
static void
mark(struct gw_db *db, json_object *ids, int ok, const char *error)
{
	const char *p[2] = {gw_json_str(ids, NULL), error};
	char err[256];

	if (json_object_array_length(ids) == 0)
		return;
	if (gw_db_exec(db,
	        ok ? "UPDATE request_payloads SET exported_at = now(), "
	             "attempts = "
	             "attempts + 1, last_error = NULL WHERE request_id IN "
	             "(SELECT "
	             "json_array_elements_text($1::json))"
	           : "UPDATE request_payloads SET attempts = attempts + 1, "
	             "last_error = $2 WHERE request_id IN (SELECT "
	             "json_array_elements_text($1::json))",
	        ok ? 1 : 2, p, 1, NULL, err, sizeof(err)) != GW_OK)
		gw_log_err(NULL, "langfuse", "cannot mark rows: %s", err);
}

/* OTLP: one call per request (see langfuse.h). */
static enum gw_status
send_otel(const struct gw_cfg *cfg, struct gw_db *db, struct gw_upstream *up,
    json_object *rows, FILE *log, struct gw_lf_stats *st)
{
	struct answer a = {0};
	json_object *ok = json_object_new_array(),
	            *bad = json_object_new_array();
	json_object *resp = NULL, *ps;
	char m[64];
	size_t i;
	int64_t rejected;
	enum gw_status rc = GW_OK;

	for (i = 0; i < json_object_array_length(rows); i++) {
		json_object *row = json_object_array_get_idx(rows, i);
		const char *rid = str_or(row, "request_id", "");
		char *body = gw_lf_otlp_body(row);

		if (post(cfg, up, "/api/public/otel/v1/traces", body, 1, &a,
		        log) != GW_OK) {
			free(body);
			st->transport_failed = 1;
			st->failed +=
			    (int64_t)(json_object_array_length(rows) - i);
			rc = GW_E_UPSTREAM;
			break;
		}
		free(body);
		rejected = a.status >= 200 && a.status < 300 ? 0 : 1;
		if (!rejected && a.body.len > 0 &&
		    gw_json_parse(a.body.p, a.body.len, &resp, m, sizeof(m)) ==
		        GW_OK &&
		    (ps = gw_json_get(resp, "partialSuccess")) != NULL &&
		    gw_json_get_int(ps, "rejectedSpans", &rejected) != 0)
			rejected = 0;
		json_object_put(resp);
		resp = NULL;
		json_object_array_add(
		    rejected ? bad : ok, json_object_new_string(rid));
		if (rejected)
			st->failed++;
		else
			st->sent++;
	}
	mark(db, ok, 1, NULL);
	mark(db, bad, 0, "refused by Langfuse");
	json_object_put(ok);
	json_object_put(bad);
	gw_buf_fini(&a.body);
	return rc;
}

/* Legacy: batches of events; a 207 names what was accepted. */
static enum gw_status
send_legacy(const struct gw_cfg *cfg, struct gw_db *db, struct gw_upstream *up,
    json_object *rows, FILE *log, struct gw_lf_stats *st)
{
	struct answer a = {0};
	json_object *events = json_object_new_array(), *batch, *resp = NULL;
	json_object *succ, *errs, *ok, *bad;
	char m[64];
	const char *params[1];
	size_t i, j, n = json_object_array_length(rows);
	enum gw_status rc = GW_OK;

	for (i = 0; i < n; i++)
		gw_lf_legacy_events(json_object_array_get_idx(rows, i), events);
	batch = json_object_new_object();
	json_object_object_add(batch, "batch", events);
	if (post(cfg, up, "/api/public/ingestion", gw_json_str(batch, NULL), 0,
	        &a, log) != GW_OK) {
		st->transport_failed = 1;
		st->failed += (int64_t)n;
		rc = GW_E_UPSTREAM;
		goto out;
	}
	if (a.status >= 300 || a.body.len == 0 ||
	    gw_json_parse(a.body.p, a.body.len, &resp, m, sizeof(m)) != GW_OK) {
		if (log != NULL)
			fprintf(
			    log, "langfuse: ingestion answered %d\n", a.status);
		st->failed += (int64_t)n;
		ok = json_object_new_array();
		for (i = 0; i < n; i++)
			json_object_array_add(
			    ok, json_object_new_string(
			            str_or(json_object_array_get_idx(rows, i),
			                "request_id", "")));
		mark(db, ok, 0, "ingestion refused the batch");
		json_object_put(ok);
		goto out;
	}
	/* Record accepted events per request; a request whose events are all
	 * accepted is exported. */
	succ = gw_json_get(resp, "successes");
	errs = gw_json_get(resp, "errors");
	ok = json_object_new_array();
	for (j = 0; succ && j < json_object_array_length(succ); j++) {
		const char *id =
		    gw_json_get_str(json_object_array_get_idx(succ, j), "id");

		if (id != NULL)
			json_object_array_add(ok, json_object_new_string(id));
	}
	params[0] = gw_json_str(ok, NULL);
	/* Event ids are "<request id>-trace" / "<request id>-generation". */
	gw_db_exec(db,
	    "WITH ev AS (SELECT value AS id FROM "
	    "json_array_elements_text($1::json)), acc AS (SELECT "
	    "regexp_replace(id, '-(trace|generation)$', '') AS rid, "
	    "substring(id FROM '-(trace|generation)$') AS kind FROM ev) "
	    "UPDATE request_payloads p SET accepted_events = ARRAY(SELECT "
	    "DISTINCT unnest(p.accepted_events || ARRAY(SELECT kind FROM acc "
	    "WHERE acc.rid = p.request_id))) WHERE p.request_id IN (SELECT rid "
	    "FROM acc)",
	    1, params, 1, NULL, m, sizeof(m));
	json_object_put(ok);
	ok = json_object_new_array();
	bad = json_object_new_array();
	for (i = 0; i < n; i++) {
		json_object *row = json_object_array_get_idx(rows, i);
		const char *rid = str_or(row, "request_id", "");
		int refused = 0;

		for (j = 0; errs && j < json_object_array_length(errs); j++) {
			const char *id = gw_json_get_str(
			    json_object_array_get_idx(errs, j), "id");

			if (id != NULL && strncmp(id, rid, strlen(rid)) == 0 &&
			    id[strlen(rid)] == '-')
				refused = 1;
		}
		json_object_array_add(
		    refused ? bad : ok, json_object_new_string(rid));
		if (refused)
			st->failed++;
		else
			st->sent++;
	}
	mark(db, ok, 1, NULL);
	mark(db, bad, 0, "event refused by Langfuse (207)");
	json_object_put(ok);
	json_object_put(bad);
out:
	json_object_put(batch);
	json_object_put(resp);
	gw_buf_fini(&a.body);
	return rc;
}

static json_object *
parse_rows(struct gw_db_rows *rows, char *cur_at, char *cur_id, size_t len)
{
	json_object *arr = json_object_new_array(), *o;
	char m[64];
	const char *s;
	int i;

	for (i = 0; i < gw_db_rows_count(rows); i++) {
		s = gw_db_rows_get(rows, i, 0);
		o = NULL;
		if (s != NULL &&
		    gw_json_parse(s, strlen(s), &o, m, sizeof(m)) == GW_OK)
			json_object_array_add(arr, o);
		snprintf(cur_at, len, "%s", gw_db_rows_get(rows, i, 1));
		snprintf(cur_id, len, "%s", gw_db_rows_get(rows, i, 2));
	}
	return arr;
}

/* [langfuse] environment and release, beside each row's own keys. */
static void
set_config(const struct gw_cfg *cfg, json_object *rows)
{
	size_t i;

	for (i = 0; i < json_object_array_length(rows); i++) {
		json_object *row = json_object_array_get_idx(rows, i);

		json_object_object_add(row, "lf_environment",
		    json_object_new_string(cfg->langfuse_environment));
		json_object_object_add(row, "lf_release",
		    json_object_new_string(cfg->langfuse_release));
	}
}

/* Split rows into chunks whose legacy batches stay under BATCH_BYTES. */
static json_object *
take_chunk(json_object *rows, size_t *from)
{
	json_object *chunk = json_object_new_array();
	size_t bytes = 0, len, n = json_object_array_length(rows);

	while (*from < n) {
		json_object *row = json_object_array_get_idx(rows, *from);

		bound_row(row);
		gw_json_str(row, &len);
		/* Each row becomes two events holding input and output twice.
		 */
		len *= 2;
		if (json_object_array_length(chunk) > 0 &&
		    bytes + len > BATCH_BYTES)
			break;
		json_object_array_add(chunk, json_object_get(row));
		bytes += len;
		(*from)++;
	}
	return chunk;
}

enum gw_status
gw_lf_export(const struct gw_cfg *cfg, struct gw_db *db, struct gw_upstream *up,
    FILE *log, struct gw_lf_stats *st)
{
	struct gw_db_rows *rows = NULL;
	json_object *batch = NULL, *chunk;
	char err[512], cur_at[128] = "-infinity", cur_id[128] = "", lim[16];
	char days[16];
	const char *params[3] = {cur_at, cur_id, lim};
	enum gw_status rc = GW_OK;
	size_t from;

	memset(st, 0, sizeof(*st));
	if (gw_db_exec(db, "SELECT pg_try_advisory_lock(" LOCK_KEY ")", 0, NULL,
	        1, &rows, err, sizeof(err)) != GW_OK) {
		if (log != NULL)
			fprintf(log, "langfuse: database: %s\n", err);
		return GW_E_DB;
	}
	if (strcmp(gw_db_rows_get(rows, 0, 0), "t") != 0) {
		st->locked_out = 1;
		gw_db_rows_free(rows);
		return GW_OK;
	}
	gw_db_rows_free(rows);
	rows = NULL;
	snprintf(lim, sizeof(lim), "%d", cfg->langfuse_batch_size);
	for (;;) {
		if (gw_db_exec(db, queue_sql, 3, params, 0, &rows, err,
		        sizeof(err)) != GW_OK) {
			if (log != NULL)
				fprintf(log, "langfuse: database: %s\n", err);
			rc = GW_E_DB;
			break;
		}
		if (gw_db_rows_count(rows) == 0)
			break;
		batch = parse_rows(rows, cur_at, cur_id, sizeof(cur_id));
		set_config(cfg, batch);
		gw_db_rows_free(rows);
		rows = NULL;
		if (cfg->langfuse_format == GW_LANGFUSE_OTEL) {
			rc = send_otel(cfg, db, up, batch, log, st);
		} else {
			for (from = 0;
			     rc == GW_OK &&
			     from < json_object_array_length(batch);) {
				chunk = take_chunk(batch, &from);
				rc = send_legacy(cfg, db, up, chunk, log, st);
				json_object_put(chunk);
			}
		}
		json_object_put(batch);
		batch = NULL;
		if (rc != GW_OK)
			break;
	}
	gw_db_rows_free(rows);
	rows = NULL;
	/* Retention, then what is still waiting. */
	snprintf(days, sizeof(days), "%d", cfg->langfuse_retention_days);
	params[0] = days;
	if (gw_db_exec(db,
	        "WITH d AS (DELETE FROM request_payloads WHERE exported_at < "
	        "now() - make_interval(days => $1::int) RETURNING 1) SELECT "
	        "count(*) FROM d",
	        1, params, 1, &rows, err, sizeof(err)) == GW_OK)
		st->pruned = atol(gw_db_rows_get(rows, 0, 0));
	gw_db_rows_free(rows);
	rows = NULL;
	gw_lf_lag(db, &st->lag_s);
	gw_db_exec(db, "SELECT pg_advisory_unlock(" LOCK_KEY ")", 0, NULL, 1,
	    NULL, NULL, 0);
	return rc;
}

enum gw_status
gw_lf_lag(struct gw_db *db, double *lag_s)
{
	struct gw_db_rows *rows = NULL;
	char err[256];
	enum gw_status st;

	*lag_s = 0;
	st = gw_db_exec(db,
	    "SELECT coalesce(extract(epoch FROM now() - min(s.start_time)), 0) "
	    "FROM request_payloads p JOIN spend_logs s USING (request_id) "
	    "WHERE p.exported_at IS NULL",
	    0, NULL, 1, &rows, err, sizeof(err));
	if (st == GW_OK)
		*lag_s = atof(gw_db_rows_get(rows, 0, 0));
	gw_db_rows_free(rows);
	return st;
}
