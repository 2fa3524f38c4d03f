/* chat.c: routing of the chat and embeddings families. */
#include "chat.h"

#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "models.h"
#include "relay.h"
#include "req.h"

/* The path without a leading "/v1" and trailing slashes (in place). */
static const char *
api_path(struct gw_req *req)
{
	size_t len = strlen(req->path);

	while (len > 1 && req->path[len - 1] == '/')
		req->path[--len] = '\0';
	if (strncmp(req->path, "/v1/", 4) == 0)
		return req->path + 3;
	return req->path;
}

static enum gw_status
not_found(struct gw_req *req)
{
	char msg[300];

	req->route = "unknown";
	snprintf(msg, sizeof(msg), "Route not found: %s %.200s", req->method,
	    req->path);
	gw_reply_error_ex(req, 404, "not_found_error", NULL, msg);
	return GW_OK;
}

static int
method_is(struct gw_req *req, const char *want)
{
	if (strcmp(req->method, want) == 0 ||
	    (strcmp(want, "GET") == 0 && strcmp(req->method, "HEAD") == 0))
		return 1;
	gw_req_add_header(
	    req, "Allow", "%s", strcmp(want, "GET") == 0 ? "GET, HEAD" : want);
	gw_reply_error(req, GW_E_METHOD, NULL);
	return 0;
}

/* Decode %XX in a path segment in place; -1 on a NUL or bad escape. */
static int
pct_decode(char *s)
{
	char *o = s;
	int hi, lo;

	for (; *s; s++) {
		if (*s != '%') {
			*o++ = *s;
			continue;
		}
		if (sscanf(s + 1, "%1x%1x", (unsigned *)&hi, (unsigned *)&lo) !=
		        2 ||
		    (hi == 0 && lo == 0))
			return -1;
		*o++ = (char)(hi * 16 + lo);
		s += 2;
	}
	*o = '\0';
	return 0;
}

static enum gw_status
models(struct gw_req *req, const char *p)
{
	struct gw_principal who;
	char msg[300];
	enum gw_status st;

	req->route = "models";
	if (!method_is(req, "GET"))
		return GW_OK;
	if ((st = gw_auth_check(req, &who, msg, sizeof(msg))) != GW_OK) {
		gw_auth_reply(req, st, &who, msg);
		return GW_OK;
	}
	if (p[7] == '\0')
		st = gw_models_list(req, &who);
	/* /models/{id}: the id may itself hold slashes ("org/model"). */
	else if (pct_decode((char *)p + 8) < 0 || p[8] == '\0')
		st = not_found(req);
	else
		st = gw_models_get(req, &who, p + 8);
	gw_auth_release(&who);
	return st;
}

enum gw_status
gw_chat_handle(struct gw_req *req)
{
	const char *p = api_path(req);

	if (strcmp(p, "/chat/completions") == 0) {
		req->route = "chat";
		return method_is(req, "POST") ? gw_relay(req, GW_CALL_CHAT)
		                              : GW_OK;
	}
	if (strcmp(p, "/completions") == 0) {
		req->route = "completions";
		return method_is(req, "POST")
		           ? gw_relay(req, GW_CALL_COMPLETION)
		           : GW_OK;
	}
	if (strcmp(p, "/models") == 0 || strncmp(p, "/models/", 8) == 0)
		return models(req, p);
	return not_found(req);
}

enum gw_status
gw_embeddings_handle(struct gw_req *req)
{
	const char *p = api_path(req);

	if (strcmp(p, "/embeddings") == 0) {
		req->route = "embeddings";
		return method_is(req, "POST") ? gw_relay(req, GW_CALL_EMBEDDING)
		                              : GW_OK;
	}
	return not_found(req);
}
