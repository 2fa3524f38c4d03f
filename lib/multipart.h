/*
 * multipart.h: a small bounded scanner of multipart/form-data bodies
 * (RFC 7578, RFC 2046 section 5.1) for audio uploads. It finds each part's
 * form name, whether it carries a file, and where its data lies in the
 * body; it never looks into a part's data beyond searching it for the
 * next delimiter, so an audio file is never parsed. Work is linear in the
 * body (one memmem pass), memory constant: nothing is copied but names.
 */
#ifndef GW_MULTIPART_H
#define GW_MULTIPART_H

#include <stddef.h>

#include "err.h"

/* RFC 2046: a boundary is 1 to 70 characters. */
#define GW_MULTIPART_BOUNDARY_MAX 70
/* Parts a body may hold, and bytes of one part's headers. */
#define GW_MULTIPART_PARTS_MAX 64
#define GW_MULTIPART_HEAD_MAX 4096
/* A form field's name, NUL included. */
#define GW_MULTIPART_NAME_MAX 64

/* One part, as the scanner found it (offsets into the body scanned). */
struct gw_multipart_part {
	char name[GW_MULTIPART_NAME_MAX]; /* Content-Disposition name= */
	int is_file;                      /* ... and it has a filename= */
	size_t head_off;                  /* its first header byte */
	size_t data_off;                  /* its first data byte */
	size_t data_len;                  /* up to the CRLF of the delimiter */
};

/*
 * The boundary of a Content-Type header value such as
 * "multipart/form-data; boundary=----x" (quoted or not) into out
 * (NUL-ended). GW_OK, or GW_E_INVALID when ctype is not
 * multipart/form-data, has no boundary, or one RFC 2046 refuses, or it
 * does not fit in outlen.
 */
enum gw_status gw_multipart_boundary(
    const char *ctype, char *out, size_t outlen) GW_NONNULL(1, 2);

/*
 * Scan body[0, len) delimited by boundary: fn(arg, part) for each part in
 * order (the part is borrowed for the call); fn returns 0 to go on, else
 * the scan stops there with GW_OK. GW_E_INVALID with a message in msg
 * (NUL-ended) when the body is no multipart of that boundary: no first
 * delimiter, a part's headers unended or longer than
 * GW_MULTIPART_HEAD_MAX, a part without "Content-Disposition: form-data"
 * and a name (or one longer than GW_MULTIPART_NAME_MAX - 1), more than
 * GW_MULTIPART_PARTS_MAX parts, no close delimiter.
 */
enum gw_status gw_multipart_scan(const char *body, size_t len,
    const char *boundary,
    int (*fn)(void *arg, const struct gw_multipart_part *part), void *arg,
    char *msg, size_t msglen) GW_NONNULL(3, 4, 6);

#endif /* GW_MULTIPART_H */
