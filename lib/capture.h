/*
 * capture.h: what a request said and what it got back, kept for Langfuse
 * export when [langfuse] enabled: input (messages / prompt / embedding
 * input) and output (assistant text, tool calls, finish reason), in full,
 * redacted to lengths only, or not at all ([langfuse] record). Streams are
 * accumulated chunk by chunk. Both sides are bounded (GW_CAPTURE_MAX bytes
 * of text each); what is cut is marked.
 *
 * Beside them, what Langfuse files the request under (gw_capture_trace):
 * LiteLLM's metadata keys (trace_id, session_id, generation_name, ...), the
 * model parameters, and the request's own mask_input / mask_output, which
 * can only make [langfuse] record stricter. Every value is client input:
 * strings are checked (valid UTF-8, no control characters) and cut to
 * GW_CAPTURE_STR_MAX bytes, lists to a few entries.
 */
#ifndef GW_CAPTURE_H
#define GW_CAPTURE_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define GW_CAPTURE_MAX (256 * 1024)
/* Ids, names, versions and tags kept from the request: bytes, and count. */
#define GW_CAPTURE_STR_MAX 200
#define GW_CAPTURE_TAGS_MAX 32

/* The kinds of OpenAI call relayed; what is captured depends on it. */
enum gw_call {
	GW_CALL_CHAT = 0,    /* /v1/chat/completions */
	GW_CALL_COMPLETION,  /* /v1/completions */
	GW_CALL_EMBEDDING,   /* /v1/embeddings */
	GW_CALL_RERANK,      /* /v1/rerank */
	GW_CALL_RESPONSES,   /* /v1/responses */
	GW_CALL_PASSTHROUGH, /* [upstream] passthrough paths */
	/* Not relayed by relay.c: audio.c (no capture). */
	GW_CALL_TRANSCRIPTION, /* /v1/audio/transcriptions */
	GW_CALL_TRANSLATION,   /* /v1/audio/translations */
	GW_CALL_SPEECH,        /* /v1/audio/speech */
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
	/* mode for each side, made stricter by mask_input / mask_output */
	int in_mode, out_mode;
	int mask_in, mask_out; /* the request asked for them */
	/*
	 * Filled by the scheduler (sched.c) when it knows them, exported as
	 * observation metadata; 0: unknown or none. Not set anywhere yet.
	 */
	int64_t sched_queue_wait_us; /* waited in the gateway's queue */
	int64_t sched_cold_load_us;  /* llama-swap loading the model */
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
 * Read the request's metadata.mask_input / mask_output (true or "true"):
 * a masked side is recorded redacted at most (lengths, no text). Call once
 * the body is parsed, before gw_capture_input/output; body may be NULL.
 */
void gw_capture_request(struct gw_capture *c, json_object *body) GW_NONNULL(1);
/*
 * What Langfuse files the request under, as a JSON object for the
 * exporter (new reference; NULL when capture is off): trace and span ids
 * (see gw_capture_trace_id), names, user, session, version, release, the
 * client's trace_metadata, the model parameters, the scheduler's times.
 */
json_object *gw_capture_trace(const struct gw_capture *c, json_object *body)
    GW_NONNULL(1);
/*
 * The request's metadata.session_id, checked and cut like every kept
 * string, into out; 0 when there is none (out is then "").
 */
int gw_capture_session_id(json_object *body, char out[GW_CAPTURE_STR_MAX + 1]);
/*
 * The OTel trace id (32 lowercase hex) for a client's trace id: itself
 * when it is 32 hex digits (a Langfuse or W3C id) or a UUID (dashes
 * dropped), else the first 32 hex digits of SHA-256("llmgw-trace:" id), so
 * that calls naming the same id share one trace. Never all zeros.
 */
void gw_capture_trace_id(const char *id, char out[33]) GW_NONNULL(1, 2);
/* The same for span ids (16 hex), from a client's generation_id. */
void gw_capture_span_id(const char *id, char out[17]) GW_NONNULL(1, 2);
/*
 * 1 when s[0, n) may be kept as a tag, id or name: not empty, valid UTF-8,
 * no control characters, at most GW_CAPTURE_STR_MAX bytes.
 */
int gw_capture_str_ok(const char *s, size_t n) GW_NONNULL(1);
/*
 * Characters of text in a request value: a string, an array of them, of
 * content parts ({"text"}) or of messages ({"content"}).
 */
size_t gw_capture_text_chars(json_object *v);

#endif /* GW_CAPTURE_H */
