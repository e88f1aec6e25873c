/* SPDX-License-Identifier: BSD-3-Clause */
/* Counters read back from the data plane, and the Prometheus endpoint:
 * cp/metrics.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "addr.h"
#include "metrics.h"
#include "xdp.h"
#include "xdp_mode.h"

#define NS_PER_MS 1000000ull
#define REQ_MAX 8192u
#define SWEEP_MS 1000u

/* ---- reading the data plane's counters ---- */

static __u64 load(const __u64 *p)
{
	/* each counter has one writer; a relaxed load never tears it */
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* Adds a worker's block of counters (size bytes of __u64) into sum. */
static void add_block(void *sum, const void *block, size_t size)
{
	__u64 *out = sum;
	const __u64 *in = block;

	for (size_t i = 0; i < size / sizeof(__u64); i++)
		out[i] += load(&in[i]);
}

/* In xdp mode the program's per-CPU maps hold the counters (fulcrum-dp's
 * blocks in the shared memory stay zero); a failed map read gives zeros,
 * like a counter block nobody wrote. */
void fl_stats_sum(const struct fl_cp *cp, struct fl_worker_counters *sum)
{
	const struct fl_xdp *x = fl_cp_xdp_program(cp);

	memset(sum, 0, sizeof(*sum));
	if (x) {
		fl_xdp_counters_sum(x, FL_XDP_COUNTERS_WORKER, 0, sum, sizeof(*sum));
		return;
	}
	for (unsigned w = 0; w < cp->shm.hdr->max_workers; w++)
		add_block(sum, fl_shm_worker_counters(&cp->shm, w), sizeof(*sum));
}

bool fl_stats_kept(const struct fl_cp *cp, const struct fl_counter_field *f)
{
	return !fl_cp_xdp_program(cp) ||
	       f->offset != offsetof(struct fl_worker_counters, ct_occupancy);
}

void fl_stats_sum_vip(const struct fl_cp *cp, __u32 vip_id, struct fl_vip_counters *sum)
{
	const struct fl_xdp *x = fl_cp_xdp_program(cp);

	memset(sum, 0, sizeof(*sum));
	if (vip_id >= cp->shm.hdr->max_vips)
		return;
	if (x) {
		fl_xdp_counters_sum(x, FL_XDP_COUNTERS_VIP, vip_id, sum, sizeof(*sum));
		return;
	}
	for (unsigned w = 0; w < cp->shm.hdr->max_workers; w++)
		add_block(sum, fl_shm_vip_counters(&cp->shm, w) + vip_id, sizeof(*sum));
}

void fl_stats_sum_backend(const struct fl_cp *cp, __u32 id, struct fl_backend_counters *sum)
{
	const struct fl_xdp *x = fl_cp_xdp_program(cp);

	memset(sum, 0, sizeof(*sum));
	if (id >= cp->shm.hdr->max_backends)
		return;
	if (x) {
		fl_xdp_counters_sum(x, FL_XDP_COUNTERS_BACKEND, id, sum, sizeof(*sum));
		return;
	}
	for (unsigned w = 0; w < cp->shm.hdr->max_workers; w++)
		add_block(sum, fl_shm_backend_counters(&cp->shm, w) + id, sizeof(*sum));
}

__u32 fl_stats_vip_id(const struct fl_cp *cp, const struct fl_vip_config *v)
{
	const struct fl_tables *t = fl_writer_active(&cp->shm);
	__u32 id;

	return fl_vip_find(t, &v->addr, v->family, htons(v->port), v->proto, &id) ? id : FL_BACKEND_NONE;
}

struct fl_cp_backend *fl_stats_backend(struct fl_cp *cp, const struct fl_vip_config *v,
				       const struct fl_backend_config *bc)
{
	return fl_cp_find(cp, &v->addr, v->family, v->port, v->proto, &bc->key);
}

const char *fl_stats_health(const struct fl_cp_backend *b)
{
	if (!b || !b->checked)
		return "unchecked";
	return b->check->chk.up ? "up" : "down";
}

/* Whether the active slot holds a MAC for an L2 DSR backend. */
static bool mac_published(struct fl_cp *cp, const struct fl_vip_config *v,
			  const struct fl_backend_config *bc)
{
	static const __u8 unknown[6];
	const struct fl_tables *t = fl_writer_active(&cp->shm);
	__u32 id = fl_publisher_backend_id(&cp->pub, &v->addr, v->family, v->port, v->proto, &bc->key);

	return id < t->max_backends && memcmp(t->backends[id].mac, unknown, sizeof(unknown)) != 0;
}

const char *fl_stats_state(struct fl_cp *cp, const struct fl_vip_config *v,
			   const struct fl_backend_config *bc)
{
	const struct fl_cp_backend *b = fl_stats_backend(cp, v, bc);

	/* the order of publish.c: down wins (a failed check, or an L2 DSR
	 * MAC nobody knows yet), then draining */
	if (b && b->checked && !b->check->chk.up)
		return "down";
	if (v->method == FL_METHOD_L2DSR && !bc->has_mac && !mac_published(cp, v, bc))
		return "down";
	if ((b && b->drain) || bc->weight == 0)
		return "draining";
	return "up";
}

/* ---- the exposition text ---- */

struct buf {
	char *p;
	size_t len, cap;
	bool failed;
};

__attribute__((format(printf, 2, 3)))
static void put(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->failed)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap * 2 + (size_t)(n > 0 ? n : 0);
		char *p = realloc(b->p, cap);
		if (!p || n < 0) {
			free(p);
			b->p = NULL;
			b->failed = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
}

static void head(struct buf *b, const char *name, const char *type, const char *help)
{
	put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void vip_label(const struct fl_vip_config *v, char *buf, size_t len)
{
	char a[FL_ADDR_STRLEN];

	fl_addr_format(&v->addr, v->family, a, sizeof(a));
	snprintf(buf, len, v->family == FL_AF_INET6 ? "vip=\"[%s]:%u/%s\",name=\"%s\"" :
		 "vip=\"%s:%u/%s\",name=\"%s\"", a, v->port, fl_proto_name(v->proto), v->name);
}

static void backend_label(const struct fl_vip_config *v, const struct fl_backend_config *bc,
			  char *buf, size_t len)
{
	char a[FL_ADDR_STRLEN], vl[FL_ADDR_STRLEN + FL_NAME_LEN + 40];
	unsigned port = bc->key.port ? ntohs(bc->key.port) : v->port;

	vip_label(v, vl, sizeof(vl));
	fl_addr_format(&bc->key.addr, bc->key.family, a, sizeof(a));
	snprintf(buf, len, bc->key.family == FL_AF_INET6 ? "%s,backend=\"[%s]:%u\"" :
		 "%s,backend=\"%s:%u\"", vl, a, port);
}

static void render_dp(struct fl_cp *cp, struct buf *b)
{
	struct fl_worker_counters sum;
	char name[96];

	fl_stats_sum(cp, &sum);
	for (size_t i = 0; i < sizeof(fl_counter_fields) / sizeof(fl_counter_fields[0]); i++) {
		const struct fl_counter_field *f = &fl_counter_fields[i];
		bool gauge = strcmp(f->name, "ct_occupancy") == 0;

		if (!fl_stats_kept(cp, f))
			continue;
		snprintf(name, sizeof(name), gauge ? "fulcrum_dp_%s" : "fulcrum_dp_%s_total", f->name);
		head(b, name, gauge ? "gauge" : "counter", "data plane counter summed over workers");
		put(b, "%s %llu\n", name,
		    (unsigned long long)*(const __u64 *)((const char *)&sum + f->offset));
	}
	head(b, "fulcrum_drops_total", "counter", "packets dropped, by reason");
	for (unsigned r = 0; r < FL_DROP__MAX; r++)
		put(b, "fulcrum_drops_total{reason=\"%s\"} %llu\n", fl_drop_names[r],
		    (unsigned long long)sum.drops[r]);
	head(b, "fulcrum_conntrack_capacity", "gauge",
	     "conntrack records per worker (fulcrum-dp), or in all (XDP)");
	put(b, "fulcrum_conntrack_capacity %u\n", cp->cfg.dataplane.conntrack.capacity);
	/* the XDP program's table, which every CPU shares, has no occupancy
	 * gauge (fulcrumctl conntrack counts it by a scan) and its evictions
	 * are in fulcrum_dp_ct_evictions_total: only fulcrum-dp has
	 * per-worker figures */
	if (fl_cp_xdp_program(cp))
		return;
	head(b, "fulcrum_conntrack_occupancy", "gauge", "conntrack records in use, per worker");
	for (unsigned w = 0; w < cp->shm.hdr->max_workers; w++)
		put(b, "fulcrum_conntrack_occupancy{worker=\"%u\"} %llu\n", w,
		    (unsigned long long)load(&fl_shm_worker_counters(&cp->shm, w)->ct_occupancy));
	head(b, "fulcrum_conntrack_evictions_total", "counter", "records evicted by new ones, per worker");
	for (unsigned w = 0; w < cp->shm.hdr->max_workers; w++)
		put(b, "fulcrum_conntrack_evictions_total{worker=\"%u\"} %llu\n", w,
		    (unsigned long long)load(&fl_shm_worker_counters(&cp->shm, w)->ct_evictions));
}

static void render_vips(struct fl_cp *cp, struct buf *b)
{
	static const char *const vip_series[] = { "packets", "bytes", "new_flows" };
	static const char *const states[] = { "up", "draining", "down" };
	char l[FL_ADDR_STRLEN * 2 + FL_NAME_LEN + 64];

	for (size_t s = 0; s < 3; s++) {
		put(b, "# HELP fulcrum_vip_%s_total per VIP, summed over workers\n"
		    "# TYPE fulcrum_vip_%s_total counter\n", vip_series[s], vip_series[s]);
		for (unsigned i = 0; i < cp->cfg.n_vips; i++) {
			const struct fl_vip_config *v = &cp->cfg.vips[i];
			struct fl_vip_counters c = { 0 };
			__u32 id = fl_stats_vip_id(cp, v);
			if (id != FL_BACKEND_NONE)
				fl_stats_sum_vip(cp, id, &c);
			vip_label(v, l, sizeof(l));
			put(b, "fulcrum_vip_%s_total{%s} %llu\n", vip_series[s], l, (unsigned long long)
			    (s == 0 ? c.packets : s == 1 ? c.bytes : c.new_flows));
		}
	}
	for (size_t s = 0; s < 4; s++) {
		static const char *const names[] = { "fulcrum_backend_packets_total",
			"fulcrum_backend_bytes_total", "fulcrum_backend_health_up", "fulcrum_backend_state" };
		head(b, names[s], s < 2 ? "counter" : "gauge",
		     s < 2 ? "per backend, summed over workers" :
		     s == 2 ? "1 when the health check passes (or there is none)" :
		     "1 for the backend's state in the tables");
		for (unsigned i = 0; i < cp->cfg.n_vips; i++) {
			const struct fl_vip_config *v = &cp->cfg.vips[i];
			for (unsigned j = 0; j < v->n_backends; j++) {
				const struct fl_backend_config *bc = &v->backends[j];
				struct fl_cp_backend *be = fl_stats_backend(cp, v, bc);
				struct fl_backend_counters c = { 0 };
				__u32 id = fl_publisher_backend_id(&cp->pub, &v->addr, v->family, v->port,
								   v->proto, &bc->key);
				backend_label(v, bc, l, sizeof(l));
				if (s < 2) {
					if (id != FL_BACKEND_NONE)
						fl_stats_sum_backend(cp, id, &c);
					put(b, "%s{%s} %llu\n", names[s], l,
					    (unsigned long long)(s == 0 ? c.packets : c.bytes));
				} else if (s == 2) {
					put(b, "%s{%s} %d\n", names[s], l,
					    strcmp(fl_stats_health(be), "down") != 0);
				} else {
					const char *st = fl_stats_state(cp, v, bc);
					for (size_t k = 0; k < 3; k++)
						put(b, "%s{%s,state=\"%s\"} %d\n", names[s], l, states[k],
						    strcmp(st, states[k]) == 0);
				}
			}
		}
	}
}

char *fl_metrics_render(struct fl_cp *cp, size_t *len)
{
	struct buf b = { .cap = 16384 };

	b.p = malloc(b.cap);
	if (!b.p)
		return NULL;
	head(&b, "fulcrum_table_generation", "gauge", "generation of the published tables");
	put(&b, "fulcrum_table_generation %llu\n",
	    (unsigned long long)(__atomic_load_n(&cp->shm.hdr->published, __ATOMIC_ACQUIRE) >> 1));
	head(&b, "fulcrum_publishes_total", "counter", "tables published by this fulcrum-cp");
	put(&b, "fulcrum_publishes_total %llu\n", (unsigned long long)cp->n_publishes);
	head(&b, "fulcrum_publish_errors_total", "counter", "failed publishes");
	put(&b, "fulcrum_publish_errors_total %llu\n", (unsigned long long)cp->n_publish_errors);
	render_dp(cp, &b);
	render_vips(cp, &b);
	if (b.failed)
		return NULL;
	*len = b.len;
	return b.p;
}

/* ---- the HTTP endpoint ---- */

struct mclient {
	struct fl_io io;
	struct fl_metrics *m;
	struct mclient *prev, *next;
	char req[REQ_MAX];
	size_t req_len;
	char *out;
	size_t out_len, out_off;
	uint64_t since_ns;
};

struct fl_metrics {
	struct fl_cp *cp;
	struct fl_io lio;
	struct fl_timer sweep;
	struct mclient *clients;
	unsigned n_clients;
	uint64_t n_scrapes;
};

static void mclient_close(struct mclient *c)
{
	fl_io_del(&c->m->cp->loop, &c->io);
	close(c->io.fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		c->m->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->m->n_clients--;
	free(c->out);
	free(c);
}

static int respond(struct mclient *c)
{
	static const char nf[] = "not found: try /metrics\n";
	char hdr[256];
	char *body = NULL;
	size_t blen = sizeof(nf) - 1;
	const char *status = "404 Not Found", *type = "text/plain";
	int h;

	if (strncmp(c->req, "GET /metrics ", 13) == 0 || strncmp(c->req, "GET /metrics?", 13) == 0) {
		body = fl_metrics_render(c->m->cp, &blen);
		if (!body)
			return -ENOMEM;
		status = "200 OK";
		type = "text/plain; version=0.0.4; charset=utf-8";
		c->m->n_scrapes++;
	}
	h = snprintf(hdr, sizeof(hdr), "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		     "Connection: close\r\n\r\n", status, type, blen);
	c->out = malloc((size_t)h + blen);
	if (!c->out) {
		free(body);
		return -ENOMEM;
	}
	memcpy(c->out, hdr, (size_t)h);
	memcpy(c->out + h, body ? body : nf, blen);
	c->out_len = (size_t)h + blen;
	free(body);
	return 0;
}

static void on_mclient(struct fl_loop *loop, struct fl_io *io, uint32_t events)
{
	struct mclient *c = io->arg;

	if (events & EPOLLERR)
		goto close;
	if (!c->out) {
		ssize_t n = recv(io->fd, c->req + c->req_len, sizeof(c->req) - 1 - c->req_len, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0)
			goto close;
		c->req_len += (size_t)n;
		c->req[c->req_len] = '\0';
		if (!strstr(c->req, "\r\n\r\n") && !strstr(c->req, "\n\n")) {
			if (c->req_len >= sizeof(c->req) - 1)
				goto close;	/* headers too long */
			return;
		}
		if (respond(c) < 0 || fl_io_mod(loop, io, EPOLLOUT) < 0)
			goto close;
	}
	while (c->out_off < c->out_len) {
		ssize_t n = send(io->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0)
			goto close;
		c->out_off += (size_t)n;
	}
close:
	mclient_close(c);
}

static void on_maccept(struct fl_loop *loop, struct fl_io *io, uint32_t events)
{
	struct fl_metrics *m = io->arg;

	(void)events;
	for (int i = 0; i < 32; i++) {
		int fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct mclient *c;

		if (fd < 0)
			return;
		if (m->n_clients >= FL_METRICS_MAX_CLIENTS || !(c = calloc(1, sizeof(*c)))) {
			close(fd);
			continue;
		}
		c->m = m;
		c->since_ns = loop->now_ns;
		if (fl_io_add(loop, &c->io, fd, EPOLLIN, on_mclient, c) < 0) {
			close(fd);
			free(c);
			continue;
		}
		c->next = m->clients;
		if (c->next)
			c->next->prev = c;
		m->clients = c;
		m->n_clients++;
	}
}

static void on_msweep(struct fl_loop *loop, struct fl_timer *t)
{
	struct fl_metrics *m = t->arg;

	for (struct mclient *c = m->clients, *next; c; c = next) {
		next = c->next;
		if (loop->now_ns - c->since_ns > FL_METRICS_IDLE_MS * NS_PER_MS)
			mclient_close(c);
	}
	fl_timer_in(loop, t, SWEEP_MS);
}

static int parse_listen(const char *text, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[FL_ADDR_STRLEN + 2];
	const char *colon = strrchr(text, ':');
	union fl_addr a;
	__u8 fam;
	size_t hl;
	char *end;
	unsigned long port;

	if (!colon || (hl = (size_t)(colon - text)) < 2 || hl >= sizeof(host))
		return -EINVAL;
	port = strtoul(colon + 1, &end, 10);
	if (*end || port < 1 || port > 65535)
		return -EINVAL;
	if (text[0] == '[' && text[hl - 1] == ']') {
		memcpy(host, text + 1, hl - 2);
		host[hl - 2] = '\0';
	} else {
		memcpy(host, text, hl);
		host[hl] = '\0';
	}
	if (fl_addr_parse(host, &a, &fam) < 0)
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));
	if (fam == FL_AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)ss;
		s->sin_family = AF_INET;
		s->sin_port = htons((__u16)port);
		s->sin_addr.s_addr = a.v4;
		*len = sizeof(*s);
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;
		s->sin6_family = AF_INET6;
		s->sin6_port = htons((__u16)port);
		memcpy(&s->sin6_addr, a.bytes, 16);
		*len = sizeof(*s);
	}
	return 0;
}

int fl_metrics_open(struct fl_cp *cp, const char *listen_on, struct fl_metrics **out,
		    char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	struct fl_metrics *m;
	socklen_t sl;
	int fd, one = 1, rc;

	if (parse_listen(listen_on, &ss, &sl) < 0) {
		snprintf(err, errlen, "metrics_listen %s: expected ADDR:PORT", listen_on);
		return -EINVAL;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	m->cp = cp;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 64) < 0) {
		rc = -errno;
		goto fail;
	}
	rc = fl_io_add(&cp->loop, &m->lio, fd, EPOLLIN, on_maccept, m);
	if (rc < 0)
		goto fail;
	fl_timer_init(&m->sweep, on_msweep, m);
	fl_timer_in(&cp->loop, &m->sweep, SWEEP_MS);
	*out = m;
	return 0;
fail:
	snprintf(err, errlen, "metrics on %s: %s", listen_on, strerror(-rc));
	if (fd >= 0)
		close(fd);
	free(m);
	return rc;
}

void fl_metrics_close(struct fl_metrics *m)
{
	if (!m)
		return;
	while (m->clients)
		mclient_close(m->clients);
	fl_timer_cancel(&m->cp->loop, &m->sweep);
	fl_io_del(&m->cp->loop, &m->lio);
	close(m->lio.fd);
	free(m);
}
