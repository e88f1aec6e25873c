/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A minimal test harness: a binary holds named cases; meson registers each
 * case as its own test (`binary CASE`), so the closing count is per case.
 * Without an argument a binary runs all of its cases.
 */
#ifndef FL_TESTS_CHECK_H
#define FL_TESTS_CHECK_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fl_test_case {
	const char *name;
	void (*fn)(void);
};

static unsigned fl_check_failures;

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fl_check_failures++;                                   \
			fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, \
				__LINE__, #cond);                              \
			fprintf(stderr, __VA_ARGS__);                          \
			fputc('\n', stderr);                                   \
		}                                                              \
	} while (0)

/* For a check whose failure makes the rest of the case meaningless. */
#define REQUIRE(cond, ...)                                                     \
	do {                                                                   \
		unsigned before_ = fl_check_failures;                          \
		CHECK(cond, __VA_ARGS__);                                      \
		if (fl_check_failures != before_)                              \
			return;                                                \
	} while (0)

/* Runs a shell command made like printf (namespaces, links, neighbours);
 * its exit status, with the command on stderr when it failed. */
static inline __attribute__((format(printf, 1, 2))) int fl_test_sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	rc = system(cmd);
	if (rc != 0)
		fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
	return rc;
}

static inline int fl_test_main(const struct fl_test_case *cases, size_t n, int argc, char **argv)
{
	int ran = 0;

	for (size_t i = 0; i < n; i++) {
		if (argc > 1 && strcmp(argv[1], cases[i].name) != 0)
			continue;
		unsigned before = fl_check_failures;
		cases[i].fn();
		printf("%s %s\n", fl_check_failures == before ? "ok" : "FAIL", cases[i].name);
		fflush(stdout);
		ran++;
	}
	if (ran == 0) {
		fprintf(stderr, "no test case named %s\n", argc > 1 ? argv[1] : "(none)");
		return 2;
	}
	return fl_check_failures ? 1 : 0;
}

#define FL_TEST_MAIN(cases)                                                    \
	int main(int argc, char **argv)                                        \
	{                                                                      \
		return fl_test_main(cases, sizeof(cases) / sizeof(cases[0]),   \
				    argc, argv);                               \
	}

#endif /* FL_TESTS_CHECK_H */
