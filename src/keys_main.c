/* llmgw-keys: the key, user and team management routes. */
#include "keys_api.h"
#include "server.h"

int
main(int argc, char **argv)
{
	static const struct gw_server_ops ops = {
	    .prog = "keys",
	    .rate_limited = 1,
	    .handle = gw_keys_handle,
	};

	return gw_server_main(argc, argv, &ops);
}
