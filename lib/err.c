/*
 * err.c: status to HTTP and to the OpenAI error JSON; the one place that
 * maps an HTTP status to an OpenAI error type.
 */
#include "err.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

struct status_map {
	int http;
	const char *type;
	const char *message;
};

static const struct status_map status_map[] = {
    [GW_OK] = {200, "", "OK"},
    [GW_E_INVALID] = {400, "invalid_request_error", "Invalid request"},
    [GW_E_AUTH] = {401, "auth_error", "Authentication error"},
    [GW_E_FORBIDDEN] = {403, "permission_error", "Forbidden"},
    [GW_E_NOTFOUND] = {404, "not_found_error", "Not found"},
    [GW_E_RATELIMIT] = {429, "rate_limit_error", "Rate limit exceeded"},
    [GW_E_UPSTREAM] = {502, "upstream_error", "Upstream error"},
    [GW_E_TIMEOUT] = {504, "timeout_error", "Upstream timed out"},
    [GW_E_DB] = {503, "no_db_connection", "Database unavailable"},
    [GW_E_NOMEM] = {500, "internal_server_error", "Out of memory"},
    [GW_E_INTERNAL] = {500, "internal_server_error", "Internal error"},
    [GW_E_METHOD] = {405, "method_not_allowed", "Method not allowed"},
    [GW_E_TOOBIG] = {413, "request_too_large", "Request body too large"},
    [GW_E_UNAVAILABLE] = {503, "service_unavailable", "Service unavailable"},
};

static const struct status_map *
lookup(enum gw_status st)
{
	if ((size_t)st >= GW_ARRAY_LEN(status_map) ||
	    status_map[st].type == NULL)
		return &status_map[GW_E_INTERNAL];
	return &status_map[st];
}

int
gw_err_http_status(enum gw_status st)
{
	return lookup(st)->http;
}

const char *
gw_err_type(enum gw_status st)
{
	return lookup(st)->type;
}

const char *
gw_err_default_message(enum gw_status st)
{
	return lookup(st)->message;
}

const char *
gw_err_reason(int http_status)
{
	switch (http_status) {
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 204:
		return "No Content";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 409:
		return "Conflict";
	case 411:
		return "Length Required";
	case 413:
		return "Payload Too Large";
	case 415:
		return "Unsupported Media Type";
	case 422:
		return "Unprocessable Entity";
	case 429:
		return "Too Many Requests";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	default:
		return http_status < 400 ? "OK" : "Error";
	}
}

const char *
gw_err_type_for_http(int http_status)
{
	switch (http_status) {
	case 401:
		return "auth_error";
	case 403:
		return "permission_error";
	case 404:
		return "not_found_error";
	case 408:
		return "timeout_error";
	case 413:
		return "request_too_large";
	case 429:
		return "rate_limit_error";
	default:
		/* 400, 422 and any other 4xx: the request was refused. */
		return http_status >= 500 ? "upstream_error"
		                          : "invalid_request_error";
	}
}

char *
gw_err_json_new(
    int http_status, const char *type, const char *param, const char *message)
{
	json_object *root = json_object_new_object();
	json_object *e = json_object_new_object();
	char code[16];
	char *out;

	snprintf(code, sizeof(code), "%d", http_status);
	json_object_object_add(e, "message",
	    json_object_new_string(
	        message ? message : gw_err_reason(http_status)));
	json_object_object_add(e, "type",
	    json_object_new_string(type ? type : "internal_server_error"));
	json_object_object_add(
	    e, "param", param ? json_object_new_string(param) : NULL);
	json_object_object_add(e, "code", json_object_new_string(code));
	json_object_object_add(root, "error", e);
	out = gw_xstrdup(json_object_to_json_string_ext(
	    root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(root);
	return out;
}
