// SPDX-License-Identifier: BSD-3-Clause
/* Text forms of addresses and MACs (addr.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "addr.h"

int fl_addr_parse(const char *text, union fl_addr *addr, __u8 *family)
{
	union fl_addr a;

	/* Zeroed first: an IPv4 address leaves the upper twelve bytes zero,
	 * which the flow hash and the backend keys rely on (flow.h). */
	memset(&a, 0, sizeof(a));
	if (inet_pton(AF_INET, text, &a.v4) == 1) {
		*family = FL_AF_INET;
	} else if (inet_pton(AF_INET6, text, a.bytes) == 1) {
		*family = FL_AF_INET6;
	} else {
		return -EINVAL;
	}
	*addr = a;
	return 0;
}

const char *fl_addr_format(const union fl_addr *addr, __u8 family, char *buf, size_t len)
{
	int af = family == FL_AF_INET ? AF_INET : AF_INET6;

	if ((family != FL_AF_INET && family != FL_AF_INET6) ||
	    !inet_ntop(af, addr->bytes, buf, (socklen_t)len))
		snprintf(buf, len, "?");
	return buf;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int fl_mac_parse(const char *text, __u8 mac[6])
{
	__u8 m[6];

	/* By hand rather than sscanf("%hhx:..."), which takes "2:3:..." and
	 * trailing garbage: exactly six two-digit pairs, nothing else. */
	for (int i = 0; i < 6; i++) {
		const char *p = text + 3 * i;
		int hi = hex_digit(p[0]);
		int lo = hi < 0 ? -1 : hex_digit(p[1]);

		if (lo < 0 || p[2] != (i == 5 ? '\0' : ':'))
			return -EINVAL;
		m[i] = (__u8)(hi << 4 | lo);
	}
	memcpy(mac, m, sizeof(m));
	return 0;
}

const char *fl_mac_format(const __u8 mac[6], char *buf, size_t len)
{
	snprintf(buf, len, "%02x:%02x:%02x:%02x:%02x:%02x",
		 mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
	return buf;
}

int fl_endpoint_parse(const char *text, union fl_addr *addr, __u8 *family, __u16 *port)
{
	char buf[FL_ADDR_STRLEN + 16];
	const char *port_text = NULL;
	char *end;

	if (strlen(text) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, text);
	if (buf[0] == '[') {
		char *close = strchr(buf, ']');
		if (!close || (close[1] != '\0' && close[1] != ':'))
			return -EINVAL;
		*close = '\0';
		port_text = close[1] ? close + 2 : NULL;
		memmove(buf, buf + 1, strlen(buf + 1) + 1);
	} else {
		char *colon = strchr(buf, ':');
		/* one colon: IPv4 with a port; more: a bare IPv6 address */
		if (colon && !strchr(colon + 1, ':')) {
			*colon = '\0';
			port_text = colon + 1;
		}
	}
	*port = 0;
	if (port_text) {
		unsigned long p;
		errno = 0;
		p = strtoul(port_text, &end, 10);
		if (errno || end == port_text || *end || p < 1 || p > 65535)
			return -EINVAL;
		*port = (__u16)p;
	}
	memset(addr, 0, sizeof(*addr));
	return fl_addr_parse(buf, addr, family);
}

const char *fl_endpoint_format(const union fl_addr *addr, __u8 family, unsigned port,
			       char *buf, size_t len)
{
	char t[FL_ADDR_STRLEN];

	fl_addr_format(addr, family, t, sizeof(t));
	snprintf(buf, len, family == FL_AF_INET6 ? "[%s]:%u" : "%s:%u", t, port);
	return buf;
}
