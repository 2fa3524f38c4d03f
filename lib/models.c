/* models.c: the model list, cached per process behind one mutex. */
#include "models.h"

#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "http_upstream.h"
#include "json_util.h"
#include "log.h"
#include "relay.h"
#include "req.h"
#include "util.h"

#define MODELS_BODY_MAX (4 * 1024 * 1024)

struct entry {
	char *id;
	char *owned_by;
	int64_t created;
};

/* Plain C copies: json-c objects are not shared between threads. */
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry *cache;
static size_t ncache;
static int64_t cache_at_us;   /* 0: never fetched */
static int64_t cache_created; /* for alias entries */

static void
cache_clear(void)
{
	size_t i;

	for (i = 0; i < ncache; i++) {
		free(cache[i].id);
		free(cache[i].owned_by);
	}
	free(cache);
	cache = NULL;
	ncache = 0;
}

/* Fetch {base}/v1/models into the cache; on failure keep what was there. */
static void
refresh(struct gw_req *req)
{
	const struct gw_cfg *cfg = req->cfg;
	struct gw_buf body = {0};
	json_object *o = NULL, *data, *it;
	char *url = gw_relay_url(cfg->upstream_url, "/models");
	char err[256] = "", m[128];
	int status = 0;
	size_t i, n;

	if (gw_upstream_get(req->ctx->up, url, cfg->upstream_connect_timeout_ms,
	        cfg->upstream_health_timeout_ms, &status, &body,
	        MODELS_BODY_MAX, err, sizeof(err)) != GW_OK ||
	    status != 200) {
		gw_log_warn(req->id, "models",
		    "cannot list upstream models: %s",
		    err[0] ? err : gw_err_reason(status));
		goto out;
	}
	if (gw_json_parse(body.p, body.len, &o, m, sizeof(m)) != GW_OK ||
	    (data = gw_json_get(o, "data")) == NULL ||
	    !json_object_is_type(data, json_type_array)) {
		gw_log_warn(
		    req->id, "models", "upstream model list is malformed");
		goto out;
	}
	cache_clear();
	n = json_object_array_length(data);
	cache = gw_xcalloc(n ? n : 1, sizeof(*cache));
	for (i = 0; i < n; i++) {
		const char *id, *owner;

		it = json_object_array_get_idx(data, i);
		if ((id = gw_json_get_str(it, "id")) == NULL)
			continue;
		owner = gw_json_get_str(it, "owned_by");
		cache[ncache].id = gw_xstrdup(id);
		cache[ncache].owned_by = gw_xstrdup(owner ? owner : "upstream");
		cache[ncache].created = gw_json_int_or(it, "created", 0);
		ncache++;
	}
out:
	/* Success or not, wait a full period before asking again. */
	cache_at_us = gw_now_mono_us();
	json_object_put(o);
	gw_buf_fini(&body);
	free(url);
}

static json_object *
model_obj(const char *id, int64_t created, const char *owner)
{
	json_object *m = json_object_new_object();

	json_object_object_add(m, "id", json_object_new_string(id));
	json_object_object_add(m, "object", json_object_new_string("model"));
	json_object_object_add(m, "created", json_object_new_int64(created));
	json_object_object_add(m, "owned_by", json_object_new_string(owner));
	return m;
}

static int
allowed(const struct gw_principal *who, const char *id)
{
	char msg[8];
	const char *type;

	return gw_auth_model(who, id, msg, sizeof(msg), &type) == GW_OK;
}

/* The merged list: aliases first, then upstream models not shadowed. */
json_object *
gw_models_list_new(struct gw_req *req, const struct gw_principal *who)
{
	const struct gw_cfg *cfg = req->cfg;
	json_object *arr = json_object_new_array();
	size_t i;

	pthread_mutex_lock(&cache_lock);
	if (cache_at_us == 0 ||
	    gw_now_mono_us() - cache_at_us >=
	        (int64_t)cfg->upstream_models_cache_s * 1000000)
		refresh(req);
	if (cache_created == 0)
		cache_created = gw_now_real_us() / 1000000;
	for (i = 0; i < cfg->naliases; i++)
		if (allowed(who, cfg->aliases[i].name))
			json_object_array_add(
			    arr, model_obj(cfg->aliases[i].name, cache_created,
			             "llmgw"));
	for (i = 0; i < ncache; i++)
		if (gw_cfg_find_alias(cfg, cache[i].id) == NULL &&
		    allowed(who, cache[i].id))
			json_object_array_add(
			    arr, model_obj(cache[i].id, cache[i].created,
			             cache[i].owned_by));
	pthread_mutex_unlock(&cache_lock);
	return arr;
}

enum gw_status
gw_models_list(struct gw_req *req, const struct gw_principal *who)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "object", json_object_new_string("list"));
	json_object_object_add(o, "data", gw_models_list_new(req, who));
	gw_reply_json(req, 200, o);
	json_object_put(o);
	return GW_OK;
}

enum gw_status
gw_models_get(
    struct gw_req *req, const struct gw_principal *who, const char *id)
{
	json_object *arr = gw_models_list_new(req, who), *it;
	const char *mid;
	char msg[400];
	size_t i, n = json_object_array_length(arr);

	for (i = 0; i < n; i++) {
		it = json_object_array_get_idx(arr, i);
		mid = gw_json_get_str(it, "id");
		if (mid != NULL && strcmp(mid, id) == 0) {
			gw_reply_json(req, 200, it);
			json_object_put(arr);
			return GW_OK;
		}
	}
	json_object_put(arr);
	snprintf(msg, sizeof(msg), "The model '%.300s' does not exist", id);
	gw_reply_error_ex(req, 404, "not_found_error", "model", msg);
	return GW_OK;
}
