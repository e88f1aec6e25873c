/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fulcrumctl: the command line over fulcrum-cp's control socket (cp/ctl.h).
 * Each command is one request line and one answer line; human tables by
 * default, the daemon's JSON answer with --json.
 *
 * Exit status: 0 ok, 1 the daemon answered an error, 2 usage, 3 the socket
 * cannot be reached (or the answer never came).
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <json-c/json.h>

#include "config.h"

#define PROG "fulcrumctl"
#define DEFAULT_SOCKET "/run/fulcrum/control.sock"
#define ANSWER_TIMEOUT_MS 30000
#define MAX_ANSWER (64u << 20)

#ifndef FL_VERSION
#define FL_VERSION "unknown"
#endif

enum { EXIT_OK = 0, EXIT_ERROR = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

static const char *sock_path = DEFAULT_SOCKET;
static bool json_out;

struct cmd {
	const char *words;		/* "vip list" */
	const char *args;		/* usage after the words */
	const char *help;
	int (*run)(const struct cmd *c, int argc, char **argv);
	const char *op;
};

static const struct cmd cmds[];

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " [--socket PATH | -c CONFIG] [--json] COMMAND [ARGS]\n"
		"\n"
		"Talks to fulcrum-cp over its control socket (default " DEFAULT_SOCKET ",\n"
		"or global.control_socket of CONFIG with -c).\n"
		"\n"
		"Changes made here (vip add/remove, backend add/remove/weight, drain) live in\n"
		"the running fulcrum-cp only: they are NOT written to the config file, and a\n"
		"reload (SIGHUP or `" PROG " reload`) replaces them with what the file says.\n"
		"Operator drains survive a reload while the backend stays in the file.\n"
		"\n"
		"commands:\n");
	for (const struct cmd *c = cmds; c->words; c++)
		fprintf(f, "  %-16s %-32s %s\n", c->words, c->args, c->help);
	fprintf(f,
		"\n"
		"  --socket PATH    the control socket\n"
		"  -c, --config F   take the socket path from config file F\n"
		"  --json           print the daemon's JSON answer (one line)\n"
		"  -h, --help       this text; COMMAND --help: the command's\n"
		"\n"
		"VIP is a VIP name or ADDR:PORT[/tcp|udp]; ADDR of a backend is ADDR or\n"
		"ADDR:PORT ([V6]:PORT), without a port the VIP's.\n"
		"Exit status: 0 ok, 1 the daemon answered an error, 2 usage, 3 cannot reach\n"
		"the socket.\n");
}

static int cmd_usage(const struct cmd *c, FILE *f, int status)
{
	fprintf(f, "usage: " PROG " [--socket PATH] [--json] %s %s\n  %s\n", c->words, c->args, c->help);
	if (strcmp(c->words, "vip add") == 0)
		fprintf(f, "\n  --protocol tcp|udp (tcp)   --method ipip|ip6ip6|gue|l2dsr (by family)\n"
			"  --name NAME   --table-size PRIME (65537)\n"
			"  --check none|tcp|tcp-half-open|http|https   --check-port P   --check-path PATH\n"
			"  --interval MS   --timeout MS   --rise N   --fall N\n"
			"  --backend ADDR[:PORT][@WEIGHT]  (repeatable)\n"
			"  Unset check keys take the config file's healthcheck defaults.\n");
	if (strcmp(c->words, "stats") == 0)
		fprintf(f, "\n  Prints the totals and the rates per second between two reads one\n"
			"  second apart (--json: one read, as the daemon answers). --watch [SECONDS]\n"
			"  prints the rates again every SECONDS (1) until interrupted.\n");
	fprintf(f, "\n  Socket changes are not written to the config file; a reload replaces them.\n");
	return status;
}

/* ---- the socket ---- */

/* Sends one request, returns the answer parsed, or NULL (unreachable). */
static struct json_object *request(struct json_object *req)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *text = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	size_t len = strlen(text), off = 0, cap = 65536, got = 0;
	char *buf = NULL, *nl = NULL;
	struct json_object *ans = NULL;
	int fd;

	if (strlen(sock_path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, PROG ": %s: socket path too long\n", sock_path);
		return NULL;
	}
	memcpy(sa.sun_path, sock_path, strlen(sock_path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, PROG ": cannot reach %s: %s\n", sock_path, strerror(errno));
		goto out;
	}
	while (off < len + 1) {
		ssize_t n = off < len ? send(fd, text + off, len - off, MSG_NOSIGNAL) :
				       send(fd, "\n", 1, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, PROG ": %s: send: %s\n", sock_path, strerror(errno));
			goto out;
		}
		off += (size_t)n;
	}
	buf = malloc(cap);
	while (buf && !(nl = memchr(buf, '\n', got))) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (got == cap) {
			char *b = cap < MAX_ANSWER ? realloc(buf, cap * 2) : NULL;
			if (!b) {
				fprintf(stderr, PROG ": answer too long\n");
				goto out;
			}
			buf = b;
			cap *= 2;
		}
		if (poll(&p, 1, ANSWER_TIMEOUT_MS) == 0) {
			fprintf(stderr, PROG ": %s: no answer within %d s\n", sock_path, ANSWER_TIMEOUT_MS / 1000);
			goto out;
		}
		n = recv(fd, buf + got, cap - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, PROG ": %s: connection closed without an answer\n", sock_path);
			goto out;
		}
		got += (size_t)n;
	}
	if (!buf)
		goto out;
	*nl = '\0';
	ans = json_tokener_parse(buf);
	if (!ans || !json_object_is_type(ans, json_type_object))
		fprintf(stderr, PROG ": %s: unreadable answer\n", sock_path);
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return ans;
}

static const char *s_of(struct json_object *o, const char *k)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, k, &v) || !v)
		return "-";
	return json_object_get_string(v);
}

static long long i_of(struct json_object *o, const char *k)
{
	struct json_object *v;

	return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : 0;
}

static struct json_object *a_of(struct json_object *o, const char *k)
{
	struct json_object *v;

	return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_array) ? v : NULL;
}

/* Sends req (taken over), prints the error or hands the answer to show. */
static int call(struct json_object *req, void (*show)(struct json_object *ans), struct json_object **keep)
{
	struct json_object *ans = request(req), *ok;
	int status;

	json_object_put(req);
	if (!ans)
		return EXIT_UNREACHABLE;
	status = json_object_object_get_ex(ans, "ok", &ok) && json_object_get_boolean(ok) ? EXIT_OK : EXIT_ERROR;
	if (json_out && !keep)
		printf("%s\n", json_object_to_json_string_ext(ans, JSON_C_TO_STRING_PLAIN));
	else if (status == EXIT_ERROR)
		fprintf(stderr, PROG ": error: %s\n", s_of(ans, "error"));
	else if (show)
		show(ans);
	if (keep && status == EXIT_OK)
		*keep = ans;
	else
		json_object_put(ans);
	return status;
}

static struct json_object *req_new(const char *op)
{
	struct json_object *r = json_object_new_object();

	json_object_object_add(r, "op", json_object_new_string(op));
	return r;
}

static void req_str(struct json_object *r, const char *k, const char *v)
{
	json_object_object_add(r, k, json_object_new_string(v));
}

static int parse_num(const char *text, long long max, long long *out)
{
	char *end;

	errno = 0;
	*out = strtoll(text, &end, 10);
	return errno || end == text || *end || *out < 0 || *out > max ? -1 : 0;
}

/* Splits "ADDR:PORT" / "[V6]:PORT" into its parts. */
static int split_endpoint(const char *text, char *addr, size_t len, long long *port)
{
	const char *colon = strrchr(text, ':');
	size_t hl;

	if (!colon || parse_num(colon + 1, 65535, port) < 0 || *port == 0)
		return -1;
	hl = (size_t)(colon - text);
	if (text[0] == '[' && hl >= 2 && text[hl - 1] == ']')
		text++, hl -= 2;
	if (hl == 0 || hl >= len)
		return -1;
	memcpy(addr, text, hl);
	addr[hl] = '\0';
	return 0;
}

/* ---- output ---- */

static void show_ok(struct json_object *ans)
{
	(void)ans;
	printf("ok\n");
}

static void show_backend(struct json_object *ans)
{
	struct json_object *b;

	if (!json_object_object_get_ex(ans, "backend", &b)) {
		printf("ok\n");
		return;
	}
	printf("backend %s weight %lld state %s health %s%s\n", s_of(b, "backend"), i_of(b, "weight"),
	       s_of(b, "state"), s_of(b, "health"), i_of(b, "drain") ? " (drained by the operator)" : "");
}

static void show_vip_list(struct json_object *ans)
{
	struct json_object *vs = a_of(ans, "vips");

	printf("%-28s %-16s %-7s %-13s %8s %4s %5s\n", "VIP", "NAME", "METHOD", "CHECK", "BACKENDS", "UP", "ID");
	for (size_t i = 0; vs && i < json_object_array_length(vs); i++) {
		struct json_object *v = json_object_array_get_idx(vs, i);
		printf("%-28s %-16s %-7s %-13s %8lld %4lld %5s\n", s_of(v, "vip"),
		       *s_of(v, "name") ? s_of(v, "name") : "-", s_of(v, "method"), s_of(v, "check"),
		       i_of(v, "n_backends"), i_of(v, "n_up"), s_of(v, "id"));
	}
}

static void show_vip(struct json_object *ans)
{
	struct json_object *v, *bs;

	if (!json_object_object_get_ex(ans, "vip", &v))
		return;
	printf("vip %s%s%s method %s table_size %lld check %s id %s\n", s_of(v, "vip"),
	       *s_of(v, "name") ? " name " : "", s_of(v, "name"), s_of(v, "method"),
	       i_of(v, "table_size"), s_of(v, "check"), s_of(v, "id"));
	printf("%-28s %6s %-9s %-9s %-5s %5s %5s\n", "BACKEND", "WEIGHT", "STATE", "HEALTH", "DRAIN", "ID", "EPOCH");
	bs = a_of(v, "backends");
	for (size_t i = 0; bs && i < json_object_array_length(bs); i++) {
		struct json_object *b = json_object_array_get_idx(bs, i);
		printf("%-28s %6lld %-9s %-9s %-5s %5s %5s\n", s_of(b, "backend"), i_of(b, "weight"),
		       s_of(b, "state"), s_of(b, "health"), i_of(b, "drain") ? "yes" : "no",
		       s_of(b, "id"), s_of(b, "epoch"));
	}
}

static void show_health(struct json_object *ans)
{
	struct json_object *bs = a_of(ans, "backends");

	printf("%-24s %-22s %-9s %-9s %-13s %-4s %-19s %s\n", "VIP", "BACKEND", "STATE", "HEALTH",
	       "CHECK", "LAST", "SINCE", "REASON");
	for (size_t i = 0; bs && i < json_object_array_length(bs); i++) {
		struct json_object *b = json_object_array_get_idx(bs, i), *since;
		char when[32] = "-";

		if (json_object_object_get_ex(b, "since", &since) && since) {
			time_t t = (time_t)json_object_get_double(since);
			struct tm tm;
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", localtime_r(&t, &tm));
		}
		printf("%-24s %-22s %-9s %-9s %-13s %-4s %-19s %s\n", s_of(b, "vip"), s_of(b, "backend"),
		       s_of(b, "state"), s_of(b, "health"), s_of(b, "check"), s_of(b, "last_result"),
		       when, s_of(b, "reason"));
	}
}

static void show_conntrack(struct json_object *ans)
{
	struct json_object *ws = a_of(ans, "workers");

	if (strcmp(s_of(ans, "dataplane"), "xdp") == 0) {
		printf("capacity: %lld (XDP: one table for every CPU); counted %lld ms ago\n",
		       i_of(ans, "capacity"), i_of(ans, "age_ms"));
		printf("%10s %10s %10s %10s\n", "OCCUPANCY", "EVICTIONS", "EXPIRED", "NEW_FLOWS");
		printf("%10lld %10lld %10lld %10lld\n", i_of(ans, "occupancy"), i_of(ans, "evictions"),
		       i_of(ans, "expired"), i_of(ans, "new_flows"));
		return;
	}
	printf("capacity per worker: %lld\n", i_of(ans, "capacity"));
	printf("%6s %-6s %8s %10s %10s %10s %12s\n", "WORKER", "ACTIVE", "PID", "OCCUPANCY", "EVICTIONS",
	       "EXPIRED", "HEARTBEAT_MS");
	for (size_t i = 0; ws && i < json_object_array_length(ws); i++) {
		struct json_object *w = json_object_array_get_idx(ws, i);
		printf("%6lld %-6s %8lld %10lld %10lld %10lld %12s\n", i_of(w, "worker"),
		       i_of(w, "active") ? "yes" : "no", i_of(w, "pid"), i_of(w, "occupancy"),
		       i_of(w, "evictions"), i_of(w, "expired"), s_of(w, "heartbeat_age_ms"));
	}
}

static void show_lookup(struct json_object *ans)
{
	if (strcmp(s_of(ans, "result"), "backend") != 0) {
		printf("%s\n", s_of(ans, "result"));
		return;
	}
	printf("backend %s:%lld id %lld epoch %lld (vip id %lld, generation %lld)\n", s_of(ans, "address"),
	       i_of(ans, "port"), i_of(ans, "backend_id"), i_of(ans, "epoch"), i_of(ans, "vip_id"),
	       i_of(ans, "generation"));
}

static void show_version(struct json_object *ans)
{
	printf(PROG " %s, fulcrum-cp %s (pid %lld, config %s, generation %lld)\n", FL_VERSION,
	       s_of(ans, "version"), i_of(ans, "pid"), s_of(ans, "config"), i_of(ans, "generation"));
}

/* One row per counter: the total and, with a previous read, the rate. */
static void show_rates(struct json_object *a, struct json_object *b)
{
	double dt = b ? (double)(i_of(b, "time_ns") - i_of(a, "time_ns")) / 1e9 : 0;
	struct json_object *now = b ? b : a, *vs, *pvs;
	static const char *const groups[] = { "counters", "drops" };

	printf("generation %lld\n%-32s %16s %14s\n", i_of(now, "generation"), "COUNTER", "TOTAL", "PER_SECOND");
	for (size_t g = 0; g < 2; g++) {
		struct json_object *cur, *prev = NULL;
		if (!json_object_object_get_ex(now, groups[g], &cur))
			continue;
		if (b)
			json_object_object_get_ex(a, groups[g], &prev);
		json_object_object_foreach(cur, k, v) {
			char name[80];
			long long t = json_object_get_int64(v);
			snprintf(name, sizeof(name), g ? "drop_%s" : "%s", k);
			if (b && dt > 0 && strcmp(k, "ct_occupancy") != 0)
				printf("%-32s %16lld %14.1f\n", name, t, (double)(t - i_of(prev, k)) / dt);
			else
				printf("%-32s %16lld %14s\n", name, t, "-");
		}
	}
	vs = a_of(now, "vips");
	pvs = b ? a_of(a, "vips") : NULL;
	printf("\n%-28s %-22s %12s %14s %12s %14s\n", "VIP", "BACKEND", "PACKETS", "BYTES", "PPS", "BPS");
	for (size_t i = 0; vs && i < json_object_array_length(vs); i++) {
		struct json_object *v = json_object_array_get_idx(vs, i), *pv = NULL, *bs, *pbs;
		if (pvs && i < json_object_array_length(pvs))
			pv = json_object_array_get_idx(pvs, i);
		if (pv && strcmp(s_of(pv, "vip"), s_of(v, "vip")))
			pv = NULL;
		double pps = pv && dt > 0 ? (double)(i_of(v, "packets") - i_of(pv, "packets")) / dt : 0;
		double bps = pv && dt > 0 ? 8 * (double)(i_of(v, "bytes") - i_of(pv, "bytes")) / dt : 0;
		printf("%-28s %-22s %12lld %14lld %12.1f %14.1f\n", s_of(v, "vip"), "*", i_of(v, "packets"),
		       i_of(v, "bytes"), pps, bps);
		bs = a_of(v, "backends");
		pbs = pv ? a_of(pv, "backends") : NULL;
		for (size_t j = 0; bs && j < json_object_array_length(bs); j++) {
			struct json_object *x = json_object_array_get_idx(bs, j), *px = NULL;
			if (pbs && j < json_object_array_length(pbs))
				px = json_object_array_get_idx(pbs, j);
			if (px && strcmp(s_of(px, "backend"), s_of(x, "backend")))
				px = NULL;
			pps = px && dt > 0 ? (double)(i_of(x, "packets") - i_of(px, "packets")) / dt : 0;
			bps = px && dt > 0 ? 8 * (double)(i_of(x, "bytes") - i_of(px, "bytes")) / dt : 0;
			printf("%-28s %-22s %12lld %14lld %12.1f %14.1f\n", "", s_of(x, "backend"),
			       i_of(x, "packets"), i_of(x, "bytes"), pps, bps);
		}
	}
}

/* ---- commands ---- */

static bool wants_help(int argc, char **argv)
{
	for (int i = 0; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return true;
	return false;
}

/* In XDP mode fulcrum-cp counts conntrack by a scan of the program's map
 * spread over its loop: while its first scan runs the answer is "pending",
 * and the question is asked again (for at most 30 s). */
static int run_conntrack(const struct cmd *c, int argc, char **argv)
{
	(void)argv;
	if (argc != 0)
		return cmd_usage(c, stderr, EXIT_USAGE);
	for (unsigned tries = 0;; tries++) {
		struct json_object *ans = NULL, *pending;
		int status = call(req_new(c->op), NULL, &ans);

		if (status != EXIT_OK)
			return status;
		if (!json_object_object_get_ex(ans, "pending", &pending) ||
		    !json_object_get_boolean(pending)) {
			if (json_out)
				printf("%s\n", json_object_to_json_string_ext(ans, JSON_C_TO_STRING_PLAIN));
			else
				show_conntrack(ans);
			json_object_put(ans);
			return EXIT_OK;
		}
		json_object_put(ans);
		if (tries == 300) {
			fprintf(stderr, PROG ": conntrack: fulcrum-cp's scan of the XDP map did not "
				"end within 30 s\n");
			return EXIT_ERROR;
		}
		usleep(100 * 1000);
	}
}

/* Commands whose arguments are positional members of the request. */
static int run_simple(const struct cmd *c, int argc, char **argv)
{
	static const struct { const char *op; const char *keys[3]; void (*show)(struct json_object *); } m[] = {
		{ "vip.list", { NULL }, show_vip_list },
		{ "vip.show", { "vip" }, show_vip },
		{ "vip.remove", { "vip" }, show_ok },
		{ "backend.remove", { "vip", "address" }, show_ok },
		{ "backend.drain", { "vip", "address" }, show_backend },
		{ "backend.undrain", { "vip", "address" }, show_backend },
		{ "health", { NULL }, show_health },
		{ "reload", { NULL }, show_ok },
		{ "version", { NULL }, show_version },
	};
	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		struct json_object *r;
		int n = 0;

		if (strcmp(m[i].op, c->op))
			continue;
		while (n < 3 && m[i].keys[n])
			n++;
		if (argc != n)
			return cmd_usage(c, stderr, EXIT_USAGE);
		r = req_new(c->op);
		for (int k = 0; k < n; k++)
			req_str(r, m[i].keys[k], argv[k]);
		return call(r, m[i].show, NULL);
	}
	return EXIT_USAGE;
}

static int run_backend_add(const struct cmd *c, int argc, char **argv)
{
	struct json_object *r;
	long long w = -1;

	if (argc == 4 && strcmp(argv[2], "--weight") == 0) {
		if (parse_num(argv[3], 65535, &w) < 0)
			return cmd_usage(c, stderr, EXIT_USAGE);
	} else if (argc != 2) {
		return cmd_usage(c, stderr, EXIT_USAGE);
	}
	r = req_new(c->op);
	req_str(r, "vip", argv[0]);
	req_str(r, "address", argv[1]);
	if (w >= 0)
		json_object_object_add(r, "weight", json_object_new_int64(w));
	return call(r, show_backend, NULL);
}

static int run_backend_weight(const struct cmd *c, int argc, char **argv)
{
	struct json_object *r;
	long long w;

	if (argc != 3 || parse_num(argv[2], 65535, &w) < 0)
		return cmd_usage(c, stderr, EXIT_USAGE);
	r = req_new(c->op);
	req_str(r, "vip", argv[0]);
	req_str(r, "address", argv[1]);
	json_object_object_add(r, "weight", json_object_new_int64(w));
	return call(r, show_backend, NULL);
}

static int run_lookup(const struct cmd *c, int argc, char **argv)
{
	struct json_object *r;

	if (argc != 3)
		return cmd_usage(c, stderr, EXIT_USAGE);
	r = req_new(c->op);
	req_str(r, "src", argv[0]);
	req_str(r, "dst", argv[1]);
	req_str(r, "protocol", argv[2]);
	return call(r, show_lookup, NULL);
}

static int run_vip_add(const struct cmd *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "protocol", required_argument, NULL, 'p' }, { "method", required_argument, NULL, 'm' },
		{ "name", required_argument, NULL, 'n' }, { "table-size", required_argument, NULL, 's' },
		{ "check", required_argument, NULL, 't' }, { "check-port", required_argument, NULL, 'P' },
		{ "check-path", required_argument, NULL, 'H' }, { "interval", required_argument, NULL, 'i' },
		{ "timeout", required_argument, NULL, 'T' }, { "rise", required_argument, NULL, 'r' },
		{ "fall", required_argument, NULL, 'f' }, { "backend", required_argument, NULL, 'b' },
		{ NULL, 0, NULL, 0 },
	};
	struct json_object *r = req_new(c->op), *hc = json_object_new_object();
	struct json_object *bs = json_object_new_array();
	char addr[64];
	long long n;
	int o;

	optind = 0;
	opterr = 1;
	while ((o = getopt_long(argc + 1, argv - 1, "", opts, NULL)) != -1) {
		const char *key = NULL;
		switch (o) {
		case 'p': req_str(r, "protocol", optarg); break;
		case 'm': req_str(r, "method", optarg); break;
		case 'n': req_str(r, "name", optarg); break;
		case 't': json_object_object_add(hc, "type", json_object_new_string(optarg)); break;
		case 'H': json_object_object_add(hc, "http_path", json_object_new_string(optarg)); break;
		case 's': key = "table_size"; break;
		case 'P': key = "port"; break;
		case 'i': key = "interval_ms"; break;
		case 'T': key = "timeout_ms"; break;
		case 'r': key = "rise"; break;
		case 'f': key = "fall"; break;
		case 'b': {
			struct json_object *b = json_object_new_object();
			char *at = strrchr(optarg, '@');
			if (at) {
				*at = '\0';
				if (parse_num(at + 1, 65535, &n) < 0)
					goto bad;
				json_object_object_add(b, "weight", json_object_new_int64(n));
			}
			req_str(b, "address", optarg);
			json_object_array_add(bs, b);
			break;
		}
		default:
			goto bad;
		}
		if (key) {
			if (parse_num(optarg, 100000000, &n) < 0)
				goto bad;
			json_object_object_add(o == 's' ? r : hc, key, json_object_new_int64(n));
		}
	}
	if (optind != argc || split_endpoint(argv[optind - 1], addr, sizeof(addr), &n) < 0)
		goto bad;
	req_str(r, "address", addr);
	json_object_object_add(r, "port", json_object_new_int64(n));
	if (json_object_object_length(hc))
		json_object_object_add(r, "healthcheck", hc);
	else
		json_object_put(hc);
	json_object_object_add(r, "backends", bs);
	return call(r, show_ok, NULL);
bad:
	json_object_put(r);
	json_object_put(hc);
	json_object_put(bs);
	return cmd_usage(c, stderr, EXIT_USAGE);
}

static volatile sig_atomic_t stop;

static void on_sigint(int sig)
{
	(void)sig;
	stop = 1;
}

static int run_stats(const struct cmd *c, int argc, char **argv)
{
	struct json_object *a = NULL, *b = NULL;
	long long every = 0;
	int status;

	if (argc >= 1 && strcmp(argv[0], "--watch") == 0) {
		every = 1;
		if (argc == 2 && (parse_num(argv[1], 3600, &every) < 0 || every == 0))
			return cmd_usage(c, stderr, EXIT_USAGE);
		if (argc > 2)
			return cmd_usage(c, stderr, EXIT_USAGE);
	} else if (argc) {
		return cmd_usage(c, stderr, EXIT_USAGE);
	}
	if (json_out && !every)
		return call(req_new(c->op), NULL, NULL);
	status = call(req_new(c->op), NULL, &a);
	if (status)
		return status;
	if (json_out) {
		/* --json --watch: one answer line per read */
		printf("%s\n", json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN));
		fflush(stdout);
	}
	signal(SIGINT, on_sigint);
	signal(SIGTERM, on_sigint);
	do {
		for (long long i = 0; i < (every ? every : 1) * 10 && !stop; i++)
			usleep(100000);
		if (stop)
			break;
		status = call(req_new(c->op), NULL, &b);
		if (status)
			break;
		if (json_out)
			printf("%s\n", json_object_to_json_string_ext(b, JSON_C_TO_STRING_PLAIN));
		else {
			if (every)
				printf("\n--- %lld s ---\n", every);
			show_rates(a, b);
		}
		fflush(stdout);
		json_object_put(a);
		a = b;
		b = NULL;
	} while (every && !stop);
	json_object_put(a);
	return status;
}

static const struct cmd cmds[] = {
	{ "vip list", "", "list the VIPs", run_simple, "vip.list" },
	{ "vip show", "VIP", "one VIP with its backends", run_simple, "vip.show" },
	{ "vip add", "ADDR:PORT [OPTIONS]", "add a VIP (see vip add --help)", run_vip_add, "vip.add" },
	{ "vip remove", "VIP", "remove a VIP", run_simple, "vip.remove" },
	{ "backend add", "VIP ADDR [--weight W]", "add a backend (starts down until rise checks pass)",
	  run_backend_add, "backend.add" },
	{ "backend remove", "VIP ADDR", "remove a backend", run_simple, "backend.remove" },
	{ "backend weight", "VIP ADDR W", "set a weight (0 = draining)", run_backend_weight, "backend.weight" },
	{ "backend drain", "VIP ADDR", "out of the ring, its flows stay", run_simple, "backend.drain" },
	{ "backend undrain", "VIP ADDR", "back into the ring", run_simple, "backend.undrain" },
	{ "health", "", "health of every backend", run_simple, "health" },
	{ "stats", "[--watch [SECONDS]]", "data plane counters and rates", run_stats, "stats" },
	{ "conntrack", "", "conntrack occupancy per worker (one table in XDP mode)", run_conntrack,
	  "conntrack" },
	{ "lookup", "SRC:PORT DST:PORT tcp|udp", "the backend a flow goes to now", run_lookup, "lookup" },
	{ "reload", "", "reload the config file (as SIGHUP)", run_simple, "reload" },
	{ "version", "", "versions of fulcrumctl and fulcrum-cp", run_simple, "version" },
	{ NULL, NULL, NULL, NULL, NULL },
};

static int socket_from_config(const char *path)
{
	static struct fl_config cfg;
	char err[FL_CONFIG_ERR_LEN];

	if (fl_config_load(path, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, PROG ": %s\n", err);
		return -1;
	}
	sock_path = strdup(cfg.global.control_socket);
	fl_config_free(&cfg);
	return sock_path ? 0 : -1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 'S' },
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = NULL;
	int o;

	while ((o = getopt_long(argc, argv, "+c:h", opts, NULL)) != -1) {
		switch (o) {
		case 'S': sock_path = optarg; break;
		case 'c': config = optarg; break;
		case 'j': json_out = true; break;
		case 'h': usage(stdout); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0) {
		usage(stderr);
		return EXIT_USAGE;
	}
	for (const struct cmd *c = cmds; c->words; c++) {
		size_t l1 = strcspn(c->words, " ");
		bool two = c->words[l1] != '\0';
		if (strncmp(argv[0], c->words, l1) || argv[0][l1] ||
		    (two && (argc < 2 || strcmp(argv[1], c->words + l1 + 1))))
			continue;
		int skip = two ? 2 : 1;
		if (wants_help(argc - skip, argv + skip))
			return cmd_usage(c, stdout, EXIT_OK);
		if (config && socket_from_config(config) < 0)
			return EXIT_USAGE;
		return c->run(c, argc - skip, argv + skip);
	}
	fprintf(stderr, PROG ": unknown command: %s%s%s\n", argv[0], argc > 1 ? " " : "", argc > 1 ? argv[1] : "");
	usage(stderr);
	return EXIT_USAGE;
}
