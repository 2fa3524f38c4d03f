/*
 * fuzz_json_parse: gw_json_parse (lib/json_util.c), the strict one-pass
 * parser of request bodies, over any bytes. Besides crashes, leaks and
 * undefined behaviour, a finding is: GW_OK without a tree, a failure
 * message not NUL-ended, or an accepted document whose compact
 * serialization (gw_json_str) is not itself accepted with the same text.
 */
#include "fuzz.h"

#include "json_util.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_object *o = NULL, *again = NULL;
	char *buf = fuzz_copy(data, size), *text = NULL, msg[256];
	const char *s;
	size_t len;

	memset(msg, 'x', sizeof(msg));
	if (gw_json_parse(buf, size, &o, msg, sizeof(msg)) != GW_OK) {
		fuzz_check_msg("gw_json_parse", msg, sizeof(msg));
		if (o != NULL)
			FUZZ_FINDING("refused, but *out was set");
		goto out;
	}
	if (o == NULL)
		FUZZ_FINDING("GW_OK without a tree");
	s = gw_json_str(o, &len);
	text = fuzz_copy((const uint8_t *)s, len);
	if (gw_json_parse(text, len, &again, msg, sizeof(msg)) != GW_OK)
		FUZZ_FINDING("own serialization refused: %s", msg);
	s = gw_json_str(again, &len);
	if (len != strlen(gw_json_str(o, NULL)) || memcmp(s, text, len) != 0)
		FUZZ_FINDING("serialization changed on a second parse");
out:
	json_object_put(again);
	json_object_put(o);
	free(text);
	free(buf);
	return 0;
}
