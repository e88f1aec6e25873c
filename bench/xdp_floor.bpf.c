/* SPDX-License-Identifier: BSD-3-Clause */
/* The harness floor for bench/xdp_bench.c: the least an XDP program can do
 * (two instructions), so the balancer's figures can be given net of
 * bpf_prog_test_run's own cost. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_floor(struct xdp_md *ctx)
{
	return XDP_TX;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
