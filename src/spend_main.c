/* llmgw-spend: GET /spend/logs. */
#include "server.h"
#include "spend_api.h"

int
main(int argc, char **argv)
{
	static const struct gw_server_ops ops = {
	    .prog = "spend",
	    .rate_limited = 1,
	    .handle = gw_spend_handle,
	};

	return gw_server_main(argc, argv, &ops);
}
