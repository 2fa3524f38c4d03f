/*
 * fuzz.h: what every libFuzzer target in tests/fuzz/ shares: the entry
 * points libFuzzer calls, a finding (abort with a message, so libFuzzer
 * saves the input) and exact-size copies of the input, so that a read one
 * byte past the end is an AddressSanitizer report.
 */
#ifndef GW_FUZZ_H
#define GW_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A property does not hold: print why and abort (libFuzzer: a crash). */
#define FUZZ_FINDING(...)                                                      \
	do {                                                                   \
		fprintf(stderr, "FINDING: " __VA_ARGS__);                      \
		fputc('\n', stderr);                                           \
		abort();                                                       \
	} while (0)

/* The input in a heap block of exactly size bytes (1 when size is 0). */
static inline char *
fuzz_copy(const uint8_t *data, size_t size)
{
	char *p = malloc(size ? size : 1);

	if (p == NULL)
		abort();
	if (size > 0)
		memcpy(p, data, size);
	return p;
}

/* The input as a string: size bytes and a NUL (cut at an inner NUL). */
static inline char *
fuzz_str(const uint8_t *data, size_t size)
{
	char *p = malloc(size + 1);

	if (p == NULL)
		abort();
	if (size > 0)
		memcpy(p, data, size);
	p[size] = '\0';
	return p;
}

/* A NUL-ended message buffer must end inside its size. */
static inline void
fuzz_check_msg(const char *what, const char *msg, size_t size)
{
	if (memchr(msg, '\0', size) == NULL)
		FUZZ_FINDING("%s: message not NUL-ended", what);
}

#endif /* GW_FUZZ_H */
