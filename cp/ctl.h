/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The control socket of fulcrum-cp (DESIGN.md "Control socket"): a Unix
 * stream socket, newline-delimited JSON, one request and one answer a line.
 *
 * Requests are objects {"op": NAME, ...}; answers are {"ok": true, ...} or
 * {"ok": false, "error": "..."}. A request that fails changes nothing.
 * Changes made over the socket live in fulcrum-cp's memory only: they are
 * not written back to the config file, and a reload (SIGHUP or the "reload"
 * operation) replaces them with what the file says.
 *
 * The server never blocks the loop: every socket is non-blocking, a request
 * line is bounded (FL_CTL_MAX_LINE; longer gets an error answer and the
 * connection is closed), answers not yet written wait in a per-client buffer
 * (a client that does not read them for FL_CTL_IDLE_MS, or holds more than
 * FL_CTL_MAX_OUT unread, is closed), and so is a client idle too long.
 */
#ifndef FL_CTL_H
#define FL_CTL_H

#include <stddef.h>
#include "daemon.h"

#define FL_CTL_MAX_LINE (64u * 1024u)
#define FL_CTL_MAX_OUT (4u * 1024u * 1024u)
#define FL_CTL_MAX_CLIENTS 256u
#define FL_CTL_IDLE_MS 30000u

struct fl_ctl;

/* Listens on path (an existing socket file is replaced) with this mode and
 * serves it on cp's loop. 0 and *out, or -errno with a message. */
int fl_ctl_open(struct fl_cp *cp, const char *path, unsigned mode, struct fl_ctl **out,
		char *err, size_t errlen);

/* Closes every client and the listener and removes the socket file. NULL ok. */
void fl_ctl_close(struct fl_ctl *ctl);

/*
 * Handles one request line (without its newline; need not be NUL-terminated
 * nor valid UTF-8 or JSON) and returns the answer as a malloc'd JSON text
 * without newline, or NULL when out of memory. Never fails otherwise: bad
 * input gets {"ok":false,...}. The core of the server, and what
 * tests/fuzz drives.
 */
char *fl_ctl_handle(struct fl_cp *cp, const char *line, size_t len);

#endif /* FL_CTL_H */
