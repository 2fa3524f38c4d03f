/*
 * fuzz_json_usage: gw_json_scan_usage (lib/json_util.c), the usage
 * scanner of upstream answers, against the parser. One meaning of an
 * answer's usage (issue #22; tests/unit/test_json_util.c
 * test_usage_one_meaning): the scanner and gw_json_parse + an object +
 * gw_json_get_usage must agree on acceptance and on usage (known, has[i]
 * and v[i] where has[i]). A finding is any disagreement, and a refusal
 * that leaves *u other than zero.
 */
#include "fuzz.h"

#include "json_util.h"

static int
same_usage(const struct gw_json_usage *a, const struct gw_json_usage *b)
{
	int i;

	if (a->known != b->known)
		return 0;
	for (i = 0; i < 3; i++)
		if (a->has[i] != b->has[i] || (a->has[i] && a->v[i] != b->v[i]))
			return 0;
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct gw_json_usage zero;
	struct gw_json_usage su, pu;
	json_object *o = NULL;
	char *buf = fuzz_copy(data, size), msg[256];
	int sok, pok;

	memset(&su, 0x5a, sizeof(su));
	sok = gw_json_scan_usage(buf, size, &su) == GW_OK;
	if (!sok && memcmp(&su, &zero, sizeof(su)) != 0)
		FUZZ_FINDING("scan refused without zeroing *u");
	pok = gw_json_parse(buf, size, &o, msg, sizeof(msg)) == GW_OK &&
	      json_object_is_type(o, json_type_object);
	memset(&pu, 0, sizeof(pu));
	if (pok)
		gw_json_get_usage(o, &pu);
	json_object_put(o);
	if (sok != pok || !same_usage(&su, &pu))
		FUZZ_FINDING("scan %s (known %d has %d%d%d v %lld %lld %lld), "
		             "parse %s (known %d has %d%d%d v %lld %lld %lld)",
		    sok ? "ok" : "refused", su.known, su.has[0], su.has[1],
		    su.has[2], (long long)su.v[0], (long long)su.v[1],
		    (long long)su.v[2], pok ? "ok" : "refused", pu.known,
		    pu.has[0], pu.has[1], pu.has[2], (long long)pu.v[0],
		    (long long)pu.v[1], (long long)pu.v[2]);
	free(buf);
	return 0;
}
