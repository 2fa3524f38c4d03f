/* Unit tests for lib/route.c: which route a method and path find. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "route.h"
#include "util.h"

static enum gw_status
fn(struct gw_req *req, struct gw_route_call *c)
{
	(void)req;
	(void)c;
	return GW_OK;
}

static const struct gw_route routes[] = {
    {"POST", "/chat/completions", GW_ACCESS_CALLER, fn, "chat", 0, 0},
    {"GET", "/models", GW_ACCESS_CALLER, fn, "models", 0, 0},
    {"GET", "/models/{}", GW_ACCESS_CALLER, fn, "models", 0, 0},
    {"POST", "/key/{}/regenerate", GW_ACCESS_ADMIN, fn, "/key/regenerate", 0,
        GW_ROUTE_SECRET_PARAM},
    {"GET", "/team/info", GW_ACCESS_CALLER, fn, NULL, 0, 0},
    {"POST", "/team/info", GW_ACCESS_ADMIN, fn, NULL, 0, 0},
};
static const struct gw_router rt = {"/v1", routes, GW_ARRAY_LEN(routes), 0};

/* The route found for method and path (NULL: none), with its param. */
static const struct gw_route *
find(const char *method, const char *path, char *param, char *allow)
{
	size_t off = 99, len = 99;
	const struct gw_route *r =
	    gw_route_find(&rt, method, path, &off, &len, allow, 64);

	memcpy(param, path + off, len);
	param[len] = '\0';
	return r;
}

static void
test_exact_routes_and_methods(void **state)
{
	char param[256], allow[64];

	(void)state;
	assert_ptr_equal(
	    find("POST", "/chat/completions", param, allow), &routes[0]);
	assert_string_equal(param, "");
	assert_ptr_equal(find("GET", "/models", param, allow), &routes[1]);
	/* GET routes answer HEAD. */
	assert_ptr_equal(find("HEAD", "/models", param, allow), &routes[1]);
	/* A known path under another method: none, and what it allows. */
	assert_null(find("GET", "/chat/completions", param, allow));
	assert_string_equal(allow, "POST");
	assert_null(find("HEAD", "/chat/completions", param, allow));
	assert_string_equal(allow, "POST");
	assert_null(find("DELETE", "/models", param, allow));
	assert_string_equal(allow, "GET, HEAD");
	/* Several methods on one path: each once. */
	assert_ptr_equal(find("POST", "/team/info", param, allow), &routes[5]);
	assert_null(find("PUT", "/team/info", param, allow));
	assert_string_equal(allow, "GET, HEAD, POST");
	/* Unknown: none, nothing allowed. */
	assert_null(find("GET", "/chat/completion", param, allow));
	assert_string_equal(allow, "");
	assert_null(find("POST", "/chat/completions/x", param, allow));
	assert_string_equal(allow, "");
	assert_null(find("GET", "", param, allow));
	assert_string_equal(allow, "");
}

static void
test_patterns_take_a_non_empty_run(void **state)
{
	char param[256], allow[64];

	(void)state;
	assert_ptr_equal(
	    find("GET", "/models/qwen3", param, allow), &routes[2]);
	assert_string_equal(param, "qwen3");
	/* Slashes belong to the run ("org/model"); escapes stay raw. */
	assert_ptr_equal(
	    find("GET", "/models/org/m%2Fx", param, allow), &routes[2]);
	assert_string_equal(param, "org/m%2Fx");
	/* "/models/" is not "/models/{}": the run is never empty. */
	assert_null(find("POST", "/models/", param, allow));
	assert_string_equal(allow, "");
	assert_ptr_equal(
	    find("POST", "/key/sk-abc/regenerate", param, allow), &routes[3]);
	assert_string_equal(param, "sk-abc");
	assert_ptr_equal(
	    find("POST", "/key/a/b/regenerate", param, allow), &routes[3]);
	assert_string_equal(param, "a/b");
	assert_null(find("POST", "/key//regenerate", param, allow));
	/* A path spelling the pattern is a path like any other. */
	assert_ptr_equal(find("GET", "/models/{}", param, allow), &routes[2]);
	assert_string_equal(param, "{}");
	assert_null(find("POST", "/key/regenerate", param, allow));
	assert_null(find("POST", "/key/x/regenerat", param, allow));
	assert_null(find("GET", "/key/x/regenerate", param, allow));
	assert_string_equal(allow, "POST");
}

static void
test_refusal_names_the_roles_needed(void **state)
{
	char msg[400];

	(void)state;
	gw_route_refusal(GW_ACCESS_SELF, GW_USER_INTERNAL_VIEWER,
	    "/key/generate", msg, sizeof(msg));
	assert_string_equal(msg,
	    "user not allowed to access this route, role= "
	    "internal_user_viewer. Trying to access: /key/generate. Needs "
	    "role proxy_admin or internal_user");
	gw_route_refusal(GW_ACCESS_ADMIN, GW_USER_PROXY_ADMIN_VIEWER,
	    "/user/new", msg, sizeof(msg));
	assert_string_equal(msg,
	    "user not allowed to access this route, role= proxy_admin_viewer. "
	    "Trying to access: /user/new. Needs role proxy_admin");
	/* Cut, never overrun. */
	gw_route_refusal(
	    GW_ACCESS_SELF_READ, GW_USER_INTERNAL_VIEWER, "/key/list", msg, 40);
	assert_int_equal(strlen(msg), 39);
	/* Every role fits CALLER; ADMIN_READ is the two admin roles. */
	assert_true((GW_ACCESS_CALLER & GW_USER_INTERNAL_VIEWER) != 0);
	assert_true((GW_ACCESS_ADMIN_READ & GW_USER_INTERNAL) == 0);
	assert_true((GW_ACCESS_SELF & GW_USER_PROXY_ADMIN_VIEWER) == 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_exact_routes_and_methods),
	    cmocka_unit_test(test_patterns_take_a_non_empty_run),
	    cmocka_unit_test(test_refusal_names_the_roles_needed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
