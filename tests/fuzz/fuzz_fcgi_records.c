/*
 * fuzz_fcgi_records: lib/fcgi.c reading what a web server sends. The
 * input is written to one end of a socket pair and that end shut; the
 * other end is the responder's connection (no listening socket: once it
 * drops the connection, accepting fails and the input is done). Each
 * request taken has its body read and is answered and ended. Findings
 * besides crashes, leaks and UB: a parameter without '=', a request id of
 * 0, or more body bytes than the input holds.
 */
#include "fuzz.h"

#include <sys/socket.h>
#include <unistd.h>

#include "fcgi.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gw_fcgi c;
	char body[4096];
	size_t total = 0;
	int sv[2], requests = 0;
	ssize_t n;

	/* The socket pair's buffer takes it without a reader. */
	if (size > 64 * 1024)
		return 0;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		abort();
	if (size > 0 && write(sv[1], data, size) != (ssize_t)size)
		abort();
	shutdown(sv[1], SHUT_WR);
	gw_fcgi_init(&c, -1);
	c.fd = sv[0];
	while (requests < 64 && gw_fcgi_accept(&c) == 0) {
		char **e;

		requests++;
		if (c.id == 0)
			FUZZ_FINDING("a request with id 0");
		for (e = c.envp; *e != NULL; e++)
			if (strchr(*e, '=') == NULL)
				FUZZ_FINDING("parameter '%s' without '='", *e);
		(void)gw_fcgi_param(c.envp, "REQUEST_URI");
		while ((n = gw_fcgi_read(&c, body, sizeof(body))) > 0)
			total += (size_t)n;
		if (total > size)
			FUZZ_FINDING("%zu body bytes from %zu", total, size);
		gw_fcgi_write(&c, "ok", 2);
		gw_fcgi_finish(&c);
	}
	gw_fcgi_free(&c);
	close(sv[1]);
	return 0;
}
