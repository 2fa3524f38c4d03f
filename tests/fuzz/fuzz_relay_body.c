/*
 * fuzz_relay_body: gw_relay_parse_body (lib/relay.c), request parsing and
 * validation, for each call kind (chat, completion, embedding) over the
 * same bytes. A finding besides crashes and leaks: GW_OK without a body,
 * or an error not NUL-ended.
 */
#include "fuzz.h"

#include <json-c/json.h>

#include "capture.h"
#include "relay.h"
#include "validate.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum gw_call calls[] = {
	    GW_CALL_CHAT, GW_CALL_COMPLETION, GW_CALL_EMBEDDING};
	char *buf = fuzz_copy(data, size);
	size_t i;

	for (i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
		struct json_object *body = NULL;
		struct gw_verr e;
		enum gw_status st;

		memset(&e, 'x', sizeof(e));
		/* The gateway's default cap on values, as requests get it. */
		st = gw_relay_parse_body(calls[i], buf, size, 200000, &body, NULL, &e);
		if (st == GW_OK && body == NULL)
			FUZZ_FINDING("call %zu: GW_OK without a body", i);
		if (st == GW_E_INVALID) {
			fuzz_check_msg("param", e.param, sizeof(e.param));
			fuzz_check_msg("msg", e.msg, sizeof(e.msg));
		}
		json_object_put(body);
	}
	free(buf);
	return 0;
}
