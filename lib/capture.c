/* capture.c: request input and output for Langfuse, bounded and redactable. */
#include "capture.h"

#include <stdio.h>
#include <string.h>

#include "config.h"
#include "json_util.h"

void
gw_capture_init(struct gw_capture *c, int on, int mode, enum gw_call call)
{
	memset(c, 0, sizeof(*c));
	c->on = on;
	c->mode = mode;
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
	switch (c->mode) {
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

void
gw_capture_chunk(struct gw_capture *c, json_object *chunk)
{
	json_object *ch, *delta, *tc;
	const char *s;

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

json_object *
gw_capture_input(const struct gw_capture *c, json_object *body)
{
	json_object *msgs, *out, *arr, *m, *it;
	size_t i, n;

	if (!c->on || c->mode == GW_LANGFUSE_RECORD_NONE || body == NULL)
		return NULL;
	if (c->call == GW_CALL_CHAT) {
		msgs = gw_json_get(body, "messages");
		if (c->mode == GW_LANGFUSE_RECORD_FULL)
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
	it = gw_json_get(
	    body, c->call == GW_CALL_COMPLETION ? "prompt" : "input");
	if (c->mode == GW_LANGFUSE_RECORD_FULL)
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

	if (!c->on || c->mode == GW_LANGFUSE_RECORD_NONE)
		return NULL;
	if (c->extra != NULL)
		return json_object_get(c->extra);
	o = json_object_new_object();
	if (c->mode == GW_LANGFUSE_RECORD_REDACTED) {
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
