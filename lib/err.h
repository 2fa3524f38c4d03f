/*
 * err.h: the status every fallible function returns, and its mapping to
 * HTTP and to OpenAI's error body
 *   {"error":{"message":...,"type":...,"param":...,"code":"<http status>"}}
 * where code is the HTTP status as a string, as LiteLLM sends it.
 */
#ifndef GW_ERR_H
#define GW_ERR_H

#include "util.h"

enum gw_status {
	GW_OK = 0,
	GW_E_INVALID,     /* 400 invalid_request_error */
	GW_E_AUTH,        /* 401 auth_error */
	GW_E_FORBIDDEN,   /* 403 permission_error */
	GW_E_NOTFOUND,    /* 404 not_found_error */
	GW_E_RATELIMIT,   /* 429 rate_limit_error */
	GW_E_UPSTREAM,    /* 502 upstream_error */
	GW_E_TIMEOUT,     /* 504 timeout_error */
	GW_E_DB,          /* 503 no_db_connection */
	GW_E_NOMEM,       /* 500 internal_server_error */
	GW_E_INTERNAL,    /* 500 internal_server_error */
	GW_E_METHOD,      /* 405 method_not_allowed */
	GW_E_TOOBIG,      /* 413 request_too_large */
	GW_E_UNAVAILABLE, /* 503 service_unavailable */
	/*
	 * Not an error: a handler's answer goes on on the event loop (see
	 * gw_req_go_async); the server detaches the request.
	 */
	GW_DETACHED,
};

/* The HTTP status for st (200 for GW_OK). */
int gw_err_http_status(enum gw_status st);
/* The OpenAI error type for st, e.g. "invalid_request_error"; static. */
const char *gw_err_type(enum gw_status st);
/* A default human message for st; static. */
const char *gw_err_default_message(enum gw_status st);
/* The reason phrase for an HTTP status, e.g. "Not Found"; static. */
const char *gw_err_reason(int http_status);
/*
 * The OpenAI error type for an HTTP error status that came without one
 * (an upstream's answer): 401 "auth_error", 429 "rate_limit_error", any
 * 5xx "upstream_error" (the gateway's upstream failed), ...; static.
 */
const char *gw_err_type_for_http(int http_status);

/*
 * Build the OpenAI error body. type, param and message may be NULL (type
 * then "internal_server_error", param JSON null, message the reason
 * phrase). Caller frees the result.
 */
char *gw_err_json_new(
    int http_status, const char *type, const char *param, const char *message);

#endif /* GW_ERR_H */
