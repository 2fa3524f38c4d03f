/*
 * chat.h: the chat route family (cgi-bin/llmgw-chat):
 * POST /v1/chat/completions, POST /v1/completions, GET /v1/models,
 * GET /v1/models/{model}, POST /v1/responses (GET /v1/responses/{id}: 501),
 * POST /v1/audio/transcriptions, /v1/audio/translations and
 * /v1/audio/speech (audio.h), the same paths without /v1 (as LiteLLM), and
 * the [upstream] passthrough paths. And the embeddings family
 * (cgi-bin/llmgw-embeddings): POST /v1/embeddings, POST /v1/rerank (and
 * /v1/reranking).
 */
#ifndef GW_CHAT_H
#define GW_CHAT_H

#include "err.h"

struct gw_req;

/* Route and answer one request of the chat family; always replies. */
enum gw_status gw_chat_handle(struct gw_req *req) GW_NONNULL(1);
/* Route and answer one request of the embeddings family. */
enum gw_status gw_embeddings_handle(struct gw_req *req) GW_NONNULL(1);

#endif /* GW_CHAT_H */
