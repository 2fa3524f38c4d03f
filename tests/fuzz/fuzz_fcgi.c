/*
 * fuzz_fcgi: FastCGI parameter handling (lib/req.c) over a fake
 * struct gw_fcgi whose envp is built from the input, as
 * tests/unit/test_auth.c builds one: each line is one "NAME=VALUE"
 * parameter, up to 64 of them. gw_req_begin splits REQUEST_URI, then
 * every parameter is looked up with gw_req_param, every HTTP_ one with
 * gw_req_header under its HTTP name (and the last line as a header name,
 * any length), and every name in the query string with gw_req_query into
 * an output of a length taken from the input. Findings besides crashes
 * and leaks: path + "?" + query other than REQUEST_URI, a parameter
 * lookup that misses, or a decoded query value longer than its text.
 */
#include "fuzz.h"

#include <ctype.h>

#include "config.h"
#include "log.h"
#include "req.h"

#define MAXENV 64

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	gw_log_set_level(GW_LOG_ERR);
	return 0;
}

/* The HTTP name of an HTTP_ parameter: HTTP_X_API_KEY -> x-api-key. */
static void
header_name(const char *param, size_t n, char *out, size_t outlen)
{
	size_t i, o = 0;

	for (i = 5; i < n && o + 1 < outlen; i++)
		out[o++] = param[i] == '_'
		               ? '-'
		               : (char)tolower((unsigned char)param[i]);
	out[o] = '\0';
}

static void
queries(struct gw_req *req, unsigned outlen)
{
	const char *p = req->query;
	char name[256], *out = malloc(outlen ? outlen : 1);

	if (out == NULL)
		abort();
	while (*p != '\0') {
		size_t n = strcspn(p, "&="), vlen;
		const char *v = p + n;
		enum gw_status st;

		vlen = *v == '=' ? strcspn(v + 1, "&") : 0;
		if (n < sizeof(name)) {
			memcpy(name, p, n);
			name[n] = '\0';
			st = gw_req_query(req, name, out, outlen);
			if (st == GW_E_NOTFOUND)
				FUZZ_FINDING("query '%s' not found", name);
			/* The first of a repeated name is the one returned. */
			if (st == GW_OK && strlen(out) > vlen &&
			    strstr(req->query, name) == p)
				FUZZ_FINDING("query '%s' grew", name);
		}
		p += n;
		p += strcspn(p, "&");
		if (*p == '&')
			p++;
	}
	(void)gw_req_query(req, "", out, outlen);
	(void)gw_req_query(req, "model", out, outlen);
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const headers[] = {"Authorization", "Content-Type",
	    "Content-Length", "x-litellm-api-key", "X-Request-Id", ""};
	struct gw_fcgi fr;
	struct gw_cfg cfg;
	struct gw_req req;
	char *text, *env[MAXENV + 1], *p, hname[256];
	const char *uri, *v;
	unsigned outlen;
	size_t i, n = 0;

	if (size < 1)
		return 0;
	outlen = data[0];
	text = fuzz_str(data + 1, size - 1);
	for (p = text; n < MAXENV && *p != '\0';) {
		env[n++] = p;
		p += strcspn(p, "\n");
		if (*p == '\n')
			*p++ = '\0';
	}
	env[n] = NULL;
	memset(&fr, 0, sizeof(fr));
	memset(&cfg, 0, sizeof(cfg));
	memset(&req, 0, sizeof(req));
	fr.envp = env;
	fr.fd = -1;
	gw_req_begin(&req, &fr, NULL, &cfg, NULL);

	uri = gw_req_param(&req, "REQUEST_URI");
	if (uri != NULL && uri[0] != '\0') {
		size_t plen = strlen(req.path);

		if (strncmp(uri, req.path, plen) != 0 ||
		    (uri[plen] != '\0' &&
		        (uri[plen] != '?' ||
		            strcmp(uri + plen + 1, req.query))))
			FUZZ_FINDING("'%s' split into '%s' and '%s'", uri,
			    req.path, req.query);
	}
	for (i = 0; i < n; i++) {
		const char *eq = strchr(env[i], '=');
		char name[256];
		size_t k = eq ? (size_t)(eq - env[i]) : 0;

		if (eq == NULL || k >= sizeof(name))
			continue;
		memcpy(name, env[i], k);
		name[k] = '\0';
		if ((v = gw_req_param(&req, name)) == NULL)
			FUZZ_FINDING("parameter '%s' not found", name);
		if (k > 5 && strncmp(name, "HTTP_", 5) == 0) {
			header_name(name, k, hname, sizeof(hname));
			(void)gw_req_header(&req, hname);
		}
	}
	for (i = 0; i < sizeof(headers) / sizeof(headers[0]); i++)
		(void)gw_req_header(&req, headers[i]);
	if (n > 0)
		(void)gw_req_header(&req, env[n - 1]);
	queries(&req, outlen);
	gw_req_end(&req);
	gw_req_fini(&req);
	free(text);
	return 0;
}
