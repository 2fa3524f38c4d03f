/*
 * json_util.h: strict parsing of request bodies (one pass of our own that
 * checks the text and builds the json-c tree; json_tokener is not used),
 * the "usage" scanner for upstream answers, small typed accessors
 * returning borrowed values, and a direct JSON writer.
 */
#ifndef GW_JSON_UTIL_H
#define GW_JSON_UTIL_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "util.h"

/*
 * Parse exactly one JSON document from buf (len bytes, no NUL needed), in
 * one pass: anything RFC 8259 refuses (invalid, overlong or surrogate
 * UTF-8, 'single quotes', "1.", "01", raw control characters in strings,
 * trailing garbage), an empty body, a bare null, nesting deeper than 64,
 * and NaN, Infinity or a number beyond a double anywhere are refused.
 * The tree is json_tokener's (duplicate keys: the last wins; integers
 * clamped; doubles keep their text). On success *out is a new reference
 * (caller puts). On failure GW_E_INVALID with a message for the client in
 * msg, naming the byte offset where the text went wrong.
 */
enum gw_status gw_json_parse(const char *buf, size_t len, json_object **out,
    char *msg, size_t msglen) GW_NONNULL(3, 4);
/*
 * The same, refusing a document of more than max_values values (every
 * array element, member value and scalar counts; 0: no limit) before it
 * builds the one too many: what a hostile body can make json-c allocate is
 * bounded by max_values objects (about 100 bytes each), not by its size.
 */
enum gw_status gw_json_parse_max(const char *buf, size_t len, size_t max_values,
    json_object **out, char *msg, size_t msglen) GW_NONNULL(4, 5);

/*
 * Where a parsed object's top-level parts are in its text, so that the
 * text can be sent on with its model replaced instead of the tree being
 * serialized again: the "model" member's string value is bytes
 * [model_at, model_end) (model_end 0: no such string member), the object's
 * closing brace is at close_at. spliceable is 1 only when the text says
 * what the tree does: an object with no key twice in any object, no key
 * with an escape (json-c's keys end at an escaped NUL) and no lone
 * surrogate escape (the tree holds U+FFFD for it).
 */
struct gw_json_doc {
	size_t model_at, model_end;
	size_t close_at;
	int spliceable;
};

/* gw_json_parse_max, and *doc filled as above (doc is always written). */
enum gw_status gw_json_parse_doc(const char *buf, size_t len, size_t max_values,
    json_object **out, struct gw_json_doc *doc, char *msg, size_t msglen)
    GW_NONNULL(4, 5, 6);

/*
 * Into b (reset first; not text's storage): text, of a spliceable
 * document described by doc (with a model: model_end > 0), with the
 * model's value replaced by model as a JSON string and, when members is
 * not NULL, ",members" added before the closing brace; doc then describes
 * b's text. One pass of copies, whatever the text's size.
 */
void gw_json_splice(struct gw_buf *b, const char *text, size_t len,
    struct gw_json_doc *doc, const char *model, const char *members)
    GW_NONNULL(1, 2, 4, 5);

/*
 * "usage" of an upstream answer, read without building the document:
 * known when the answer had a "usage" object; has[i] when its member i
 * (0 prompt_tokens, 1 completion_tokens, 2 total_tokens) was an integer
 * (one beyond int64 is clamped to its range, as json-c does).
 */
struct gw_json_usage {
	int known;
	int has[3];
	int64_t v[3];
	/*
	 * The answer's top-level "id" (the upstream's completion id), when
	 * a string without escapes: [id, id + id_len) in the scanned text
	 * (borrowed), or in the parsed reply's string; NULL when none.
	 */
	const char *id;
	size_t id_len;
};

/*
 * Check that buf is one JSON object by gw_json_parse's rules, reading its
 * top-level "usage" on the way, with the meaning gw_json_get_usage gives
 * the parsed answer (keys decoded, the last duplicate wins, depth counted
 * alike): GW_E_INVALID (and *u zeroed) when not.
 */
enum gw_status gw_json_scan_usage(
    const char *buf, size_t len, struct gw_json_usage *u) GW_NONNULL(3);
/* The same from an already parsed reply. */
void gw_json_get_usage(json_object *msg, struct gw_json_usage *u) GW_NONNULL(2);
/*
 * The top-level "id" string of the JSON object text buf (a stream's
 * chunk, relayed as is and not otherwise read): a skim that only skips
 * strings and counts nesting, so that nested "id"s (tool calls) are not
 * taken. 0 with [*id, *id + *id_len) borrowed from buf, or -1 when there
 * is none (or it has escapes). Does not check the text.
 */
int gw_json_top_id(const char *buf, size_t len, const char **id, size_t *id_len)
    GW_NONNULL(3, 4);

/* Borrowed member of obj, or NULL when absent or obj is not an object. */
json_object *gw_json_get(json_object *obj, const char *key) GW_NONNULL(2);
/* Borrowed string member, or NULL when absent or not a string. */
const char *gw_json_get_str(json_object *obj, const char *key) GW_NONNULL(2);
/* Integer member into *out; 0 when present and an integer, -1 otherwise. */
int gw_json_get_int(json_object *obj, const char *key, int64_t *out)
    GW_NONNULL(2, 3);

/*
 * A JSON object written straight into a buffer (no json-c objects): open
 * with gw_jw_begin, add members, close with gw_jw_end. For hot paths.
 * A member's key is a name of this code's own (a literal needing no
 * escape): it is written as it is.
 */
void gw_jw_begin(struct gw_buf *b) GW_NONNULL(1);
void gw_jw_end(struct gw_buf *b) GW_NONNULL(1);
/* "key":"value" with escaping; value NULL writes null. */
void gw_jw_str(struct gw_buf *b, const char *key, const char *value)
    GW_NONNULL(1, 2);
void gw_jw_int(struct gw_buf *b, const char *key, int64_t v) GW_NONNULL(1, 2);
void gw_jw_num(struct gw_buf *b, const char *key, double v) GW_NONNULL(1, 2);
void gw_jw_bool(struct gw_buf *b, const char *key, int v) GW_NONNULL(1, 2);
void gw_jw_null(struct gw_buf *b, const char *key) GW_NONNULL(1, 2);
/*
 * "key":<json>, json being already-serialized JSON text; "\u0000" in it is
 * written as "\ufffd" (PostgreSQL's text and jsonb cannot hold U+0000).
 */
void gw_jw_raw(struct gw_buf *b, const char *key, const char *json)
    GW_NONNULL(1, 2, 3);
/*
 * How many bytes from p (up to end) are neither a quote, a backslash, a
 * control character nor non-ASCII: a JSON string's plain run, 16 bytes a
 * step.
 */
size_t gw_json_plain_run(const char *p, const char *end) GW_NONNULL(1, 2);
/* Append s as a JSON string literal (quotes and escapes). */
void gw_jw_quote(struct gw_buf *b, const char *s) GW_NONNULL(1, 2);

/* An integer member, or dflt when absent or not an integer. */
int64_t gw_json_int_or(json_object *obj, const char *key, int64_t dflt)
    GW_NONNULL(2);
/* A number member (integer or not), or dflt when absent or not a number. */
double gw_json_num_or(json_object *obj, const char *key, double dflt)
    GW_NONNULL(2);

/* Serialize compactly (no slash escaping); borrowed until obj changes. */
const char *gw_json_str(json_object *obj, size_t *len) GW_NONNULL(1);

#endif /* GW_JSON_UTIL_H */
