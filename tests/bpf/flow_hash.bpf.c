/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The flow hash as the XDP balancer computes it, for the parity test: the
 * packet carries a struct fl_flow_key and a 64-bit seed, and the program
 * writes fl_flow_hash() of them into the four bytes that follow. The key is
 * copied to the stack first, as the balancer builds its key there.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "flow.h"
#include "flow_hash_io.h"

SEC("xdp")
int flow_hash(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct flow_hash_io *io = data;
	struct fl_flow_key key;

	if ((void *)(io + 1) > data_end)
		return XDP_ABORTED;
	__builtin_memcpy(&key, &io->key, sizeof(key));
	io->hash = fl_flow_hash(&key, io->seed);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
