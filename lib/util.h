/*
 * util.h: attributes, aborting allocators, a growable byte buffer, clocks
 * and constant-time comparison shared by every module.
 */
#ifndef GW_UTIL_H
#define GW_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define GW_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define GW_NONNULL(...) __attribute__((nonnull(__VA_ARGS__)))
#define GW_NORETURN __attribute__((noreturn))
#define GW_UNUSED __attribute__((unused))
#define GW_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Log and abort() on a broken invariant. */
#define GW_ASSERT(x)                                                           \
	do {                                                                   \
		if (!(x))                                                      \
			gw_assert_fail(#x, __FILE__, __LINE__);                \
	} while (0)

GW_NORETURN void gw_assert_fail(const char *expr, const char *file, int line);
/*
 * Who says what util.c says just before it aborts (out of memory, a failed
 * assertion, no randomness): by default a plain line on stderr; log.c
 * installs its own writer (gw_log_init), so util needs no logger.
 */
void gw_util_set_fatal(void (*fn)(const char *mod, const char *msg));

/* Allocators that log and abort() on exhaustion: never return NULL. */
void *gw_xmalloc(size_t n);
void *gw_xcalloc(size_t nmemb, size_t size);
void *gw_xrealloc(void *p, size_t n);
char *gw_xstrdup(const char *s) GW_NONNULL(1);
/* A new string: the first n bytes of a, then b, then c. */
char *gw_xstrcat3(const char *a, size_t n, const char *b, const char *c)
    GW_NONNULL(1, 3, 4);
/* Copy src into dst of size n (n > 0), truncating; always terminated. */
void gw_strlcpy(char *dst, const char *src, size_t n) GW_NONNULL(1, 2);
char *gw_xstrndup(const char *s, size_t n) GW_NONNULL(1);
/*
 * URL-decode [s, s+n) into out (NUL-ended): %XX (two hex digits, nothing
 * else) becomes its byte, and with form set '+' becomes a space (query
 * strings; not paths). A '%' without two hex digits stays as it is.
 * 0, or -1 when the result does not fit in outlen or holds a NUL byte.
 */
int gw_url_decode(const char *s, size_t n, char *out, size_t outlen, int form)
    GW_NONNULL(1, 3);
/* Caller frees the result. */
char *gw_xasprintf(const char *fmt, ...) GW_PRINTF(1, 2);

/* A growable byte buffer, always NUL-terminated after len bytes. */
struct gw_buf {
	char *p;
	size_t len;
	size_t cap;
};

/* Append n bytes; grows as needed (aborts on OOM). */
void gw_buf_append(struct gw_buf *b, const void *data, size_t n);
void gw_buf_puts(struct gw_buf *b, const char *s);
/* Room for n more bytes (and the NUL) without growing again. */
void gw_buf_reserve(struct gw_buf *b, size_t n) GW_NONNULL(1);
/* Grow by n bytes (still terminated) and return where they go. */
char *gw_buf_extend(struct gw_buf *b, size_t n) GW_NONNULL(1);
/* Decimal digits without printf (hot paths): returns the length. */
size_t gw_fmt_u64(char out[21], uint64_t v);
void gw_buf_put_i64(struct gw_buf *b, int64_t v);
/*
 * printf's "%.<prec>g" of v (prec 1..17) into out, NUL-ended: the same
 * text, correctly rounded, without printf's cost where the value allows
 * (below 2^53 and not tiny), by printf itself otherwise. Returns the length.
 */
size_t gw_fmt_g(char out[32], double v, int prec);
/* thousandths / 1000 with three decimals ("%.3f" of a fixed-point value). */
void gw_buf_put_milli(struct gw_buf *b, int64_t thousandths);
void gw_buf_printf(struct gw_buf *b, const char *fmt, ...) GW_PRINTF(2, 3);
/* Empty the buffer, keeping up to keep_cap bytes of storage for reuse. */
void gw_buf_reset(struct gw_buf *b, size_t keep_cap);
/* Free the storage; b may be reused after. */
void gw_buf_fini(struct gw_buf *b);

/* Microseconds from CLOCK_MONOTONIC, for durations. */
int64_t gw_now_mono_us(void);
/* Microseconds since the epoch from CLOCK_REALTIME. */
int64_t gw_now_real_us(void);
/*
 * Format a realtime microsecond stamp as RFC 3339 UTC with milliseconds,
 * e.g. "2026-11-25T22:57:31.123Z". out needs 25 bytes.
 */
void gw_time_rfc3339(int64_t real_us, char out[32]);

/* 1 if the n bytes at a and b are equal; time depends only on n. */
int gw_ct_memeq(const void *a, const void *b, size_t n);
/* 1 if the strings are equal; time depends only on their lengths. */
int gw_ct_streq(const char *a, const char *b);

/* Fill buf with n bytes from the OS CSPRNG (getrandom); aborts on failure. */
void gw_random_bytes(void *buf, size_t n);

/*
 * Format 16 random bytes from a caller-owned xorshift state as a UUIDv4
 * string (36 chars + NUL). Not for secrets: request ids only.
 */
void gw_uuid4(uint64_t state[2], char out[37]);
/*
 * A UUIDv7 (RFC 9562): unix_ms in the first 48 bits, then random bits, so
 * ids sort by time and a table keyed by them grows at one end of its index.
 */
void gw_uuid7(uint64_t state[2], int64_t unix_ms, char out[37]);

/* FNV-1a of a NUL-terminated string: for in-process hash tables only. */
uint32_t gw_hash_str(const char *s) GW_NONNULL(1);

/* Trim ASCII whitespace from both ends in place; returns s. */
char *gw_strtrim(char *s) GW_NONNULL(1);

#endif /* GW_UTIL_H */
