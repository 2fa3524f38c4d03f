/*
 * capture.h: what a request said and what it got back, kept for Langfuse
 * export when [langfuse] enabled: input (messages / prompt / embedding
 * input) and output (assistant text, tool calls, finish reason), in full,
 * redacted to lengths only, or not at all ([langfuse] record). Streams are
 * accumulated chunk by chunk. Both sides are bounded (GW_CAPTURE_MAX bytes
 * of text each); what is cut is marked.
 */
#ifndef GW_CAPTURE_H
#define GW_CAPTURE_H

#include <json-c/json.h>
#include <stddef.h>

#include "util.h"

#define GW_CAPTURE_MAX (256 * 1024)

/* The kinds of OpenAI call relayed; what is captured depends on it. */
enum gw_call {
	GW_CALL_CHAT = 0,   /* /v1/chat/completions */
	GW_CALL_COMPLETION, /* /v1/completions */
	GW_CALL_EMBEDDING,  /* /v1/embeddings */
};

struct gw_capture {
	int on;   /* 0: nothing is captured */
	int mode; /* enum gw_langfuse_record */
	enum gw_call call;
	struct gw_buf text;      /* accumulated completion text */
	size_t text_total;       /* characters seen, kept or not */
	json_object *tool_calls; /* accumulated tool calls, or NULL */
	json_object *extra;      /* a whole-answer summary (embeddings) */
	char finish_reason[32];
};

/* Start capturing for a call in mode; on = 0 disables. */
void gw_capture_init(struct gw_capture *c, int on, int mode, enum gw_call call)
    GW_NONNULL(1);
/* Take what a stream chunk adds (delta content/text, tool calls, finish). */
void gw_capture_chunk(struct gw_capture *c, json_object *chunk)
    GW_NONNULL(1, 2);
/* Take a whole (non-streamed) answer. */
void gw_capture_answer(struct gw_capture *c, json_object *answer)
    GW_NONNULL(1, 2);
/* The input to store, from the request body (new reference or NULL). */
json_object *gw_capture_input(const struct gw_capture *c, json_object *body)
    GW_NONNULL(1);
/* The output to store (new reference or NULL). */
json_object *gw_capture_output(const struct gw_capture *c) GW_NONNULL(1);
/* "full", "redacted", "none" for the mode; static. */
const char *gw_capture_mode_name(const struct gw_capture *c) GW_NONNULL(1);
void gw_capture_fini(struct gw_capture *c) GW_NONNULL(1);
/*
 * Characters of text in a request value: a string, an array of them, of
 * content parts ({"text"}) or of messages ({"content"}).
 */
size_t gw_capture_text_chars(json_object *v);

#endif /* GW_CAPTURE_H */
