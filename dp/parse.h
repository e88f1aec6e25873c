/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The parse stage: one frame's bytes in, a struct fl_pkt and a verdict out.
 * Runs once per packet in a worker, so it has no unbounded loop, no library
 * call and no write outside *p and *reason.
 */
#ifndef FL_DP_PARSE_H
#define FL_DP_PARSE_H

#include <linux/types.h>
#include "pkt.h"

/*
 * Parse the Ethernet frame [frame, frame + len); never reads outside it,
 * whatever the bytes. The frame must be contiguous (one mbuf segment).
 *
 * Every field of *p is written: what the parse did not reach is zero, the
 * key's padding and unused address words are always zero, p->hash is 0.
 * - FL_PARSE_FLOW: p->key is a TCP or UDP flow, client -> VIP, in network
 *   byte order; l3_off, l4_off, ip_len, ttl, tos, flags are set, tcp_flags
 *   for TCP. With FL_PKT_FRAGMENT the ports are 0 (every fragment of a
 *   datagram gets the same key) and L4 is not read. With FL_PKT_ICMP_ERROR
 *   the key is the flow the ICMP error quotes, reversed, icmp_mtu is set
 *   and l4_off points at the ICMP header.
 * - FL_PARSE_HOST: well formed but not a balanced flow (ARP, ICMP other
 *   than FN/PTB, other IP protocols): for the kernel. Fields are filled as
 *   far as the parse went.
 * - FL_PARSE_DROP: malformed; *reason says why. *reason is written only
 *   on this verdict.
 * Offsets, ip_len and icmp_mtu are in host byte order.
 */
enum fl_parse_verdict fl_parse(const __u8 *frame, __u32 len, struct fl_pkt *p,
			       enum fl_drop_reason *reason);

#endif /* FL_DP_PARSE_H */
