/* SPDX-License-Identifier: BSD-3-Clause */
/* The error convention of every library here (STYLE.md): return 0 or
 * -errno, and say what went wrong in the caller's buffer. */
#ifndef FL_ERR_H
#define FL_ERR_H

#include <stddef.h>

/* Writes the message into err (when there is one) and returns rc. */
int fl_err(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif /* FL_ERR_H */
