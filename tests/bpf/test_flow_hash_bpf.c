/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Parity of the flow hash between the compilers: the same fl_flow_hash()
 * built by gcc (here) and by clang -target bpf (flow_hash.bpf.c, run with
 * BPF_PROG_TEST_RUN) must agree on every key and seed, or fulcrum-dp and the
 * XDP balancer would send one flow to two backends. Needs root (CAP_BPF and
 * CAP_NET_ADMIN).
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <linux/bpf.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "flow.h"
#include "flow_hash_io.h"
#include "rng.h"
#include "flow_hash.skel.h"

#define RANDOM_PER_SEED 1000	/* IPv4 and IPv6 keys each, per seed */
#define MAX_REPORTED 10

struct parity {
	int prog_fd;
	unsigned long run, matched;
	int error;	/* first libbpf error, negative errno */
};

static void key_dump(const struct fl_flow_key *k)
{
	const __u8 *b = (const __u8 *)k;

	for (size_t i = 0; i < sizeof(*k); i++)
		fprintf(stderr, "%02x%s", b[i], i == 15 || i == 31 ? " " : "");
	fputc('\n', stderr);
}

/* Runs one key and seed through the program and compares with gcc's value. */
static void parity_one(struct parity *p, const struct fl_flow_key *key, __u64 seed)
{
	struct flow_hash_io in, out;
	int err;

	if (p->error)
		return;
	memset(&in, 0, sizeof(in));
	in.key = *key;
	in.seed = seed;
	memset(&out, 0, sizeof(out));
	LIBBPF_OPTS(bpf_test_run_opts, opts,
		.data_in = &in,
		.data_size_in = sizeof(in),
		.data_out = &out,
		.data_size_out = sizeof(out),
		.repeat = 1);

	err = bpf_prog_test_run_opts(p->prog_fd, &opts);
	if (err) {
		p->error = -errno;
		fprintf(stderr, "bpf_prog_test_run_opts: %s\n", strerror(errno));
		return;
	}
	if (opts.retval != XDP_PASS || opts.data_size_out != sizeof(out)) {
		p->error = -EPROTO;
		fprintf(stderr, "program returned %u with %u bytes, want XDP_PASS with %zu\n",
			opts.retval, opts.data_size_out, sizeof(out));
		return;
	}
	p->run++;
	__u32 want = fl_flow_hash(key, seed);

	if (out.hash == want) {
		p->matched++;
		return;
	}
	if (p->run - p->matched <= MAX_REPORTED) {
		fprintf(stderr, "mismatch: seed %#llx bpf 0x%08x gcc 0x%08x key ",
			(unsigned long long)seed, out.hash, want);
		key_dump(key);
	}
}

static void key_rand(struct fl_flow_key *k, struct rng *r, __u8 family)
{
	__u64 w[5];

	for (int i = 0; i < 5; i++)
		w[i] = rng_next(r);
	memset(k, 0, sizeof(*k));
	memcpy(&k->src, &w[0], 16);
	memcpy(&k->dst, &w[2], 16);
	if (family == FL_AF_INET) {
		memset(&k->src.bytes[4], 0, 12);
		memset(&k->dst.bytes[4], 0, 12);
	}
	k->sport = (__be16)w[4];
	k->dport = (__be16)(w[4] >> 16);
	k->proto = (w[4] >> 32) & 1 ? 6 : 17;
	k->family = family;
}

/* Keys at the edges of every field, in both families. */
static void parity_edges(struct parity *p, __u64 seed)
{
	static const __be16 ports[] = { 0, 0xffff, 0x0100 /* 1 */, 0x5000 /* 80 */ };
	static const __u8 protos[] = { 0, 6, 17, 255 };
	static const __u8 families[] = { 0, FL_AF_INET, FL_AF_INET6, 255 };
	struct fl_flow_key k;

	for (size_t f = 0; f < sizeof(families); f++) {
		for (int fill = 0; fill < 3; fill++) {
			memset(&k, 0, sizeof(k));
			size_t alen = families[f] == FL_AF_INET ? 4 : 16;

			/* all-zero, all-ones, and ones in src only */
			if (fill > 0) {
				memset(&k.src, 0xff, alen);
				if (fill == 1)
					memset(&k.dst, 0xff, alen);
			}
			k.family = families[f];
			for (size_t sp = 0; sp < sizeof(ports) / sizeof(ports[0]); sp++)
				for (size_t dp = 0; dp < sizeof(ports) / sizeof(ports[0]); dp++)
					for (size_t pr = 0; pr < sizeof(protos); pr++) {
						k.sport = ports[sp];
						k.dport = ports[dp];
						k.proto = protos[pr];
						parity_one(p, &k, seed);
					}
		}
	}
	/* Every byte of the key all-ones, padding included: both sides must
	 * read exactly the same bytes. */
	memset(&k, 0xff, sizeof(k));
	parity_one(p, &k, seed);
	k.family = FL_AF_INET;
	parity_one(p, &k, seed);
	k.family = FL_AF_INET6;
	parity_one(p, &k, seed);
}

__attribute__((format(printf, 2, 0)))
static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	if (level == LIBBPF_DEBUG)
		return 0;
	return vfprintf(stderr, fmt, args);
}

int main(void)
{
	static const __u64 seeds[] = {
		0, 1, 0x9e3779b97f4a7c15ULL, 0x243f6a8885a308d3ULL,
		0x8000000000000000ULL, 0xffffffffffffffffULL,
	};
	struct flow_hash_bpf *skel;
	struct parity p = { .prog_fd = -1 };
	struct rng r = { 0x13198a2e03707344ULL };
	struct fl_flow_key k;
	int err = 0;

	libbpf_set_print(libbpf_print);

	skel = flow_hash_bpf__open();
	if (!skel) {
		fprintf(stderr, "failed to open the BPF skeleton: %s\n", strerror(errno));
		return 1;
	}
	err = flow_hash_bpf__load(skel);
	if (err) {
		fprintf(stderr, "failed to load the BPF program: %s%s\n", strerror(-err),
			geteuid() != 0 ? " (this test needs root: CAP_BPF and CAP_NET_ADMIN)" : "");
		goto cleanup;
	}
	p.prog_fd = bpf_program__fd(skel->progs.flow_hash);

	for (size_t s = 0; s < sizeof(seeds) / sizeof(seeds[0]) + 2; s++) {
		/* the fixed seeds, then two from the stream */
		__u64 seed = s < sizeof(seeds) / sizeof(seeds[0]) ? seeds[s] : rng_next(&r);

		parity_edges(&p, seed);
		for (int i = 0; i < RANDOM_PER_SEED; i++) {
			key_rand(&k, &r, FL_AF_INET);
			parity_one(&p, &k, seed);
			key_rand(&k, &r, FL_AF_INET6);
			parity_one(&p, &k, seed);
		}
		/* Raw random bytes, padding and family too: outside the contract,
		 * but both compilers must still read the same definition. */
		for (int i = 0; i < RANDOM_PER_SEED / 4; i++) {
			__u64 w[5];

			for (int j = 0; j < 5; j++)
				w[j] = rng_next(&r);
			memcpy(&k, w, sizeof(k));
			parity_one(&p, &k, seed);
		}
	}
	if (p.error) {
		err = p.error;
		fprintf(stderr, "BPF test run failed after %lu vectors\n", p.run);
		goto cleanup;
	}
	printf("flow hash parity: %lu of %lu vectors matched (gcc vs clang -target bpf)\n",
	       p.matched, p.run);
	if (p.matched != p.run)
		err = -EDOM;

cleanup:
	flow_hash_bpf__destroy(skel);
	return err ? 1 : 0;
}
