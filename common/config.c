// SPDX-License-Identifier: BSD-3-Clause
/*
 * The configuration model (config.h).
 *
 * Each group of the file has a table of the keys it may hold: type, range,
 * and where the value goes. One generic walk reads a group through its table,
 * so every value is typed and range-checked, and a name that is not in the
 * table (a typo) is an error. Lists, and values that need more than one
 * key, are read by the group's own code.
 *
 * Checks over several values (the rules: prime table sizes, address families,
 * duplicates, ...) run on the loaded structs and report through a `where`,
 * which is a setting of the file or a path inside an in-memory VIP. The file
 * loader and fl_config_check_vip call the same rule functions, so the file
 * and the control socket reject the same VIPs with the same words.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <libconfig.h>

#include "addr.h"
#include "config.h"
#include "maglev.h"

/* The defaults, as documented in config/fulcrum.conf. */
#define DEFAULT_CONTROL_SOCKET "/run/fulcrum/control.sock"
#define DEFAULT_SHM_NAME "fulcrum"
/* Every instance of a fleet must hash alike, so the default is fixed. */
#define DEFAULT_HASH_SEED 0x66756c6372756d31ULL	/* "fulcrum1" */
#define DEFAULT_WEIGHT 100

/* Where the DPDK lcore ids end (RTE_MAX_LCORE can be built up to 1024). */
#define MAX_LCORE 1023
#define MAX_QUEUES 1024

/* ---- names ---- */

struct name_val {
	const char *name;
	int value;
};

static const struct name_val method_names[] = {
	{ "ipip", FL_METHOD_IPIP },
	{ "ip6ip6", FL_METHOD_IP6IP6 },
	{ "gue", FL_METHOD_GUE },
	{ "l2dsr", FL_METHOD_L2DSR },
	{ NULL, 0 },
};

static const struct name_val proto_names[] = {
	{ "tcp", IPPROTO_TCP },
	{ "udp", IPPROTO_UDP },
	{ NULL, 0 },
};

static const struct name_val hc_type_names[] = {
	{ "none", FL_HC_NONE },
	{ "tcp", FL_HC_TCP },
	{ "tcp-half-open", FL_HC_TCP_HALF_OPEN },
	{ "http", FL_HC_HTTP },
	{ "https", FL_HC_HTTPS },
	{ NULL, 0 },
};

static const struct name_val log_level_names[] = {
	{ "error", FL_LOG_ERROR },
	{ "warn", FL_LOG_WARN },
	{ "info", FL_LOG_INFO },
	{ "debug", FL_LOG_DEBUG },
	{ NULL, 0 },
};

static const struct name_val mode_names[] = {
	{ "dpdk", FL_DP_DPDK },
	{ "xdp", FL_DP_XDP },
	{ NULL, 0 },
};

static const struct name_val *name_find(const struct name_val *t, const char *name)
{
	for (; t->name; t++)
		if (strcmp(t->name, name) == 0)
			return t;
	return NULL;
}

static const char *name_of(const struct name_val *t, int value)
{
	for (; t->name; t++)
		if (t->value == value)
			return t->name;
	return NULL;
}

int fl_method_parse(const char *text, enum fl_method *out)
{
	const struct name_val *n = name_find(method_names, text);

	if (!n)
		return -EINVAL;
	*out = (enum fl_method)n->value;
	return 0;
}

const char *fl_method_name(enum fl_method m)
{
	const char *n = name_of(method_names, (int)m);

	return n ? n : m == FL_METHOD_NONE ? "none" : "unknown";
}

int fl_proto_parse(const char *text, __u8 *out)
{
	const struct name_val *n = name_find(proto_names, text);

	if (!n)
		return -EINVAL;
	*out = (__u8)n->value;
	return 0;
}

const char *fl_proto_name(__u8 proto)
{
	const char *n = name_of(proto_names, proto);

	return n ? n : "unknown";
}

int fl_hc_type_parse(const char *text, enum fl_hc_type *out)
{
	const struct name_val *n = name_find(hc_type_names, text);

	if (!n)
		return -EINVAL;
	*out = (enum fl_hc_type)n->value;
	return 0;
}

const char *fl_hc_type_name(enum fl_hc_type t)
{
	const char *n = name_of(hc_type_names, (int)t);

	return n ? n : "unknown";
}

const char *fl_log_level_name(enum fl_log_level l)
{
	const char *n = name_of(log_level_names, (int)l);

	return n ? n : "unknown";
}

/* ---- where errors are reported ---- */

/* A place to report an error: a setting of the file (s), or, for a VIP that
 * comes from the control socket, a path inside it ("backends.[2]"). */
struct where {
	const config_setting_t *s;	/* NULL: in memory */
	const char *path;		/* in memory: "" is the VIP itself */
	const char *name;		/* the file, when a setting knows none */
	char *err;
	size_t errlen;
};

static struct where at(const struct where *w, const config_setting_t *s)
{
	struct where r = *w;

	r.s = s;
	return r;
}

static struct where at_path(const struct where *w, const char *path)
{
	struct where r = *w;

	r.path = path;
	return r;
}

/* "vips.[1].backends.[0]": names of group members, indices of elements. */
static size_t setting_path(const config_setting_t *s, char *buf, size_t len)
{
	const config_setting_t *parent = config_setting_parent(s);
	const char *dot;
	size_t n;
	int w;

	buf[0] = '\0';
	if (!parent)
		return 0;
	n = setting_path(parent, buf, len);
	if (n + 1 >= len)
		return n;
	dot = n ? "." : "";
	if (config_setting_name(s))
		w = snprintf(buf + n, len - n, "%s%s", dot, config_setting_name(s));
	else
		w = snprintf(buf + n, len - n, "%s[%d]", dot, config_setting_index(s));
	return w < 0 ? n : n + (size_t)w;
}

static const char *file_of(const config_setting_t *s, const char *name)
{
	const char *file = config_setting_source_file(s);

	return file ? basename(file) : name;
}

/*
 * Writes "FILE:LINE: PATH: message" for key of the group at w (or w itself
 * when key is NULL) and returns -EINVAL. A key the group does not name (its
 * value is a default or inherited) is reported at the group's line.
 */
__attribute__((format(printf, 3, 4)))
static int fail(const struct where *w, const char *key, const char *fmt, ...)
{
	char msg[FL_CONFIG_ERR_LEN], path[FL_CONFIG_ERR_LEN];
	const config_setting_t *s = w->s;
	unsigned line;
	size_t n;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!s) {
		snprintf(path, sizeof(path), "%s%s%s", w->path, *w->path && key ? "." : "",
			 key ? key : "");
		snprintf(w->err, w->errlen, "%s%s%s", path, *path ? ": " : "", msg);
		return -EINVAL;
	}
	if (key && config_setting_get_member(s, key)) {
		s = config_setting_get_member(s, key);
		key = NULL;
	}
	n = setting_path(s, path, sizeof(path));
	if (key && n + 1 < sizeof(path))
		snprintf(path + n, sizeof(path) - n, "%s%s", n ? "." : "", key);
	/* The root has no line of its own; its errors are about the file. */
	line = config_setting_source_line(s);
	snprintf(w->err, w->errlen, "%s:%u: %s: %s", file_of(s, w->name), line ? line : 1,
		 path, msg);
	return -EINVAL;
}

static int nomem(const struct where *w)
{
	fail(w, NULL, "out of memory");
	return -ENOMEM;
}

/* ---- key tables ---- */

enum kind {
	K_UINT,		/* integer in min..max, stored in size bytes */
	K_BE16,		/* the same, stored in network order */
	K_U64,		/* any 64-bit value */
	K_BOOL,
	K_STR,		/* fits size bytes with its NUL; at least min bytes */
	K_ENUM,		/* one of names, stored in size bytes */
	K_MODE,		/* octal permissions as a string, "0660" */
	K_ADDR,		/* IP address; of family min unless 0 */
	K_MAC,
	K_LISTEN,	/* "address:port" */
	K_GROUP,	/* { ... }, read by its owner */
	K_LIST,		/* ( { ... }, ... ), read by its owner */
	K_ARRAY,	/* [ scalars ] or ( scalars ), read by its owner */
};

struct key {
	const char *name;
	enum kind kind;
	bool required;
	size_t off;
	size_t size;
	size_t has;	/* offset + 1 of a bool set when the key is present */
	size_t fam;	/* K_ADDR: offset + 1 of the family byte */
	long long min, max;
	const struct name_val *names;
};

#define KEY(n, k) .name = (n), .kind = (k)
#define FLD(st, f) .off = offsetof(st, f), .size = sizeof(((st *)0)->f)
#define HAS(st, f) .has = offsetof(st, f) + 1
#define FAM(st, f) .fam = offsetof(st, f) + 1
#define RANGE(lo, hi) .min = (lo), .max = (hi)
#define REQUIRED .required = true

#define G(f) FLD(struct fl_global_config, f)
static const struct key global_keys[] = {
	{ KEY("control_socket", K_STR), G(control_socket), .min = 1 },
	{ KEY("control_socket_mode", K_MODE), G(control_socket_mode) },
	{ KEY("shm_name", K_STR), G(shm_name), .min = 1 },
	{ KEY("hash_seed", K_U64), G(hash_seed) },
	{ KEY("log_level", K_ENUM), G(log_level), .names = log_level_names },
	{ KEY("metrics_listen", K_LISTEN), G(metrics_listen) },
	{ .name = NULL },
};

#define L(f) FLD(struct fl_limits_config, f), RANGE(1, UINT32_MAX)
static const struct key limits_keys[] = {
	{ KEY("max_vips", K_UINT), L(max_vips) },
	{ KEY("max_backends", K_UINT), L(max_backends) },
	{ KEY("ring_entries", K_UINT), L(ring_entries) },
	{ KEY("max_workers", K_UINT), L(max_workers) },
	{ .name = NULL },
};

#define D(f) FLD(struct fl_dataplane_config, f)
#define DS struct fl_dataplane_config
static const struct key dataplane_keys[] = {
	{ KEY("mode", K_ENUM), D(mode), REQUIRED, .names = mode_names },
	{ KEY("dpdk", K_GROUP) },
	{ KEY("xdp", K_GROUP) },
	{ KEY("next_hop", K_GROUP) },
	{ KEY("neighbour_interface", K_STR), D(neighbour_interface), .min = 1 },
	{ KEY("tunnel_source_v4", K_ADDR), D(tunnel_source_v4), HAS(DS, has_tunnel_source_v4),
	  .min = FL_AF_INET },
	{ KEY("tunnel_source_v6", K_ADDR), D(tunnel_source_v6), HAS(DS, has_tunnel_source_v6),
	  .min = FL_AF_INET6 },
	{ KEY("gue_port", K_UINT), D(gue_port), RANGE(1, 65535) },
	/* 576: the least every IPv4 host must take; 9216: common jumbo size */
	{ KEY("mtu", K_UINT), D(mtu), RANGE(576, 9216) },
	{ KEY("conntrack", K_GROUP) },
	{ .name = NULL },
};

static const struct key dpdk_keys[] = {
	{ KEY("eal_args", K_ARRAY) },
	{ KEY("ports", K_LIST) },
	{ KEY("workers", K_ARRAY) },
	{ KEY("idle_backoff_us", K_UINT), D(idle_backoff_us), RANGE(0, 1000000) },
	{ .name = NULL },
};

static const struct key xdp_keys[] = {
	{ KEY("interfaces", K_ARRAY) },
	{ KEY("generic", K_BOOL), D(xdp_generic) },
	{ KEY("detach_on_exit", K_BOOL), D(xdp_detach_on_exit) },
	{ KEY("fib_lookup", K_BOOL), D(xdp_fib_lookup) },
	{ .name = NULL },
};

static const struct key next_hop_keys[] = {
	{ KEY("mac", K_MAC), D(next_hop_mac), HAS(DS, has_next_hop_mac) },
	{ KEY("address", K_ADDR), D(next_hop_address), HAS(DS, has_next_hop_address),
	  FAM(DS, next_hop_family) },
	{ .name = NULL },
};

#define CT(f) FLD(struct fl_conntrack_config, f)
static const struct key conntrack_keys[] = {
	{ KEY("capacity", K_UINT), CT(capacity), RANGE(1, UINT32_MAX) },
	{ KEY("tcp_timeout", K_UINT), CT(tcp_timeout_s), RANGE(1, UINT32_MAX) },
	{ KEY("tcp_closing_timeout", K_UINT), CT(tcp_closing_timeout_s), RANGE(1, UINT32_MAX) },
	{ KEY("syn_timeout", K_UINT), CT(syn_timeout_s), RANGE(1, UINT32_MAX) },
	{ KEY("udp_timeout", K_UINT), CT(udp_timeout_s), RANGE(1, UINT32_MAX) },
	{ KEY("new_flow_rate", K_UINT), CT(new_flow_rate), RANGE(0, UINT32_MAX) },
	{ .name = NULL },
};

#define P(f) FLD(struct fl_port_config, f)
static const struct key port_keys[] = {
	{ KEY("name", K_STR), P(name), .min = 1 },
	{ KEY("device", K_STR), P(device), REQUIRED, .min = 1 },
	{ KEY("queues", K_UINT), P(queues), RANGE(1, MAX_QUEUES) },
	{ .name = NULL },
};

#define HC(f) FLD(struct fl_hc_config, f)
#define HCS struct fl_hc_config
#define MAX_HC_MS 3600000
static const struct key hc_keys[] = {
	{ KEY("type", K_ENUM), HC(type), .names = hc_type_names },
	{ KEY("interval_ms", K_UINT), HC(interval_ms), RANGE(10, MAX_HC_MS) },
	{ KEY("timeout_ms", K_UINT), HC(timeout_ms), RANGE(1, MAX_HC_MS) },
	{ KEY("rise", K_UINT), HC(rise), RANGE(1, UINT32_MAX) },
	{ KEY("fall", K_UINT), HC(fall), RANGE(1, UINT32_MAX) },
	{ KEY("port", K_UINT), HC(port), RANGE(0, 65535) },
	{ KEY("address", K_ADDR), HC(address), HAS(HCS, has_address), FAM(HCS, address_family) },
	{ KEY("http_path", K_STR), HC(http_path) },
	{ KEY("http_host", K_STR), HC(http_host) },
	{ KEY("expect_status", K_ARRAY) },
	{ KEY("expect_body", K_STR), HC(expect_body) },
	{ KEY("tls_verify", K_BOOL), HC(tls_verify) },
	{ .name = NULL },
};

/* One element of expect_status. */
static const struct key status_key = { KEY("expect_status", K_UINT), .size = sizeof(__u16),
				       RANGE(100, 599) };

#define V(f) FLD(struct fl_vip_config, f)
#define VS struct fl_vip_config
static const struct key vip_keys[] = {
	{ KEY("name", K_STR), V(name) },
	{ KEY("address", K_ADDR), V(addr), REQUIRED, FAM(VS, family) },
	{ KEY("port", K_UINT), V(port), REQUIRED, RANGE(1, 65535) },
	{ KEY("protocol", K_ENUM), V(proto), REQUIRED, .names = proto_names },
	{ KEY("method", K_ENUM), V(method), REQUIRED, .names = method_names },
	{ KEY("table_size", K_UINT), V(table_size), RANGE(2, FL_MAGLEV_MAX_M) },
	{ KEY("healthcheck", K_GROUP) },
	{ KEY("backends", K_LIST) },
	{ .name = NULL },
};

#define B(f) FLD(struct fl_backend_config, f)
#define BS struct fl_backend_config
static const struct key backend_keys[] = {
	{ KEY("address", K_ADDR), B(key.addr), REQUIRED, FAM(BS, key.family) },
	{ KEY("port", K_BE16), B(key.port), RANGE(0, 65535) },
	{ KEY("weight", K_UINT), B(weight), RANGE(0, FL_MAGLEV_MAX_WEIGHT) },
	{ KEY("mac", K_MAC), B(mac), HAS(BS, has_mac) },
	{ KEY("healthcheck", K_GROUP) },
	{ .name = NULL },
};

static const struct key root_keys[] = {
	{ KEY("global", K_GROUP) },
	{ KEY("limits", K_GROUP) },
	{ KEY("dataplane", K_GROUP), REQUIRED },
	{ KEY("healthcheck", K_GROUP) },
	{ KEY("vips", K_LIST) },
	{ .name = NULL },
};

/* The worker lcore ids of dataplane.dpdk.workers. */
static const struct key lcore_key = { KEY("workers", K_UINT), .size = sizeof(unsigned),
				      RANGE(0, MAX_LCORE) };

/* ---- values ---- */

static void store_uint(void *p, size_t size, unsigned long long v)
{
	switch (size) {
	case 1: *(__u8 *)p = (__u8)v; break;
	case 2: *(__u16 *)p = (__u16)v; break;
	case 4: *(__u32 *)p = (__u32)v; break;
	default: *(__u64 *)p = v; break;
	}
}

static unsigned long long load_uint(const void *p, size_t size)
{
	switch (size) {
	case 1: return *(const __u8 *)p;
	case 2: return *(const __u16 *)p;
	case 4: return *(const __u32 *)p;
	default: return *(const __u64 *)p;
	}
}

static int bad_range(const struct where *w, const char *key, const struct key *k)
{
	if (k->max == UINT32_MAX)
		return fail(w, key, "must be at least %lld", k->min);
	return fail(w, key, "must be %lld..%lld", k->min, k->max);
}

static int bad_name(const struct where *w, const char *key, const struct name_val *t)
{
	char list[FL_TEXT_LEN] = "";
	size_t n = 0;

	for (; t->name && n < sizeof(list); t++)
		n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s", n ? ", " : "", t->name);
	return fail(w, key, "must be one of %s", list);
}

static int bad_unknown(const struct where *w, const struct key *keys)
{
	char list[FL_CONFIG_ERR_LEN / 2] = "";
	size_t n = 0;

	for (; keys->name && n < sizeof(list); keys++)
		n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s", n ? ", " : "",
				      keys->name);
	return fail(w, NULL, "unknown setting; expected one of %s", list);
}

static int get_int(const struct where *w, long long *v)
{
	int t = config_setting_type(w->s);

	*v = 0;	/* on every path: gcc cannot tell that fail() never returns 0 */
	if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
		return fail(w, NULL, "must be an integer");
	*v = config_setting_get_int64(w->s);
	return 0;
}

static int get_string(const struct where *w, const char **v)
{
	*v = "";
	if (config_setting_type(w->s) != CONFIG_TYPE_STRING)
		return fail(w, NULL, "must be a string");
	*v = config_setting_get_string(w->s);
	return 0;
}

static int read_uint(const struct where *w, const struct key *k, void *p)
{
	long long v;
	int rc = get_int(w, &v);

	if (rc)
		return rc;
	if (v < k->min || v > k->max)
		return bad_range(w, NULL, k);
	store_uint(p, k->size, k->kind == K_BE16 ? htons((__u16)v) : (unsigned long long)v);
	return 0;
}

static int read_str(const struct where *w, const struct key *k, char *p)
{
	const char *v;
	int rc = get_string(w, &v);

	if (rc)
		return rc;
	if (strlen(v) >= k->size)
		return fail(w, NULL, "must be shorter than %zu bytes", k->size);
	if (strlen(v) < (size_t)k->min)
		return fail(w, NULL, "must not be empty");
	memcpy(p, v, strlen(v) + 1);
	return 0;
}

static int read_enum(const struct where *w, const struct key *k, void *p)
{
	const struct name_val *n;
	const char *v;
	int rc = get_string(w, &v);

	if (rc)
		return rc;
	n = name_find(k->names, v);
	if (!n)
		return bad_name(w, NULL, k->names);
	store_uint(p, k->size, (unsigned long long)n->value);
	return 0;
}

/* libconfig has no octal literals (0660 would read as decimal), so the
 * mode is a string. */
static int read_mode(const struct where *w, __u32 *p)
{
	const char *v;
	char *end;
	unsigned long mode;

	if (config_setting_type(w->s) != CONFIG_TYPE_STRING)
		return fail(w, NULL, "must be an octal string such as \"0660\"");
	v = config_setting_get_string(w->s);
	errno = 0;
	mode = strtoul(v, &end, 8);
	if (!isdigit((unsigned char)v[0]) || *end || errno || mode > 0777)
		return fail(w, NULL, "must be an octal string from \"0\" to \"0777\"");
	*p = (__u32)mode;
	return 0;
}

static int read_addr(const struct where *w, const struct key *k, void *base)
{
	union fl_addr addr;
	const char *v;
	__u8 family;
	int rc = get_string(w, &v);

	if (rc)
		return rc;
	if (fl_addr_parse(v, &addr, &family))
		return fail(w, NULL, "\"%s\" is not an IP address", v);
	if (k->min && family != k->min)
		return fail(w, NULL, "must be an IPv%lld address", k->min);
	memcpy((char *)base + k->off, &addr, sizeof(addr));
	if (k->fam)
		*((__u8 *)base + k->fam - 1) = family;
	return 0;
}

static int read_mac(const struct where *w, __u8 *p)
{
	const char *v;
	int rc = get_string(w, &v);

	if (rc)
		return rc;
	if (fl_mac_parse(v, p))
		return fail(w, NULL, "\"%s\" is not a MAC address like 02:00:00:00:00:01", v);
	return 0;
}

/* "192.0.2.1:9100" or "[2001:db8::1]:9100". */
static int parse_listen(const char *text)
{
	char host[FL_ADDR_STRLEN + 2];
	const char *colon = strrchr(text, ':');
	size_t hlen = colon ? (size_t)(colon - text) : 0;
	unsigned long port;
	union fl_addr addr;
	__u8 family;
	char *end;
	bool v6;

	if (!colon || hlen < 2 || hlen >= sizeof(host) || !isdigit((unsigned char)colon[1]))
		return -EINVAL;
	port = strtoul(colon + 1, &end, 10);
	if (*end || port < 1 || port > 65535)
		return -EINVAL;
	v6 = text[0] == '[' && text[hlen - 1] == ']';
	memcpy(host, text + v6, hlen - 2 * v6);
	host[hlen - 2 * v6] = '\0';
	if (fl_addr_parse(host, &addr, &family))
		return -EINVAL;
	return (family == FL_AF_INET6) == v6 ? 0 : -EINVAL;
}

static int read_listen(const struct where *w, const struct key *k, char *p)
{
	int rc = read_str(w, k, p);

	if (rc == 0 && parse_listen(p))
		rc = fail(w, NULL, "must be \"address:port\", e.g. \"127.0.0.1:9100\" or \"[::1]:9100\"");
	return rc;
}

static int want_type(const struct where *w, int type, int type2, const char *what)
{
	int t = config_setting_type(w->s);

	return t == type || t == type2 ? 0 : fail(w, NULL, "must be %s", what);
}

static int read_value(const struct where *w, const struct key *k, void *base)
{
	char *p = (char *)base + k->off;

	switch (k->kind) {
	case K_UINT:
	case K_BE16:
		return read_uint(w, k, p);
	case K_U64:
		return get_int(w, (long long *)p);
	case K_BOOL:
		if (config_setting_type(w->s) != CONFIG_TYPE_BOOL)
			return fail(w, NULL, "must be true or false");
		*(bool *)p = config_setting_get_bool(w->s);
		return 0;
	case K_STR:
		return read_str(w, k, p);
	case K_ENUM:
		return read_enum(w, k, p);
	case K_MODE:
		return read_mode(w, (__u32 *)p);
	case K_ADDR:
		return read_addr(w, k, base);
	case K_MAC:
		return read_mac(w, (__u8 *)p);
	case K_LISTEN:
		return read_listen(w, k, p);
	case K_GROUP:
		return want_type(w, CONFIG_TYPE_GROUP, CONFIG_TYPE_GROUP, "a group { ... }");
	case K_LIST:
		return want_type(w, CONFIG_TYPE_LIST, CONFIG_TYPE_LIST, "a list ( { ... }, ... )");
	case K_ARRAY:
		break;
	}
	/* Scalars in ( ) are as good as in [ ]; each element is checked later. */
	return want_type(w, CONFIG_TYPE_ARRAY, CONFIG_TYPE_LIST, "an array [ ... ]");
}

/*
 * Reads the group at w through its key table into base: every member must
 * be in the table and of the right type and range; every required key must
 * be present. Members of kind K_GROUP, K_LIST and K_ARRAY are only
 * type-checked: the caller reads them.
 */
static int read_group(const struct where *w, const struct key *keys, void *base)
{
	const config_setting_t *g = w->s;
	const struct key *k;
	int rc;

	for (int i = 0; i < config_setting_length(g); i++) {
		struct where m = at(w, config_setting_get_elem(g, (unsigned)i));

		for (k = keys; k->name; k++)
			if (strcmp(k->name, config_setting_name(m.s)) == 0)
				break;
		if (!k->name)
			return bad_unknown(&m, keys);
		rc = read_value(&m, k, base);
		if (rc)
			return rc;
		if (k->has)
			*((bool *)((char *)base + k->has - 1)) = true;
	}
	for (k = keys; k->name; k++)
		if (k->required && !config_setting_get_member(g, k->name))
			return fail(w, k->name, "is required");
	return 0;
}

/* Reads member `name` of the group at w, when present, into base. */
static int read_member(const struct where *w, const char *name, const struct key *keys,
		       void *base)
{
	const config_setting_t *s = config_setting_get_member(w->s, name);
	struct where m = at(w, s);

	return s ? read_group(&m, keys, base) : 0;
}

/* The element i of the list at w, which must be a group. */
static int list_group(const struct where *w, unsigned i, struct where *out)
{
	*out = at(w, config_setting_get_elem(w->s, i));
	return want_type(out, CONFIG_TYPE_GROUP, CONFIG_TYPE_GROUP, "a group { ... }");
}

/* Element i of the list or array `key` of the group at w (of w itself
 * when key is NULL). */
static struct where elem_at(const struct where *w, const char *key, size_t i)
{
	const config_setting_t *s = key ? config_setting_get_member(w->s, key) : w->s;

	return at(w, config_setting_get_elem(s, (unsigned)i));
}

/* The integers of the array at w, each checked against elem, into dst. */
static int read_ints(const struct where *w, const struct key *elem, void *dst)
{
	for (int i = 0; i < config_setting_length(w->s); i++) {
		struct where e = at(w, config_setting_get_elem(w->s, (unsigned)i));
		int rc = read_uint(&e, elem, (char *)dst + (size_t)i * elem->size);

		if (rc)
			return rc;
	}
	return 0;
}

/* The strings of array `name` of the group at w, each fitting elem, copied. */
static int read_strings(const struct where *w, const char *name, const struct key *elem,
			char ***out, unsigned *n)
{
	const config_setting_t *s = config_setting_get_member(w->s, name);
	struct where a = at(w, s);
	char buf[FL_TEXT_LEN];

	if (!s || config_setting_length(s) == 0)
		return 0;
	*out = calloc((size_t)config_setting_length(s), sizeof(**out));
	if (!*out)
		return nomem(&a);
	*n = (unsigned)config_setting_length(s);
	for (unsigned i = 0; i < *n; i++) {
		struct where e = at(&a, config_setting_get_elem(s, i));
		int rc = read_str(&e, elem, buf);

		if (rc)
			return rc;
		(*out)[i] = strdup(buf);
		if (!(*out)[i])
			return nomem(&e);
	}
	return 0;
}

/* ---- duplicates ---- */

struct dup_ctx {
	const char *base;
	size_t size;
	int (*cmp)(const void *a, const void *b, const void *arg);
	const void *arg;
};

static int dup_order(const void *pa, const void *pb, void *pctx)
{
	const struct dup_ctx *c = pctx;
	size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
	int r = c->cmp(c->base + a * c->size, c->base + b * c->size, c->arg);

	return r ? r : (a > b) - (a < b);
}

/*
 * Finds two equal elements of base[0..n): returns 1 with *first < *second,
 * the pair whose second index is the least (the first repeat in the file),
 * 0 when all differ, -ENOMEM. Sorting keeps a 16384-backend VIP fast.
 */
static int find_dup(const void *base, size_t n, size_t size,
		    int (*cmp)(const void *, const void *, const void *), const void *arg,
		    size_t *first, size_t *second)
{
	struct dup_ctx c = { base, size, cmp, arg };
	size_t *idx = malloc((n ? n : 1) * sizeof(*idx));
	int found = 0;

	*first = *second = 0;
	if (!idx)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	qsort_r(idx, n, sizeof(*idx), dup_order, &c);
	for (size_t i = 1; i < n; i++) {
		if (cmp(c.base + idx[i - 1] * size, c.base + idx[i] * size, arg) != 0)
			continue;
		if (!found || idx[i] < *second) {
			*first = idx[i - 1];
			*second = idx[i];
			found = 1;
		}
	}
	free(idx);
	return found;
}

static int cmp_str(const void *a, const void *b, const void *arg)
{
	(void)arg;
	return strcmp(a, b);
}

static int cmp_strp(const void *a, const void *b, const void *arg)
{
	(void)arg;
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_uint(const void *a, const void *b, const void *arg)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;

	(void)arg;
	return (x > y) - (x < y);
}

/* ---- rules over loaded values, shared with fl_config_check_vip ---- */

static int check_unicast(const struct where *w, const char *key, const union fl_addr *a,
			 __u8 family)
{
	static const union fl_addr zero;
	char text[FL_ADDR_STRLEN];
	__u32 v4 = ntohl(a->v4);
	bool bad;

	if (family == FL_AF_INET)
		bad = v4 == 0 || (v4 >> 28) == 0xe || v4 == 0xffffffffu;
	else
		bad = memcmp(a, &zero, sizeof(zero)) == 0 || a->bytes[0] == 0xff;
	if (bad)
		return fail(w, key, "%s is not a unicast address",
			    fl_addr_format(a, family, text, sizeof(text)));
	return 0;
}

/* One level of the health-check merge, after its keys are applied. */
static int check_hc(const struct where *w, const struct fl_hc_config *hc)
{
	if (hc->timeout_ms >= hc->interval_ms)
		return fail(w, "timeout_ms", "must be less than interval_ms (%u)", hc->interval_ms);
	if (hc->http_path[0] != '/')
		return fail(w, "http_path", "must start with '/'");
	return 0;
}

/* Names appear in metrics labels, JSON and command lines: keep them plain. */
static int check_name(const struct where *w, const char *name)
{
	for (const char *p = name; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("-_.", *p))
			return fail(w, "name", "may hold only letters, digits, '-', '_' and '.'");
	return 0;
}

/* ipip and ip6ip6 fix the VIP's family; no method changes the family on the
 * way to the backend (GUE could, but one family end to end keeps the outer
 * header, the MTU and the tunnel source simple). */
static int check_backend_rules(const struct where *w, const struct fl_vip_config *vip,
			       const struct fl_backend_config *b)
{
	int rc = check_unicast(w, "address", &b->key.addr, b->key.family);

	if (rc)
		return rc;
	if (b->key.family != vip->family)
		return fail(w, "address", "must be IPv%u like the VIP: %s keeps the family",
			    vip->family, fl_method_name(vip->method));
	if (b->has_mac && vip->method != FL_METHOD_L2DSR)
		return fail(w, "mac", "only l2dsr uses a backend MAC");
	return 0;
}

/* Backends are the same when address and port are, port 0 being the VIP's. */
static int cmp_backend(const void *pa, const void *pb, const void *arg)
{
	const struct fl_backend_config *a = pa, *b = pb;
	const struct fl_vip_config *vip = arg;
	__u16 port_a = a->key.port ? ntohs(a->key.port) : vip->port;
	__u16 port_b = b->key.port ? ntohs(b->key.port) : vip->port;
	int r = memcmp(&a->key.addr, &b->key.addr, sizeof(a->key.addr));

	if (r == 0)
		r = (port_a > port_b) - (port_a < port_b);
	return r ? r : (a->key.family > b->key.family) - (a->key.family < b->key.family);
}

/* The where of backend i of the VIP at w. */
static struct where backend_at(const struct where *w, unsigned i, char *buf, size_t len)
{
	if (w->s)
		return at(w, config_setting_get_elem(config_setting_get_member(w->s, "backends"), i));
	snprintf(buf, len, "backends.[%u]", i);
	return at_path(w, buf);
}

static unsigned next_prime(unsigned n)
{
	while (!fl_is_prime(n))
		n++;
	return n;
}

static int check_vip_rules(const struct where *w, const struct fl_vip_config *vip)
{
	char path[32];
	size_t a, b;
	int rc = check_name(w, vip->name);

	if (rc == 0)
		rc = check_unicast(w, "address", &vip->addr, vip->family);
	if (rc)
		return rc;
	if (!fl_is_prime(vip->table_size))
		return fail(w, "table_size", "must be prime; the next prime is %u",
			    next_prime(vip->table_size));
	if ((vip->method == FL_METHOD_IPIP && vip->family != FL_AF_INET) ||
	    (vip->method == FL_METHOD_IP6IP6 && vip->family != FL_AF_INET6))
		return fail(w, "method", "%s needs an IPv%d VIP address",
			    fl_method_name(vip->method), vip->method == FL_METHOD_IPIP ? 4 : 6);
	for (unsigned i = 0; i < vip->n_backends; i++) {
		struct where bw = backend_at(w, i, path, sizeof(path));

		rc = check_backend_rules(&bw, vip, &vip->backends[i]);
		if (rc)
			return rc;
	}
	rc = find_dup(vip->backends, vip->n_backends, sizeof(*vip->backends), cmp_backend, vip,
		      &a, &b);
	if (rc < 0)
		return nomem(w);
	if (rc) {
		struct where bw = backend_at(w, (unsigned)b, path, sizeof(path));

		return fail(&bw, NULL, "same address and port as backends.[%zu]", a);
	}
	return 0;
}

/* ---- in-memory values: what the file reader's types and ranges ensure ---- */

/* The kinds that VIPs, backends and health checks hold; the others have
 * no invalid in-memory value. */
static int check_field(const struct where *w, const struct key *k, const void *base)
{
	const char *p = (const char *)base + k->off;
	unsigned long long v;

	switch (k->kind) {
	case K_UINT:
	case K_BE16:
		v = load_uint(p, k->size);
		if (k->kind == K_BE16)
			v = ntohs((__u16)v);
		return (long long)v < k->min || (long long)v > k->max ? bad_range(w, k->name, k) : 0;
	case K_ENUM:
		return name_of(k->names, (int)load_uint(p, k->size)) ? 0 :
		       bad_name(w, k->name, k->names);
	case K_STR:
		return memchr(p, '\0', k->size) ? 0 :
		       fail(w, k->name, "must be shorter than %zu bytes", k->size);
	case K_ADDR:
		if (!k->fam || (k->has && !*(const bool *)((const char *)base + k->has - 1)))
			return 0;
		v = *((const __u8 *)base + k->fam - 1);
		return v == FL_AF_INET || v == FL_AF_INET6 ? 0 :
		       fail(w, k->name, "family must be %d or %d", FL_AF_INET, FL_AF_INET6);
	default:
		return 0;
	}
}

static int check_fields(const struct where *w, const struct key *keys, const void *base)
{
	for (const struct key *k = keys; k->name; k++) {
		int rc = check_field(w, k, base);

		if (rc)
			return rc;
	}
	return 0;
}

static int check_hc_mem(const struct where *w, const struct fl_hc_config *hc)
{
	int rc = check_fields(w, hc_keys, hc);

	if (rc)
		return rc;
	if (hc->n_expect_status < 1 || hc->n_expect_status > FL_MAX_EXPECT_STATUS)
		return fail(w, "expect_status", "must list 1..%d status codes",
			    FL_MAX_EXPECT_STATUS);
	for (unsigned i = 0; i < hc->n_expect_status; i++)
		if (hc->expect_status[i] < status_key.min || hc->expect_status[i] > status_key.max)
			return bad_range(w, "expect_status", &status_key);
	return check_hc(w, hc);
}

int fl_config_check_vip(const struct fl_vip_config *vip, char *err, size_t errlen)
{
	struct where w = { .path = "", .name = "", .err = err, .errlen = errlen };
	struct where hw = at_path(&w, "healthcheck");
	char path[32], hpath[48];
	int rc = check_fields(&w, vip_keys, vip);

	if (rc == 0)
		rc = check_hc_mem(&hw, &vip->hc);
	if (rc == 0 && vip->n_backends && !vip->backends)
		rc = fail(&w, "backends", "%u backends but no array", vip->n_backends);
	for (unsigned i = 0; rc == 0 && i < vip->n_backends; i++) {
		struct where bw = backend_at(&w, i, path, sizeof(path));

		snprintf(hpath, sizeof(hpath), "%s.healthcheck", path);
		hw = at_path(&w, hpath);
		rc = check_fields(&bw, backend_keys, &vip->backends[i]);
		if (rc == 0)
			rc = check_hc_mem(&hw, &vip->backends[i].hc);
	}
	return rc ? rc : check_vip_rules(&w, vip);
}

/* ---- the file: health checks, VIPs and backends ---- */

static int read_statuses(const struct where *w, struct fl_hc_config *hc)
{
	const config_setting_t *s = config_setting_get_member(w->s, "expect_status");
	struct where a = at(w, s);

	if (!s)
		return 0;
	if (config_setting_length(s) < 1 || config_setting_length(s) > FL_MAX_EXPECT_STATUS)
		return fail(&a, NULL, "must list 1..%d status codes", FL_MAX_EXPECT_STATUS);
	hc->n_expect_status = (unsigned)config_setting_length(s);
	return read_ints(&a, &status_key, hc->expect_status);
}

/* One level of the merge: hc holds the level above, and the `healthcheck`
 * group of w, when there is one, overrides the keys it names. */
static int read_hc(const struct where *w, struct fl_hc_config *hc)
{
	const config_setting_t *g = config_setting_get_member(w->s, "healthcheck");
	struct where hw = at(w, g);
	int rc;

	if (!g)
		return 0;
	rc = read_group(&hw, hc_keys, hc);
	if (rc == 0)
		rc = read_statuses(&hw, hc);
	return rc ? rc : check_hc(&hw, hc);
}

static int read_backends(const struct where *w, struct fl_vip_config *vip)
{
	const config_setting_t *list = config_setting_get_member(w->s, "backends");
	struct where lw = at(w, list);
	unsigned n = list ? (unsigned)config_setting_length(list) : 0;
	int rc;

	if (n == 0)
		return 0;
	vip->backends = calloc(n, sizeof(*vip->backends));
	if (!vip->backends)
		return nomem(&lw);
	vip->n_backends = n;
	for (unsigned i = 0; i < n; i++) {
		struct fl_backend_config *b = &vip->backends[i];
		struct where bw;

		rc = list_group(&lw, i, &bw);
		if (rc)
			return rc;
		b->weight = DEFAULT_WEIGHT;
		b->hc = vip->hc;
		b->line = config_setting_source_line(bw.s);
		rc = read_group(&bw, backend_keys, b);
		if (rc == 0)
			rc = read_hc(&bw, &b->hc);
		if (rc)
			return rc;
	}
	return 0;
}

static int read_vip(const struct where *w, const struct fl_config *cfg,
		    struct fl_vip_config *vip)
{
	int rc;

	vip->table_size = FL_MAGLEV_DEFAULT_M;
	vip->hc = cfg->healthcheck;
	vip->line = config_setting_source_line(w->s);
	rc = read_group(w, vip_keys, vip);
	if (rc == 0)
		rc = read_hc(w, &vip->hc);
	if (rc == 0)
		rc = read_backends(w, vip);
	return rc ? rc : check_vip_rules(w, vip);
}

/* What a VIP needs from the rest of the file: a tunnel source for its outer
 * header, and room in the limits, counted over the VIPs so far. */
static int check_vip_needs(const struct where *w, const struct fl_config *cfg,
			   const struct fl_vip_config *vip, unsigned long long *backends,
			   unsigned long long *entries)
{
	const struct fl_dataplane_config *dp = &cfg->dataplane;
	bool tunnel = vip->method != FL_METHOD_L2DSR;

	if (tunnel && vip->family == FL_AF_INET && !dp->has_tunnel_source_v4)
		return fail(w, "method", "%s needs dataplane.tunnel_source_v4",
			    fl_method_name(vip->method));
	if (tunnel && vip->family == FL_AF_INET6 && !dp->has_tunnel_source_v6)
		return fail(w, "method", "%s needs dataplane.tunnel_source_v6",
			    fl_method_name(vip->method));
	*backends += vip->n_backends;
	if (*backends > cfg->limits.max_backends)
		return fail(w, "backends", "the VIPs have %llu backends, more than "
			    "limits.max_backends (%u)", *backends, cfg->limits.max_backends);
	*entries += vip->table_size;
	if (*entries > cfg->limits.ring_entries)
		return fail(w, "table_size", "the VIPs' tables need %llu entries, more than "
			    "limits.ring_entries (%u)", *entries, cfg->limits.ring_entries);
	return 0;
}

/* Two VIPs are the same when a packet cannot tell them apart. */
static int cmp_vip(const void *pa, const void *pb, const void *arg)
{
	const struct fl_vip_config *a = pa, *b = pb;
	int r = memcmp(&a->addr, &b->addr, sizeof(a->addr));

	(void)arg;
	if (r == 0)
		r = (a->port > b->port) - (a->port < b->port);
	if (r == 0)
		r = (a->proto > b->proto) - (a->proto < b->proto);
	return r ? r : (a->family > b->family) - (a->family < b->family);
}

/* Unnamed VIPs never clash: "" compares by position, which qsort sees as
 * distinct. */
static int cmp_vip_name(const void *pa, const void *pb, const void *arg)
{
	const struct fl_vip_config *a = pa, *b = pb;

	(void)arg;
	if (!a->name[0] && !b->name[0])
		return (a > b) - (a < b);
	return strcmp(a->name, b->name);
}

static int check_vip_set(const struct where *w, const struct fl_config *cfg)
{
	size_t a, b;
	int rc = find_dup(cfg->vips, cfg->n_vips, sizeof(*cfg->vips), cmp_vip, NULL, &a, &b);
	struct where vw;

	if (rc > 0) {
		vw = elem_at(w, NULL, b);
		return fail(&vw, NULL, "same address, port and protocol as vips.[%zu]", a);
	}
	if (rc == 0)
		rc = find_dup(cfg->vips, cfg->n_vips, sizeof(*cfg->vips), cmp_vip_name, NULL,
			      &a, &b);
	if (rc > 0) {
		vw = elem_at(w, NULL, b);
		return fail(&vw, "name", "\"%s\" also names vips.[%zu]", cfg->vips[b].name, a);
	}
	return rc < 0 ? nomem(w) : 0;
}

static int read_vips(const struct where *root, struct fl_config *cfg)
{
	const config_setting_t *list = config_setting_get_member(root->s, "vips");
	struct where lw = at(root, list);
	unsigned long long backends = 0, entries = 0;
	unsigned n = list ? (unsigned)config_setting_length(list) : 0;
	int rc;

	if (n == 0)
		return 0;
	if (n > cfg->limits.max_vips)
		return fail(&lw, NULL, "%u VIPs, more than limits.max_vips (%u)", n,
			    cfg->limits.max_vips);
	cfg->vips = calloc(n, sizeof(*cfg->vips));
	if (!cfg->vips)
		return nomem(&lw);
	cfg->n_vips = n;
	for (unsigned i = 0; i < n; i++) {
		struct where vw;

		rc = list_group(&lw, i, &vw);
		if (rc == 0)
			rc = read_vip(&vw, cfg, &cfg->vips[i]);
		if (rc == 0)
			rc = check_vip_needs(&vw, cfg, &cfg->vips[i], &backends, &entries);
		if (rc)
			return rc;
	}
	return check_vip_set(&lw, cfg);
}

/* ---- the file: data plane ---- */

static int read_ports(const struct where *w, struct fl_dataplane_config *dp)
{
	const config_setting_t *list = config_setting_get_member(w->s, "ports");
	struct where lw = at(w, list);
	unsigned n = list ? (unsigned)config_setting_length(list) : 0;
	int rc;

	if (n == 0)
		return 0;
	dp->ports = calloc(n, sizeof(*dp->ports));
	if (!dp->ports)
		return nomem(&lw);
	dp->n_ports = n;
	for (unsigned i = 0; i < n; i++) {
		struct where pw;

		rc = list_group(&lw, i, &pw);
		if (rc == 0)
			rc = read_group(&pw, port_keys, &dp->ports[i]);
		if (rc)
			return rc;
		/* The name is for logs and counters; the position is a fine one. */
		if (!dp->ports[i].name[0])
			snprintf(dp->ports[i].name, sizeof(dp->ports[i].name), "p%u", i);
	}
	return 0;
}

static int read_workers(const struct where *w, struct fl_dataplane_config *dp)
{
	const config_setting_t *s = config_setting_get_member(w->s, "workers");
	struct where a = at(w, s);
	unsigned n = s ? (unsigned)config_setting_length(s) : 0;

	if (n == 0)
		return 0;
	dp->worker_cores = calloc(n, sizeof(*dp->worker_cores));
	if (!dp->worker_cores)
		return nomem(&a);
	dp->n_workers = n;
	return read_ints(&a, &lcore_key, dp->worker_cores);
}

static int read_dpdk(const struct where *dpw, struct fl_dataplane_config *dp)
{
	static const struct key eal_arg = { KEY("eal_args", K_STR), .size = FL_TEXT_LEN };
	const config_setting_t *g = config_setting_get_member(dpw->s, "dpdk");
	struct where w = at(dpw, g);
	int rc;

	if (!g)
		return 0;
	rc = read_group(&w, dpdk_keys, dp);
	if (rc == 0)
		rc = read_strings(&w, "eal_args", &eal_arg, &dp->eal_args, &dp->n_eal_args);
	if (rc == 0)
		rc = read_ports(&w, dp);
	if (rc == 0)
		rc = read_workers(&w, dp);
	/* A port's queues default to the number of workers (check_dpdk). */
	for (unsigned i = 0; rc == 0 && i < dp->n_ports; i++)
		if (!dp->ports[i].queues)
			dp->ports[i].queues = (__u16)dp->n_workers;
	return rc;
}

static int read_xdp(const struct where *dpw, struct fl_dataplane_config *dp)
{
	static const struct key ifname = { KEY("interfaces", K_STR), .size = IF_NAMESIZE, .min = 1 };
	const config_setting_t *g = config_setting_get_member(dpw->s, "xdp");
	struct where w = at(dpw, g);
	int rc;

	if (!g)
		return 0;
	rc = read_group(&w, xdp_keys, dp);
	return rc ? rc : read_strings(&w, "interfaces", &ifname, &dp->xdp_interfaces,
				      &dp->n_xdp_interfaces);
}

/* One worker lcore per RX queue: each worker polls its own queue of every
 * port, so every port has as many queues as there are workers. Without a
 * dpdk group, errors name its keys at the dataplane group. */
static int check_dpdk(const struct where *dpw, const struct fl_config *cfg)
{
	const struct fl_dataplane_config *dp = &cfg->dataplane;
	const config_setting_t *g = config_setting_get_member(dpw->s, "dpdk");
	struct where w = g ? at(dpw, g) : *dpw, el;
	size_t a, b;
	int rc;

	if (dp->n_ports == 0)
		return fail(&w, g ? "ports" : "dpdk.ports", "dpdk mode needs at least one port");
	if (dp->n_workers == 0)
		return fail(&w, g ? "workers" : "dpdk.workers",
			    "dpdk mode needs at least one worker lcore");
	if (dp->n_workers > cfg->limits.max_workers)
		return fail(&w, "workers", "%u workers, more than limits.max_workers (%u)",
			    dp->n_workers, cfg->limits.max_workers);
	rc = find_dup(dp->worker_cores, dp->n_workers, sizeof(unsigned), cmp_uint, NULL, &a, &b);
	if (rc > 0) {
		el = elem_at(&w, "workers", b);
		return fail(&el, NULL, "lcore %u is also workers.[%zu]", dp->worker_cores[b], a);
	}
	if (rc == 0)
		rc = find_dup(dp->ports, dp->n_ports, sizeof(*dp->ports), cmp_str, NULL, &a, &b);
	if (rc > 0) {
		el = elem_at(&w, "ports", b);
		return fail(&el, "name", "\"%s\" also names ports.[%zu]", dp->ports[b].name, a);
	}
	for (unsigned i = 0; rc == 0 && i < dp->n_ports; i++) {
		el = elem_at(&w, "ports", i);
		if (dp->ports[i].queues != dp->n_workers)
			return fail(&el, "queues", "must equal the number of workers (%u): "
				    "each worker polls one queue of every port", dp->n_workers);
	}
	return rc < 0 ? nomem(&w) : 0;
}

static int check_xdp(const struct where *dpw, const struct fl_dataplane_config *dp)
{
	const config_setting_t *g = config_setting_get_member(dpw->s, "xdp");
	struct where w = g ? at(dpw, g) : *dpw, el;
	size_t a, b;
	int rc;

	if (dp->n_xdp_interfaces == 0)
		return fail(&w, g ? "interfaces" : "xdp.interfaces",
			    "xdp mode needs at least one interface");
	rc = find_dup(dp->xdp_interfaces, dp->n_xdp_interfaces, sizeof(char *), cmp_strp, NULL,
		      &a, &b);
	if (rc > 0) {
		el = elem_at(&w, "interfaces", b);
		return fail(&el, NULL, "\"%s\" is also interfaces.[%zu]", dp->xdp_interfaces[b], a);
	}
	return rc < 0 ? nomem(&w) : 0;
}

/* A static MAC or an address to resolve, not both. DPDK has no routing
 * table, so it needs one; XDP may instead let bpf_fib_lookup() find the
 * next hop per packet (xdp.fib_lookup), and then a next_hop would be
 * ignored: refused, so that no one believes it is used. */
static int check_next_hop(const struct where *dpw, const struct fl_dataplane_config *dp)
{
	if (dp->has_next_hop_mac && dp->has_next_hop_address)
		return fail(dpw, "next_hop", "give mac or address, not both");
	if (dp->mode == FL_DP_DPDK && !dp->has_next_hop_mac && !dp->has_next_hop_address)
		return fail(dpw, "next_hop", "dpdk mode needs a mac or an address");
	if (dp->mode == FL_DP_XDP && dp->xdp_fib_lookup &&
	    (dp->has_next_hop_mac || dp->has_next_hop_address))
		return fail(dpw, "next_hop", "xdp.fib_lookup takes the next hop from the kernel's "
			    "routes and neighbours: give next_hop or xdp.fib_lookup, not both");
	return 0;
}

/* Whether fulcrum-cp must look anything up in the neighbour table. */
static bool needs_neighbours(const struct fl_config *cfg)
{
	if (cfg->dataplane.has_next_hop_address)
		return true;
	for (unsigned i = 0; i < cfg->n_vips; i++)
		for (unsigned j = 0; cfg->vips[i].method == FL_METHOD_L2DSR &&
				     j < cfg->vips[i].n_backends; j++)
			if (!cfg->vips[i].backends[j].has_mac)
				return true;
	return false;
}

/* After the VIPs are read: the interface whose neighbours fulcrum-cp reads,
 * given or taken from the only port (its TAP, "fl-<name>" as fulcrum-dp
 * names it) or the only xdp interface. */
static int check_neighbour_interface(const struct where *root, struct fl_config *cfg)
{
	struct fl_dataplane_config *dp = &cfg->dataplane;
	struct where w = at(root, config_setting_get_member(root->s, "dataplane"));

	if (dp->neighbour_interface[0] || !needs_neighbours(cfg))
		return 0;
	if (dp->mode == FL_DP_DPDK && dp->n_ports == 1)
		snprintf(dp->neighbour_interface, sizeof(dp->neighbour_interface), "fl-%.12s",
			 dp->ports[0].name);
	else if (dp->mode == FL_DP_XDP && dp->n_xdp_interfaces == 1)
		snprintf(dp->neighbour_interface, sizeof(dp->neighbour_interface), "%s",
			 dp->xdp_interfaces[0]);
	else
		return fail(&w, "neighbour_interface", "needed to resolve next_hop.address or an "
			    "l2dsr backend without mac, and there is not exactly one port to take "
			    "it from");
	return 0;
}

static int read_dataplane(const struct where *root, struct fl_config *cfg)
{
	struct fl_dataplane_config *dp = &cfg->dataplane;
	struct where w = at(root, config_setting_get_member(root->s, "dataplane"));
	int rc = read_group(&w, dataplane_keys, dp);

	if (rc == 0)
		rc = read_member(&w, "next_hop", next_hop_keys, dp);
	if (rc == 0)
		rc = read_member(&w, "conntrack", conntrack_keys, &dp->conntrack);
	if (rc == 0)
		rc = read_dpdk(&w, dp);
	if (rc == 0)
		rc = read_xdp(&w, dp);
	if (rc == 0)
		rc = check_next_hop(&w, dp);
	if (rc)
		return rc;
	return dp->mode == FL_DP_DPDK ? check_dpdk(&w, cfg) : check_xdp(&w, dp);
}

/* ---- the file ---- */

static void set_defaults(struct fl_config *cfg)
{
	struct fl_global_config *g = &cfg->global;
	struct fl_dataplane_config *dp = &cfg->dataplane;
	struct fl_hc_config *hc = &cfg->healthcheck;

	strcpy(g->control_socket, DEFAULT_CONTROL_SOCKET);
	g->control_socket_mode = 0660;
	strcpy(g->shm_name, DEFAULT_SHM_NAME);
	g->hash_seed = DEFAULT_HASH_SEED;
	g->log_level = FL_LOG_INFO;
	cfg->limits = (struct fl_limits_config){ .max_vips = 256, .max_backends = 16384,
						 .ring_entries = 4194304, .max_workers = 16 };
	dp->gue_port = 6080;
	dp->mtu = 1500;
	dp->conntrack = (struct fl_conntrack_config){
		.capacity = 1048576, .tcp_timeout_s = 300, .tcp_closing_timeout_s = 10,
		.syn_timeout_s = 5, .udp_timeout_s = 30,
	};
	hc->type = FL_HC_TCP;
	hc->interval_ms = 1000;
	hc->timeout_ms = 500;
	hc->rise = 2;
	hc->fall = 3;
	strcpy(hc->http_path, "/");
	hc->expect_status[0] = 200;
	hc->n_expect_status = 1;
}

static int read_config(const config_t *lc, const char *name, struct fl_config *cfg,
		       char *err, size_t errlen)
{
	struct where root = { .s = config_root_setting(lc), .name = name,
			      .err = err, .errlen = errlen };
	int rc;

	set_defaults(cfg);
	rc = read_group(&root, root_keys, cfg);
	if (rc == 0)
		rc = read_member(&root, "global", global_keys, &cfg->global);
	if (rc == 0)
		rc = read_member(&root, "limits", limits_keys, &cfg->limits);
	if (rc == 0)
		rc = read_dataplane(&root, cfg);
	/* The top level of the merge: the defaults, overridden. */
	if (rc == 0)
		rc = read_hc(&root, &cfg->healthcheck);
	if (rc == 0)
		rc = read_vips(&root, cfg);
	return rc ? rc : check_neighbour_interface(&root, cfg);
}

/* strchr() finds the terminating NUL too: this does not. */
static bool in_set(char c, const char *set)
{
	return c && strchr(set, c);
}

/* Whether the integer literal at *pp survives libconfig 1.5, which keeps
 * only the low 32 bits of a literal without an L suffix (atoi, strtoul) and
 * clamps a decimal one with the suffix to 64 bits; moves *pp past it. */
static bool literal_fits(const char **pp, bool negative)
{
	const char *p = *pp;
	bool hex = p[0] == '0' && (p[1] == 'x' || p[1] == 'X');
	unsigned long long v = 0, limit;
	unsigned digits = 0;
	bool over = false, wide;

	if (hex) {
		for (p += 2; isxdigit((unsigned char)*p); p++)
			digits += digits || *p != '0';
	} else {
		for (; isdigit((unsigned char)*p); p++) {
			over |= v > (ULLONG_MAX - 9) / 10;
			v = v * 10 + (unsigned)(*p - '0');
		}
	}
	if (!hex && (*p == '.' || *p == 'e' || *p == 'E')) {
		while (isdigit((unsigned char)*p) || in_set(*p, ".eE+-"))
			p++;
		*pp = p;
		return true;	/* a float */
	}
	wide = *p == 'L';
	while (*p == 'L')
		p++;
	*pp = p;
	if (hex)
		return digits <= (wide ? 16u : 8u);
	limit = wide ? (unsigned long long)INT64_MAX : (unsigned long long)INT32_MAX;
	return !over && v <= limit + negative;
}

/* Skips a string, a comment or a name at p (one character otherwise),
 * counting lines. */
static const char *skip_token(const char *p, unsigned *line)
{
	if (*p == '"') {
		for (p++; *p && *p != '"'; p++) {
			*line += *p == '\n';
			if (*p == '\\' && p[1])
				p++;
		}
		return *p ? p + 1 : p;
	}
	if (*p == '#' || (p[0] == '/' && p[1] == '/'))
		return p + strcspn(p, "\n");
	if (p[0] == '/' && p[1] == '*') {
		for (p += 2; *p && !(p[0] == '*' && p[1] == '/'); p++)
			*line += *p == '\n';
		return *p ? p + 2 : p;
	}
	if (isalpha((unsigned char)*p) || *p == '*') {
		while (isalnum((unsigned char)*p) || in_set(*p, "-_*"))
			p++;
		return p;
	}
	*line += *p == '\n';
	return p + 1;
}

static int check_int_literals(const char *text, const char *name, char *err, size_t errlen)
{
	unsigned line = 1;

	for (const char *p = text; *p;) {
		const char *start = p;

		if (!isdigit((unsigned char)*p)) {
			p = skip_token(p, &line);
			continue;
		}
		if (!literal_fits(&p, start > text && start[-1] == '-')) {
			snprintf(err, errlen, "%s:%u: integer %.*s is out of range (a 64-bit "
				 "value needs an L suffix)", name, line, (int)(p - start), start);
			return -EINVAL;
		}
	}
	return 0;
}

static int parse_text(const char *text, const char *name, const char *include_dir,
		      struct fl_config *cfg, char *err, size_t errlen)
{
	config_t lc;
	int rc = 0;

	memset(cfg, 0, sizeof(*cfg));
	config_init(&lc);
	if (include_dir)
		config_set_include_dir(&lc, include_dir);
	if (!config_read_string(&lc, text)) {
		const char *file = config_error_file(&lc);

		snprintf(err, errlen, "%s:%d: %s", file ? basename(file) : name,
			 config_error_line(&lc), config_error_text(&lc));
		rc = -EINVAL;
	}
	if (rc == 0)
		rc = check_int_literals(text, name, err, errlen);
	if (rc == 0)
		rc = read_config(&lc, name, cfg, err, errlen);
	config_destroy(&lc);
	if (rc)
		fl_config_free(cfg);
	else
		snprintf(cfg->source, sizeof(cfg->source), "%s", name);
	return rc;
}

int fl_config_parse(const char *text, const char *name, struct fl_config *cfg,
		    char *err, size_t errlen)
{
	return parse_text(text, name, NULL, cfg, err, errlen);
}

static char *read_file(const char *path, char *err, size_t errlen, int *rc)
{
	FILE *f = fopen(path, "r");
	char *text = NULL, *t;
	size_t len = 0, n = 0;

	if (!f)
		goto fail;
	do {
		t = realloc(text, len + BUFSIZ + 1);
		if (!t)
			goto fail;
		text = t;
		n = fread(text + len, 1, BUFSIZ, f);
		len += n;
	} while (n == BUFSIZ);
	if (ferror(f))
		goto fail;
	fclose(f);
	text[len] = '\0';
	*rc = 0;
	return text;
fail:
	*rc = errno ? -errno : -EIO;
	snprintf(err, errlen, "%s: %s", path, strerror(-*rc));
	if (f)
		fclose(f);
	free(text);
	return NULL;
}

int fl_config_load(const char *path, struct fl_config *cfg, char *err, size_t errlen)
{
	char *dir = strdup(path);
	char *slash = dir ? strrchr(dir, '/') : NULL;
	char *text = NULL;
	int rc = -ENOMEM;

	memset(cfg, 0, sizeof(*cfg));
	if (!dir) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	text = read_file(path, err, errlen, &rc);
	if (rc)
		goto out;
	/* @include names files next to this one, whatever the cwd. */
	if (slash)
		*slash = '\0';
	rc = parse_text(text, basename(path), slash ? dir : NULL, cfg, err, errlen);
out:
	free(text);
	free(dir);
	return rc;
}

static void free_strings(char **v, unsigned n)
{
	for (unsigned i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

void fl_config_free(struct fl_config *cfg)
{
	struct fl_dataplane_config *dp = &cfg->dataplane;

	for (unsigned i = 0; i < cfg->n_vips; i++)
		free(cfg->vips[i].backends);
	free(cfg->vips);
	free_strings(dp->eal_args, dp->n_eal_args);
	free_strings(dp->xdp_interfaces, dp->n_xdp_interfaces);
	free(dp->ports);
	free(dp->worker_cores);
	memset(cfg, 0, sizeof(*cfg));
}
