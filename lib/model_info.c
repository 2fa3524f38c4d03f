/* model_info.c: /model/info and /model_group/info in LiteLLM's shapes. */
#include "model_info.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "json_util.h"
#include "models.h"
#include "req.h"

/* What one model name stands for: its actual target, price and fallbacks. */
struct info {
	const char *name;   /* what clients send */
	const char *target; /* what the upstream is asked for */
	const struct gw_alias *alias;
	const struct gw_price *price; /* of target; NULL: unpriced (0) */
	/* "chat", "embedding", "audio_transcription", "audio_speech" */
	const char *mode;
};

/*
 * The upstream's model list says nothing of a model's kind: a name that
 * holds "embed" (nomic-embed-text, bge-embed, text-embedding-3) is an
 * embedding model, anything else a chat model.
 */
static const char *
mode_of(const char *name, const char *target)
{
	const char *s;

	for (s = target; *s != '\0'; s++)
		if (strncasecmp(s, "embed", 5) == 0)
			return "embedding";
	for (s = name; *s != '\0'; s++)
		if (strncasecmp(s, "embed", 5) == 0)
			return "embedding";
	return "chat";
}

static void
info_of(const struct gw_cfg *cfg, const char *name, struct info *in)
{
	in->name = name;
	in->alias = gw_cfg_find_alias(cfg, name);
	in->target = in->alias != NULL && in->alias->ntargets > 0
	                 ? in->alias->targets[0]
	                 : name;
	in->price = gw_cfg_find_price(cfg, in->target);
	in->mode = mode_of(name, in->target);
	/* Priced by the second or the character: an audio model. */
	if (in->price != NULL && in->price->per_second >= 0)
		in->mode = "audio_transcription";
	else if (in->price != NULL && in->price->per_character >= 0)
		in->mode = "audio_speech";
}

/* LiteLLM's audio price units, those set (USD, as configured). */
static void
add_units(json_object *o, const struct gw_price *p)
{
	if (p == NULL)
		return;
	if (p->per_second >= 0)
		json_object_object_add(o, "input_cost_per_second",
		    json_object_new_double(p->per_second));
	if (p->per_character >= 0)
		json_object_object_add(o, "input_cost_per_character",
		    json_object_new_double(p->per_character));
	if (p->per_request >= 0)
		json_object_object_add(o, "input_cost_per_request",
		    json_object_new_double(p->per_request));
}

/* USD per 1M tokens as USD per token, printed short ("1.5e-07"). */
static json_object *
per_token(const struct gw_price *p, int output)
{
	char s[32];
	double v = p == NULL ? 0 : (output ? p->output_per_m : p->input_per_m);

	snprintf(s, sizeof(s), "%.10g", v / 1e6);
	return json_object_new_double_s(v / 1e6, s);
}

static void
add_str(json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, json_object_new_string(v));
}

static json_object *
providers(void)
{
	json_object *a = json_object_new_array();

	/* llama-swap speaks OpenAI's API: LiteLLM's "openai" provider. */
	json_object_array_add(a, json_object_new_string("openai"));
	return a;
}

static json_object *
deployment(const struct info *in)
{
	json_object *o = json_object_new_object();
	json_object *lp = json_object_new_object();
	json_object *mi = json_object_new_object();
	json_object *fb = json_object_new_array();
	size_t i;

	add_str(o, "model_name", in->name);
	/* Only the target: never the upstream key or URL. */
	add_str(lp, "model", in->target);
	json_object_object_add(o, "litellm_params", lp);
	add_str(mi, "id", in->target);
	add_str(mi, "key", in->target);
	json_object_object_add(mi, "db_model", json_object_new_boolean(0));
	add_str(mi, "litellm_provider", "openai");
	add_str(mi, "mode", in->mode);
	json_object_object_add(
	    mi, "input_cost_per_token", per_token(in->price, 0));
	json_object_object_add(
	    mi, "output_cost_per_token", per_token(in->price, 1));
	add_units(mi, in->price);
	json_object_object_add(mi, "max_tokens", NULL);
	json_object_object_add(mi, "max_input_tokens", NULL);
	json_object_object_add(mi, "max_output_tokens", NULL);
	if (in->alias != NULL)
		for (i = 1; i < in->alias->ntargets; i++)
			json_object_array_add(
			    fb, json_object_new_string(in->alias->targets[i]));
	json_object_object_add(mi, "fallbacks", fb);
	json_object_object_add(o, "model_info", mi);
	return o;
}

static json_object *
group(const struct info *in)
{
	json_object *o = json_object_new_object();
	json_object *fb = json_object_new_array();
	size_t i;

	add_str(o, "model_group", in->name);
	json_object_object_add(o, "providers", providers());
	json_object_object_add(o, "max_input_tokens", NULL);
	json_object_object_add(o, "max_output_tokens", NULL);
	json_object_object_add(
	    o, "input_cost_per_token", per_token(in->price, 0));
	json_object_object_add(
	    o, "output_cost_per_token", per_token(in->price, 1));
	add_units(o, in->price);
	add_str(o, "mode", in->mode);
	json_object_object_add(o, "tpm", NULL);
	json_object_object_add(o, "rpm", NULL);
	if (in->alias != NULL)
		for (i = 1; i < in->alias->ntargets; i++)
			json_object_array_add(
			    fb, json_object_new_string(in->alias->targets[i]));
	json_object_object_add(o, "fallbacks", fb);
	return o;
}

/*
 * {"data": [...]}: one entry per model who may call (a group, or a
 * deployment), kept when the query parameter qname is absent or empty, or
 * names it (a group by its name, a deployment by its target).
 */
static enum gw_status
reply(struct gw_req *req, const struct gw_principal *who, const char *qname,
    int groups)
{
	json_object *list = gw_models_list_new(req, who);
	json_object *o = json_object_new_object();
	json_object *data = json_object_new_array();
	char want[256];
	const char *id;
	struct info in;
	size_t i, n = json_object_array_length(list);
	int filter;

	filter = gw_req_query(req, qname, want, sizeof(want)) == GW_OK &&
	         want[0] != '\0';
	for (i = 0; i < n; i++) {
		id = gw_json_get_str(json_object_array_get_idx(list, i), "id");
		if (id == NULL)
			continue;
		info_of(req->cfg, id, &in);
		if (filter && strcmp(want, groups ? in.name : in.target) != 0)
			continue;
		json_object_array_add(
		    data, groups ? group(&in) : deployment(&in));
	}
	json_object_object_add(o, "data", data);
	gw_reply_json(req, 200, o);
	json_object_put(o);
	json_object_put(list);
	return GW_OK;
}

enum gw_status
gw_model_info_list(struct gw_req *req, const struct gw_principal *who)
{
	return reply(req, who, "litellm_model_id", 0);
}

enum gw_status
gw_model_info_groups(struct gw_req *req, const struct gw_principal *who)
{
	return reply(req, who, "model_group", 1);
}
