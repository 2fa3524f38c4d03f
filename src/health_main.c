/* llmgw-health: /health, /health/liveliness, /health/readiness, /metrics. */
#include "health.h"
#include "server.h"

int
main(int argc, char **argv)
{
	static const struct gw_server_ops ops = {
	    .prog = "health",
	    .handle = gw_health_handle,
	};

	return gw_server_main(argc, argv, &ops);
}
