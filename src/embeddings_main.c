/* llmgw-embeddings: /v1/embeddings. */
#include "chat.h"
#include "server.h"

int
main(int argc, char **argv)
{
	static const struct gw_server_ops ops = {
	    .prog = "embeddings",
	    .handle = gw_embeddings_handle,
	};

	return gw_server_main(argc, argv, &ops);
}
