/* Unit tests for lib/multipart.c: boundaries, parts, refusals, bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "multipart.h"

struct seen {
	struct gw_multipart_part p[GW_MULTIPART_PARTS_MAX];
	int n;
	int stop_at; /* stop after this many parts (0: never) */
};

static int
collect(void *arg, const struct gw_multipart_part *part)
{
	struct seen *s = arg;

	assert_true(s->n < GW_MULTIPART_PARTS_MAX);
	s->p[s->n++] = *part;
	return s->stop_at != 0 && s->n >= s->stop_at;
}

static enum gw_status
scan(const char *body, size_t len, const char *b, struct seen *s, char *msg)
{
	memset(s->p, 0, sizeof(s->p));
	s->n = 0;
	return gw_multipart_scan(body, len, b, collect, s, msg, 200);
}

/* What a part's data is, as a string (for assertions). */
static char *
data_of(const char *body, const struct gw_multipart_part *p)
{
	static char out[256];

	assert_true(p->data_len < sizeof(out));
	memcpy(out, body + p->data_off, p->data_len);
	out[p->data_len] = '\0';
	return out;
}

static void
test_boundary(void **state)
{
	char b[GW_MULTIPART_BOUNDARY_MAX + 1];

	(void)state;
	assert_int_equal(gw_multipart_boundary(
	                     "multipart/form-data; boundary=abc", b, sizeof(b)),
	    GW_OK);
	assert_string_equal(b, "abc");
	/* Quoted, other parameters around, any case. */
	assert_int_equal(gw_multipart_boundary("Multipart/Form-Data; "
	                                       "charset=utf-8; BOUNDARY=\"a "
	                                       "b:c\"",
	                     b, sizeof(b)),
	    GW_OK);
	assert_string_equal(b, "a b:c");
	/* What the openai npm SDK and curl send. */
	assert_int_equal(
	    gw_multipart_boundary("multipart/form-data; "
	                          "boundary=----formdata-undici-0123456789",
	        b, sizeof(b)),
	    GW_OK);
	assert_string_equal(b, "----formdata-undici-0123456789");
	/* 70 characters fit, 71 do not. */
	assert_int_equal(gw_multipart_boundary("multipart/form-data;boundary="
	                                       "0123456789012345678901234567890"
	                                       "123456789012345678901234567890"
	                                       "123456789",
	                     b, sizeof(b)),
	    GW_OK);
	assert_int_equal(strlen(b), 70);
	assert_int_equal(gw_multipart_boundary("multipart/form-data;boundary="
	                                       "0123456789012345678901234567890"
	                                       "123456789012345678901234567890"
	                                       "1234567890",
	                     b, sizeof(b)),
	    GW_E_INVALID);
	assert_string_equal(b, "");
	/* Not multipart, no boundary, empty, two, a bad character, trailing
	 * space, a backslash in quotes, garbage after. */
	static const char *const bad[] = {"application/json",
	    "multipart/mixed; boundary=a", "multipart/form-data",
	    "multipart/form-data; boundary=",
	    "multipart/form-data; boundary=\"\"",
	    "multipart/form-data; boundary=a; boundary=b",
	    "multipart/form-data; boundary=\"a\x01\"",
	    "multipart/form-data; boundary=\"a \"",
	    "multipart/form-data; boundary=\"a\\b\"",
	    "multipart/form-data; boundary=a x",
	    "multipart/form-data; boundary=\"abc",
	    /* a control character in a quoted parameter (a header split) */
	    "multipart/form-data; boundary=a; x=\"1\r\nX-Evil: 2\""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(
		    gw_multipart_boundary(bad[i], b, sizeof(b)), GW_E_INVALID);
		assert_string_equal(b, "");
	}
	/* Too small an output. */
	assert_int_equal(
	    gw_multipart_boundary("multipart/form-data; boundary=abcd", b, 4),
	    GW_E_INVALID);
}

static const char form[] =
    "--XyZ\r\n"
    "Content-Disposition: form-data; name=\"model\"\r\n"
    "\r\n"
    "whisper-1\r\n"
    "--XyZ\r\n"
    "Content-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
    "Content-Type: audio/wav\r\n"
    "\r\n"
    "RIFF\r\n--XyY\r\n--Xy\0\r\n"
    "\r\n"
    "--XyZ\r\n"
    "content-disposition: FORM-DATA;name=language\r\n"
    "\r\n"
    "\r\n"
    "--XyZ--\r\n"
    "epilogue";

static void
test_parts(void **state)
{
	struct seen s = {0};
	char msg[200];

	(void)state;
	assert_int_equal(scan(form, sizeof(form) - 1, "XyZ", &s, msg), GW_OK);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.p[0].name, "model");
	assert_false(s.p[0].is_file);
	assert_string_equal(data_of(form, &s.p[0]), "whisper-1");
	assert_string_equal(s.p[1].name, "file");
	assert_true(s.p[1].is_file);
	/* The data holds near-delimiters and a NUL, and CRLFs of its own. */
	assert_int_equal(s.p[1].data_len, 20);
	assert_memory_equal(
	    form + s.p[1].data_off, "RIFF\r\n--XyY\r\n--Xy\0\r\n", 20);
	assert_string_equal(s.p[2].name, "language");
	assert_int_equal(s.p[2].data_len, 0);
	/* Offsets point into the body in order. */
	assert_true(s.p[0].head_off < s.p[0].data_off);
	assert_true(s.p[1].data_off + s.p[1].data_len < s.p[2].head_off);
}

/* A Windows path as a filename (old browsers) is a file, not an error. */
static void
test_backslash_filename(void **state)
{
	static const char body[] =
	    "--b\r\nContent-Disposition: form-data; name=\"file\"; "
	    "filename=\"C:\\audio\\a.wav\"\r\n\r\nRIFF\r\n--b--";
	struct seen s = {0};
	char msg[200];

	(void)state;
	assert_int_equal(scan(body, sizeof(body) - 1, "b", &s, msg), GW_OK);
	assert_int_equal(s.n, 1);
	assert_true(s.p[0].is_file);
	assert_string_equal(data_of(body, &s.p[0]), "RIFF");
}

static void
test_preamble_and_stop(void **state)
{
	static const char body[] = "preamble\r\n--b\r\n"
	                           "Content-Disposition: form-data; name=a\r\n"
	                           "\r\n1\r\n--b  \t\r\n"
	                           "Content-Disposition: form-data; name=b\r\n"
	                           "\r\n2\r\n--b--";
	struct seen s = {0};
	char msg[200];

	(void)state;
	assert_int_equal(scan(body, sizeof(body) - 1, "b", &s, msg), GW_OK);
	assert_int_equal(s.n, 2);
	assert_string_equal(data_of(body, &s.p[1]), "2");
	/* The callback stops the scan: GW_OK, and nothing more is read. */
	s.stop_at = 1;
	assert_int_equal(scan(body, sizeof(body) - 1, "b", &s, msg), GW_OK);
	assert_int_equal(s.n, 1);
	s.stop_at = 0;
}

/* Each refused body, and a message for each. */
static void
test_refused(void **state)
{
	static const char *const bad[] = {
	    /* no boundary at all, another one */
	    "hello",
	    "--other\r\nContent-Disposition: form-data; "
	    "name=a\r\n\r\nx\r\n--other--",
	    /* no close delimiter, cut in the data, cut in the headers */
	    "--b\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--b",
	    "--b\r\nContent-Disposition: form-data; name=a\r\n\r\nxyz",
	    "--b\r\nContent-Disposition: form-data; name=a\r\n",
	    /* no disposition, not form-data, no name, an empty name */
	    "--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--",
	    "--b\r\nContent-Disposition: attachment; name=a\r\n\r\nx\r\n--b--",
	    "--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--",
	    "--b\r\nContent-Disposition: form-data; "
	    "name=\"\"\r\n\r\nx\r\n--b--",
	    /* two dispositions, a name twice, name*, a backslash */
	    "--b\r\nContent-Disposition: form-data; name=a\r\n"
	    "Content-Disposition: form-data; name=c\r\n\r\nx\r\n--b--",
	    "--b\r\nContent-Disposition: form-data; name=a; name=c\r\n\r\nx\r\n"
	    "--b--",
	    "--b\r\nContent-Disposition: form-data; name*=utf-8''a\r\n\r\nx\r\n"
	    "--b--",
	    "--b\r\nContent-Disposition: form-data; name=\"mo\\del\"\r\n\r\nx"
	    "\r\n--b--",
	    /* a backslash before a quote: where does the filename end? */
	    "--b\r\nContent-Disposition: form-data; filename=\"a\\\"; "
	    "name=\"model\"\r\n\r\nx\r\n--b--",
	    /* a folded header, a header line without a colon */
	    "--b\r\nContent-Disposition: form-data;\r\n "
	    "name=a\r\n\r\nx\r\n--b--",
	    "--b\r\nContent-Disposition: form-data; "
	    "name=a\r\nbogus\r\n\r\nx\r\n"
	    "--b--",
	    /* garbage after a delimiter, an empty part */
	    "--b\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--bq\r\n"
	    "--b--",
	    "--b\r\n\r\nx\r\n--b--",
	    "--b\r\nContent-Disposition: form-data; name=a\r\n--b\r\n\r\nx\r\n"
	    "--b--",
	};
	struct seen s = {0};
	char msg[200];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		msg[0] = 'x';
		if (scan(bad[i], strlen(bad[i]), "b", &s, msg) != GW_E_INVALID)
			fail_msg("body %zu accepted: %s", i, bad[i]);
		assert_true(strncmp(msg, "multipart: ", 11) == 0);
	}
	/* NULL or empty bodies. */
	assert_int_equal(scan(NULL, 0, "b", &s, msg), GW_E_INVALID);
	assert_int_equal(scan("", 0, "b", &s, msg), GW_E_INVALID);
}

/* A name of 63 bytes fits, 64 do not. */
static void
test_name_bound(void **state)
{
	char body[512], name[80];
	struct seen s = {0};
	char msg[200];

	(void)state;
	memset(name, 'n', 63);
	name[63] = '\0';
	snprintf(body, sizeof(body),
	    "--b\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\nx\r\n"
	    "--b--",
	    name);
	assert_int_equal(scan(body, strlen(body), "b", &s, msg), GW_OK);
	assert_string_equal(s.p[0].name, name);
	memset(name, 'n', 64);
	name[64] = '\0';
	snprintf(body, sizeof(body),
	    "--b\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\nx\r\n"
	    "--b--",
	    name);
	assert_int_equal(scan(body, strlen(body), "b", &s, msg), GW_E_INVALID);
}

/* 64 parts pass, 65 are refused; headers of 4 KiB pass, more do not. */
static void
test_bounds(void **state)
{
	static const char part[] =
	    "--b\r\nContent-Disposition: form-data; name=f\r\n\r\nv\r\n";
	size_t n = sizeof(part) - 1, i;
	char *body = malloc(n * 65 + 16), msg[200];
	struct seen s = {0};
	size_t len = 0;

	(void)state;
	for (i = 0; i < 64; i++, len += n)
		memcpy(body + len, part, n);
	memcpy(body + len, "--b--", 5);
	assert_int_equal(scan(body, len + 5, "b", &s, msg), GW_OK);
	assert_int_equal(s.n, 64);
	memcpy(body + len, part, n);
	len += n;
	memcpy(body + len, "--b--", 5);
	assert_int_equal(scan(body, len + 5, "b", &s, msg), GW_E_INVALID);
	assert_non_null(strstr(msg, "more than 64 parts"));
	free(body);

	/* One header line of X-Pad filling the 4 KiB. */
	body = malloc(GW_MULTIPART_HEAD_MAX + 256);
	for (size_t pad = GW_MULTIPART_HEAD_MAX - 60;
	     pad <= GW_MULTIPART_HEAD_MAX - 30; pad++) {
		const char *disp = "Content-Disposition: form-data; name=f\r\n";
		size_t dlen = strlen(disp), hl;

		len = 0;
		memcpy(body, "--b\r\n", 5);
		len = 5;
		memcpy(body + len, disp, dlen);
		len += dlen;
		memcpy(body + len, "X-Pad: ", 7);
		len += 7;
		memset(body + len, 'p', pad);
		len += pad;
		hl = len - 5; /* the headers without their final CRLF */
		memcpy(body + len, "\r\n\r\nv\r\n--b--", 12);
		len += 12;
		enum gw_status want =
		    hl <= GW_MULTIPART_HEAD_MAX ? GW_OK : GW_E_INVALID;
		assert_int_equal(scan(body, len, "b", &s, msg), want);
	}
	free(body);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_boundary),
	    cmocka_unit_test(test_parts),
	    cmocka_unit_test(test_backslash_filename),
	    cmocka_unit_test(test_preamble_and_stop),
	    cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_name_bound),
	    cmocka_unit_test(test_bounds),
	};

	return cmocka_run_group_tests_name("multipart", tests, NULL, NULL);
}
