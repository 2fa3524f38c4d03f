/* llmgw-chat: /v1/chat/completions, /v1/completions, /v1/models. */
#include "chat.h"
#include "server.h"
#include "spend.h"

int
main(int argc, char **argv)
{
	static const struct gw_server_ops ops = {
	    .prog = "chat",
	    .process_init = gw_spend_process_init,
	    .process_fini = gw_spend_process_fini,
	    .rate_limited = 1,
	    .handle = gw_chat_handle,
	};

	return gw_server_main(argc, argv, &ops);
}
