/* SPDX-License-Identifier: BSD-3-Clause */
/* Health checkers (cp/health.h, check_tcp.c, check_http.c) against real
 * listeners on 127.0.0.1, served by a thread of this test. Every wait is
 * bounded. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "check.h"
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

static int listen_on(__u16 port, __u16 *bound)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	socklen_t len = sizeof(sin);
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(fd, 64) < 0) {
		close(fd);
		return -1;
	}
	getsockname(fd, (struct sockaddr *)&sin, &len);
	*bound = ntohs(sin.sin_port);
	return fd;
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
static __u16 closed_port(void)
{
	__u16 port = 0;
	int fd = listen_on(0, &port);

	close(fd);
	return port;
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

static int env_start(struct env *e, const struct fl_hc_config *hc, __u16 port, bool up)
{
	union fl_addr a = { .v4 = htonl(INADDR_LOOPBACK) };
	char err[256];
	int rc;

	memset(e, 0, sizeof(*e));
	rc = fl_loop_init(&e->loop, err, sizeof(err));
	CHECK(rc == 0, "loop: %s", err);
	if (rc)
		return rc;
	rc = fl_checker_init(&e->c, &e->loop, hc, &a, FL_AF_INET, port, up, on_change, e, err, sizeof(err));
	CHECK(rc == 0, "checker: %s", err);
	if (rc == 0)
		rc = fl_checker_start(&e->c, 0);
	return rc;
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

static const struct fl_test_case cases[] = {
	{ "tcp_up", tcp_up },
	{ "tcp_refused_down", tcp_refused_down },
	{ "rise_back_up", rise_back_up },
	{ "http_status", http_status },
	{ "http_body", http_body },
	{ "https_noverify", https_noverify },
	{ "https_verify_fails", https_verify_fails },
	{ "timeout", timeout },
};

int main(int argc, char **argv)
{
	int rc;

	signal(SIGPIPE, SIG_IGN);
	rc = fl_test_main(cases, sizeof(cases) / sizeof(cases[0]), argc, argv);
	fl_check_tls_fini();
	return rc;
}
