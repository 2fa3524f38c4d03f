/*
 * fuzz_spoolcols: gw_spoolcols_build and gw_spoolcols_rollups
 * (lib/spoolcols.c) over the input as spooled lines (the roll-ups run
 * under the sanitizers). An accepted batch must be well-formed binary
 * arrays (one dimension of c.rows elements, each inside its array), and when
 * the input is one line that json-c reads as an object, every text, integer and
 * boolean column must hold what json-c read for that key (NULL for a JSON null
 * or an absent key): the columns never read a value otherwise than a JSON
 * reader does.
 */
#include "fuzz.h"

#include <json-c/json.h>

#include "spoolcols.h"

/* GW_SPOOLCOLS_SQL's names and kinds: t text, i int4, b bool, - other. */
static const struct {
	const char *name;
	char kind;
} cols[GW_SPOOLCOLS_N] = {
    {"request_id", 't'},
    {"api_key", 't'},
    {"key_alias", 't'},
    {"user_id", 't'},
    {"team_id", 't'},
    {"model", 't'},
    {"actual_model", 't'},
    {"call_type", 't'},
    {"prompt_tokens", 'i'},
    {"completion_tokens", 'i'},
    {"total_tokens", 'i'},
    {"spend", '-'},
    {"usage_estimated", 'b'},
    {"start_time", '-'},
    {"end_time", '-'},
    {"completion_start_time", '-'},
    {"ttft_ms", '-'},
    {"status", 'i'},
    {"error_type", 't'},
    {"stream", 'b'},
    {"client_disconnected", 'b'},
    {"metadata", '-'},
    {"response_id", 't'},
    {"request_tags", '-'},
    {"session_id", 't'},
    {"lf_input", '-'},
    {"lf_output", '-'},
    {"lf_mode", 't'},
    {"lf_trace", '-'},
};

static uint32_t
be32(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;

	return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 |
	       (uint32_t)u[2] << 8 | u[3];
}

/* Column i's first element, its length in *len (-1: NULL). */
static const char *
first(const struct gw_spoolcols *c, int i, int *len)
{
	*len = (int)be32(c->values[i] + 20);
	return c->values[i] + 24;
}

static void
same_as_json_c(const struct gw_spoolcols *c, const char *line)
{
	json_object *o = json_tokener_parse(line), *v;
	const char *e;
	int i, len, n;

	if (o == NULL || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return;
	}
	for (i = 0; i < GW_SPOOLCOLS_N; i++) {
		if (cols[i].kind == '-')
			continue;
		e = first(c, i, &len);
		if (!json_object_object_get_ex(o, cols[i].name, &v) ||
		    v == NULL) {
			if (len != -1)
				FUZZ_FINDING("%s: not NULL", cols[i].name);
			continue;
		}
		if (cols[i].kind == 't') {
			n = json_object_get_string_len(v);
			if (!json_object_is_type(v, json_type_string) ||
			    len != n ||
			    memcmp(e, json_object_get_string(v), (size_t)n))
				FUZZ_FINDING("%s: text differs", cols[i].name);
		} else if (cols[i].kind == 'i') {
			if (!json_object_is_type(v, json_type_int) ||
			    len != 4 ||
			    (int32_t)be32(e) != json_object_get_int64(v))
				FUZZ_FINDING("%s: int differs", cols[i].name);
		} else if (!json_object_is_type(v, json_type_boolean) ||
		           len != 1 || e[0] != json_object_get_boolean(v)) {
			FUZZ_FINDING("%s: bool differs", cols[i].name);
		}
	}
	json_object_put(o);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = fuzz_copy(data, size);
	struct gw_spoolcols c;
	int i, r, len;
	const char *p, *end;

	if (gw_spoolcols_build(&c, in, size) == GW_OK) {
		for (i = 0; i < GW_SPOOLCOLS_N; i++) {
			p = c.values[i];
			end = p + c.lengths[i];
			if (c.lengths[i] < 20 || be32(p) != 1 ||
			    be32(p + 12) != (uint32_t)c.rows ||
			    be32(p + 16) != 1 || c.formats[i] != 1)
				FUZZ_FINDING("column %d: bad header", i);
			for (p += 20, r = 0; r < c.rows; r++) {
				if (end - p < 4)
					FUZZ_FINDING("column %d: cut", i);
				len = (int)be32(p);
				p += 4 + (len < 0 ? 0 : len);
				if (len < -1 || p > end)
					FUZZ_FINDING("column %d: overrun", i);
			}
			if (p != end)
				FUZZ_FINDING("column %d: trailing bytes", i);
		}
		/* The roll-ups read what the columns hold: any batch. */
		{
			struct gw_spoolcols_rollups a;

			if (gw_spoolcols_rollups(&a, &c) == GW_OK &&
			    a.lengths[0] < 20)
				FUZZ_FINDING("roll-ups: bad header");
			gw_spoolcols_rollups_fini(&a);
		}
		if (c.rows == 1 && memchr(in, '\n', size) == NULL) {
			char *line = fuzz_str(data, size);

			if (strlen(line) == size)
				same_as_json_c(&c, line);
			free(line);
		}
	}
	gw_spoolcols_fini(&c);
	free(in);
	return 0;
}
