/* SPDX-License-Identifier: BSD-3-Clause */
/* Health checkers (cp/health.h, check_tcp.c, check_http.c,
 * check_tcp_half_open.c) against real listeners on 127.0.0.1 (and ::1),
 * served by a thread of this test. Every wait is bounded. */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "check.h"
#include "daemon.h"
#include "health.h"
#include "loop.h"

#define MS 1000000ull

/* ---- a test server ---- */

enum srv_mode { SRV_HTTP, SRV_SILENT };

struct server {
	int lfd;
	__u16 port;
	enum srv_mode mode;
	const char *answer;		/* whole HTTP answer */
	SSL_CTX *tls;			/* https when set */
	volatile int stop;
	pthread_t thr;
	int held[64];			/* SRV_SILENT: accepted, never answered */
	int n_held;
	volatile int served;
};

/* A listener on the loopback address of the family (127.0.0.1 or ::1). */
static int listen_family(int family, __u16 port, int backlog, __u16 *bound)
{
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons(port),
				     .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr *sa = family == AF_INET ? (struct sockaddr *)&sin : (struct sockaddr *)&sin6;
	socklen_t len = family == AF_INET ? sizeof(sin) : sizeof(sin6);
	int one = 1, fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, sa, len) < 0 || listen(fd, backlog) < 0) {
		close(fd);
		return -1;
	}
	getsockname(fd, sa, &len);
	/* sin_port and sin6_port are at the same offset */
	*bound = ntohs(((struct sockaddr_in *)sa)->sin_port);
	return fd;
}

static int listen_on(__u16 port, __u16 *bound)
{
	return listen_family(AF_INET, port, 64, bound);
}

static void serve_one(struct server *s, int fd)
{
	char req[4096];
	size_t len = 0;
	SSL *ssl = NULL;

	if (s->mode == SRV_SILENT) {
		if (s->n_held < 64)
			s->held[s->n_held++] = fd;
		else
			close(fd);
		return;
	}
	struct timeval tv = { .tv_sec = 2 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (s->tls) {
		ssl = SSL_new(s->tls);
		SSL_set_fd(ssl, fd);
		if (SSL_accept(ssl) != 1)
			goto out;
	}
	while (len < sizeof(req) - 1 && !memmem(req, len, "\r\n\r\n", 4)) {
		int n = ssl ? SSL_read(ssl, req + len, (int)(sizeof(req) - 1 - len))
			    : (int)recv(fd, req + len, sizeof(req) - 1 - len, 0);
		if (n <= 0)
			goto out;
		len += (size_t)n;
	}
	if (ssl)
		SSL_write(ssl, s->answer, (int)strlen(s->answer));
	else if (send(fd, s->answer, strlen(s->answer), MSG_NOSIGNAL) < 0)
		goto out;
	s->served++;
	if (ssl)
		SSL_shutdown(ssl);
out:
	SSL_free(ssl);
	close(fd);
}

static void *server_main(void *arg)
{
	struct server *s = arg;

	while (!s->stop) {
		struct pollfd p = { .fd = s->lfd, .events = POLLIN };
		if (poll(&p, 1, 20) <= 0)
			continue;
		int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			serve_one(s, fd);
	}
	return NULL;
}

static int server_start(struct server *s, enum srv_mode mode, const char *answer, SSL_CTX *tls)
{
	memset(s, 0, sizeof(*s));
	s->mode = mode;
	s->answer = answer;
	s->tls = tls;
	s->lfd = listen_on(0, &s->port);
	if (s->lfd < 0)
		return -1;
	return pthread_create(&s->thr, NULL, server_main, s) == 0 ? 0 : -1;
}

static void server_stop(struct server *s)
{
	s->stop = 1;
	pthread_join(s->thr, NULL);
	close(s->lfd);
	for (int i = 0; i < s->n_held; i++)
		close(s->held[i]);
}

/* A port nothing listens on (bound, then closed). */
static __u16 closed_port_family(int family)
{
	__u16 port = 0;
	int fd = listen_family(family, 0, 64, &port);

	close(fd);
	return port;
}

static __u16 closed_port(void)
{
	return closed_port_family(AF_INET);
}

/* A self-signed certificate for CN=localhost, made with the OpenSSL API. */
static SSL_CTX *tls_server_ctx(void)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (!key || !x || !ctx)
		return NULL;
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1, 0);
	X509_set_issuer_name(x, name);
	if (X509_sign(x, key, EVP_sha256()) <= 0 || SSL_CTX_use_certificate(ctx, x) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, key) != 1)
		return NULL;
	X509_free(x);
	EVP_PKEY_free(key);
	return ctx;
}

/* ---- checkers ---- */

static struct fl_hc_config hc_base(enum fl_hc_type type)
{
	struct fl_hc_config hc;

	memset(&hc, 0, sizeof(hc));
	hc.type = type;
	hc.interval_ms = 40;
	hc.timeout_ms = 30;
	hc.rise = 2;
	hc.fall = 3;
	strcpy(hc.http_path, "/health");
	hc.expect_status[0] = 200;
	hc.n_expect_status = 1;
	return hc;
}

struct env {
	struct fl_loop loop;
	struct fl_checker c;
	int changes;
};

static void on_change(struct fl_checker *c, void *arg)
{
	struct env *e = arg;

	(void)c;
	e->changes++;
}

/* A checker of the family's loopback address, started. */
static int env_start_family(struct env *e, const struct fl_hc_config *hc, int family, __u16 port,
			    bool up)
{
	union fl_addr a = { .v4 = htonl(INADDR_LOOPBACK) };
	char err[256];
	int rc;

	if (family == AF_INET6)
		memcpy(a.bytes, &in6addr_loopback, 16);
	memset(e, 0, sizeof(*e));
	rc = fl_loop_init(&e->loop, err, sizeof(err));
	CHECK(rc == 0, "loop: %s", err);
	if (rc)
		return rc;
	rc = fl_checker_init(&e->c, &e->loop, hc, &a, family == AF_INET ? FL_AF_INET : FL_AF_INET6,
			     port, up, on_change, e, err, sizeof(err));
	CHECK(rc == 0, "checker: %s", err);
	if (rc == 0)
		rc = fl_checker_start(&e->c, 0);
	return rc;
}

static int env_start(struct env *e, const struct fl_hc_config *hc, __u16 port, bool up)
{
	return env_start_family(e, hc, AF_INET, port, up);
}

static void env_stop(struct env *e)
{
	fl_checker_stop(&e->c);
	fl_loop_fini(&e->loop);
}

/* Runs the loop until cond or ms; the value of cond. */
#define RUN_UNTIL(e, cond, ms)                                                \
	({                                                                    \
		uint64_t end_ = fl_mono_ns() + (uint64_t)(ms) * MS;           \
		while (!(cond) && fl_mono_ns() < end_)                        \
			fl_loop_run_once(&(e)->loop, 10);                     \
		(bool)(cond);                                                 \
	})

/* Between probes the checker keeps its socket, but no connection. */
static bool connection_open(const struct fl_checker *c)
{
	struct sockaddr_storage peer;
	socklen_t len = sizeof(peer);

	return c->io.fd >= 0 && getpeername(c->io.fd, (struct sockaddr *)&peer, &len) == 0;
}

#define OK_200 "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\nservice ok"
#define ERR_500 "HTTP/1.1 500 Oops\r\nContent-Length: 4\r\nConnection: close\r\n\r\nfail"

static void tcp_up(void)
{
	struct fl_hc_config hc = hc_base(FL_HC_TCP);
	struct server s;
	struct env e;

	REQUIRE(server_start(&s, SRV_HTTP, OK_200, NULL) == 0, "server");
	if (env_start(&e, &hc, s.port, false) == 0) {
		CHECK(RUN_UNTIL(&e, e.c.up, 2000), "not up: %s", e.c.reason);
		CHECK(e.changes == 1 && e.c.ok_run == 2 && e.c.n_failures == 0,
		      "changes %d ok_run %u failures %llu", e.changes, e.c.ok_run,
		      (unsigned long long)e.c.n_failures);
		CHECK(strcmp(e.c.reason, "connected") == 0, "reason %s", e.c.reason);
		/* later probes reuse the socket, each connection reset at its end */
		int fd = e.c.io.fd;
		CHECK(RUN_UNTIL(&e, e.c.n_checks >= 5, 2000), "%llu checks",
		      (unsigned long long)e.c.n_checks);
		CHECK(e.c.io.fd == fd && e.c.n_failures == 0, "fd %d then %d, %llu failures", fd,
		      e.c.io.fd, (unsigned long long)e.c.n_failures);
		RUN_UNTIL(&e, !e.c.running, 200);
		CHECK(!e.c.running && !connection_open(&e.c), "connection left open between probes");
	}
	env_stop(&e);
	server_stop(&s);
}

static void tcp_refused_down(void)
{
	struct fl_hc_config hc = hc_base(FL_HC_TCP);
	struct env e;

	if (env_start(&e, &hc, closed_port(), true) == 0) {
		CHECK(RUN_UNTIL(&e, !e.c.up, 2000), "not down");
		CHECK(e.c.n_checks == 3 && e.c.fail_run == 3, "down after %llu checks",
		      (unsigned long long)e.c.n_checks);
		CHECK(strcmp(e.c.reason, "connect refused") == 0, "reason %s", e.c.reason);
		char run[48];
		CHECK(strcmp(fl_checker_run_text(&e.c, run, sizeof(run)), "3 of fall 3") == 0, "%s", run);
		/* a fourth failure changes nothing */
		RUN_UNTIL(&e, e.c.n_checks >= 5, 2000);
		CHECK(e.changes == 1, "%d changes", e.changes);
	}
	env_stop(&e);
}

/* Down on refusals, then the server comes back: up after rise. */
static void rise_back_up(void)
{
	struct fl_hc_config hc = hc_base(FL_HC_TCP);
	__u16 port = closed_port(), got = 0;
	struct env e;
	int lfd = -1;

	if (env_start(&e, &hc, port, true) == 0) {
		CHECK(RUN_UNTIL(&e, !e.c.up, 2000), "not down");
		lfd = listen_on(port, &got);
		CHECK(lfd >= 0 && got == port, "cannot listen again on %u", port);
		uint64_t checks = e.c.n_checks;
		CHECK(RUN_UNTIL(&e, e.c.up, 2000), "not back up: %s", e.c.reason);
		CHECK(e.c.n_checks - checks == 2, "up after %llu successes",
		      (unsigned long long)(e.c.n_checks - checks));
		CHECK(e.changes == 2, "%d changes", e.changes);
	}
	env_stop(&e);
	if (lfd >= 0)
		close(lfd);
}

static void http_status(void)
{
	struct fl_hc_config hc = hc_base(FL_HC_HTTP);
	struct server ok, bad;
	struct env e;

	REQUIRE(server_start(&ok, SRV_HTTP, OK_200, NULL) == 0, "server");
	REQUIRE(server_start(&bad, SRV_HTTP, ERR_500, NULL) == 0, "server");
	if (env_start(&e, &hc, ok.port, false) == 0) {
		CHECK(RUN_UNTIL(&e, e.c.up, 2000), "200 not up: %s", e.c.reason);
		CHECK(strcmp(e.c.reason, "http status 200") == 0, "reason %s", e.c.reason);
	}
	env_stop(&e);
	if (env_start(&e, &hc, bad.port, true) == 0) {
		CHECK(RUN_UNTIL(&e, !e.c.up, 2000), "500 not down");
		CHECK(strcmp(e.c.reason, "http status 500") == 0, "reason %s", e.c.reason);
	}
	env_stop(&e);
	/* 500 in the expected set: up */
	hc.expect_status[1] = 500;
	hc.n_expect_status = 2;
	if (env_start(&e, &hc, bad.port, false) == 0)
		CHECK(RUN_UNTIL(&e, e.c.up, 2000), "500 expected, not up: %s", e.c.reason);
	env_stop(&e);
	server_stop(&ok);
	server_stop(&bad);
}

static void http_body(void)
{
	struct fl_hc_config hc = hc_base(FL_HC_HTTP);
	struct server s;
	struct env e;

	REQUIRE(server_start(&s, SRV_HTTP, OK_200, NULL) == 0, "server");
	strcpy(hc.expect_body, "ice o");
	if (env_start(&e, &hc, s.port, false) == 0)
		CHECK(RUN_UNTIL(&e, e.c.up, 2000), "body matches, not up: %s", e.c.reason);
	env_stop(&e);
	strcpy(hc.expect_body, "healthy");
	if (env_start(&e, &hc, s.port, true) == 0) {
		CHECK(RUN_UNTIL(&e, !e.c.up, 2000), "body lacks, not down");
		CHECK(strstr(e.c.reason, "body lacks") != NULL, "reason %s", e.c.reason);
	}
	env_stop(&e);
	server_stop(&s);
}

static void https_noverify(void)
{
	struct fl_hc_config hc = hc_base(FL_HC_HTTPS);
	SSL_CTX *tls = tls_server_ctx();
	struct server s;
	struct env e;

	REQUIRE(tls, "no certificate");
	REQUIRE(server_start(&s, SRV_HTTP, OK_200, tls) == 0, "server");
	hc.interval_ms = 200;	/* a handshake takes longer than a connect */
	hc.timeout_ms = 150;
	strcpy(hc.expect_body, "ok");
	strcpy(hc.http_host, "localhost");
	if (env_start(&e, &hc, s.port, false) == 0) {
		CHECK(RUN_UNTIL(&e, e.c.up, 3000), "https not up: %s", e.c.reason);
		CHECK(s.served >= 2, "served %d", s.served);
	}
	env_stop(&e);
	server_stop(&s);
	SSL_CTX_free(tls);
}

static void https_verify_fails(void)
{
	struct fl_hc_config hc = hc_base(FL_HC_HTTPS);
	SSL_CTX *tls = tls_server_ctx();
	struct server s;
	struct env e;

	REQUIRE(tls, "no certificate");
	REQUIRE(server_start(&s, SRV_HTTP, OK_200, tls) == 0, "server");
	hc.interval_ms = 200;
	hc.timeout_ms = 150;
	hc.tls_verify = true;
	strcpy(hc.http_host, "localhost");
	if (env_start(&e, &hc, s.port, true) == 0) {
		CHECK(RUN_UNTIL(&e, !e.c.up, 3000), "self-signed accepted");
		CHECK(strstr(e.c.reason, "certificate") != NULL, "reason %s", e.c.reason);
		fprintf(stderr, "verify failure: %s\n", e.c.reason);
		CHECK(s.served == 0, "served %d requests", s.served);
	}
	env_stop(&e);
	server_stop(&s);
	SSL_CTX_free(tls);
}

static void timeout(void)
{
	struct fl_hc_config hc = hc_base(FL_HC_HTTP);
	struct server s;
	struct env e;

	REQUIRE(server_start(&s, SRV_SILENT, NULL, NULL) == 0, "server");
	hc.fall = 2;
	if (env_start(&e, &hc, s.port, true) == 0) {
		uint64_t t0 = fl_mono_ns();
		CHECK(RUN_UNTIL(&e, !e.c.up, 2000), "silent server not down");
		CHECK(strstr(e.c.reason, "timeout") != NULL, "reason %s", e.c.reason);
		/* two probes of 30 ms timeout, 40 ms apart */
		CHECK(fl_mono_ns() - t0 >= 60 * MS, "down too fast");
		CHECK(e.c.running || !connection_open(&e.c), "connection left open");
	}
	env_stop(&e);
	server_stop(&s);
}

/* ---- tcp-half-open ---- */

/* The type needs CAP_NET_RAW: without it the case is skipped (exit 77),
 * after checking that the checker says so. */
static void need_raw(void)
{
	struct fl_hc_config hc = hc_base(FL_HC_TCP_HALF_OPEN);
	union fl_addr a = { .v4 = htonl(INADDR_LOOPBACK) };
	struct fl_checker c;
	struct fl_loop loop;
	char err[256];
	int fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_TCP), why = errno;

	if (fd >= 0) {
		close(fd);
		return;
	}
	if (fl_loop_init(&loop, err, sizeof(err)) == 0) {
		CHECK(fl_checker_init(&c, &loop, &hc, &a, FL_AF_INET, 80, true, NULL, NULL, err,
				      sizeof(err)) < 0 && strstr(err, "need CAP_NET_RAW") != NULL,
		      "without CAP_NET_RAW: %s", err);
		fl_loop_fini(&loop);
	}
	printf("skip: tcp-half-open needs CAP_NET_RAW (%s)\n", strerror(why));
	exit(fl_check_failures ? 1 : 77);
}

/* Nothing accepted: the listener's queue is empty. */
static bool nothing_accepted(int lfd)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };

	return poll(&p, 1, 0) == 0;
}

/* Probes of the type pass against a listener of the family that never
 * accepts, with this reason, and leave nothing in its queue for the service
 * to accept and close. */
static void passes_without_connection(enum fl_hc_type type, int family, const char *reason)
{
	struct fl_hc_config hc = hc_base(type);
	__u16 port = 0;
	int lfd = listen_family(family, 0, 64, &port);
	struct env e;

	REQUIRE(lfd >= 0, "listen");
	if (env_start_family(&e, &hc, family, port, false) == 0) {
		CHECK(RUN_UNTIL(&e, e.c.up, 2000), "not up: %s", e.c.reason);
		CHECK(strcmp(e.c.reason, reason) == 0, "reason %s", e.c.reason);
		CHECK(RUN_UNTIL(&e, e.c.n_checks >= 5, 2000), "%llu checks",
		      (unsigned long long)e.c.n_checks);
		CHECK(e.c.n_failures == 0 && e.changes == 1, "%llu failures, %d changes",
		      (unsigned long long)e.c.n_failures, e.changes);
		/* tcp-half-open has no socket of its own */
		CHECK(type != FL_HC_TCP_HALF_OPEN || e.c.io.fd < 0, "checker socket %d", e.c.io.fd);
		RUN_UNTIL(&e, !e.c.running, 200);
		CHECK(nothing_accepted(lfd), "a %s probe left a connection to accept",
		      fl_hc_type_name(type));
	}
	env_stop(&e);
	close(lfd);
}

/* A tcp probe is SYN, SYN-ACK, RST: the kernel holds back the handshake's
 * last ACK. */
static void tcp_no_connection(void)
{
	passes_without_connection(FL_HC_TCP, AF_INET, "connected");
	passes_without_connection(FL_HC_TCP, AF_INET6, "connected");
}

static void half_open_family(int family)
{
	struct fl_hc_config hc = hc_base(FL_HC_TCP_HALF_OPEN);
	struct env e;

	passes_without_connection(FL_HC_TCP_HALF_OPEN, family, "SYN-ACK");
	if (env_start_family(&e, &hc, family, closed_port_family(family), true) == 0) {
		CHECK(RUN_UNTIL(&e, !e.c.up, 2000), "closed port not down: %s", e.c.reason);
		CHECK(e.c.n_checks == 3 && strcmp(e.c.reason, "refused") == 0, "%llu checks, reason %s",
		      (unsigned long long)e.c.n_checks, e.c.reason);
	}
	env_stop(&e);
}

static void half_open_v4(void)
{
	need_raw();
	half_open_family(AF_INET);
}

static void half_open_v6(void)
{
	need_raw();
	half_open_family(AF_INET6);
}

/* A listener whose accept queue is full drops SYNs: silence on loopback.
 * The connection that fills it goes back through *client. */
static int listen_full_family(int family, __u16 *port, int *client)
{
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int lfd = listen_family(family, 0, 0, port);
	int rc;

	*client = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sin.sin_port = sin6.sin6_port = htons(*port);
	rc = family == AF_INET ? connect(*client, (struct sockaddr *)&sin, sizeof(sin))
			       : connect(*client, (struct sockaddr *)&sin6, sizeof(sin6));
	if (lfd < 0 || *client < 0 || rc < 0) {
		if (lfd >= 0)
			close(lfd);
		if (*client >= 0)
			close(*client);
		return -1;
	}
	return lfd;
}

static int listen_full(__u16 *port, int *client)
{
	return listen_full_family(AF_INET, port, client);
}

static void half_open_timeout(void)
{
	struct fl_hc_config hc = hc_base(FL_HC_TCP_HALF_OPEN);
	__u16 port;
	int client, lfd;
	struct env e;

	need_raw();
	lfd = listen_full(&port, &client);
	REQUIRE(lfd >= 0, "full listener");
	hc.fall = 2;
	if (env_start(&e, &hc, port, true) == 0) {
		uint64_t t0 = fl_mono_ns();
		CHECK(RUN_UNTIL(&e, !e.c.up, 2000), "silent listener not down: %s", e.c.reason);
		CHECK(strcmp(e.c.reason, "timeout after 30 ms") == 0, "reason %s", e.c.reason);
		CHECK(fl_mono_ns() - t0 >= 60 * MS, "down too fast");
	}
	env_stop(&e);
	close(client);
	close(lfd);
}

/* Two checkers of one target (a backend of two VIPs), started together so
 * that their probes go out in the same turn of the loop, both stay up. On
 * loopback each answer and its reset come back within the send, so this
 * shows them working side by side, not that one source port for both would
 * fail: that needs a slow path (no netem on this kernel). */
static void half_open_shared_target(void)
{
	struct fl_hc_config hc = hc_base(FL_HC_TCP_HALF_OPEN);
	union fl_addr a = { .v4 = htonl(INADDR_LOOPBACK) };
	struct fl_checker c2;
	__u16 port = 0;
	int lfd = listen_family(AF_INET, 0, 64, &port);
	char err[256];
	struct env e;

	need_raw();
	REQUIRE(lfd >= 0, "listen");
	if (env_start(&e, &hc, port, false) == 0) {
		CHECK(fl_checker_init(&c2, &e.loop, &hc, &a, FL_AF_INET, port, false, NULL, NULL, err,
				      sizeof(err)) == 0, "second checker: %s", err);
		fl_checker_start(&c2, 0);
		CHECK(RUN_UNTIL(&e, e.c.n_checks >= 8 && c2.n_checks >= 8, 3000), "%llu and %llu checks",
		      (unsigned long long)e.c.n_checks, (unsigned long long)c2.n_checks);
		CHECK(e.c.up && c2.up && e.c.n_failures == 0 && c2.n_failures == 0,
		      "failures %llu (%s) and %llu (%s)", (unsigned long long)e.c.n_failures,
		      e.c.reason, (unsigned long long)c2.n_failures, c2.reason);
		fl_checker_stop(&c2);
		/* the first goes on alone */
		uint64_t before = e.c.n_checks;
		CHECK(RUN_UNTIL(&e, e.c.n_checks >= before + 3, 2000) && e.c.n_failures == 0,
		      "after the second stopped: %llu failures, %s",
		      (unsigned long long)e.c.n_failures, e.c.reason);
		/* started again, the second takes a source port anew */
		CHECK(fl_checker_start(&c2, 0) == 0 && c2.held != NULL, "restart: %s", c2.reason);
		before = c2.n_checks;
		CHECK(RUN_UNTIL(&e, c2.n_checks >= before + 3, 2000) && c2.n_failures == 0,
		      "after the restart: %llu failures, %s", (unsigned long long)c2.n_failures,
		      c2.reason);
		fl_checker_stop(&c2);
	}
	env_stop(&e);
	close(lfd);
}

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* A target has 64 source ports: a 65th checker of it is refused with a
 * message, and a port given back is taken again. The last checker stopped
 * closes every socket the type opened. */
static void half_open_port_limit(void)
{
	struct fl_hc_config hc = hc_base(FL_HC_TCP_HALF_OPEN);
	union fl_addr a = { .v4 = htonl(INADDR_LOOPBACK) };
	struct fl_checker cs[65];
	struct fl_loop loop;
	char err[256];
	int n = 0, fds;

	need_raw();
	REQUIRE(fl_loop_init(&loop, err, sizeof(err)) == 0, "loop: %s", err);
	fds = open_fds();
	while (n < 64 && fl_checker_init(&cs[n], &loop, &hc, &a, FL_AF_INET, 80, true, NULL, NULL,
					 err, sizeof(err)) == 0)
		n++;
	CHECK(n == 64, "checker %d: %s", n, err);
	if (n == 64) {
		CHECK(fl_checker_init(&cs[64], &loop, &hc, &a, FL_AF_INET, 80, true, NULL, NULL, err,
				      sizeof(err)) == -EBUSY &&
		      strcmp(err, "more than 64 tcp-half-open checks of 127.0.0.1:80") == 0, "65th: %s", err);
		fl_checker_stop(&cs[17]);
		CHECK(fl_checker_init(&cs[17], &loop, &hc, &a, FL_AF_INET, 80, true, NULL, NULL, err,
				      sizeof(err)) == 0, "after one stopped: %s", err);
	}
	for (int i = 0; i < n; i++)
		fl_checker_stop(&cs[i]);
	CHECK(open_fds() == fds, "%d fds open, %d before", open_fds(), fds);
	fl_loop_fini(&loop);
}

/* The SYN of a probe to port, seen on a raw socket of this test: its
 * source port and ISN. */
static bool sniff_syn(int sfd, __u16 port, __be16 *sport, uint32_t *isn)
{
	__u32 buf[64];
	ssize_t n;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	/* an IPv6 raw socket gives no IP header */
	const bool v6 = getsockname(sfd, (struct sockaddr *)&ss, &sl) == 0 &&
			ss.ss_family == AF_INET6;

	while ((n = recv(sfd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
		const __u8 *b = (const __u8 *)buf;
		size_t ihl = v6 ? 0 : (b[0] & 0xfu) * 4;
		const struct tcphdr *th = (const struct tcphdr *)(b + ihl);
		if ((size_t)n < ihl + sizeof(*th) || th->dest != htons(port) || !th->syn || th->ack)
			continue;
		*sport = th->source;
		*isn = ntohl(th->seq);
		return true;
	}
	return false;
}

/* Runs the loop until a probe's SYN is seen (the condition of RUN_UNTIL is
 * evaluated once more at its end: the SYN is read only once). */
static bool wait_syn(struct env *e, int sfd, __u16 port, __be16 *sport, uint32_t *isn)
{
	bool seen = false;

	return RUN_UNTIL(e, seen || (seen = sniff_syn(sfd, port, sport, isn)), 1000);
}

/* A segment from 127.0.0.1:from to 127.0.0.1:to. Its checksum is left
 * zero: the checker's raw socket gets it before TCP drops it for that, so
 * no reset answers it. */
static void inject(int sfd, __u16 from, __be16 to, uint8_t flags, uint32_t ack, size_t len)
{
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct tcphdr th;

	memset(&th, 0, sizeof(th));
	th.source = htons(from);
	th.dest = to;
	th.seq = htonl(12345);
	th.ack_seq = htonl(ack);
	th.doff = 5;
	th.syn = !!(flags & TH_SYN);
	th.rst = !!(flags & TH_RST);
	th.ack = !!(flags & TH_ACK);
	th.window = htons(1000);
	CHECK(sendto(sfd, &th, len, 0, (struct sockaddr *)&dst, sizeof(dst)) == (ssize_t)len,
	      "inject: %s", strerror(errno));
}

/* Answers that are not the probe's are ignored: a wrong acknowledgement, a
 * reset without one, another source or destination port, a short segment,
 * and the right answer once its probe has timed out. The right answer to a
 * running probe, made the same way, counts. */
static void half_open_ignores_others(void)
{
	struct fl_hc_config hc = hc_base(FL_HC_TCP_HALF_OPEN);
	__u16 port;
	__be16 sport = 0;
	uint32_t isn = 0;
	int client, lfd, sfd;
	struct env e;

	need_raw();
	lfd = listen_full(&port, &client);
	REQUIRE(lfd >= 0, "full listener");
	sfd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_TCP);
	REQUIRE(sfd >= 0, "raw socket: %s", strerror(errno));
	hc.interval_ms = 400;
	hc.timeout_ms = 300;
	hc.fall = 100;
	if (env_start(&e, &hc, port, true) == 0) {
		CHECK(wait_syn(&e, sfd, port, &sport, &isn), "no SYN seen");
		inject(sfd, port, sport, TH_SYN | TH_ACK, isn + 2, sizeof(struct tcphdr));
		inject(sfd, port, sport, TH_RST, isn + 1, sizeof(struct tcphdr));
		inject(sfd, port + 1, sport, TH_SYN | TH_ACK, isn + 1, sizeof(struct tcphdr));
		inject(sfd, port, htons(ntohs(sport) + 1), TH_RST | TH_ACK, isn + 1,
		       sizeof(struct tcphdr));
		inject(sfd, port, sport, TH_SYN | TH_ACK, isn + 1, 12);
		CHECK(RUN_UNTIL(&e, e.c.n_checks == 1, 1000), "first probe not over");
		CHECK(e.c.n_failures == 1 && strstr(e.c.reason, "timeout") != NULL,
		      "not ignored: %llu failures, reason %s", (unsigned long long)e.c.n_failures,
		      e.c.reason);
		/* late: the first probe's answer while the second runs */
		uint32_t first_isn = isn;
		CHECK(wait_syn(&e, sfd, port, &sport, &isn) && e.c.running, "no second probe");
		inject(sfd, port, sport, TH_SYN | TH_ACK, first_isn + 1, sizeof(struct tcphdr));
		CHECK(RUN_UNTIL(&e, e.c.n_checks == 2, 1000) && e.c.n_failures == 2,
		      "late answer counted: %s", e.c.reason);
		/* the control: the third probe's own answer */
		CHECK(wait_syn(&e, sfd, port, &sport, &isn), "no third SYN");
		inject(sfd, port, sport, TH_SYN | TH_ACK, isn + 1, sizeof(struct tcphdr));
		CHECK(RUN_UNTIL(&e, e.c.n_checks == 3, 1000) && e.c.last_ok &&
		      strcmp(e.c.reason, "SYN-ACK") == 0, "own answer not taken: %s", e.c.reason);
	}
	env_stop(&e);
	close(sfd);
	close(client);
	close(lfd);
}

/* An ICMP "host unreachable" (ICMPv6 "address unreachable") from loopback
 * about the SYN of a probe in flight from sport, quoting its IP header and
 * first 8 TCP bytes; seq is what it says the SYN's sequence number was.
 * ICMPv6's checksum is the kernel's. */
/* A probe whose answer the kernel dropped, the checkers' raw socket's
 * queue full (a stalled loop), times out saying so: a false timeout is told
 * from a silent backend. The target is silent (a full listener); resets
 * that acknowledge nothing of ours fill the queue, then the probe's true
 * answer comes and finds no room. */
static void half_open_dropped_answers(void)
{
	struct fl_hc_config hc = hc_base(FL_HC_TCP_HALF_OPEN);
	int client, lfd, sfd;
	__be16 sport;
	uint32_t isn;
	__u16 port;
	struct env e;

	need_raw();
	lfd = listen_full(&port, &client);
	REQUIRE(lfd >= 0, "full listener");
	/* opened after the connection that fills the listener: its SYN is
	 * not the probe's */
	sfd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_TCP);
	REQUIRE(sfd >= 0, "raw socket");
	hc.interval_ms = 400;
	hc.timeout_ms = 200;
	if (env_start(&e, &hc, port, true) == 0) {
		CHECK(wait_syn(&e, sfd, port, &sport, &isn), "no SYN");
		/* the checkers' socket holds 2 MiB (it asks for 1, the kernel
		 * doubles that), some 2,500 segments here: 20,000 overflow it */
		for (int i = 0; i < 20000; i++)
			inject(sfd, port, sport, TH_RST | TH_ACK, isn + 7, sizeof(struct tcphdr));
		inject(sfd, port, sport, TH_SYN | TH_ACK, isn + 1, sizeof(struct tcphdr));
		CHECK(RUN_UNTIL(&e, e.c.n_checks == 1, 1000), "probe not over");
		CHECK(e.c.n_failures == 1 && strncmp(e.c.reason, "timeout after 200 ms; ", 22) == 0 &&
		      strstr(e.c.reason, "answers to tcp-half-open probes were dropped meanwhile"),
		      "%llu failures, reason %s", (unsigned long long)e.c.n_failures, e.c.reason);
	}
	env_stop(&e);
	close(client);
	close(lfd);
	close(sfd);
}

static void inject_unreachable(int icmp_fd, int family, __u16 port, __be16 sport, uint32_t seq)
{
	struct sockaddr_in6 dst6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	const bool v6 = family == AF_INET6;
	const size_t iplen = v6 ? 40 : 20, len = 8 + iplen + 8;
	__u8 m[8 + 40 + 8] = { 0 }, *ip = m + 8, *tcp = ip + iplen;
	__be32 seq_be = htonl(seq);
	__be16 dport = htons(port);
	ssize_t sent;

	memcpy(tcp, &sport, 2);
	memcpy(tcp + 2, &dport, 2);
	memcpy(tcp + 4, &seq_be, 4);
	if (v6) {
		m[0] = 1;	/* destination unreachable */
		m[1] = 3;	/* address unreachable */
		ip[0] = 0x60;
		ip[5] = 24;	/* payload length: TCP header and MSS option */
		ip[6] = IPPROTO_TCP;
		ip[7] = 64;
		ip[23] = 1;	/* ::1 */
		ip[39] = 1;	/* ::1 */
	} else {
		__be32 lo = htonl(INADDR_LOOPBACK);
		__be16 tot = htons(44);
		uint32_t sum = 0;

		ip[0] = 0x45;
		memcpy(ip + 2, &tot, 2);
		ip[8] = 64;
		ip[9] = IPPROTO_TCP;
		memcpy(ip + 12, &lo, 4);
		memcpy(ip + 16, &lo, 4);
		m[0] = 3;	/* destination unreachable */
		m[1] = 1;	/* host unreachable */
		for (size_t i = 0; i < len; i += 2)
			sum += (uint32_t)m[i] << 8 | m[i + 1];
		while (sum >> 16)
			sum = (sum & 0xffff) + (sum >> 16);
		m[2] = (__u8)(~sum >> 8);
		m[3] = (__u8)~sum;
	}
	sent = v6 ? sendto(icmp_fd, m, len, 0, (struct sockaddr *)&dst6, sizeof(dst6))
		  : sendto(icmp_fd, m, len, 0, (struct sockaddr *)&dst, sizeof(dst));
	CHECK(sent == (ssize_t)len, "inject ICMP: %s", strerror(errno));
}

/* An ICMP error about a probe's SYN fails it at once with that error, as
 * it fails a connect(); one that quotes another sequence number is not the
 * probe's and is ignored (the probe then times out). */
static void half_open_icmp_error_family(int family)
{
	struct fl_hc_config hc = hc_base(FL_HC_TCP_HALF_OPEN);
	__u16 port;
	__be16 sport = 0;
	uint32_t isn = 0;
	int client, lfd, sfd, icmp_fd;
	struct env e;

	need_raw();
	lfd = listen_full_family(family, &port, &client);
	REQUIRE(lfd >= 0, "full listener");
	sfd = socket(family, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_TCP);
	icmp_fd = socket(family, SOCK_RAW | SOCK_CLOEXEC,
			 family == AF_INET ? IPPROTO_ICMP : IPPROTO_ICMPV6);
	REQUIRE(sfd >= 0 && icmp_fd >= 0, "raw sockets: %s", strerror(errno));
	hc.interval_ms = 400;
	hc.timeout_ms = 300;
	hc.fall = 100;
	if (env_start_family(&e, &hc, family, port, true) == 0) {
		uint64_t t0;

		CHECK(wait_syn(&e, sfd, port, &sport, &isn), "no SYN seen");
		inject_unreachable(icmp_fd, family, port, sport, isn + 5);
		CHECK(RUN_UNTIL(&e, e.c.n_checks == 1, 1000), "first probe not over");
		CHECK(e.c.n_failures == 1 && strstr(e.c.reason, "timeout") != NULL,
		      "an ICMP error about another SYN was taken: %s", e.c.reason);
		CHECK(wait_syn(&e, sfd, port, &sport, &isn), "no second SYN");
		t0 = fl_mono_ns();
		inject_unreachable(icmp_fd, family, port, sport, isn);
		CHECK(RUN_UNTIL(&e, e.c.n_checks == 2, 1000), "second probe not over");
		/* the reason tells it from the timeout, whatever the host's load */
		CHECK(e.c.n_failures == 2 && strcmp(e.c.reason, "ICMP: No route to host") == 0,
		      "the ICMP error did not end the probe: %s after %llu ms", e.c.reason,
		      (unsigned long long)((fl_mono_ns() - t0) / MS));
	}
	env_stop(&e);
	close(icmp_fd);
	close(sfd);
	close(client);
	close(lfd);
}

static void half_open_icmp_error(void)
{
	half_open_icmp_error_family(AF_INET);
	half_open_icmp_error_family(AF_INET6);
}

/* In a network namespace of its own, where a rule forbids TCP to
 * 10.201.0.1 but not the UDP connect that finds a probe's source: three
 * checkers started together, so that their SYNs go out in one batch, the
 * middle one's to 10.201.0.1. The kernel refuses that SYN alone: its probe
 * fails with the kernel's reason, and the two others come up. */
static void half_open_send_refused(void)
{
	struct fl_hc_config hc = hc_base(FL_HC_TCP_HALF_OPEN);
	union fl_addr lo = { .v4 = htonl(INADDR_LOOPBACK) };
	union fl_addr forbidden = { .v4 = htonl(0x0ac90001) };	/* 10.201.0.1 */
	struct fl_checker c2, c3;
	char err[256];
	__u16 port = 0;
	struct env e;
	int lfd;

	need_raw();
	if (unshare(CLONE_NEWNET) < 0) {
		printf("skip: no network namespace: %s\n", strerror(errno));
		exit(77);
	}
	REQUIRE(system("ip link set lo up && ip route add 10.201.0.0/24 dev lo && "
		       "ip rule add ipproto tcp to 10.201.0.1 prohibit") == 0, "ip rule");
	lfd = listen_family(AF_INET, 0, 64, &port);
	REQUIRE(lfd >= 0, "listen");
	hc.fall = 1;
	if (env_start(&e, &hc, port, false) == 0) {
		CHECK(fl_checker_init(&c2, &e.loop, &hc, &forbidden, FL_AF_INET, port, true, NULL, NULL,
				      err, sizeof(err)) == 0, "second checker: %s", err);
		CHECK(fl_checker_init(&c3, &e.loop, &hc, &lo, FL_AF_INET, port, false, NULL, NULL, err,
				      sizeof(err)) == 0, "third checker: %s", err);
		fl_checker_start(&c2, 0);
		fl_checker_start(&c3, 0);
		CHECK(RUN_UNTIL(&e, c2.n_checks >= 1, 1000), "the second never ended a probe");
		CHECK(!c2.up && strcmp(c2.reason, "send: Permission denied") == 0, "second: %s",
		      c2.reason);
		CHECK(RUN_UNTIL(&e, e.c.up && c3.up, 2000), "not up: %s, %s", e.c.reason, c3.reason);
		CHECK(e.c.n_failures == 0 && c3.n_failures == 0, "failures: %s, %s", e.c.reason,
		      c3.reason);
		fl_checker_stop(&c2);
		fl_checker_stop(&c3);
	}
	env_stop(&e);
	close(lfd);
}

/* ---- checks shared by backends (cp/daemon.c) ---- */

struct cp_env {
	char dir[64];
	char conf[96];
	struct fl_cp cp;
	bool have_cp;
};

/* The config file's first lines: everything but the VIPs, checks of type
 * tcp every 40 ms on port. Returns it open for the VIPs, or NULL. */
static FILE *cp_config_open(struct cp_env *e, __u16 port, unsigned max_backends)
{
	FILE *f = fopen(e->conf, "w");

	if (!f)
		return NULL;
	fprintf(f,
		"global: { shm_name = \"%s/shm\"; log_level = \"error\"; };\n"
		"limits: { max_vips = 8; max_backends = %u; ring_entries = 16384; max_workers = 2; };\n"
		"dataplane: { mode = \"dpdk\"; dpdk: { ports = ( { device = \"net_null0\"; } );\n"
		"  workers = [ 1 ]; }; next_hop: { mac = \"02:00:00:00:00:01\"; };\n"
		"  tunnel_source_v4 = \"10.0.0.2\"; };\n"
		"healthcheck: { type = \"tcp\"; interval_ms = 40; timeout_ms = 30; rise = 2; fall = 2;\n"
		"  port = %u; };\nvips = (", e->dir, max_backends, port);
	return f;
}

/* vips: "A:R" pairs, VIP 10.0.0.A:80 with backend 127.0.0.1 whose checks
 * need R successes (0: the default, 2), all checked on port. */
static void cp_write_config(struct cp_env *e, __u16 port, const char *const *vips, size_t n)
{
	FILE *f = cp_config_open(e, port, 64);

	REQUIRE(f, "config file");
	for (size_t i = 0; i < n; i++) {
		unsigned a, rise;
		REQUIRE(sscanf(vips[i], "%u:%u", &a, &rise) == 2, "vip %s", vips[i]);
		fprintf(f, "%s{ address = \"10.0.0.%u\"; port = 80; protocol = \"tcp\"; method = \"ipip\";\n"
			"  table_size = 251; backends = ( { address = \"127.0.0.1\"; ", i ? ", " : "", a);
		if (rise)
			fprintf(f, "healthcheck: { rise = %u; }; ", rise);
		fprintf(f, "} ); }\n");
	}
	fprintf(f, ");\n");
	fclose(f);
}

static void cp_env_fini(struct cp_env *e)
{
	char path[96];

	if (e->have_cp)
		fl_cp_fini(&e->cp);
	snprintf(path, sizeof(path), "%s/shm", e->dir);
	unlink(path);
	unlink(e->conf);
	rmdir(e->dir);
}

static struct fl_cp_backend *cp_backend(struct cp_env *e, unsigned vip)
{
	union fl_addr va = { .v4 = htonl(0x0a000000u | vip) }, ba = { .v4 = htonl(INADDR_LOOPBACK) };
	struct fl_backend_key key = { .addr = ba, .family = FL_AF_INET };

	return fl_cp_find(&e->cp, &va, FL_AF_INET, 80, IPPROTO_TCP, &key);
}

/* The backends that read check k. */
static size_t users_of(const struct fl_cp_check *k)
{
	size_t n = 0;

	for (const struct fl_cp_backend *b = k->users; b; b = b->next_user)
		n++;
	return n;
}

#define CP_RUN_UNTIL(e, cond, ms)                                             \
	({                                                                    \
		uint64_t end_ = fl_mono_ns() + (uint64_t)(ms) * MS;           \
		while (!(cond) && fl_mono_ns() < end_)                        \
			fl_loop_run_once(&(e)->cp.loop, 10);                  \
		(bool)(cond);                                                 \
	})

/* The SYNs to port seen on a raw socket over ms of the loop. */
static unsigned cp_count_syns(struct cp_env *e, int sfd, __u16 port, unsigned ms)
{
	unsigned syns = 0;
	__be16 sport;
	uint32_t isn;

	while (sniff_syn(sfd, port, &sport, &isn))
		;	/* what came before the window */
	CP_RUN_UNTIL(e, (syns += sniff_syn(sfd, port, &sport, &isn)) == ~0u, ms);
	while (sniff_syn(sfd, port, &sport, &isn))
		syns++;
	return syns;
}

/* Two VIPs in front of one backend with the same check probe it once an
 * interval, with one state; a third with other settings has its own check.
 * Reloads: a backend whose check changes to settings already checked joins
 * that check, a new VIP's backend takes the state of the check it joins,
 * and a check nobody names stops. */
static void shared_check(void)
{
	static const char *const three[] = { "100:0", "101:0", "102:3" };
	static const char *const after[] = { "101:0", "102:0", "103:0" };
	struct cp_env e = { .dir = "/tmp/fulcrum-test-health.XXXXXX" };
	struct fl_cp_backend *b100, *b101, *b102, *b103;
	__u16 port = 0;
	int lfd = listen_on(0, &port), sfd = -1;
	char err[FL_CONFIG_ERR_LEN];

	need_raw();
	REQUIRE(lfd >= 0 && mkdtemp(e.dir), "listen, temporary directory");
	snprintf(e.conf, sizeof(e.conf), "%s/cp.conf", e.dir);
	cp_write_config(&e, port, three, 3);
	e.have_cp = fl_cp_init(&e.cp, e.conf, err, sizeof(err)) == 0;
	CHECK(e.have_cp, "fl_cp_init: %s", err);
	if (!e.have_cp)
		goto out;
	b100 = cp_backend(&e, 100);
	b101 = cp_backend(&e, 101);
	b102 = cp_backend(&e, 102);
	REQUIRE(b100 && b101 && b102, "backends");
	CHECK(e.cp.n_checks == 2 && b100->check == b101->check && b102->check != b100->check &&
	      users_of(b100->check) == 2 && users_of(b102->check) == 1,
	      "%zu checks, shared %d, users %zu and %zu", e.cp.n_checks, b100->check == b101->check,
	      users_of(b100->check), users_of(b102->check));
	CHECK(CP_RUN_UNTIL(&e, b100->check->chk.up && b102->check->chk.up, 2000), "not up");

	/* on the wire: one SYN per probe of the two checks, not three */
	sfd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_TCP);
	REQUIRE(sfd >= 0, "raw socket");
	uint64_t shared0 = b100->check->chk.n_checks, own0 = b102->check->chk.n_checks;
	unsigned syns = cp_count_syns(&e, sfd, port, 600);
	uint64_t probes = b100->check->chk.n_checks - shared0 + b102->check->chk.n_checks - own0;
	CHECK(probes >= 10 && syns + 2 >= probes && syns <= probes + 2,
	      "%u SYNs for %llu probes of the two checks", syns, (unsigned long long)probes);

	/* one state: the listener gone, both VIPs' backend goes down at once */
	close(lfd);
	lfd = -1;
	CHECK(CP_RUN_UNTIL(&e, !b100->check->chk.up && !b102->check->chk.up, 2000), "not down");
	lfd = listen_on(port, &port);
	REQUIRE(lfd >= 0, "listen again");
	CHECK(CP_RUN_UNTIL(&e, b100->check->chk.up && b102->check->chk.up, 2000), "not back up");

	/* reload: 100 gone, 102 now checked as 101 is, 103 new */
	struct fl_cp_check *shared = b101->check;
	uint64_t checks_before = shared->chk.n_checks;
	cp_write_config(&e, port, after, 3);
	CHECK(fl_cp_reload(&e.cp, err, sizeof(err)) == 0, "reload: %s", err);
	b101 = cp_backend(&e, 101);
	b102 = cp_backend(&e, 102);
	b103 = cp_backend(&e, 103);
	REQUIRE(b101 && b102 && b103 && !cp_backend(&e, 100), "backends after the reload");
	CHECK(e.cp.n_checks == 1 && b101->check == shared && b102->check == shared &&
	      b103->check == shared && users_of(shared) == 3,
	      "%zu checks, users %zu", e.cp.n_checks, users_of(shared));
	CHECK(shared->chk.up && checks_before > 0 && shared->chk.n_checks == checks_before,
	      "the kept check restarted: up %d, %llu checks, %llu before", shared->chk.up,
	      (unsigned long long)shared->chk.n_checks, (unsigned long long)checks_before);
	/* the rise-3 check stopped: the SYNs are the shared check's alone */
	shared0 = shared->chk.n_checks;
	syns = cp_count_syns(&e, sfd, port, 400);
	probes = shared->chk.n_checks - shared0;
	CHECK(probes >= 5 && syns + 2 >= probes && syns <= probes + 2,
	      "%u SYNs for %llu probes of the one check", syns, (unsigned long long)probes);

	/* a restart reads the published state back: the new check starts up */
	fl_cp_fini(&e.cp);
	e.have_cp = fl_cp_init(&e.cp, e.conf, err, sizeof(err)) == 0;
	CHECK(e.have_cp, "fl_cp_init again: %s", err);
	if (!e.have_cp)
		goto out;
	b101 = cp_backend(&e, 101);
	CHECK(e.cp.n_checks == 1 && b101 && users_of(b101->check) == 3 && b101->check->chk.up &&
	      b101->check->chk.n_checks == 0, "after a restart: %zu checks, up %d", e.cp.n_checks,
	      b101 && b101->check->chk.up);
out:
	if (sfd >= 0)
		close(sfd);
	if (lfd >= 0)
		close(lfd);
	cp_env_fini(&e);
}

/* n backends 127.0.0.2.. of VIP 10.0.0.100:80, all checked on
 * 127.0.0.1:port by tcp-half-open, each with its own rise (1..n): n checks
 * of one target. */
static void cp_write_half_open_config(struct cp_env *e, __u16 port, unsigned n)
{
	FILE *f = cp_config_open(e, port, 128);

	REQUIRE(f, "config file");
	fprintf(f, "{ address = \"10.0.0.100\"; port = 80; protocol = \"tcp\"; method = \"ipip\";\n"
		"  table_size = 251; backends = (");
	for (unsigned i = 0; i < n; i++)
		fprintf(f, "%s{ address = \"127.0.0.%u\"; healthcheck: { type = \"tcp-half-open\";\n"
			"    address = \"127.0.0.1\"; rise = %u; }; }", i ? ", " : "", i + 2, i + 1);
	fprintf(f, "); } );\n");
	fclose(f);
}

/* A reload whose new check cannot be made (a 65th tcp-half-open check of
 * one target) is refused with that error, and the running checks stay. */
static void shared_check_reload_fails(void)
{
	struct cp_env e = { .dir = "/tmp/fulcrum-test-health.XXXXXX" };
	char err[FL_CONFIG_ERR_LEN], want[96];
	struct fl_cp_check *first;
	__u16 port = closed_port();
	int rc;

	need_raw();
	REQUIRE(mkdtemp(e.dir), "temporary directory");
	snprintf(e.conf, sizeof(e.conf), "%s/cp.conf", e.dir);
	cp_write_half_open_config(&e, port, 64);
	e.have_cp = fl_cp_init(&e.cp, e.conf, err, sizeof(err)) == 0;
	CHECK(e.have_cp, "fl_cp_init: %s", err);
	if (!e.have_cp)
		goto out;
	CHECK(e.cp.n_checks == 64 && e.cp.n_backends == 64, "%zu checks, %zu backends",
	      e.cp.n_checks, e.cp.n_backends);
	first = e.cp.backends[0]->check;
	cp_write_half_open_config(&e, port, 65);
	rc = fl_cp_reload(&e.cp, err, sizeof(err));
	snprintf(want, sizeof(want), "more than 64 tcp-half-open checks of 127.0.0.1:%u", port);
	CHECK(rc == -EBUSY && strstr(err, want), "reload: %d, %s", rc, err);
	CHECK(e.cp.n_checks == 64 && e.cp.n_backends == 64 && e.cp.backends[0]->check == first &&
	      users_of(first) == 1, "after the refused reload: %zu checks, %zu backends",
	      e.cp.n_checks, e.cp.n_backends);
	/* and they still probe */
	uint64_t before = first->chk.n_checks;
	CHECK(CP_RUN_UNTIL(&e, first->chk.n_checks >= before + 2, 2000), "the checks stopped");
out:
	cp_env_fini(&e);
}

static const struct fl_test_case cases[] = {
	{ "tcp_up", tcp_up },
	{ "tcp_refused_down", tcp_refused_down },
	{ "tcp_no_connection", tcp_no_connection },
	{ "rise_back_up", rise_back_up },
	{ "http_status", http_status },
	{ "http_body", http_body },
	{ "https_noverify", https_noverify },
	{ "https_verify_fails", https_verify_fails },
	{ "timeout", timeout },
	{ "half_open_v4", half_open_v4 },
	{ "half_open_v6", half_open_v6 },
	{ "half_open_timeout", half_open_timeout },
	{ "half_open_shared_target", half_open_shared_target },
	{ "half_open_port_limit", half_open_port_limit },
	{ "half_open_ignores_others", half_open_ignores_others },
	{ "half_open_send_refused", half_open_send_refused },
	{ "half_open_icmp_error", half_open_icmp_error },
	{ "half_open_dropped_answers", half_open_dropped_answers },
	{ "shared_check", shared_check },
	{ "shared_check_reload_fails", shared_check_reload_fails },
};

int main(int argc, char **argv)
{
	int rc;

	signal(SIGPIPE, SIG_IGN);
	rc = fl_test_main(cases, sizeof(cases) / sizeof(cases[0]), argc, argv);
	fl_check_tls_fini();
	return rc;
}
