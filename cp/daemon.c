/* SPDX-License-Identifier: BSD-3-Clause */
/* fulcrum-cp's state and its changes: cp/daemon.h. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <sys/signalfd.h>

#include "addr.h"
#include "daemon.h"
#include "xdp_mode.h"

#define NS_PER_MS 1000000ull

/* ---- logging ---- */

static enum fl_log_level log_level = FL_LOG_INFO;
static int log_journal = -1;

void fl_log_set_level(enum fl_log_level level)
{
	log_level = level;
}

void fl_log(enum fl_log_level level, const char *fmt, ...)
{
	/* syslog priorities: err 3, warning 4, info 6, debug 7 */
	static const int prio[] = { 3, 4, 6, 7 };
	char line[1024];
	va_list ap;

	if (level > log_level)
		return;
	if (log_journal < 0)
		log_journal = getenv("JOURNAL_STREAM") != NULL;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* one line whatever the message held */
	for (char *p = line; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	if (log_journal)
		fprintf(stderr, "<%d>%s: %s\n", prio[level], fl_log_level_name(level), line);
	else
		fprintf(stderr, "fulcrum-cp: %s: %s\n", fl_log_level_name(level), line);
}

/* ---- backends ---- */

struct ident {
	union fl_addr vip_addr;
	union fl_addr addr;
	__u16 vip_port;
	__be16 port;		/* explicit */
	__u8 vip_family;
	__u8 vip_proto;
	__u8 family;
	__u8 pad;
};

static struct ident ident_of(const struct fl_cp_backend *b)
{
	struct ident id;

	memset(&id, 0, sizeof(id));
	id.vip_addr = b->vip_addr;
	id.vip_port = b->vip_port;
	id.vip_family = b->vip_family;
	id.vip_proto = b->vip_proto;
	id.addr = b->key.addr;
	id.family = b->key.family;
	id.port = b->eff_port;
	return id;
}

static int cmp_backend(const void *pa, const void *pb)
{
	const struct fl_cp_backend *a = *(struct fl_cp_backend *const *)pa;
	const struct fl_cp_backend *b = *(struct fl_cp_backend *const *)pb;
	struct ident ia = ident_of(a), ib = ident_of(b);

	return memcmp(&ia, &ib, sizeof(ia));
}

static bool hc_equal(const struct fl_hc_config *a, const struct fl_hc_config *b)
{
	if (a->type != b->type || a->interval_ms != b->interval_ms ||
	    a->timeout_ms != b->timeout_ms || a->rise != b->rise || a->fall != b->fall ||
	    a->port != b->port || a->has_address != b->has_address || a->tls_verify != b->tls_verify ||
	    a->n_expect_status != b->n_expect_status || strcmp(a->http_path, b->http_path) ||
	    strcmp(a->http_host, b->http_host) || strcmp(a->expect_body, b->expect_body))
		return false;
	if (a->has_address && (a->address_family != b->address_family ||
			       memcmp(&a->address, &b->address, sizeof(a->address))))
		return false;
	for (unsigned i = 0; i < a->n_expect_status && i < FL_MAX_EXPECT_STATUS; i++)
		if (a->expect_status[i] != b->expect_status[i])
			return false;
	return true;
}

struct fl_cp_backend *fl_cp_find(struct fl_cp *cp, const union fl_addr *vip_addr, __u8 vip_family,
				 __u16 vip_port, __u8 vip_proto, const struct fl_backend_key *key)
{
	struct fl_cp_backend probe, *pp = &probe, **found;

	memset(&probe, 0, sizeof(probe));
	probe.vip_addr = *vip_addr;
	probe.vip_family = vip_family;
	probe.vip_port = vip_port;
	probe.vip_proto = vip_proto;
	probe.key = *key;
	probe.eff_port = key->port ? key->port : htons(vip_port);
	if (cp->n_backends == 0)
		return NULL;
	found = bsearch(&pp, cp->backends, cp->n_backends, sizeof(*cp->backends), cmp_backend);
	return found ? *found : NULL;
}

static bool backend_up(const struct fl_cp_backend *b)
{
	return !b->checked || b->check->chk.up;
}

/* The state the published tables give this backend: 1 up (or draining),
 * 0 down, -1 not there. */
static int published_state(struct fl_cp *cp, const struct fl_cp_backend *b)
{
	const struct fl_tables *t;
	__u32 id;

	if (!cp->have_pub)
		return -1;
	id = fl_publisher_backend_id(&cp->pub, &b->vip_addr, b->vip_family, b->vip_port,
				     b->vip_proto, &b->key);
	t = fl_writer_active(&cp->shm);
	if (id == FL_BACKEND_NONE || id >= t->max_backends)
		return -1;
	switch (t->backends[id].state) {
	case FL_BACKEND_UP:
	case FL_BACKEND_DRAINING:
		return 1;
	case FL_BACKEND_DOWN:
		return 0;
	default:
		return -1;
	}
}

static struct fl_cp_backend *backend_new(const struct fl_vip_config *v,
					 const struct fl_backend_config *bc)
{
	struct fl_cp_backend *b = calloc(1, sizeof(*b));
	char va[FL_ADDR_STRLEN], ba[FL_ADDR_STRLEN];
	__u16 port;

	if (!b)
		return NULL;
	b->vip_addr = v->addr;
	b->vip_family = v->family;
	b->vip_proto = v->proto;
	b->vip_port = v->port;
	b->key = bc->key;
	b->eff_port = bc->key.port ? bc->key.port : htons(v->port);
	b->hc = bc->hc;
	b->checked = bc->hc.type != FL_HC_NONE;
	port = ntohs(b->eff_port);
	fl_addr_format(&bc->key.addr, bc->key.family, ba, sizeof(ba));
	fl_addr_format(&v->addr, v->family, va, sizeof(va));
	snprintf(b->name, sizeof(b->name), bc->key.family == FL_AF_INET6 ? "[%s]:%u of " : "%s:%u of ",
		 ba, port);
	snprintf(b->name + strlen(b->name), sizeof(b->name) - strlen(b->name),
		 v->family == FL_AF_INET6 ? "[%s]:%u/%s" : "%s:%u/%s", va, v->port, fl_proto_name(v->proto));
	return b;
}

static size_t config_backends(const struct fl_config *cfg)
{
	size_t n = 0;

	for (unsigned i = 0; i < cfg->n_vips; i++)
		n += cfg->vips[i].n_backends;
	return n;
}

/* ---- health checks, shared by target and settings ---- */

/* What a backend's check probes: the check address and port when set. */
static struct fl_cp_target target_of(const struct fl_cp_backend *b)
{
	const struct fl_hc_config *hc = &b->hc;
	struct fl_cp_target t;

	memset(&t, 0, sizeof(t));
	t.addr = hc->has_address ? hc->address : b->key.addr;
	t.family = hc->has_address ? hc->address_family : b->key.family;
	t.port = hc->port ? hc->port : ntohs(b->eff_port);
	return t;
}

static int cmp_check(const void *pa, const void *pb)
{
	const struct fl_cp_check *a = *(struct fl_cp_check *const *)pa;
	const struct fl_cp_check *b = *(struct fl_cp_check *const *)pb;

	return memcmp(&a->target, &b->target, sizeof(a->target));
}

/* The check of checks[0..n), sorted by target, that probes t with hc. */
static struct fl_cp_check *check_find(struct fl_cp_check *const *checks, size_t n,
				      const struct fl_cp_target *t, const struct fl_hc_config *hc)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (memcmp(&checks[mid]->target, t, sizeof(*t)) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < n && memcmp(&checks[lo]->target, t, sizeof(*t)) == 0; lo++)
		if (hc_equal(&checks[lo]->chk.hc, hc))
			return checks[lo];
	return NULL;
}

/* A state change: every backend of the check logs it, and the tables are
 * published again. */
static void on_health(struct fl_checker *c, void *arg)
{
	struct fl_cp_check *k = arg;
	char run[48];

	for (const struct fl_cp_backend *b = k->users; b; b = b->next_user)
		fl_log(c->up ? FL_LOG_INFO : FL_LOG_WARN, "backend %s %s: %s (%s)", b->name,
		       c->up ? "up" : "down", c->reason, fl_checker_run_text(c, run, sizeof(run)));
	k->cp->dirty = true;
}

/* A check of b's target with b's settings, not started, in *out. 0, or
 * -errno with a message (fl_checker_init's: a check that cannot be, or one
 * tcp-half-open check of the target too many). */
static int check_new(struct fl_cp *cp, const struct fl_cp_backend *b, bool up,
		     struct fl_cp_check **out, char *err, size_t errlen)
{
	struct fl_cp_check *k = calloc(1, sizeof(*k));
	int rc;

	if (!k) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	k->cp = cp;
	k->target = target_of(b);
	rc = fl_checker_init(&k->chk, &cp->loop, &b->hc, &k->target.addr, k->target.family,
			     k->target.port, up, on_health, k, err, errlen);
	if (rc < 0) {
		free(k);
		return rc;
	}
	*out = k;
	return 0;
}

static void check_free(struct fl_cp_check *k)
{
	fl_checker_stop(&k->chk);
	free(k);
}

/* A backend that needs a check, with its target: sorted by target, the
 * backends that may share a check are neighbours. */
struct wanted {
	struct fl_cp_target target;
	size_t i;		/* in the new backend list */
};

static int cmp_wanted(const void *pa, const void *pb)
{
	const struct wanted *a = pa, *b = pb;
	int c = memcmp(&a->target, &b->target, sizeof(a->target));

	return c ? c : (a->i > b->i) - (a->i < b->i);
}

/*
 * Gives every backend of nb[] that has none yet (wanted[0..n_wanted)) its
 * check: a running one of the same target and settings, or a new one, made
 * here and appended to fresh[] (not started). A new check starts up if any
 * backend it gathers is up now: its state before its check changed (one
 * that had none was up), else the published tables'. So a backend added
 * next to one that stays up, with the same new check, is up at once: it is
 * the same server, already taking that VIP's flows. Touches no running
 * check. 0, or -errno with a message.
 */
static int checks_assign(struct fl_cp *cp, struct fl_cp_backend **nb,
			 struct fl_cp_backend *const *old_of, struct wanted *wanted,
			 size_t n_wanted, struct fl_cp_check **fresh, size_t *n_fresh,
			 char *err, size_t errlen)
{
	size_t run_start = 0;

	qsort(wanted, n_wanted, sizeof(*wanted), cmp_wanted);
	for (size_t w = 0; w < n_wanted; w++) {
		struct fl_cp_backend *b = nb[wanted[w].i];
		const struct fl_cp_backend *old = old_of[wanted[w].i];
		bool up = old ? backend_up(old) : published_state(cp, b) == 1;
		struct fl_cp_check *k;

		/* the checks made for this target are the last ones made */
		if (w == 0 || memcmp(&wanted[w].target, &wanted[w - 1].target,
				     sizeof(wanted[w].target)))
			run_start = *n_fresh;
		k = check_find(cp->checks, cp->n_checks, &wanted[w].target, &b->hc);
		if (!k) {
			for (size_t j = run_start; j < *n_fresh && !k; j++)
				if (hc_equal(&fresh[j]->chk.hc, &b->hc))
					k = fresh[j];
			if (k) {
				k->chk.up |= up;
			} else {
				int rc = check_new(cp, b, up, &k, err, errlen);
				if (rc < 0)
					return rc;
				fresh[(*n_fresh)++] = k;
			}
		}
		b->check = k;
	}
	return 0;
}

int fl_cp_apply(struct fl_cp *cp, struct fl_config *cfg, char *err, size_t errlen)
{
	size_t n = config_backends(cfg), k = 0, n_wanted = 0, n_fresh = 0, n_checks = 0;
	size_t kept = 0, changed = 0, removed = 0, n_down = 0;
	struct fl_cp_backend **nb = calloc(n ? n : 1, sizeof(*nb));
	struct fl_cp_backend **old_of = calloc(n ? n : 1, sizeof(*old_of));
	struct wanted *wanted = calloc(n ? n : 1, sizeof(*wanted));
	struct fl_cp_check **fresh = calloc(n ? n : 1, sizeof(*fresh));
	struct fl_cp_check **checks = calloc(cp->n_checks + n + 1, sizeof(*checks));
	int rc = -ENOMEM;

	if (!nb || !old_of || !wanted || !fresh || !checks) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	/* the publisher checks that the mapping can hold the new config
	 * (ids, ring entries) before anything changes; on error it keeps the
	 * previous desired state */
	rc = fl_publisher_set(&cp->pub, cfg, NULL, 0, err, errlen);
	if (rc < 0)
		goto fail;
	/* prepare everything that can fail, touching no running check */
	for (unsigned i = 0; i < cfg->n_vips; i++) {
		const struct fl_vip_config *v = &cfg->vips[i];
		for (unsigned j = 0; j < v->n_backends; j++) {
			struct fl_cp_backend *b = backend_new(v, &v->backends[j]), *old;
			if (!b) {
				rc = -ENOMEM;
				snprintf(err, errlen, "out of memory");
				goto fail;
			}
			nb[k] = b;
			old = fl_cp_find(cp, &b->vip_addr, b->vip_family, b->vip_port, b->vip_proto, &b->key);
			old_of[k] = old;
			if (old && hc_equal(&old->hc, &b->hc)) {
				k++;	/* migrated below, with its check */
				continue;
			}
			if (old)
				b->drain = old->drain;
			if (b->checked)
				wanted[n_wanted++] = (struct wanted){ .target = target_of(b), .i = k };
			k++;
		}
	}
	rc = checks_assign(cp, nb, old_of, wanted, n_wanted, fresh, &n_fresh, err, errlen);
	if (rc < 0)
		goto fail;
	/* the new backends whose check is down, running or not: they wait for
	 * `rise` successes */
	for (size_t w = 0; w < n_wanted; w++) {
		const struct fl_cp_backend *b = nb[wanted[w].i];
		if (old_of[wanted[w].i] || b->check->chk.up)
			continue;
		n_down++;
		fl_log(FL_LOG_DEBUG, "backend %s starts down: up after %u successful %s checks",
		       b->name, b->hc.rise, fl_hc_type_name(b->hc.type));
	}

	/* commit: migrate unchanged backends, free the rest */
	for (size_t i = 0; i < n; i++) {
		struct fl_cp_backend *old = old_of[i];
		if (!old || !hc_equal(&old->hc, &nb[i]->hc))
			continue;
		/* keepalived's migrate: the backend and its check move whole */
		old->key = nb[i]->key;
		free(nb[i]);
		nb[i] = old;
		kept++;
	}
	qsort(nb, n, sizeof(*nb), cmp_backend);
	/* each check's users anew; a check left without one stops */
	for (size_t i = 0; i < cp->n_checks; i++)
		cp->checks[i]->users = NULL;
	for (size_t i = 0; i < n; i++) {
		struct fl_cp_backend *b = nb[i];
		if (!b->checked)
			continue;
		b->next_user = b->check->users;
		b->check->users = b;
	}
	for (size_t i = 0; i < cp->n_checks; i++) {
		if (cp->checks[i]->users)
			checks[n_checks++] = cp->checks[i];
		else
			check_free(cp->checks[i]);
	}
	for (size_t i = 0; i < n_fresh; i++)
		checks[n_checks++] = fresh[i];
	qsort(checks, n_checks, sizeof(*checks), cmp_check);
	free(cp->checks);
	cp->checks = checks;
	cp->n_checks = n_checks;
	for (size_t i = 0; i < cp->n_backends; i++) {
		struct fl_cp_backend *old = cp->backends[i], **hit;
		hit = n ? bsearch(&old, nb, n, sizeof(*nb), cmp_backend) : NULL;
		if (hit && *hit == old)
			continue;
		if (hit)
			changed++;
		else
			removed++;
		free(old);
	}
	free(cp->backends);
	cp->backends = nb;
	cp->n_backends = n;
	/* start the new checks spread over their interval */
	for (size_t i = 0; i < n_fresh; i++) {
		struct fl_cp_check *c = fresh[i];
		if (fl_checker_start(&c->chk, fl_checker_stagger_ms(c->chk.hc.interval_ms, (uint32_t)i,
								    (uint32_t)n_fresh)) < 0)
			fl_log(FL_LOG_ERROR, "check of %s: cannot schedule it: out of memory",
			       c->chk.target_text);
	}
	if (n_down)
		fl_log(FL_LOG_INFO, "%zu new backends start down until they pass `rise` checks", n_down);
	if (cp->have_cfg)
		fl_config_free(&cp->cfg);
	cp->cfg = *cfg;
	memset(cfg, 0, sizeof(*cfg));
	cp->have_cfg = true;
	cp->dirty = true;
	fl_log(FL_LOG_INFO, "config %s applied: %u VIPs, %zu backends (%zu kept, %zu check changed, "
	       "%zu new, %zu removed), %zu health checks (%zu new)", cp->cfg.source, cp->cfg.n_vips,
	       n, kept, changed, n - kept - changed, removed, cp->n_checks, n_fresh);
	free(old_of);
	free(wanted);
	free(fresh);
	return 0;
fail:
	/* no check of them was started, but a new one may hold a
	 * tcp-half-open source port */
	for (size_t i = 0; fresh && i < n_fresh; i++)
		check_free(fresh[i]);
	for (size_t i = 0; nb && i < k; i++)
		free(nb[i]);
	free(nb);
	free(old_of);
	free(wanted);
	free(fresh);
	free(checks);
	fl_config_free(cfg);
	return rc;
}

/* ---- neighbours ---- */

/* The publisher's resolver: the MAC on the neighbour interface. */
static int neigh_resolve(void *arg, __u8 family, const union fl_addr *addr, __u8 mac[6])
{
	struct fl_cp *cp = arg;
	int ifindex;

	if (!cp->have_neigh || !cp->have_cfg || !cp->cfg.dataplane.neighbour_interface[0])
		return -ENOENT;
	/* by name each time: fulcrum-dp's TAP comes and goes with fulcrum-dp */
	ifindex = (int)if_nametoindex(cp->cfg.dataplane.neighbour_interface);
	if (ifindex <= 0)
		return -ENOENT;
	return fl_neigh_lookup(&cp->neigh, ifindex, family, addr, mac, NULL);
}

typedef bool (*neigh_visit_fn)(struct fl_cp *cp, __u8 family, const union fl_addr *addr,
			       const __u8 published[6]);

/* Calls fn on every address the config leaves to resolve, with the MAC the
 * active slot holds for it, until fn returns true. */
static bool neigh_each(struct fl_cp *cp, neigh_visit_fn fn)
{
	const struct fl_dataplane_config *d = &cp->cfg.dataplane;
	const struct fl_tables *t = fl_writer_active(&cp->shm);

	if (d->has_next_hop_address && fn(cp, d->next_hop_family, &d->next_hop_address,
					    t->hdr->next_hop_mac))
		return true;
	for (unsigned i = 0; i < cp->cfg.n_vips; i++) {
		const struct fl_vip_config *v = &cp->cfg.vips[i];
		for (unsigned j = 0; v->method == FL_METHOD_L2DSR && j < v->n_backends; j++) {
			const struct fl_backend_config *bc = &v->backends[j];
			static const __u8 zero[6];
			__u32 id;

			if (bc->has_mac)
				continue;
			id = fl_publisher_backend_id(&cp->pub, &v->addr, v->family, v->port, v->proto,
						     &bc->key);
			if (fn(cp, bc->key.family, &bc->key.addr,
			       id < t->max_backends ? t->backends[id].mac : zero))
				return true;
		}
	}
	return false;
}

static bool neigh_differs(struct fl_cp *cp, __u8 family, const union fl_addr *addr,
			  const __u8 published[6])
{
	__u8 mac[6];

	if (neigh_resolve(cp, family, addr, mac) < 0)
		memset(mac, 0, sizeof(mac));
	return memcmp(mac, published, 6) != 0;
}

static bool neigh_ask(struct fl_cp *cp, __u8 family, const union fl_addr *addr,
		      const __u8 published[6])
{
	int ifindex = (int)if_nametoindex(cp->cfg.dataplane.neighbour_interface);

	(void)published;
	if (ifindex <= 0)
		return true;	/* no interface (yet): nothing to ask on */
	if (fl_neigh_confirm(&cp->neigh, ifindex, family, addr) < 0) {
		char a[FL_ADDR_STRLEN];
		fl_log(FL_LOG_DEBUG, "neighbour %s on %s: cannot ask the kernel: %s",
		       fl_addr_format(addr, family, a, sizeof(a)),
		       cp->cfg.dataplane.neighbour_interface, strerror(errno));
	}
	return false;
}

static void on_neigh(struct fl_loop *loop, struct fl_io *io, uint32_t events)
{
	struct fl_cp *cp = io->arg;
	int rc = fl_neigh_read(&cp->neigh);

	(void)loop;
	(void)events;
	if (rc < 0) {
		fl_log(FL_LOG_ERROR, "neighbour table: netlink: %s", strerror(-rc));
		return;
	}
	if (rc > 0 && cp->have_cfg && neigh_each(cp, neigh_differs)) {
		fl_log(FL_LOG_INFO, "a neighbour MAC on %s changed: publishing",
		       cp->cfg.dataplane.neighbour_interface);
		cp->dirty = true;
	}
}

static void on_neigh_timer(struct fl_loop *loop, struct fl_timer *t)
{
	struct fl_cp *cp = t->arg;

	if (cp->have_cfg && cp->cfg.dataplane.neighbour_interface[0])
		neigh_each(cp, neigh_ask);
	fl_timer_in(loop, t, FL_CP_NEIGH_REFRESH_MS);
}

/* Starts watching the neighbour table when the config needs it. */
static int neigh_start(struct fl_cp *cp, const struct fl_config *cfg, char *err, size_t errlen)
{
	int rc;

	if (cp->have_neigh || !cfg->dataplane.neighbour_interface[0])
		return 0;
	rc = fl_neigh_open(&cp->neigh, err, errlen);
	if (rc < 0)
		return rc;
	rc = fl_io_add(&cp->loop, &cp->neigh_io, cp->neigh.fd, EPOLLIN, on_neigh, cp);
	if (rc < 0) {
		snprintf(err, errlen, "neighbour table: epoll: %s", strerror(-rc));
		fl_neigh_close(&cp->neigh);
		return rc;
	}
	cp->have_neigh = true;
	cp->pub.resolve = neigh_resolve;
	cp->pub.resolve_arg = cp;
	fl_timer_in(&cp->loop, &cp->neigh_timer, 0);
	fl_log(FL_LOG_INFO, "resolving MACs through the neighbour table of %s",
	       cfg->dataplane.neighbour_interface);
	return 0;
}

static void neigh_stop(struct fl_cp *cp)
{
	fl_timer_cancel(&cp->loop, &cp->neigh_timer);
	if (!cp->have_neigh)
		return;
	fl_io_del(&cp->loop, &cp->neigh_io);
	fl_neigh_close(&cp->neigh);
	cp->have_neigh = false;
}

/* ---- publishing ---- */

int fl_cp_publish(struct fl_cp *cp, bool force)
{
	struct fl_backend_status *st;
	struct fl_publish_result res;
	char err[FL_CONFIG_ERR_LEN];
	size_t n = 0;
	int rc;

	if (!cp->dirty && !force)
		return 0;
	st = calloc(cp->n_backends ? cp->n_backends : 1, sizeof(*st));
	if (!st) {
		rc = -ENOMEM;
		snprintf(err, sizeof(err), "out of memory");
		goto out;
	}
	for (size_t i = 0; i < cp->n_backends; i++) {
		const struct fl_cp_backend *b = cp->backends[i];
		if (backend_up(b) && !b->drain)
			continue;	/* no status = up */
		st[n].vip_addr = b->vip_addr;
		st[n].vip_family = b->vip_family;
		st[n].vip_proto = b->vip_proto;
		st[n].vip_port = b->vip_port;
		st[n].key = b->key;
		st[n].drain = b->drain;
		st[n].down = !backend_up(b);
		n++;
	}
	rc = fl_publisher_set(&cp->pub, &cp->cfg, st, n, err, sizeof(err));
	if (rc == 0)
		rc = fl_publisher_publish(&cp->pub, FL_CP_PUBLISH_TIMEOUT_MS, &res, err, sizeof(err));
	if (rc == 0)	/* xdp mode: the maps follow the newly active slot */
		rc = fl_cp_xdp_publish(cp, err, sizeof(err));
	free(st);
out:
	cp->last_publish_ns = fl_mono_ns();
	if (rc < 0) {
		cp->n_publish_errors++;
		fl_log(FL_LOG_ERROR, "publish to %s failed, retrying in %u ms: %s", cp->shm.map.path,
		       FL_CP_RETRY_MS, err);
		fl_timer_in(&cp->loop, &cp->publish_timer, FL_CP_RETRY_MS);
		return rc;
	}
	cp->dirty = false;
	cp->generation = res.generation;
	cp->n_publishes++;
	fl_log(FL_LOG_INFO, "published generation %llu: %u VIPs, %u backends, %u up, "
	       "%u rings built, %u copied", (unsigned long long)res.generation, res.vips,
	       res.backends, res.backends_up, res.rings_built, res.rings_copied);
	return 0;
}

static void on_publish_timer(struct fl_loop *loop, struct fl_timer *t)
{
	struct fl_cp *cp = t->arg;

	(void)loop;
	if (cp->dirty)
		fl_cp_publish(cp, false);
}

/* End of every iteration: one publish for all the changes it made. */
static void after_iteration(struct fl_loop *loop, void *arg)
{
	struct fl_cp *cp = arg;
	uint64_t next;

	if (!cp->dirty || fl_timer_armed(&cp->publish_timer))
		return;
	next = cp->last_publish_ns + FL_CP_PUBLISH_GAP_MS * NS_PER_MS;
	if (loop->now_ns >= next)
		fl_cp_publish(cp, false);
	else
		fl_timer_at(loop, &cp->publish_timer, next);
}

int fl_cp_set_drain(struct fl_cp *cp, const union fl_addr *vip_addr, __u8 vip_family,
		    __u16 vip_port, const union fl_addr *addr, __u8 family, __u16 port, bool drain)
{
	size_t matched = 0;

	for (size_t i = 0; i < cp->n_backends; i++) {
		struct fl_cp_backend *b = cp->backends[i];
		if (b->vip_family != vip_family || b->vip_port != vip_port ||
		    memcmp(&b->vip_addr, vip_addr, sizeof(*vip_addr)) || b->key.family != family ||
		    memcmp(&b->key.addr, addr, sizeof(*addr)) || (port && ntohs(b->eff_port) != port))
			continue;
		if (b->drain != drain) {
			b->drain = drain;
			cp->dirty = true;
			fl_log(FL_LOG_INFO, "backend %s %s by the operator", b->name,
			       drain ? "drained" : "undrained");
		}
		matched++;
	}
	return matched ? 0 : -ENOENT;
}

/* ---- life cycle ---- */

int fl_cp_init(struct fl_cp *cp, const char *config_path, char *err, size_t errlen)
{
	struct fl_config cfg;
	struct fl_shm_params params;
	int rc;

	memset(cp, 0, sizeof(*cp));
	cp->sig_io.fd = -1;
	cp->neigh_io.fd = -1;
	cp->neigh.fd = -1;
	fl_timer_init(&cp->neigh_timer, on_neigh_timer, cp);
	snprintf(cp->config_path, sizeof(cp->config_path), "%s", config_path);
	fl_timer_init(&cp->publish_timer, on_publish_timer, cp);
	rc = fl_config_load(config_path, &cfg, err, errlen);
	if (rc < 0)
		return rc;
	fl_log_set_level(cfg.global.log_level);
	rc = fl_loop_init(&cp->loop, err, errlen);
	if (rc < 0)
		goto fail_cfg;
	fl_loop_set_after(&cp->loop, after_iteration, cp);
	params = (struct fl_shm_params){
		.max_vips = cfg.limits.max_vips,
		.max_backends = cfg.limits.max_backends,
		.ring_entries = cfg.limits.ring_entries,
		.max_workers = cfg.limits.max_workers,
	};
	rc = fl_shm_create(cfg.global.shm_name, &params, &cp->shm, err, errlen);
	if (rc < 0) {
		fl_config_free(&cfg);
		goto fail_loop;
	}
	cp->have_shm = true;
	rc = fl_publisher_init(&cp->pub, &cp->shm, err, errlen);
	if (rc < 0) {
		fl_config_free(&cfg);
		goto fail_shm;
	}
	cp->have_pub = true;
	fl_log(FL_LOG_INFO, "shared memory %s, generation %llu read back", cp->shm.map.path,
	       (unsigned long long)(__atomic_load_n(&cp->shm.hdr->published, __ATOMIC_ACQUIRE) >> 1));
	rc = neigh_start(cp, &cfg, err, errlen);
	if (rc == 0)
		rc = fl_cp_xdp_init(cp, &cfg, err, errlen);
	if (rc < 0) {
		fl_config_free(&cfg);
		goto fail_pub;
	}
	rc = fl_cp_apply(cp, &cfg, err, errlen);	/* takes cfg over */
	if (rc < 0)
		goto fail_pub;
	/* a failed first publish is retried like any other: the data plane
	 * keeps what it has meanwhile */
	fl_cp_publish(cp, true);
	rc = fl_cp_xdp_attach(cp, err, errlen);	/* after the tables are in */
	if (rc < 0) {
		fl_cp_fini(cp);
		return rc;
	}
	return 0;
fail_pub:
	neigh_stop(cp);
	fl_cp_xdp_fini(cp);
	fl_publisher_fini(&cp->pub);
	cp->have_pub = false;
fail_shm:
	fl_shm_detach(&cp->shm);
	cp->have_shm = false;
fail_loop:
	fl_loop_fini(&cp->loop);
	return rc;
fail_cfg:
	fl_config_free(&cfg);
	return rc;
}

int fl_cp_reload(struct fl_cp *cp, char *err, size_t errlen)
{
	struct fl_config cfg;
	char msg[FL_CONFIG_ERR_LEN];
	int rc;

	rc = fl_config_load(cp->config_path, &cfg, err, errlen);
	if (rc < 0)
		return rc;
	if (strcmp(cfg.global.shm_name, cp->cfg.global.shm_name) != 0 ||
	    memcmp(&cfg.limits, &cp->cfg.limits, sizeof(cfg.limits)) != 0)
		fl_log(FL_LOG_WARN, "reload: global.shm_name and limits take effect only at restart");
	enum fl_log_level level = cfg.global.log_level;
	/* a reload may start needing neighbours; it never stops watching */
	rc = neigh_start(cp, &cfg, msg, sizeof(msg));
	if (rc < 0) {
		fl_config_free(&cfg);
		snprintf(err, errlen, "%s: %s", cp->config_path, msg);
		return rc;
	}
	rc = fl_cp_apply(cp, &cfg, msg, sizeof(msg));
	if (rc < 0) {
		snprintf(err, errlen, "%s: %s", cp->config_path, msg);
		return rc;
	}
	fl_log_set_level(level);
	return 0;
}

static void on_signal(struct fl_loop *loop, struct fl_io *io, uint32_t events)
{
	struct fl_cp *cp = io->arg;
	struct signalfd_siginfo si;
	char err[FL_CONFIG_ERR_LEN];

	(void)events;
	while (read(io->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGHUP:
			fl_log(FL_LOG_INFO, "SIGHUP: reloading %s", cp->config_path);
			if (fl_cp_reload(cp, err, sizeof(err)) < 0)
				fl_log(FL_LOG_ERROR, "reload failed, keeping the running config: %s", err);
			break;
		case SIGTERM:
		case SIGINT:
			fl_log(FL_LOG_INFO, "%s: exiting; the published tables stay (fail static)",
			       strsignal((int)si.ssi_signo));
			fl_loop_stop(loop);
			break;
		default:
			break;
		}
	}
}

int fl_cp_run(struct fl_cp *cp)
{
	sigset_t set;
	int fd, rc;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = fl_io_add(&cp->loop, &cp->sig_io, fd, EPOLLIN, on_signal, cp);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	rc = fl_loop_run(&cp->loop);
	fl_io_del(&cp->loop, &cp->sig_io);
	close(fd);
	return rc;
}

void fl_cp_fini(struct fl_cp *cp)
{
	for (size_t i = 0; i < cp->n_checks; i++)
		check_free(cp->checks[i]);
	free(cp->checks);
	cp->checks = NULL;
	cp->n_checks = 0;
	for (size_t i = 0; i < cp->n_backends; i++)
		free(cp->backends[i]);
	free(cp->backends);
	cp->backends = NULL;
	cp->n_backends = 0;
	if (cp->have_cfg)
		fl_config_free(&cp->cfg);
	cp->have_cfg = false;
	fl_timer_cancel(&cp->loop, &cp->publish_timer);
	neigh_stop(cp);
	fl_cp_xdp_fini(cp);
	if (cp->have_pub)
		fl_publisher_fini(&cp->pub);
	cp->have_pub = false;
	if (cp->have_shm)
		fl_shm_detach(&cp->shm);
	cp->have_shm = false;
	fl_loop_fini(&cp->loop);
	fl_check_tls_fini();
}
