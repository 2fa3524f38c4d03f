/* llmgw-embeddings: /v1/embeddings. */
#include "chat.h"
#include "server.h"
#include "spend.h"

int
main(int argc, char **argv)
{
	static const struct gw_server_ops ops = {
	    .prog = "embeddings",
	    .process_init = gw_spend_process_init,
	    .process_fini = gw_spend_process_fini,
	    .rate_limited = 1,
	    .handle = gw_embeddings_handle,
	};

	return gw_server_main(argc, argv, &ops);
}
