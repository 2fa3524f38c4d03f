/* route.c: the route tables' one dispatcher (404, 405, who may call). */
#include "route.h"

#include <stdio.h>
#include <string.h>

#include "ratelimit.h"
#include "req.h"
#include "util.h"

/*
 * Does path fit pat? An exact pattern must equal it; "{}" stands for a
 * non-empty run (slashes allowed) between what comes before and after.
 */
static int
path_fits(const char *pat, const char *path, size_t *off, size_t *len)
{
	const char *w;
	size_t pre, suf, plen;

	*off = *len = 0;
	/* Most routes are exact: one comparison says it. */
	if (strcmp(pat, path) != 0) {
		if ((w = strchr(pat, '{')) == NULL || w[1] != '}')
			return 0;
	} else if ((w = strchr(pat, '{')) == NULL || w[1] != '}') {
		return 1;
	}
	pre = (size_t)(w - pat);
	suf = strlen(w + 2);
	plen = strlen(path);
	if (plen < pre + suf + 1 || strncmp(pat, path, pre) != 0 ||
	    strcmp(path + plen - suf, w + 2) != 0)
		return 0;
	*off = pre;
	*len = plen - pre - suf;
	return 1;
}

/* GET routes answer HEAD too. */
static int
method_fits(const char *want, const char *method)
{
	return strcmp(want, method) == 0 ||
	       (strcmp(method, "HEAD") == 0 && strcmp(want, "GET") == 0);
}

const struct gw_route *
gw_route_find(const struct gw_router *rt, const char *method, const char *path,
    size_t *param_off, size_t *param_len, char *allow, size_t allowlen)
{
	size_t i, off, len, used = 0;

	allow[0] = '\0';
	for (i = 0; i < rt->n; i++) {
		if (method_fits(rt->routes[i].method, method) &&
		    path_fits(rt->routes[i].path, path, param_off, param_len))
			return &rt->routes[i];
	}
	/* Not served: is the path known under another method? */
	for (i = 0; i < rt->n; i++) {
		const char *m = rt->routes[i].method;

		if (!path_fits(rt->routes[i].path, path, &off, &len))
			continue;
		if (strcmp(m, "GET") == 0)
			m = "GET, HEAD";
		if (strstr(allow, m) != NULL)
			continue;
		used += (size_t)snprintf(allow + used,
		    used < allowlen ? allowlen - used : 0, "%s%s",
		    used ? ", " : "", m);
	}
	*param_off = *param_len = 0;
	return NULL;
}

/* The label a route is counted and logged under. */
static const char *
label_of(const struct gw_route *r)
{
	return r->label != NULL ? r->label : r->path;
}

void
gw_route_not_found(struct gw_req *req)
{
	char msg[300];

	req->route = "unknown";
	snprintf(msg, sizeof(msg), "Route not found: %s %.200s", req->method,
	    req->path);
	gw_reply_error_ex(req, 404, "not_found_error", NULL, msg);
}

void
gw_route_refusal(enum gw_access access, enum gw_user_role role,
    const char *label, char *msg, size_t msglen)
{
	static const enum gw_user_role order[] = {GW_USER_PROXY_ADMIN,
	    GW_USER_PROXY_ADMIN_VIEWER, GW_USER_INTERNAL,
	    GW_USER_INTERNAL_VIEWER};
	size_t i, used, k = 0;

	used = (size_t)snprintf(msg, msglen,
	    "user not allowed to access this route, role= %s. Trying to "
	    "access: %s. Needs role",
	    gw_auth_role_name(role), label);
	for (i = 0; i < GW_ARRAY_LEN(order); i++) {
		if ((access & order[i]) == 0)
			continue;
		used += (size_t)snprintf(msg + (used < msglen ? used : msglen),
		    used < msglen ? msglen - used : 0, "%s %s",
		    k++ ? " or" : "", gw_auth_role_name(order[i]));
	}
}

void
gw_route_take_caller(struct gw_route_call *c, struct gw_principal *dst)
{
	*dst = c->who;
	memset(&c->who, 0, sizeof(c->who));
}

/* The first route serving path under any method. */
static const struct gw_route *
known_route(const struct gw_router *rt, const char *path)
{
	size_t i, off, len;

	for (i = 0; i < rt->n; i++)
		if (path_fits(rt->routes[i].path, path, &off, &len))
			return &rt->routes[i];
	return NULL;
}

/*
 * The route's label for logs and metrics; a key in the path never reaches
 * a log: such a path becomes the label.
 */
static void
set_label(struct gw_req *req, const struct gw_route *r, size_t pathlen)
{
	req->route = label_of(r);
	if (r->flags & GW_ROUTE_SECRET_PARAM)
		gw_strlcpy(req->path, req->route, pathlen + 1);
}

enum gw_status
gw_dispatch(struct gw_req *req, const struct gw_router *rt)
{
	const struct gw_route *r;
	struct gw_route_call c;
	char allow[64], msg[400];
	const char *p = req->path;
	size_t len = strlen(req->path), plen, off, n;
	enum gw_status st;

	/* A trailing slash names the same resource. */
	while (len > 1 && req->path[len - 1] == '/')
		req->path[--len] = '\0';
	plen = rt->prefix != NULL ? strlen(rt->prefix) : 0;
	if (plen > 0 && strncmp(p, rt->prefix, plen) == 0 && p[plen] == '/')
		p += plen;
	r = gw_route_find(rt, req->method, p, &off, &n, allow, sizeof(allow));
	if (r == NULL && allow[0] != '\0') {
		set_label(req, known_route(rt, p), len);
		gw_req_add_header(req, "Allow", "%s", allow);
		gw_reply_error(req, GW_E_METHOD, NULL);
		return GW_OK;
	}
	if (r == NULL) {
		gw_route_not_found(req);
		return GW_OK;
	}
	if (n >= sizeof(c.param)) {
		set_label(req, r, len);
		gw_route_not_found(req);
		return GW_OK;
	}
	c.route = r;
	memcpy(c.param, p + off, n);
	c.param[n] = '\0';
	set_label(req, r, len);
	if (r->access == GW_ACCESS_PUBLIC) {
		memset(&c.who, 0, sizeof(c.who));
		return r->fn(req, &c);
	}
	if ((st = gw_auth_check(req, &c.who, msg, sizeof(msg))) != GW_OK) {
		/* A wrong key costs its source (a database outage does not). */
		if (st == GW_E_AUTH) {
			struct gw_rl_client_limits lim;

			gw_rl_client_limits_of(req->cfg, &lim);
			gw_rl_client_auth_failed(
			    gw_req_client(req), &lim, gw_now_mono_us() * 1000);
		}
		gw_auth_reply(req, st, &c.who, msg);
		return GW_OK;
	}
	if ((r->access & c.who.urole) == 0) {
		gw_route_refusal(
		    r->access, c.who.urole, req->route, msg, sizeof(msg));
		gw_reply_error_ex(req, 403, "permission_error", NULL, msg);
		st = GW_OK;
	} else {
		st = r->fn(req, &c);
	}
	if (rt->log_caller)
		gw_req_log_field(req, "caller", c.who.key_name);
	gw_auth_release(&c.who);
	return st;
}
