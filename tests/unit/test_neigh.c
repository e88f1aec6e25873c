/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * cp/neigh.c against the real kernel: each case unshares a private network
 * namespace (root only; skipped otherwise), makes a veth there and checks
 * the map that fulcrum-cp keeps from the netlink dump and notifications:
 * static entries added, changed and removed with `ip neigh`, and an entry
 * the kernel resolves by a real ARP exchange with a peer namespace after
 * fl_neigh_solicit.
 */
#include <stdarg.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/neighbour.h>
#include <net/if.h>

#include "check.h"
#include "neigh.h"

static void private_netns(void)
{
	if (unshare(CLONE_NEWNET) < 0) {
		printf("skip: unshare(CLONE_NEWNET): %s (needs root)\n", strerror(errno));
		exit(77);
	}
}

static union fl_addr addr_of(const char *text, __u8 *family)
{
	union fl_addr a;

	memset(&a, 0, sizeof(a));
	if (inet_pton(AF_INET, text, &a.v4) == 1)
		*family = FL_AF_INET;
	else if (inet_pton(AF_INET6, text, a.bytes) == 1)
		*family = FL_AF_INET6;
	else
		*family = 0;
	return a;
}

static void mac_of(const char *text, __u8 mac[6])
{
	unsigned m[6] = { 0 };

	sscanf(text, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]);
	for (int i = 0; i < 6; i++)
		mac[i] = (__u8)m[i];
}

#define USABLE (NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT)

/* Reads notifications until (ifindex, text) has want_mac (NULL: no entry)
 * in a usable state (want_usable) or not, for at most ms. Looking it up
 * marks it wanted. Returns whether it got there. */
static bool wait_for(struct fl_neigh *nb, int ifindex, const char *text, bool want_usable,
		     const __u8 *want_mac, int ms)
{
	__u8 family, mac[6];
	__u16 state = 0;
	union fl_addr a = addr_of(text, &family);

	for (int t = 0; t <= ms; t += 10) {
		int rc = fl_neigh_read(nb);
		if (rc < 0)
			return false;
		bool present = fl_neigh_lookup(nb, ifindex, family, &a, mac, &state) == 0;
		if (!want_mac ? !present :
		    present && !memcmp(mac, want_mac, 6) && !!(state & USABLE) == want_usable)
			return true;
		usleep(10000);
	}
	return false;
}

/* Reads notifications for ms, without looking anything up. */
static void drain_for(struct fl_neigh *nb, int ms)
{
	for (int t = 0; t <= ms; t += 10) {
		fl_neigh_read(nb);
		usleep(10000);
	}
}

static void static_entries(void)
{
	struct fl_neigh nb, late;
	char err[256];
	__u8 m5[6], m6[6], m6v6[6], m5b[6], mac[6], family;
	__u16 state = 0;
	int ifi;

	private_netns();
	REQUIRE(fl_test_sh("ip link add fa type veth peer name fb && ip link set fa up && "
		   "ip link set fb up") == 0, "veth");
	ifi = (int)if_nametoindex("fa");
	REQUIRE(ifi > 0, "ifindex");
	REQUIRE(fl_neigh_open(&nb, err, sizeof(err)) == 0, "open: %s", err);
	mac_of("02:00:00:00:77:05", m5);
	mac_of("02:00:00:00:77:06", m6);
	mac_of("02:00:00:00:77:66", m6v6);
	mac_of("02:00:00:00:77:99", m5b);
	REQUIRE(fl_test_sh("ip neigh add 10.77.0.5 lladdr 02:00:00:00:77:05 dev fa nud permanent && "
		   "ip neigh add 10.77.0.6 lladdr 02:00:00:00:77:06 dev fa nud stale && "
		   "ip -6 neigh add fd00::6 lladdr 02:00:00:00:77:66 dev fa nud reachable") == 0,
		"ip neigh add");
	CHECK(wait_for(&nb, ifi, "10.77.0.5", true, m5, 2000), "permanent entry");
	CHECK(wait_for(&nb, ifi, "10.77.0.6", true, m6, 2000), "stale entry");
	CHECK(wait_for(&nb, ifi, "fd00::6", true, m6v6, 2000), "IPv6 entry");
	union fl_addr a5 = addr_of("10.77.0.5", &family);
	CHECK(fl_neigh_lookup(&nb, ifi, family, &a5, mac, &state) == 0 && (state & NUD_PERMANENT),
	      "state %#x", state);
	CHECK(fl_neigh_lookup(&nb, ifi + 1000, family, &a5, mac, NULL) == -ENOENT,
	      "another interface has no such entry");

	/* a new MAC, then a removal */
	REQUIRE(fl_test_sh("ip neigh replace 10.77.0.5 lladdr 02:00:00:00:77:99 dev fa nud permanent") == 0,
		"replace");
	CHECK(wait_for(&nb, ifi, "10.77.0.5", true, m5b, 2000), "changed MAC");
	/* a MAC in use (looked up) outlives its kernel entry, and the next
	 * one the kernel learns replaces it */
	REQUIRE(fl_test_sh("ip neigh del 10.77.0.6 dev fa") == 0, "del");
	CHECK(wait_for(&nb, ifi, "10.77.0.6", false, m6, 2000), "deleted entry: last MAC not kept");
	REQUIRE(fl_test_sh("ip -6 neigh change fd00::6 dev fa nud failed 2>/dev/null || "
		   "ip -6 neigh del fd00::6 dev fa") == 0, "fail");
	CHECK(wait_for(&nb, ifi, "fd00::6", false, m6v6, 2000), "failed entry: last MAC not kept");
	REQUIRE(fl_test_sh("ip neigh add 10.77.0.6 lladdr 02:00:00:00:77:99 dev fa nud reachable") == 0,
		"add again");
	CHECK(wait_for(&nb, ifi, "10.77.0.6", true, m5b, 2000), "a new MAC after the loss");

	/* an entry nobody looked up is dropped with its kernel entry */
	size_t before = nb.n;
	REQUIRE(fl_test_sh("ip neigh add 10.77.0.7 lladdr 02:00:00:00:77:07 dev fa nud stale") == 0, "add .7");
	drain_for(&nb, 200);
	CHECK(nb.n == before + 1, "10.77.0.7 not taken: %zu entries, %zu before", nb.n, before);
	REQUIRE(fl_test_sh("ip neigh del 10.77.0.7 dev fa") == 0, "del .7");
	drain_for(&nb, 200);
	CHECK(nb.n == before, "10.77.0.7 kept: %zu entries, %zu before", nb.n, before);

	/* a socket opened now learns the table from its dump */
	REQUIRE(fl_neigh_open(&late, err, sizeof(err)) == 0, "open: %s", err);
	CHECK(wait_for(&late, ifi, "10.77.0.5", true, m5b, 2000), "the dump has the entry");
	CHECK(late.messages > 0, "no message read");
	fl_neigh_close(&late);
	fl_neigh_close(&nb);
}

static void dynamic_arp(void)
{
	char peer[64], err[256], line[64] = "";
	struct fl_neigh nb;
	__u8 family, want[6];
	union fl_addr a;
	FILE *f;
	int ifi;

	private_netns();
	snprintf(peer, sizeof(peer), "fl-neigh-test-%d", (int)getpid());
	REQUIRE(fl_test_sh("ip netns add %s", peer) == 0, "netns");
	if (fl_test_sh("ip link add fa type veth peer name fb netns %s && "
	       "ip addr add 10.78.0.1/24 dev fa && ip link set fa up && "
	       "ip -n %s addr add 10.78.0.2/24 dev fb && ip -n %s link set fb up",
	       peer, peer, peer) != 0) {
		CHECK(0, "veth to the peer namespace");
		goto out;
	}
	snprintf(err, sizeof(err), "ip netns exec %s cat /sys/class/net/fb/address", peer);
	f = popen(err, "r");
	if (!f || !fgets(line, sizeof(line), f)) {
		CHECK(0, "peer MAC");
		if (f)
			pclose(f);
		goto out;
	}
	pclose(f);
	mac_of(line, want);
	ifi = (int)if_nametoindex("fa");
	if (fl_neigh_open(&nb, err, sizeof(err)) < 0) {
		CHECK(0, "open: %s", err);
		goto out;
	}
	CHECK(wait_for(&nb, ifi, "10.78.0.2", false, NULL, 100), "known before any ARP");
	a = addr_of("10.78.0.2", &family);
	CHECK(fl_neigh_solicit(&nb, ifi, family, &a) == 0, "solicit");
	CHECK(wait_for(&nb, ifi, "10.78.0.2", true, want, 3000),
	      "the kernel did not resolve 10.78.0.2 to %s", line);
	CHECK(nb.solicits == 1, "solicits %llu", (unsigned long long)nb.solicits);

	/* nobody answers for .9: never usable */
	a = addr_of("10.78.0.9", &family);
	CHECK(fl_neigh_solicit(&nb, ifi, family, &a) == 0, "solicit .9");
	drain_for(&nb, 500);
	CHECK(fl_neigh_lookup(&nb, ifi, family, &a, want, NULL) == -ENOENT,
	      "a MAC for a silent address");
	CHECK(fl_neigh_solicit(&nb, 0, family, &a) == -ENODEV, "ifindex 0");
	fl_neigh_close(&nb);
out:
	fl_test_sh("ip netns del %s", peer);
}

static const struct fl_test_case cases[] = {
	{ "static_entries", static_entries },
	{ "dynamic_arp", dynamic_arp },
};

FL_TEST_MAIN(cases)
