/* fcgi_fixed: the trivial FastCGI responder of the benchmark floor.
 *
 * It answers every request with the same small chat.completion JSON, never
 * reads the body beyond what libfcgi buffers, talks to no upstream and no
 * database. It is what "lighttpd + a FastCGI program" costs before any work
 * of llmgw's own.
 *
 *   fcgi_fixed [-p PROCESSES] [-t THREADS]    (listening socket on fd 0,
 *                                              as spawn-fcgi -n passes it)
 *
 * The parent forks PROCESSES children of THREADS threads each, all blocked in
 * FCGX_Accept_r on fd 0. SIGTERM/SIGINT to the parent stops the children
 * (they also die with the parent through PR_SET_PDEATHSIG).
 *
 * Build: gcc -O2 -pthread -o fcgi_fixed fcgi_fixed.c -lfcgi
 */
#include <fcgiapp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static const char BODY[] =
    "{\"id\":\"chatcmpl-fixed\",\"object\":\"chat.completion\","
    "\"created\":1700000000,\"model\":\"qwen3-30b-a3b\",\"choices\":[{"
    "\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
    "\"tok1 tok2 tok3 tok4 tok5 \"},\"logprobs\":null,"
    "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1,"
    "\"completion_tokens\":5,\"total_tokens\":6}}";

static void *
serve(void *arg)
{
	FCGX_Request req;
	char head[160];
	int hlen;

	(void)arg;
	hlen = snprintf(head, sizeof(head),
	    "Status: 200 OK\r\nContent-Type: application/json\r\n"
	    "Content-Length: %zu\r\n\r\n",
	    sizeof(BODY) - 1);
	if (FCGX_InitRequest(&req, 0, 0) != 0)
		return NULL;
	for (;;) {
		if (FCGX_Accept_r(&req) < 0)
			break;
		FCGX_PutStr(head, hlen, req.out);
		FCGX_PutStr(BODY, (int)sizeof(BODY) - 1, req.out);
		FCGX_Finish_r(&req);
	}
	return NULL;
}

static void
child(int threads)
{
	pthread_t *tid = calloc((size_t)threads, sizeof(*tid));
	pthread_attr_t attr;
	int i;

	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() == 1)
		_exit(0);
	FCGX_Init();
	/* libfcgi turns SIGTERM into a flag that blocked threads never see. */
	signal(SIGTERM, SIG_DFL);
	signal(SIGPIPE, SIG_IGN);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	for (i = 0; i < threads; i++)
		pthread_create(&tid[i], &attr, serve, NULL);
	for (i = 0; i < threads; i++)
		pthread_join(tid[i], NULL);
	_exit(0);
}

static volatile sig_atomic_t stop;

static void
on_term(int sig)
{
	(void)sig;
	stop = 1;
}

int
main(int argc, char **argv)
{
	int procs = 2, threads = 8, opt, i;
	pid_t *kids;
	sigset_t block, old;

	while ((opt = getopt(argc, argv, "p:t:")) != -1) {
		if (opt == 'p')
			procs = atoi(optarg);
		else if (opt == 't')
			threads = atoi(optarg);
		else {
			fprintf(stderr, "usage: fcgi_fixed [-p N] [-t N]\n");
			return 2;
		}
	}
	if (procs < 1 || threads < 1)
		return 2;
	kids = calloc((size_t)procs, sizeof(*kids));
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &old);
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	for (i = 0; i < procs; i++) {
		kids[i] = fork();
		if (kids[i] == 0) {
			sigprocmask(SIG_SETMASK, &old, NULL);
			child(threads);
		}
	}
	while (!stop)
		sigsuspend(&old);
	for (i = 0; i < procs; i++)
		if (kids[i] > 0)
			kill(kids[i], SIGTERM);
	for (i = 0; i < procs; i++)
		if (kids[i] > 0)
			waitpid(kids[i], NULL, 0);
	return 0;
}
