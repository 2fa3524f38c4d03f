/* llmgw-chat: /v1/chat/completions, /v1/completions, /v1/models. */
#include "chat.h"
#include "server.h"

int
main(int argc, char **argv)
{
	static const struct gw_server_ops ops = {
	    .prog = "chat",
	    .handle = gw_chat_handle,
	};

	return gw_server_main(argc, argv, &ops);
}
