/*
 * server.h: the FastCGI process model shared by every llmgw-* program.
 *
 * A supervisor process forks [gateway] processes workers on the listening
 * socket that spawn-fcgi passes as fd 0 (or that -s opens) and restarts any
 * that dies. Each worker runs [gateway] threads threads, each blocked in
 * FCGX_Accept_r with its own FCGX_Request, so one slow request never holds
 * up another. SIGHUP reloads the configuration without dropping requests
 * in flight; SIGTERM stops accepting, lets requests in flight finish (up to
 * shutdown_timeout_s) and exits.
 */
#ifndef GW_SERVER_H
#define GW_SERVER_H

#include <stdint.h>

#include "config.h"
#include "err.h"

struct gw_req;

struct gw_server_ops {
	const char *prog; /* "health", "chat": program and log name */
	/*
	 * Answer one request. Return GW_OK once a reply is sent, GW_DETACHED
	 * when it goes on on the event loop (gw_req_go_async); any other
	 * status is answered with gw_reply_error(req, st, NULL).
	 */
	enum gw_status (*handle)(struct gw_req *req);
	/* 1: requests count against the [rate_limit] buckets (per client). */
	int rate_limited;
	/* Optional: once per worker process, before / after its threads. */
	void (*process_init)(const struct gw_cfg *cfg);
	void (*process_fini)(void);
};

/*
 * The whole life of a FastCGI program: options (-c FILE, -t, -g NAME,
 * -s SOCKET, -1), configuration, logging, supervisor, workers, threads and
 * signals. Returns the process exit code.
 */
int gw_server_main(int argc, char **argv, const struct gw_server_ops *ops)
    GW_NONNULL(2, 3);

#endif /* GW_SERVER_H */
