/* log.c: logfmt lines on fd 2, one write(2) per event. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *log_prog = "llmgw";
static enum gw_log_level log_level = GW_LOG_INFO;
static char log_path[4096];

static const char *const level_names[] = {"err", "warn", "info", "debug"};
/* getpid(2) is a system call per line otherwise; forks refresh it. */
static pid_t log_pid;

static void
log_after_fork(void)
{
	log_pid = getpid();
}

/* util.c's last words before an abort, as a log line. */
static void
util_fatal(const char *mod, const char *msg)
{
	gw_log_msg(GW_LOG_ERR, NULL, mod, "%s", msg);
}

int
gw_log_init(const char *prog, enum gw_log_level level, const char *file)
{
	static int hooked;

	if (!hooked) {
		pthread_atfork(NULL, NULL, log_after_fork);
		gw_util_set_fatal(util_fatal);
		hooked = 1;
	}
	log_pid = getpid();
	log_prog = prog;
	log_level = level;
	log_path[0] = '\0';
	if (file != NULL && file[0] != '\0') {
		snprintf(log_path, sizeof(log_path), "%s", file);
		return gw_log_reopen();
	}
	return 0;
}

int
gw_log_reopen(void)
{
	int fd;

	if (log_path[0] == '\0')
		return 0;
	fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		return -1;
	if (fd != STDERR_FILENO) {
		if (dup2(fd, STDERR_FILENO) < 0) {
			close(fd);
			return -1;
		}
		close(fd);
	}
	return 0;
}

void
gw_log_set_level(enum gw_log_level level)
{
	log_level = level;
}

int
gw_log_enabled(enum gw_log_level level)
{
	return level <= log_level;
}

void
gw_log_append_value(struct gw_buf *b, const char *v)
{
	const unsigned char *p;
	int bare = v[0] != '\0';

	for (p = (const unsigned char *)v; *p && bare; p++)
		if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' ||
		    *p == 0x7f)
			bare = 0;
	if (bare) {
		gw_buf_puts(b, v);
		return;
	}
	gw_buf_append(b, "\"", 1);
	for (p = (const unsigned char *)v; *p; p++) {
		if (*p == '"' || *p == '\\') {
			char e[2] = {'\\', (char)*p};
			gw_buf_append(b, e, 2);
		} else if (*p == '\n') {
			gw_buf_append(b, "\\n", 2);
		} else if (*p == '\t') {
			gw_buf_append(b, "\\t", 2);
		} else if (*p < ' ' || *p == 0x7f) {
			gw_buf_printf(b, "\\x%02x", *p);
		} else {
			gw_buf_append(b, p, 1);
		}
	}
	gw_buf_append(b, "\"", 1);
}

static void
line_begin(struct gw_buf *b, enum gw_log_level level, const char *req_id,
    const char *mod)
{
	char ts[32];

	gw_time_rfc3339(gw_now_real_us(), ts);
	gw_buf_puts(b, "ts=");
	gw_buf_puts(b, ts);
	gw_buf_puts(b, " lvl=");
	gw_buf_puts(b, level_names[level]);
	gw_buf_puts(b, " prog=");
	gw_buf_puts(b, log_prog);
	gw_buf_puts(b, " pid=");
	gw_buf_put_i64(b, log_pid);
	if (req_id != NULL && req_id[0] != '\0') {
		gw_buf_puts(b, " req=");
		gw_buf_puts(b, req_id);
	}
	gw_buf_puts(b, " mod=");
	gw_log_append_value(b, mod);
}

static void
line_write(struct gw_buf *b)
{
	gw_buf_append(b, "\n", 1);
	/* One write per line; a short write on stderr is not retried. */
	if (write(STDERR_FILENO, b->p, b->len) < 0) {
		/* Nowhere left to report it. */
	}
	gw_buf_fini(b);
}

static void GW_PRINTF(5, 0) log_v(enum gw_log_level level, const char *req_id,
    const char *mod, const char *err, const char *fmt, va_list ap)
{
	struct gw_buf b = {0};
	char msg[2048];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	line_begin(&b, level, req_id, mod);
	gw_buf_puts(&b, " msg=");
	gw_log_append_value(&b, msg);
	if (err != NULL) {
		gw_buf_puts(&b, " err=");
		gw_log_append_value(&b, err);
	}
	line_write(&b);
}

void
gw_log_msg(enum gw_log_level level, const char *req_id, const char *mod,
    const char *fmt, ...)
{
	va_list ap;

	if (!gw_log_enabled(level))
		return;
	va_start(ap, fmt);
	log_v(level, req_id, mod, NULL, fmt, ap);
	va_end(ap);
}

void
gw_log_errno(const char *req_id, const char *mod, const char *fmt, ...)
{
	va_list ap;
	char err[256];
	int saved = errno;

	snprintf(err, sizeof(err), "%s", strerror(saved));
	va_start(ap, fmt);
	log_v(GW_LOG_ERR, req_id, mod, err, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
gw_log_warn_once(int *flag, const char *mod, const char *msg)
{
	if (!__atomic_exchange_n(flag, 1, __ATOMIC_RELAXED))
		gw_log_warn(NULL, mod, "%s", msg);
}

void
gw_log_fields(enum gw_log_level level, const char *req_id, const char *mod,
    const char *fields)
{
	struct gw_buf b = {0};

	if (!gw_log_enabled(level))
		return;
	line_begin(&b, level, req_id, mod);
	gw_buf_append(&b, " ", 1);
	gw_buf_puts(&b, fields);
	line_write(&b);
}
