/*
 * fuzz_scalars: the small parsers of query values. The first byte picks
 * the parser, the rest is its input:
 *   0 gw_mgmt_duration (lib/mgmt.c): "30s" .. "1mo" to a PostgreSQL
 *     interval; accepted output must be "N unit" with N the input's digits
 *   1 gw_spend_report_valid_date (lib/spend_report.c): YYYY-MM-DD, a real date;
 *     accepted input must be 10 bytes of that shape
 *   2, 3 gw_url_decode (lib/util.c), form off and on, into an output of
 *     the length the next byte says: accepted output has no more bytes
 *     than the input, no NUL, and fits
 */
#include "fuzz.h"

#include <ctype.h>
#include <time.h>

#include "mgmt.h"
#include "spend_report.h"
#include "util.h"

static void
duration(const char *s)
{
	char out[64], *end;
	size_t digits = strspn(s, "0123456789");

	memset(out, 'x', sizeof(out));
	if (gw_mgmt_duration(s, out, sizeof(out)) != GW_OK)
		return;
	fuzz_check_msg("gw_mgmt_duration", out, sizeof(out));
	if (digits == 0 || digits > 6 ||
	    strtol(out, &end, 10) != strtol(s, NULL, 10) || *end != ' ')
		FUZZ_FINDING("duration '%s' became '%s'", s, out);
}

/* The reference: the shape, 1970 on, and a round trip through timegm. */
static int
real_date(const char *s)
{
	struct tm tm = {0}, back;
	time_t t;
	size_t i;

	if (strlen(s) != 10)
		return 0;
	for (i = 0; i < 10; i++)
		if (i == 4 || i == 7 ? s[i] != '-'
		                     : !isdigit((unsigned char)s[i]))
			return 0;
	tm.tm_year = atoi(s) - 1900;
	tm.tm_mon = atoi(s + 5) - 1;
	tm.tm_mday = atoi(s + 8);
	tm.tm_hour = 12;
	if (tm.tm_year < 70 || tm.tm_mon < 0 || tm.tm_mday < 1)
		return 0;
	t = timegm(&tm);
	if (gmtime_r(&t, &back) == NULL)
		return 0;
	return back.tm_year == atoi(s) - 1900 &&
	       back.tm_mon == atoi(s + 5) - 1 && back.tm_mday == atoi(s + 8);
}

static void
date(const char *s)
{
	int got = gw_spend_report_valid_date(s), want = real_date(s);

	if (got != want)
		FUZZ_FINDING("date '%s': %s, timegm says %s", s,
		    got ? "accepted" : "refused", want ? "real" : "not");
}

static void
url_decode(const uint8_t *data, size_t size, int form)
{
	size_t outlen;
	char *in, *out;

	if (size < 1)
		return;
	outlen = data[0];
	in = fuzz_copy(data + 1, size - 1);
	out = malloc(outlen ? outlen : 1);
	if (out == NULL)
		abort();
	if (gw_url_decode(in, size - 1, out, outlen, form) == 0) {
		size_t n;

		if (outlen == 0 || memchr(out, '\0', outlen) == NULL)
			FUZZ_FINDING(
			    "decoded without a NUL in %zu bytes", outlen);
		n = strlen(out);
		if (n > size - 1)
			FUZZ_FINDING("decoded to more bytes than it had");
	}
	free(out);
	free(in);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	if (size < 1)
		return 0;
	s = fuzz_str(data + 1, size - 1);
	switch (data[0] & 3) {
	case 0:
		duration(s);
		break;
	case 1:
		date(s);
		break;
	default:
		url_decode(data + 1, size - 1, (data[0] & 3) == 3);
		break;
	}
	free(s);
	return 0;
}
