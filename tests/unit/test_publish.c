/* SPDX-License-Identifier: BSD-3-Clause */
/* The table publisher of cp/publish.h: ids, epochs, states and rings as the
 * data plane reads them from the shared memory. */
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
#include "maglev.h"
#include "publish.h"
#include "shm.h"

#define XDP "dataplane: { mode = \"xdp\"; xdp: { interfaces = [ \"eth0\" ]; }; " \
	    "tunnel_source_v4 = \"10.0.0.2\"; tunnel_source_v6 = \"fd00::2\"; };\n" \
	    "global: { hash_seed = 0x1234567890abcdefL; };\n"
#define NOHC "healthcheck: { type = \"none\"; };\n"
#define TIMEOUT_MS 1000

static const struct fl_shm_params small = { .max_vips = 16, .max_backends = 64,
					    .ring_entries = 70000, .max_workers = 2 };

struct env {
	struct fl_shm shm;
	struct fl_publisher pub;
	char name[128];
};

/* A per-process, per-case file under /dev/shm, removed before use. */
static int env_open(struct env *e, const char *tag, const struct fl_shm_params *params)
{
	char err[256];
	int rc;

	snprintf(e->name, sizeof(e->name), "/dev/shm/fulcrum-test-%d-pub-%s", (int)getpid(), tag);
	fl_shm_unlink(e->name);
	rc = fl_shm_create(e->name, params, &e->shm, err, sizeof(err));
	CHECK(rc == 0, "create %s: %s", e->name, err);
	if (rc)
		return rc;
	rc = fl_publisher_init(&e->pub, &e->shm, err, sizeof(err));
	CHECK(rc == 0, "publisher init: %s", err);
	return rc;
}

static void env_close(struct env *e, bool unlink)
{
	fl_publisher_fini(&e->pub);
	fl_shm_detach(&e->shm);
	if (unlink)
		fl_shm_unlink(e->name);
}

/* Restarts the writer on the same mapping, as a new fulcrum-cp would. */
static int env_restart(struct env *e)
{
	char err[256];
	int rc;

	env_close(e, false);
	rc = fl_shm_create(e->name, &small, &e->shm, err, sizeof(err));
	CHECK(rc == 0, "reattach: %s", err);
	if (rc == 0) {
		rc = fl_publisher_init(&e->pub, &e->shm, err, sizeof(err));
		CHECK(rc == 0, "publisher init: %s", err);
	}
	return rc;
}

static __u64 generation(const struct env *e)
{
	return __atomic_load_n(&e->shm.hdr->published, __ATOMIC_ACQUIRE) >> 1;
}

/* Parses text, sets it with its statuses and publishes: 0 or -errno. */
static int publish_text(struct env *e, const char *text, const struct fl_backend_status *st,
			size_t n, struct fl_publish_result *res, char *err, size_t errlen)
{
	struct fl_config cfg;
	int rc = fl_config_parse(text, "t.conf", &cfg, err, errlen);

	CHECK(rc == 0, "config: %s", err);
	if (rc)
		return rc;
	rc = fl_publisher_set(&e->pub, &cfg, st, n, err, errlen);
	if (rc == 0)
		rc = fl_publisher_publish(&e->pub, TIMEOUT_MS, res, err, errlen);
	fl_config_free(&cfg);
	return rc;
}

static int publish_ok(struct env *e, const char *text, const struct fl_backend_status *st, size_t n)
{
	char err[FL_CONFIG_ERR_LEN];
	int rc = publish_text(e, text, st, n, NULL, err, sizeof(err));

	CHECK(rc == 0, "publish: %s", err);
	return rc;
}

/* One IPv4 VIP 10.0.0.100:80/tcp, table 251, with backend 10.1.0.(i+1) for
 * each bit i of mask. */
static const char *one_vip(__u32 mask)
{
	static char text[4096];
	int n = snprintf(text, sizeof(text), XDP "vips = ( { address = \"10.0.0.100\"; port = 80; "
			 "protocol = \"tcp\"; method = \"ipip\"; table_size = 251; " NOHC
			 "backends = (");
	const char *sep = "";

	for (unsigned i = 0; i < 32; i++) {
		if (!(mask & (1u << i)))
			continue;
		n += snprintf(text + n, sizeof(text) - (size_t)n, "%s { address = \"10.1.0.%u\"; }",
			      sep, i + 1);
		sep = ",";
	}
	snprintf(text + n, sizeof(text) - (size_t)n, " ); } );\n");
	return text;
}

static union fl_addr addr_of(const char *text, __u8 *family)
{
	union fl_addr a;
	__u8 f;

	memset(&a, 0, sizeof(a));
	if (fl_addr_parse(text, &a, &f) != 0)
		fprintf(stderr, "bad test address %s\n", text);
	if (family)
		*family = f;
	return a;
}

static __u32 vip_id_of(const struct fl_tables *t, const char *addr, __u16 port, __u8 proto)
{
	__u8 family;
	union fl_addr a = addr_of(addr, &family);
	__u32 id;

	if (!fl_vip_find(t, &a, family, htons(port), proto, &id))
		return FL_BACKEND_NONE;
	return id;
}

/* The id of the backend (addr, port in host order, 0 = the VIP's) of a VIP. */
static __u32 bid_of(const struct fl_tables *t, __u32 vip, const char *addr, __u16 port)
{
	struct fl_backend_key k;

	memset(&k, 0, sizeof(k));
	k.addr = addr_of(addr, &k.family);
	k.port = htons(port);
	for (__u32 id = 0; id < t->hdr->backend_count; id++) {
		const struct fl_backend *b = &t->backends[id];
		if (b->state != FL_BACKEND_FREE && b->vip_id == vip &&
		    memcmp(&b->key, &k, sizeof(k)) == 0)
			return id;
	}
	return FL_BACKEND_NONE;
}

static __u32 bid4(const struct fl_tables *t, unsigned i)
{
	char a[32];

	snprintf(a, sizeof(a), "10.1.0.%u", i);
	return bid_of(t, vip_id_of(t, "10.0.0.100", 80, IPPROTO_TCP), a, 0);
}

/* Whether a VIP's ring is what an independent Maglev build of its UP
 * backends gives. */
static bool ring_is_maglev(const struct fl_tables *t, __u32 vip)
{
	struct fl_maglev_backend mb[64];
	const struct fl_vip *v = &t->vips[vip];
	size_t n = 0;
	char err[256];
	__u32 *want = malloc((size_t)v->ring_size * sizeof(*want));
	bool same;

	for (__u32 id = 0; id < t->hdr->backend_count && n < 64; id++) {
		const struct fl_backend *b = &t->backends[id];
		if (b->state == FL_BACKEND_UP && b->vip_id == vip)
			mb[n++] = (struct fl_maglev_backend){ .key = b->key, .id = id,
							      .weight = b->weight };
	}
	if (!want || fl_maglev_build(mb, n, v->ring_size, want, err, sizeof(err)) != 0) {
		fprintf(stderr, "maglev: %s\n", err);
		free(want);
		return false;
	}
	same = memcmp(want, &t->ring[v->ring_offset], (size_t)v->ring_size * sizeof(*want)) == 0;
	free(want);
	return same;
}

/* Whether two slots hold the same bytes: header counts, VIPs, backends, index
 * and rings. */
static bool same_tables(const struct fl_tables *a, const struct fl_tables *b)
{
	return a->hdr->vip_count == b->hdr->vip_count &&
	       a->hdr->backend_count == b->hdr->backend_count &&
	       a->hdr->ring_used == b->hdr->ring_used && a->hdr->hash_seed == b->hdr->hash_seed &&
	       memcmp(a->vips, b->vips, a->hdr->vip_count * sizeof(*a->vips)) == 0 &&
	       memcmp(a->backends, b->backends, a->hdr->backend_count * sizeof(*a->backends)) == 0 &&
	       memcmp(a->vip_index, b->vip_index, (a->vip_index_mask + 1) * sizeof(__u32)) == 0 &&
	       memcmp(a->ring, b->ring, a->hdr->ring_used * sizeof(__u32)) == 0;
}

/* Whether every ring entry of a VIP names the same backend key in both
 * (whatever the ids). */
static bool same_choice(const struct fl_tables *a, __u32 va, const struct fl_tables *b, __u32 vb)
{
	const struct fl_vip *x = &a->vips[va], *y = &b->vips[vb];

	if (x->ring_size != y->ring_size)
		return false;
	for (__u32 i = 0; i < x->ring_size; i++) {
		__u32 ia = a->ring[x->ring_offset + i], ib = b->ring[y->ring_offset + i];
		if ((ia == FL_BACKEND_NONE) != (ib == FL_BACKEND_NONE))
			return false;
		if (ia != FL_BACKEND_NONE &&
		    memcmp(&a->backends[ia].key, &b->backends[ib].key, sizeof(a->backends[ia].key)) != 0)
			return false;
	}
	return true;
}

static const char basic_cfg[] = XDP
	"vips = (\n"
	" { address = \"10.0.0.100\"; port = 80; protocol = \"tcp\"; method = \"ipip\";\n"
	"   table_size = 251; " NOHC
	"   backends = ( { address = \"10.1.0.1\"; weight = 100; },\n"
	"                { address = \"10.1.0.2\"; weight = 50; },\n"
	"                { address = \"10.1.0.3\"; port = 8080; },\n"
	"                { address = \"10.1.0.4\"; port = 80; } ); },\n"
	" { address = \"10.0.0.100\"; port = 80; protocol = \"udp\"; method = \"gue\";\n"
	"   table_size = 13; " NOHC
	"   backends = ( { address = \"10.1.0.1\"; } ); },\n"
	" { address = \"fd00::53\"; port = 53; protocol = \"udp\"; method = \"gue\";\n"
	"   table_size = 1021; " NOHC
	"   backends = ( { address = \"fd01::1\"; }, { address = \"fd01::2\"; weight = 7; } ); },\n"
	" { address = \"10.0.0.101\"; port = 22; protocol = \"tcp\"; method = \"l2dsr\";\n"
	"   table_size = 65537; " NOHC
	"   backends = ( { address = \"10.0.0.11\"; mac = \"02:00:00:00:01:01\"; },\n"
	"                { address = \"10.0.0.12\"; } ); }\n"
	");\n";

static void check_backend(const struct fl_tables *t, __u32 vip, const char *addr, __u16 port,
			  __u16 weight, __u8 state)
{
	__u32 id = bid_of(t, vip, addr, port);

	CHECK(id != FL_BACKEND_NONE, "backend %s:%u of vip %u", addr, port, vip);
	if (id == FL_BACKEND_NONE)
		return;
	CHECK(t->backends[id].weight == weight, "%s weight %u", addr, t->backends[id].weight);
	CHECK(t->backends[id].state == state, "%s state %u", addr, t->backends[id].state);
	CHECK(t->backends[id].epoch == 1, "%s epoch %u", addr, t->backends[id].epoch);
}

static void test_publish_basic(void)
{
	struct env e;
	struct fl_shm r;
	struct fl_reader rd;
	struct fl_publish_result res;
	char err[FL_CONFIG_ERR_LEN];

	REQUIRE(env_open(&e, "basic", &small) == 0, "open");
	REQUIRE(publish_text(&e, basic_cfg, NULL, 0, &res, err, sizeof(err)) == 0, "publish: %s", err);
	CHECK(res.generation == 2 && generation(&e) == 2, "generation %llu",
	      (unsigned long long)res.generation);
	/* 10.0.0.12 (l2dsr, no mac, nothing to resolve it) is down */
	CHECK(res.vips == 4 && res.backends == 9 && res.backends_up == 8, "counts %u %u %u",
	      res.vips, res.backends, res.backends_up);
	CHECK(res.rings_built == 4 && res.rings_copied == 0, "built %u", res.rings_built);

	/* read it as fulcrum-dp does */
	REQUIRE(fl_shm_attach(e.name, &r, err, sizeof(err)) == 0, "attach: %s", err);
	REQUIRE(fl_reader_register(&r, 0, &rd, err, sizeof(err)) == 0, "register: %s", err);
	const struct fl_tables *t = fl_reader_begin(&rd);
	CHECK(rd.generation == 2, "reader generation");
	CHECK(t->hdr->hash_seed == 0x1234567890abcdefULL, "hash seed");
	CHECK(t->hdr->vip_count == 4 && t->hdr->backend_count == 9, "counts");
	CHECK(t->hdr->ring_used == 251 + 13 + 1021 + 65537, "ring_used %u", t->hdr->ring_used);

	__u32 web = vip_id_of(t, "10.0.0.100", 80, IPPROTO_TCP);
	__u32 web_udp = vip_id_of(t, "10.0.0.100", 80, IPPROTO_UDP);
	__u32 dns = vip_id_of(t, "fd00::53", 53, IPPROTO_UDP);
	__u32 ssh = vip_id_of(t, "10.0.0.101", 22, IPPROTO_TCP);
	REQUIRE(web < 4 && web_udp < 4 && dns < 4 && ssh < 4, "vips found %u %u %u %u", web,
		web_udp, dns, ssh);
	CHECK(web != web_udp, "protocol tells VIPs apart");
	CHECK(vip_id_of(t, "10.0.0.100", 81, IPPROTO_TCP) == FL_BACKEND_NONE, "no such VIP");

	const struct fl_vip *v = &t->vips[web];
	CHECK(v->method == FL_METHOD_IPIP && v->family == FL_AF_INET && v->ring_size == 251 &&
	      v->flags == FL_VIP_IN_USE && v->pad == 0, "web record");
	CHECK(t->vips[dns].method == FL_METHOD_GUE && t->vips[dns].family == FL_AF_INET6 &&
	      t->vips[dns].ring_size == 1021, "dns record");
	CHECK(t->vips[ssh].method == FL_METHOD_L2DSR && t->vips[ssh].ring_size == 65537, "ssh");
	/* the rings do not overlap and fit the pool */
	for (__u32 a = 0; a < 4; a++)
		for (__u32 b = 0; b < 4; b++)
			CHECK(a == b || t->vips[a].ring_offset + t->vips[a].ring_size <=
					 t->vips[b].ring_offset ||
			      t->vips[b].ring_offset + t->vips[b].ring_size <= t->vips[a].ring_offset,
			      "rings %u and %u overlap", a, b);

	check_backend(t, web, "10.1.0.1", 0, 100, FL_BACKEND_UP);
	check_backend(t, web, "10.1.0.2", 0, 50, FL_BACKEND_UP);
	check_backend(t, web, "10.1.0.3", 8080, 100, FL_BACKEND_UP);
	/* the VIP's port written out is the same key as port 0 */
	check_backend(t, web, "10.1.0.4", 0, 100, FL_BACKEND_UP);
	check_backend(t, web_udp, "10.1.0.1", 0, 100, FL_BACKEND_UP);
	check_backend(t, dns, "fd01::2", 0, 7, FL_BACKEND_UP);
	check_backend(t, ssh, "10.0.0.12", 0, 100, FL_BACKEND_DOWN);
	__u32 mac_id = bid_of(t, ssh, "10.0.0.11", 0);
	static const __u8 mac[6] = { 2, 0, 0, 0, 1, 1 }, zero[6];
	REQUIRE(mac_id != FL_BACKEND_NONE, "mac backend");
	CHECK(memcmp(t->backends[mac_id].mac, mac, 6) == 0, "static MAC");
	CHECK(memcmp(t->backends[bid_of(t, ssh, "10.0.0.12", 0)].mac, zero, 6) == 0, "no MAC");
	CHECK(bid_of(t, web, "10.1.0.1", 0) != bid_of(t, web_udp, "10.1.0.1", 0),
	      "one id per VIP and backend");

	for (__u32 id = 0; id < 4; id++)
		CHECK(ring_is_maglev(t, id), "ring of vip %u is the Maglev table", id);
	/* every entry names an UP backend of its own VIP */
	for (__u32 id = 0; id < 4; id++)
		for (__u32 i = 0; i < t->vips[id].ring_size; i++) {
			__u32 b = t->ring[t->vips[id].ring_offset + i];
			if (b >= t->hdr->backend_count || t->backends[b].vip_id != id) {
				CHECK(0, "vip %u entry %u: %u", id, i, b);
				break;
			}
		}
	fl_reader_end(&rd);

	/* one weight changes: that ring is rebuilt, the others copied */
	char text[sizeof(basic_cfg)];
	memcpy(text, basic_cfg, sizeof(text));
	memcpy(strstr(text, "weight = 50"), "weight = 60", 11);
	REQUIRE(publish_text(&e, text, NULL, 0, &res, err, sizeof(err)) == 0, "publish: %s", err);
	CHECK(res.rings_built == 1 && res.rings_copied == 3, "built %u copied %u", res.rings_built,
	      res.rings_copied);
	t = fl_reader_begin(&rd);
	CHECK(rd.generation == 3 && t->backends[bid_of(t, web, "10.1.0.2", 0)].weight == 60, "new");
	for (__u32 id = 0; id < 4; id++)
		CHECK(ring_is_maglev(t, id), "ring of vip %u after the change", id);
	fl_reader_end(&rd);
	fl_reader_unregister(&rd);
	fl_shm_detach(&r);
	env_close(&e, true);
}

static void test_ids_stable(void)
{
	struct env e;
	__u32 ids[9], epochs[9];
	const struct fl_tables *t;

	REQUIRE(env_open(&e, "stable", &small) == 0, "open");
	REQUIRE(publish_ok(&e, one_vip(0x1e), NULL, 0) == 0, "first");	/* 2..5 */
	t = fl_writer_active(&e.shm);
	for (unsigned i = 2; i <= 5; i++) {
		ids[i] = bid4(t, i);
		epochs[i] = t->backends[ids[i]].epoch;
		REQUIRE(ids[i] != FL_BACKEND_NONE, "backend %u", i);
	}
	/* others come and go: 1, 6, 7 added, 3 removed */
	REQUIRE(publish_ok(&e, one_vip(0x7b), NULL, 0) == 0, "second");
	t = fl_writer_active(&e.shm);
	for (unsigned i = 2; i <= 5; i++) {
		if (i == 3)
			continue;
		CHECK(bid4(t, i) == ids[i], "backend %u keeps id %u", i, ids[i]);
		CHECK(t->backends[ids[i]].epoch == epochs[i], "backend %u keeps its epoch", i);
	}
	CHECK(bid4(t, 3) == FL_BACKEND_NONE, "3 is gone");
	CHECK(t->backends[ids[3]].state == FL_BACKEND_FREE, "its id is free");
	CHECK(t->backends[ids[3]].epoch == epochs[3], "a free id keeps its epoch");
	/* a recently freed id is not reused while never-used ids remain */
	for (unsigned i = 1; i <= 7; i++)
		if (i != 3)
			CHECK(bid4(t, i) != ids[3], "backend %u took the just-freed id", i);
	CHECK(ring_is_maglev(t, vip_id_of(t, "10.0.0.100", 80, IPPROTO_TCP)), "ring");
	ids[6] = bid4(t, 6);
	/* 3 comes back: a new backend for the tables (a new id or epoch) */
	REQUIRE(publish_ok(&e, one_vip(0x7f), NULL, 0) == 0, "third");
	t = fl_writer_active(&e.shm);
	__u32 id3 = bid4(t, 3);
	CHECK(id3 != FL_BACKEND_NONE && (id3 != ids[3] || t->backends[id3].epoch != epochs[3]),
	      "re-added backend is not its old (id, epoch)");
	CHECK(bid4(t, 6) == ids[6] && bid4(t, 2) == ids[2], "others unchanged");
	/* a second VIP leaves the first one's ids alone */
	char text[8192];
	const char *base = one_vip(0x7f);
	/* up to the first VIP's closing brace */
	snprintf(text, sizeof(text), "%.*s, { address = \"10.0.0.200\"; port = 443; protocol = \"tcp\"; "
		 "method = \"ipip\"; table_size = 13; " NOHC "backends = ( { address = \"10.1.0.1\"; } ); "
		 "} );\n", (int)(strstr(base, "); }") + 4 - base), base);
	__u32 before[8];
	for (unsigned i = 1; i <= 7; i++)
		before[i] = bid4(t, i);
	__u32 web = vip_id_of(t, "10.0.0.100", 80, IPPROTO_TCP);
	REQUIRE(publish_ok(&e, text, NULL, 0) == 0, "two VIPs");
	t = fl_writer_active(&e.shm);
	CHECK(vip_id_of(t, "10.0.0.100", 80, IPPROTO_TCP) == web, "vip id stable");
	CHECK(vip_id_of(t, "10.0.0.200", 443, IPPROTO_TCP) != FL_BACKEND_NONE, "new VIP");
	for (unsigned i = 1; i <= 7; i++)
		CHECK(bid4(t, i) == before[i], "backend %u stable", i);
	env_close(&e, true);
}

static void test_epoch_on_reuse(void)
{
	const struct fl_shm_params four = { .max_vips = 4, .max_backends = 4,
					    .ring_entries = 1000, .max_workers = 2 };
	struct env e;
	const struct fl_tables *t;
	__u32 id1, id2, id5;

	REQUIRE(env_open(&e, "epoch", &four) == 0, "open");
	REQUIRE(publish_ok(&e, one_vip(0x0f), NULL, 0) == 0, "1..4");
	t = fl_writer_active(&e.shm);
	id1 = bid4(t, 1);
	id2 = bid4(t, 2);
	struct fl_backend old1 = t->backends[id1];
	REQUIRE(publish_ok(&e, one_vip(0x0e), NULL, 0) == 0, "1 removed");
	REQUIRE(publish_ok(&e, one_vip(0x0c), NULL, 0) == 0, "2 removed");
	/* every id was used: the one freed longest ago goes first */
	REQUIRE(publish_ok(&e, one_vip(0x1c), NULL, 0) == 0, "5 added");
	t = fl_writer_active(&e.shm);
	id5 = bid4(t, 5);
	CHECK(id5 == id1, "5 takes 1's id (freed first): %u, %u", id5, id1);
	CHECK(t->backends[id5].epoch == 2, "epoch %u", t->backends[id5].epoch);
	CHECK(!fl_backend_keeps_flows(&t->backends[id5], old1.epoch), "1's flows do not stay");
	CHECK(fl_backend_keeps_flows(&t->backends[id5], 2), "5's flows stay");
	REQUIRE(publish_ok(&e, one_vip(0x3c), NULL, 0) == 0, "6 added");
	t = fl_writer_active(&e.shm);
	CHECK(bid4(t, 6) == id2 && t->backends[id2].epoch == 2, "6 takes 2's id, epoch 2");
	/* full: 5 leaves and 7 comes in one publish: 7 gets the id at epoch 3 */
	REQUIRE(publish_ok(&e, one_vip(0x6c), NULL, 0) == 0, "5 out, 7 in");
	t = fl_writer_active(&e.shm);
	CHECK(bid4(t, 7) == id5 && t->backends[id5].epoch == 3, "7: id %u epoch %u", bid4(t, 7),
	      t->backends[bid4(t, 7)].epoch);
	CHECK(bid4(t, 5) == FL_BACKEND_NONE, "5 gone");
	CHECK(ring_is_maglev(t, vip_id_of(t, "10.0.0.100", 80, IPPROTO_TCP)), "ring");
	env_close(&e, true);
}

static struct fl_backend_status status4(unsigned i, bool drain, bool down)
{
	struct fl_backend_status s;
	char a[32];

	memset(&s, 0, sizeof(s));
	s.vip_addr = addr_of("10.0.0.100", &s.vip_family);
	s.vip_port = 80;
	s.vip_proto = IPPROTO_TCP;
	snprintf(a, sizeof(a), "10.1.0.%u", i);
	s.key.addr = addr_of(a, &s.key.family);
	s.drain = drain;
	s.down = down;
	return s;
}

static void test_drain_and_down(void)
{
	static const char text[] = XDP
		"vips = ( { address = \"10.0.0.100\"; port = 80; protocol = \"tcp\"; "
		"method = \"ipip\"; table_size = 251; " NOHC "backends = (\n"
		" { address = \"10.1.0.1\"; }, { address = \"10.1.0.2\"; weight = 0; },\n"
		" { address = \"10.1.0.3\"; }, { address = \"10.1.0.4\"; },\n"
		" { address = \"10.1.0.5\"; weight = 0; }, { address = \"10.1.0.6\"; weight = 30; } ); } );\n";
	struct fl_backend_status st[4] = { status4(3, true, false), status4(4, false, true),
					   status4(5, true, true), status4(6, false, false) };
	struct env e;
	const struct fl_tables *t;
	__u32 ids[7];

	REQUIRE(env_open(&e, "drain", &small) == 0, "open");
	REQUIRE(publish_ok(&e, text, st, 4) == 0, "publish");
	t = fl_writer_active(&e.shm);
	__u32 web = vip_id_of(t, "10.0.0.100", 80, IPPROTO_TCP);
	static const __u8 want_state[7] = { 0, FL_BACKEND_UP, FL_BACKEND_DRAINING,
					    FL_BACKEND_DRAINING, FL_BACKEND_DOWN, FL_BACKEND_DOWN,
					    FL_BACKEND_UP };
	static const __u16 want_weight[7] = { 0, 100, 0, 100, 100, 0, 30 };
	for (unsigned i = 1; i <= 6; i++) {
		ids[i] = bid4(t, i);
		REQUIRE(ids[i] != FL_BACKEND_NONE, "backend %u", i);
		CHECK(t->backends[ids[i]].state == want_state[i], "backend %u state %u", i,
		      t->backends[ids[i]].state);
		CHECK(t->backends[ids[i]].weight == want_weight[i], "backend %u weight", i);
	}
	/* only 1 and 6 in the ring, weighted */
	unsigned count[7] = { 0 };
	for (__u32 i = 0; i < 251; i++) {
		__u32 b = t->ring[t->vips[web].ring_offset + i];
		for (unsigned k = 1; k <= 6; k++)
			count[k] += b == ids[k];
	}
	CHECK(count[1] + count[6] == 251 && count[1] > 2 * count[6], "ring shares %u %u", count[1],
	      count[6]);
	CHECK(ring_is_maglev(t, web), "ring");
	CHECK(fl_backend_keeps_flows(&t->backends[ids[3]], 1), "draining keeps flows");
	CHECK(!fl_backend_keeps_flows(&t->backends[ids[4]], 1), "down moves flows");

	/* health back, drain lifted: same ids and epochs, back in the ring */
	REQUIRE(publish_ok(&e, text, NULL, 0) == 0, "all up");
	t = fl_writer_active(&e.shm);
	for (unsigned i = 1; i <= 6; i++) {
		CHECK(bid4(t, i) == ids[i] && t->backends[ids[i]].epoch == 1, "backend %u kept", i);
		CHECK(t->backends[ids[i]].state == (want_weight[i] ? FL_BACKEND_UP : FL_BACKEND_DRAINING),
		      "backend %u state %u", i, t->backends[ids[i]].state);
	}
	CHECK(ring_is_maglev(t, web), "ring");

	/* everything down: a ring of FL_BACKEND_NONE */
	struct fl_backend_status all[6];
	for (unsigned i = 0; i < 6; i++)
		all[i] = status4(i + 1, false, true);
	REQUIRE(publish_ok(&e, text, all, 6) == 0, "all down");
	t = fl_writer_active(&e.shm);
	bool none = true;
	for (__u32 i = 0; i < 251; i++)
		none &= t->ring[t->vips[web].ring_offset + i] == FL_BACKEND_NONE;
	CHECK(none, "no backend for new flows");
	env_close(&e, true);
}

static void test_restart_reads_back(void)
{
	const struct fl_shm_params *p = &small;
	struct env e;
	const struct fl_tables *t;
	struct fl_publish_result res;
	char err[FL_CONFIG_ERR_LEN];
	struct fl_tables *saved = calloc(1, sizeof(*saved));
	struct fl_slot_header saved_hdr;
	__u32 id2, ids[7];

	REQUIRE(saved != NULL, "calloc");
	saved->vips = calloc(p->max_vips, sizeof(struct fl_vip));
	saved->backends = calloc(p->max_backends, sizeof(struct fl_backend));
	saved->ring = calloc(p->ring_entries, sizeof(__u32));
	saved->hdr = &saved_hdr;
	REQUIRE(env_open(&e, "restart", p) == 0, "open");
	/* some history: 2 removed (its id free with epoch 1), a drained one */
	REQUIRE(publish_ok(&e, one_vip(0x3f), NULL, 0) == 0, "1..6");
	t = fl_writer_active(&e.shm);
	id2 = bid4(t, 2);
	struct fl_backend_status drain = status4(4, true, false);
	REQUIRE(publish_ok(&e, one_vip(0x3d), &drain, 1) == 0, "2 removed");
	t = fl_writer_active(&e.shm);
	for (unsigned i = 1; i <= 6; i++)
		ids[i] = bid4(t, i);
	saved_hdr = *t->hdr;
	saved->vip_index_mask = t->vip_index_mask;
	saved->vip_index = calloc(t->vip_index_mask + 1, sizeof(__u32));
	REQUIRE(saved->vips && saved->backends && saved->ring && saved->vip_index, "calloc");
	memcpy(saved->vips, t->vips, p->max_vips * sizeof(struct fl_vip));
	memcpy(saved->backends, t->backends, p->max_backends * sizeof(struct fl_backend));
	memcpy(saved->ring, t->ring, p->ring_entries * sizeof(__u32));
	memcpy(saved->vip_index, t->vip_index, (t->vip_index_mask + 1) * sizeof(__u32));
	__u64 gen = generation(&e);

	REQUIRE(env_restart(&e) == 0, "restart");
	e.pub.rebuild_all = true;
	REQUIRE(publish_text(&e, one_vip(0x3d), &drain, 1, &res, err, sizeof(err)) == 0,
		"republish: %s", err);
	CHECK(res.generation == gen + 1 && res.rings_built == 1, "generation %llu",
	      (unsigned long long)res.generation);
	t = fl_writer_active(&e.shm);
	CHECK(same_tables(t, saved), "the same ids, epochs, states and rings after a restart");
	for (unsigned i = 1; i <= 6; i++)
		CHECK(bid4(t, i) == ids[i], "backend %u keeps id %u", i, ids[i]);
	CHECK(t->backends[id2].state == FL_BACKEND_FREE && t->backends[id2].epoch == 1,
	      "the free id keeps its epoch");

	/* without rebuild_all the unchanged ring is copied, to the same bytes */
	e.pub.rebuild_all = false;
	REQUIRE(publish_text(&e, one_vip(0x3d), &drain, 1, &res, err, sizeof(err)) == 0,
		"republish: %s", err);
	CHECK(res.rings_copied == 1 && res.rings_built == 0, "copied %u", res.rings_copied);
	CHECK(same_tables(fl_writer_active(&e.shm), saved), "copied ring");

	/* fill the never-used ids, then the freed one comes back at epoch 2 */
	char text[8192];
	snprintf(text, sizeof(text), "%s", one_vip(0xffffffffu & ~0x2u));
	REQUIRE(publish_ok(&e, text, NULL, 0) == 0, "31 backends");
	REQUIRE(env_restart(&e) == 0, "restart");
	/* 31 of 32 addresses over 64 ids: use them all, then one more VIP */
	char big[16384];
	int n = snprintf(big, sizeof(big), "%.*s", (int)(strrchr(text, ')') - text), text);
	n += snprintf(big + n, sizeof(big) - (size_t)n, ", { address = \"10.0.0.200\"; port = 1; "
		      "protocol = \"tcp\"; method = \"ipip\"; table_size = 13; " NOHC "backends = (");
	for (unsigned i = 0; i < 33; i++)
		n += snprintf(big + n, sizeof(big) - (size_t)n, "%s{ address = \"10.2.0.%u\"; }",
			      i ? "," : "", i + 1);
	snprintf(big + n, sizeof(big) - (size_t)n, "); } );\n");
	REQUIRE(publish_ok(&e, big, NULL, 0) == 0, "64 backends");
	t = fl_writer_active(&e.shm);
	CHECK(t->hdr->backend_count == 64, "all ids used");
	__u32 v2 = vip_id_of(t, "10.0.0.200", 1, IPPROTO_TCP);
	bool found = false;
	for (unsigned i = 1; i <= 33; i++) {
		char a[32];
		snprintf(a, sizeof(a), "10.2.0.%u", i);
		__u32 id = bid_of(t, v2, a, 0);
		if (id == id2) {
			found = true;
			CHECK(t->backends[id].epoch == 2, "epoch %u after restart", t->backends[id].epoch);
		} else {
			CHECK(id != FL_BACKEND_NONE && t->backends[id].epoch == 1, "epoch of %s", a);
		}
	}
	CHECK(found, "the freed id was reused");
	for (unsigned i = 1; i <= 6; i++)
		if (i != 2)
			CHECK(bid4(t, i) == ids[i], "backend %u keeps id %u", i, ids[i]);
	env_close(&e, true);
	free(saved->vips);
	free(saved->backends);
	free(saved->ring);
	free(saved->vip_index);
	free(saved);
}

static const char order_a[] = XDP
	"vips = (\n"
	" { address = \"10.0.0.100\"; port = 80; protocol = \"tcp\"; method = \"ipip\"; table_size = 251; " NOHC
	"   backends = ( { address = \"10.1.0.1\"; }, { address = \"10.1.0.2\"; weight = 20; },\n"
	"                { address = \"10.1.0.3\"; port = 80; }, { address = \"10.1.0.4\"; port = 81; } ); },\n"
	" { address = \"fd00::1\"; port = 443; protocol = \"tcp\"; method = \"ip6ip6\"; table_size = 1021; " NOHC
	"   backends = ( { address = \"fd01::1\"; }, { address = \"fd01::2\"; }, { address = \"fd01::3\"; } ); },\n"
	" { address = \"10.0.0.100\"; port = 53; protocol = \"udp\"; method = \"gue\"; table_size = 13; " NOHC
	"   backends = ( { address = \"10.1.0.9\"; }, { address = \"10.1.0.8\"; } ); }\n"
	");\n";

/* The same, VIPs and backends in another order, a port spelled otherwise. */
static const char order_b[] = XDP
	"vips = (\n"
	" { address = \"10.0.0.100\"; port = 53; protocol = \"udp\"; method = \"gue\"; table_size = 13; " NOHC
	"   backends = ( { address = \"10.1.0.8\"; }, { address = \"10.1.0.9\"; } ); },\n"
	" { address = \"fd00::1\"; port = 443; protocol = \"tcp\"; method = \"ip6ip6\"; table_size = 1021; " NOHC
	"   backends = ( { address = \"fd01::3\"; }, { address = \"fd01::1\"; }, { address = \"fd01::2\"; } ); },\n"
	" { address = \"10.0.0.100\"; port = 80; protocol = \"tcp\"; method = \"ipip\"; table_size = 251; " NOHC
	"   backends = ( { address = \"10.1.0.4\"; port = 81; }, { address = \"10.1.0.3\"; },\n"
	"                { address = \"10.1.0.2\"; weight = 20; }, { address = \"10.1.0.1\"; port = 80; } ); }\n"
	");\n";

static void test_order_independent(void)
{
	struct env a, b, c;

	REQUIRE(env_open(&a, "order-a", &small) == 0, "open a");
	REQUIRE(env_open(&b, "order-b", &small) == 0, "open b");
	REQUIRE(env_open(&c, "order-c", &small) == 0, "open c");
	REQUIRE(publish_ok(&a, order_a, NULL, 0) == 0, "a");
	REQUIRE(publish_ok(&b, order_b, NULL, 0) == 0, "b");
	/* fresh publishers: the same ids, so the same bytes */
	CHECK(same_tables(fl_writer_active(&a.shm), fl_writer_active(&b.shm)),
	      "same config in another order, same tables");

	/* another history gives other ids but the same backend for every entry */
	REQUIRE(publish_ok(&c, one_vip(0xff), NULL, 0) == 0, "c history");
	REQUIRE(publish_ok(&c, order_b, NULL, 0) == 0, "c");
	const struct fl_tables *ta = fl_writer_active(&a.shm), *tc = fl_writer_active(&c.shm);
	static const struct { const char *addr; __u16 port; __u8 proto; } vips[] = {
		{ "10.0.0.100", 80, IPPROTO_TCP }, { "fd00::1", 443, IPPROTO_TCP },
		{ "10.0.0.100", 53, IPPROTO_UDP } };
	for (unsigned i = 0; i < 3; i++) {
		__u32 va = vip_id_of(ta, vips[i].addr, vips[i].port, vips[i].proto);
		__u32 vc = vip_id_of(tc, vips[i].addr, vips[i].port, vips[i].proto);
		REQUIRE(va != FL_BACKEND_NONE && vc != FL_BACKEND_NONE, "vip %u", i);
		CHECK(same_choice(ta, va, tc, vc), "vip %u: the same backend for every entry", i);
	}
	env_close(&a, true);
	env_close(&b, true);
	env_close(&c, true);
}

static void test_errors(void)
{
	const struct fl_shm_params tiny = { .max_vips = 2, .max_backends = 4,
					    .ring_entries = 300, .max_workers = 2 };
	struct env e;
	struct fl_config cfg;
	struct fl_shm r;
	struct fl_reader rd;
	struct fl_publisher other;
	char err[FL_CONFIG_ERR_LEN];
	int rc;

	REQUIRE(env_open(&e, "errors", &tiny) == 0, "open");
	rc = fl_publisher_publish(&e.pub, TIMEOUT_MS, NULL, err, sizeof(err));
	CHECK(rc == -ENODATA && strstr(err, "no desired state"), "publish before set: %d %s", rc, err);
	REQUIRE(publish_ok(&e, one_vip(0x3), NULL, 0) == 0, "first");
	__u64 gen = generation(&e);
	const struct fl_tables *t = fl_writer_active(&e.shm);
	__u32 id1 = bid4(t, 1), id2 = bid4(t, 2);

	/* a ring pool too small for the tables */
	static const char big_ring[] = XDP "vips = ( { address = \"10.0.0.100\"; port = 80; "
		"protocol = \"tcp\"; method = \"ipip\"; table_size = 307; " NOHC
		"backends = ( { address = \"10.1.0.1\"; } ); } );\n";
	rc = publish_text(&e, big_ring, NULL, 0, NULL, err, sizeof(err));
	CHECK(rc == -ENOSPC && strstr(err, "ring entries"), "ring pool: %d %s", rc, err);
	/* too many backend ids */
	rc = publish_text(&e, one_vip(0x1f), NULL, 0, NULL, err, sizeof(err));
	CHECK(rc == -ENOSPC && strstr(err, "backend ids"), "backends: %d %s", rc, err);
	/* too many VIPs */
	static const char three[] = XDP "vips = (\n"
		" { address = \"10.0.0.1\"; port = 1; protocol = \"tcp\"; method = \"ipip\"; table_size = 2; },\n"
		" { address = \"10.0.0.2\"; port = 1; protocol = \"tcp\"; method = \"ipip\"; table_size = 2; },\n"
		" { address = \"10.0.0.3\"; port = 1; protocol = \"tcp\"; method = \"ipip\"; table_size = 2; } );\n";
	rc = publish_text(&e, three, NULL, 0, NULL, err, sizeof(err));
	CHECK(rc == -ENOSPC && strstr(err, "vip ids"), "vips: %d %s", rc, err);
	/* a status for no backend of the config */
	struct fl_backend_status st = status4(9, true, false);
	rc = publish_text(&e, one_vip(0x3), &st, 1, NULL, err, sizeof(err));
	CHECK(rc == -ENOENT && strstr(err, "10.1.0.9") && strstr(err, "10.0.0.100:80/tcp"),
	      "unknown status: %d %s", rc, err);
	/* a VIP the config checks would refuse (from the control socket) */
	REQUIRE(fl_config_parse(one_vip(0x3), "t.conf", &cfg, err, sizeof(err)) == 0, "%s", err);
	cfg.vips[0].table_size = 250;
	rc = fl_publisher_set(&e.pub, &cfg, NULL, 0, err, sizeof(err));
	CHECK(rc == -EINVAL && strstr(err, "prime") && strstr(err, "10.0.0.100:80/tcp"),
	      "not prime: %d %s", rc, err);
	fl_config_free(&cfg);
	CHECK(generation(&e) == gen, "nothing published");
	t = fl_writer_active(&e.shm);
	CHECK(bid4(t, 1) == id1 && bid4(t, 2) == id2, "tables unchanged");

	/* a live worker that does not move on: the publish times out */
	REQUIRE(fl_shm_attach(e.name, &r, err, sizeof(err)) == 0, "attach: %s", err);
	REQUIRE(fl_reader_register(&r, 1, &rd, err, sizeof(err)) == 0, "register: %s", err);
	REQUIRE(publish_ok(&e, one_vip(0x3), NULL, 0) == 0, "publish while worker is current");
	gen = generation(&e);
	REQUIRE(fl_publisher_set(&e.pub, &(struct fl_config){ 0 }, NULL, 0, err, sizeof(err)) == 0,
		"empty: %s", err);
	rc = fl_publisher_publish(&e.pub, 50, NULL, err, sizeof(err));
	CHECK(rc == -ETIMEDOUT && strstr(err, "worker 1"), "timeout: %d %s", rc, err);
	CHECK(generation(&e) == gen, "nothing published");
	CHECK(e.shm.pending_slot == -1, "no slot left pending");
	union fl_addr va = addr_of("10.0.0.100", NULL);
	struct fl_backend_key k1 = status4(1, 0, 0).key;
	CHECK(fl_publisher_backend_id(&e.pub, &va, FL_AF_INET, 80, IPPROTO_TCP, &k1) == id1,
	      "ids kept after a failed publish");
	/* the worker moves on: the same publish goes through, freeing them */
	fl_reader_begin(&rd);
	fl_reader_end(&rd);
	rc = fl_publisher_publish(&e.pub, TIMEOUT_MS, NULL, err, sizeof(err));
	CHECK(rc == 0, "publish: %s", err);
	t = fl_writer_active(&e.shm);
	CHECK(generation(&e) == gen + 1 && t->hdr->backend_count == 2 &&
	      t->backends[id1].state == FL_BACKEND_FREE && t->backends[id1].epoch == 1 &&
	      !(t->vips[0].flags & FL_VIP_IN_USE), "everything freed");
	CHECK(fl_publisher_backend_id(&e.pub, &va, FL_AF_INET, 80, IPPROTO_TCP, &k1) ==
	      FL_BACKEND_NONE, "id gone");
	fl_reader_unregister(&rd);

	/* only the writer publishes */
	rc = fl_publisher_init(&other, &r, err, sizeof(err));
	CHECK(rc == -EPERM && strstr(err, "writer"), "reader mapping: %d %s", rc, err);
	fl_shm_detach(&r);
	env_close(&e, true);
}

/* The test's neighbour table: which of 10.1.0.x have a MAC (02:00:00:00:01:x). */
static __u32 known_macs;

static int resolve_known(void *arg, __u8 family, const union fl_addr *addr, __u8 mac[6])
{
	const __u8 *b = (const __u8 *)&addr->v4;

	(void)arg;
	if (family != FL_AF_INET || b[0] != 10 || b[1] != 1 || b[2] != 0 || b[3] >= 32 ||
	    !(known_macs & (1u << b[3])))
		return -ENOENT;
	memcpy(mac, (const __u8[6]){ 2, 0, 0, 0, 1, b[3] }, 6);
	return 0;
}

/* L2 DSR backends without a configured MAC: one the resolver does not know
 * yet is published down (out of the ring), and up with its MAC once known. */
static void test_l2dsr_unknown_mac(void)
{
	static const char text[] = XDP "vips = ( { address = \"10.0.0.100\"; port = 80; "
		"protocol = \"tcp\"; method = \"l2dsr\"; table_size = 251; " NOHC
		"backends = ( { address = \"10.1.0.1\"; mac = \"02:00:00:00:09:01\"; },"
		" { address = \"10.1.0.2\"; }, { address = \"10.1.0.3\"; } ); } );\n";
	struct env e;
	const struct fl_tables *t;
	__u32 vip, b1, b2, b3;

	if (env_open(&e, "l2mac", &small))
		return;
	e.pub.resolve = resolve_known;
	known_macs = 1u << 3;
	if (publish_ok(&e, text, NULL, 0) == 0) {
		t = fl_writer_active(&e.shm);
		vip = vip_id_of(t, "10.0.0.100", 80, IPPROTO_TCP);
		b1 = bid4(t, 1), b2 = bid4(t, 2), b3 = bid4(t, 3);
		REQUIRE(b1 != FL_BACKEND_NONE && b2 != FL_BACKEND_NONE && b3 != FL_BACKEND_NONE,
			"backend ids");
		CHECK(t->backends[b1].state == FL_BACKEND_UP && t->backends[b1].mac[4] == 9,
		      "configured MAC: state %u", t->backends[b1].state);
		CHECK(t->backends[b2].state == FL_BACKEND_DOWN, "unknown MAC: state %u, not down",
		      t->backends[b2].state);
		CHECK(t->backends[b3].state == FL_BACKEND_UP && t->backends[b3].mac[5] == 3,
		      "resolved MAC: state %u mac[5] %u", t->backends[b3].state, t->backends[b3].mac[5]);
		CHECK(ring_is_maglev(t, vip), "ring is not the up backends' Maglev table");
		for (__u32 i = 0; i < t->vips[vip].ring_size; i++)
			if (t->ring[t->vips[vip].ring_offset + i] == b2) {
				CHECK(0, "the backend without a MAC is in the ring at %u", i);
				break;
			}
	}
	known_macs |= 1u << 2;
	if (publish_ok(&e, text, NULL, 0) == 0) {
		t = fl_writer_active(&e.shm);
		b2 = bid4(t, 2);
		CHECK(b2 != FL_BACKEND_NONE && t->backends[b2].state == FL_BACKEND_UP &&
		      t->backends[b2].mac[5] == 2, "once resolved: up with its MAC");
		CHECK(ring_is_maglev(t, vip_id_of(t, "10.0.0.100", 80, IPPROTO_TCP)), "ring after");
	}
	env_close(&e, true);
}

static const struct fl_test_case cases[] = {
	{ "publish_basic", test_publish_basic },
	{ "ids_stable", test_ids_stable },
	{ "epoch_on_reuse", test_epoch_on_reuse },
	{ "drain_and_down", test_drain_and_down },
	{ "restart_reads_back", test_restart_reads_back },
	{ "order_independent", test_order_independent },
	{ "errors", test_errors },
	{ "l2dsr_unknown_mac", test_l2dsr_unknown_mac },
};

FL_TEST_MAIN(cases)
