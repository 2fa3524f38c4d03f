/*
 * fuzz_json_parse: gw_json_parse (lib/json_util.c), the strict one-pass
 * parser of request bodies, over any bytes. Besides crashes, leaks and
 * undefined behaviour, a finding is: GW_OK without a tree, a failure
 * message not NUL-ended, an accepted document whose compact serialization
 * (gw_json_str) is not itself accepted with the same text, or a document
 * said spliceable whose spliced text (gw_json_splice: model replaced,
 * stream_options added when absent) does not parse to the tree with those
 * changes made.
 */
#include "fuzz.h"

#include "json_util.h"
#include "util.h"

#define ADDED "\"stream_options\":{\"include_usage\":true}"

/* The spliced text parses to o with the same changes made to the tree. */
static void
check_splice(
    json_object *o, const char *buf, size_t size, const struct gw_json_doc *d)
{
	struct gw_json_doc doc[1] = {*d};
	struct gw_buf b = {NULL, 0, 0};
	json_object *got = NULL, *want = NULL, *so;
	char msg[256];
	int add = !json_object_object_get_ex(o, "stream_options", NULL);

	gw_json_splice(&b, buf, size, doc, "m\"\xc3\xa9", add ? ADDED : NULL);
	if (gw_json_parse(b.p, b.len, &got, msg, sizeof(msg)) != GW_OK)
		FUZZ_FINDING("spliced text refused: %s", msg);
	/* want: o's copy, changed as the splice changes the text. */
	if (json_object_deep_copy(o, &want, NULL) != 0)
		FUZZ_FINDING("deep copy failed");
	json_object_object_add(
	    want, "model", json_object_new_string("m\"\xc3\xa9"));
	if (add) {
		so = json_object_new_object();
		json_object_object_add(
		    so, "include_usage", json_object_new_boolean(1));
		json_object_object_add(want, "stream_options", so);
	}
	if (!json_object_equal(got, want))
		FUZZ_FINDING("spliced text is not the changed tree");
	json_object_put(got);
	json_object_put(want);
	gw_buf_fini(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_object *o = NULL, *again = NULL;
	char *buf = fuzz_copy(data, size), *text = NULL, msg[256];
	struct gw_json_doc doc;
	const char *s;
	size_t len;

	memset(msg, 'x', sizeof(msg));
	if (gw_json_parse_doc(buf, size, 0, &o, &doc, msg, sizeof(msg)) !=
	    GW_OK) {
		fuzz_check_msg("gw_json_parse", msg, sizeof(msg));
		if (o != NULL)
			FUZZ_FINDING("refused, but *out was set");
		goto out;
	}
	if (o == NULL)
		FUZZ_FINDING("GW_OK without a tree");
	if (doc.spliceable && doc.model_end > 0)
		check_splice(o, buf, size, &doc);
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
