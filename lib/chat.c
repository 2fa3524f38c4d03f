/* chat.c: the route tables of the chat and embeddings families. */
#include "chat.h"

#include <string.h>

#include "audio.h"
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
};

/* LiteLLM serves every OpenAI path with and without "/v1". */
static const struct gw_router chat_router = {
    "/v1", chat_routes, GW_ARRAY_LEN(chat_routes), 0};
static const struct gw_router embeddings_router = {
    "/v1", embeddings_routes, GW_ARRAY_LEN(embeddings_routes), 0};

enum gw_status
gw_chat_handle(struct gw_req *req)
{
	return gw_dispatch(req, &chat_router);
}

enum gw_status
gw_embeddings_handle(struct gw_req *req)
{
	return gw_dispatch(req, &embeddings_router);
}
