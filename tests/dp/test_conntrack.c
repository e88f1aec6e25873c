// SPDX-License-Identifier: BSD-3-Clause
/*
 * The conntrack table on its own: lookups, expiry per state at the exact
 * boundaries, per-bucket LRU eviction, a full table, the new-flow cap,
 * re-attaching after a restart, and established flows under a SYN flood.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "check.h"
#include "conntrack.h"

#define SEED 0x5eed5eedULL
#define T0 1000000u			/* an arbitrary start, in ticks */

static __u64 rng_state;

static __u64 rng(void)
{
	__u64 z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* A random client flow to a fixed VIP, IPv4 or IPv6, TCP unless udp. */
static struct fl_flow_key rand_key(int v6, int udp)
{
	struct fl_flow_key k;
	__u64 r = rng();

	memset(&k, 0, sizeof(k));
	k.family = v6 ? FL_AF_INET6 : FL_AF_INET;
	k.proto = udp ? 17 : 6;
	k.sport = (__be16)r;
	k.dport = htons(443);
	if (v6) {
		__u64 s1 = rng(), s2 = rng();

		memcpy(&k.src.v6[0], &s1, 8);
		memcpy(&k.src.v6[2], &s2, 8);
		k.dst.v6[0] = htonl(0x20010db8);
		k.dst.v6[3] = htonl(1);
	} else {
		k.src.v4 = (__be32)(r >> 32);
		k.dst.v4 = htonl(0xc6336401);	/* 198.51.100.1 */
	}
	return k;
}

static __u32 hash_of(const struct fl_flow_key *k)
{
	return fl_flow_hash(k, SEED);
}

struct table {
	struct fl_ct t;
	struct fl_worker_counters ctr;
	void *mem;
	size_t len;
};

static int table_open(struct table *tb, __u32 capacity, const struct fl_ct_params *p)
{
	struct fl_ct_params def;
	char err[FL_CT_ERR_LEN] = "";
	int rc;

	if (!p) {
		fl_ct_params_default(&def);
		p = &def;
	}
	memset(&tb->ctr, 0, sizeof(tb->ctr));
	tb->len = fl_ct_mem_size(capacity);
	tb->mem = aligned_alloc(64, tb->len);
	if (!tb->mem)
		return -ENOMEM;
	rc = fl_ct_init(tb->mem, tb->len, capacity, p, &tb->ctr, &tb->t, err, sizeof(err));
	if (rc)
		fprintf(stderr, "fl_ct_init: %s\n", err);
	return rc;
}

static void table_close(struct table *tb)
{
	free(tb->mem);
	tb->mem = NULL;
}

static int rec_is(const struct fl_ct_rec *r, const struct fl_flow_key *k, __u32 backend)
{
	return r && memcmp(r, k, FL_CT_KEY_BYTES) == 0 && r->backend_id == backend;
}

static void test_layout(void)
{
	struct fl_ct_params p;
	struct fl_worker_counters ctr;
	struct fl_ct t;
	char err[FL_CT_ERR_LEN] = "";
	void *mem;

	/* the bound: at most 64 bytes a flow, metadata included */
	CHECK(sizeof(struct fl_ct_rec) == 56, "record %zu bytes", sizeof(struct fl_ct_rec));
	CHECK(sizeof(struct fl_ct_meta) == 64, "metadata line %zu bytes", sizeof(struct fl_ct_meta));
	CHECK(fl_ct_mem_size(8) == 64 + 8 * 64, "%zu", fl_ct_mem_size(8));
	CHECK(fl_ct_mem_size(9) == 64 + 2 * 8 * 64, "rounded up to whole buckets");
	CHECK(fl_ct_mem_size(0) == 0, "capacity 0");
	CHECK(fl_ct_mem_size(UINT32_MAX) == 0, "more than 32 bits of records");
	fl_ct_params_default(&p);
	mem = aligned_alloc(64, 4096);
	REQUIRE(mem, "alloc");
	CHECK(fl_ct_init(mem, 4096, 9, &p, &ctr, &t, err, sizeof(err)) == 0, "%s", err);
	CHECK(t.capacity == 16, "capacity %u", t.capacity);
	CHECK(fl_ct_init((char *)mem + 8, 4000, 8, &p, &ctr, &t, err, sizeof(err)) == -EINVAL,
	      "misaligned");
	CHECK(strstr(err, "aligned"), "message: %s", err);
	CHECK(fl_ct_init(mem, 4096, 64, &p, &ctr, &t, err, sizeof(err)) == -ENOSPC, "too small");
	CHECK(strstr(err, "need"), "message: %s", err);
	p.timeout_s[FL_CT_UDP] = 0;
	CHECK(fl_ct_init(mem, 4096, 8, &p, &ctr, &t, err, sizeof(err)) == -EINVAL, "timeout 0");
	free(mem);
}

static void test_insert_lookup(void)
{
	struct table tb;
	struct fl_flow_key k4, k6, other;
	struct fl_ct_rec *r;

	rng_state = 1;
	REQUIRE(table_open(&tb, 1024, NULL) == 0, "open");
	k4 = rand_key(0, 0);
	k6 = rand_key(1, 0);
	other = k6;
	other.src.v6[3] ^= htonl(1);	/* one bit of the last address word */

	r = fl_ct_insert(&tb.t, &k4, hash_of(&k4), 3, 40, 7, FL_CT_SYN, T0);
	CHECK(rec_is(r, &k4, 40) && r->vip_id == 3 && r->epoch == 7, "v4 insert");
	r = fl_ct_insert(&tb.t, &k6, hash_of(&k6), 4, 60, 9, FL_CT_ESTABLISHED, T0);
	CHECK(rec_is(r, &k6, 60), "v6 insert");

	r = fl_ct_lookup(&tb.t, &k4, hash_of(&k4), T0 + 1);
	CHECK(rec_is(r, &k4, 40) && *fl_ct_state_of(&tb.t, r) == FL_CT_SYN &&
	      fl_ct_last_seen(&tb.t, r) == T0 + 1, "v4 hit");
	r = fl_ct_lookup(&tb.t, &k6, hash_of(&k6), T0 + 1);
	CHECK(rec_is(r, &k6, 60) && r->vip_id == 4 && r->epoch == 9, "v6 hit");
	CHECK(!fl_ct_lookup(&tb.t, &other, hash_of(&other), T0 + 1), "near miss");
	/* Same hash, other key: the tag matches, the full compare does not. */
	CHECK(!fl_ct_lookup(&tb.t, &other, hash_of(&k6), T0 + 1), "tag match, key differs");
	CHECK(tb.ctr.ct_hits == 2 && tb.ctr.ct_misses == 2, "hits %llu misses %llu",
	      (unsigned long long)tb.ctr.ct_hits, (unsigned long long)tb.ctr.ct_misses);
	CHECK(tb.ctr.new_flows == 2 && tb.ctr.ct_occupancy == 2, "new %llu occ %llu",
	      (unsigned long long)tb.ctr.new_flows, (unsigned long long)tb.ctr.ct_occupancy);

	/* Inserting a present key rewrites its record, it does not add one. */
	r = fl_ct_insert(&tb.t, &k4, hash_of(&k4), 3, 41, 8, FL_CT_ESTABLISHED, T0 + 2);
	CHECK(rec_is(r, &k4, 41) && tb.ctr.ct_occupancy == 2 && tb.ctr.new_flows == 2, "rewrite");

	fl_ct_rebind(&tb.t, r, 42, 11);
	r = fl_ct_lookup(&tb.t, &k4, hash_of(&k4), T0 + 3);
	CHECK(rec_is(r, &k4, 42) && r->epoch == 11 && tb.ctr.ct_reselected == 1, "rebind");
	table_close(&tb);
}

static void test_miss_unknown(void)
{
	struct table tb;
	unsigned found = 0;

	rng_state = 2;
	REQUIRE(table_open(&tb, 4096, NULL) == 0, "open");
	for (int i = 0; i < 1000; i++) {
		struct fl_flow_key k = rand_key(i & 1, i & 2);

		fl_ct_insert(&tb.t, &k, hash_of(&k), 0, (__u32)i, 1, FL_CT_ESTABLISHED, T0);
	}
	for (int i = 0; i < 10000; i++) {
		struct fl_flow_key k = rand_key(i & 1, i & 2);

		found += fl_ct_lookup(&tb.t, &k, hash_of(&k), T0) != NULL;
	}
	CHECK(found == 0, "%u unknown keys found", found);
	CHECK(tb.ctr.ct_misses == 10000 && tb.ctr.ct_hits == 0, "counted");
	table_close(&tb);
}

/* A record in `state` (reached through `flags` at t1 when flags != 0) is
 * found at exactly its timeout after its last packet and gone one tick
 * later, with the expiry counted and its way freed. */
static void expect_expiry(struct table *tb, enum fl_ct_state start, __u8 flags, __u32 t0,
			  __u32 timeout_s, const char *what)
{
	struct fl_flow_key a = rand_key(0, start == FL_CT_UDP), b = a;
	__u32 last = t0, ticks = timeout_s * FL_CT_HZ;
	__u64 expired = tb->ctr.ct_expired, occ;
	struct fl_ct_rec *r;

	b.sport ^= 1;
	fl_ct_insert(&tb->t, &a, hash_of(&a), 1, 2, 3, start, t0);
	fl_ct_insert(&tb->t, &b, hash_of(&b), 1, 2, 3, start, t0);
	if (flags) {
		last = t0 + 3;
		r = fl_ct_lookup(&tb->t, &a, hash_of(&a), last);
		if (r)
			fl_ct_track(fl_ct_state_of(&tb->t, r), flags);
		r = fl_ct_lookup(&tb->t, &b, hash_of(&b), last);
		if (r)
			fl_ct_track(fl_ct_state_of(&tb->t, r), flags);
	}
	occ = tb->ctr.ct_occupancy;
	r = fl_ct_lookup(&tb->t, &a, hash_of(&a), last + ticks);
	CHECK(r != NULL, "%s: gone at exactly its timeout", what);
	r = fl_ct_lookup(&tb->t, &b, hash_of(&b), last + ticks + 1);
	CHECK(r == NULL, "%s: present one tick past its timeout", what);
	CHECK(tb->ctr.ct_expired == expired + 1, "%s: expiry not counted", what);
	CHECK(tb->ctr.ct_occupancy == occ - 1, "%s: way not freed", what);
	CHECK(!fl_ct_lookup(&tb->t, &b, hash_of(&b), last + ticks + 1), "%s: came back", what);
}

static void test_expiry(void)
{
	struct fl_ct_params p;
	struct table tb;

	rng_state = 3;
	fl_ct_params_default(&p);
	REQUIRE(table_open(&tb, 1024, &p) == 0, "open");
	expect_expiry(&tb, FL_CT_SYN, 0, T0, 5, "syn-only");
	expect_expiry(&tb, FL_CT_SYN, FL_TCP_SYN, T0, 5, "syn retransmitted");
	expect_expiry(&tb, FL_CT_SYN, FL_TCP_ACK, T0, 300, "syn then ack");
	expect_expiry(&tb, FL_CT_ESTABLISHED, 0, T0, 300, "established");
	expect_expiry(&tb, FL_CT_ESTABLISHED, FL_TCP_ACK | FL_TCP_FIN, T0, 10, "after fin");
	expect_expiry(&tb, FL_CT_ESTABLISHED, FL_TCP_RST, T0, 10, "after rst");
	expect_expiry(&tb, FL_CT_SYN, FL_TCP_RST, T0, 10, "syn then rst");
	expect_expiry(&tb, FL_CT_CLOSING, FL_TCP_SYN, T0, 5, "ports reused after close");
	expect_expiry(&tb, FL_CT_UDP, FL_TCP_FIN, T0, 30, "udp ignores flags");
	/* The clock is 32-bit ticks: a timeout across its wrap still holds. */
	expect_expiry(&tb, FL_CT_ESTABLISHED, 0, UINT32_MAX - 100, 300, "across wrap");

	CHECK(fl_ct_initial_state(6, FL_TCP_SYN) == FL_CT_SYN, "syn");
	CHECK(fl_ct_initial_state(6, FL_TCP_ACK) == FL_CT_ESTABLISHED, "mid-flow pickup");
	CHECK(fl_ct_initial_state(6, FL_TCP_RST | FL_TCP_ACK) == FL_CT_CLOSING, "rst");
	CHECK(fl_ct_initial_state(17, 0) == FL_CT_UDP, "udp");
	table_close(&tb);
}

/* Capacity 8 is one bucket, so every key collides. */
static void test_eviction_lru(void)
{
	struct fl_flow_key k[10];
	struct table tb;
	int i;

	rng_state = 4;
	REQUIRE(table_open(&tb, 8, NULL) == 0, "open");
	for (i = 0; i < 10; i++)
		k[i] = rand_key(i & 1, 0);
	for (i = 0; i < 8; i++)
		fl_ct_insert(&tb.t, &k[i], hash_of(&k[i]), 0, (__u32)i, 1, FL_CT_ESTABLISHED,
			     T0 + (__u32)i);
	/* k[0] and k[1] seen again: k[2] is now the least recently seen. */
	CHECK(fl_ct_lookup(&tb.t, &k[0], hash_of(&k[0]), T0 + 10), "k0");
	CHECK(fl_ct_lookup(&tb.t, &k[1], hash_of(&k[1]), T0 + 11), "k1");
	CHECK(tb.ctr.ct_occupancy == 8 && tb.ctr.ct_evictions == 0, "full, no eviction yet");

	fl_ct_insert(&tb.t, &k[8], hash_of(&k[8]), 0, 8, 1, FL_CT_ESTABLISHED, T0 + 12);
	CHECK(tb.ctr.ct_evictions == 1, "evictions %llu", (unsigned long long)tb.ctr.ct_evictions);
	CHECK(!fl_ct_lookup(&tb.t, &k[2], hash_of(&k[2]), T0 + 12), "k2 should be evicted");
	for (i = 0; i < 9; i++) {
		if (i != 2)
			CHECK(rec_is(fl_ct_lookup(&tb.t, &k[i], hash_of(&k[i]), T0 + 13),
				     &k[i], (__u32)i), "k%d lost", i);
	}
	CHECK(tb.ctr.ct_occupancy == 8, "occupancy %llu", (unsigned long long)tb.ctr.ct_occupancy);

	/* An expired record goes before an older live one: k[3], rewritten as
	 * a SYN (5 s timeout) at T0 + 20, is idle 6 s at T0 + 116; the others,
	 * established and last seen at T0 + 13, are older but alive. */
	fl_ct_insert(&tb.t, &k[3], hash_of(&k[3]), 0, 3, 1, FL_CT_SYN, T0 + 20);
	fl_ct_insert(&tb.t, &k[9], hash_of(&k[9]), 0, 9, 1, FL_CT_ESTABLISHED, T0 + 20 + 96);
	CHECK(!fl_ct_lookup(&tb.t, &k[3], hash_of(&k[3]), T0 + 20 + 96), "expired syn kept");
	CHECK(tb.ctr.ct_evictions == 1 && tb.ctr.ct_expired == 1, "evictions %llu expired %llu",
	      (unsigned long long)tb.ctr.ct_evictions, (unsigned long long)tb.ctr.ct_expired);
	CHECK(fl_ct_lookup(&tb.t, &k[0], hash_of(&k[0]), T0 + 20 + 96), "k0 (older) kept");
	table_close(&tb);
}

/* A million distinct flows into 65536 records: every insert lands, and the
 * table ends exactly full. */
static void test_full_table(void)
{
	const __u32 cap = 65536, n = 1000000;
	struct table tb;
	unsigned bad = 0;

	rng_state = 5;
	REQUIRE(table_open(&tb, cap, NULL) == 0, "open");
	for (__u32 i = 0; i < n; i++) {
		struct fl_flow_key k = rand_key(i & 1, 0);
		__u32 h = hash_of(&k), now = T0 + i / 1000;
		struct fl_ct_rec *r = fl_ct_insert(&tb.t, &k, h, 0, i, 1, FL_CT_ESTABLISHED, now);

		bad += !rec_is(r, &k, i) || !fl_ct_lookup(&tb.t, &k, h, now);
	}
	CHECK(bad == 0, "%u inserts not found right after", bad);
	CHECK(tb.t.used == cap && tb.ctr.ct_occupancy == cap, "occupancy %llu of %u",
	      (unsigned long long)tb.ctr.ct_occupancy, cap);
	CHECK(tb.ctr.new_flows == n, "new flows %llu", (unsigned long long)tb.ctr.new_flows);
	CHECK(tb.ctr.ct_evictions == n - cap && tb.ctr.ct_expired == 0, "evictions %llu",
	      (unsigned long long)tb.ctr.ct_evictions);
	table_close(&tb);
}

static unsigned admit_all(struct table *tb, __u32 now, unsigned tries)
{
	unsigned ok = 0;

	for (unsigned i = 0; i < tries; i++)
		ok += (unsigned)fl_ct_admit(&tb->t, now);
	return ok;
}

static void test_rate_cap(void)
{
	struct fl_ct_params p;
	struct table tb;
	unsigned total = 0;

	fl_ct_params_default(&p);
	p.new_flow_rate = 1000;
	REQUIRE(table_open(&tb, 64, &p) == 0, "open");
	CHECK(admit_all(&tb, T0, 5000) == 1000, "the first second's burst");
	CHECK(tb.ctr.ct_rate_capped == 4000, "capped %llu", (unsigned long long)tb.ctr.ct_rate_capped);
	CHECK(admit_all(&tb, T0 + 1, 5000) == 62, "1/16 s refills 62.5");
	CHECK(admit_all(&tb, T0 + 1 + FL_CT_HZ, 5000) == 1000, "a second refills the burst, no more");
	CHECK(admit_all(&tb, T0 + 1 + FL_CT_HZ, 5000) == 0, "then nothing in the same tick");
	/* Ten seconds of steady pressure, every tick: exactly the rate. */
	for (__u32 tick = 1; tick <= 10 * FL_CT_HZ; tick++)
		total += admit_all(&tb, T0 + 1 + FL_CT_HZ + tick, 500);
	CHECK(total == 10 * 1000, "%u admitted in 10 s at 1000/s", total);
	table_close(&tb);

	p.new_flow_rate = 0;
	REQUIRE(table_open(&tb, 64, &p) == 0, "open");
	CHECK(admit_all(&tb, T0, 100000) == 100000 && tb.ctr.ct_rate_capped == 0, "0 is no cap");
	table_close(&tb);
}

static void test_reattach(void)
{
	const __u32 cap = 65536, n = 10000;
	struct fl_flow_key *keys = calloc(n, sizeof(*keys));
	unsigned char *present = calloc(n, 1);
	struct fl_worker_counters ctr2;
	struct fl_ct_params p;
	struct fl_ct t2;
	struct table tb;
	char err[FL_CT_ERR_LEN] = "";
	unsigned same = 0, had = 0;
	void *copy;

	rng_state = 6;
	REQUIRE(keys && present, "alloc");
	fl_ct_params_default(&p);
	REQUIRE(table_open(&tb, cap, &p) == 0, "open");
	for (__u32 i = 0; i < n; i++) {
		keys[i] = rand_key(i & 1, i % 3 == 0);
		fl_ct_insert(&tb.t, &keys[i], hash_of(&keys[i]), i % 5, i, i * 7 + 1,
			     fl_ct_initial_state(keys[i].proto, FL_TCP_SYN), T0);
	}
	/* At 15% load a bucket still overflows now and then (Poisson tail):
	 * the promise is about the records that were there at the restart. */
	for (__u32 i = 0; i < n; i++)
		present[i] = fl_ct_lookup(&tb.t, &keys[i], hash_of(&keys[i]), T0) != NULL;
	for (__u32 i = 0; i < n; i++)
		had += present[i];
	CHECK(had + tb.ctr.ct_evictions == n && had > n - 10, "%u present, %llu evicted", had,
	      (unsigned long long)tb.ctr.ct_evictions);
	/* A used tag over a never-written way, as a kill mid-insert leaves. */
	__u64 free_ways = fl_ct_match(fl_ct_tags(fl_ct_meta_at(&tb.t, 7)), 0);
	int w = __builtin_ctzll(free_ways) >> 3;

	REQUIRE(free_ways, "bucket 7 has a free way");
	fl_ct_meta_at(&tb.t, 7)->tags[w] = 0x5a;

	/* The restart: the memory, copied elsewhere, and a new process's
	 * counters and handle. */
	copy = aligned_alloc(64, tb.len);
	REQUIRE(copy, "alloc");
	memcpy(copy, tb.mem, tb.len);
	table_close(&tb);
	memset(&ctr2, 0, sizeof(ctr2));
	REQUIRE(fl_ct_attach(copy, tb.len, &p, &ctr2, &t2, err, sizeof(err)) == 0, "%s", err);
	CHECK(t2.used == had && ctr2.ct_occupancy == had, "occupancy %llu",
	      (unsigned long long)ctr2.ct_occupancy);
	CHECK(fl_ct_meta_at(&t2, 7)->tags[w] == 0, "half-written way not freed");
	for (__u32 i = 0; i < n; i++) {
		struct fl_ct_rec *r = fl_ct_lookup(&t2, &keys[i], hash_of(&keys[i]), T0 + 16);

		if (present[i])
			same += rec_is(r, &keys[i], i) && r->epoch == i * 7 + 1 &&
				r->vip_id == i % 5;
		else
			CHECK(!r, "flow %u came back", i);
	}
	CHECK(same == had, "%u of %u flows kept their backend", same, had);
	printf("  reattach: %u of %u flows found with their backend (%u inserted, %u evicted "
	       "before the restart)\n", same, had, n, n - had);
	free(copy);
	free(keys);
	free(present);
}

static void expect_refused(void *mem, size_t len, int want, const char *word, const char *what)
{
	struct fl_worker_counters ctr;
	struct fl_ct_params p;
	struct fl_ct t;
	char err[FL_CT_ERR_LEN] = "";
	int rc;

	fl_ct_params_default(&p);
	rc = fl_ct_attach(mem, len, &p, &ctr, &t, err, sizeof(err));
	CHECK(rc == want, "%s: rc %d, want %d", what, rc, want);
	CHECK(strstr(err, word), "%s: message \"%s\" lacks \"%s\"", what, err, word);
}

static void test_attach_rejects(void)
{
	struct table tb;
	struct fl_ct_header *h, saved;

	REQUIRE(table_open(&tb, 64, NULL) == 0, "open");
	h = tb.mem;
	saved = *h;
	h->magic ^= 1;
	expect_refused(tb.mem, tb.len, -EINVAL, "magic", "wrong magic");
	*h = saved;
	h->version = FL_CT_VERSION + 1;
	expect_refused(tb.mem, tb.len, -EPROTO, "version", "wrong version");
	*h = saved;
	h->rec_size = 48;
	expect_refused(tb.mem, tb.len, -EPROTO, "layout", "wrong record size");
	*h = saved;
	h->capacity = 128;
	expect_refused(tb.mem, tb.len, -EINVAL, "inconsistent", "capacity without buckets");
	*h = saved;
	expect_refused(tb.mem, tb.len - 64, -EINVAL, "bytes", "mapping shorter than the table");
	expect_refused(tb.mem, 32, -EINVAL, "header", "shorter than a header");
	memset(tb.mem, 0, 64);
	expect_refused(tb.mem, tb.len, -EINVAL, "magic", "never formatted");
	table_close(&tb);
}

/*
 * Established flows under a SYN flood. The numbers: 131072 records in
 * 16384 buckets of 8; 8192 established flows (half a flow per bucket on
 * average), each seen once a second; a flood offered at 200,000 new
 * SYNs/s for 10 s. Capped at 500/s with a 5 s SYN timeout, at most
 * 500 * (5 + 1) + 500 SYN records are alive at once, so a bucket holds
 * 0.5 established + ~0.2 live SYN on average and the chance that any of
 * the 16384 buckets has all 8 ways alive (Poisson tail at 0.7) is ~1e-3:
 * a capped flood only takes ways that are free or expired. Uncapped, 2 M
 * SYNs (12 per bucket per second) fill every bucket between two packets
 * of an established flow, and per-bucket LRU pushes it out.
 */
#define FLOOD_CAP 131072u
#define FLOOD_ESTABLISHED 8192u
#define FLOOD_OFFERED_PER_S 200000u
#define FLOOD_SECONDS 10u
#define FLOOD_RATE 500u

static unsigned flood(__u32 rate, struct fl_worker_counters *out)
{
	const __u32 per_tick = FLOOD_OFFERED_PER_S / FL_CT_HZ;
	struct fl_flow_key *est = calloc(FLOOD_ESTABLISHED, sizeof(*est));
	unsigned char *lost = calloc(FLOOD_ESTABLISHED, 1);
	unsigned kept = 0;
	struct fl_ct_params p;
	struct table tb;

	rng_state = 7;
	fl_ct_params_default(&p);
	p.new_flow_rate = rate;
	if (!est || !lost || table_open(&tb, FLOOD_CAP, &p) != 0)
		goto out;
	for (__u32 i = 0; i < FLOOD_ESTABLISHED; i++) {
		est[i] = rand_key(i & 1, 0);
		fl_ct_insert(&tb.t, &est[i], hash_of(&est[i]), 1, i, 1, FL_CT_ESTABLISHED, T0);
	}
	CHECK(tb.ctr.ct_evictions == 0, "the established flows alone overflow a bucket");
	for (__u32 tick = 1; tick <= FLOOD_SECONDS * FL_CT_HZ; tick++) {
		__u32 now = T0 + tick;

		for (__u32 j = 0; j < per_tick; j++) {
			struct fl_flow_key k = rand_key(j & 1, 0);

			if (fl_ct_admit(&tb.t, now))
				fl_ct_insert(&tb.t, &k, hash_of(&k), 1, 99999, 1, FL_CT_SYN, now);
		}
		/* A sixteenth of the established flows send a packet each tick. */
		for (__u32 i = tick % FL_CT_HZ; i < FLOOD_ESTABLISHED; i += FL_CT_HZ)
			lost[i] |= !rec_is(fl_ct_lookup(&tb.t, &est[i], hash_of(&est[i]), now),
					   &est[i], i);
	}
	for (__u32 i = 0; i < FLOOD_ESTABLISHED; i++)
		kept += !lost[i] && rec_is(fl_ct_lookup(&tb.t, &est[i], hash_of(&est[i]),
							T0 + FLOOD_SECONDS * FL_CT_HZ), &est[i], i);
	*out = tb.ctr;
	table_close(&tb);
out:
	free(est);
	free(lost);
	return kept;
}

static void test_flood_survival(void)
{
	struct fl_worker_counters c;
	unsigned kept;

	kept = flood(FLOOD_RATE, &c);
	printf("  flood capped at %u/s: %u of %u established flows kept their backend; "
	       "%llu SYNs recorded, %llu capped, %llu evictions, %llu expired, occupancy %llu of %u\n",
	       FLOOD_RATE, kept, FLOOD_ESTABLISHED,
	       (unsigned long long)(c.new_flows - FLOOD_ESTABLISHED),
	       (unsigned long long)c.ct_rate_capped, (unsigned long long)c.ct_evictions,
	       (unsigned long long)c.ct_expired, (unsigned long long)c.ct_occupancy, FLOOD_CAP);
	CHECK(kept == FLOOD_ESTABLISHED, "capped flood pushed out %u", FLOOD_ESTABLISHED - kept);
	CHECK(c.ct_evictions == 0, "a capped flood evicted %llu live records",
	      (unsigned long long)c.ct_evictions);

	kept = flood(0, &c);
	printf("  flood uncapped: %u of %u established flows kept their record (%u pushed out); "
	       "%llu SYNs recorded, %llu evictions\n",
	       kept, FLOOD_ESTABLISHED, FLOOD_ESTABLISHED - kept,
	       (unsigned long long)(c.new_flows - FLOOD_ESTABLISHED),
	       (unsigned long long)c.ct_evictions);
	CHECK(kept < FLOOD_ESTABLISHED / 2, "uncapped flood should push most out, kept %u", kept);
}

static const struct fl_test_case cases[] = {
	{ "layout", test_layout },
	{ "insert_lookup", test_insert_lookup },
	{ "miss_unknown", test_miss_unknown },
	{ "expiry", test_expiry },
	{ "eviction_lru", test_eviction_lru },
	{ "full_table", test_full_table },
	{ "rate_cap", test_rate_cap },
	{ "reattach", test_reattach },
	{ "attach_rejects", test_attach_rejects },
	{ "flood_survival", test_flood_survival },
};

FL_TEST_MAIN(cases)
