/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The control socket's operations: one handler each, in one table. A
 * handler that changes the desired state builds a whole new config (a copy
 * of the running one with the change), validates it as the file loader
 * would (fl_config_check_vip, then the publisher's limits in fl_cp_apply),
 * and applies it by difference: on any error nothing has changed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <json-c/json.h>

#include "addr.h"
#include "ctl.h"
#include "maglev.h"
#include "metrics.h"
#include "xdp_mode.h"

#ifndef FL_VERSION
#define FL_VERSION "unknown"
#endif

#define JSON_MAX_DEPTH 16
#define DEFAULT_WEIGHT 100	/* as the config file's default */

typedef int (*op_fn)(struct fl_cp *cp, struct json_object *req, struct json_object *ans,
		     char *err, size_t errlen);

struct op {
	const char *name;
	op_fn fn;
	const char *const *keys;	/* the members it takes besides "op" */
};

#define FAIL(...) (snprintf(err, errlen, __VA_ARGS__), -EINVAL)

/* ---- request members ---- */

static int get_str(struct json_object *req, const char *key, bool required, const char **out,
		   char *err, size_t errlen)
{
	struct json_object *v;

	*out = NULL;
	if (!json_object_object_get_ex(req, key, &v) || json_object_is_type(v, json_type_null))
		return required ? FAIL("\"%s\" is required", key) : 0;
	if (!json_object_is_type(v, json_type_string))
		return FAIL("\"%s\" must be a string", key);
	*out = json_object_get_string(v);
	if (strlen(*out) != (size_t)json_object_get_string_len(v))
		return FAIL("\"%s\" holds a NUL byte", key);
	return 0;
}

static int get_uint(struct json_object *req, const char *key, bool required, long long max,
		    long long *out, char *err, size_t errlen)
{
	struct json_object *v;

	if (!json_object_object_get_ex(req, key, &v) || json_object_is_type(v, json_type_null))
		return required ? FAIL("\"%s\" is required", key) : 1;
	if (!json_object_is_type(v, json_type_int))
		return FAIL("\"%s\" must be an integer", key);
	errno = 0;
	*out = json_object_get_int64(v);
	if (errno || *out < 0 || *out > max)
		return FAIL("\"%s\" must be 0..%lld", key, max);
	return 0;
}

static int get_bool(struct json_object *req, const char *key, bool *out, char *err, size_t errlen)
{
	struct json_object *v;

	if (!json_object_object_get_ex(req, key, &v))
		return 1;
	if (!json_object_is_type(v, json_type_boolean))
		return FAIL("\"%s\" must be true or false", key);
	*out = json_object_get_boolean(v);
	return 0;
}

static void vip_text(const struct fl_vip_config *v, char *buf, size_t len)
{
	char ep[FL_ADDR_STRLEN + 8];

	fl_endpoint_format(&v->addr, v->family, v->port, ep, sizeof(ep));
	snprintf(buf, len, "%s/%s", ep, fl_proto_name(v->proto));
}

/* The VIP named by "vip": its name, or "ADDR:PORT[/PROTO]" (tcp first). */
static int find_vip(struct fl_cp *cp, struct json_object *req, unsigned *idx, char *err, size_t errlen)
{
	char buf[FL_ADDR_STRLEN + 32], *slash;
	const char *text;
	union fl_addr a;
	__u8 fam, proto = 0;
	__u16 port;
	int rc = get_str(req, "vip", true, &text, err, errlen);

	if (rc)
		return rc;
	for (unsigned i = 0; i < cp->cfg.n_vips; i++)
		if (cp->cfg.vips[i].name[0] && strcmp(cp->cfg.vips[i].name, text) == 0) {
			*idx = i;
			return 0;
		}
	if (strlen(text) >= sizeof(buf))
		return FAIL("no VIP %.64s", text);
	strcpy(buf, text);
	slash = strrchr(buf, '/');
	if (slash) {
		*slash = '\0';
		if (fl_proto_parse(slash + 1, &proto) < 0)
			return FAIL("VIP %s: protocol must be tcp or udp", text);
	}
	if (fl_endpoint_parse(buf, &a, &fam, &port) < 0 || port == 0)
		return FAIL("no VIP %s: expected a VIP name or ADDR:PORT[/tcp|udp]", text);
	for (int pass = 0; pass < 2; pass++)
		for (unsigned i = 0; i < cp->cfg.n_vips; i++) {
			const struct fl_vip_config *v = &cp->cfg.vips[i];
			__u8 want = proto ? proto : pass == 0 ? IPPROTO_TCP : IPPROTO_UDP;
			if (v->family == fam && v->port == port && v->proto == want &&
			    memcmp(&v->addr, &a, sizeof(a)) == 0) {
				*idx = i;
				return 0;
			}
		}
	snprintf(err, errlen, "no VIP %s", text);
	return -ENOENT;
}

/* The backend "address" of VIP v: its index, or -ENOENT (key filled). */
static int find_backend(const struct fl_vip_config *v, struct json_object *req,
			struct fl_backend_key *key, unsigned *idx, char *err, size_t errlen)
{
	const char *text;
	__u16 port;
	int rc = get_str(req, "address", true, &text, err, errlen);

	if (rc)
		return rc;
	memset(key, 0, sizeof(*key));
	if (fl_endpoint_parse(text, &key->addr, &key->family, &port) < 0)
		return FAIL("address %.64s: expected ADDR or ADDR:PORT", text);
	key->port = port == v->port ? 0 : htons(port);	/* the VIP's port is spelt 0 */
	for (unsigned j = 0; j < v->n_backends; j++) {
		const struct fl_backend_key *k = &v->backends[j].key;
		__u16 kp = k->port ? ntohs(k->port) : v->port;
		if (k->family == key->family && memcmp(&k->addr, &key->addr, sizeof(k->addr)) == 0 &&
		    (port == 0 || kp == port)) {
			*idx = j;
			return 0;
		}
	}
	snprintf(err, errlen, "VIP has no backend %s", text);
	return -ENOENT;
}

/* ---- config copies ---- */

static char **dup_strings(char **s, unsigned n)
{
	char **d = calloc(n ? n : 1, sizeof(*d));

	for (unsigned i = 0; d && i < n; i++)
		if (!(d[i] = strdup(s[i]))) {
			while (i--)
				free(d[i]);
			free(d);
			return NULL;
		}
	return d;
}

static void *dup_mem(const void *p, size_t n)
{
	void *d = malloc(n ? n : 1);

	if (d && n)
		memcpy(d, p, n);
	return d;
}

/* A deep copy of the running config with room for one more VIP, and one
 * more backend in each VIP. 0 or -ENOMEM. */
static int cfg_copy(const struct fl_config *src, struct fl_config *dst)
{
	const struct fl_dataplane_config *s = &src->dataplane;
	struct fl_dataplane_config *d = &dst->dataplane;

	*dst = *src;
	dst->vips = NULL;
	dst->n_vips = 0;
	d->eal_args = dup_strings(s->eal_args, s->n_eal_args);
	d->xdp_interfaces = dup_strings(s->xdp_interfaces, s->n_xdp_interfaces);
	d->ports = dup_mem(s->ports, s->n_ports * sizeof(*s->ports));
	d->worker_cores = dup_mem(s->worker_cores, s->n_workers * sizeof(*s->worker_cores));
	dst->vips = calloc(src->n_vips + 1, sizeof(*dst->vips));
	if (!d->eal_args || !d->xdp_interfaces || !d->ports || !d->worker_cores || !dst->vips) {
		if (!d->eal_args)
			d->n_eal_args = 0;
		if (!d->xdp_interfaces)
			d->n_xdp_interfaces = 0;
		fl_config_free(dst);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < src->n_vips; i++) {
		const struct fl_vip_config *v = &src->vips[i];
		dst->vips[i] = *v;
		dst->vips[i].backends = calloc(v->n_backends + 1, sizeof(*v->backends));
		if (!dst->vips[i].backends) {
			fl_config_free(dst);
			return -ENOMEM;
		}
		memcpy(dst->vips[i].backends, v->backends, v->n_backends * sizeof(*v->backends));
		dst->n_vips++;
	}
	return 0;
}

/* What the file loader checks beyond one VIP: tunnel sources and limits. */
static int check_vip_needs(const struct fl_config *cfg, const struct fl_vip_config *v,
			   char *err, size_t errlen)
{
	unsigned long long backends = 0, entries = 0;

	if (v->method != FL_METHOD_L2DSR && v->family == FL_AF_INET &&
	    !cfg->dataplane.has_tunnel_source_v4)
		return FAIL("method: %s needs dataplane.tunnel_source_v4", fl_method_name(v->method));
	if (v->method != FL_METHOD_L2DSR && v->family == FL_AF_INET6 &&
	    !cfg->dataplane.has_tunnel_source_v6)
		return FAIL("method: %s needs dataplane.tunnel_source_v6", fl_method_name(v->method));
	for (unsigned i = 0; i < cfg->n_vips; i++) {
		backends += cfg->vips[i].n_backends;
		entries += cfg->vips[i].table_size;
	}
	if (cfg->n_vips > cfg->limits.max_vips)
		return FAIL("%u VIPs, more than limits.max_vips (%u)", cfg->n_vips, cfg->limits.max_vips);
	if (backends > cfg->limits.max_backends)
		return FAIL("backends: the VIPs have %llu backends, more than limits.max_backends (%u)",
			    backends, cfg->limits.max_backends);
	if (entries > cfg->limits.ring_entries)
		return FAIL("table_size: the VIPs' tables need %llu entries, more than "
			    "limits.ring_entries (%u)", entries, cfg->limits.ring_entries);
	return 0;
}

/* Validates VIP i of the copy and applies the copy (taken over either way). */
static int commit(struct fl_cp *cp, struct fl_config *next, unsigned i, char *err, size_t errlen)
{
	char msg[FL_CONFIG_ERR_LEN];
	int rc = fl_config_check_vip(&next->vips[i], msg, sizeof(msg));

	if (rc == 0)
		rc = check_vip_needs(next, &next->vips[i], msg, sizeof(msg));
	if (rc < 0) {
		fl_config_free(next);
		snprintf(err, errlen, "%s", msg);
		return rc;
	}
	rc = fl_cp_apply(cp, next, msg, sizeof(msg));
	if (rc < 0)
		snprintf(err, errlen, "%s", msg);
	return rc;
}

/* ---- answers ---- */

static void add_str(struct json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, json_object_new_string(v));
}

static void add_u64(struct json_object *o, const char *k, unsigned long long v)
{
	json_object_object_add(o, k, json_object_new_int64((int64_t)v));
}

static struct json_object *backend_json(struct fl_cp *cp, const struct fl_vip_config *v,
					const struct fl_backend_config *bc)
{
	struct json_object *o = json_object_new_object();
	struct fl_cp_backend *b = fl_stats_backend(cp, v, bc);
	char ep[FL_ADDR_STRLEN + 8], addr[FL_ADDR_STRLEN];
	__u32 id = fl_publisher_backend_id(&cp->pub, &v->addr, v->family, v->port, v->proto, &bc->key);
	unsigned port = bc->key.port ? ntohs(bc->key.port) : v->port;

	fl_endpoint_format(&bc->key.addr, bc->key.family, port, ep, sizeof(ep));
	add_str(o, "backend", ep);
	add_str(o, "address", fl_addr_format(&bc->key.addr, bc->key.family, addr, sizeof(addr)));
	add_u64(o, "port", port);
	add_u64(o, "weight", bc->weight);
	add_str(o, "state", fl_stats_state(cp, v, bc));
	add_str(o, "health", fl_stats_health(b));
	json_object_object_add(o, "drain", json_object_new_boolean(b && b->drain));
	if (id != FL_BACKEND_NONE) {
		const struct fl_tables *t = fl_writer_active(&cp->shm);
		add_u64(o, "id", id);
		if (id < t->max_backends)
			add_u64(o, "epoch", t->backends[id].epoch);
	} else {
		json_object_object_add(o, "id", NULL);
	}
	return o;
}

static struct json_object *vip_json(struct fl_cp *cp, const struct fl_vip_config *v, bool full)
{
	struct json_object *o = json_object_new_object(), *bs = json_object_new_array();
	char text[FL_ADDR_STRLEN + 16], addr[FL_ADDR_STRLEN];
	__u32 id = fl_stats_vip_id(cp, v);
	unsigned up = 0;

	vip_text(v, text, sizeof(text));
	add_str(o, "vip", text);
	add_str(o, "name", v->name);
	add_str(o, "address", fl_addr_format(&v->addr, v->family, addr, sizeof(addr)));
	add_u64(o, "port", v->port);
	add_str(o, "protocol", fl_proto_name(v->proto));
	add_str(o, "method", fl_method_name(v->method));
	add_u64(o, "table_size", v->table_size);
	add_str(o, "check", fl_hc_type_name(v->hc.type));
	if (id != FL_BACKEND_NONE)
		add_u64(o, "id", id);
	else
		json_object_object_add(o, "id", NULL);
	for (unsigned j = 0; j < v->n_backends; j++) {
		if (strcmp(fl_stats_state(cp, v, &v->backends[j]), "up") == 0)
			up++;
		if (full)
			json_object_array_add(bs, backend_json(cp, v, &v->backends[j]));
	}
	add_u64(o, "n_backends", v->n_backends);
	add_u64(o, "n_up", up);
	if (full)
		json_object_object_add(o, "backends", bs);
	else
		json_object_put(bs);
	return o;
}

/* ---- operations ---- */

static int op_version(struct fl_cp *cp, struct json_object *req, struct json_object *ans,
		      char *err, size_t errlen)
{
	(void)req, (void)err, (void)errlen;
	add_str(ans, "version", FL_VERSION);
	add_str(ans, "config", cp->config_path);
	add_u64(ans, "generation", cp->generation);
	add_u64(ans, "publishes", cp->n_publishes);
	add_u64(ans, "publish_errors", cp->n_publish_errors);
	add_u64(ans, "pid", (unsigned long long)getpid());
	return 0;
}

static int op_vip_list(struct fl_cp *cp, struct json_object *req, struct json_object *ans,
		       char *err, size_t errlen)
{
	struct json_object *a = json_object_new_array();

	(void)req, (void)err, (void)errlen;
	for (unsigned i = 0; i < cp->cfg.n_vips; i++)
		json_object_array_add(a, vip_json(cp, &cp->cfg.vips[i], false));
	json_object_object_add(ans, "vips", a);
	return 0;
}

static int op_vip_show(struct fl_cp *cp, struct json_object *req, struct json_object *ans,
		       char *err, size_t errlen)
{
	unsigned i;
	int rc = find_vip(cp, req, &i, err, errlen);

	if (rc)
		return rc;
	json_object_object_add(ans, "vip", vip_json(cp, &cp->cfg.vips[i], true));
	return 0;
}

static int read_hc_json(struct json_object *h, struct fl_hc_config *hc, char *err, size_t errlen)
{
	static const struct { const char *k; size_t off; long long max; } u[] = {
		{ "interval_ms", offsetof(struct fl_hc_config, interval_ms), 3600000 },
		{ "timeout_ms", offsetof(struct fl_hc_config, timeout_ms), 3600000 },
		{ "rise", offsetof(struct fl_hc_config, rise), 1000 },
		{ "fall", offsetof(struct fl_hc_config, fall), 1000 },
	};
	const char *s;
	long long n;
	int rc;

	if (!json_object_is_type(h, json_type_object))
		return FAIL("\"healthcheck\" must be an object");
	if ((rc = get_str(h, "type", false, &s, err, errlen)))
		return rc;
	if (s && fl_hc_type_parse(s, &hc->type) < 0)
		return FAIL("healthcheck.type: must be none, tcp, tcp-half-open, http or https");
	for (size_t i = 0; i < sizeof(u) / sizeof(u[0]); i++) {
		if ((rc = get_uint(h, u[i].k, false, u[i].max, &n, err, errlen)) < 0)
			return rc;
		if (rc == 0)
			*(__u32 *)((char *)hc + u[i].off) = (__u32)n;
	}
	if ((rc = get_uint(h, "port", false, 65535, &n, err, errlen)) < 0)
		return rc;
	if (rc == 0)
		hc->port = (__u16)n;
	if ((rc = get_str(h, "http_path", false, &s, err, errlen)))
		return rc;
	if (s && snprintf(hc->http_path, sizeof(hc->http_path), "%s", s) >= (int)sizeof(hc->http_path))
		return FAIL("healthcheck.http_path: too long");
	if ((rc = get_str(h, "http_host", false, &s, err, errlen)))
		return rc;
	if (s && snprintf(hc->http_host, sizeof(hc->http_host), "%s", s) >= (int)sizeof(hc->http_host))
		return FAIL("healthcheck.http_host: too long");
	if ((rc = get_str(h, "expect_body", false, &s, err, errlen)))
		return rc;
	if (s && snprintf(hc->expect_body, sizeof(hc->expect_body), "%s", s) >= (int)sizeof(hc->expect_body))
		return FAIL("healthcheck.expect_body: too long");
	if (get_bool(h, "tls_verify", &hc->tls_verify, err, errlen) < 0)
		return -EINVAL;
	if (hc->timeout_ms >= hc->interval_ms)
		return FAIL("healthcheck.timeout_ms: must be less than interval_ms (%u)", hc->interval_ms);
	if (hc->http_path[0] != '/')
		return FAIL("healthcheck.http_path: must start with '/'");
	return 0;
}

/* One backend of a request: {"address": "ADDR[:PORT]", "weight": W, "mac": M}. */
static int read_backend_json(const struct fl_vip_config *v, struct json_object *o,
			     struct fl_backend_config *bc, char *err, size_t errlen)
{
	const char *s;
	long long w;
	__u16 port;
	int rc;

	if (!json_object_is_type(o, json_type_object))
		return FAIL("a backend must be an object");
	memset(bc, 0, sizeof(*bc));
	bc->hc = v->hc;
	bc->weight = DEFAULT_WEIGHT;
	if ((rc = get_str(o, "address", true, &s, err, errlen)))
		return rc;
	if (fl_endpoint_parse(s, &bc->key.addr, &bc->key.family, &port) < 0)
		return FAIL("address %.64s: expected ADDR or ADDR:PORT", s);
	bc->key.port = port == v->port ? 0 : htons(port);
	if ((rc = get_uint(o, "weight", false, 65535, &w, err, errlen)) < 0)
		return rc;
	if (rc == 0)
		bc->weight = (__u16)w;
	if ((rc = get_str(o, "mac", false, &s, err, errlen)))
		return rc;
	if (s) {
		if (fl_mac_parse(s, bc->mac) < 0)
			return FAIL("mac %.32s: expected aa:bb:cc:dd:ee:ff", s);
		bc->has_mac = true;
	}
	return 0;
}

static int read_vip_json(const struct fl_config *cfg, struct json_object *req,
			 struct fl_vip_config *v, char *err, size_t errlen)
{
	struct json_object *h, *bl;
	const char *s;
	long long n;
	int rc;

	memset(v, 0, sizeof(*v));
	v->hc = cfg->healthcheck;
	v->table_size = FL_MAGLEV_DEFAULT_M;
	v->proto = IPPROTO_TCP;
	if ((rc = get_str(req, "address", true, &s, err, errlen)))
		return rc;
	if (fl_addr_parse(s, &v->addr, &v->family) < 0)
		return FAIL("address %.64s: not an IPv4 or IPv6 address", s);
	v->method = v->family == FL_AF_INET ? FL_METHOD_IPIP : FL_METHOD_IP6IP6;
	if ((rc = get_uint(req, "port", true, 65535, &n, err, errlen)))
		return rc;
	if (n == 0)
		return FAIL("\"port\" must be 1..65535");
	v->port = (__u16)n;
	if ((rc = get_str(req, "protocol", false, &s, err, errlen)))
		return rc;
	if (s && fl_proto_parse(s, &v->proto) < 0)
		return FAIL("protocol: must be tcp or udp");
	if ((rc = get_str(req, "method", false, &s, err, errlen)))
		return rc;
	if (s && fl_method_parse(s, &v->method) < 0)
		return FAIL("method: must be ipip, ip6ip6, gue or l2dsr");
	if ((rc = get_str(req, "name", false, &s, err, errlen)))
		return rc;
	if (s && snprintf(v->name, sizeof(v->name), "%s", s) >= (int)sizeof(v->name))
		return FAIL("name: too long");
	if ((rc = get_uint(req, "table_size", false, FL_MAGLEV_MAX_M, &n, err, errlen)) < 0)
		return rc;
	if (rc == 0)
		v->table_size = (__u32)n;
	if (json_object_object_get_ex(req, "healthcheck", &h) && (rc = read_hc_json(h, &v->hc, err, errlen)))
		return rc;
	if (!json_object_object_get_ex(req, "backends", &bl) || json_object_is_type(bl, json_type_null))
		return 0;
	if (!json_object_is_type(bl, json_type_array))
		return FAIL("\"backends\" must be an array");
	if (json_object_array_length(bl) > cfg->limits.max_backends)
		return FAIL("backends: more than limits.max_backends (%u)", cfg->limits.max_backends);
	v->backends = calloc(json_object_array_length(bl) + 1, sizeof(*v->backends));
	if (!v->backends)
		return FAIL("out of memory");
	for (size_t i = 0; i < json_object_array_length(bl); i++) {
		rc = read_backend_json(v, json_object_array_get_idx(bl, i), &v->backends[i], err, errlen);
		if (rc)
			return rc;
		v->n_backends++;
	}
	return 0;
}

static int op_vip_add(struct fl_cp *cp, struct json_object *req, struct json_object *ans,
		      char *err, size_t errlen)
{
	struct fl_config next;
	struct fl_vip_config v;
	char text[FL_ADDR_STRLEN + 16];
	int rc = read_vip_json(&cp->cfg, req, &v, err, errlen);

	if (rc) {
		free(v.backends);
		return rc;
	}
	for (unsigned i = 0; i < cp->cfg.n_vips; i++) {
		const struct fl_vip_config *o = &cp->cfg.vips[i];
		if ((o->family == v.family && o->port == v.port && o->proto == v.proto &&
		     memcmp(&o->addr, &v.addr, sizeof(v.addr)) == 0) ||
		    (v.name[0] && strcmp(o->name, v.name) == 0)) {
			free(v.backends);
			vip_text(o, text, sizeof(text));
			return FAIL("VIP %s exists", text);
		}
	}
	if (cfg_copy(&cp->cfg, &next) < 0) {
		free(v.backends);
		return FAIL("out of memory");
	}
	next.vips[next.n_vips++] = v;	/* the copy owns v.backends now */
	rc = commit(cp, &next, next.n_vips - 1, err, errlen);
	if (rc)
		return rc;
	vip_text(&v, text, sizeof(text));
	fl_log(FL_LOG_INFO, "control socket: VIP %s added", text);
	add_str(ans, "vip", text);
	return 0;
}

static int op_vip_remove(struct fl_cp *cp, struct json_object *req, struct json_object *ans,
			 char *err, size_t errlen)
{
	struct fl_config next;
	char text[FL_ADDR_STRLEN + 16];
	unsigned i;
	int rc = find_vip(cp, req, &i, err, errlen);

	if (rc)
		return rc;
	vip_text(&cp->cfg.vips[i], text, sizeof(text));
	if (cfg_copy(&cp->cfg, &next) < 0)
		return FAIL("out of memory");
	free(next.vips[i].backends);
	memmove(&next.vips[i], &next.vips[i + 1], (next.n_vips - i - 1) * sizeof(*next.vips));
	next.n_vips--;
	rc = fl_cp_apply(cp, &next, err, errlen);
	if (rc)
		return rc;
	fl_log(FL_LOG_INFO, "control socket: VIP %s removed", text);
	add_str(ans, "vip", text);
	return 0;
}

static int op_backend_add(struct fl_cp *cp, struct json_object *req, struct json_object *ans,
			  char *err, size_t errlen)
{
	struct fl_backend_config bc;
	struct fl_config next;
	unsigned i;
	int rc = find_vip(cp, req, &i, err, errlen);

	if (rc)
		return rc;
	rc = read_backend_json(&cp->cfg.vips[i], req, &bc, err, errlen);
	if (rc)
		return rc;
	/* a backend it has already: fl_config_check_vip says so */
	if (cfg_copy(&cp->cfg, &next) < 0)
		return FAIL("out of memory");
	next.vips[i].backends[next.vips[i].n_backends++] = bc;
	rc = commit(cp, &next, i, err, errlen);
	if (rc)
		return rc;
	json_object_object_add(ans, "backend", backend_json(cp, &cp->cfg.vips[i],
			       &cp->cfg.vips[i].backends[cp->cfg.vips[i].n_backends - 1]));
	return 0;
}

static int op_backend_remove(struct fl_cp *cp, struct json_object *req, struct json_object *ans,
			     char *err, size_t errlen)
{
	struct fl_backend_key key;
	struct fl_config next;
	struct fl_vip_config *v;
	unsigned i, j;
	int rc = find_vip(cp, req, &i, err, errlen);

	(void)ans;
	if (rc || (rc = find_backend(&cp->cfg.vips[i], req, &key, &j, err, errlen)))
		return rc;
	if (cfg_copy(&cp->cfg, &next) < 0)
		return FAIL("out of memory");
	v = &next.vips[i];
	memmove(&v->backends[j], &v->backends[j + 1], (v->n_backends - j - 1) * sizeof(*v->backends));
	v->n_backends--;
	return commit(cp, &next, i, err, errlen);
}

static int op_backend_weight(struct fl_cp *cp, struct json_object *req, struct json_object *ans,
			     char *err, size_t errlen)
{
	struct fl_backend_key key;
	struct fl_config next;
	long long w;
	unsigned i, j;
	int rc = find_vip(cp, req, &i, err, errlen);

	if (rc || (rc = find_backend(&cp->cfg.vips[i], req, &key, &j, err, errlen)) ||
	    (rc = get_uint(req, "weight", true, 65535, &w, err, errlen)))
		return rc;
	if (cfg_copy(&cp->cfg, &next) < 0)
		return FAIL("out of memory");
	next.vips[i].backends[j].weight = (__u16)w;
	rc = commit(cp, &next, i, err, errlen);
	if (rc)
		return rc;
	json_object_object_add(ans, "backend", backend_json(cp, &cp->cfg.vips[i],
							    &cp->cfg.vips[i].backends[j]));
	return 0;
}

static int set_drain(struct fl_cp *cp, struct json_object *req, struct json_object *ans,
		     bool drain, char *err, size_t errlen)
{
	struct fl_backend_key key;
	struct fl_cp_backend *b;
	const struct fl_vip_config *v;
	unsigned i, j;
	int rc = find_vip(cp, req, &i, err, errlen);

	if (rc || (rc = find_backend(&cp->cfg.vips[i], req, &key, &j, err, errlen)))
		return rc;
	v = &cp->cfg.vips[i];
	b = fl_stats_backend(cp, v, &v->backends[j]);
	if (!b)
		return FAIL("backend not running");
	if (b->drain != drain) {
		b->drain = drain;
		cp->dirty = true;	/* published at the end of this iteration */
		fl_log(FL_LOG_INFO, "backend %s %s over the control socket", b->name,
		       drain ? "drained" : "undrained");
	}
	json_object_object_add(ans, "backend", backend_json(cp, v, &v->backends[j]));
	return 0;
}

static int op_backend_drain(struct fl_cp *cp, struct json_object *req, struct json_object *ans,
			    char *err, size_t errlen)
{
	return set_drain(cp, req, ans, true, err, errlen);
}

static int op_backend_undrain(struct fl_cp *cp, struct json_object *req, struct json_object *ans,
			      char *err, size_t errlen)
{
	return set_drain(cp, req, ans, false, err, errlen);
}

static int op_health(struct fl_cp *cp, struct json_object *req, struct json_object *ans,
		     char *err, size_t errlen)
{
	struct json_object *a = json_object_new_array();
	struct timespec rt;
	uint64_t mono = fl_mono_ns(), real;

	(void)req, (void)err, (void)errlen;
	clock_gettime(CLOCK_REALTIME, &rt);
	real = (uint64_t)rt.tv_sec * 1000000000ull + (uint64_t)rt.tv_nsec;
	for (unsigned i = 0; i < cp->cfg.n_vips; i++) {
		const struct fl_vip_config *v = &cp->cfg.vips[i];
		char text[FL_ADDR_STRLEN + 16];

		vip_text(v, text, sizeof(text));
		for (unsigned j = 0; j < v->n_backends; j++) {
			struct fl_cp_backend *b = fl_stats_backend(cp, v, &v->backends[j]);
			struct json_object *o = backend_json(cp, v, &v->backends[j]);

			add_str(o, "vip", text);
			if (b && b->checked) {
				const struct fl_checker *c = &b->check->chk;
				add_str(o, "check", fl_hc_type_name(b->hc.type));
				add_str(o, "last_result", c->n_checks ? (c->last_ok ? "ok" : "fail") : "none");
				add_str(o, "reason", c->reason);
				add_u64(o, "checks", c->n_checks);
				add_u64(o, "failures", c->n_failures);
				add_u64(o, "changes", c->n_changes);
				if (c->last_change_ns && c->last_change_ns <= mono)
					json_object_object_add(o, "since", json_object_new_double(
						(double)(real - (mono - c->last_change_ns)) / 1e9));
				else
					json_object_object_add(o, "since", NULL);
			} else {
				add_str(o, "check", "none");
				add_str(o, "last_result", "none");
				add_str(o, "reason", "no check: always up");
			}
			json_object_array_add(a, o);
		}
	}
	json_object_object_add(ans, "backends", a);
	return 0;
}

static int op_stats(struct fl_cp *cp, struct json_object *req, struct json_object *ans,
		    char *err, size_t errlen)
{
	struct fl_worker_counters sum;
	struct json_object *c = json_object_new_object(), *d = json_object_new_object();
	struct json_object *vs = json_object_new_array();

	(void)req, (void)err, (void)errlen;
	fl_stats_sum(cp, &sum);
	add_u64(ans, "time_ns", fl_mono_ns());
	add_u64(ans, "generation", __atomic_load_n(&cp->shm.hdr->published, __ATOMIC_ACQUIRE) >> 1);
	for (size_t i = 0; i < sizeof(fl_counter_fields) / sizeof(fl_counter_fields[0]); i++)
		if (fl_stats_kept(cp, &fl_counter_fields[i]))
			add_u64(c, fl_counter_fields[i].name,
				*(const __u64 *)((const char *)&sum + fl_counter_fields[i].offset));
	for (unsigned r = 0; r < FL_DROP__MAX; r++)
		add_u64(d, fl_drop_names[r], sum.drops[r]);
	json_object_object_add(ans, "counters", c);
	json_object_object_add(ans, "drops", d);
	for (unsigned i = 0; i < cp->cfg.n_vips; i++) {
		const struct fl_vip_config *v = &cp->cfg.vips[i];
		struct json_object *o = json_object_new_object(), *bs = json_object_new_array();
		__u32 id = fl_stats_vip_id(cp, v);
		struct fl_vip_counters vc = { 0 };
		char text[FL_ADDR_STRLEN + 16];

		if (id != FL_BACKEND_NONE)
			fl_stats_sum_vip(cp, id, &vc);
		vip_text(v, text, sizeof(text));
		add_str(o, "vip", text);
		add_u64(o, "packets", vc.packets);
		add_u64(o, "bytes", vc.bytes);
		add_u64(o, "new_flows", vc.new_flows);
		for (unsigned j = 0; j < v->n_backends; j++) {
			const struct fl_backend_config *bc = &v->backends[j];
			__u32 bid = fl_publisher_backend_id(&cp->pub, &v->addr, v->family, v->port,
							    v->proto, &bc->key);
			struct fl_backend_counters k = { 0 };
			struct json_object *b = json_object_new_object();
			char ep[FL_ADDR_STRLEN + 8];

			if (bid != FL_BACKEND_NONE)
				fl_stats_sum_backend(cp, bid, &k);
			fl_endpoint_format(&bc->key.addr, bc->key.family,
					bc->key.port ? ntohs(bc->key.port) : v->port, ep, sizeof(ep));
			add_str(b, "backend", ep);
			add_u64(b, "packets", k.packets);
			add_u64(b, "bytes", k.bytes);
			json_object_array_add(bs, b);
		}
		json_object_object_add(o, "backends", bs);
		json_object_array_add(vs, o);
	}
	json_object_object_add(ans, "vips", vs);
	return 0;
}

/* The XDP program's conntrack, which every CPU shares: its live records
 * from the last scan of the table (fl_cp_xdp_occupancy), with its age;
 * "pending" while the first scan runs. Evictions and expiries are the
 * program's counters. */
static int conntrack_xdp(struct fl_cp *cp, struct json_object *ans, char *err, size_t errlen)
{
	struct fl_worker_counters sum;
	uint64_t age_ms;
	__u64 live;
	int rc = fl_cp_xdp_occupancy(cp, &live, &age_ms, err, errlen);

	if (rc == -EAGAIN) {
		json_object_object_add(ans, "pending", json_object_new_boolean(1));
		return 0;
	}
	if (rc)
		return rc;
	fl_stats_sum(cp, &sum);
	add_u64(ans, "age_ms", age_ms);
	add_u64(ans, "occupancy", live);
	add_u64(ans, "evictions", sum.ct_evictions);
	add_u64(ans, "expired", sum.ct_expired);
	add_u64(ans, "new_flows", sum.new_flows);
	return 0;
}

static int op_conntrack(struct fl_cp *cp, struct json_object *req, struct json_object *ans,
			char *err, size_t errlen)
{
	struct json_object *a;
	uint64_t now = fl_now_ns();

	(void)req;
	add_u64(ans, "capacity", cp->cfg.dataplane.conntrack.capacity);
	add_str(ans, "dataplane", fl_cp_xdp_program(cp) ? "xdp" : "dpdk");
	if (fl_cp_xdp_program(cp))
		return conntrack_xdp(cp, ans, err, errlen);
	a = json_object_new_array();
	for (unsigned w = 0; w < cp->shm.hdr->max_workers; w++) {
		const struct fl_worker_counters *k = fl_shm_worker_counters(&cp->shm, w);
		const struct fl_worker_state *s = &cp->shm.workers[w];
		__u32 active = __atomic_load_n(&s->active, __ATOMIC_RELAXED);
		__u64 hb = __atomic_load_n(&s->heartbeat_ns, __ATOMIC_RELAXED);
		__u64 occ = __atomic_load_n(&k->ct_occupancy, __ATOMIC_RELAXED);
		struct json_object *o;

		if (!active && !hb && !occ)
			continue;	/* never used */
		o = json_object_new_object();
		add_u64(o, "worker", w);
		json_object_object_add(o, "active", json_object_new_boolean(active != 0));
		add_u64(o, "pid", __atomic_load_n(&s->pid, __ATOMIC_RELAXED));
		if (hb && hb <= now)
			add_u64(o, "heartbeat_age_ms", (now - hb) / 1000000ull);
		add_u64(o, "occupancy", occ);
		add_u64(o, "evictions", __atomic_load_n(&k->ct_evictions, __ATOMIC_RELAXED));
		add_u64(o, "expired", __atomic_load_n(&k->ct_expired, __ATOMIC_RELAXED));
		add_u64(o, "new_flows", __atomic_load_n(&k->new_flows, __ATOMIC_RELAXED));
		json_object_array_add(a, o);
	}
	json_object_object_add(ans, "workers", a);
	return 0;
}

static int op_lookup(struct fl_cp *cp, struct json_object *req, struct json_object *ans,
		     char *err, size_t errlen)
{
	const char *src, *dst, *proto;
	struct fl_flow_key k;
	__u8 sfam, dfam;
	__u16 sport, dport;
	__u32 vip_id, id;
	int rc;

	if ((rc = get_str(req, "src", true, &src, err, errlen)) ||
	    (rc = get_str(req, "dst", true, &dst, err, errlen)) ||
	    (rc = get_str(req, "protocol", true, &proto, err, errlen)))
		return rc;
	memset(&k, 0, sizeof(k));
	if (fl_endpoint_parse(src, &k.src, &sfam, &sport) < 0)
		return FAIL("src %.64s: expected ADDR:PORT", src);
	if (fl_endpoint_parse(dst, &k.dst, &dfam, &dport) < 0)
		return FAIL("dst %.64s: expected ADDR:PORT", dst);
	if (sfam != dfam)
		return FAIL("src and dst must be of one family");
	if (fl_proto_parse(proto, &k.proto) < 0)
		return FAIL("protocol: must be tcp or udp");
	k.family = sfam;
	k.sport = htons(sport);
	k.dport = htons(dport);
	/* the data plane's rule on the tables now published */
	const struct fl_tables *t = fl_writer_active(&cp->shm);
	const struct fl_vip *v = fl_vip_find(t, &k.dst, k.family, k.dport, k.proto, &vip_id);
	add_u64(ans, "generation", t->hdr->generation);
	if (!v) {
		add_str(ans, "result", "no-vip");
		return 0;
	}
	add_u64(ans, "vip_id", vip_id);
	id = fl_tables_pick(t, v, fl_flow_hash(&k, t->hdr->hash_seed));
	if (id == FL_BACKEND_NONE || id >= t->max_backends) {
		add_str(ans, "result", "no-backend");
		return 0;
	}
	const struct fl_backend *b = &t->backends[id];
	char addr[FL_ADDR_STRLEN];
	add_str(ans, "result", "backend");
	add_u64(ans, "backend_id", id);
	add_str(ans, "address", fl_addr_format(&b->key.addr, b->key.family, addr, sizeof(addr)));
	add_u64(ans, "port", b->key.port ? ntohs(b->key.port) : dport);
	add_u64(ans, "epoch", b->epoch);
	return 0;
}

static int op_reload(struct fl_cp *cp, struct json_object *req, struct json_object *ans,
		     char *err, size_t errlen)
{
	(void)req, (void)ans;
	fl_log(FL_LOG_INFO, "control socket: reloading %s", cp->config_path);
	return fl_cp_reload(cp, err, errlen);
}

static const char *const k_none[] = { NULL };
static const char *const k_vip[] = { "vip", NULL };
static const char *const k_vip_add[] = { "address", "port", "protocol", "method", "name",
					 "table_size", "healthcheck", "backends", NULL };
static const char *const k_backend[] = { "vip", "address", NULL };
static const char *const k_backend_add[] = { "vip", "address", "weight", "mac", NULL };
static const char *const k_weight[] = { "vip", "address", "weight", NULL };
static const char *const k_lookup[] = { "src", "dst", "protocol", NULL };

static const struct op ops[] = {
	{ "version", op_version, k_none },
	{ "vip.list", op_vip_list, k_none },
	{ "vip.show", op_vip_show, k_vip },
	{ "vip.add", op_vip_add, k_vip_add },
	{ "vip.remove", op_vip_remove, k_vip },
	{ "backend.add", op_backend_add, k_backend_add },
	{ "backend.remove", op_backend_remove, k_backend },
	{ "backend.weight", op_backend_weight, k_weight },
	{ "backend.drain", op_backend_drain, k_backend },
	{ "backend.undrain", op_backend_undrain, k_backend },
	{ "health", op_health, k_none },
	{ "stats", op_stats, k_none },
	{ "conntrack", op_conntrack, k_none },
	{ "lookup", op_lookup, k_lookup },
	{ "reload", op_reload, k_none },
	{ NULL, NULL, NULL },
};

/* A misspelt member is an error, not silently ignored. */
static int check_keys(const struct op *op, struct json_object *req, char *err, size_t errlen)
{
	json_object_object_foreach(req, key, val) {
		bool known = strcmp(key, "op") == 0;
		(void)val;
		for (const char *const *k = op->keys; !known && *k; k++)
			known = strcmp(*k, key) == 0;
		if (!known)
			return FAIL("%s takes no \"%.64s\"", op->name, key);
	}
	return 0;
}

static char *error_answer(const char *msg)
{
	struct json_object *a = json_object_new_object();
	char *s;

	json_object_object_add(a, "ok", json_object_new_boolean(0));
	add_str(a, "error", msg);
	s = strdup(json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN));
	json_object_put(a);
	return s;
}

static bool only_space(const char *p, size_t n)
{
	while (n && (*p == ' ' || *p == '\t' || *p == '\r'))
		p++, n--;
	return n == 0;
}

char *fl_ctl_handle(struct fl_cp *cp, const char *line, size_t len)
{
	struct json_tokener *tok;
	struct json_object *req, *ans;
	const struct op *op = NULL;
	char err[FL_CONFIG_ERR_LEN] = "";
	const char *name;
	char *s;
	int rc;

	if (len > FL_CTL_MAX_LINE)
		return error_answer("request line longer than 65536 bytes");
	tok = json_tokener_new_ex(JSON_MAX_DEPTH);
	if (!tok)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	req = json_tokener_parse_ex(tok, line, (int)len);
	if (!req || json_tokener_get_error(tok) != json_tokener_success ||
	    !only_space(line + json_tokener_get_parse_end(tok), len - json_tokener_get_parse_end(tok))) {
		snprintf(err, sizeof(err), "malformed JSON: %s",
			 req ? "text after the request" :
			 json_tokener_get_error(tok) == json_tokener_continue ? "incomplete" :
			 json_tokener_error_desc(json_tokener_get_error(tok)));
		json_object_put(req);
		json_tokener_free(tok);
		return error_answer(err);
	}
	json_tokener_free(tok);
	if (!json_object_is_type(req, json_type_object)) {
		json_object_put(req);
		return error_answer("a request must be a JSON object");
	}
	rc = get_str(req, "op", true, &name, err, sizeof(err));
	for (const struct op *o = ops; rc == 0 && o->name; o++)
		if (strcmp(o->name, name) == 0)
			op = o;
	if (rc == 0 && !op) {
		snprintf(err, sizeof(err), "unknown op \"%.64s\"", name);
		rc = -EINVAL;
	}
	if (rc == 0)
		rc = check_keys(op, req, err, sizeof(err));
	ans = json_object_new_object();
	json_object_object_add(ans, "ok", json_object_new_boolean(1));
	if (rc == 0)
		rc = op->fn(cp, req, ans, err, sizeof(err));
	json_object_put(req);
	if (rc < 0) {
		json_object_put(ans);
		return error_answer(err[0] ? err : strerror(-rc));
	}
	s = strdup(json_object_to_json_string_ext(ans, JSON_C_TO_STRING_PLAIN));
	json_object_put(ans);
	return s;
}
