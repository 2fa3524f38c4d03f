/* chat.c: the route tables of the chat and embeddings families. */
#include "chat.h"

#include <string.h>

#include "audio.h"
#include "config.h"
#include "err.h"
#include "model_info.h"
#include "models.h"
#include "relay.h"
#include "req.h"
#include "route.h"
#include "util.h"

static enum gw_status
relay_call(struct gw_req *req, struct gw_route_call *c)
{
	return gw_relay(req, (enum gw_call)c->route->arg, c);
}

static enum gw_status
audio_call(struct gw_req *req, struct gw_route_call *c)
{
	return gw_audio_relay(req, (enum gw_call)c->route->arg, c);
}

static enum gw_status
models_list(struct gw_req *req, struct gw_route_call *c)
{
	return gw_models_list(req, &c->who);
}

/* /models/{id}: the id may itself hold slashes ("org/model"). */
static enum gw_status
models_get(struct gw_req *req, struct gw_route_call *c)
{
	char id[sizeof(c->param)];

	if (gw_url_decode(c->param, strlen(c->param), id, sizeof(id), 0) < 0 ||
	    id[0] == '\0') {
		gw_route_not_found(req);
		return GW_OK;
	}
	return gw_models_get(req, &c->who, id);
}

static enum gw_status
model_info(struct gw_req *req, struct gw_route_call *c)
{
	return gw_model_info_list(req, &c->who);
}

static enum gw_status
model_group_info(struct gw_req *req, struct gw_route_call *c)
{
	return gw_model_info_groups(req, &c->who);
}

/*
 * GET and DELETE /v1/responses/{id}: a stored response lives on the
 * upstream that made it, and neither llama-server nor llama-swap keeps
 * any; the gateway does not either (XXX: relay them once one does).
 */
static enum gw_status
responses_stored(struct gw_req *req, struct gw_route_call *c)
{
	(void)c;
	gw_reply_error_ex(req, 501, "not_implemented_error", NULL,
	    "Stored responses are not kept: GET and DELETE "
	    "/v1/responses/{id} are not served (send \"store\": false and "
	    "keep the answer)");
	return GW_OK;
}

/*
 * An [upstream] passthrough path: relayed as is (lib/relay.c,
 * GW_CALL_PASSTHROUGH), the route's path naming the upstream's.
 */
static enum gw_status
passthrough_call(struct gw_req *req, struct gw_route_call *c)
{
	return gw_relay(req, GW_CALL_PASSTHROUGH, c);
}

static const struct gw_route chat_routes[] = {
    {"POST", "/chat/completions", GW_ACCESS_CALLER, relay_call, "chat",
        GW_CALL_CHAT, 0},
    {"POST", "/completions", GW_ACCESS_CALLER, relay_call, "completions",
        GW_CALL_COMPLETION, 0},
    {"GET", "/models", GW_ACCESS_CALLER, models_list, "models", 0, 0},
    {"GET", "/models/{}", GW_ACCESS_CALLER, models_get, "models", 0, 0},
    {"GET", "/model/info", GW_ACCESS_CALLER, model_info, "model_info", 0, 0},
    {"GET", "/model_group/info", GW_ACCESS_CALLER, model_group_info,
        "model_group_info", 0, 0},
    {"POST", "/responses", GW_ACCESS_CALLER, relay_call, "responses",
        GW_CALL_RESPONSES, 0},
    {"GET", "/responses/{}", GW_ACCESS_CALLER, responses_stored, "responses", 0,
        0},
    {"DELETE", "/responses/{}", GW_ACCESS_CALLER, responses_stored, "responses",
        0, 0},
    {"POST", "/audio/transcriptions", GW_ACCESS_CALLER, audio_call,
        "audio_transcriptions", GW_CALL_TRANSCRIPTION, 0},
    {"POST", "/audio/translations", GW_ACCESS_CALLER, audio_call,
        "audio_translations", GW_CALL_TRANSLATION, 0},
    {"POST", "/audio/speech", GW_ACCESS_CALLER, audio_call, "audio_speech",
        GW_CALL_SPEECH, 0},
};

static const struct gw_route embeddings_routes[] = {
    {"POST", "/embeddings", GW_ACCESS_CALLER, relay_call, "embeddings",
        GW_CALL_EMBEDDING, 0},
    /* llama-swap's three names for one call: its upstream's /v1/rerank. */
    {"POST", "/rerank", GW_ACCESS_CALLER, relay_call, "rerank", GW_CALL_RERANK,
        0},
    {"POST", "/reranking", GW_ACCESS_CALLER, relay_call, "rerank",
        GW_CALL_RERANK, 0},
};

/* LiteLLM serves every OpenAI path with and without "/v1". */
static const struct gw_router chat_router = {
    "/v1", chat_routes, GW_ARRAY_LEN(chat_routes), 0};
static const struct gw_router embeddings_router = {
    "/v1", embeddings_routes, GW_ARRAY_LEN(embeddings_routes), 0};

/*
 * The chat family also serves the passthrough paths the configuration
 * lists: exactly those paths (no "/v1" variant, no prefix match), POST
 * only, each through a one-route table of its own so that the dispatcher
 * authenticates and labels it as every route.
 */
enum gw_status
gw_chat_handle(struct gw_req *req)
{
	struct gw_route pt = {"POST", NULL, GW_ACCESS_CALLER, passthrough_call,
	    "pass_through", GW_CALL_PASSTHROUGH, 0};
	struct gw_router one = {NULL, &pt, 1, 0};
	char path[160];
	size_t n = strlen(req->path);

	if (req->cfg->npassthru > 0 && n < sizeof(path)) {
		memcpy(path, req->path, n + 1);
		while (n > 1 && path[n - 1] == '/')
			path[--n] = '\0';
		if ((pt.path = gw_cfg_find_passthrough(req->cfg, path)) != NULL)
			return gw_dispatch(req, &one);
	}
	return gw_dispatch(req, &chat_router);
}

enum gw_status
gw_embeddings_handle(struct gw_req *req)
{
	return gw_dispatch(req, &embeddings_router);
}
