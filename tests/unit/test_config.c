/* SPDX-License-Identifier: BSD-3-Clause */
/* The configuration model of common/config.h and the text forms of addr.h. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "addr.h"
#include "check.h"
#include "config.h"

/* One line, so that what follows it starts on line 2. */
#define XDP "dataplane: { mode = \"xdp\"; xdp: { interfaces = [ \"eth0\" ]; }; " \
	    "tunnel_source_v4 = \"10.0.0.2\"; tunnel_source_v6 = \"fd00::2\"; };\n"

static const struct fl_config empty_cfg;

static int parse(const char *text, struct fl_config *cfg, char *err)
{
	return fl_config_parse(text, "t.conf", cfg, err, FL_CONFIG_ERR_LEN);
}

/* Whether text fails with exactly the message want, leaving the config
 * empty; got receives the message. */
static int fails_with(const char *text, const char *want, char *got)
{
	struct fl_config cfg;
	int rc;

	memset(&cfg, 0xa5, sizeof(cfg));
	rc = parse(text, &cfg, got);
	if (rc == 0)
		fl_config_free(&cfg);
	return rc == -EINVAL && strcmp(got, want) == 0 &&
	       memcmp(&cfg, &empty_cfg, sizeof(cfg)) == 0;
}

#define CHECK_FAILS(text, want)                                                \
	do {                                                                   \
		char got_[FL_CONFIG_ERR_LEN] = "(loaded)";                     \
		CHECK(fails_with(text, want, got_), "want \"%s\", got \"%s\"", \
		      want, got_);                                             \
	} while (0)

/* Whether text loads; a message on stderr when it does not. */
static int loads(const char *text, struct fl_config *cfg)
{
	char err[FL_CONFIG_ERR_LEN];
	int rc = parse(text, cfg, err);

	if (rc)
		fprintf(stderr, "unexpected error: %s\n", err);
	return rc == 0;
}

static void test_example_files(void)
{
	DIR *d = opendir(FL_SOURCE_ROOT "/config");
	struct dirent *e;
	unsigned found = 0;

	REQUIRE(d, "cannot open %s/config", FL_SOURCE_ROOT);
	while ((e = readdir(d))) {
		char path[512], err[FL_CONFIG_ERR_LEN];
		size_t len = strlen(e->d_name);
		struct fl_config cfg;
		int rc;

		if (len < 5 || strcmp(e->d_name + len - 5, ".conf") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/config/%s", FL_SOURCE_ROOT, e->d_name);
		rc = fl_config_load(path, &cfg, err, sizeof(err));
		CHECK(rc == 0, "%s: %s", e->d_name, err);
		CHECK(rc != 0 || strcmp(cfg.source, e->d_name) == 0, "source %s", cfg.source);
		/* What the file accepts, the control socket accepts. */
		for (unsigned i = 0; rc == 0 && i < cfg.n_vips; i++)
			CHECK(fl_config_check_vip(&cfg.vips[i], err, sizeof(err)) == 0,
			      "%s: vips.[%u]: %s", e->d_name, i, err);
		fl_config_free(&cfg);
		found++;
	}
	closedir(d);
	CHECK(found >= 2, "found %u example files", found);
}

static void check_default_hc(const struct fl_hc_config *hc)
{
	CHECK(hc->type == FL_HC_TCP, "type %d", hc->type);
	CHECK(hc->interval_ms == 1000 && hc->timeout_ms == 500, "%u %u", hc->interval_ms,
	      hc->timeout_ms);
	CHECK(hc->rise == 2 && hc->fall == 3, "%u %u", hc->rise, hc->fall);
	CHECK(hc->port == 0 && !hc->has_address, "%u", hc->port);
	CHECK(strcmp(hc->http_path, "/") == 0 && hc->http_host[0] == '\0', "%s", hc->http_path);
	CHECK(hc->n_expect_status == 1 && hc->expect_status[0] == 200, "%u",
	      hc->n_expect_status);
	CHECK(hc->expect_body[0] == '\0' && !hc->tls_verify, "%s", hc->expect_body);
}

static void test_defaults(void)
{
	static const char text[] = XDP
		"vips = ( { address = \"10.0.0.1\"; port = 80; protocol = \"tcp\";\n"
		"           method = \"ipip\"; backends = ( { address = \"10.1.0.1\"; } ); } );\n";
	const struct fl_dataplane_config *dp;
	const struct fl_backend_config *b;
	struct fl_config cfg;

	REQUIRE(loads(text, &cfg), "minimal config");
	dp = &cfg.dataplane;
	CHECK(strcmp(cfg.source, "t.conf") == 0, "%s", cfg.source);
	CHECK(strcmp(cfg.global.control_socket, "/run/fulcrum/control.sock") == 0, "%s",
	      cfg.global.control_socket);
	CHECK(cfg.global.control_socket_mode == 0660, "%o", cfg.global.control_socket_mode);
	CHECK(strcmp(cfg.global.shm_name, "fulcrum") == 0, "%s", cfg.global.shm_name);
	CHECK(cfg.global.hash_seed == 0x66756c6372756d31ULL, "%llx",
	      (unsigned long long)cfg.global.hash_seed);
	CHECK(cfg.global.log_level == FL_LOG_INFO && cfg.global.metrics_listen[0] == '\0', "%d",
	      cfg.global.log_level);
	CHECK(cfg.limits.max_vips == 256 && cfg.limits.max_backends == 16384 &&
	      cfg.limits.ring_entries == 4194304 && cfg.limits.max_workers == 16, "limits");
	CHECK(dp->mode == FL_DP_XDP && dp->n_xdp_interfaces == 1 &&
	      strcmp(dp->xdp_interfaces[0], "eth0") == 0, "xdp");
	CHECK(!dp->xdp_generic && !dp->xdp_detach_on_exit && !dp->xdp_fib_lookup, "xdp flags");
	CHECK(!dp->has_next_hop_mac && !dp->has_next_hop_address, "next hop");
	CHECK(dp->gue_port == 6080 && dp->mtu == 1500 && dp->idle_backoff_us == 0, "dp");
	CHECK(dp->conntrack.capacity == 1048576 && dp->conntrack.tcp_timeout_s == 300 &&
	      dp->conntrack.tcp_closing_timeout_s == 10 && dp->conntrack.syn_timeout_s == 5 &&
	      dp->conntrack.udp_timeout_s == 30 && dp->conntrack.new_flow_rate == 0, "conntrack");
	check_default_hc(&cfg.healthcheck);
	REQUIRE(cfg.n_vips == 1 && cfg.vips[0].n_backends == 1, "%u VIPs", cfg.n_vips);
	CHECK(cfg.vips[0].name[0] == '\0' && cfg.vips[0].table_size == 65537, "vip");
	CHECK(cfg.vips[0].proto == IPPROTO_TCP && cfg.vips[0].method == FL_METHOD_IPIP &&
	      cfg.vips[0].port == 80 && cfg.vips[0].family == FL_AF_INET &&
	      cfg.vips[0].addr.v4 == htonl(0x0a000001) && cfg.vips[0].line == 2, "vip");
	check_default_hc(&cfg.vips[0].hc);
	b = &cfg.vips[0].backends[0];
	CHECK(b->weight == 100 && b->key.port == 0 && !b->has_mac && b->line == 3, "backend");
	CHECK(b->key.family == FL_AF_INET && b->key.addr.v4 == htonl(0x0a010001) &&
	      b->key.addr.v6[1] == 0 && b->key.addr.v6[3] == 0, "backend address");
	check_default_hc(&b->hc);
	fl_config_free(&cfg);

	/* dpdk: a port's name is its position, its queues the worker count */
	REQUIRE(loads("dataplane: { mode = \"dpdk\"; next_hop: { address = \"10.0.0.1\"; };\n"
		      "  dpdk: { ports = ( { device = \"net_null0\"; } ); workers = [ 2, 3 ]; }; };\n",
		      &cfg), "dpdk defaults");
	dp = &cfg.dataplane;
	CHECK(dp->n_ports == 1 && strcmp(dp->ports[0].name, "p0") == 0 &&
	      dp->ports[0].queues == 2, "port %s %u", dp->ports[0].name, dp->ports[0].queues);
	CHECK(dp->n_workers == 2 && dp->worker_cores[0] == 2 && dp->worker_cores[1] == 3, "lcores");
	CHECK(dp->n_eal_args == 0 && dp->eal_args == NULL && cfg.n_vips == 0, "empty");
	CHECK(dp->has_next_hop_address && dp->next_hop_family == FL_AF_INET, "next hop");
	/* an address to resolve: on the only port's TAP unless given */
	CHECK(strcmp(dp->neighbour_interface, "fl-p0") == 0, "neighbour interface %s",
	      dp->neighbour_interface);
	fl_config_free(&cfg);
	REQUIRE(loads("dataplane: { mode = \"dpdk\"; next_hop: { address = \"10.0.0.1\"; };\n"
		      "  neighbour_interface = \"eth7\";\n"
		      "  dpdk: { ports = ( { device = \"net_null0\"; }, { device = \"net_null1\"; } );\n"
		      "          workers = [ 2 ]; }; };\n", &cfg), "neighbour interface given");
	CHECK(strcmp(cfg.dataplane.neighbour_interface, "eth7") == 0, "given %s",
	      cfg.dataplane.neighbour_interface);
	fl_config_free(&cfg);
	/* nothing to resolve: none */
	REQUIRE(loads("dataplane: { mode = \"dpdk\"; next_hop: { mac = \"02:00:00:00:00:01\"; };\n"
		      "  dpdk: { ports = ( { device = \"net_null0\"; } ); workers = [ 2 ]; }; };\n",
		      &cfg), "static next hop");
	CHECK(cfg.dataplane.neighbour_interface[0] == 0, "none needed, got %s",
	      cfg.dataplane.neighbour_interface);
	fl_config_free(&cfg);
}

static void test_overrides(void)
{
	static const char text[] = XDP
		"healthcheck: { type = \"http\"; interval_ms = 2000; timeout_ms = 100;\n"
		"               expect_status = [ 200, 301 ]; address = \"10.9.9.9\"; };\n"
		"vips = ( { address = \"10.0.0.1\"; port = 80; protocol = \"tcp\"; method = \"ipip\";\n"
		"  healthcheck: { http_path = \"/v\"; rise = 5; timeout_ms = 1500; };\n"
		"  backends = ( { address = \"10.1.0.1\";\n"
		"                 healthcheck: { port = 8080; expect_status = [ 204 ]; type = \"https\"; }; },\n"
		"               { address = \"10.1.0.2\"; } ); } );\n";
	const struct fl_hc_config *top, *vip, *b0, *b1;
	struct fl_config cfg;

	REQUIRE(loads(text, &cfg), "overrides");
	top = &cfg.healthcheck;
	vip = &cfg.vips[0].hc;
	b0 = &cfg.vips[0].backends[0].hc;
	b1 = &cfg.vips[0].backends[1].hc;
	/* the top level: its keys over the defaults */
	CHECK(top->type == FL_HC_HTTP && top->interval_ms == 2000 && top->timeout_ms == 100, "top");
	CHECK(top->rise == 2 && top->fall == 3 && strcmp(top->http_path, "/") == 0, "top defaults");
	CHECK(top->n_expect_status == 2 && top->expect_status[1] == 301, "top statuses");
	CHECK(top->has_address && top->address_family == FL_AF_INET &&
	      top->address.v4 == htonl(0x0a090909), "top address");
	/* the VIP: its keys over the top level */
	CHECK(vip->type == FL_HC_HTTP && vip->interval_ms == 2000 && vip->timeout_ms == 1500 &&
	      vip->rise == 5 && strcmp(vip->http_path, "/v") == 0, "vip");
	CHECK(vip->n_expect_status == 2 && vip->has_address, "vip inherits");
	/* a backend: its keys over its VIP's */
	CHECK(b0->type == FL_HC_HTTPS && b0->port == 8080 && b0->n_expect_status == 1 &&
	      b0->expect_status[0] == 204, "backend");
	CHECK(b0->rise == 5 && b0->timeout_ms == 1500 && strcmp(b0->http_path, "/v") == 0 &&
	      b0->interval_ms == 2000 && b0->has_address, "backend inherits");
	/* a backend that names nothing has its VIP's check */
	CHECK(memcmp(b1, vip, sizeof(*vip)) == 0, "backend 1 = vip");
	fl_config_free(&cfg);

	/* the merge is checked at each level: timeout against the inherited interval */
	CHECK_FAILS(XDP "healthcheck: { interval_ms = 300; timeout_ms = 200; };\n"
		    "vips = ( { address = \"10.0.0.1\"; port = 80; protocol = \"tcp\"; method = \"ipip\";\n"
		    "  healthcheck: { timeout_ms = 400; }; } );\n",
		    "t.conf:4: vips.[0].healthcheck.timeout_ms: must be less than interval_ms (300)");
	CHECK_FAILS(XDP "healthcheck: { timeout_ms = 200; };\n"
		    "vips = ( { address = \"10.0.0.1\"; port = 80; protocol = \"tcp\"; method = \"ipip\";\n"
		    "  backends = ( { address = \"10.1.0.1\"; healthcheck: { interval_ms = 150; }; } ); } );\n",
		    "t.conf:4: vips.[0].backends.[0].healthcheck.timeout_ms: "
		    "must be less than interval_ms (150)");

	/* tcp-half-open, for one backend; a near miss is refused with the list */
	REQUIRE(loads(XDP "vips = ( { address = \"10.0.0.1\"; port = 80; protocol = \"tcp\"; method = \"ipip\";\n"
		      "  backends = ( { address = \"10.1.0.1\"; healthcheck: { type = \"tcp-half-open\"; }; },\n"
		      "               { address = \"10.1.0.2\"; } ); } );\n", &cfg), "tcp-half-open");
	CHECK(cfg.vips[0].backends[0].hc.type == FL_HC_TCP_HALF_OPEN &&
	      cfg.vips[0].backends[1].hc.type == FL_HC_TCP, "types %d %d",
	      cfg.vips[0].backends[0].hc.type, cfg.vips[0].backends[1].hc.type);
	fl_config_free(&cfg);
	CHECK_FAILS(XDP "healthcheck: { type = \"tcp-halfopen\"; };\n",
		    "t.conf:2: healthcheck.type: must be one of none, tcp, tcp-half-open, http, https");
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	REQUIRE(f, "cannot create %s", path);
	fputs(text, f);
	fclose(f);
}

/* From a file: its base name in messages, @include next to it, I/O errors. */
static void test_load_errors(void)
{
	char dir[] = "/tmp/fulcrum-test-config-XXXXXX";
	char main_conf[64], inc[64], err[FL_CONFIG_ERR_LEN];
	struct fl_config cfg;
	int rc;

	REQUIRE(mkdtemp(dir), "mkdtemp");
	snprintf(main_conf, sizeof(main_conf), "%s/main.conf", dir);
	snprintf(inc, sizeof(inc), "%s/vips.inc", dir);
	write_file(main_conf, XDP "@include \"vips.inc\"\n");
	write_file(inc, "vips = ( { address = \"10.0.0.1\"; port = 80; protocol = \"tcp\";\n"
			"  method = \"ipip\"; table_size = 100; } );\n");
	rc = fl_config_load(main_conf, &cfg, err, sizeof(err));
	CHECK(rc == -EINVAL && strcmp(err, "vips.inc:2: vips.[0].table_size: must be prime; "
				      "the next prime is 101") == 0, "%d %s", rc, err);
	write_file(main_conf, XDP "global: { log_level = ; };\n");
	rc = fl_config_load(main_conf, &cfg, err, sizeof(err));
	CHECK(rc == -EINVAL && strcmp(err, "main.conf:2: syntax error") == 0, "%d %s", rc, err);
	CHECK(memcmp(&cfg, &empty_cfg, sizeof(cfg)) == 0, "left empty");
	unlink(main_conf);
	unlink(inc);
	rc = fl_config_load(main_conf, &cfg, err, sizeof(err));
	CHECK(rc == -ENOENT && strstr(err, "main.conf: No such file or directory"), "%d %s", rc,
	      err);
	rmdir(dir);
}

static void test_syntax_error(void)
{
	CHECK_FAILS(XDP "global: {\n  log_level = \"info\";\n  shm_name = ;\n};\n",
		    "t.conf:4: syntax error");
	CHECK_FAILS(XDP "limits: { max_vips = 1; };\nlimits: { max_vips = 2; };\n",
		    "t.conf:3: duplicate setting name");
	CHECK_FAILS(XDP "healthcheck: { expect_status = [ 200, \"ok\" ]; };\n",
		    "t.conf:2: mismatched element type in array");
	/* libconfig 1.5 keeps the low 32 bits of a literal without an L suffix */
	CHECK_FAILS(XDP "# a comment with 99999999999\nlimits: {\n  max_vips = 4294967297;\n};\n",
		    "t.conf:4: integer 4294967297 is out of range (a 64-bit value needs an L suffix)");
	CHECK_FAILS(XDP "global: { hash_seed = 0x1234567890; };\n",
		    "t.conf:2: integer 0x1234567890 is out of range (a 64-bit value needs an L suffix)");
	CHECK_FAILS(XDP "global: { hash_seed = 99999999999999999999L; };\n",
		    "t.conf:2: integer 99999999999999999999L is out of range (a 64-bit value "
		    "needs an L suffix)");
	CHECK_FAILS("", "t.conf:1: dataplane: is required");
	test_load_errors();
}

static void test_unknown_key(void)
{
	CHECK_FAILS(XDP "vips = ( { address = \"10.0.0.1\"; port = 80; protocol = \"tcp\";\n"
		    "  method = \"ipip\";\n"
		    "  backends = ( { address = \"10.1.0.1\"; wieght = 5; } ); } );\n",
		    "t.conf:4: vips.[0].backends.[0].wieght: unknown setting; "
		    "expected one of address, port, weight, mac, healthcheck");
	CHECK_FAILS(XDP "global: { log_lvl = \"info\"; };\n",
		    "t.conf:2: global.log_lvl: unknown setting; expected one of control_socket, "
		    "control_socket_mode, shm_name, hash_seed, log_level, metrics_listen");
	/* semicolons are optional: names and numbers may end the text */
	CHECK_FAILS(XDP "vips = ()\ntypo = true", "t.conf:3: typo: unknown setting; expected "
		    "one of global, limits, dataplane, healthcheck, vips");
	CHECK_FAILS(XDP "typo = 1.5e3", "t.conf:2: typo: unknown setting; expected "
		    "one of global, limits, dataplane, healthcheck, vips");
	CHECK_FAILS(XDP "vip = ();\n", "t.conf:2: vip: unknown setting; expected one of "
		    "global, limits, dataplane, healthcheck, vips");
	CHECK_FAILS(XDP "healthcheck: { inteval_ms = 10; };\n",
		    "t.conf:2: healthcheck.inteval_ms: unknown setting; expected one of type, "
		    "interval_ms, timeout_ms, rise, fall, port, address, http_path, http_host, "
		    "expect_status, expect_body, tls_verify");
	CHECK_FAILS("dataplane: { mode = \"xdp\"; xdp: { interfaces = [ \"a\" ]; };\n"
		    "  conntrack: { tcp_timout = 1; }; };\n",
		    "t.conf:2: dataplane.conntrack.tcp_timout: unknown setting; expected one of "
		    "capacity, tcp_timeout, tcp_closing_timeout, syn_timeout, udp_timeout, "
		    "new_flow_rate");
	CHECK_FAILS("dataplane: { mode = \"dpdk\"; next_hop: { mac = \"02:00:00:00:00:01\"; };\n"
		    "  dpdk: { ports = ( { device = \"x\"; queue = 1; } ); workers = [ 1 ]; }; };\n",
		    "t.conf:2: dataplane.dpdk.ports.[0].queue: unknown setting; expected one of "
		    "name, device, queues");
	CHECK_FAILS("dataplane: { mode = \"xdp\"; xdp: { interfaces = [ \"a\" ]; native = true; }; };\n",
		    "t.conf:1: dataplane.xdp.native: unknown setting; expected one of interfaces, "
		    "generic, detach_on_exit, fib_lookup");
}

static void test_wrong_type(void)
{
	static const char vip_head[] = XDP "vips = ( { address = \"10.0.0.1\"; protocol = \"tcp\";\n";

	char text[1024];

	snprintf(text, sizeof(text), "%s  method = \"ipip\"; port = \"80\"; } );\n", vip_head);
	CHECK_FAILS(text, "t.conf:3: vips.[0].port: must be an integer");
	snprintf(text, sizeof(text), "%s  method = \"ipip\"; port = 80.0; } );\n", vip_head);
	CHECK_FAILS(text, "t.conf:3: vips.[0].port: must be an integer");
	snprintf(text, sizeof(text), "%s  method = \"ipip\"; port = 80; name = 5; } );\n", vip_head);
	CHECK_FAILS(text, "t.conf:3: vips.[0].name: must be a string");
	snprintf(text, sizeof(text), "%s  method = 1; port = 80; } );\n", vip_head);
	CHECK_FAILS(text, "t.conf:3: vips.[0].method: must be a string");
	snprintf(text, sizeof(text), "%s  method = \"ipip\"; port = 80;\n"
		 "  backends = ( \"10.1.0.1\" ); } );\n", vip_head);
	CHECK_FAILS(text, "t.conf:4: vips.[0].backends.[0]: must be a group { ... }");
	snprintf(text, sizeof(text), "%s  method = \"ipip\"; port = 80;\n"
		 "  healthcheck = 5; } );\n", vip_head);
	CHECK_FAILS(text, "t.conf:4: vips.[0].healthcheck: must be a group { ... }");
	CHECK_FAILS(XDP "vips = { };\n", "t.conf:2: vips: must be a list ( { ... }, ... )");
	CHECK_FAILS(XDP "healthcheck: { tls_verify = 1; };\n",
		    "t.conf:2: healthcheck.tls_verify: must be true or false");
	CHECK_FAILS(XDP "healthcheck: { expect_status = 200; };\n",
		    "t.conf:2: healthcheck.expect_status: must be an array [ ... ]");
	CHECK_FAILS(XDP "healthcheck: { expect_status = [ \"200\" ]; };\n",
		    "t.conf:2: healthcheck.expect_status.[0]: must be an integer");
	CHECK_FAILS(XDP "global: { control_socket_mode = 660; };\n",
		    "t.conf:2: global.control_socket_mode: must be an octal string such as \"0660\"");
	CHECK_FAILS("dataplane: { mode = \"xdp\"; xdp: { interfaces = [ 1 ]; }; };\n",
		    "t.conf:1: dataplane.xdp.interfaces.[0]: must be a string");
	/* int64 is as good as int where an integer is wanted */
	{
		struct fl_config cfg;

		REQUIRE(loads(XDP "limits: { max_vips = 3000000000L; ring_entries = 7L; };\n",
			      &cfg), "int64");
		CHECK(cfg.limits.max_vips == 3000000000u && cfg.limits.ring_entries == 7, "values");
		fl_config_free(&cfg);
	}
}

static void test_out_of_range(void)
{
	static const char vip[] = XDP "vips = ( { address = \"10.0.0.1\"; protocol = \"tcp\";\n"
				  "  method = \"ipip\"; port = 80;\n";
	char text[2048];

	snprintf(text, sizeof(text), "%s  backends = ( { address = \"10.1.0.1\";\n"
		 "    weight = 70000; } ); } );\n", vip);
	CHECK_FAILS(text, "t.conf:5: vips.[0].backends.[0].weight: must be 0..65535");
	snprintf(text, sizeof(text), "%s  backends = ( { address = \"10.1.0.1\"; weight = -1; } ); } );\n",
		 vip);
	CHECK_FAILS(text, "t.conf:4: vips.[0].backends.[0].weight: must be 0..65535");
	CHECK_FAILS(XDP "vips = ( { address = \"10.0.0.1\"; protocol = \"tcp\"; method = \"ipip\";\n"
		    "  port = 0; } );\n", "t.conf:3: vips.[0].port: must be 1..65535");
	CHECK_FAILS(XDP "healthcheck: { rise = 0; };\n", "t.conf:2: healthcheck.rise: must be at least 1");
	CHECK_FAILS(XDP "healthcheck: { fall = 0; };\n", "t.conf:2: healthcheck.fall: must be at least 1");
	CHECK_FAILS(XDP "healthcheck: { interval_ms = 5; timeout_ms = 1; };\n",
		    "t.conf:2: healthcheck.interval_ms: must be 10..3600000");
	CHECK_FAILS(XDP "healthcheck: { timeout_ms = 1000; };\n",
		    "t.conf:2: healthcheck.timeout_ms: must be less than interval_ms (1000)");
	CHECK_FAILS(XDP "healthcheck: { expect_status = [ 200, 700 ]; };\n",
		    "t.conf:2: healthcheck.expect_status.[1]: must be 100..599");
	CHECK_FAILS(XDP "healthcheck: { expect_status = [ ]; };\n",
		    "t.conf:2: healthcheck.expect_status: must list 1..16 status codes");
	CHECK_FAILS(XDP "healthcheck: { http_path = \"health\"; };\n",
		    "t.conf:2: healthcheck.http_path: must start with '/'");
	CHECK_FAILS(XDP "global: { control_socket_mode = \"0800\"; };\n",
		    "t.conf:2: global.control_socket_mode: must be an octal string from \"0\" to \"0777\"");
	CHECK_FAILS(XDP "global: { control_socket_mode = \"1777\"; };\n",
		    "t.conf:2: global.control_socket_mode: must be an octal string from \"0\" to \"0777\"");
	snprintf(text, sizeof(text), XDP "global: { control_socket = \"/%0107d\"; };\n", 0);
	CHECK_FAILS(text, "t.conf:2: global.control_socket: must be shorter than 108 bytes");
	CHECK_FAILS(XDP "global: { metrics_listen = \"127.0.0.1\"; };\n",
		    "t.conf:2: global.metrics_listen: must be \"address:port\", e.g. "
		    "\"127.0.0.1:9100\" or \"[::1]:9100\"");
	CHECK_FAILS(XDP "limits: { max_workers = 0; };\n",
		    "t.conf:2: limits.max_workers: must be at least 1");
	/* the limits */
	snprintf(text, sizeof(text), XDP "limits: { max_vips = 1; };\n"
		 "vips = ( { address = \"10.0.0.1\"; port = 80; protocol = \"tcp\"; method = \"ipip\"; },\n"
		 "         { address = \"10.0.0.2\"; port = 80; protocol = \"tcp\"; method = \"ipip\"; } );\n");
	CHECK_FAILS(text, "t.conf:3: vips: 2 VIPs, more than limits.max_vips (1)");
	snprintf(text, sizeof(text), XDP "limits: { max_backends = 2; };\n"
		 "vips = ( { address = \"10.0.0.1\"; port = 80; protocol = \"tcp\"; method = \"ipip\";\n"
		 "           backends = ( { address = \"10.1.0.1\"; } ); },\n"
		 "         { address = \"10.0.0.2\"; port = 80; protocol = \"tcp\"; method = \"ipip\";\n"
		 "           backends = ( { address = \"10.1.0.1\"; }, { address = \"10.1.0.2\"; } ); } );\n");
	CHECK_FAILS(text, "t.conf:6: vips.[1].backends: the VIPs have 3 backends, more than "
		    "limits.max_backends (2)");
	snprintf(text, sizeof(text), XDP "limits: { ring_entries = 100; };\n"
		 "vips = ( { address = \"10.0.0.1\"; port = 80; protocol = \"tcp\"; method = \"ipip\";\n"
		 "           table_size = 97; },\n"
		 "         { address = \"10.0.0.2\"; port = 80; protocol = \"tcp\"; method = \"ipip\"; } );\n");
	CHECK_FAILS(text, "t.conf:5: vips.[1].table_size: the VIPs' tables need 65634 entries, "
		    "more than limits.ring_entries (100)");
	CHECK_FAILS("limits: { max_workers = 1; };\n"
		    "dataplane: { mode = \"dpdk\"; next_hop: { mac = \"02:00:00:00:00:01\"; };\n"
		    "  dpdk: { ports = ( { device = \"x\"; } ); workers = [ 1, 2 ]; }; };\n",
		    "t.conf:3: dataplane.dpdk.workers: 2 workers, more than limits.max_workers (1)");
	CHECK_FAILS("dataplane: { mode = \"dpdk\"; next_hop: { mac = \"02:00:00:00:00:01\"; };\n"
		    "  dpdk: { ports = ( { device = \"x\"; queues = 0; } ); workers = [ 1 ]; }; };\n",
		    "t.conf:2: dataplane.dpdk.ports.[0].queues: must be 1..1024");
	CHECK_FAILS("dataplane: { mode = \"dpdk\"; next_hop: { mac = \"02:00:00:00:00:01\"; };\n"
		    "  dpdk: { ports = ( { device = \"x\"; queues = 2; } ); workers = [ 1 ]; }; };\n",
		    "t.conf:2: dataplane.dpdk.ports.[0].queues: must equal the number of workers "
		    "(1): each worker polls one queue of every port");
	CHECK_FAILS("dataplane: { mode = \"dpdk\"; next_hop: { mac = \"02:00:00:00:00:01\"; };\n"
		    "  dpdk: { ports = ( { device = \"x\"; } ); workers = [ 1, 2, 1 ]; }; };\n",
		    "t.conf:2: dataplane.dpdk.workers.[2]: lcore 1 is also workers.[0]");
	CHECK_FAILS("dataplane: { mode = \"dpdk\"; next_hop: { mac = \"02:00:00:00:00:01\"; };\n"
		    "  dpdk: { workers = [ 1 ]; }; };\n",
		    "t.conf:2: dataplane.dpdk.ports: dpdk mode needs at least one port");
	CHECK_FAILS("dataplane: { mode = \"dpdk\"; next_hop: { mac = \"02:00:00:00:00:01\"; }; };\n",
		    "t.conf:1: dataplane.dpdk.ports: dpdk mode needs at least one port");
	CHECK_FAILS("dataplane: { mode = \"dpdk\"; next_hop: { mac = \"02:00:00:00:00:01\"; };\n"
		    "  dpdk: { ports = ( { device = \"x\"; } ); }; };\n",
		    "t.conf:2: dataplane.dpdk.workers: dpdk mode needs at least one worker lcore");
	CHECK_FAILS("dataplane: { mode = \"xdp\"; };\n",
		    "t.conf:1: dataplane.xdp.interfaces: xdp mode needs at least one interface");
	CHECK_FAILS("dataplane: { mode = \"xdp\";\n  xdp: { interfaces = [ \"a\", \"b\", \"a\" ]; }; };\n",
		    "t.conf:2: dataplane.xdp.interfaces.[2]: \"a\" is also interfaces.[0]");
	CHECK_FAILS("dataplane: { mode = \"xdp\";\n  xdp: { interfaces = [ \"abcdefghijklmnop\" ]; }; };\n",
		    "t.conf:2: dataplane.xdp.interfaces.[0]: must be shorter than 16 bytes");
	CHECK_FAILS("dataplane: { mode = \"bpf\"; };\n",
		    "t.conf:1: dataplane.mode: must be one of dpdk, xdp");
	CHECK_FAILS("dataplane: { };\n", "t.conf:1: dataplane.mode: is required");
	CHECK_FAILS(XDP "global: { log_level = \"verbose\"; };\n",
		    "t.conf:2: global.log_level: must be one of error, warn, info, debug");
	CHECK_FAILS(XDP "healthcheck: { type = \"icmp\"; };\n",
		    "t.conf:2: healthcheck.type: must be one of none, tcp, tcp-half-open, http, https");
	CHECK_FAILS(XDP "vips = ( { address = \"10.0.0.1\"; port = 80; protocol = \"sctp\";\n"
		    "  method = \"ipip\"; } );\n",
		    "t.conf:2: vips.[0].protocol: must be one of tcp, udp");
	CHECK_FAILS(XDP "vips = ( { address = \"10.0.0.1\"; port = 80; protocol = \"tcp\";\n"
		    "  method = \"nat\"; } );\n",
		    "t.conf:3: vips.[0].method: must be one of ipip, ip6ip6, gue, l2dsr");
	CHECK_FAILS(XDP "vips = ( { address = \"10.0.0.1\"; port = 80; protocol = \"tcp\"; } );\n",
		    "t.conf:2: vips.[0].method: is required");
	CHECK_FAILS(XDP "vips = ( { address = \"10.0.0.1\"; port = 80; protocol = \"tcp\";\n"
		    "  method = \"ipip\"; name = \"a b\"; } );\n",
		    "t.conf:3: vips.[0].name: may hold only letters, digits, '-', '_' and '.'");
}

static void test_duplicate_vip(void)
{
	static const char head[] = XDP "vips = (\n"
		"  { name = \"a\"; address = \"10.0.0.1\"; port = 80; protocol = \"tcp\"; method = \"ipip\"; },\n"
		"  { name = \"b\"; address = \"10.0.0.1\"; port = 80; protocol = \"udp\"; method = \"ipip\"; },\n"
		"  { name = \"c\"; address = \"10.0.0.1\"; port = 81; protocol = \"tcp\"; method = \"ipip\"; },\n";
	char text[2048];
	struct fl_config cfg;

	snprintf(text, sizeof(text), "%s  { address = \"10.0.0.2\"; port = 80; protocol = \"tcp\"; "
		 "method = \"ipip\"; } );\n", head);
	REQUIRE(loads(text, &cfg), "distinct VIPs");
	CHECK(cfg.n_vips == 4, "%u", cfg.n_vips);
	fl_config_free(&cfg);
	snprintf(text, sizeof(text), "%s  { address = \"10.0.0.1\"; port = 81; protocol = \"tcp\"; "
		 "method = \"gue\"; } );\n", head);
	CHECK_FAILS(text, "t.conf:6: vips.[3]: same address, port and protocol as vips.[2]");
	snprintf(text, sizeof(text), "%s  { name = \"b\"; address = \"10.0.0.9\"; port = 80; "
		 "protocol = \"tcp\"; method = \"ipip\"; } );\n", head);
	CHECK_FAILS(text, "t.conf:6: vips.[3].name: \"b\" also names vips.[1]");
}

static void test_duplicate_backend(void)
{
	static const char head[] = XDP
		"vips = ( { address = \"10.0.0.1\"; port = 80; protocol = \"tcp\"; method = \"ipip\";\n"
		"  backends = (\n"
		"    { address = \"10.1.0.1\"; },\n"
		"    { address = \"10.1.0.1\"; port = 8080; },\n"
		"    { address = \"10.1.0.2\"; },\n";
	char text[2048];
	struct fl_config cfg;

	snprintf(text, sizeof(text), "%s    { address = \"10.1.0.3\"; } ); } );\n", head);
	REQUIRE(loads(text, &cfg), "distinct backends");
	CHECK(cfg.vips[0].n_backends == 4, "%u", cfg.vips[0].n_backends);
	CHECK(cfg.vips[0].backends[1].key.port == htons(8080), "port in network order");
	fl_config_free(&cfg);
	snprintf(text, sizeof(text), "%s    { address = \"10.1.0.2\"; weight = 1; } ); } );\n", head);
	CHECK_FAILS(text, "t.conf:7: vips.[0].backends.[3]: same address and port as backends.[2]");
	/* port 0 is the VIP's port */
	snprintf(text, sizeof(text), "%s    { address = \"10.1.0.1\"; port = 80; } ); } );\n", head);
	CHECK_FAILS(text, "t.conf:7: vips.[0].backends.[3]: same address and port as backends.[0]");
}

static void test_family_method_mismatch(void)
{
	struct fl_config cfg;

	CHECK_FAILS(XDP "vips = ( { address = \"fd00::1\"; port = 80; protocol = \"tcp\";\n"
		    "  method = \"ipip\"; } );\n",
		    "t.conf:3: vips.[0].method: ipip needs an IPv4 VIP address");
	CHECK_FAILS(XDP "vips = ( { address = \"10.0.0.1\"; port = 80; protocol = \"tcp\";\n"
		    "  method = \"ip6ip6\"; } );\n",
		    "t.conf:3: vips.[0].method: ip6ip6 needs an IPv6 VIP address");
	CHECK_FAILS(XDP "vips = ( { address = \"10.0.0.1\"; port = 80; protocol = \"tcp\"; method = \"ipip\";\n"
		    "  backends = ( { address = \"10.1.0.1\"; },\n"
		    "               { address = \"fd01::1\"; } ); } );\n",
		    "t.conf:4: vips.[0].backends.[1].address: must be IPv4 like the VIP: ipip keeps "
		    "the family");
	CHECK_FAILS(XDP "vips = ( { address = \"fd00::1\"; port = 80; protocol = \"tcp\"; method = \"gue\";\n"
		    "  backends = ( { address = \"10.1.0.1\"; } ); } );\n",
		    "t.conf:3: vips.[0].backends.[0].address: must be IPv6 like the VIP: gue keeps "
		    "the family");
	CHECK_FAILS(XDP "vips = ( { address = \"10.0.0.1\"; port = 80; protocol = \"tcp\"; method = \"l2dsr\";\n"
		    "  backends = ( { address = \"fd01::1\"; } ); } );\n",
		    "t.conf:3: vips.[0].backends.[0].address: must be IPv4 like the VIP: l2dsr keeps "
		    "the family");
	CHECK_FAILS(XDP "vips = ( { address = \"10.0.0.1\"; port = 80; protocol = \"tcp\"; method = \"gue\";\n"
		    "  backends = ( { address = \"10.1.0.1\"; mac = \"02:00:00:00:00:02\"; } ); } );\n",
		    "t.conf:3: vips.[0].backends.[0].mac: only l2dsr uses a backend MAC");
	/* each tunnel needs its outer source address */
	CHECK_FAILS("dataplane: { mode = \"xdp\"; xdp: { interfaces = [ \"a\" ]; }; };\n"
		    "vips = ( { address = \"10.0.0.1\"; port = 80; protocol = \"tcp\";\n"
		    "  method = \"gue\"; } );\n",
		    "t.conf:3: vips.[0].method: gue needs dataplane.tunnel_source_v4");
	CHECK_FAILS("dataplane: { mode = \"xdp\"; xdp: { interfaces = [ \"a\" ]; };\n"
		    "  tunnel_source_v4 = \"10.0.0.2\"; };\n"
		    "vips = ( { address = \"fd00::1\"; port = 80; protocol = \"tcp\";\n"
		    "  method = \"ip6ip6\"; } );\n",
		    "t.conf:4: vips.[0].method: ip6ip6 needs dataplane.tunnel_source_v6");
	/* what fits */
	REQUIRE(loads("dataplane: { mode = \"xdp\"; xdp: { interfaces = [ \"a\" ]; }; };\n"
		      "vips = (\n"
		      "  { address = \"fd00::1\"; port = 80; protocol = \"tcp\"; method = \"l2dsr\";\n"
		      "    backends = ( { address = \"fd01::1\"; mac = \"02:00:00:00:00:02\"; } ); },\n"
		      "  { address = \"10.0.0.1\"; port = 80; protocol = \"tcp\"; method = \"l2dsr\";\n"
		      "    backends = ( { address = \"10.1.0.1\"; } ); } );\n", &cfg),
		"l2dsr needs no tunnel source");
	CHECK(cfg.vips[0].backends[0].has_mac && cfg.vips[0].backends[0].mac[5] == 2, "mac");
	fl_config_free(&cfg);
	REQUIRE(loads(XDP "vips = ( { address = \"fd00::1\"; port = 53; protocol = \"udp\";\n"
		      "  method = \"gue\"; backends = ( { address = \"fd01::1\"; } ); } );\n", &cfg),
		"gue over IPv6");
	CHECK(cfg.vips[0].family == FL_AF_INET6 && cfg.vips[0].proto == IPPROTO_UDP, "v6 udp");
	fl_config_free(&cfg);
}

static void test_table_not_prime(void)
{
	static const char head[] = XDP
		"vips = ( { address = \"10.0.0.1\"; port = 80; protocol = \"tcp\"; method = \"ipip\";\n";
	char text[1024];
	struct fl_config cfg;

	snprintf(text, sizeof(text), "%s  table_size = 65536; } );\n", head);
	CHECK_FAILS(text, "t.conf:3: vips.[0].table_size: must be prime; the next prime is 65537");
	snprintf(text, sizeof(text), "%s  table_size = 1; } );\n", head);
	CHECK_FAILS(text, "t.conf:3: vips.[0].table_size: must be 2..16777213");
	snprintf(text, sizeof(text), "%s  table_size = 16777216; } );\n", head);
	CHECK_FAILS(text, "t.conf:3: vips.[0].table_size: must be 2..16777213");
	snprintf(text, sizeof(text), XDP "limits: { ring_entries = 16777213; };\n"
		 "vips = ( { address = \"10.0.0.1\"; port = 80; protocol = \"tcp\"; method = \"ipip\";\n"
		 "  table_size = 16777213; } );\n");
	REQUIRE(loads(text, &cfg), "largest table");
	CHECK(cfg.vips[0].table_size == 16777213, "%u", cfg.vips[0].table_size);
	fl_config_free(&cfg);
	snprintf(text, sizeof(text), "%s  table_size = 2; } );\n", head);
	REQUIRE(loads(text, &cfg), "smallest table");
	fl_config_free(&cfg);
}

static void test_bad_address(void)
{
	static const char head[] = XDP "vips = ( { port = 80; protocol = \"tcp\"; method = \"ipip\";\n";
	char text[1024], buf[FL_ADDR_STRLEN], mbuf[FL_MAC_STRLEN];
	union fl_addr a;
	__u8 family, mac[6];

	snprintf(text, sizeof(text), "%s  address = \"10.0.0.256\"; } );\n", head);
	CHECK_FAILS(text, "t.conf:3: vips.[0].address: \"10.0.0.256\" is not an IP address");
	snprintf(text, sizeof(text), "%s  address = \"224.0.0.1\"; } );\n", head);
	CHECK_FAILS(text, "t.conf:3: vips.[0].address: 224.0.0.1 is not a unicast address");
	snprintf(text, sizeof(text), "%s  address = \"10.0.0.1\";\n"
		 "  backends = ( { address = \"fe80::zz\"; } ); } );\n", head);
	CHECK_FAILS(text, "t.conf:4: vips.[0].backends.[0].address: \"fe80::zz\" is not an IP address");
	snprintf(text, sizeof(text), "%s  address = \"10.0.0.1\";\n"
		 "  backends = ( { address = \"0.0.0.0\"; } ); } );\n", head);
	CHECK_FAILS(text, "t.conf:4: vips.[0].backends.[0].address: 0.0.0.0 is not a unicast address");
	snprintf(text, sizeof(text), "%s  address = \"10.0.0.1\";\n"
		 "  healthcheck: { address = \"host\"; }; } );\n", head);
	CHECK_FAILS(text, "t.conf:4: vips.[0].healthcheck.address: \"host\" is not an IP address");
	CHECK_FAILS("dataplane: { mode = \"xdp\"; xdp: { interfaces = [ \"a\" ]; };\n"
		    "  tunnel_source_v4 = \"fd00::2\"; };\n",
		    "t.conf:2: dataplane.tunnel_source_v4: must be an IPv4 address");
	CHECK_FAILS("dataplane: { mode = \"xdp\"; xdp: { interfaces = [ \"a\" ]; };\n"
		    "  tunnel_source_v6 = \"10.0.0.2\"; };\n",
		    "t.conf:2: dataplane.tunnel_source_v6: must be an IPv6 address");
	/* MACs */
	CHECK_FAILS("dataplane: { mode = \"dpdk\";\n  next_hop: { mac = \"02:00:00:00:00\"; }; };\n",
		    "t.conf:2: dataplane.next_hop.mac: \"02:00:00:00:00\" is not a MAC address "
		    "like 02:00:00:00:00:01");
	snprintf(text, sizeof(text), "%s  address = \"10.0.0.1\"; method = \"l2dsr\";\n"
		 "  backends = ( { address = \"10.0.0.5\"; mac = \"2:0:0:0:0:1\"; } ); } );\n",
		 XDP "vips = ( { port = 80; protocol = \"tcp\";\n");
	CHECK_FAILS(text, "t.conf:4: vips.[0].backends.[0].mac: \"2:0:0:0:0:1\" is not a MAC "
		    "address like 02:00:00:00:00:01");
	/* next hop: both, or neither in dpdk mode */
	CHECK_FAILS("dataplane: { mode = \"dpdk\";\n"
		    "  next_hop: { mac = \"02:00:00:00:00:01\"; address = \"10.0.0.1\"; }; };\n",
		    "t.conf:2: dataplane.next_hop: give mac or address, not both");
	CHECK_FAILS("dataplane: { mode = \"dpdk\"; };\n",
		    "t.conf:1: dataplane.next_hop: dpdk mode needs a mac or an address");
	/* xdp.fib_lookup finds the next hop: a next_hop too would be ignored */
	CHECK_FAILS("dataplane: { mode = \"xdp\"; xdp: { interfaces = [ \"a\" ]; fib_lookup = true; };\n"
		    "  next_hop: { address = \"10.0.0.1\"; }; };\n",
		    "t.conf:2: dataplane.next_hop: xdp.fib_lookup takes the next hop from the "
		    "kernel's routes and neighbours: give next_hop or xdp.fib_lookup, not both");
	{
		struct fl_config cfg;

		REQUIRE(loads("dataplane: { mode = \"xdp\";\n"
			      "  xdp: { interfaces = [ \"a\" ]; fib_lookup = true; }; };\n", &cfg),
			"xdp.fib_lookup without a next hop");
		CHECK(cfg.dataplane.xdp_fib_lookup && !cfg.dataplane.has_next_hop_mac &&
		      !cfg.dataplane.has_next_hop_address, "fib_lookup");
		CHECK(cfg.dataplane.neighbour_interface[0] == '\0',
		      "fib_lookup needs no neighbour interface");
		fl_config_free(&cfg);
	}
	/* an address to resolve and two ports to choose from */
	CHECK_FAILS("dataplane: { mode = \"dpdk\"; next_hop: { address = \"10.0.0.1\"; };\n"
		    "  dpdk: { ports = ( { device = \"net_null0\"; }, { device = \"net_null1\"; } );\n"
		    "          workers = [ 2 ]; }; };\n",
		    "t.conf:1: dataplane.neighbour_interface: needed to resolve next_hop.address or "
		    "an l2dsr backend without mac, and there is not exactly one port to take it from");
	CHECK_FAILS("dataplane: { mode = \"dpdk\"; next_hop: { address = \"10.0.0.1\"; };\n"
		    "  neighbour_interface = \"a-name-longer-than-ifnamsiz\";\n"
		    "  dpdk: { ports = ( { device = \"net_null0\"; } ); workers = [ 2 ]; }; };\n",
		    "t.conf:2: dataplane.neighbour_interface: must be shorter than 16 bytes");
	/* the parsers themselves */
	CHECK(fl_addr_parse("10.1.2.3", &a, &family) == 0 && family == FL_AF_INET &&
	      a.v4 == htonl(0x0a010203) && a.v6[1] == 0 && a.v6[2] == 0 && a.v6[3] == 0, "v4");
	CHECK(strcmp(fl_addr_format(&a, family, buf, sizeof(buf)), "10.1.2.3") == 0, "%s", buf);
	CHECK(fl_addr_parse("2001:db8::1", &a, &family) == 0 && family == FL_AF_INET6 &&
	      a.bytes[0] == 0x20 && a.bytes[15] == 1, "v6");
	CHECK(strcmp(fl_addr_format(&a, family, buf, sizeof(buf)), "2001:db8::1") == 0, "%s", buf);
	CHECK(fl_addr_parse("", &a, &family) == -EINVAL, "empty");
	CHECK(fl_addr_parse("10.0.0.1 ", &a, &family) == -EINVAL, "trailing space");
	CHECK(fl_addr_parse("10.0.0.1/24", &a, &family) == -EINVAL, "prefix");
	CHECK(fl_mac_parse("02:aB:cd:EF:00:ff", mac) == 0 && mac[1] == 0xab && mac[5] == 0xff, "mac");
	CHECK(strcmp(fl_mac_format(mac, mbuf, sizeof(mbuf)), "02:ab:cd:ef:00:ff") == 0, "%s", mbuf);
	CHECK(fl_mac_parse("02:ab:cd:ef:00:ff:", mac) == -EINVAL, "trailing colon");
	CHECK(fl_mac_parse("02:ab:cd:ef:00", mac) == -EINVAL, "five");
	CHECK(fl_mac_parse("02:ab:cd:ef:00:f", mac) == -EINVAL, "short pair");
	CHECK(fl_mac_parse("02-ab-cd-ef-00-ff", mac) == -EINVAL, "dashes");
	CHECK(fl_mac_parse("02:ab:cd:ef:00:fg", mac) == -EINVAL, "not hex");
	CHECK(fl_mac_parse("", mac) == -EINVAL, "empty");
}

/* A loaded VIP to change, one thing at a time. */
static const char check_vip_text[] = XDP
	"vips = ( { name = \"web\"; address = \"10.0.0.1\"; port = 80; protocol = \"tcp\";\n"
	"  method = \"ipip\"; table_size = 251;\n"
	"  backends = ( { address = \"10.1.0.1\"; }, { address = \"10.1.0.2\"; port = 81; } ); } );\n";

static int vip_fails_with(const struct fl_vip_config *vip, const char *want, char *got)
{
	return fl_config_check_vip(vip, got, FL_CONFIG_ERR_LEN) == -EINVAL &&
	       strcmp(got, want) == 0;
}

#define CHECK_VIP_FAILS(vip, want)                                             \
	do {                                                                   \
		char got_[FL_CONFIG_ERR_LEN] = "(accepted)";                   \
		CHECK(vip_fails_with(vip, want, got_), "want \"%s\", got \"%s\"", \
		      want, got_);                                             \
	} while (0)

static void test_check_vip(void)
{
	struct fl_backend_config backends[2];
	struct fl_vip_config vip;
	struct fl_config cfg;
	char err[FL_CONFIG_ERR_LEN];

	REQUIRE(loads(check_vip_text, &cfg), "template");
	REQUIRE(cfg.n_vips == 1 && cfg.vips[0].n_backends == 2, "template VIP");
	CHECK(fl_config_check_vip(&cfg.vips[0], err, sizeof(err)) == 0, "%s", err);

#define RESET()                                                                \
	do {                                                                   \
		vip = cfg.vips[0];                                             \
		memcpy(backends, vip.backends, sizeof(backends));              \
		vip.backends = backends;                                       \
	} while (0)

	RESET();
	vip.table_size = 65536;
	CHECK_VIP_FAILS(&vip, "table_size: must be prime; the next prime is 65537");
	RESET();
	vip.table_size = 0;
	CHECK_VIP_FAILS(&vip, "table_size: must be 2..16777213");
	RESET();
	vip.port = 0;
	CHECK_VIP_FAILS(&vip, "port: must be 1..65535");
	RESET();
	vip.method = FL_METHOD_NONE;
	CHECK_VIP_FAILS(&vip, "method: must be one of ipip, ip6ip6, gue, l2dsr");
	RESET();
	vip.proto = IPPROTO_ICMP;
	CHECK_VIP_FAILS(&vip, "protocol: must be one of tcp, udp");
	RESET();
	vip.family = 5;
	CHECK_VIP_FAILS(&vip, "address: family must be 4 or 6");
	RESET();
	inet_pton(AF_INET6, "fd00::1", vip.addr.bytes);
	vip.family = FL_AF_INET6;
	CHECK_VIP_FAILS(&vip, "method: ipip needs an IPv4 VIP address");
	RESET();
	memset(vip.name, 'x', sizeof(vip.name));
	CHECK_VIP_FAILS(&vip, "name: must be shorter than 64 bytes");
	RESET();
	strcpy(vip.name, "we b");
	CHECK_VIP_FAILS(&vip, "name: may hold only letters, digits, '-', '_' and '.'");
	RESET();
	vip.hc.n_expect_status = 0;
	CHECK_VIP_FAILS(&vip, "healthcheck.expect_status: must list 1..16 status codes");
	RESET();
	vip.hc.interval_ms = 5;
	CHECK_VIP_FAILS(&vip, "healthcheck.interval_ms: must be 10..3600000");
	RESET();
	backends[1].hc.timeout_ms = 1000;
	CHECK_VIP_FAILS(&vip, "backends.[1].healthcheck.timeout_ms: must be less than "
			"interval_ms (1000)");
	RESET();
	backends[0].hc.expect_status[0] = 99;
	CHECK_VIP_FAILS(&vip, "backends.[0].healthcheck.expect_status: must be 100..599");
	RESET();
	backends[0].hc.type = (enum fl_hc_type)7;
	CHECK_VIP_FAILS(&vip, "backends.[0].healthcheck.type: must be one of none, tcp, tcp-half-open, "
			"http, https");
	RESET();
	backends[1].key = backends[0].key;
	CHECK_VIP_FAILS(&vip, "backends.[1]: same address and port as backends.[0]");
	RESET();
	backends[1].key.port = htons(80);
	backends[1].key.addr = backends[0].key.addr;
	CHECK_VIP_FAILS(&vip, "backends.[1]: same address and port as backends.[0]");
	RESET();
	inet_pton(AF_INET6, "fd01::1", backends[1].key.addr.bytes);
	backends[1].key.family = FL_AF_INET6;
	CHECK_VIP_FAILS(&vip, "backends.[1].address: must be IPv4 like the VIP: ipip keeps the family");
	RESET();
	backends[0].key.addr.v4 = htonl(0xe0000001);
	CHECK_VIP_FAILS(&vip, "backends.[0].address: 224.0.0.1 is not a unicast address");
	RESET();
	backends[0].has_mac = true;
	CHECK_VIP_FAILS(&vip, "backends.[0].mac: only l2dsr uses a backend MAC");
	RESET();
	backends[0].has_mac = true;
	vip.method = FL_METHOD_L2DSR;
	CHECK(fl_config_check_vip(&vip, err, sizeof(err)) == 0, "l2dsr with a MAC: %s", err);
	RESET();
	vip.n_backends = 0;
	vip.backends = NULL;
	CHECK(fl_config_check_vip(&vip, err, sizeof(err)) == 0, "no backends: %s", err);
	vip.n_backends = 1;
	CHECK_VIP_FAILS(&vip, "backends: 1 backends but no array");
#undef RESET
	fl_config_free(&cfg);
}

static void test_names(void)
{
	static const enum fl_method methods[] = { FL_METHOD_IPIP, FL_METHOD_IP6IP6,
						  FL_METHOD_GUE, FL_METHOD_L2DSR };
	static const char *const bad[] = { "", "IPIP", "none", "ipip ", "sctp", "tcp6" };
	static const char *const bad_hc[] = { "", "TCP", "tcp_half_open", "tcp-half-open ",
					      "half-open", "tcp-half" };
	enum fl_hc_type hc_type;
	enum fl_method m;
	__u8 proto;

	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		CHECK(fl_method_parse(fl_method_name(methods[i]), &m) == 0 && m == methods[i],
		      "method %d", methods[i]);
	}
	CHECK(strcmp(fl_method_name(FL_METHOD_GUE), "gue") == 0, "gue");
	CHECK(strcmp(fl_method_name(FL_METHOD_NONE), "none") == 0, "none");
	CHECK(strcmp(fl_method_name(FL_METHOD__MAX), "unknown") == 0, "max");
	CHECK(fl_proto_parse("tcp", &proto) == 0 && proto == IPPROTO_TCP, "tcp");
	CHECK(fl_proto_parse("udp", &proto) == 0 && proto == IPPROTO_UDP, "udp");
	CHECK(strcmp(fl_proto_name(IPPROTO_TCP), "tcp") == 0, "tcp name");
	CHECK(strcmp(fl_proto_name(IPPROTO_ICMP), "unknown") == 0, "icmp");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		m = FL_METHOD_GUE;
		proto = 99;
		CHECK(fl_method_parse(bad[i], &m) == -EINVAL && m == FL_METHOD_GUE, "\"%s\"", bad[i]);
		CHECK(fl_proto_parse(bad[i], &proto) == -EINVAL && proto == 99, "\"%s\"", bad[i]);
	}
	CHECK(strcmp(fl_hc_type_name(FL_HC_NONE), "none") == 0 &&
	      strcmp(fl_hc_type_name(FL_HC_TCP), "tcp") == 0 &&
	      strcmp(fl_hc_type_name(FL_HC_TCP_HALF_OPEN), "tcp-half-open") == 0 &&
	      strcmp(fl_hc_type_name(FL_HC_HTTP), "http") == 0 &&
	      strcmp(fl_hc_type_name(FL_HC_HTTPS), "https") == 0, "hc types");
	CHECK(strcmp(fl_hc_type_name((enum fl_hc_type)9), "unknown") == 0, "hc 9");
	CHECK(fl_hc_type_parse("tcp-half-open", &hc_type) == 0 && hc_type == FL_HC_TCP_HALF_OPEN,
	      "tcp-half-open");
	for (size_t i = 0; i < sizeof(bad_hc) / sizeof(bad_hc[0]); i++) {
		hc_type = FL_HC_HTTP;
		CHECK(fl_hc_type_parse(bad_hc[i], &hc_type) == -EINVAL && hc_type == FL_HC_HTTP,
		      "\"%s\"", bad_hc[i]);
	}
	CHECK(strcmp(fl_log_level_name(FL_LOG_ERROR), "error") == 0 &&
	      strcmp(fl_log_level_name(FL_LOG_WARN), "warn") == 0 &&
	      strcmp(fl_log_level_name(FL_LOG_INFO), "info") == 0 &&
	      strcmp(fl_log_level_name(FL_LOG_DEBUG), "debug") == 0, "log levels");
	CHECK(strcmp(fl_log_level_name((enum fl_log_level)9), "unknown") == 0, "log 9");
}

static const struct fl_test_case cases[] = {
	{ "example_files", test_example_files },
	{ "defaults", test_defaults },
	{ "overrides", test_overrides },
	{ "syntax_error", test_syntax_error },
	{ "unknown_key", test_unknown_key },
	{ "wrong_type", test_wrong_type },
	{ "out_of_range", test_out_of_range },
	{ "duplicate_vip", test_duplicate_vip },
	{ "duplicate_backend", test_duplicate_backend },
	{ "family_method_mismatch", test_family_method_mismatch },
	{ "table_not_prime", test_table_not_prime },
	{ "bad_address", test_bad_address },
	{ "check_vip", test_check_vip },
	{ "names", test_names },
};

FL_TEST_MAIN(cases)
