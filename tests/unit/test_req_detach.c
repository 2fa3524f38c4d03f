/*
 * Unit tests for lib/req.c's detached requests: a real FastCGI connection
 * (a unix socket, lib/fcgi.c accepting), the request handed to the event
 * loop, and the records it writes read back and checked byte by byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "evloop.h"
#include "loop_wait.h"
#include "req.h"

#define PAYLOAD_LEN (150 * 1000) /* spans three stdout records */

struct fixture {
	char dir[64], path[128];
	int lfd, client;
	struct gw_fcgi fr;
	struct gw_req req;
	struct gw_cfg cfg;
};

static void
put_record(unsigned char **w, int type, const void *p, size_t n)
{
	unsigned char *h = *w;

	h[0] = 1;
	h[1] = (unsigned char)type;
	h[2] = 0;
	h[3] = 1; /* request id 1 */
	h[4] = (unsigned char)(n >> 8);
	h[5] = (unsigned char)n;
	h[6] = h[7] = 0;
	memcpy(h + 8, p, n);
	*w = h + 8 + n;
}

static void
put_param(unsigned char **w, const char *name, const char *value)
{
	unsigned char *p = *w;
	size_t nl = strlen(name), vl = strlen(value);

	*p++ = (unsigned char)nl;
	*p++ = (unsigned char)vl;
	memcpy(p, name, nl);
	memcpy(p + nl, value, vl);
	*w = p + nl + vl;
}

/* A request accepted by libfcgi, begun, its (empty) body read. */
static int closed_calls, ended_calls;

static void
on_end(struct gw_req *req)
{
	(void)req;
	ended_calls++; /* on the loop thread, before the test reads it */
}

static void
on_closed(void)
{
	closed_calls++; /* likewise */
}

/* What server.c sets: the request's one end, and its close. */
static const struct gw_req_hooks hooks = {on_end, on_closed};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	unsigned char msg[512], params[256], *w = msg, *pw = params;
	static const unsigned char begin[8] = {0, 1, 0}; /* responder */

	strcpy(f->dir, "/tmp/llmgw-test-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/s", f->dir);
	strcpy(sa.sun_path, f->path);
	f->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(f->lfd, 4), 0);
	f->client = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(
	    connect(f->client, (struct sockaddr *)&sa, sizeof(sa)), 0);
	put_param(&pw, "REQUEST_METHOD", "POST");
	put_param(&pw, "REQUEST_URI", "/v1/chat/completions");
	put_record(&w, 1, begin, sizeof(begin)); /* FCGI_BEGIN_REQUEST */
	put_record(&w, 4, params, (size_t)(pw - params)); /* FCGI_PARAMS */
	put_record(&w, 4, "", 0);
	put_record(&w, 5, "", 0); /* FCGI_STDIN: empty, ended */
	assert_int_equal(write(f->client, msg, (size_t)(w - msg)), w - msg);
	gw_fcgi_init(&f->fr, f->lfd);
	assert_int_equal(gw_fcgi_accept(&f->fr), 0);
	f->cfg.refs = 1;
	f->cfg.max_body_bytes = 1024;
	gw_req_begin(&f->req, &f->fr, NULL, &f->cfg, &hooks);
	assert_int_equal(gw_req_read_body(&f->req), GW_OK);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	gw_fcgi_free(&f->fr);
	gw_req_fini(&f->req);
	close(f->lfd);
	close(f->client);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static char *payload;

static void
answer(void *arg)
{
	struct gw_req *d = arg;

	gw_req_send_head(d, 200, "text/plain");
	gw_req_write(d, payload, PAYLOAD_LEN);
	gw_req_flush(d);
	gw_req_done(d); /* d is freed once written */
	loop_signal();
}

static void
test_detached_answer_is_framed(void **state)
{
	struct fixture *f = *state;
	struct gw_loop *l = gw_loop_get();
	struct gw_req *d;
	unsigned char *in = malloc(2 * PAYLOAD_LEN), *p;
	size_t got = 0, stdout_len = 0, i;
	ssize_t n;
	char *out = malloc(2 * PAYLOAD_LEN), expect_head[256];
	int end_seen = 0, empty_stdout = 0;

	payload = malloc(PAYLOAD_LEN);
	for (i = 0; i < PAYLOAD_LEN; i++)
		payload[i] = (char)('a' + i % 26);
	assert_non_null(l);
	d = gw_req_detach(&f->req, l);
	assert_null(f->req.fr); /* the thread's request is free again */
	assert_non_null(d->dout);
	assert_string_equal(d->method, "POST");
	assert_string_equal(d->path, "/v1/chat/completions");
	/* libfcgi let go of the connection: its next accept would not close it.
	 */
	assert_int_equal(f->fr.fd, -1);
	snprintf(expect_head, sizeof(expect_head),
	    "Status: 200 OK\r\nContent-Type: text/plain\r\nx-request-id: "
	    "%s\r\nx-litellm-call-id: %s\r\n\r\n",
	    d->id, d->id);
	loop_reset();
	closed_calls = ended_calls = 0;
	gw_loop_post(l, answer, d);
	/* Read until the loop closes the connection. */
	while ((n = read(f->client, in + got, 2 * PAYLOAD_LEN - got)) > 0)
		got += (size_t)n;
	loop_wait(1);
	for (p = in; p + 8 <= in + got;) {
		size_t len = ((size_t)p[4] << 8) | p[5];

		assert_int_equal(p[0], 1);
		assert_int_equal((p[2] << 8) | p[3], 1); /* its request id */
		assert_true(p + 8 + len + p[6] <= in + got);
		if (p[1] == 6) { /* FCGI_STDOUT */
			assert_false(empty_stdout);
			if (len == 0)
				empty_stdout = 1;
			memcpy(out + stdout_len, p + 8, len);
			stdout_len += len;
		} else {
			assert_int_equal(p[1], 3); /* FCGI_END_REQUEST */
			assert_int_equal(len, 8);
			assert_true(empty_stdout);
			assert_memory_equal(p + 8, "\0\0\0\0\0\0\0\0", 8);
			end_seen = 1;
		}
		p += 8 + len + p[6];
	}
	assert_ptr_equal(p, in + got);
	assert_true(end_seen);
	/* The close that gave EOF came after the call back. */
	assert_int_equal(closed_calls, 1);
	assert_int_equal(ended_calls, 1);
	assert_int_equal(stdout_len, strlen(expect_head) + PAYLOAD_LEN);
	assert_memory_equal(out, expect_head, strlen(expect_head));
	assert_memory_equal(out + strlen(expect_head), payload, PAYLOAD_LEN);
	free(in);
	free(out);
	free(payload);
}

struct gone_check {
	struct gw_req *d;
	int gone;
	enum gw_status wst;
};

static void
check_gone(void *arg)
{
	struct gone_check *g = arg;

	g->gone = gw_req_client_gone(g->d);
	if (g->gone) {
		g->wst = gw_req_write(g->d, "late", 4);
		gw_req_done(g->d); /* closes at once */
	}
	loop_signal();
}

static void
test_client_gone_is_seen_without_writing(void **state)
{
	struct fixture *f = *state;
	struct gw_loop *l = gw_loop_get();
	struct gone_check g = {0};
	int i;

	g.d = gw_req_detach(&f->req, l);
	closed_calls = ended_calls = 0;
	close(f->client);
	f->client = -1;
	loop_reset();
	for (i = 0; i < 100 && !g.gone; i++) {
		gw_loop_post(l, check_gone, &g);
		loop_wait(i + 1);
		if (!g.gone)
			usleep(10000);
	}
	assert_true(g.gone);
	assert_int_not_equal(g.wst, GW_OK);
	assert_int_equal(closed_calls, 1);
	assert_int_equal(ended_calls, 1);
}

struct async_seen {
	struct gw_req *d;
	void *arg;
	int on_loop_thread;
	char path[64];
};

static pthread_t test_thread;

/* What a handler asked with gw_req_go_async: run with the detached req. */
static void
async_answer(struct gw_req *d, void *arg)
{
	struct async_seen *seen = arg;

	seen->d = d;
	seen->arg = arg;
	seen->on_loop_thread = !pthread_equal(pthread_self(), test_thread);
	snprintf(seen->path, sizeof(seen->path), "%s", d->path);
	gw_req_send_head(d, 204, NULL);
	gw_req_done(d);
	loop_signal();
}

static void
test_go_async_runs_on_the_loop_once_detached(void **state)
{
	struct fixture *f = *state;
	struct async_seen seen = {0};
	struct gw_req *d;
	char buf[4096];

	test_thread = pthread_self();
	assert_int_equal(
	    gw_req_go_async(&f->req, async_answer, &seen), GW_DETACHED);
	loop_reset();
	closed_calls = ended_calls = 0;
	/* What the server does with a handler's GW_DETACHED. */
	d = gw_req_detach(&f->req, gw_loop_get());
	assert_null(f->req.fr);
	assert_null(
	    f->req.async_fn); /* the thread's next request starts clean */
	while (read(f->client, buf, sizeof(buf)) > 0)
		;
	loop_wait(1);
	assert_ptr_equal(seen.d, d);
	assert_ptr_equal(seen.arg, &seen);
	assert_true(seen.on_loop_thread);
	assert_string_equal(seen.path, "/v1/chat/completions");
	assert_int_equal(ended_calls, 1);
	assert_int_equal(closed_calls, 1);
	/* A request already detached cannot go again. */
	assert_int_equal(
	    gw_req_go_async(&f->req, async_answer, &seen), GW_E_UNAVAILABLE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_detached_answer_is_framed, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_client_gone_is_seen_without_writing, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_go_async_runs_on_the_loop_once_detached, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
