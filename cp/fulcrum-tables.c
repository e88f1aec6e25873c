/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fulcrum-tables: publishes a config's tables into the shared memory once
 * and exits, leaving the mapping for fulcrum-dp. What the data-plane tests
 * use until fulcrum-cp runs, and an operator's way to (re)fill the tables by
 * hand. It reads the ids back like fulcrum-cp does, so runs in a row keep
 * every flow on its backend; it refuses to run while fulcrum-cp holds the
 * mapping.
 *
 * Exit status: 0 published, 1 could not publish, 2 bad config or arguments.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "addr.h"
#include "config.h"
#include "publish.h"
#include "shm.h"

#define PROG "fulcrum-tables"
#define DEFAULT_TIMEOUT_MS 1000u

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " CONFIG [--shm NAME] [--timeout MS]\n"
		"                      [--drain VIP/BACKEND]... [--down VIP/BACKEND]...\n"
		"       " PROG " CONFIG [--shm NAME] --lookup SRC:PORT DST:PORT tcp|udp\n"
		"\n"
		"Publishes the VIPs and backends of CONFIG into the shared memory named by\n"
		"global.shm_name (created with the sizes of `limits` when missing), once.\n"
		"With --lookup it publishes nothing and prints the backend the published\n"
		"tables give that flow (Maglev only: no data plane's conntrack is read):\n"
		"\"backend ADDR id N\", or \"no-vip\" / \"no-backend\" (exit 3).\n"
		"\n"
		"  --shm NAME          use this mapping instead of global.shm_name\n"
		"                      (a path when it holds a '/')\n"
		"  --drain VIP/BACKEND out of the ring, existing flows stay\n"
		"  --down VIP/BACKEND  out of the ring, flows move (as a failed health check)\n"
		"  --timeout MS        longest wait for the data-plane workers (default %u)\n"
		"  --help              this text\n"
		"\n"
		"VIP is ADDR:PORT or [IPV6]:PORT (every protocol on it); BACKEND is ADDR,\n"
		"ADDR:PORT or [IPV6]:PORT (without a port: every port of that address).\n"
		"Example: --drain 10.0.0.100:80/10.1.0.2 --down [fd00::53]:53/fd01::1\n"
		"\n"
		"Exit status: 0 published, 1 could not publish, 2 bad config or arguments.\n",
		DEFAULT_TIMEOUT_MS);
}

struct statuses {
	struct fl_backend_status *v;
	size_t n;
	size_t cap;
};

static int statuses_add(struct statuses *s, const struct fl_backend_status *st)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 16;
		struct fl_backend_status *v = realloc(s->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = *st;
	return 0;
}

/* Turns one --drain/--down argument into the statuses of every backend it
 * names. 0, or -EINVAL with a message. */
static int add_spec(const struct fl_config *cfg, const char *opt, const char *spec,
		    bool down, struct statuses *out, char *err, size_t errlen)
{
	const char *slash = strchr(spec, '/');
	char vip_text[FL_ADDR_STRLEN + 16];
	union fl_addr va, ba;
	__u8 vf, bf;
	__u16 vport, bport;
	size_t matched = 0;

	if (!slash || (size_t)(slash - spec) >= sizeof(vip_text))
		goto bad;
	memcpy(vip_text, spec, (size_t)(slash - spec));
	vip_text[slash - spec] = '\0';
	if (fl_endpoint_parse(vip_text, &va, &vf, &vport) < 0 || vport == 0 ||
	    fl_endpoint_parse(slash + 1, &ba, &bf, &bport) < 0)
		goto bad;
	for (unsigned i = 0; i < cfg->n_vips; i++) {
		const struct fl_vip_config *v = &cfg->vips[i];
		if (v->family != vf || v->port != vport || memcmp(&v->addr, &va, sizeof(va)) != 0)
			continue;
		for (unsigned j = 0; j < v->n_backends; j++) {
			const struct fl_backend_config *b = &v->backends[j];
			__u16 eff = b->key.port ? ntohs(b->key.port) : v->port;
			struct fl_backend_status st;

			if (b->key.family != bf || memcmp(&b->key.addr, &ba, sizeof(ba)) != 0 ||
			    (bport && bport != eff))
				continue;
			memset(&st, 0, sizeof(st));
			st.vip_addr = v->addr;
			st.vip_family = v->family;
			st.vip_port = v->port;
			st.vip_proto = v->proto;
			st.key = b->key;
			st.drain = !down;
			st.down = down;
			if (statuses_add(out, &st) < 0) {
				snprintf(err, errlen, "out of memory");
				return -ENOMEM;
			}
			matched++;
		}
	}
	if (matched == 0) {
		snprintf(err, errlen, "%s %s: no such backend of such a VIP in %s", opt, spec,
			 cfg->source);
		return -EINVAL;
	}
	return 0;
bad:
	snprintf(err, errlen, "%s %s: expected VIP_ADDR:PORT/BACKEND_ADDR[:PORT] "
		 "(IPv6 in brackets with a port)", opt, spec);
	return -EINVAL;
}

struct args {
	const char *config;
	const char *shm;
	__u32 timeout_ms;
	/* the --drain/--down arguments, resolved once the config is loaded */
	const char **specs;
	bool *spec_down;
	size_t n_specs;
	bool lookup;
	char **flow;		/* with --lookup: SRC:PORT DST:PORT PROTO */
};

/* 0 to go on, else the exit status (after --help: 0 + 256). */
static int parse_args(int argc, char **argv, struct args *a)
{
	static const struct option opts[] = {
		{ "shm", required_argument, NULL, 's' },
		{ "drain", required_argument, NULL, 'd' },
		{ "down", required_argument, NULL, 'D' },
		{ "timeout", required_argument, NULL, 't' },
		{ "lookup", no_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	a->timeout_ms = DEFAULT_TIMEOUT_MS;
	a->specs = calloc((size_t)argc, sizeof(*a->specs));
	a->spec_down = calloc((size_t)argc, sizeof(*a->spec_down));
	if (!a->specs || !a->spec_down) {
		fprintf(stderr, PROG ": out of memory\n");
		return 1;
	}
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		char *end;
		unsigned long v;

		switch (c) {
		case 's':
			a->shm = optarg;
			break;
		case 'd':
		case 'D':
			a->spec_down[a->n_specs] = c == 'D';
			a->specs[a->n_specs++] = optarg;
			break;
		case 't':
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || v > 3600000) {
				fprintf(stderr, PROG ": --timeout %s: expected 0..3600000 ms\n", optarg);
				return 2;
			}
			a->timeout_ms = (__u32)v;
			break;
		case 'l':
			a->lookup = true;
			break;
		case 'h':
			usage(stdout);
			return 256;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - (a->lookup ? 4 : 1)) {
		fprintf(stderr, PROG ": %s\n", a->lookup ? "--lookup takes CONFIG SRC:PORT DST:PORT PROTO"
				     : optind == argc ? "no CONFIG given" : "one CONFIG only");
		usage(stderr);
		return 2;
	}
	a->config = argv[optind];
	a->flow = argv + optind + 1;
	return 0;
}

static int publish(const struct fl_config *cfg, const struct args *a, const struct statuses *st)
{
	const struct fl_shm_params params = {
		.max_vips = cfg->limits.max_vips,
		.max_backends = cfg->limits.max_backends,
		.ring_entries = cfg->limits.ring_entries,
		.max_workers = cfg->limits.max_workers,
	};
	const char *name = a->shm ? a->shm : cfg->global.shm_name;
	struct fl_publish_result res;
	struct fl_publisher pub;
	struct fl_shm shm;
	char err[FL_CONFIG_ERR_LEN];
	int rc = fl_shm_create(name, &params, &shm, err, sizeof(err));

	if (rc < 0) {
		fprintf(stderr, PROG ": %s\n", err);
		return 1;
	}
	rc = fl_publisher_init(&pub, &shm, err, sizeof(err));
	if (rc == 0) {
		rc = fl_publisher_set(&pub, cfg, st->v, st->n, err, sizeof(err));
		if (rc == 0)
			rc = fl_publisher_publish(&pub, a->timeout_ms, &res, err, sizeof(err));
		fl_publisher_fini(&pub);
	}
	if (rc < 0)
		fprintf(stderr, PROG ": %s: %s\n", shm.map.path, err);
	else
		printf("published generation %llu: %u VIPs, %u backends\n",
		       (unsigned long long)res.generation, res.vips, res.backends);
	fl_shm_detach(&shm);
	return rc < 0 ? 1 : 0;
}

static int parse_flow(char **flow, struct fl_flow_key *k)
{
	__u8 sfam, dfam;
	__u16 sport, dport;

	memset(k, 0, sizeof(*k));
	if (fl_endpoint_parse(flow[0], &k->src, &sfam, &sport) < 0 ||
	    fl_endpoint_parse(flow[1], &k->dst, &dfam, &dport) < 0 || sfam != dfam ||
	    fl_proto_parse(flow[2], &k->proto) < 0)
		return -EINVAL;
	k->family = sfam;
	k->sport = htons(sport);
	k->dport = htons(dport);
	return 0;
}

/* The backend the published tables give one flow: the data plane's rule,
 * applied outside the data plane. */
static int lookup(const struct fl_config *cfg, const struct args *a)
{
	const char *name = a->shm ? a->shm : cfg->global.shm_name;
	char err[FL_CONFIG_ERR_LEN], addr[FL_ADDR_STRLEN];
	struct fl_flow_key k;
	struct fl_shm shm;
	__u32 vip_id, id;
	int status = 3;

	if (parse_flow(a->flow, &k) < 0) {
		fprintf(stderr, PROG ": --lookup %s %s %s: expected SRC:PORT DST:PORT tcp|udp\n",
			a->flow[0], a->flow[1], a->flow[2]);
		return 2;
	}
	if (fl_shm_attach(name, &shm, err, sizeof(err)) < 0) {
		fprintf(stderr, PROG ": %s\n", err);
		return 1;
	}
	const struct fl_tables *t = fl_writer_active(&shm);
	const struct fl_vip *v = fl_vip_find(t, &k.dst, k.family, k.dport, k.proto, &vip_id);
	if (!v) {
		printf("no-vip\n");
	} else if ((id = fl_tables_pick(t, v, fl_flow_hash(&k, t->hdr->hash_seed))) == FL_BACKEND_NONE) {
		printf("no-backend\n");
	} else {
		const struct fl_backend *b = &t->backends[id];
		printf("backend %s id %u epoch %u\n", fl_addr_format(&b->key.addr, b->key.family, addr,
			sizeof(addr)), id, b->epoch);
		status = 0;
	}
	fl_shm_detach(&shm);
	return status;
}

int main(int argc, char **argv)
{
	struct args a = { 0 };
	struct statuses st = { 0 };
	struct fl_config cfg;
	char err[FL_CONFIG_ERR_LEN];
	int status = parse_args(argc, argv, &a);

	if (status)
		goto out;
	if (fl_config_load(a.config, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		status = 2;
		goto out;
	}
	for (size_t i = 0; i < a.n_specs && status == 0; i++) {
		int rc = add_spec(&cfg, a.spec_down[i] ? "--down" : "--drain", a.specs[i],
				  a.spec_down[i], &st, err, sizeof(err));
		if (rc < 0) {
			fprintf(stderr, PROG ": %s\n", err);
			status = rc == -ENOMEM ? 1 : 2;
		}
	}
	if (status == 0)
		status = a.lookup ? lookup(&cfg, &a) : publish(&cfg, &a, &st);
	fl_config_free(&cfg);
out:
	free(st.v);
	free(a.specs);
	free(a.spec_down);
	return status == 256 ? 0 : status;
}
