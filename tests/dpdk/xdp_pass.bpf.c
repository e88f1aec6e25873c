// SPDX-License-Identifier: (GPL-2.0-only OR BSD-3-Clause)
/*
 * XDP_PASS for every packet: attached natively to the peer of a veth whose
 * XDP program answers XDP_TX. The frames it sends go into the peer's NAPI
 * ring, which the peer has only with an XDP program of its own (on this
 * machine's kernel, GRO on the peer was not enough: the frames vanished).
 */
#include <linux/bpf.h>

__attribute__((section("xdp"), used)) int xdp_pass(struct xdp_md *ctx)
{
	(void)ctx;
	return XDP_PASS;
}

char LICENSE[] __attribute__((section("license"), used)) = "Dual BSD/GPL";
