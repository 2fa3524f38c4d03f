/*
 * rerank.h: the body of POST /v1/rerank (also /rerank, /v1/reranking), the
 * Jina / Cohere shape llama-server and llama-swap serve: "model", "query",
 * "documents" (strings or {"text": ...} objects), optional "top_n". The
 * relay (relay.c) checks it here, aliases the model and relays it to the
 * upstream's /v1/rerank; the answer goes back as the upstream sent it.
 */
#ifndef GW_RERANK_H
#define GW_RERANK_H

#include <json-c/json.h>

#include "err.h"
#include "validate.h"

/* Documents one request may rank (Cohere's limit). */
#define GW_RERANK_DOCS_MAX 1000

/*
 * Check a rerank body: model a non-empty string, query a non-empty string,
 * documents a non-empty array of at most GW_RERANK_DOCS_MAX strings or
 * objects with a string "text", top_n (when set) an integer in
 * [1, len(documents)], return_documents a boolean. GW_OK, or GW_E_INVALID
 * with *e filled (param names the field).
 */
enum gw_status gw_rerank_validate(json_object *body, struct gw_verr *e)
    GW_NONNULL(2);

/* Characters of text in the body's query and documents (for estimates). */
size_t gw_rerank_text_chars(json_object *body);

#endif /* GW_RERANK_H */
