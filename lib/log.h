/*
 * log.h: one event = one logfmt line on fd 2, e.g.
 *   ts=2026-11-25T12:00:00.123Z lvl=warn prog=chat pid=412 req=7f3a.. mod=db
 * msg="..." Never pass bearer tokens, Authorization values, DSN passwords or
 * prompt bodies to these functions.
 */
#ifndef GW_LOG_H
#define GW_LOG_H

#include "util.h"

enum gw_log_level {
	GW_LOG_ERR = 0,
	GW_LOG_WARN,
	GW_LOG_INFO,
	GW_LOG_DEBUG,
};

/*
 * Set the program name and level. When file is non-NULL and non-empty it
 * is opened for append and dup2()ed onto fd 2, so that stderr of every
 * thread lands there (spawn-fcgi without -n discards stderr). Returns 0, or
 * -1 with errno when the file cannot be opened.
 */
int gw_log_init(const char *prog, enum gw_log_level level, const char *file)
    GW_NONNULL(1);
/* Reopen the log file given to gw_log_init (after rotation); 0 or -1. */
int gw_log_reopen(void);
void gw_log_set_level(enum gw_log_level level);
/* 1 when events at this level are written: test before costly formatting. */
int gw_log_enabled(enum gw_log_level level);

/* req_id may be NULL; when set (a request's id), it is added as req=. */
void gw_log_msg(enum gw_log_level level, const char *req_id, const char *mod,
    const char *fmt, ...) GW_PRINTF(4, 5);
/* Like gw_log_msg at error level, appending err="strerror(errno)". */
void gw_log_errno(const char *req_id, const char *mod, const char *fmt, ...)
    GW_PRINTF(3, 4);
/*
 * A warning that is logged once per process: the first call with *flag
 * still 0 logs msg and sets it (atomically); later calls do nothing.
 */
void gw_log_warn_once(int *flag, const char *mod, const char *msg)
    GW_NONNULL(1, 2, 3);
/*
 * Write a line made of pre-built logfmt fields (no msg=), for access logs:
 * fields is e.g. `method=GET path=/health status=200 dur_ms=1.2`.
 */
void gw_log_fields(enum gw_log_level level, const char *req_id, const char *mod,
    const char *fields) GW_NONNULL(3, 4);
/*
 * Append value to b as a logfmt value: bare if it has no space, quote,
 * equals sign or control character, else quoted with escapes.
 */
void gw_log_append_value(struct gw_buf *b, const char *value) GW_NONNULL(1, 2);

#define gw_log_err(req, mod, ...) gw_log_msg(GW_LOG_ERR, req, mod, __VA_ARGS__)
#define gw_log_warn(req, mod, ...)                                             \
	gw_log_msg(GW_LOG_WARN, req, mod, __VA_ARGS__)
#define gw_log_info(req, mod, ...)                                             \
	gw_log_msg(GW_LOG_INFO, req, mod, __VA_ARGS__)
#define gw_log_debug(req, mod, ...)                                            \
	do {                                                                   \
		if (gw_log_enabled(GW_LOG_DEBUG))                              \
			gw_log_msg(GW_LOG_DEBUG, req, mod, __VA_ARGS__);       \
	} while (0)

#endif /* GW_LOG_H */
