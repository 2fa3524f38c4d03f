/*
 * redact.h: secrets cut out of text that came from elsewhere (an
 * upstream's error message) before a client or a log sees it.
 */
#ifndef GW_REDACT_H
#define GW_REDACT_H

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

#endif /* GW_REDACT_H */
