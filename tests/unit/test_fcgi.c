/*
 * Unit tests for lib/fcgi.c: a real unix socket pair's one end is the
 * web server (records written and read back byte by byte here), the other
 * is accepted by gw_fcgi_accept.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fcgi.h"

struct fixture {
	char dir[64], path[128];
	int lfd, client;
	struct gw_fcgi c;
};

/* A record of type for request id, with pad bytes of padding. */
static size_t
put_record(
    unsigned char *w, int type, int id, const void *p, size_t n, size_t pad)
{
	w[0] = 1;
	w[1] = (unsigned char)type;
	w[2] = (unsigned char)(id >> 8);
	w[3] = (unsigned char)id;
	w[4] = (unsigned char)(n >> 8);
	w[5] = (unsigned char)n;
	w[6] = (unsigned char)pad;
	w[7] = 0;
	memcpy(w + 8, p, n);
	memset(w + 8 + n, 0xee, pad);
	return 8 + n + pad;
}

/* A name-value pair; a value of 128 bytes or more takes 4 length bytes. */
static size_t
put_pair(unsigned char *w, const char *name, const char *value)
{
	size_t nl = strlen(name), vl = strlen(value), o = 0;

	w[o++] = (unsigned char)nl;
	if (vl < 128) {
		w[o++] = (unsigned char)vl;
	} else {
		w[o++] = (unsigned char)(0x80 | (vl >> 24));
		w[o++] = (unsigned char)(vl >> 16);
		w[o++] = (unsigned char)(vl >> 8);
		w[o++] = (unsigned char)vl;
	}
	memcpy(w + o, name, nl);
	memcpy(w + o + nl, value, vl);
	return o + nl + vl;
}

static size_t
put_begin(unsigned char *w, int id, int role, int keep)
{
	unsigned char b[8] = {0, (unsigned char)role, (unsigned char)keep};

	return put_record(w, 1, id, b, sizeof(b), 0);
}

static void
send_all(int fd, const void *p, size_t n)
{
	assert_int_equal(write(fd, p, n), (ssize_t)n);
}

/* Everything the responder wrote until it stops (100 ms of silence). */
static size_t
read_back(int fd, unsigned char *out, size_t cap)
{
	size_t o = 0;
	struct pollfd p = {.fd = fd, .events = POLLIN};

	while (o < cap && poll(&p, 1, 100) > 0) {
		ssize_t n = read(fd, out + o, cap - o);

		if (n <= 0)
			break;
		o += (size_t)n;
	}
	return o;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

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
	gw_fcgi_init(&f->c, f->lfd);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	gw_fcgi_free(&f->c);
	close(f->lfd);
	if (f->client >= 0)
		close(f->client);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* One request's parameters (split over two records) and a padded body. */
static size_t
request(unsigned char *w, int id, int keep, const char *uri, const char *body)
{
	unsigned char params[1024];
	char longv[300];
	size_t o = 0, pn = 0;

	memset(longv, 'v', sizeof(longv) - 1);
	longv[sizeof(longv) - 1] = '\0';
	pn += put_pair(params + pn, "REQUEST_METHOD", "POST");
	pn += put_pair(params + pn, "REQUEST_URI", uri);
	pn += put_pair(params + pn, "HTTP_X_LONG", longv);
	pn +=
	    put_pair(params + pn, "HTTP_A=B", "v"); /* no such name: dropped */
	o += put_begin(w + o, id, 1, keep);
	/* The pairs cut mid-way: a pair may span records. */
	o += put_record(w + o, 4, id, params, 5, 0);
	o += put_record(w + o, 4, id, params + 5, pn - 5, 3);
	o += put_record(w + o, 4, id, "", 0, 0);
	if (body[0] != '\0')
		o += put_record(w + o, 5, id, body, strlen(body), 7);
	o += put_record(w + o, 5, id, "", 0, 5); /* the end, padded too */
	return o;
}

static void
read_body(struct gw_fcgi *c, char *out, size_t cap)
{
	size_t o = 0;
	ssize_t n;

	while ((n = gw_fcgi_read(c, out + o, cap - 1 - o)) > 0)
		o += (size_t)n;
	assert_int_equal(n, 0);
	out[o] = '\0';
}

/* The answer's records: stdout "hello", empty stdout, end-request. */
static void
assert_answer(const unsigned char *r, size_t n, int id, const char *text)
{
	size_t tl = strlen(text);

	assert_int_equal(n, 8 + tl + 8 + 16);
	assert_int_equal(r[1], 6);
	assert_int_equal((r[2] << 8) | r[3], id);
	assert_int_equal((r[4] << 8) | r[5], tl);
	assert_memory_equal(r + 8, text, tl);
	r += 8 + tl;
	assert_int_equal(r[1], 6); /* empty stdout: the stream's end */
	assert_int_equal((r[4] << 8) | r[5], 0);
	assert_int_equal(r[8 + 1], 3); /* FCGI_END_REQUEST */
	assert_int_equal((r[8 + 2] << 8) | r[8 + 3], id);
	assert_int_equal((r[8 + 4] << 8) | r[8 + 5], 8);
	assert_int_equal(r[16 + 4], 0); /* FCGI_REQUEST_COMPLETE */
}

static void
test_request_and_answer(void **state)
{
	struct fixture *f = *state;
	unsigned char msg[4096], back[4096];
	char body[64];
	size_t n = request(msg, 7, 0, "/v1/models?x=1", "{\"a\":1}");

	send_all(f->client, msg, n);
	assert_int_equal(gw_fcgi_accept(&f->c), 0);
	assert_int_equal(f->c.id, 7);
	assert_string_equal(
	    gw_fcgi_param(f->c.envp, "REQUEST_URI"), "/v1/models?x=1");
	assert_string_equal(gw_fcgi_param(f->c.envp, "REQUEST_METHOD"), "POST");
	assert_int_equal(strlen(gw_fcgi_param(f->c.envp, "HTTP_X_LONG")), 299);
	assert_null(gw_fcgi_param(f->c.envp, "REQUEST"));
	assert_null(gw_fcgi_param(f->c.envp, "HTTP_X"));
	assert_null(gw_fcgi_param(f->c.envp, "HTTP_A"));
	/* The same through the kept name lengths. */
	assert_string_equal(
	    gw_fcgi_get(&f->c, "REQUEST_URI"), "/v1/models?x=1");
	assert_string_equal(gw_fcgi_get(&f->c, "REQUEST_METHOD"), "POST");
	assert_int_equal(strlen(gw_fcgi_get(&f->c, "HTTP_X_LONG")), 299);
	assert_null(gw_fcgi_get(&f->c, "REQUEST"));
	assert_null(gw_fcgi_get(&f->c, "REQUEST_URIX"));
	assert_null(gw_fcgi_get(&f->c, "HTTP_A"));
	assert_null(f->c.envp[3]); /* three parameters */
	read_body(&f->c, body, sizeof(body));
	assert_string_equal(body, "{\"a\":1}");
	assert_int_equal(gw_fcgi_write(&f->c, "hel", 3), 0);
	assert_int_equal(gw_fcgi_write(&f->c, "lo", 2), 0);
	gw_fcgi_finish(&f->c);
	/* One record for both writes, and the connection closed (no keep). */
	assert_answer(
	    back, read_back(f->client, back, sizeof(back)), 7, "hello");
	assert_int_equal(f->c.fd, -1);
	assert_int_equal(read(f->client, back, 1), 0);
}

static void
test_keep_conn_takes_the_next_request(void **state)
{
	struct fixture *f = *state;
	unsigned char msg[8192], back[4096];
	char body[64];
	size_t n = request(msg, 1, 1, "/a", "one");

	n += request(msg + n, 2, 1, "/b", "");
	send_all(f->client, msg, n);
	assert_int_equal(gw_fcgi_accept(&f->c), 0);
	assert_string_equal(gw_fcgi_param(f->c.envp, "REQUEST_URI"), "/a");
	read_body(&f->c, body, sizeof(body));
	assert_string_equal(body, "one");
	gw_fcgi_write(&f->c, "A", 1);
	gw_fcgi_finish(&f->c);
	assert_answer(back, read_back(f->client, back, sizeof(back)), 1, "A");
	assert_true(f->c.fd >= 0); /* kept */
	/* The second request, already buffered, on the same connection. */
	assert_int_equal(gw_fcgi_accept(&f->c), 0);
	assert_int_equal(f->c.id, 2);
	assert_string_equal(gw_fcgi_param(f->c.envp, "REQUEST_URI"), "/b");
	read_body(&f->c, body, sizeof(body));
	assert_string_equal(body, "");
	gw_fcgi_write(&f->c, "B", 1);
	gw_fcgi_finish(&f->c);
	assert_answer(back, read_back(f->client, back, sizeof(back)), 2, "B");
}

static void
test_unread_body_is_drained(void **state)
{
	struct fixture *f = *state;
	unsigned char *msg = malloc(300 * 1024), back[4096];
	char *big = malloc(40000);
	size_t n;

	memset(big, 'x', 39999);
	big[39999] = '\0';
	/* Kept: the unread body must not be taken for the next request. */
	n = request(msg, 1, 1, "/a", big);
	n += request(msg + n, 2, 1, "/b", "two");
	send_all(f->client, msg, n);
	assert_int_equal(gw_fcgi_accept(&f->c), 0);
	gw_fcgi_write(&f->c, "no", 2); /* answered without reading it */
	gw_fcgi_finish(&f->c);
	assert_answer(back, read_back(f->client, back, sizeof(back)), 1, "no");
	assert_true(f->c.fd >= 0);
	assert_int_equal(gw_fcgi_accept(&f->c), 0);
	assert_int_equal(f->c.id, 2);
	assert_string_equal(gw_fcgi_param(f->c.envp, "REQUEST_URI"), "/b");
	free(msg);
	free(big);
}

static void
test_management_and_refusals(void **state)
{
	struct fixture *f = *state;
	unsigned char msg[4096], back[4096], pairs[64];
	size_t n = 0, pn = 0, got;

	/* FCGI_GET_VALUES before any request: answered with what is known. */
	pn += put_pair(pairs + pn, "FCGI_MPXS_CONNS", "");
	pn += put_pair(pairs + pn, "NO_SUCH", "");
	n += put_record(msg + n, 9, 0, pairs, pn, 0);
	/* An authorizer: refused with FCGI_UNKNOWN_ROLE, connection kept. */
	n += put_begin(msg + n, 3, 2, 1);
	/* Request 4; a second begins before its body ends: refused. */
	n += put_begin(msg + n, 4, 1, 1);
	pn = put_pair(pairs, "REQUEST_URI", "/ok");
	n += put_record(msg + n, 4, 4, pairs, pn, 0);
	n += put_record(msg + n, 4, 4, "", 0, 0);
	n += put_begin(msg + n, 5, 1, 1);
	n += put_record(msg + n, 5, 4, "", 0, 0);
	send_all(f->client, msg, n);
	assert_int_equal(gw_fcgi_accept(&f->c), 0);
	assert_int_equal(f->c.id, 4);
	got = read_back(f->client, back, sizeof(back));
	/* GET_VALUES_RESULT: FCGI_MPXS_CONNS=0 only. */
	assert_int_equal(back[1], 10);
	assert_int_equal((back[4] << 8) | back[5], 2 + 15 + 1);
	assert_memory_equal(back + 10, "FCGI_MPXS_CONNS0", 16);
	/* Then the role's refusal. */
	assert_int_equal(got, 8 + 18 + 16);
	assert_int_equal(back[26 + 1], 3);
	assert_int_equal(back[26 + 3], 3);
	assert_int_equal(back[26 + 8 + 4], 3); /* FCGI_UNKNOWN_ROLE */
	/* Reading the body meets the other request's begin: refused. */
	{
		char body[8];

		read_body(&f->c, body, sizeof(body));
	}
	got = read_back(f->client, back, sizeof(back));
	assert_int_equal(got, 16);
	assert_int_equal(back[1], 3);
	assert_int_equal(back[3], 5);
	assert_int_equal(back[8 + 4], 1); /* FCGI_CANT_MPX_CONN */
}

static void
test_broken_records_close_the_connection(void **state)
{
	struct fixture *f = *state;
	unsigned char msg[4096];
	int second;
	size_t n;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	/* Version 2, then a good request on a second connection. */
	n = put_begin(msg, 1, 1, 0);
	msg[0] = 2;
	send_all(f->client, msg, n);
	strcpy(sa.sun_path, f->path);
	second = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(
	    connect(second, (struct sockaddr *)&sa, sizeof(sa)), 0);
	n = request(msg, 9, 0, "/second", "");
	send_all(second, msg, n);
	assert_int_equal(gw_fcgi_accept(&f->c), 0);
	assert_int_equal(f->c.id, 9);
	assert_string_equal(gw_fcgi_param(f->c.envp, "REQUEST_URI"), "/second");
	/* The first was closed: its peer reads the end. */
	assert_int_equal(read(f->client, msg, 1), 0);
	close(second);
}

static void
test_large_answer_spans_records(void **state)
{
	struct fixture *f = *state;
	unsigned char msg[4096];
	size_t len = 150 * 1000, got = 0, o = 0, text = 0;
	unsigned char *back = malloc(len + 4096);
	char *payload = malloc(len);

	memset(payload, 'p', len);
	send_all(f->client, msg, request(msg, 1, 0, "/big", ""));
	assert_int_equal(gw_fcgi_accept(&f->c), 0);
	assert_int_equal(gw_fcgi_write(&f->c, payload, len), 0);
	gw_fcgi_finish(&f->c);
	got = read_back(f->client, back, len + 4096);
	/* Records of at most 65535 bytes, then the two end records. */
	while (o + 8 <= got && back[o + 1] == 6) {
		size_t rl = ((size_t)back[o + 4] << 8) | back[o + 5];

		assert_true(rl <= 65535);
		text += rl;
		o += 8 + rl + back[o + 6];
		if (rl == 0)
			break;
	}
	assert_int_equal(text, len);
	assert_int_equal(back[o + 1], 3);
	assert_int_equal(o + 16, got);
	free(back);
	free(payload);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_request_and_answer, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_keep_conn_takes_the_next_request, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_unread_body_is_drained, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_management_and_refusals, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_broken_records_close_the_connection, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_large_answer_spans_records, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
