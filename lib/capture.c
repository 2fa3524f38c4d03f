/* capture.c: request input and output for Langfuse, bounded and redactable. */
#include "capture.h"

#include <stdio.h>
#include <string.h>

#include "config.h"
#include "json_util.h"
#include "responses.h"
#include "sha256.h"

void
gw_capture_init(struct gw_capture *c, int on, int mode, enum gw_call call)
{
	memset(c, 0, sizeof(*c));
	c->on = on;
	c->mode = c->in_mode = c->out_mode = mode;
	c->call = call;
}

void
gw_capture_fini(struct gw_capture *c)
{
	gw_buf_fini(&c->text);
	json_object_put(c->tool_calls);
	json_object_put(c->extra);
	c->tool_calls = c->extra = NULL;
}

const char *
gw_capture_mode_name(const struct gw_capture *c)
{
	/* The stricter side: what the row's record_mode says. */
	switch (c->in_mode > c->out_mode ? c->in_mode : c->out_mode) {
	case GW_LANGFUSE_RECORD_REDACTED:
		return "redacted";
	case GW_LANGFUSE_RECORD_NONE:
		return "none";
	default:
		return "full";
	}
}

static void
add_text(struct gw_capture *c, const char *s, size_t n)
{
	size_t room;

	c->text_total += n;
	if (c->text.len >= GW_CAPTURE_MAX)
		return;
	room = GW_CAPTURE_MAX - c->text.len;
	gw_buf_append(&c->text, s, n < room ? n : room);
}

static void
take_finish(struct gw_capture *c, json_object *choice)
{
	const char *f = gw_json_get_str(choice, "finish_reason");

	if (f != NULL)
		snprintf(c->finish_reason, sizeof(c->finish_reason), "%s", f);
}

/* Merge streamed tool-call deltas by index: arguments arrive in pieces. */
static void
take_tool_deltas(struct gw_capture *c, json_object *deltas)
{
	size_t i, n = json_object_array_length(deltas);
	int64_t idx;

	if (c->tool_calls == NULL)
		c->tool_calls = json_object_new_array();
	for (i = 0; i < n; i++) {
		json_object *d = json_object_array_get_idx(deltas, i), *call,
		            *fn, *dfn, *v;
		const char *args, *old;

		if (gw_json_get_int(d, "index", &idx) != 0 || idx < 0 ||
		    idx > 127)
			idx = (int64_t)i;
		while (
		    (int64_t)json_object_array_length(c->tool_calls) <= idx) {
			call = json_object_new_object();
			fn = json_object_new_object();
			json_object_object_add(
			    fn, "name", json_object_new_string(""));
			json_object_object_add(
			    fn, "arguments", json_object_new_string(""));
			json_object_object_add(call, "function", fn);
			json_object_array_add(c->tool_calls, call);
		}
		call = json_object_array_get_idx(c->tool_calls, (size_t)idx);
		if ((v = gw_json_get(d, "id")) != NULL)
			json_object_object_add(call, "id", json_object_get(v));
		if ((v = gw_json_get(d, "type")) != NULL)
			json_object_object_add(
			    call, "type", json_object_get(v));
		dfn = gw_json_get(d, "function");
		fn = gw_json_get(call, "function");
		if (dfn == NULL || fn == NULL)
			continue;
		if ((v = gw_json_get(dfn, "name")) != NULL &&
		    json_object_is_type(v, json_type_string))
			json_object_object_add(fn, "name", json_object_get(v));
		args = gw_json_get_str(dfn, "arguments");
		old = gw_json_get_str(fn, "arguments");
		if (args != NULL && old != NULL &&
		    strlen(old) + strlen(args) < GW_CAPTURE_MAX) {
			struct gw_buf b = {0};

			gw_buf_puts(&b, old);
			gw_buf_puts(&b, args);
			json_object_object_add(
			    fn, "arguments", json_object_new_string(b.p));
			gw_buf_fini(&b);
		}
	}
}

/*
 * The first choice of an answer or a chunk, its finish reason taken, and
 * for completions its text too; NULL when nothing more is to be read.
 */
static json_object *
first_choice(struct gw_capture *c, json_object *o)
{
	json_object *choices = gw_json_get(o, "choices"), *ch;
	const char *s;

	if (choices == NULL || !json_object_is_type(choices, json_type_array) ||
	    json_object_array_length(choices) == 0)
		return NULL;
	ch = json_object_array_get_idx(choices, 0);
	take_finish(c, ch);
	if (c->call != GW_CALL_COMPLETION)
		return ch;
	if ((s = gw_json_get_str(ch, "text")) != NULL)
		add_text(c, s, strlen(s));
	return NULL;
}

/* A Responses stream's event: its text deltas, and how it ended. */
static void
responses_event(struct gw_capture *c, json_object *ev)
{
	const char *type = gw_json_get_str(ev, "type"), *s;

	if (type == NULL)
		return;
	if (strcmp(type, "response.output_text.delta") == 0 &&
	    (s = gw_json_get_str(ev, "delta")) != NULL)
		add_text(c, s, strlen(s));
	else if (strncmp(type, "response.", 9) == 0 &&
	         (s = gw_json_get_str(gw_json_get(ev, "response"), "status")) !=
	             NULL &&
	         strcmp(s, "in_progress") != 0)
		snprintf(c->finish_reason, sizeof(c->finish_reason), "%s", s);
}

static void
add_text_cb(void *arg, const char *s, size_t n)
{
	add_text(arg, s, n);
}

void
gw_capture_chunk(struct gw_capture *c, json_object *chunk)
{
	json_object *ch, *delta, *tc;
	const char *s;

	if (c->on && c->call == GW_CALL_RESPONSES) {
		responses_event(c, chunk);
		return;
	}
	if (!c->on || (ch = first_choice(c, chunk)) == NULL)
		return;
	delta = gw_json_get(ch, "delta");
	if ((s = gw_json_get_str(delta, "content")) != NULL)
		add_text(c, s, strlen(s));
	tc = gw_json_get(delta, "tool_calls");
	if (tc != NULL && json_object_is_type(tc, json_type_array))
		take_tool_deltas(c, tc);
}

void
gw_capture_answer(struct gw_capture *c, json_object *answer)
{
	json_object *ch, *msg, *tc, *data, *first, *emb;
	const char *s;

	if (!c->on)
		return;
	if (c->call == GW_CALL_EMBEDDING) {
		/* Vectors are not worth keeping: their count and size. */
		data = gw_json_get(answer, "data");
		c->extra = json_object_new_object();
		json_object_object_add(c->extra, "embeddings",
		    json_object_new_int64(
		        data && json_object_is_type(data, json_type_array)
		            ? (int64_t)json_object_array_length(data)
		            : 0));
		first = data ? json_object_array_get_idx(data, 0) : NULL;
		emb = first ? gw_json_get(first, "embedding") : NULL;
		if (emb != NULL && json_object_is_type(emb, json_type_array))
			json_object_object_add(c->extra, "dimensions",
			    json_object_new_int64(
			        (int64_t)json_object_array_length(emb)));
		return;
	}
	if (c->call == GW_CALL_RESPONSES) {
		gw_responses_output_text(answer, add_text_cb, c);
		if ((s = gw_json_get_str(answer, "status")) != NULL)
			snprintf(c->finish_reason, sizeof(c->finish_reason),
			    "%s", s);
		return;
	}
	if ((ch = first_choice(c, answer)) == NULL)
		return;
	msg = gw_json_get(ch, "message");
	if ((s = gw_json_get_str(msg, "content")) != NULL)
		add_text(c, s, strlen(s));
	tc = gw_json_get(msg, "tool_calls");
	if (tc != NULL && json_object_is_type(tc, json_type_array))
		c->tool_calls = json_object_get(tc);
}

size_t
gw_capture_text_chars(json_object *v)
{
	size_t n = 0, i;

	if (v == NULL)
		return 0;
	if (json_object_is_type(v, json_type_string))
		return (size_t)json_object_get_string_len(v);
	if (json_object_is_type(v, json_type_array)) {
		for (i = 0; i < json_object_array_length(v); i++)
			n += gw_capture_text_chars(
			    json_object_array_get_idx(v, i));
		return n;
	}
	if (json_object_is_type(v, json_type_object))
		n = gw_capture_text_chars(gw_json_get(v, "content")) +
		    gw_capture_text_chars(gw_json_get(v, "text"));
	return n;
}

/* A copy of v, or a truncation marker when its JSON is too long. */
static json_object *
bounded(json_object *v)
{
	size_t len = 0;
	json_object *m;

	if (v == NULL)
		return NULL;
	gw_json_str(v, &len);
	if (len <= GW_CAPTURE_MAX)
		return json_object_get(v);
	m = json_object_new_object();
	json_object_object_add(m, "truncated", json_object_new_boolean(1));
	json_object_object_add(m, "bytes", json_object_new_int64((int64_t)len));
	json_object_object_add(m, "marker",
	    json_object_new_string("[llmgw: input too large to record]"));
	return m;
}

/*
 * A Responses request's input: its instructions (as a system message)
 * and its input, a string or a list of items; redacted, their lengths.
 */
static json_object *
responses_input(const struct gw_capture *c, json_object *body)
{
	json_object *ins = gw_json_get(body, "instructions"), *in, *out;

	in = gw_json_get(body, "input");
	if (c->in_mode != GW_LANGFUSE_RECORD_FULL) {
		out = json_object_new_object();
		json_object_object_add(out, "chars",
		    json_object_new_int64(
		        (int64_t)(gw_capture_text_chars(ins) +
		                  gw_capture_text_chars(in))));
		return out;
	}
	if (ins == NULL || !json_object_is_type(ins, json_type_string))
		return bounded(in);
	out = json_object_new_object();
	json_object_object_add(out, "instructions", json_object_get(ins));
	if (in != NULL)
		json_object_object_add(out, "input", json_object_get(in));
	in = bounded(out);
	json_object_put(out);
	return in;
}

json_object *
gw_capture_input(const struct gw_capture *c, json_object *body)
{
	json_object *msgs, *out, *arr, *m, *it;
	size_t i, n;

	if (!c->on || c->in_mode == GW_LANGFUSE_RECORD_NONE || body == NULL)
		return NULL;
	if (c->call == GW_CALL_CHAT) {
		msgs = gw_json_get(body, "messages");
		if (c->in_mode == GW_LANGFUSE_RECORD_FULL)
			return bounded(msgs);
		/* Redacted: roles and lengths only. */
		arr = json_object_new_array();
		n = msgs && json_object_is_type(msgs, json_type_array)
		        ? json_object_array_length(msgs)
		        : 0;
		for (i = 0; i < n; i++) {
			it = json_object_array_get_idx(msgs, i);
			m = json_object_new_object();
			json_object_object_add(m, "role",
			    json_object_new_string(
			        gw_json_get_str(it, "role")
			            ? gw_json_get_str(it, "role")
			            : ""));
			json_object_object_add(m, "chars",
			    json_object_new_int64(
			        (int64_t)gw_capture_text_chars(
			            gw_json_get(it, "content"))));
			json_object_array_add(arr, m);
		}
		return arr;
	}
	if (c->call == GW_CALL_RESPONSES)
		return responses_input(c, body);
	it = gw_json_get(
	    body, c->call == GW_CALL_COMPLETION ? "prompt" : "input");
	if (c->in_mode == GW_LANGFUSE_RECORD_FULL)
		return bounded(it);
	out = json_object_new_object();
	json_object_object_add(out, "chars",
	    json_object_new_int64((int64_t)gw_capture_text_chars(it)));
	return out;
}

json_object *
gw_capture_output(const struct gw_capture *c)
{
	json_object *o;
	char marker[96];

	if (!c->on || c->out_mode == GW_LANGFUSE_RECORD_NONE)
		return NULL;
	if (c->extra != NULL)
		return json_object_get(c->extra);
	o = json_object_new_object();
	if (c->out_mode == GW_LANGFUSE_RECORD_REDACTED) {
		json_object_object_add(
		    o, "chars", json_object_new_int64((int64_t)c->text_total));
	} else {
		struct gw_buf t = {0};

		if (c->text.len)
			gw_buf_append(&t, c->text.p, c->text.len);
		if (c->text_total > c->text.len) {
			snprintf(marker, sizeof(marker),
			    "[llmgw: truncated %zu chars]",
			    c->text_total - c->text.len);
			gw_buf_puts(&t, marker);
		}
		json_object_object_add(
		    o, "content", json_object_new_string(t.p ? t.p : ""));
		gw_buf_fini(&t);
		if (c->tool_calls != NULL)
			json_object_object_add(
			    o, "tool_calls", json_object_get(c->tool_calls));
	}
	if (c->finish_reason[0])
		json_object_object_add(o, "finish_reason",
		    json_object_new_string(c->finish_reason));
	return o;
}

/*
 * Length of the valid UTF-8 sequence at p (at most n bytes), 0 when
 * invalid (overlong, surrogate, beyond U+10FFFF) or a control character.
 */
static size_t
char_len(const unsigned char *p, size_t n, int ctl_ok)
{
	size_t len, i;
	uint32_t cp;

	if ((p[0] < 0x20 || p[0] == 0x7f) && !ctl_ok)
		return 0;
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0x80 && cp < 0xa0 && !ctl_ok))
		return 0;
	return len;
}

int
gw_capture_str_ok(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, l;

	if (n == 0 || n > GW_CAPTURE_STR_MAX)
		return 0;
	while (i < n) {
		if ((l = char_len(p + i, n - i, 0)) == 0)
			return 0;
		i += l;
	}
	return 1;
}

/*
 * A string member of o, checked and cut at a character boundary to
 * GW_CAPTURE_STR_MAX bytes, as a new JSON string; NULL when absent, not a
 * string, empty or holding what may not be kept (control characters too,
 * unless ctl_ok: a stop sequence is often "\n").
 */
static json_object *
kept_str_ex(json_object *o, const char *key, int ctl_ok)
{
	json_object *v = gw_json_get(o, key);
	const unsigned char *p;
	size_t n, i = 0, l;

	if (v == NULL || !json_object_is_type(v, json_type_string))
		return NULL;
	p = (const unsigned char *)json_object_get_string(v);
	n = (size_t)json_object_get_string_len(v);
	while (i < n && i < GW_CAPTURE_STR_MAX) {
		if ((l = char_len(p + i, n - i, ctl_ok)) == 0)
			return NULL;
		if (i + l > GW_CAPTURE_STR_MAX)
			break;
		i += l;
	}
	if (i == 0)
		return NULL;
	return json_object_new_string_len((const char *)p, (int)i);
}

static json_object *
kept_str(json_object *o, const char *key)
{
	return kept_str_ex(o, key, 0);
}

int
gw_capture_session_id(json_object *body, char out[GW_CAPTURE_STR_MAX + 1])
{
	json_object *v =
	    body ? kept_str(gw_json_get(body, "metadata"), "session_id") : NULL;

	out[0] = '\0';
	if (v == NULL)
		return 0;
	gw_strlcpy(out, json_object_get_string(v), GW_CAPTURE_STR_MAX + 1);
	json_object_put(v);
	return 1;
}

/* An id of n hex digits from id (see gw_capture_trace_id). */
static void
hex_id(const char *id, size_t n, const char *salt, char *out)
{
	char h[65];
	struct gw_buf b = {0};
	size_t len = strlen(id), i, j;
	int zero = 1;

	/* 32 (or 16) hex digits, or a UUID: kept, lowercased. */
	for (i = j = 0; i < len && j <= n; i++) {
		char ch = id[i];

		if (ch == '-' && n == 32 && len == 36 &&
		    (i == 8 || i == 13 || i == 18 || i == 23))
			continue;
		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
		        (ch >= 'A' && ch <= 'F')))
			break;
		out[j++] = (char)(ch >= 'A' && ch <= 'F' ? ch + 32 : ch);
		zero = zero && ch == '0';
	}
	if (i == len && j == n && !zero) {
		out[n] = '\0';
		return;
	}
	gw_buf_puts(&b, salt);
	gw_buf_puts(&b, id);
	gw_sha256_hex(b.p, b.len, h);
	gw_buf_fini(&b);
	memcpy(out, h, n);
	out[n] = '\0';
	if (strspn(out, "0") == n)
		out[n - 1] = '1';
}

void
gw_capture_trace_id(const char *id, char out[33])
{
	hex_id(id, 32, "llmgw-trace:", out);
}

void
gw_capture_span_id(const char *id, char out[17])
{
	hex_id(id, 16, "llmgw-span:", out);
}

static int
truthy(json_object *v)
{
	if (v == NULL)
		return 0;
	if (json_object_is_type(v, json_type_boolean))
		return json_object_get_boolean(v);
	if (json_object_is_type(v, json_type_string))
		return strcmp(json_object_get_string(v), "true") == 0;
	return 0;
}

void
gw_capture_request(struct gw_capture *c, json_object *body)
{
	json_object *m = body ? gw_json_get(body, "metadata") : NULL;

	if (m == NULL || !json_object_is_type(m, json_type_object))
		return;
	c->mask_in = truthy(gw_json_get(m, "mask_input"));
	c->mask_out = truthy(gw_json_get(m, "mask_output"));
	if (c->mask_in && c->in_mode < GW_LANGFUSE_RECORD_REDACTED)
		c->in_mode = GW_LANGFUSE_RECORD_REDACTED;
	if (c->mask_out && c->out_mode < GW_LANGFUSE_RECORD_REDACTED)
		c->out_mode = GW_LANGFUSE_RECORD_REDACTED;
}

static void
put(json_object *o, const char *key, json_object *v)
{
	if (v != NULL)
		json_object_object_add(o, key, v);
}

/* A number member of body (a new reference); NULL when not a number. */
static json_object *
num(json_object *body, const char *key)
{
	json_object *v = gw_json_get(body, key);

	if (v == NULL || !(json_object_is_type(v, json_type_int) ||
	                     json_object_is_type(v, json_type_double)))
		return NULL;
	/* Shared, not copied: the parser kept a double's text (0.3). */
	return json_object_get(v);
}

/*
 * The model parameters Langfuse shows (values: number, string, boolean or
 * list of strings, as its modelParameters allow), from the request body.
 */
static json_object *
model_parameters(json_object *body)
{
	static const char *const nums[] = {"temperature", "top_p", "max_tokens",
	    "max_completion_tokens", "presence_penalty", "frequency_penalty",
	    "seed", "n", "top_k", "top_logprobs", "dimensions"};
	static const char *const strs[] = {
	    "reasoning_effort", "encoding_format", "service_tier"};
	json_object *p = json_object_new_object(), *v, *arr, *s;
	size_t i, n;

	for (i = 0; i < GW_ARRAY_LEN(nums); i++)
		put(p, nums[i], num(body, nums[i]));
	for (i = 0; i < GW_ARRAY_LEN(strs); i++)
		put(p, strs[i], kept_str(body, strs[i]));
	if ((v = gw_json_get(body, "stream")) != NULL &&
	    json_object_is_type(v, json_type_boolean))
		put(p, "stream",
		    json_object_new_boolean(json_object_get_boolean(v)));
	/* stop: a string or up to 4 (OpenAI's limit; 8 kept) strings. */
	v = gw_json_get(body, "stop");
	if (v != NULL && json_object_is_type(v, json_type_string)) {
		put(p, "stop", kept_str_ex(body, "stop", 1));
	} else if (v != NULL && json_object_is_type(v, json_type_array)) {
		arr = json_object_new_array();
		n = json_object_array_length(v);
		for (i = 0; i < n && json_object_array_length(arr) < 8; i++) {
			json_object *w = json_object_new_object();

			json_object_object_add(w, "s",
			    json_object_get(json_object_array_get_idx(v, i)));
			if ((s = kept_str_ex(w, "s", 1)) != NULL)
				json_object_array_add(arr, s);
			json_object_put(w);
		}
		put(p, "stop", arr);
	}
	v = gw_json_get(body, "response_format");
	if (v != NULL && json_object_is_type(v, json_type_object))
		put(p, "response_format", kept_str(v, "type"));
	v = gw_json_get(body, "tools");
	if (v != NULL && json_object_is_type(v, json_type_array))
		put(p, "tools",
		    json_object_new_int64(
		        (int64_t)json_object_array_length(v)));
	v = gw_json_get(body, "tool_choice");
	if (v != NULL && json_object_is_type(v, json_type_string))
		put(p, "tool_choice", kept_str(body, "tool_choice"));
	else if (v != NULL && json_object_is_type(v, json_type_object))
		put(p, "tool_choice", kept_str(v, "type"));
	return p;
}

/*
 * A client's id (m's key, any non-empty string) into t: its OTel form
 * under otel_key, and under key itself when it may be kept as it is (else
 * the OTel form there too: an id with control characters or beyond
 * GW_CAPTURE_STR_MAX bytes is hashed, never cut, so that two calls
 * naming it still meet). 1 when there was one.
 */
static int
put_id(json_object *t, json_object *m, const char *key, const char *key_out,
    const char *otel_key)
{
	json_object *v = gw_json_get(m, key);
	const char *s;
	char id[33];

	if (v == NULL || !json_object_is_type(v, json_type_string) ||
	    json_object_get_string_len(v) == 0)
		return 0;
	s = json_object_get_string(v);
	if (strcmp(otel_key, "otel_trace_id") == 0)
		gw_capture_trace_id(s, id);
	else
		gw_capture_span_id(s, id);
	json_object_object_add(t, otel_key, json_object_new_string(id));
	json_object_object_add(t, key_out,
	    json_object_new_string(
	        gw_capture_str_ok(s, (size_t)json_object_get_string_len(v))
	            ? s
	            : id));
	return 1;
}

json_object *
gw_capture_trace(const struct gw_capture *c, json_object *body)
{
	static const char *const names[] = {"generation_name", "trace_name",
	    "version", "trace_version", "trace_release"};
	json_object *t, *m, *v;
	size_t i;

	if (!c->on)
		return NULL;
	t = json_object_new_object();
	m = body ? gw_json_get(body, "metadata") : NULL;
	if (m != NULL && !json_object_is_type(m, json_type_object))
		m = NULL;
	/* existing_trace_id: join that trace and leave its attributes be. */
	if (put_id(t, m, "existing_trace_id", "trace_id", "otel_trace_id"))
		json_object_object_add(
		    t, "existing_trace", json_object_new_boolean(1));
	else
		put_id(t, m, "trace_id", "trace_id", "otel_trace_id");
	put_id(t, m, "generation_id", "generation_id", "otel_span_id");
	/* Nested under an observation named the same way. */
	put_id(t, m, "parent_observation_id", "parent_observation_id",
	    "otel_parent_span_id");
	for (i = 0; i < GW_ARRAY_LEN(names); i++)
		put(t, names[i], kept_str(m, names[i]));
	put(t, "session_id", kept_str(m, "session_id"));
	/* The user: trace_user_id, else OpenAI's "user" (the key's: export). */
	if ((v = kept_str(m, "trace_user_id")) == NULL && body != NULL)
		v = kept_str(body, "user");
	put(t, "user_id", v);
	/* Bounded with all metadata by [gateway] max_metadata_bytes. */
	v = gw_json_get(m, "trace_metadata");
	if (v != NULL && json_object_is_type(v, json_type_object))
		json_object_object_add(t, "trace_metadata", json_object_get(v));
	if (body != NULL)
		json_object_object_add(
		    t, "model_parameters", model_parameters(body));
	if (c->mask_in)
		json_object_object_add(
		    t, "mask_input", json_object_new_boolean(1));
	if (c->mask_out)
		json_object_object_add(
		    t, "mask_output", json_object_new_boolean(1));
	if (c->sched_queue_wait_us > 0)
		json_object_object_add(t, "queue_wait_ms",
		    json_object_new_double(
		        (double)c->sched_queue_wait_us / 1e3));
	if (c->sched_cold_load_us > 0)
		json_object_object_add(t, "cold_load_ms",
		    json_object_new_double(
		        (double)c->sched_cold_load_us / 1e3));
	return t;
}
