/* server.c: supervisor, worker processes, accept threads, signals. */
#include "server.h"

#include <errno.h>
#include <fcgiapp.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "evloop.h"
#include "http_upstream.h"
#include "jwtauth.h"
#include "log.h"
#include "metrics.h"
#include "ratelimit.h"
#include "rlshare.h"
#include "sha256.h"
#include "shm.h"
#include "req.h"
#include "util.h"

#define MAX_PROCESSES 64
/* How often an idle-or-not worker hands its allocator's free pages back. */
#define TRIM_EVERY_S 10

/* The current configuration; threads pick up a new one by generation. */
static pthread_mutex_t cfg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct gw_cfg *cur_cfg;
static unsigned cur_gen;

/*
 * A worker thread: its reference to the configuration and the resources
 * its handlers borrow (struct gw_ctx), never shared between threads.
 */
struct gw_thread {
	const struct gw_cfg *cfg;
	unsigned cfg_gen;
	struct gw_ctx ctx;
};

static const struct gw_server_ops *g_ops;
static int listen_fd;
static int stopping;
static int accept_errors;

/*
 * Live worker threads and detached requests, for a bounded wait at
 * shutdown.
 */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t live_cond = PTHREAD_COND_INITIALIZER;
static int live_threads;

static void
live_begin(void)
{
	pthread_mutex_lock(&live_lock);
	live_threads++;
	pthread_mutex_unlock(&live_lock);
}

static void
live_end(void)
{
	pthread_mutex_lock(&live_lock);
	live_threads--;
	pthread_cond_signal(&live_cond);
	pthread_mutex_unlock(&live_lock);
}

static void
usage(const char *prog)
{
	fprintf(stderr,
	    "usage: llmgw-%s [-c config] [-t] [-g section.key] [-s socket] "
	    "[-1]\n"
	    "       llmgw-%s -h | --help\n",
	    prog, prog);
}

#ifndef GW_VERSION
#define GW_VERSION "dev"
#endif

/* The routes each family answers (the fronts send them there). */
static const char *
family_routes(const char *prog)
{
	static const struct {
		const char *prog, *routes;
	} t[] = {
	    {"chat",
	        "/v1/chat/completions, /v1/completions, /v1/models,\n"
	        "/v1/model/info, /v1/model_group/info (and each without /v1)"},
	    {"embeddings", "/v1/embeddings, /embeddings"},
	    {"keys", "/key/..., /user/..., /team/... (keys, users, teams, "
	             "members)"},
	    {"spend", "/spend/..., /global/spend/..., /user/daily/activity, "
	              "/team/daily/activity"},
	    {"health", "/health, /health/liveliness, /health/readiness, "
	               "/metrics; a 404\n"
	               "in the OpenAI error shape for every other path"},
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (strcmp(t[i].prog, prog) == 0)
			return t[i].routes;
	return "its route family";
}

/* -h, --help: the manual, on stdout. */
static void
help(const char *prog)
{
	printf("llmgw-%s %s: the llmgw %s route family, a FastCGI program\n"
	       "\n"
	       "usage: llmgw-%s [-c config] [-t] [-g section.key] [-s socket] "
	       "[-1]\n"
	       "\n"
	       "Answers:\n%s.\n\n"
	       "Run under spawn-fcgi (the listening socket is fd 0) behind "
	       "lighttpd or\nApache; a supervisor of [gateway] processes "
	       "workers of [gateway] threads\nthreads each. SIGHUP reloads the "
	       "configuration (a bad file is refused,\nthe old one stays) and "
	       "reopens [log] file; SIGTERM finishes the requests\nin flight "
	       "(up to [gateway] shutdown_timeout_s) and exits.\n"
	       "\n"
	       "Options:\n"
	       "  -c FILE  the configuration (default $LLMGW_CONFIG, else "
	       "/etc/llmgw/llmgw.conf)\n"
	       "  -t       check the configuration, print \"FILE: "
	       "configuration ok\", exit\n"
	       "  -g NAME  print the effective value of section.key (after the "
	       "environment)\n           and exit\n"
	       "  -s PATH  listen on this unix socket instead of fd 0\n"
	       "  -1       one worker process, no supervisor (debugging)\n"
	       "  -h, --help  this text\n"
	       "\n"
	       "Files:\n"
	       "  /etc/llmgw/llmgw.conf     the configuration (conf/llmgw.conf "
	       "documents it)\n"
	       "  [auth] master_key_file    the master key, first line\n"
	       "  [spend] spool_dir         spend rows not yet in "
	       "PostgreSQL\n"
	       "  [gateway] shm_path        the state all families share\n"
	       "  [log] file                the log (else stderr)\n"
	       "\n"
	       "Environment:\n"
	       "  LLMGW_CONFIG              the configuration file\n"
	       "  LLMGW_MASTER_KEY          the master key (wins over "
	       "master_key_file)\n"
	       "  LANGFUSE_HOST, LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY\n"
	       "                            override [langfuse]\n"
	       "\n"
	       "Exit status:\n"
	       "  0  stopped on SIGTERM; -t or -g succeeded; -h\n"
	       "  1  the configuration (or log file) is bad, or -g names no "
	       "setting\n"
	       "  2  bad usage\n",
	    prog, GW_VERSION, prog, prog, family_routes(prog));
}

static void
swap_cfg(struct gw_cfg *cfg)
{
	struct gw_cfg *old;

	pthread_mutex_lock(&cfg_lock);
	old = cur_cfg;
	cur_cfg = cfg;
	__atomic_add_fetch(&cur_gen, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&cfg_lock);
	gw_cfg_unref(old);
}

/* Load the file again; on success make it current. Old config stays else. */
static int
reload_cfg(void)
{
	struct gw_cfg *cfg = NULL;
	char err[1024];

	if (gw_cfg_load(cur_cfg->path, &cfg, err, sizeof(err)) != GW_OK) {
		gw_log_err(NULL, "config",
		    "reload refused, keeping the old "
		    "configuration: %s",
		    err);
		return -1;
	}
	gw_cfg_reload_report(cur_cfg, cfg);
	gw_log_set_level((enum gw_log_level)cfg->log_level);
	swap_cfg(cfg);
	if (gw_log_reopen() < 0)
		gw_log_errno(NULL, "log", "cannot reopen the log file");
	gw_log_info(
	    NULL, "config", "configuration reloaded from %s", cur_cfg->path);
	return 0;
}

static void
thread_refresh_cfg(struct gw_thread *th)
{
	const struct gw_cfg *old = th->cfg;

	if (th->cfg != NULL &&
	    th->cfg_gen == __atomic_load_n(&cur_gen, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&cfg_lock);
	th->cfg = gw_cfg_ref(cur_cfg);
	th->cfg_gen = cur_gen;
	pthread_mutex_unlock(&cfg_lock);
	/* The handle connects on first use: making one costs no I/O. */
	if (old == NULL ||
	    strcmp(old->db_conninfo, th->cfg->db_conninfo) != 0) {
		gw_db_free(th->ctx.db);
		th->ctx.db = gw_db_new(th->cfg->db_conninfo,
		    th->cfg->db_connect_timeout_s,
		    th->cfg->db_statement_timeout_ms);
	}
	gw_cfg_unref((struct gw_cfg *)old);
}

/* Answer 429 with Retry-After and msg. */
static int
refuse(struct gw_req *req, int retry, const char *msg)
{
	req->route = "rate_limited";
	gw_req_add_header(req, "Retry-After", "%d", retry);
	gw_reply_error_ex(req, 429, "rate_limit_error", NULL, msg);
	return 0;
}

/*
 * Before any other work: the client source's bucket ([rate_limit] rps,
 * burst; rps 0: off), its failed authentications (auth_failures_per_min),
 * and the optional host-wide cap (host_rps). One client flooding takes
 * only its own tokens. Health routes are never limited. 0 when refused
 * (answered).
 */
static int
admit(struct gw_req *req)
{
	const struct gw_cfg *cfg = req->cfg;
	int64_t now = gw_now_mono_us() * 1000;
	struct gw_rl_client_limits lim;
	enum gw_rl_client_verdict v;
	char msg[200];
	int retry = 1;

	if (!g_ops->rate_limited)
		return 1;
	gw_rl_client_limits_of(cfg, &lim);
	v = gw_rl_client_admit(gw_req_client(req), &lim, now, &retry);
	if (v == GW_RL_CLIENT_AUTH_FAILURES) {
		snprintf(msg, sizeof(msg),
		    "Too many failed authentications from this address. Retry "
		    "in %d s.",
		    retry);
		return refuse(req, retry, msg);
	}
	if (v == GW_RL_CLIENT_RATE) {
		snprintf(msg, sizeof(msg),
		    "Rate limit exceeded: this gateway takes %d requests/s per "
		    "client (bursts of %d). Retry in %d s.",
		    cfg->rate_limit_rps, cfg->rate_limit_burst, retry);
		return refuse(req, retry, msg);
	}
	if (cfg->rl_host_rps > 0 &&
	    !gw_rl_take_global((double)cfg->rl_host_rps,
	        (double)cfg->rl_host_burst, now, &retry)) {
		snprintf(msg, sizeof(msg),
		    "Rate limit exceeded: this gateway takes %d requests/s in "
		    "all (bursts of %d). Retry in %d s.",
		    cfg->rl_host_rps, cfg->rl_host_burst, retry);
		return refuse(req, retry, msg);
	}
	return 1;
}

/* requests_total{route,model,status} and the request duration. */
static void
count_request(struct gw_req *req)
{
	char labels[GW_METRICS_LABELS_MAX], status[21];

	gw_fmt_u64(status, (uint64_t)(req->status ? req->status : 499));
	gw_metrics_inc(GW_METRIC_REQUESTS,
	    gw_metrics_labels(labels, sizeof(labels), "route", req->route,
	        "model", req->model, "status", status, NULL),
	    1);
	gw_metrics_observe(GW_HIST_REQUEST,
	    gw_metrics_labels(labels, sizeof(labels), "route", req->route,
	        "model", req->model, NULL),
	    (double)(gw_now_mono_us() - req->start_mono_us) / 1e6);
}

/* Every request ends here, on its thread or on the event loop. */
static void
req_ended(struct gw_req *req)
{
	gw_metrics_gauge_add_pid(GW_METRIC_IN_FLIGHT, -1);
	count_request(req);
}

/* A detached request counts as live (for SIGTERM) until it is closed. */
static const struct gw_req_hooks req_hooks = {req_ended, live_end};

/*
 * glibc's allocator, set for a long-lived threaded worker: two arenas, not
 * eight per core, each keeping its own high-water mark of pages; fixed
 * mmap and trim thresholds, since by default a freed large block raises
 * both to its size for good, after which the heap keeps megabytes it no
 * longer uses; and a per-thread cache of small blocks only (up to 256
 * bytes): each thread keeps up to 7 freed blocks of every size it has
 * seen, which no trim returns, and with 16 threads meeting ever new sizes
 * of answers and bodies that grows for hours. glibc reads the last one
 * only at start (a tunable, no mallopt), so gw_server_main starts the
 * program again with GW_TUNABLES once; mallopt sets the rest in case it
 * could not. An operator's own MALLOC_ARENA_MAX or GLIBC_TUNABLES wins.
 */
#define GW_ARENA_MAX 2
#define GW_MMAP_THRESHOLD 262144 /* 256 KiB */
#define GW_TRIM_THRESHOLD 524288 /* 512 KiB */
#define GW_TCACHE_MAX 256
#define GW_STR_(x) #x
#define GW_STR(x) GW_STR_(x)
/* One tunable a line. */
/* clang-format off */
#define GW_TUNABLES                                                          \
	"glibc.malloc.arena_max=" GW_STR(GW_ARENA_MAX)                       \
	":glibc.malloc.mmap_threshold=" GW_STR(GW_MMAP_THRESHOLD)            \
	":glibc.malloc.trim_threshold=" GW_STR(GW_TRIM_THRESHOLD)            \
	":glibc.malloc.tcache_max=" GW_STR(GW_TCACHE_MAX)
/* clang-format on */
#define GW_TUNED_ENV "LLMGW_MALLOC_TUNED"

/* 1 when the environment tunes the allocator itself (not our re-exec). */
static int
operator_tuned(void)
{
	return getenv("MALLOC_ARENA_MAX") != NULL ||
	       (getenv("GLIBC_TUNABLES") != NULL &&
	           getenv(GW_TUNED_ENV) == NULL);
}

/*
 * Start this program again with GW_TUNABLES; returns when it cannot, or
 * when /proc/self/exe is not the program argv[0] names (run under valgrind
 * or another loader, whose own binary that is): then it runs as it is.
 */
static void
reexec_tuned(char **argv)
{
	struct stat self, prog;

	if (operator_tuned() || getenv(GW_TUNED_ENV) != NULL)
		return;
	if (strchr(argv[0], '/') == NULL ||
	    stat("/proc/self/exe", &self) != 0 || stat(argv[0], &prog) != 0 ||
	    self.st_dev != prog.st_dev || self.st_ino != prog.st_ino)
		return;
	if (setenv("GLIBC_TUNABLES", GW_TUNABLES, 1) != 0 ||
	    setenv(GW_TUNED_ENV, "1", 1) != 0)
		return;
	execv("/proc/self/exe", argv);
	gw_log_errno(NULL, "server",
	    "cannot start again with the allocator's tunables (running "
	    "without its small-block cache bound)");
	unsetenv("GLIBC_TUNABLES");
}

static void
tune_malloc(void)
{
	if (operator_tuned())
		return;
	mallopt(M_ARENA_MAX, GW_ARENA_MAX);
	mallopt(M_MMAP_THRESHOLD, GW_MMAP_THRESHOLD);
	mallopt(M_TRIM_THRESHOLD, GW_TRIM_THRESHOLD);
}

/*
 * Frees the parallel-request slots of workers that died (kill -9), renews
 * this host's shared leases (rlshare.h) on its own connection, and every
 * TRIM_EVERY_S returns the allocator's free pages to the system, so RSS
 * follows the memory in use rather than its peak.
 */
static void *
reaper(void *arg)
{
	struct gw_db *db = NULL;
	const struct gw_cfg *cfg;
	unsigned ticks = 0;

	(void)arg;
	for (;;) {
		sleep(1);
		if (++ticks % TRIM_EVERY_S == 0)
			malloc_trim(0);
		gw_rl_reap();
		pthread_mutex_lock(&cfg_lock);
		cfg = gw_cfg_ref(cur_cfg);
		pthread_mutex_unlock(&cfg_lock);
		gw_rlshare_beat(&db, cfg);
		gw_cfg_unref((struct gw_cfg *)cfg);
	}
	return NULL;
}

static void *
worker_thread(void *arg)
{
	struct gw_thread *th = arg;
	struct gw_req req = {0};
	struct gw_fcgi fr;
	enum gw_status st;

	th->ctx.up = gw_upstream_new();
	thread_refresh_cfg(th);
	gw_fcgi_init(&fr, listen_fd);
	for (;;) {
		if (gw_fcgi_accept(&fr) < 0) {
			if (__atomic_load_n(&stopping, __ATOMIC_ACQUIRE))
				break;
			/*
			 * A sibling stopping shuts the shared socket down
			 * (EINVAL) just before our own SIGTERM: no error to
			 * report. Anything else is said once.
			 */
			if (__atomic_fetch_add(
			        &accept_errors, 1, __ATOMIC_RELAXED) == 0 &&
			    errno != EINVAL)
				gw_log_errno(NULL, "server", "accept failed");
			usleep(100 * 1000);
			continue;
		}
		thread_refresh_cfg(th);
		gw_req_begin(&req, &fr, &th->ctx, th->cfg, &req_hooks);
		gw_metrics_gauge_add_pid(GW_METRIC_IN_FLIGHT, 1);
		if (!admit(&req))
			; /* answered 429 */
		else if ((st = g_ops->handle(&req)) == GW_DETACHED) {
			/*
			 * It goes on on the event loop, which ends it
			 * (gw_req_done); it counts as live until closed.
			 */
			live_begin();
			gw_req_detach(&req, gw_loop_get());
		} else if (st != GW_OK) {
			gw_reply_error(&req, st, NULL);
		}
		gw_db_request_done(th->ctx.db);
		if (req.fr != NULL) {
			gw_req_end(&req);
			/* The answer and its end records in one write. */
			gw_fcgi_finish(&fr);
		}
		if (__atomic_load_n(&stopping, __ATOMIC_ACQUIRE))
			break;
	}
	gw_fcgi_free(&fr);
	gw_req_fini(&req);
	gw_db_free(th->ctx.db);
	gw_upstream_free(th->ctx.up);
	gw_cfg_unref((struct gw_cfg *)th->cfg);
	live_end();
	return NULL;
}

/* Wait for worker threads up to timeout_s; 1 when all have ended. */
static int
wait_threads(int timeout_s)
{
	struct timespec dl;
	int done;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += timeout_s;
	pthread_mutex_lock(&live_lock);
	while (live_threads > 0 &&
	       pthread_cond_timedwait(&live_cond, &live_lock, &dl) != ETIMEDOUT)
		;
	done = live_threads == 0;
	pthread_mutex_unlock(&live_lock);
	return done;
}

/*
 * An open stream holds two descriptors (the web server's connection and
 * the upstream's): the soft limit (often 1,024) goes up to the hard one.
 */
static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			gw_log_errno(
			    NULL, "server", "setrlimit(RLIMIT_NOFILE)");
	}
}

/* One worker process: threads accept; this thread handles signals. */
static int
run_worker(const sigset_t *sigs)
{
	struct gw_thread *ths;
	pthread_attr_t attr;
	pthread_t tid;
	int i, n = cur_cfg->threads, sig;

	raise_fd_limit();
	tune_malloc();
	if (FCGX_Init() != 0 || gw_upstream_global_init() != GW_OK ||
	    gw_sha256_init() != GW_OK) {
		gw_log_err(NULL, "server", "library initialisation failed");
		return 1;
	}
	gw_metrics_set_family(g_ops->prog);
	if (pthread_create(&tid, NULL, reaper, NULL) == 0)
		pthread_detach(tid);
	if (g_ops->process_init != NULL)
		g_ops->process_init(cur_cfg);
	ths = gw_xcalloc((size_t)n, sizeof(*ths));
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(
	    &attr, (size_t)cur_cfg->thread_stack_kb * 1024);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (i = 0; i < n; i++) {
		live_begin();
		if ((errno = pthread_create(
		         &tid, &attr, worker_thread, &ths[i])) != 0) {
			gw_log_errno(NULL, "server", "pthread_create");
			return 1;
		}
	}
	pthread_attr_destroy(&attr);
	gw_log_info(NULL, "server", "worker ready with %d threads", n);
	for (;;) {
		if (sigwait(sigs, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			reload_cfg();
			continue;
		}
		if (sig == SIGTERM || sig == SIGINT)
			break;
	}
	gw_log_info(NULL, "server", "stopping: finishing requests in flight");
	__atomic_store_n(&stopping, 1, __ATOMIC_RELEASE);
	/* Wakes every thread blocked in accept(2), here and in siblings. */
	shutdown(listen_fd, SHUT_RDWR);
	if (!wait_threads(cur_cfg->shutdown_timeout_s)) {
		gw_log_warn(NULL, "server",
		    "requests still running after %d s; "
		    "exiting anyway",
		    cur_cfg->shutdown_timeout_s);
		_exit(0);
	}
	if (g_ops->process_fini != NULL)
		g_ops->process_fini();
	free(ths);
	gw_cfg_unref(cur_cfg);
	return 0;
}

struct child {
	pid_t pid;
	int64_t started_us;
	int64_t restart_at_us; /* 0: running or not due */
};

static pid_t
spawn_worker(const sigset_t *sigs, struct child *c)
{
	pid_t pid = fork();

	if (pid < 0) {
		gw_log_errno(NULL, "server", "fork");
		return -1;
	}
	if (pid == 0) {
		/* A worker never outlives its supervisor. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() == 1)
			_exit(0);
		_exit(run_worker(sigs));
	}
	c->pid = pid;
	c->started_us = gw_now_mono_us();
	c->restart_at_us = 0;
	return pid;
}

static void
reap(struct child *kids, int n)
{
	int status, i;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (i = 0; i < n; i++) {
			if (kids[i].pid != pid)
				continue;
			kids[i].pid = 0;
			if (stopping)
				break;
			if (WIFSIGNALED(status))
				gw_log_err(NULL, "server",
				    "worker %d killed by "
				    "signal %d; restarting",
				    (int)pid, WTERMSIG(status));
			else
				gw_log_err(NULL, "server",
				    "worker %d exited "
				    "with status %d; restarting",
				    (int)pid, WEXITSTATUS(status));
			/* Crash loops are slowed to one restart a second. */
			kids[i].restart_at_us =
			    gw_now_mono_us() +
			    (gw_now_mono_us() - kids[i].started_us < 1000000
			            ? 1000000
			            : 0);
		}
	}
}

static int
alive(const struct child *kids, int n)
{
	int i, k = 0;

	for (i = 0; i < n; i++)
		k += kids[i].pid > 0;
	return k;
}

/* The supervisor: keeps n workers running until SIGTERM. */
static int
run_supervisor(const sigset_t *sigs)
{
	struct child kids[MAX_PROCESSES] = {{0}};
	int n = cur_cfg->processes, i, sig;
	int64_t deadline = 0;
	struct timespec ts = {0, 100 * 1000 * 1000};
	siginfo_t si;

	for (i = 0; i < n; i++)
		spawn_worker(sigs, &kids[i]);
	gw_log_info(NULL, "server", "supervisor started %d workers", n);
	for (;;) {
		sig = sigtimedwait(sigs, &si, &ts);
		if (sig == SIGCHLD)
			reap(kids, n);
		else if (sig == SIGHUP && !stopping) {
			if (reload_cfg() == 0)
				for (i = 0; i < n; i++)
					if (kids[i].pid > 0)
						kill(kids[i].pid, SIGHUP);
		} else if ((sig == SIGTERM || sig == SIGINT) && !stopping) {
			stopping = 1;
			deadline = gw_now_mono_us() +
			           (int64_t)(cur_cfg->shutdown_timeout_s + 5) *
			               1000000;
			for (i = 0; i < n; i++)
				if (kids[i].pid > 0)
					kill(kids[i].pid, SIGTERM);
		}
		reap(kids, n);
		if (stopping) {
			if (alive(kids, n) == 0)
				break;
			if (gw_now_mono_us() > deadline) {
				for (i = 0; i < n; i++)
					if (kids[i].pid > 0)
						kill(kids[i].pid, SIGKILL);
				deadline = gw_now_mono_us() + 1000000;
			}
			continue;
		}
		for (i = 0; i < n; i++)
			if (kids[i].pid == 0 && kids[i].restart_at_us &&
			    gw_now_mono_us() >= kids[i].restart_at_us)
				spawn_worker(sigs, &kids[i]);
	}
	gw_log_info(NULL, "server", "supervisor stopped");
	gw_cfg_unref(cur_cfg);
	return 0;
}

int
gw_server_main(int argc, char **argv, const struct gw_server_ops *ops)
{
	const char *path = getenv("LLMGW_CONFIG"), *get = NULL, *sock = NULL;
	int check = 0, single = 0, opt, type;
	socklen_t tlen = sizeof(type);
	struct gw_cfg *cfg = NULL;
	char err[1024], prog[64];
	sigset_t sigs;

	if (path == NULL || path[0] == '\0')
		path = "/etc/llmgw/llmgw.conf";
	if (argc > 1 && strcmp(argv[1], "--help") == 0) {
		help(ops->prog);
		return 0;
	}
	while ((opt = getopt(argc, argv, "c:tg:s:1h")) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 't':
			check = 1;
			break;
		case 'g':
			get = optarg;
			break;
		case 's':
			sock = optarg;
			break;
		case '1':
			single = 1;
			break;
		case 'h':
			help(ops->prog);
			return 0;
		default:
			usage(ops->prog);
			return 2;
		}
	}
	snprintf(prog, sizeof(prog), "%s", ops->prog);
	gw_log_init(prog, GW_LOG_INFO, NULL);
	if (gw_cfg_load(path, &cfg, err, sizeof(err)) != GW_OK) {
		fprintf(
		    stderr, "llmgw-%s: configuration error: %s\n", prog, err);
		return 1;
	}
	if (check || get != NULL) {
		int rc = 0;

		if (get != NULL &&
		    gw_cfg_print_value(cfg, get, stdout) != GW_OK) {
			fprintf(stderr, "llmgw-%s: unknown setting '%s'\n",
			    prog, get);
			rc = 1;
		} else if (check) {
			printf("%s: configuration ok\n", path);
		}
		gw_cfg_unref(cfg);
		return rc;
	}
	reexec_tuned(argv);
	if (gw_log_init(
	        prog, (enum gw_log_level)cfg->log_level, cfg->log_file) < 0) {
		fprintf(stderr, "llmgw-%s: cannot open log file %s: %s\n", prog,
		    cfg->log_file, strerror(errno));
		gw_cfg_unref(cfg);
		return 1;
	}
	cur_cfg = cfg;
	g_ops = ops;
	/* Mapped here, inherited by every worker forked below. */
	if (gw_shm_attach(cfg->shm_path) != GW_OK) {
		fprintf(stderr, "llmgw-%s: cannot map shared memory %s\n", prog,
		    cfg->shm_path);
		gw_cfg_unref(cfg);
		return 1;
	}
	if (sock != NULL) {
		listen_fd = FCGX_OpenSocket(sock, 4096);
		if (listen_fd < 0) {
			gw_log_errno(
			    NULL, "server", "cannot listen on %s", sock);
			return 1;
		}
	} else if (getsockopt(0, SOL_SOCKET, SO_TYPE, &type, &tlen) != 0) {
		fprintf(stderr,
		    "llmgw-%s: fd 0 is not a socket: start me with "
		    "spawn-fcgi, or pass -s SOCKET\n",
		    prog);
		gw_cfg_unref(cfg);
		return 1;
	}
	if (cfg->master_key == NULL)
		gw_log_warn(NULL, "config",
		    "no master key set: admin routes "
		    "will refuse every caller");
	gw_jwt_warn_cfg(cfg);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGCHLD);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	if (single)
		return run_worker(&sigs);
	return run_supervisor(&sigs);
}
