/* SPDX-License-Identifier: BSD-3-Clause */
/* Text forms of addresses and MACs, shared by the config loader, the control
 * socket and the command-line tools. */
#ifndef FL_ADDR_H
#define FL_ADDR_H

#include <stddef.h>
#include <linux/types.h>
#include "flow.h"

/* Longest text an fl_addr or a MAC formats to, with its NUL. */
#define FL_ADDR_STRLEN 46
#define FL_MAC_STRLEN 18

/* Parses an IPv4 or IPv6 address; sets *family to FL_AF_INET(6). 0 or -EINVAL. */
int fl_addr_parse(const char *text, union fl_addr *addr, __u8 *family);

/* Formats an address of the given family into buf (FL_ADDR_STRLEN bytes). */
const char *fl_addr_format(const union fl_addr *addr, __u8 family, char *buf, size_t len);

/* Parses "ADDR", "ADDR:PORT", "[V6ADDR]:PORT" or a bare IPv6 address; a
 * port, when given, is 1..65535, else *port is 0. 0 or -EINVAL. */
int fl_endpoint_parse(const char *text, union fl_addr *addr, __u8 *family, __u16 *port);

/* "ADDR:PORT", or "[V6ADDR]:PORT", into buf. */
const char *fl_endpoint_format(const union fl_addr *addr, __u8 family, unsigned port,
			       char *buf, size_t len);

/* Parses "aa:bb:cc:dd:ee:ff". 0 or -EINVAL. */
int fl_mac_parse(const char *text, __u8 mac[6]);

/* Formats a MAC into buf (FL_MAC_STRLEN bytes). */
const char *fl_mac_format(const __u8 mac[6], char *buf, size_t len);

#endif /* FL_ADDR_H */
