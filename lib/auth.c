/* auth.c: bearer-token authentication. */
#include "auth.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "req.h"
#include "util.h"

const char *
gw_auth_bearer(const struct gw_req *req)
{
	const char *h = gw_req_header(req, "Authorization");

	if (h == NULL)
		return NULL;
	while (*h == ' ')
		h++;
	if (strncasecmp(h, "Bearer ", 7) != 0)
		return NULL;
	h += 7;
	while (*h == ' ')
		h++;
	return *h != '\0' ? h : NULL;
}

/* "sk-...wxyz" from the last four characters, for logs and messages. */
static void
abbreviate(const char *token, char out[16])
{
	size_t n = strlen(token);

	snprintf(out, 16, "sk-...%s", n >= 4 ? token + n - 4 : "");
}

enum gw_status
gw_auth_check(const struct gw_req *req, struct gw_principal *who, char *msg,
    size_t msglen)
{
	const char *token = gw_auth_bearer(req);
	const char *master = req->cfg->master_key;

	memset(who, 0, sizeof(*who));
	if (token == NULL) {
		snprintf(msg, msglen,
		    "Authentication Error, No api key passed in. Send "
		    "'Authorization: Bearer <key>'.");
		return GW_E_AUTH;
	}
	if (master != NULL && gw_ct_streq(token, master)) {
		who->role = GW_ROLE_ADMIN;
		abbreviate(token, who->key_name);
		return GW_OK;
	}
	abbreviate(token, who->key_name);
	snprintf(msg, msglen,
	    "Authentication Error, Invalid proxy server token passed. "
	    "Received API Key = %s",
	    who->key_name);
	who->role = GW_ROLE_NONE;
	return GW_E_AUTH;
}
