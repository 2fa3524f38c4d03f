/*
 * redact.h: secrets cut out of text that came from elsewhere (an
 * upstream's error message) before a client or a log sees it.
 */
#ifndef GW_REDACT_H
#define GW_REDACT_H

#include <stddef.h>

#include "util.h"

/*
 * A copy of s (caller frees) with what looks like a credential replaced
 * by "[redacted]": an OpenAI-style key "sk-..." (the prefix kept), the
 * token after "Bearer " (the word kept), a JWT, a run of 32 or more hex
 * digits, a base64 run of 40 or more with upper, lower case and digits.
 * Ordinary words, model names and ids with separators are left alone;
 * *n (NULL-ok) is set to the number of replacements.
 */
char *gw_redact_new(const char *s, int *n) GW_NONNULL(1);

/*
 * An SSE event ev[0..len) of an upstream's stream whose data is an error
 * ({"error": {"message": ...}} or {"error": "..."}) quoting a secret: the
 * event with the message redacted, in a new string of *outlen bytes
 * (caller frees). NULL, cheaply, for any other event.
 */
char *gw_redact_sse_error_new(const char *ev, size_t len, size_t *outlen)
    GW_NONNULL(1, 3);
/* The same for an event whose data [data, data+dlen) in ev is known. */
char *gw_redact_sse_error_data(const char *ev, size_t len, const char *data,
    size_t dlen, size_t *outlen) GW_NONNULL(1, 3, 5);

#endif /* GW_REDACT_H */
